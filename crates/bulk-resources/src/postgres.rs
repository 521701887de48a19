//! The production resource store: PostgreSQL.

use std::collections::HashMap;

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

/// The WHERE clause for a filter; `$1` type, `$2` until, `$3` patient when `Only`.
fn where_clause(filter: &PatientFilter) -> &'static str {
    match filter {
        PatientFilter::All => "resource_type = $1 AND last_updated <= $2",
        PatientFilter::AnyPatient => "resource_type = $1 AND last_updated <= $2 AND patient_id IS NOT NULL",
        PatientFilter::Only(_) => "resource_type = $1 AND last_updated <= $2 AND patient_id = $3",
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
        // One statement per batch; a (type, id) repeated in the batch keeps its
        // last version, since ON CONFLICT cannot touch a row twice.
        let mut last: HashMap<(&str, &str), &NewResource> = HashMap::new();
        for r in batch {
            last.insert((r.resource_type.as_str(), r.id.as_str()), r);
        }
        let (mut types, mut ids, mut patients, mut jsons) = (vec![], vec![], vec![], vec![]);
        for r in last.values() {
            types.push(r.resource_type.as_str());
            ids.push(r.id.as_str());
            patients.push(r.patient_id.as_deref());
            jsons.push(r.json.as_str());
        }
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "INSERT INTO resources (resource_type, id, patient_id, resource)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
                 ON CONFLICT (resource_type, id) DO UPDATE
                 SET patient_id = EXCLUDED.patient_id, resource = EXCLUDED.resource, last_updated = now()",
                &[&types, &ids, &patients, &jsons],
            )
            .await?;
        Ok(n)
    }

    async fn patient_of(&self, refs: &[(String, String)]) -> Result<Option<String>, ResourceError> {
        if refs.is_empty() {
            return Ok(None);
        }
        let types: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
        let ids: Vec<&str> = refs.iter().map(|(_, i)| i.as_str()).collect();
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT r.patient_id FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS q(t, i, n)
                 JOIN resources r ON r.resource_type = q.t AND r.id = q.i
                 WHERE r.patient_id IS NOT NULL ORDER BY q.n LIMIT 1",
                &[&types, &ids],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn get(&self, resource_type: &str, id: &str) -> Result<Option<String>, ResourceError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT resource FROM resources WHERE resource_type = $1 AND id = $2", &[&resource_type, &id])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn now(&self) -> Result<OffsetDateTime, ResourceError> {
        let client = self.pool.get().await?;
        // clock_timestamp(), not now(): now() is the start of this (trivial) transaction anyway,
        // but clock_timestamp() states the intent: the database's wall clock at this moment.
        Ok(client.query_one("SELECT clock_timestamp()", &[]).await?.get(0))
    }

    async fn count(&self, query: &ResourceQuery) -> Result<u64, ResourceError> {
        let sql = format!("SELECT count(*) FROM resources WHERE {}", where_clause(&query.patients));
        let client = self.pool.get().await?;
        let row = match &query.patients {
            PatientFilter::Only(p) => client.query_one(&sql, &[&query.resource_type, &query.until, p]).await?,
            _ => client.query_one(&sql, &[&query.resource_type, &query.until]).await?,
        };
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredResource>, ResourceError> {
        let base = where_clause(&query.patients);
        let next = if matches!(query.patients, PatientFilter::Only(_)) { 4 } else { 3 };
        let sql = format!(
            "SELECT id, resource FROM resources WHERE {base} AND (${next}::text IS NULL OR id > ${next}::text)
             ORDER BY id LIMIT ${}",
            next + 1
        );
        let limit = i64::from(limit);
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query.resource_type, &query.until];
        if let PatientFilter::Only(p) = &query.patients {
            params.push(p);
        }
        params.push(&after);
        params.push(&limit);
        let rows = client.query(&stmt, &params).await?;
        Ok(rows.iter().map(|r| StoredResource { id: r.get(0), json: r.get(1) }).collect())
    }

    async fn health_check(&self) -> Result<(), ResourceError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
