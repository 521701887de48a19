//! One export job, from claim to manifest.

use std::sync::Arc;

use bulk_core::metrics::metrics;
use bulk_core::{ExportLevel, JobId, Manifest, OutputFile};
use bulk_queue::{JobRecord, Progress};
use bulk_resources::{PatientFilter, ResourceQuery};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::split::{output_item, Finished, SplitWriter};
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
        let patients = match (&request.patient_scope, &request.level) {
            (Some(p), _) => PatientFilter::Patients(vec![p.clone()]),
            (None, ExportLevel::Patient) => PatientFilter::AnyPatient,
            (None, ExportLevel::System) => PatientFilter::All,
            // Kick-off does not accept Group exports until members are resolved here.
            (None, ExportLevel::Group(_)) => PatientFilter::Patients(Vec::new()),
        };
        let queries: Vec<ResourceQuery> = request
            .types
            .iter()
            .map(|t| ResourceQuery {
                resource_type: t.as_str().to_owned(),
                patients: patients.clone(),
                since: None,
                until,
            })
            .collect();

        let mut counts = Vec::with_capacity(queries.len());
        for q in &queries {
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
        let mut processed: u64 = output.iter().map(|f| f.count).sum();
        let started = Progress {
            transaction_time: Some(transaction_time.clone()),
            total: Some(total),
            processed: Some(processed),
            checkpoint: None,
        };
        self.progress(record.id, &started).await?;

        for (q, count) in queries.iter().zip(counts) {
            if count == 0 || output.iter().any(|f| f.resource_type == q.resource_type) {
                continue;
            }
            let base = processed;
            let files = self.retrying("exporting a file", || self.export_type(record.id, q, lost, base)).await;
            match files {
                Ok(files) => {
                    processed += files.iter().map(|f| f.count).sum::<u64>();
                    output.extend(files);
                    // Checkpoint: a re-run after a crash keeps this file.
                    let checkpoint = serde_json::to_string(&output).unwrap_or_default();
                    self.progress(record.id, &Progress { checkpoint: Some(checkpoint), ..Default::default() }).await?;
                }
                Err(e) => {
                    if !matches!(e, JobError::LostLease) {
                        self.unpin_all(&output).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(Manifest {
            transaction_time,
            request: request.request_url.clone(),
            requires_access_token: true,
            output,
            error: vec![],
            deleted: vec![],
        })
    }

    /// Runs `step` again after a transient failure, with exponential backoff
    /// and jitter, up to the configured number of retries.
    async fn retrying<T, F, Fut>(&self, what: &str, mut step: F) -> Result<T, JobError>
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

    /// Streams one type's resources into as many files as the limits need.
    /// Empty when nothing matched after all (deleted since counting).
    async fn export_type(
        &self,
        id: JobId,
        q: &ResourceQuery,
        lost: &CancellationToken,
        base: u64,
    ) -> Result<Vec<OutputFile>, JobError> {
        let mut processed = base;
        let content_err = |source| JobError::Content { resource_type: q.resource_type.clone(), source };
        let mut files = SplitWriter::new(Arc::clone(&self.content), self.config.encrypt_files, self.config.files);
        let mut after: Option<String> = None;
        loop {
            if lost.is_cancelled() {
                self.unpin_finished(files.abandon()).await;
                return Err(JobError::LostLease);
            }
            let page = match self.resources.page(q, after.as_deref(), self.config.page_size).await {
                Ok(p) => p,
                Err(source) => {
                    self.unpin_finished(files.abandon()).await;
                    return Err(JobError::Resources { resource_type: q.resource_type.clone(), source });
                }
            };
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            let n = page.len() as u64;
            let full = n == u64::from(self.config.page_size);
            let lines: Vec<&str> = page.iter().map(|r| r.json.as_str()).collect();
            if let Err(e) = files.write(&lines).await {
                self.unpin_finished(files.abandon()).await;
                return Err(content_err(e));
            }
            processed += n;
            if let Err(e) = self.progress(id, &Progress { processed: Some(processed), ..Default::default() }).await {
                self.unpin_finished(files.abandon()).await;
                return Err(e);
            }
            if !full {
                break;
            }
        }
        let finished = files.finish().await.map_err(content_err)?;
        self.recorded(&q.resource_type, finished).await
    }

    /// Counts finished files in the metrics, tracks them for expiry and
    /// makes their manifest items.
    async fn recorded(&self, resource_type: &str, finished: Vec<Finished>) -> Result<Vec<OutputFile>, JobError> {
        let cids: Vec<String> = finished.iter().map(|f| f.written.stored.cid.to_string()).collect();
        // Tracked from the moment they are pinned, so even the files of an attempt
        // that dies before they are recorded anywhere are unpinned in the end.
        let until = bulk_queue::now_ms_after(self.queue.config().active_ttl);
        if let Err(e) = self.queue.track_files(&cids, until).await {
            tracing::warn!(error = %e, "could not track new files for expiry");
        }
        let mut items = Vec::with_capacity(finished.len());
        for f in &finished {
            metrics().resources_exported.inc_by(f.written.lines);
            metrics().bytes_exported.inc_by(f.written.plain_bytes);
            items.push(output_item(resource_type, f));
        }
        Ok(items)
    }

    async fn unpin_finished(&self, finished: Vec<Finished>) {
        for f in finished {
            if let Err(e) = self.content.unpin(&f.written.stored.cid).await {
                tracing::warn!(error = %e, "could not unpin an abandoned file");
            }
        }
    }

    /// Records progress (renewing the lease); `LostLease` when the job was cancelled or reassigned.
    async fn progress(&self, id: JobId, progress: &Progress) -> Result<(), JobError> {
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
            let cids: Vec<String> =
                now.checkpoint.iter().filter_map(|f| f.url.strip_prefix("ipfs://")).map(str::to_owned).collect();
            if let Err(e) = self.queue.discard_files(&record.id, &cids).await {
                tracing::warn!(error = %e, "could not discard a cancelled job's files");
            }
        }
    }

    async fn unpin_all(&self, files: &[OutputFile]) {
        for f in files {
            let Some(cid) = f.url.strip_prefix("ipfs://").and_then(|c| c.parse().ok()) else { continue };
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
    m.output
        .iter()
        .chain(&m.error)
        .chain(&m.deleted)
        .filter_map(|f| f.url.strip_prefix("ipfs://"))
        .map(str::to_owned)
        .collect()
}

/// A FHIR `instant` in UTC (RFC 3339).
fn fhir_instant(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
