//! The production resource store: PostgreSQL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::migrations::POSTGRES;
use crate::{NewResource, PatientFilter, ResourceError, ResourceQuery, ResourceStore, StoredResource};

/// Any fixed number: serialises concurrent `migrate` calls from API and workers.
const MIGRATION_LOCK: i64 = 0x6668_6972_6275_6c6b;

/// A pool of PostgreSQL connections.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Builds the pool. Connects lazily: the database need not be up yet.
    pub fn connect(url: &SecretString, pool_size: usize) -> Result<Self, ResourceError> {
        let config: tokio_postgres::Config =
            url.expose_secret().parse().map_err(|_| ResourceError::Query("invalid PostgreSQL URL".into()))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| ResourceError::Query(e.to_string()))?;
        Ok(PostgresStore { pool })
    }
}

/// A statement's text and its parameters, numbered as they are bound, so
/// optional conditions never leave a gap in the numbering.
#[derive(Default)]
struct Sql<'a> {
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Sql<'a> {
    /// Binds `value` and returns its placeholder (`$n`).
    fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// The conditions on `resources r` for `query`: its type, its
    /// `(since, until]` window, its compartments, and live rows or tombstones.
    fn filter(&mut self, query: &'a ResourceQuery, tombstones: bool) -> String {
        let mut w = format!(
            "r.resource_type = {} AND {}r.deleted AND r.last_updated <= {}",
            self.bind(&query.resource_type),
            if tombstones { "" } else { "NOT " },
            self.bind(&query.until)
        );
        if let Some(since) = &query.since {
            w += &format!(" AND r.last_updated > {}", self.bind(since));
        }
        const MEMBER: &str =
            "EXISTS (SELECT 1 FROM resource_patients m WHERE m.resource_type = r.resource_type AND m.id = r.id";
        match &query.patients {
            PatientFilter::All => {}
            PatientFilter::AnyPatient => w += &format!(" AND {MEMBER})"),
            PatientFilter::Patients(ps) => w += &format!(" AND {MEMBER} AND m.patient_id = ANY({}))", self.bind(ps)),
        }
        w
    }

    /// `WHERE filter [AND r.id > after] ORDER BY r.id LIMIT limit`.
    fn keyset(
        &mut self,
        query: &'a ResourceQuery,
        tombstones: bool,
        after: &'a Option<&'a str>,
        limit: &'a i64,
    ) -> String {
        let mut w = self.filter(query, tombstones);
        if after.is_some() {
            w += &format!(" AND r.id > {}", self.bind(after));
        }
        format!("WHERE {w} ORDER BY r.id LIMIT {}", self.bind(limit))
    }
}

