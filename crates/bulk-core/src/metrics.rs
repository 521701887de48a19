//! Prometheus metrics of one process, rendered by `/metrics` on the API and
//! on the worker's admin port.
//!
//! Counters are per process; Prometheus sums them across pods. Labels have
//! bounded values only (route patterns, never raw paths or ids).

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Every metric of the service.
pub struct Metrics {
    registry: Registry,
    /// Jobs accepted at kick-off.
    pub jobs_enqueued: IntCounter,
    /// Jobs that ended, by outcome: `completed`, `failed`, `cancelled`.
    pub jobs_finished: IntCounterVec,
    /// Jobs this process's workers are exporting now.
    pub jobs_running: IntGauge,
    /// Jobs waiting on the queue, sampled when `/metrics` is read.
    pub queue_length: IntGauge,
    /// Wall time of completed exports, claim to manifest.
    pub export_duration: Histogram,
    /// Resources written into export files.
    pub resources_exported: IntCounter,
    /// Bytes written into export files.
    pub bytes_exported: IntCounter,
    /// Jobs whose worker lease expired (the worker died or stalled).
    pub lease_expiries: IntCounter,
    /// Jobs put back on the queue to run again (expired lease, operator re-queue).
    pub job_retries: IntCounter,
    /// HTTP requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route pattern and method.
    pub http_duration: HistogramVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("fhir_bulk".into()), None)?;
    let jobs_enqueued = IntCounter::new("jobs_enqueued_total", "Export jobs accepted at kick-off")?;
    let jobs_finished =
        IntCounterVec::new(Opts::new("jobs_finished_total", "Export jobs that ended, by outcome"), &["outcome"])?;
    let jobs_running = IntGauge::new("jobs_running", "Export jobs this process is running")?;
    let queue_length = IntGauge::new("queue_length", "Export jobs waiting on the queue")?;
    let export_duration = Histogram::with_opts(
        HistogramOpts::new("export_duration_seconds", "Wall time of completed exports, claim to manifest")
            .buckets(vec![0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0]),
    )?;
    let resources_exported = IntCounter::new("resources_exported_total", "Resources written into export files")?;
    let bytes_exported = IntCounter::new("bytes_exported_total", "Bytes written into export files")?;
    let lease_expiries = IntCounter::new("lease_expiries_total", "Jobs whose worker lease expired")?;
    let job_retries = IntCounter::new("job_retries_total", "Jobs put back on the queue to run again")?;
    let http_requests = IntCounterVec::new(
        Opts::new("http_requests_total", "HTTP requests by route, method and status"),
        &["route", "method", "status"],
    )?;
    let http_duration = HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route and method")
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
        &["route", "method"],
    )?;
    registry.register(Box::new(jobs_enqueued.clone()))?;
    registry.register(Box::new(jobs_finished.clone()))?;
    registry.register(Box::new(jobs_running.clone()))?;
    registry.register(Box::new(queue_length.clone()))?;
    registry.register(Box::new(export_duration.clone()))?;
    registry.register(Box::new(resources_exported.clone()))?;
    registry.register(Box::new(bytes_exported.clone()))?;
    registry.register(Box::new(lease_expiries.clone()))?;
    registry.register(Box::new(job_retries.clone()))?;
    registry.register(Box::new(http_requests.clone()))?;
    registry.register(Box::new(http_duration.clone()))?;
    Ok(Metrics {
        registry,
        jobs_enqueued,
        jobs_finished,
        jobs_running,
        queue_length,
        export_duration,
        resources_exported,
        bytes_exported,
        lease_expiries,
        job_retries,
        http_requests,
        http_duration,
    })
}

#[allow(clippy::expect_used)]
static METRICS: LazyLock<Metrics> =
    // Names and label sets are constants: a failure here is a programming error caught by every test.
    LazyLock::new(|| build().expect("metric definitions are valid"));

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Content type of `render`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition_with_the_service_prefix() {
        metrics().jobs_finished.with_label_values(&["completed"]).inc();
        let text = render();
        assert!(text.contains("fhir_bulk_jobs_finished_total{outcome=\"completed\"}"), "{text}");
        assert!(text.contains("# TYPE fhir_bulk_export_duration_seconds histogram"));
    }
}
