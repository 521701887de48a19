//! The embedded resource store: one SQLite file, same semantics as PostgreSQL.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
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

/// WHERE clause and its parameters after `?1` type and `?2` until.
fn filter_sql(filter: &PatientFilter) -> (&'static str, Option<String>) {
    match filter {
        PatientFilter::All => ("", None),
        PatientFilter::AnyPatient => (" AND patient_id IS NOT NULL", None),
        PatientFilter::Only(p) => (" AND patient_id = ?3", Some(p.clone())),
    }
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
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO resources (resource_type, id, patient_id, last_updated, resource)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (resource_type, id) DO UPDATE SET patient_id = excluded.patient_id,
                           resource = excluded.resource, last_updated = excluded.last_updated",
                    )
                    .map_err(db_err)?;
                for r in &batch {
                    stmt.execute(params![r.resource_type, r.id, r.patient_id, now, r.json]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(batch.len() as u64)
        })
        .await
    }

    async fn patient_of(&self, refs: &[(String, String)]) -> Result<Option<String>, ResourceError> {
        let refs = refs.to_vec();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT patient_id FROM resources WHERE resource_type = ?1 AND id = ?2 AND patient_id IS NOT NULL",
                )
                .map_err(db_err)?;
            for (t, i) in &refs {
                if let Some(p) = stmt.query_row(params![t, i], |r| r.get(0)).optional().map_err(db_err)? {
                    return Ok(Some(p));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn get(&self, resource_type: &str, id: &str) -> Result<Option<String>, ResourceError> {
        let (t, i) = (resource_type.to_owned(), id.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT resource FROM resources WHERE resource_type = ?1 AND id = ?2")
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
        let (extra, patient) = filter_sql(&query.patients);
        let (ty, until) = (query.resource_type.clone(), micros(query.until));
        self.with(move |conn| {
            let sql = format!("SELECT count(*) FROM resources WHERE resource_type = ?1 AND last_updated <= ?2{extra}");
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let n: i64 = match patient {
                Some(p) => stmt.query_row(params![ty, until, p], |r| r.get(0)),
                None => stmt.query_row(params![ty, until], |r| r.get(0)),
            }
            .map_err(db_err)?;
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
        let (extra, patient) = filter_sql(&query.patients);
        let (ty, until, after) = (query.resource_type.clone(), micros(query.until), after.map(str::to_owned));
        self.with(move |conn| {
            let mut values: Vec<rusqlite::types::Value> = vec![ty.into(), until.into()];
            if let Some(p) = patient {
                values.push(p.into());
            }
            let cursor = match after {
                Some(a) => {
                    values.push(a.into());
                    format!(" AND id > ?{}", values.len())
                }
                None => String::new(),
            };
            values.push(i64::from(limit).into());
            let sql = format!(
                "SELECT id, resource FROM resources WHERE resource_type = ?1 AND last_updated <= ?2{extra}{cursor}
                 ORDER BY id LIMIT ?{}",
                values.len()
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map(params_from_iter(values), |r| Ok(StoredResource { id: r.get(0)?, json: r.get(1)? }))
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    async fn health_check(&self) -> Result<(), ResourceError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }
}
