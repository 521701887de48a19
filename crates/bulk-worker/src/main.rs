//! `bulk-worker`: processes export jobs until SIGTERM/SIGINT, then drains.

use bulk_core::settings::Settings;
use bulk_queue::QueueConfig;
use bulk_worker::{serve_admin, Backends, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    bulk_core::telemetry::init(&settings.telemetry.format);
    let queue = bulk_queue::open(&settings.queue, QueueConfig::from_settings(&settings.worker)).await?;
    let resources = bulk_resources::open(&settings.resources).await?;
    let content = bulk_content::open(&settings.content).await?;
    let shutdown = CancellationToken::new();
    let admin = if settings.worker.admin_listen.is_empty() {
        None
    } else {
        let backends = Backends { queue: queue.clone(), resources: resources.clone(), content: content.clone() };
        let (port, handle) = serve_admin(&settings.worker.admin_listen, backends, shutdown.clone())?;
        tracing::info!(port, "admin endpoints (/healthz, /readyz, /metrics) listening");
        Some(handle)
    };
    let worker = Worker::new(queue, resources, content, WorkerConfig::from_settings(&settings));
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        bulk_core::shutdown::signal().await;
        trigger.cancel();
    });
    worker.run(shutdown).await;
    if let Some(admin) = admin {
        admin.await??;
    }
    Ok(())
}
