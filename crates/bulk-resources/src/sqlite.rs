//! The embedded resource store: one SQLite file, same semantics as PostgreSQL.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use time::OffsetDateTime;

use crate::migrations::SQLITE;
use crate::{NewResource, PatientFilter, ResourceError, ResourceQuery, ResourceStore, StoredResource};

/// SQLite behind one connection, used from blocking tasks. Text compares
/// bytewise (BINARY collation), so keyset pagination orders ids exactly as
/// PostgreSQL's "C" collation does.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn db_err(e: rusqlite::Error) -> ResourceError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            ResourceError::Unavailable(e.to_string())
        }
        _ => ResourceError::Query(e.to_string()),
    }
}

/// `last_updated` is stored as microseconds since the epoch, PostgreSQL's precision.
fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

impl SqliteStore {
    /// Opens (creating) the database file.
    pub async fn open(path: &Path) -> Result<Self, ResourceError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, ResourceError> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ResourceError::Input { path: dir.display().to_string(), source: e })?;
            }
            let conn = Connection::open(&path).map_err(db_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
            conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
            Ok(conn)
        })
        .await
        .map_err(|e| ResourceError::Unavailable(e.to_string()))??;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ResourceError> + Send + 'static,
    ) -> Result<T, ResourceError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ResourceError::Unavailable(e.to_string()))?
    }
}

/// A statement's parameters, numbered as they are bound (`?n`).
#[derive(Default)]
struct Sql {
    params: Vec<Value>,
}

impl Sql {
    /// Binds `value` and returns its placeholder.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// The conditions on `resources r` for `query`: its type, its
    /// `(since, until]` window, its compartments, and live rows or tombstones.
    /// A patient list is bound as one JSON array (`json_each`), so a Group of
    /// any size fits in one parameter.
    fn filter(&mut self, query: &ResourceQuery, tombstones: bool) -> String {
        let mut w = format!(
            "r.resource_type = {} AND r.deleted = {} AND r.last_updated <= {}",
            self.bind(query.resource_type.clone()),
            i64::from(tombstones),
            self.bind(micros(query.until))
        );
        if let Some(since) = query.since {
            w += &format!(" AND r.last_updated > {}", self.bind(micros(since)));
        }
        const MEMBER: &str =
            "EXISTS (SELECT 1 FROM resource_patients m WHERE m.resource_type = r.resource_type AND m.id = r.id";
        match &query.patients {
            PatientFilter::All => {}
            PatientFilter::AnyPatient => w += &format!(" AND {MEMBER})"),
            PatientFilter::Patients(ps) => {
                let list = self.bind(json_array(ps));
                w += &format!(" AND {MEMBER} AND m.patient_id IN (SELECT value FROM json_each({list})))");
            }
        }
        w
    }

    /// `WHERE filter [AND r.id > after] ORDER BY r.id LIMIT limit`.
    fn keyset(&mut self, query: &ResourceQuery, tombstones: bool, after: Option<&str>, limit: u32) -> String {
        let mut w = self.filter(query, tombstones);
        if let Some(a) = after {
            w += &format!(" AND r.id > {}", self.bind(a.to_owned()));
        }
        format!("WHERE {w} ORDER BY r.id LIMIT {}", self.bind(i64::from(limit)))
    }
}

