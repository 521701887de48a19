//! `fhir-bulk jobs …`: operator commands on the job queue, as `/admin` offers
//! over HTTP, talking to the configured queue directly.

use std::process::ExitCode;

use anyhow::Context;
use bulk_core::settings::Settings;
use bulk_core::{JobId, JobStatus};
use bulk_queue::{JobFilter, JobQueue, QueueConfig};

/// Arguments of `jobs`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    action: JobsAction,
}

/// What to do with jobs.
#[derive(Debug, clap::Subcommand)]
enum JobsAction {
    /// List recent jobs, newest first, one JSON object a line.
    List {
        /// queued, in_progress, completed, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only this owner's jobs (token `sub`).
        #[arg(long)]
        owner: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one job, with its manifest.
    Show {
        /// Job id.
        id: String,
    },
    /// Cancel a job (or discard a finished one).
    Cancel {
        /// Job id.
        id: String,
    },
    /// List failed jobs (the dead letters).
    Dead {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put a failed job back on the queue.
    Requeue {
        /// Job id.
        id: String,
    },
}

fn parse_id(id: &str) -> anyhow::Result<JobId> {
    id.parse().map_err(|_| anyhow::anyhow!("not a job id: {id}"))
}

/// Runs the action; exit 0 on success, 1 when the job is not there or not in a state for it.
pub(crate) async fn run(args: JobsArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let queue = bulk_queue::open(&settings.queue, QueueConfig::from_settings(&settings.worker))
        .await
        .context("opening the job queue")?;
    run_on(queue.as_ref(), args.action).await
}

async fn run_on(queue: &dyn JobQueue, action: JobsAction) -> anyhow::Result<ExitCode> {
    match action {
        JobsAction::List { status, owner, limit } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(JobStatus::parse(s).with_context(|| format!("unknown status {s}"))?),
            };
            for r in queue.list(&JobFilter { status, owner }, limit).await? {
                println!("{}", r.summary());
            }
        }
        JobsAction::Dead { limit } => {
            for r in queue.list(&JobFilter { status: Some(JobStatus::Failed), owner: None }, limit).await? {
                println!("{}", r.summary());
            }
        }
        JobsAction::Show { id } => {
            let Some(r) = queue.get(&parse_id(&id)?).await? else {
                eprintln!("no job {id}");
                return Ok(ExitCode::FAILURE);
            };
            let mut v = r.summary();
            v["manifest"] = serde_json::to_value(&r.manifest)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        JobsAction::Cancel { id } => {
            if !queue.cancel(&parse_id(&id)?).await? {
                eprintln!("no job {id} to cancel");
                return Ok(ExitCode::FAILURE);
            }
            println!("cancelled {id}");
        }
        JobsAction::Requeue { id } => {
            if !queue.requeue(&parse_id(&id)?).await? {
                eprintln!("job {id} is not failed; only failed jobs are re-queued");
                return Ok(ExitCode::FAILURE);
            }
            println!("re-queued {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bulk_core::{ExportLevel, ExportRequest, IssueCode, OperationOutcome, ResourceType};
    use bulk_queue::SqliteQueue;

    use super::*;

    #[tokio::test]
    async fn an_operator_requeues_a_failed_job_and_only_a_failed_one() {
        let dir = std::env::temp_dir().join(format!("jobs-cli-{}", uuid_like()));
        let config = QueueConfig {
            record_ttl: Duration::from_secs(60),
            active_ttl: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            max_attempts: 3,
        };
        let q = SqliteQueue::open(&dir.join("q.db"), config).await.expect("open");
        let request = ExportRequest::new(ExportLevel::System, vec![ResourceType::PATIENT], "https://x/fhir/r4/$export");
        let id = JobId::new();
        q.enqueue(id, "ops", &request, None).await.expect("enqueue");
        q.claim("w").await.expect("claim").expect("job");
        let requeue = || JobsAction::Requeue { id: id.to_string() };
        assert_eq!(run_on(&q, requeue()).await.expect("ran"), ExitCode::FAILURE, "a running job was re-queued");
        q.fail(&id, "w", &OperationOutcome::error(IssueCode::Exception, "boom")).await.expect("fail");
        assert_eq!(run_on(&q, requeue()).await.expect("ran"), ExitCode::SUCCESS);
        assert_eq!(q.get(&id).await.expect("get").map(|r| r.status), Some(JobStatus::Queued));
        std::fs::remove_dir_all(dir).ok();
    }

    fn uuid_like() -> String {
        format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect()
    }
}
