//! `Retry-After` while an export is queued or running, sized to the time it
//! probably still needs, so clients poll neither too often nor too late.

/// Never suggest polling sooner than this (seconds).
pub(crate) const MIN_SECS: u64 = 1;
/// Never suggest waiting longer than this: estimates early in a job are rough,
/// and a client should still see progress now and then.
pub(crate) const MAX_SECS: u64 = 60;
/// When there is nothing to estimate from yet (not counted, nothing written).
pub(crate) const DEFAULT_SECS: u64 = 2;

/// A running job: the time it has taken so far, scaled by the work left over
/// the work done (`elapsed × (total − processed) / processed`), clamped to
/// [`MIN_SECS`], [`MAX_SECS`]. `elapsed_ms` is the time since the job was
/// first claimed.
pub(crate) fn running(processed: u64, total: u64, elapsed_ms: Option<u64>) -> u64 {
    let Some(elapsed_ms) = elapsed_ms else { return DEFAULT_SECS };
    if total == 0 || processed == 0 {
        // Still counting, or no page written yet: no rate to go by.
        return DEFAULT_SECS;
    }
    if processed >= total {
        // Only the manifest is left to write.
        return MIN_SECS;
    }
    let left_ms = u128::from(elapsed_ms) * u128::from(total - processed) / u128::from(processed);
    let secs = left_ms.div_ceil(1000);
    u64::try_from(secs).unwrap_or(MAX_SECS).clamp(MIN_SECS, MAX_SECS)
}

/// A queued job: the queue's length is all a poll can learn cheaply (not
/// the job's own place in it), so [`DEFAULT_SECS`] plus one second per other
/// waiting job, at most [`MAX_SECS`].
pub(crate) fn queued(waiting: u64) -> u64 {
    DEFAULT_SECS.saturating_add(waiting.saturating_sub(1)).clamp(MIN_SECS, MAX_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_the_elapsed_time_scaled_by_the_work_left() {
        // A quarter done in 10 s: 30 s to go.
        assert_eq!(running(250, 1000, Some(10_000)), 30);
        // Half done in 3 s: 3 s to go.
        assert_eq!(running(50, 100, Some(3_000)), 3);
        // A fraction of a second is rounded up.
        assert_eq!(running(90, 100, Some(4_500)), 1);
        assert_eq!(running(80, 100, Some(8_400)), 3);
    }

    #[test]
    fn more_work_left_means_a_longer_wait() {
        let waits: Vec<u64> = [900, 500, 200, 100].iter().map(|&done| running(done, 1000, Some(5_000))).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert!(waits[0] < waits[3], "{waits:?}");
    }

    #[test]
    fn the_estimate_is_clamped_to_one_minute_and_one_second() {
        assert_eq!(running(1, 1_000_000, Some(60_000)), MAX_SECS);
        assert_eq!(running(999_999, 1_000_000, Some(1)), MIN_SECS);
        assert_eq!(running(1, u64::MAX, Some(u64::MAX)), MAX_SECS, "no overflow");
        assert_eq!(running(1, 2, Some(0)), MIN_SECS);
    }

    #[test]
    fn without_a_rate_to_go_by_the_default_is_suggested() {
        assert_eq!(running(0, 1000, Some(5_000)), DEFAULT_SECS);
        assert_eq!(running(0, 0, Some(5_000)), DEFAULT_SECS);
        assert_eq!(running(10, 1000, None), DEFAULT_SECS);
        assert_eq!(running(1000, 1000, Some(5_000)), MIN_SECS, "only the manifest is left");
    }

    #[test]
    fn a_queued_job_waits_longer_behind_a_longer_queue() {
        assert_eq!(queued(0), DEFAULT_SECS);
        assert_eq!(queued(1), DEFAULT_SECS);
        assert_eq!(queued(5), DEFAULT_SECS + 4);
        assert_eq!(queued(10_000), MAX_SECS);
    }
}