#[async_trait]
impl ResourceStore for PostgresStore {
    async fn migrate(&self) -> Result<(), ResourceError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let applied: Vec<i32> =
            tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
        for (version, sql) in POSTGRES {
            if !applied.contains(version) {
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert(&self, batch: &[NewResource]) -> Result<u64, ResourceError> {
        // One statement per table; a (type, id) repeated in the batch keeps its
        // last version, since ON CONFLICT cannot touch a row twice. Sorted, so
        // concurrent writers lock rows in the same order and cannot deadlock.
        let mut last: BTreeMap<(&str, &str), &NewResource> = BTreeMap::new();
        for r in batch {
            last.insert((r.resource_type.as_str(), r.id.as_str()), r);
        }
        let (mut types, mut ids, mut jsons) = (vec![], vec![], vec![]);
        let (mut m_types, mut m_ids, mut m_patients) = (vec![], vec![], vec![]);
        for r in last.values() {
            types.push(r.resource_type.as_str());
            ids.push(r.id.as_str());
            jsons.push(r.json.as_str());
            for p in &r.patient_ids {
                m_types.push(r.resource_type.as_str());
                m_ids.push(r.id.as_str());
                m_patients.push(p.as_str());
            }
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "INSERT INTO resources (resource_type, id, resource)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (resource_type, id) DO UPDATE
                 SET resource = EXCLUDED.resource, last_updated = now(), deleted = false",
                &[&types, &ids, &jsons],
            )
            .await?;
        tx.execute(
            "DELETE FROM resource_patients m USING UNNEST($1::text[], $2::text[]) AS q(t, i)
             WHERE m.resource_type = q.t AND m.id = q.i",
            &[&types, &ids],
        )
        .await?;
        tx.execute(
            "INSERT INTO resource_patients (resource_type, id, patient_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            &[&m_types, &m_ids, &m_patients],
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn delete(&self, refs: &[(String, String)]) -> Result<u64, ResourceError> {
        let types: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
        let ids: Vec<&str> = refs.iter().map(|(_, i)| i.as_str()).collect();
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE resources r SET deleted = true, last_updated = now()
                 FROM UNNEST($1::text[], $2::text[]) AS q(t, i)
                 WHERE r.resource_type = q.t AND r.id = q.i AND NOT r.deleted",
                &[&types, &ids],
            )
            .await?;
        Ok(n)
    }

    async fn patients_of(&self, refs: &[(String, String)]) -> Result<Vec<String>, ResourceError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
        let ids: Vec<&str> = refs.iter().map(|(_, i)| i.as_str()).collect();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT DISTINCT m.patient_id FROM UNNEST($1::text[], $2::text[]) AS q(t, i)
                 JOIN resources r ON r.resource_type = q.t AND r.id = q.i AND NOT r.deleted
                 JOIN resource_patients m ON m.resource_type = r.resource_type AND m.id = r.id
                 ORDER BY 1",
                &[&types, &ids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn get(&self, resource_type: &str, id: &str) -> Result<Option<String>, ResourceError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT resource FROM resources WHERE resource_type = $1 AND id = $2 AND NOT deleted",
                &[&resource_type, &id],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn now(&self) -> Result<OffsetDateTime, ResourceError> {
        let client = self.pool.get().await?;
        // An export reads everything with last_updated <= this time, so every write
        // stamped up to it must already be committed. Writes are stamped with now(),
        // their transaction's start: a writer still in flight (it holds an xid) may
        // commit rows stamped before clock_timestamp() after we have read. So the
        // time is just before the oldest such writer on this database started, if any.
        // (Other roles' sessions are visible in pg_stat_activity only to members of
        // pg_read_all_stats; the loader and workers share one role in our deployment.)
        let sql = "SELECT least(clock_timestamp(),
                     (SELECT min(xact_start) - interval '1 microsecond' FROM pg_stat_activity
                      WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                        AND datname = current_database()))";
        Ok(client.query_one(sql, &[]).await?.get(0))
    }

    async fn count(&self, query: &ResourceQuery) -> Result<u64, ResourceError> {
        let mut sql = Sql::default();
        let text = format!("SELECT count(*) FROM resources r WHERE {}", sql.filter(query, false));
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&text).await?;
        let row = client.query_one(&stmt, &sql.params).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredResource>, ResourceError> {
        let (after, limit) = (after, i64::from(limit));
        let mut sql = Sql::default();
        let text = format!("SELECT r.id, r.resource FROM resources r {}", sql.keyset(query, false, &after, &limit));
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&text).await?;
        let rows = client.query(&stmt, &sql.params).await?;
        Ok(rows.iter().map(|r| StoredResource { id: r.get(0), json: r.get(1) }).collect())
    }

    async fn deleted_page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, ResourceError> {
        let (after, limit) = (after, i64::from(limit));
        let mut sql = Sql::default();
        let text = format!("SELECT r.id FROM resources r {}", sql.keyset(query, true, &after, &limit));
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&text).await?;
        let rows = client.query(&stmt, &sql.params).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn existing(&self, resource_type: &str, ids: &[String]) -> Result<Vec<String>, ResourceError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id FROM resources WHERE resource_type = $1 AND id = ANY($2) AND NOT deleted ORDER BY id",
                &[&resource_type, &ids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn health_check(&self) -> Result<(), ResourceError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
