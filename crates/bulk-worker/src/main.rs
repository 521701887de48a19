//! `bulk-worker`: processes export jobs until SIGTERM/SIGINT.

use bulk_core::settings::Settings;
use bulk_queue::QueueConfig;
use bulk_worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    bulk_core::telemetry::init(&settings.telemetry.format);
    let queue = bulk_queue::open(&settings.queue, QueueConfig::from_settings(&settings.worker)).await?;
    let resources = bulk_resources::open(&settings.resources).await?;
    let content = bulk_content::open(&settings.content).await?;
    let worker = Worker::new(queue, resources, content, WorkerConfig::from_settings(&settings.worker));
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        bulk_core::shutdown::signal().await;
        trigger.cancel();
    });
    worker.run(shutdown).await;
    Ok(())
}
