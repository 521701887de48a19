//! Log set-up for the command line.

use tracing_subscriber::EnvFilter;

/// Logs to stderr, `warn` and above unless `RUST_LOG` says otherwise.
///
/// Unlike `bulk_core::telemetry::init` (stdout, `info`), stdout here carries
/// the command's result, e.g. a token captured with `$(fhir-bulk token ...)`.
pub(crate) fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
