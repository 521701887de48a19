//! One export job, from claim to manifest.

use std::sync::Arc;

use bulk_core::metrics::metrics;
use bulk_core::{JobId, Manifest, OutputFile, ResourceType};
use bulk_queue::{JobRecord, Progress};
use bulk_resources::ResourceQuery;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::scope::Scope;
use crate::shape::Shaper;
use crate::{JobError, Worker};

impl Worker {
    /// Runs one claimed job to its end: completed, failed, or (when the lease
    /// is lost) abandoned to whoever holds it now.
    pub(crate) async fn process(&self, record: JobRecord) {
        let span = tracing::info_span!("export", job.id = %record.id, job.attempt = record.attempts, user.id = %record.owner, worker.id = %self.id);
        async {
            let lost = CancellationToken::new();
            // Aborted on drop too: a dropped export must not keep its lease alive.
            let _heartbeat = AbortOnDrop(self.spawn_heartbeat(record.id, lost.clone()));
            let _running = RunningGauge::start();
            let started = std::time::Instant::now();
            let result = self.export(&record, &lost).await;
            match result {
                Ok(manifest) => match self.queue.complete(&record.id, &self.id, &manifest, &cids_of(&manifest)).await {
                    Ok(true) => {
                        let m = metrics();
                        m.export_duration.observe(started.elapsed().as_secs_f64());
                        m.jobs_finished.with_label_values(&["completed"]).inc();
                        tracing::info!(
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            files = manifest.output.len(),
                            resources = manifest.output.iter().map(|f| f.count).sum::<u64>(),
                            "export completed"
                        );
                    }
                    Ok(false) => {
                        tracing::info!("export finished after it was cancelled; discarding its files");
                        self.unpin_all(&manifest.output).await;
                    }
                    Err(e) => tracing::error!(error = %e, "could not record the manifest; the lease will expire and the job re-run"),
                },
                Err(JobError::LostLease) => {
                    tracing::info!("job cancelled or reassigned; stopped");
                    self.discard_if_cancelled(&record).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, retryable = e.is_retryable(), "export failed");
                    match self.queue.fail(&record.id, &self.id, &e.to_outcome()).await {
                        Ok(true) => metrics().jobs_finished.with_label_values(&["failed"]).inc(),
                        Ok(false) => {}
                        Err(qe) => tracing::error!(error = %qe, "could not record the failure; the lease will expire and the job re-run"),
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Renews the lease every `heartbeat_interval`; cancels `lost` when the
    /// job is no longer ours.
    fn spawn_heartbeat(&self, id: JobId, lost: CancellationToken) -> tokio::task::JoinHandle<()> {
        let queue = Arc::clone(&self.queue);
        let worker = self.id.clone();
        let every = self.config.heartbeat_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match queue.heartbeat(&id, &worker, &Progress::default()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                }
            }
        })
    }

    async fn export(&self, record: &JobRecord, lost: &CancellationToken) -> Result<Manifest, JobError> {
        let request = &record.request;
        let resumed = record.transaction_time.as_deref().filter(|_| !record.checkpoint.is_empty());
        let until = match resumed.map(|t| OffsetDateTime::parse(t, &Rfc3339)) {
            // A re-run after a crash: same transaction time, completed files kept.
            Some(Ok(t)) => t,
            _ => {
                let now = self
                    .retrying("reading the store's clock", || async {
                        self.resources
                            .now()
                            .await
                            .map_err(|source| JobError::Resources { resource_type: "any".into(), source })
                    })
                    .await?;
                // Millisecond precision, the same the manifest shows, so "modified after
                // transactionTime" means the same thing to the client and to the query.
                truncate_to_ms(now)
            }
        };
        let mut output: Vec<OutputFile> = if resumed.is_some() { record.checkpoint.clone() } else { Vec::new() };
        if !output.is_empty() {
            tracing::info!(files = output.len(), "resuming after the files an earlier attempt completed");
        }
        let transaction_time = fhir_instant(until);
        let Scope { patients, mut problems } = self.scope(request).await?;
        problems.splice(0..0, request.ignored.iter().cloned());
        // `_until` narrows the window; it never reaches past the transaction time.
        let read_until = request.until.map_or(until, |u| u.min(until));
        let mut types = request.types.clone();
        if !request.include_associated.is_empty() && !types.contains(&ResourceType::PROVENANCE) {
            types.push(ResourceType::PROVENANCE);
        }
        let queries: Vec<(ResourceType, ResourceQuery)> = types
            .iter()
            .map(|t| {
                let q = ResourceQuery {
                    resource_type: t.as_str().to_owned(),
                    patients: patients.clone(),
                    since: request.since,
                    until: read_until,
                };
                (*t, q)
            })
            .collect();

        let mut counts = Vec::with_capacity(queries.len());
        for (_, q) in &queries {
            let n = self
                .retrying("counting resources", || async {
                    self.resources
                        .count(q)
                        .await
                        .map_err(|source| JobError::Resources { resource_type: q.resource_type.clone(), source })
                })
                .await?;
            counts.push(n);
        }
        let total: u64 = counts.iter().sum();
        let done = |t: &str, output: &[OutputFile]| output.iter().any(|f| f.resource_type == t);
        // Progress counts the resources read (filters may write fewer).
        let mut processed: u64 =
            queries.iter().zip(&counts).filter(|((_, q), _)| done(&q.resource_type, &output)).map(|(_, n)| n).sum();
        let started = Progress {
            transaction_time: Some(transaction_time.clone()),
            total: Some(total),
            processed: Some(processed),
            checkpoint: None,
        };
        self.progress(record.id, &started).await?;

        for ((t, q), count) in queries.iter().zip(counts) {
            if count == 0 || done(&q.resource_type, &output) {
                continue;
            }
            let only = match self.latest_provenance_only(request, *t, q).await {
                Ok(only) => only,
                Err(e) => return Err(self.abandoned(e, &output).await),
            };
            let shaper = Shaper::new(request, *t, only);
            let base = processed;
            let files = self.retrying("exporting a file", || self.export_type(record.id, q, &shaper, lost, base)).await;
            match files {
                Ok(files) => {
                    processed = base + count;
                    output.extend(files);
                    // Checkpoint: a re-run after a crash keeps this type's files.
                    let checkpoint = serde_json::to_string(&output).unwrap_or_default();
                    self.progress(record.id, &Progress { checkpoint: Some(checkpoint), ..Default::default() }).await?;
                }
                Err(e) => return Err(self.abandoned(e, &output).await),
            }
        }
        let deleted = match request.since {
            Some(_) => {
                let qs: Vec<ResourceQuery> = queries.iter().map(|(_, q)| q.clone()).collect();
                match self.retrying("listing deleted resources", || self.deleted_files(record.id, &qs, lost)).await {
                    Ok(files) => files,
                    Err(e) => return Err(self.abandoned(e, &output).await),
                }
            }
            None => Vec::new(),
        };
        let error = match self.retrying("writing the error file", || self.error_files(&problems)).await {
            Ok(files) => files,
            Err(e) => {
                self.unpin_all(&deleted).await;
                return Err(self.abandoned(e, &output).await);
            }
        };
        Ok(Manifest {
            transaction_time,
            request: request.request_url.clone(),
            requires_access_token: true,
            output,
            error,
            deleted,
        })
    }

    /// Gives up on the files written so far (unless the job went to another
    /// worker, which keeps them) and passes the error on.
    async fn abandoned(&self, e: JobError, output: &[OutputFile]) -> JobError {
        if !matches!(e, JobError::LostLease) {
            self.unpin_all(output).await;
        }
        e
    }

    /// Runs `step` again after a transient failure, with exponential backoff
    /// and jitter, up to the configured number of retries.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut step: F) -> Result<T, JobError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, JobError>>,
    {
        let policy = self.config.retry;
        let mut retry = 0;
        loop {
            match step().await {
                Err(e) if e.is_retryable() && retry < policy.max_retries => {
                    retry += 1;
                    let delay = policy.delay(retry);
                    tracing::warn!(error = %e, retry, delay_ms = delay.as_millis() as u64, "{what} failed; retrying");
                    metrics().job_retries.inc();
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Records progress (renewing the lease); `LostLease` when the job was cancelled or reassigned.
    pub(crate) async fn progress(&self, id: JobId, progress: &Progress) -> Result<(), JobError> {
        if self.queue.heartbeat(&id, &self.id, progress).await? {
            Ok(())
        } else {
            Err(JobError::LostLease)
        }
    }

    /// A job stopped by a cancel gives up the files it had completed (its
    /// checkpoint): they become due for unpinning.
    async fn discard_if_cancelled(&self, record: &JobRecord) {
        let Ok(Some(now)) = self.queue.get(&record.id).await else { return };
        if now.status == bulk_core::JobStatus::Cancelled {
            let cids: Vec<String> = now.checkpoint.iter().filter_map(OutputFile::cid).map(str::to_owned).collect();
            if let Err(e) = self.queue.discard_files(&record.id, &cids).await {
                tracing::warn!(error = %e, "could not discard a cancelled job's files");
            }
        }
    }

    pub(crate) async fn unpin_all(&self, files: &[OutputFile]) {
        for f in files {
            let Some(cid) = f.cid().and_then(|c| c.parse().ok()) else { continue };
            if let Err(e) = self.content.unpin(&cid).await {
                tracing::warn!(error = %e, cid = %cid, "could not unpin a discarded file");
            }
        }
    }
}

fn truncate_to_ms(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000).unwrap_or(t)
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts a running export in `jobs_running` for as long as it lives.
struct RunningGauge;

impl RunningGauge {
    fn start() -> Self {
        metrics().jobs_running.inc();
        RunningGauge
    }
}

impl Drop for RunningGauge {
    fn drop(&mut self) {
        metrics().jobs_running.dec();
    }
}

/// The CIDs of a manifest's files: `output`, `error` and `deleted` alike, so
/// every file it lists is indexed (served by `/ipfs/{cid}`) and kept pinned.
fn cids_of(m: &Manifest) -> Vec<String> {
    m.files().filter_map(OutputFile::cid).map(str::to_owned).collect()
}

/// A FHIR `instant` in UTC (RFC 3339).
fn fhir_instant(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
