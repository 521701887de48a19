//! The worker loop: claim, export, repeat; with a lease heartbeat per job.

use std::sync::Arc;
use std::time::Duration;

use bulk_content::ContentStore;
use bulk_core::metrics::metrics;
use bulk_core::settings::Settings;
use bulk_queue::JobQueue;
use bulk_resources::ResourceStore;
use tokio_util::sync::CancellationToken;

/// How a worker paces itself.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Resources per page; progress is written and cancellation checked once a page.
    pub page_size: u32,
    /// Wait between polls of an empty queue.
    pub poll_interval: Duration,
    /// How often the lease is renewed: a third of the lease, so two missed
    /// renewals still leave the job with this worker.
    pub heartbeat_interval: Duration,
    /// After shutdown is asked, how long a running export may go on before
    /// the job is handed back to the queue.
    pub drain: Duration,
    /// Transient-failure retry policy.
    pub retry: Backoff,
    /// Encrypt files before they reach the content store.
    pub encrypt_files: bool,
    /// Where output files are cut.
    pub files: crate::FileLimits,
}

/// Exponential backoff with full jitter, capped.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Retries before giving up.
    pub max_retries: u32,
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): uniform in
    /// `[0, min(cap, base * 2^(attempt-1))]`, so workers that failed together
    /// do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.cap);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

impl WorkerConfig {
    /// From the `[worker]` and `[export]` settings.
    pub fn from_settings(settings: &Settings) -> Self {
        let s = &settings.worker;
        WorkerConfig {
            page_size: s.page_size,
            poll_interval: Duration::from_millis(s.poll_interval_ms.max(1)),
            heartbeat_interval: Duration::from_millis(s.lease_secs * 1000 / 3),
            drain: Duration::from_secs(s.drain_secs),
            retry: Backoff {
                max_retries: s.retry_max,
                base: Duration::from_millis(s.retry_base_ms),
                cap: Duration::from_millis(s.retry_cap_ms.max(s.retry_base_ms)),
            },
            encrypt_files: s.encrypt_files,
            files: crate::FileLimits {
                max_resources: settings.export.max_file_resources,
                max_bytes: settings.export.max_file_bytes,
            },
        }
    }
}

/// One worker: many may run against one queue, in one process or many.
pub struct Worker {
    pub(crate) id: String,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) resources: Arc<dyn ResourceStore>,
    pub(crate) content: Arc<dyn ContentStore>,
    pub(crate) config: WorkerConfig,
}

impl Worker {
    /// A worker with a fresh, unique id.
    pub fn new(
        queue: Arc<dyn JobQueue>,
        resources: Arc<dyn ResourceStore>,
        content: Arc<dyn ContentStore>,
        config: WorkerConfig,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        let id = format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Worker { id, queue, resources, content, config }
    }

    /// This worker's id, as recorded in the jobs it holds.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Processes jobs until `shutdown` is cancelled. Then it claims nothing
    /// more, and gives a running export `drain` to finish before handing the
    /// job back to the queue.
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!(worker.id = %self.id, "worker started");
        while !shutdown.is_cancelled() {
            match self.step(Some(&shutdown)).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "job queue unavailable; will retry"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!(worker.id = %self.id, "worker stopped");
    }

    /// Processes jobs until none is queued; returns how many it processed.
    pub async fn run_until_empty(&self) -> Result<u32, bulk_queue::QueueError> {
        let mut n = 0;
        while self.step(None).await? {
            n += 1;
        }
        Ok(n)
    }

    /// Reaps expired leases, then claims and processes one job. `false` when
    /// there was none.
    async fn step(&self, shutdown: Option<&CancellationToken>) -> Result<bool, bulk_queue::QueueError> {
        let reaped = self.queue.reap_expired_leases().await?;
        if reaped.requeued + reaped.failed > 0 {
            tracing::warn!(requeued = reaped.requeued, failed = reaped.failed, "worker leases expired");
            let m = metrics();
            m.lease_expiries.inc_by(reaped.requeued + reaped.failed);
            m.job_retries.inc_by(reaped.requeued);
            m.jobs_finished.with_label_values(&["failed"]).inc_by(reaped.failed);
        }
        self.reap_files().await;
        let Some(record) = self.queue.claim(&self.id).await? else {
            return Ok(false);
        };
        let id = record.id;
        let Some(shutdown) = shutdown else {
            self.process(record).await;
            return Ok(true);
        };
        // Boxed so that it can really be dropped before the job is handed back.
        let mut job = Box::pin(self.process(record));
        let deadline = async {
            shutdown.cancelled().await;
            tracing::info!(job.id = %id, drain_secs = self.config.drain.as_secs(), "shutting down: draining the running export");
            tokio::time::sleep(self.config.drain).await;
        };
        tokio::select! {
            _ = &mut job => {}
            _ = deadline => {
                // Dropping the export aborts its upload (nothing is pinned) and its heartbeat.
                drop(job);
                match self.queue.release(&id, &self.id).await {
                    Ok(true) => tracing::warn!(job.id = %id, "drain deadline passed: job handed back to the queue"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, job.id = %id, "could not hand the job back; its lease will expire"),
                }
            }
        }
        Ok(true)
    }
}

impl Worker {
    /// Unpins export files whose jobs expired or were cancelled, so the
    /// content store's garbage collection can reclaim them. Failures are
    /// retried by a later pass (a picked file is held for a minute).
    pub(crate) async fn reap_files(&self) {
        let due = match self.queue.due_files(100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not list expired files");
                return;
            }
        };
        for cid in due {
            let Ok(parsed) = cid.parse::<bulk_content::Cid>() else {
                let _ = self.queue.forget_file(&cid).await;
                continue;
            };
            match self.content.unpin(&parsed).await {
                Ok(()) => {
                    tracing::info!(cid = %cid, "expired export file unpinned");
                    if let Err(e) = self.queue.forget_file(&cid).await {
                        tracing::warn!(error = %e, cid = %cid, "unpinned, but could not stop tracking it");
                    }
                }
                Err(e) => tracing::warn!(error = %e, cid = %cid, "could not unpin an expired file; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_grow_exponentially_up_to_the_cap_and_are_jittered() {
        let b = Backoff { max_retries: 5, base: Duration::from_millis(100), cap: Duration::from_millis(1000) };
        for attempt in 1..=8 {
            let ceiling = Duration::from_millis((100u64 << (attempt - 1)).min(1000));
            let delays: Vec<Duration> = (0..50).map(|_| b.delay(attempt)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}: {delays:?}");
            assert!(delays.iter().any(|d| *d != delays[0]), "no jitter at attempt {attempt}");
        }
    }
}
