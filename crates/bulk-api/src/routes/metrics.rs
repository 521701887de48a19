//! `GET /metrics`: Prometheus text format.

use actix_web::{web, HttpResponse};
use bulk_core::metrics;

use crate::AppState;

/// Samples the queue length, then renders every metric of this process.
pub(crate) async fn render(state: web::Data<AppState>) -> HttpResponse {
    if let Ok(n) = state.queue.queue_len().await {
        metrics::metrics().queue_length.set(n as i64);
    }
    HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(metrics::render())
}
