//! `429 Too Many Requests`: a client polling one job far too often, and a
//! client with too many exports queued or running at once.
//!
//! Polls are limited per API replica: each process keeps its own token
//! buckets, so behind N replicas a client may poll up to N times as often
//! before every replica refuses. That is enough to stop a runaway client
//! without a shared counter on every poll. The concurrent-export limit is
//! global: it counts the client's jobs in the queue backend.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulk_core::settings::ServerSettings;
use bulk_core::{JobId, Principal};

use crate::ApiError;

/// Most (job, client) pairs whose buckets are remembered. Past it, buckets
/// that are full again (idle clients) are dropped; if every one is in use,
/// new pairs go unthrottled rather than growing memory without bound.
const MAX_TRACKED: usize = 10_000;

/// How long a client over the concurrent-export limit is told to wait: an
/// export takes a while to finish, so asking again sooner is pointless.
const ACTIVE_LIMIT_RETRY_AFTER_SECS: u64 = 30;

/// The limits and the per-process poll buckets.
pub struct Throttle {
    /// Polls allowed in a burst; `0` disables poll throttling.
    burst: u32,
    /// Time to regain one poll.
    refill: Duration,
    /// Most queued + running exports per client; `0` disables the limit.
    max_active: u32,
    /// Buckets by (job, caller's `sub`): one client's polls never use up
    /// another's. A std mutex: held for a few arithmetic steps, never across an await.
    buckets: Mutex<HashMap<(JobId, String), Bucket>>,
}

/// A token bucket: `tokens` polls left as of `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Tokens at `now`, refilled since `at` at one per `refill`, at most `burst`.
    fn level(&self, now: Instant, burst: u32, refill: Duration) -> f64 {
        let regained = now.saturating_duration_since(self.at).as_secs_f64() / refill.as_secs_f64();
        (self.tokens + regained).min(f64::from(burst))
    }
}

impl Throttle {
    /// The limits of the `server` settings.
    pub fn from_settings(s: &ServerSettings) -> Self {
        Throttle {
            burst: s.poll_burst,
            refill: Duration::from_millis(s.poll_refill_ms.max(1)),
            max_active: s.max_active_exports_per_client,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one poll of job `id` by `who` from its bucket, or refuses with
    /// `429` and the seconds until the next poll is allowed.
    pub fn check_poll(&self, id: &JobId, who: &Principal) -> Result<(), ApiError> {
        self.check_poll_at(id, &who.subject, Instant::now())
    }

    fn check_poll_at(&self, id: &JobId, subject: &str, now: Instant) -> Result<(), ApiError> {
        if self.burst == 0 {
            return Ok(());
        }
        let (burst, refill) = (self.burst, self.refill);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (*id, subject.to_owned());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| b.level(now, burst, refill) < f64::from(burst));
            if buckets.len() >= MAX_TRACKED {
                return Ok(());
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: f64::from(burst), at: now });
        let tokens = bucket.level(now, burst, refill);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, at: now };
            return Ok(());
        }
        let wait = (1.0 - tokens) * refill.as_secs_f64();
        Err(ApiError::Throttled {
            retry_after: (wait.ceil() as u64).max(1),
            message: "Too many status requests for this export; wait as long as Retry-After says".into(),
        })
    }

    /// Most exports one client may have queued or running (`0`: no limit),
    /// for [`bulk_queue::JobQueue::enqueue_within`], which checks it atomically.
    pub fn max_active_exports(&self) -> u64 {
        u64::from(self.max_active)
    }

    /// The `429` for a kick-off the queue refused as over the limit.
    pub fn too_many_exports(&self, who: &Principal) -> ApiError {
        tracing::info!(user.id = %who.subject, "kick-off refused: too many concurrent exports");
        ApiError::Throttled {
            retry_after: ACTIVE_LIMIT_RETRY_AFTER_SECS,
            message: format!(
                "Too many concurrent exports: at most {} may be queued or running per client",
                self.max_active
            ),
        }
    }
}
