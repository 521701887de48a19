//! The production queue: Redis lists and hashes, one Lua script per transition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bulk_core::{ExportRequest, IssueCode, JobId, Manifest, OperationOutcome};
use deadpool_redis::{Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};

use crate::queue::now_ms;
use crate::scripts::SCRIPTS;
use crate::{Enqueued, JobFilter, JobQueue, JobRecord, Keys, Progress, QueueConfig, QueueError, Reaped};

/// How long the shared connection is trusted without a PING. The pool pings
/// on every checkout, which doubled the round trips of every status poll; a
/// multiplexed connection is shared instead and checked at most this often,
/// so a Redis restart is noticed within this long.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The shared multiplexed connection and when it last answered.
#[derive(Default)]
struct Shared {
    conn: Option<MultiplexedConnection>,
    checked: Option<Instant>,
}

/// The queue in Redis; cheap to clone. Connections come from a deadpool-redis
/// pool; one multiplexed connection, which pipelines concurrent commands, is
/// taken from it and shared until it stops answering.
#[derive(Clone)]
pub struct RedisQueue {
    pool: Pool,
    shared: Arc<Mutex<Shared>>,
    keys: Keys,
    config: QueueConfig,
}

impl RedisQueue {
    /// Builds the pool. Connects lazily: Redis need not be up yet.
    pub fn connect(
        url: &SecretString,
        key_prefix: &str,
        pool_size: usize,
        config: QueueConfig,
    ) -> Result<Self, QueueError> {
        let mut cfg = deadpool_redis::Config::from_url(url.expose_secret());
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: pool_size.max(1),
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_secs(5)),
                create: Some(Duration::from_secs(3)),
                recycle: Some(Duration::from_secs(3)),
            },
            ..Default::default()
        });
        let pool = cfg.create_pool(Some(Runtime::Tokio1)).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Ok(RedisQueue { pool, shared: Arc::default(), keys: Keys::new(key_prefix), config })
    }

    /// The key names this queue uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn conn(&self) -> Result<MultiplexedConnection, QueueError> {
        let (cached, fresh) = {
            let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            (s.conn.clone(), s.checked.is_some_and(|t| t.elapsed() < CHECK_EVERY))
        };
        if let Some(mut conn) = cached {
            if fresh {
                return Ok(conn);
            }
            if redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok() {
                self.shared.lock().unwrap_or_else(|p| p.into_inner()).checked = Some(Instant::now());
                return Ok(conn);
            }
        }
        // None yet, or it stopped answering: a new one (the pool checks it).
        let conn = deadpool_redis::Connection::take(self.pool.get().await?);
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        *s = Shared { conn: Some(conn.clone()), checked: Some(Instant::now()) };
        Ok(conn)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, QueueError> {
    serde_json::to_string(v).map_err(|e| QueueError::Corrupt(e.to_string()))
}

#[async_trait]
impl JobQueue for RedisQueue {
    fn config(&self) -> &QueueConfig {
        &self.config
    }

