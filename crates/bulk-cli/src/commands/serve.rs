//! `fhir-bulk serve`: the API and N workers in one process, on any backends.

use std::process::ExitCode;

use anyhow::Context;
use bulk_api::{AppState, Application};
use bulk_core::settings::Settings;
use bulk_queue::QueueConfig;
use bulk_worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Worker tasks to run beside the API.
    #[arg(long, default_value_t = 2)]
    pub workers: u16,
}

/// A running all-in-one service: the API's port and a handle to stop it.
pub(crate) struct Running {
    /// Port the API listens on.
    pub port: u16,
    /// Resolves when the API and every worker have stopped.
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Opens the backends once, then starts the API and `workers` workers sharing them.
pub(crate) async fn start(settings: &Settings, workers: u16, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let queue = bulk_queue::open(&settings.queue, QueueConfig::from_settings(&settings.worker))
        .await
        .context("opening the job queue")?;
    let resources = bulk_resources::open(&settings.resources).await.context("opening the resource store")?;
    let content = bulk_content::open(&settings.content).await.context("opening the content store")?;
    let state = AppState::new(settings, queue.clone(), content.clone(), resources.clone())?;
    let app = Application::build(&settings.server.listen, state)
        .with_context(|| format!("binding {}", settings.server.listen))?;
    let port = app.port();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let worker =
            Worker::new(queue.clone(), resources.clone(), content.clone(), WorkerConfig::from_settings(settings));
        let stop = shutdown.clone();
        tasks.spawn(async move {
            worker.run(stop).await;
            Ok(())
        });
    }
    let api_stop = shutdown.clone();
    tasks.spawn(async move { app.run_until_stopped(api_stop).await.context("API server") });
    let done = tokio::spawn(async move {
        while let Some(r) = tasks.join_next().await {
            r.context("task panicked")??;
        }
        Ok(())
    });
    Ok(Running { port, done })
}

/// Cancels `token` on SIGTERM or SIGINT.
pub(crate) fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        bulk_core::shutdown::signal().await;
        token.cancel();
    });
}

/// Runs until SIGTERM/SIGINT.
pub(crate) async fn run(args: ServeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let running = start(settings, args.workers, shutdown).await?;
    tracing::info!(port = running.port, workers = args.workers, "fhir-bulk serving");
    running.done.await??;
    Ok(ExitCode::SUCCESS)
}
