//! The worker's small admin HTTP port: liveness, readiness and metrics, for
//! Kubernetes probes and Prometheus. Nothing on it touches jobs.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use bulk_content::ContentStore;
use bulk_queue::JobQueue;
use bulk_resources::ResourceStore;
use tokio_util::sync::CancellationToken;

/// What readiness checks.
#[derive(Clone)]
pub struct Backends {
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The resource store.
    pub resources: Arc<dyn ResourceStore>,
    /// The content store.
    pub content: Arc<dyn ContentStore>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listen` until `shutdown`.
/// Returns the bound port.
pub fn serve_admin(
    listen: &str,
    backends: Backends,
    shutdown: CancellationToken,
) -> std::io::Result<(u16, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(listen)?;
    let port = listener.local_addr()?.port();
    let data = web::Data::new(backends);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().body("ok") }))
            .route("/readyz", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    Ok((port, tokio::spawn(server)))
}

/// Ready when the queue, the resource store and the content store all answer.
async fn ready(b: web::Data<Backends>) -> HttpResponse {
    let mut failing = Vec::new();
    if let Err(e) = b.queue.health_check().await {
        tracing::warn!(error = %e, "readiness: queue");
        failing.push("queue");
    }
    if let Err(e) = b.resources.health_check().await {
        tracing::warn!(error = %e, "readiness: resource store");
        failing.push("resources");
    }
    if let Err(e) = b.content.health_check().await {
        tracing::warn!(error = %e, "readiness: content store");
        failing.push("content");
    }
    if failing.is_empty() {
        HttpResponse::Ok().body("ready")
    } else {
        HttpResponse::ServiceUnavailable().body(format!("not ready: {}", failing.join(", ")))
    }
}

async fn metrics(b: web::Data<Backends>) -> HttpResponse {
    if let Ok(n) = b.queue.queue_len().await {
        bulk_core::metrics::metrics().queue_length.set(n as i64);
    }
    HttpResponse::Ok().content_type(bulk_core::metrics::CONTENT_TYPE).body(bulk_core::metrics::render())
}