    async fn enqueue_within(
        &self,
        id: JobId,
        owner: &str,
        request: &ExportRequest,
        idempotency_key: Option<&str>,
        max_active: u64,
    ) -> Result<Enqueued, QueueError> {
        let request = to_json(request)?;
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.enqueue.key(self.keys.job(&id));
        inv.key(self.keys.queue()).key(self.keys.jobs()).key(self.keys.leases());
        if let Some(key) = idempotency_key {
            inv.key(self.keys.idempotency(owner, key));
        }
        inv.arg(id.to_string())
            .arg(self.config.active_ttl.as_secs())
            .arg(now_ms())
            .arg(self.keys.job_prefix())
            .arg(request)
            .arg(max_active)
            .arg("owner")
            .arg(owner)
            .arg("created_at")
            .arg(now_ms());
        let (outcome, job): (String, String) = inv.invoke_async(&mut conn).await?;
        if outcome == "limit" {
            return Ok(Enqueued::AtLimit);
        }
        let job: JobId = job.parse().map_err(|_| QueueError::Corrupt(format!("bad job id {job:?}")))?;
        match outcome.as_str() {
            "new" => Ok(Enqueued::New(job)),
            "existing" => Ok(Enqueued::Existing(job)),
            "mismatch" => Ok(Enqueued::KeyReused(job)),
            _ => Err(QueueError::Corrupt(format!("job {id} already exists"))),
        }
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, QueueError> {
        let mut conn = self.conn().await?;
        let h: HashMap<String, String> = conn.hgetall(self.keys.job(id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        JobRecord::from_fields(*id, h).map(Some)
    }

    async fn cancel(&self, id: &JobId) -> Result<bool, QueueError> {
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

    async fn claim(&self, worker: &str) -> Result<Option<JobRecord>, QueueError> {
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
        self.get(&id).await
    }

    async fn heartbeat(&self, id: &JobId, worker: &str, progress: &Progress) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.heartbeat.key(self.keys.job(id));
        inv.key(self.keys.leases())
            .arg(id.to_string())
            .arg(worker)
            .arg(now_ms() + self.config.lease.as_millis() as u64);
        if let Some(t) = &progress.transaction_time {
            inv.arg("transaction_time").arg(t);
        }
        if let Some(n) = progress.total {
            inv.arg("total").arg(n);
        }
        if let Some(n) = progress.processed {
            inv.arg("processed").arg(n);
        }
        if let Some(c) = &progress.checkpoint {
            inv.arg("checkpoint").arg(c);
        }
        let ok: i64 = inv.invoke_async(&mut conn).await?;
        Ok(ok == 1)
    }

    async fn complete(
        &self,
        id: &JobId,
        worker: &str,
        manifest: &Manifest,
        cids: &[String],
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.complete.key(self.keys.job(id));
        inv.key(self.keys.leases()).key(self.keys.content());
        for cid in cids {
            inv.key(self.keys.file(cid));
        }
        inv.arg(id.to_string()).arg(worker).arg(self.config.record_ttl.as_secs()).arg(to_json(manifest)?).arg(now_ms());
        for cid in cids {
            inv.arg(cid);
        }
        let ok: i64 = inv.invoke_async(&mut conn).await?;
        Ok(ok == 1)
    }

    async fn fail(&self, id: &JobId, worker: &str, outcome: &OperationOutcome) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let ok: i64 = SCRIPTS
            .finish
            .key(self.keys.job(id))
            .key(self.keys.leases())
            .key(self.keys.dead())
            .arg(id.to_string())
            .arg(worker)
            .arg("failed")
            .arg(self.config.record_ttl.as_secs())
            .arg(now_ms())
            .arg("finished_at")
            .arg(now_ms())
            .arg("error")
            .arg(to_json(outcome)?)
            .invoke_async(&mut conn)
            .await?;
        Ok(ok == 1)
    }

    async fn reap_expired_leases(&self) -> Result<Reaped, QueueError> {
        let outcome = OperationOutcome::error(
            IssueCode::Exception,
            format!("Export abandoned after {} attempts", self.config.max_attempts),
        );
        let mut conn = self.conn().await?;
        let now = now_ms();
        let horizon = now.saturating_sub((self.config.active_ttl + self.config.record_ttl).as_millis() as u64);
        let (requeued, failed): (u64, u64) = SCRIPTS
            .reap
            .key(self.keys.leases())
            .key(self.keys.queue())
            .key(self.keys.dead())
            .key(self.keys.jobs())
            .arg(self.keys.job_prefix())
            .arg(now)
            .arg(self.config.max_attempts)
            .arg(self.config.record_ttl.as_secs())
            .arg(to_json(&outcome)?)
            .arg(horizon)
            .invoke_async(&mut conn)
            .await?;
        Ok(Reaped { requeued, failed })
    }

    async fn release(&self, id: &JobId, worker: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let ok: i64 = SCRIPTS
            .release
            .key(self.keys.job(id))
            .key(self.keys.leases())
            .key(self.keys.queue())
            .arg(id.to_string())
            .arg(worker)
            .invoke_async(&mut conn)
            .await?;
        Ok(ok == 1)
    }

    async fn list(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobRecord>, QueueError> {
        let index =
            if filter.status == Some(bulk_core::JobStatus::Failed) { self.keys.dead() } else { self.keys.jobs() };
        let mut conn = self.conn().await?;
        // Newest first; scan a bounded window of the index, skipping expired records.
        let ids: Vec<String> = conn.zrevrange(&index, 0, 9999).await?;
        let mut out = Vec::new();
        for chunk in ids.chunks(200) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hgetall(format!("{}{id}", self.keys.job_prefix()));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, h) in chunk.iter().zip(hashes) {
                let Ok(id) = id.parse::<JobId>() else { continue };
                if h.is_empty() {
                    continue;
                }
                let record = JobRecord::from_fields(id, h)?;
                if filter.status.is_some_and(|s| s != record.status)
                    || filter.owner.as_ref().is_some_and(|o| *o != record.owner)
                {
                    continue;
                }
                out.push(record);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    async fn requeue(&self, id: &JobId) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let ok: i64 = SCRIPTS
            .requeue
            .key(self.keys.job(id))
            .key(self.keys.queue())
            .key(self.keys.dead())
            .arg(id.to_string())
            .arg(self.config.active_ttl.as_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(ok == 1)
    }

    async fn track_files(&self, cids: &[String], until_ms: u64) -> Result<(), QueueError> {
        if cids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.content()).arg("GT");
        for cid in cids {
            cmd.arg(until_ms).arg(cid);
        }
        let _: i64 = cmd.query_async(&mut conn).await?;
        // GT never adds a member that is absent; add those with NX.
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.content()).arg("NX");
        for cid in cids {
            cmd.arg(until_ms).arg(cid);
        }
        let _: i64 = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    async fn discard_files(&self, id: &JobId, cids: &[String]) -> Result<(), QueueError> {
        if cids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut inv = SCRIPTS.discard_files.key(self.keys.content());
        for cid in cids {
            inv.key(self.keys.file(cid));
        }
        inv.arg(id.to_string()).arg(now_ms());
        for cid in cids {
            inv.arg(cid);
        }
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn due_files(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn().await?;
        Ok(SCRIPTS
            .due_files
            .key(self.keys.content())
            .arg(now_ms())
            .arg(self.keys.file_prefix())
            .arg(self.keys.reading_prefix())
            .arg(self.keys.job_prefix())
            .arg(60_000)
            .arg(limit)
            .invoke_async(&mut conn)
            .await?)
    }

    async fn forget_file(&self, cid: &str) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: i64 = conn.zrem(self.keys.content(), cid).await?;
        Ok(())
    }

    async fn reading(&self, cid: &str, starts: bool) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let key = self.keys.reading(cid);
        if starts {
            // Expires so that a crashed API cannot pin a file forever.
            let _: () = redis::pipe().incr(&key, 1).expire(&key, 3600).query_async(&mut conn).await?;
        } else {
            let _: i64 = conn.decr(&key, 1).await?;
        }
        Ok(())
    }

    async fn jobs_with_file(&self, cid: &str) -> Result<Vec<JobId>, QueueError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn.smembers(self.keys.file(cid)).await?;
        Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
    }

    async fn queue_len(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.llen(self.keys.queue()).await?)
    }

    async fn record_ttl(&self, id: &JobId) -> Result<Option<u64>, QueueError> {
        let mut conn = self.conn().await?;
        let ttl: i64 = conn.ttl(self.keys.job(id)).await?;
        match ttl {
            -2 => Ok(None),
            -1 => Err(QueueError::Corrupt(format!("job {id} has no TTL"))),
            t => Ok(Some(t as u64)),
        }
    }

    async fn health_check(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    async fn remember_once(&self, key: &str, ttl_secs: u64) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        // SET NX EX: atomic, and the key never lives without its TTL.
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.once(key))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }
}
