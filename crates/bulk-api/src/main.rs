//! `bulk-api`: the HTTP API. Settings from defaults, `BULK_CONFIG` and `BULK__*`.

use anyhow::Context;
use bulk_api::{AppState, Application};
use bulk_core::settings::Settings;
use bulk_queue::QueueConfig;
use tokio_util::sync::CancellationToken;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    bulk_core::telemetry::init(&settings.telemetry.format);
    let queue = bulk_queue::open(&settings.queue, QueueConfig::from_settings(&settings.worker)).await?;
    let content = bulk_content::open(&settings.content).await?;
    let resources = bulk_resources::open(&settings.resources).await?;
    let state = AppState::new(&settings, queue, content, resources)?;
    let app = Application::build(&settings.server.listen, state).context("binding the API listener")?;
    tracing::info!(port = app.port(), public_base_url = %settings.server.public_base_url, "bulk-api listening");
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        bulk_core::shutdown::signal().await;
        trigger.cancel();
    });
    app.run_until_stopped(shutdown).await?;
    Ok(())
}
