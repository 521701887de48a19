//! `JobQueue`: the Redis-backed queue and job records.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulk_core::settings::RedisSettings;
use bulk_core::{ExportRequest, IssueCode, JobId, Manifest, OperationOutcome};
use deadpool_redis::{Pool, Runtime};
use redis::AsyncCommands;
use secrecy::ExposeSecret;

use crate::scripts::SCRIPTS;
use crate::{JobRecord, Keys, QueueError};

/// Timing policy of the queue.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// How long a finished record lives (24 h by default).
    pub record_ttl: Duration,
    /// Backstop TTL of a queued or running record.
    pub active_ttl: Duration,
    /// Lease length; renewed by heartbeats.
    pub lease: Duration,
    /// Claims after which a job whose lease keeps expiring is failed.
    pub max_attempts: u32,
}

impl QueueConfig {
    /// From the `[worker]` settings.
    pub fn from_settings(s: &bulk_core::settings::WorkerSettings) -> Self {
        QueueConfig {
            record_ttl: Duration::from_secs(s.record_ttl_secs),
            active_ttl: Duration::from_secs(s.active_record_ttl_secs),
            lease: Duration::from_secs(s.lease_secs),
            max_attempts: s.max_attempts.max(1),
        }
    }
}

/// A job a worker has claimed.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The record as it was when claimed.
    pub record: JobRecord,
}

/// Handle on the queue; cheap to clone (a pool inside).
#[derive(Clone)]
pub struct JobQueue {
    pool: Pool,
    keys: Keys,
    config: QueueConfig,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl JobQueue {
    /// Builds the pool. Connects lazily: Redis need not be up yet.
    pub fn connect(settings: &RedisSettings, config: QueueConfig) -> Result<Self, QueueError> {
        let mut cfg = deadpool_redis::Config::from_url(settings.url.expose_secret());
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: settings.pool_size.max(1),
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_secs(5)),
                create: Some(Duration::from_secs(3)),
                recycle: Some(Duration::from_secs(3)),
            },
            ..Default::default()
        });
        let pool = cfg.create_pool(Some(Runtime::Tokio1)).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Ok(JobQueue { pool, keys: Keys::new(&settings.key_prefix), config })
    }

    /// The key names this queue uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The timing policy.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, QueueError> {
        Ok(self.pool.get().await?)
    }

    /// Writes a new job record and queues it.
    pub async fn enqueue(&self, id: JobId, owner: &str, request: &ExportRequest) -> Result<(), QueueError> {
        let request = serde_json::to_string(request).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        let mut conn = self.conn().await?;
        let created: i64 = SCRIPTS
            .enqueue
            .key(self.keys.job(&id))
            .key(self.keys.queue())
            .arg(id.to_string())
            .arg(self.config.active_ttl.as_secs())
            .arg("owner")
            .arg(owner)
            .arg("request")
            .arg(request)
            .arg("created_at")
            .arg(now_ms())
            .invoke_async(&mut conn)
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(QueueError::Corrupt(format!("job {id} already exists")))
        }
    }

    /// Reads a job record; `None` when there is none (never existed or expired).
    pub async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, QueueError> {
        let mut conn = self.conn().await?;
        let h: HashMap<String, String> = conn.hgetall(self.keys.job(id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        JobRecord::from_hash(*id, h).map(Some)
    }

    /// Cancels a queued or running job or discards a finished one. `false`
    /// when there was nothing to cancel.
    pub async fn cancel(&self, id: &JobId) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let n: i64 = SCRIPTS
            .cancel
            .key(self.keys.job(id))
            .key(self.keys.leases())
            .key(self.keys.queue())
            .arg(id.to_string())
            .arg(self.config.record_ttl.as_secs())
            .arg(now_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Claims the oldest queued job for `worker`, with a fresh lease.
    pub async fn claim(&self, worker: &str) -> Result<Option<Claimed>, QueueError> {
        let mut conn = self.conn().await?;
        let now = now_ms();
        let id: Option<String> = SCRIPTS
            .claim
            .key(self.keys.queue())
            .key(self.keys.leases())
            .arg(self.keys.job_prefix())
            .arg(worker)
            .arg(now)
            .arg(now + self.config.lease.as_millis() as u64)
            .arg(self.config.active_ttl.as_secs())
            .invoke_async(&mut conn)
            .await?;
        let Some(id) = id else { return Ok(None) };
        let id: JobId = id.parse().map_err(|_| QueueError::Corrupt(format!("bad job id on queue: {id:?}")))?;
        match self.get(&id).await? {
            Some(record) => Ok(Some(Claimed { record })),
            None => Ok(None),
        }
    }

    /// Renews `worker`'s lease and records `fields` (progress). `false` means
    /// the job is no longer this worker's (cancelled or reassigned): stop.
    pub async fn heartbeat(&self, id: &JobId, worker: &str, fields: &[(&str, String)]) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.heartbeat.key(self.keys.job(id));
        inv.key(self.keys.leases())
            .arg(id.to_string())
            .arg(worker)
            .arg(now_ms() + self.config.lease.as_millis() as u64);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let ok: i64 = inv.invoke_async(&mut conn).await?;
        Ok(ok == 1)
    }

    /// Marks the job completed with its manifest. `false` when it was no longer this worker's.
    pub async fn complete(&self, id: &JobId, worker: &str, manifest: &Manifest) -> Result<bool, QueueError> {
        let manifest = serde_json::to_string(manifest).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        self.finish(id, worker, "completed", &[("manifest", manifest)]).await
    }

    /// Marks the job failed with the outcome that says why.
    pub async fn fail(&self, id: &JobId, worker: &str, outcome: &OperationOutcome) -> Result<bool, QueueError> {
        let outcome = serde_json::to_string(outcome).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        self.finish(id, worker, "failed", &[("error", outcome)]).await
    }

    async fn finish(
        &self,
        id: &JobId,
        worker: &str,
        status: &str,
        fields: &[(&str, String)],
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.finish.key(self.keys.job(id));
        inv.key(self.keys.leases())
            .arg(id.to_string())
            .arg(worker)
            .arg(status)
            .arg(self.config.record_ttl.as_secs())
            .arg("finished_at")
            .arg(now_ms());
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let ok: i64 = inv.invoke_async(&mut conn).await?;
        Ok(ok == 1)
    }

    /// Returns jobs with expired leases to the queue (or fails them when out of
    /// attempts). Safe to run from every worker at once.
    pub async fn reap_expired_leases(&self) -> Result<u64, QueueError> {
        let outcome = OperationOutcome::error(
            IssueCode::Exception,
            format!("Export abandoned after {} attempts", self.config.max_attempts),
        );
        let mut conn = self.conn().await?;
        let n: u64 = SCRIPTS
            .reap
            .key(self.keys.leases())
            .key(self.keys.queue())
            .arg(self.keys.job_prefix())
            .arg(now_ms())
            .arg(self.config.max_attempts)
            .arg(self.config.record_ttl.as_secs())
            .arg(serde_json::to_string(&outcome).map_err(|e| QueueError::Corrupt(e.to_string()))?)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Number of jobs waiting.
    pub async fn queue_len(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.llen(self.keys.queue()).await?)
    }

    /// Remaining TTL of a job record in seconds (-2 when absent, -1 when it has none).
    pub async fn record_ttl(&self, id: &JobId) -> Result<i64, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.ttl(self.keys.job(id)).await?)
    }

    /// Whether Redis answers, for readiness probes.
    pub async fn health_check(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
