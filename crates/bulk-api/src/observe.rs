//! Per-request observability: a request id (taken from `X-Request-Id` or made
//! up), a span carrying it, request metrics by route pattern, and one log line.
//! Never logs headers or bodies: they carry tokens and patient data.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use bulk_core::metrics::metrics;
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's request id is kept only if it is short and plain, so it cannot
/// forge log lines or blow up label sets.
fn valid_request_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The methods we label by name; anything else is `OTHER` (bounded labels).
fn method_label(m: &actix_web::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// The middleware.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = method_label(req.method());
    let span = tracing::info_span!("request", request_id = %request_id, http.method = method);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let (status, route) = match &result {
        Ok(res) => (res.status().as_u16(), res.request().match_pattern().unwrap_or_else(|| "unmatched".into())),
        Err(e) => (e.as_response_error().status_code().as_u16(), "unmatched".into()),
    };
    let m = metrics();
    m.http_requests.with_label_values(&[&route, method, &status.to_string()]).inc();
    m.http_duration.with_label_values(&[&route, method]).observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(http.route = %route, http.status = status, elapsed_us = elapsed.as_micros() as u64, "request")
    });
    let mut res = result?;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        assert!(valid_request_id("3f0c2e51-6a1e-4a8e"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id("x\ninjected log line"));
        assert!(!valid_request_id(&"a".repeat(65)));
    }
}