fn json_array(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn migrate(&self) -> Result<(), ResourceError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_err)?;
            for (v, sql) in SQLITE {
                if *v > version {
                    tx.execute_batch(sql).map_err(db_err)?;
                    tx.pragma_update(None, "user_version", v).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn upsert(&self, batch: &[NewResource]) -> Result<u64, ResourceError> {
        let batch = batch.to_vec();
        self.with(move |conn| {
            let now = micros(OffsetDateTime::now_utc());
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut write = tx
                    .prepare_cached(
                        "INSERT INTO resources (resource_type, id, last_updated, resource, deleted)
                         VALUES (?1, ?2, ?3, ?4, 0)
                         ON CONFLICT (resource_type, id) DO UPDATE SET resource = excluded.resource,
                           last_updated = excluded.last_updated, deleted = 0",
                    )
                    .map_err(db_err)?;
                let mut forget = tx
                    .prepare_cached("DELETE FROM resource_patients WHERE resource_type = ?1 AND id = ?2")
                    .map_err(db_err)?;
                let mut member = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO resource_patients (resource_type, id, patient_id) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(db_err)?;
                for r in &batch {
                    write.execute(params![r.resource_type, r.id, now, r.json]).map_err(db_err)?;
                    forget.execute(params![r.resource_type, r.id]).map_err(db_err)?;
                    for p in &r.patient_ids {
                        member.execute(params![r.resource_type, r.id, p]).map_err(db_err)?;
                    }
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(batch.len() as u64)
        })
        .await
    }

    async fn delete(&self, refs: &[(String, String)]) -> Result<u64, ResourceError> {
        let refs = refs.to_vec();
        self.with(move |conn| {
            let now = micros(OffsetDateTime::now_utc());
            let tx = conn.transaction().map_err(db_err)?;
            let mut n = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE resources SET deleted = 1, last_updated = ?3
                         WHERE resource_type = ?1 AND id = ?2 AND deleted = 0",
                    )
                    .map_err(db_err)?;
                for (t, i) in &refs {
                    n += stmt.execute(params![t, i, now]).map_err(db_err)? as u64;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(n)
        })
        .await
    }

    async fn patients_of(&self, refs: &[(String, String)]) -> Result<Vec<String>, ResourceError> {
        let refs = refs.to_vec();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT m.patient_id FROM resource_patients m
                     JOIN resources r ON r.resource_type = m.resource_type AND r.id = m.id
                     WHERE r.resource_type = ?1 AND r.id = ?2 AND r.deleted = 0",
                )
                .map_err(db_err)?;
            let mut patients = BTreeSet::new();
            for (t, i) in &refs {
                let rows = stmt.query_map(params![t, i], |r| r.get::<_, String>(0)).map_err(db_err)?;
                for p in rows {
                    patients.insert(p.map_err(db_err)?);
                }
            }
            Ok(patients.into_iter().collect())
        })
        .await
    }

    async fn get(&self, resource_type: &str, id: &str) -> Result<Option<String>, ResourceError> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT resource FROM resources WHERE resource_type = ?1 AND id = ?2 AND deleted = 0")
                .map_err(db_err)?;
            stmt.query_row(params![t, i], |r| r.get(0)).optional().map_err(db_err)
        })
        .await
    }

    async fn now(&self) -> Result<OffsetDateTime, ResourceError> {
        // The clock that stamps `last_updated` is this process's: read the same one.
        let t = OffsetDateTime::now_utc();
        Ok(t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t))
    }

    async fn count(&self, query: &ResourceQuery) -> Result<u64, ResourceError> {
        let mut sql = Sql::default();
        let text = format!("SELECT count(*) FROM resources r WHERE {}", sql.filter(query, false));
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&text).map_err(db_err)?;
            let n: i64 = stmt.query_row(params_from_iter(sql.params), |r| r.get(0)).map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredResource>, ResourceError> {
        let mut sql = Sql::default();
        let text = format!("SELECT r.id, r.resource FROM resources r {}", sql.keyset(query, false, after, limit));
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&text).map_err(db_err)?;
            let rows = stmt
                .query_map(params_from_iter(sql.params), |r| Ok(StoredResource { id: r.get(0)?, json: r.get(1)? }))
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    async fn deleted_page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, ResourceError> {
        let mut sql = Sql::default();
        let text = format!("SELECT r.id FROM resources r {}", sql.keyset(query, true, after, limit));
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&text).map_err(db_err)?;
            let rows = stmt
                .query_map(params_from_iter(sql.params), |r| r.get(0))
                .map_err(db_err)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    async fn existing(&self, resource_type: &str, ids: &[String]) -> Result<Vec<String>, ResourceError> {
        let (t, list) = (resource_type.to_owned(), json_array(ids));
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM resources WHERE resource_type = ?1 AND deleted = 0
                     AND id IN (SELECT value FROM json_each(?2)) ORDER BY id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![t, list], |r| r.get(0))
                .map_err(db_err)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    async fn health_check(&self) -> Result<(), ResourceError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }
}
