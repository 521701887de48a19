//! The `JobQueue` trait: the one contract of the Redis and embedded queues.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bulk_core::settings::{QueueSettings, WorkerSettings};
use bulk_core::{ExportRequest, JobId, Manifest, OperationOutcome};

use crate::{JobRecord, QueueError, RedisQueue, SqliteQueue};

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
    pub fn from_settings(s: &WorkerSettings) -> Self {
        QueueConfig {
            record_ttl: Duration::from_secs(s.record_ttl_secs),
            active_ttl: Duration::from_secs(s.active_record_ttl_secs),
            lease: Duration::from_secs(s.lease_secs),
            max_attempts: s.max_attempts.max(1),
        }
    }
}

/// Progress a worker reports with a heartbeat; `None` fields are left as they are.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// The export's transaction time, once taken.
    pub transaction_time: Option<String>,
    /// Resources the export will write.
    pub total: Option<u64>,
    /// Resources written so far.
    pub processed: Option<u64>,
    /// The files completed so far (JSON array of manifest output items): a
    /// re-run after a crash resumes after them.
    pub checkpoint: Option<String>,
}

/// Which jobs an operator lists.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub status: Option<bulk_core::JobStatus>,
    /// Only jobs of this owner (`sub`).
    pub owner: Option<String>,
}

/// What `enqueue` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job.
    New(JobId),
    /// The idempotency key already named this job, for the same request.
    Existing(JobId),
    /// The idempotency key already named this job, for another request.
    KeyReused(JobId),
    /// The owner already has the most jobs queued or running it may have; nothing written.
    AtLimit,
}

/// What a reaper pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Jobs whose lease expired and that went back on the queue.
    pub requeued: u64,
    /// Jobs whose lease expired once too often, now failed (dead-lettered).
    pub failed: u64,
}

/// Jobs and their records. Every transition is atomic; a record always has an
/// expiry (the active TTL while queued or running, the record TTL once finished).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// The timing policy.
    fn config(&self) -> &QueueConfig;

    /// Writes a new job record and queues it. With an idempotency key, a
    /// retried kick-off by the same owner gets the job the first one made.
    async fn enqueue(
        &self,
        id: JobId,
        owner: &str,
        request: &ExportRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Enqueued, QueueError> {
        self.enqueue_within(id, owner, request, idempotency_key, 0).await
    }

    /// `enqueue`, unless `owner` already has `max_active` jobs queued or
    /// running (`0`: no limit): then nothing is written and the answer is
    /// `AtLimit`. The limit is checked in the same atomic step as the
    /// idempotency key, after it, so a retried kick-off still gets its job
    /// and two concurrent kick-offs cannot both slip under the limit.
    async fn enqueue_within(
        &self,
        id: JobId,
        owner: &str,
        request: &ExportRequest,
        idempotency_key: Option<&str>,
        max_active: u64,
    ) -> Result<Enqueued, QueueError>;

    /// Reads a job record; `None` when there is none (never existed or expired).
    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, QueueError>;

    /// Cancels a queued or running job or discards a finished one; `false` when
    /// there was nothing to cancel.
    async fn cancel(&self, id: &JobId) -> Result<bool, QueueError>;

    /// Claims the oldest queued job for `worker`, with a fresh lease.
    async fn claim(&self, worker: &str) -> Result<Option<JobRecord>, QueueError>;

    /// Renews `worker`'s lease and records progress. `false` means the job is
    /// no longer this worker's (cancelled or reassigned): stop.
    async fn heartbeat(&self, id: &JobId, worker: &str, progress: &Progress) -> Result<bool, QueueError>;

    /// Marks the job completed with its manifest and indexes its files by CID.
    /// `false` when it was no longer this worker's.
    async fn complete(
        &self,
        id: &JobId,
        worker: &str,
        manifest: &Manifest,
        cids: &[String],
    ) -> Result<bool, QueueError>;

    /// Marks the job failed with the outcome that says why.
    async fn fail(&self, id: &JobId, worker: &str, outcome: &OperationOutcome) -> Result<bool, QueueError>;

    /// Returns jobs with expired leases to the queue (or fails them when out of
    /// attempts). Safe to run from every worker at once.
    async fn reap_expired_leases(&self) -> Result<Reaped, QueueError>;

    /// A worker gives its running job back (on shutdown): queued again at once.
    /// `false` when it was no longer this worker's.
    async fn release(&self, id: &JobId, worker: &str) -> Result<bool, QueueError>;

    /// The most recent jobs matching `filter`, newest first, at most `limit`.
    async fn list(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobRecord>, QueueError>;

    /// Puts a failed (dead-lettered) job back on the queue with fresh attempts.
    /// `false` when the job is not failed.
    async fn requeue(&self, id: &JobId) -> Result<bool, QueueError>;

    /// Records that `cids` were pinned and may be unpinned from `until_ms` on
    /// unless a job still lists them then (an existing later time is kept).
    async fn track_files(&self, cids: &[String], until_ms: u64) -> Result<(), QueueError>;

    /// `id` no longer wants its files (cancelled or discarded): files no other
    /// live job lists become due for unpinning.
    async fn discard_files(&self, id: &JobId, cids: &[String]) -> Result<(), QueueError>;

    /// Files due for unpinning now (at most `limit`), held for the caller for
    /// a minute. Files still listed by a live job or being downloaded are
    /// postponed instead.
    async fn due_files(&self, limit: usize) -> Result<Vec<String>, QueueError>;

    /// The file was unpinned: stop tracking it.
    async fn forget_file(&self, cid: &str) -> Result<(), QueueError>;

    /// A download of `cid` starts (`true`) or ends (`false`); while any is in
    /// flight the file is not unpinned. A crashed API's count expires.
    async fn reading(&self, cid: &str, starts: bool) -> Result<(), QueueError>;

    /// The jobs whose manifest lists the file `cid`.
    async fn jobs_with_file(&self, cid: &str) -> Result<Vec<JobId>, QueueError>;

    /// Number of jobs waiting.
    async fn queue_len(&self) -> Result<u64, QueueError>;

    /// Remaining lifetime of a record in seconds; `None` when there is no record.
    async fn record_ttl(&self, id: &JobId) -> Result<Option<u64>, QueueError>;

    /// Whether the backend answers, for readiness probes.
    async fn health_check(&self) -> Result<(), QueueError>;

    /// Records `key` for `ttl_secs` seconds unless it is already recorded:
    /// `true` the first time, `false` while the first record lives. Kept in
    /// the queue backend so every API replica agrees (a client assertion's
    /// `jti` is accepted once across the deployment). The key is hashed, so
    /// client input never shapes key names.
    async fn remember_once(&self, key: &str, ttl_secs: u64) -> Result<bool, QueueError>;
}

/// Builds the configured queue. Called once at start-up.
pub async fn open(settings: &QueueSettings, config: QueueConfig) -> Result<Arc<dyn JobQueue>, QueueError> {
    Ok(match settings {
        QueueSettings::Redis { url, key_prefix, pool_size } => {
            Arc::new(RedisQueue::connect(url, key_prefix, *pool_size, config)?)
        }
        QueueSettings::Sqlite { path } => Arc::new(SqliteQueue::open(path, config).await?),
    })
}

/// Milliseconds since the epoch `d` from now, the unit `track_files` takes.
pub fn now_ms_after(d: Duration) -> u64 {
    now_ms() + d.as_millis() as u64
}

/// Milliseconds since the epoch, the unit of leases and timestamps in records.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
