//! `GET` (poll) and `DELETE` (cancel) on `/fhir/r4/$export-status/{id}`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bulk_core::settings::Conformance;
use bulk_core::{IssueCode, JobId, JobStatus, Manifest, OperationOutcome, OutputFile, Principal};
use bulk_queue::JobRecord;
use serde_json::json;

use crate::auth::Authenticated;
use crate::error::FHIR_JSON;
use crate::{estimate, ApiError, AppState};

/// Reads a job the caller may see: unknown, malformed and cancelled ids are
/// all "not found"; someone else's job is "forbidden".
pub(crate) async fn owned_job(state: &AppState, who: &Principal, id: &str) -> Result<JobRecord, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::JobNotFound)?;
    let record = state.queue.get(&id).await?.ok_or(ApiError::JobNotFound)?;
    if !who.may_access(&record.owner) {
        tracing::warn!(job.id = %id, user.id = %who.subject, "access to another user's job refused");
        return Err(ApiError::Forbidden);
    }
    if record.status == JobStatus::Cancelled {
        return Err(ApiError::JobNotFound);
    }
    Ok(record)
}

/// Progress while running, the manifest when complete, the outcome when failed.
pub(crate) async fn poll(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Throttled before the record is read: a runaway poller costs no backend call.
    let job_id: JobId = id.parse().map_err(|_| ApiError::JobNotFound)?;
    state.throttle.check_poll(&job_id, &who)?;
    let record = owned_job(&state, &who, &id).await?;
    match record.status {
        JobStatus::Queued | JobStatus::Running => {
            let progress = record.progress();
            Ok(HttpResponse::Accepted()
                .insert_header((header::RETRY_AFTER, retry_after(&state, &record).await?.to_string()))
                .insert_header((
                    "X-Progress",
                    format!("{progress}% ({} of {} resources)", record.processed, record.total),
                ))
                .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
                .json(json!({
                    "status": record.status.as_str(),
                    "progress": progress,
                    "totalResources": record.total,
                })))
        }
        JobStatus::Completed => {
            let manifest = record.manifest.ok_or_else(|| ApiError::Internal("completed job has no manifest".into()))?;
            let mut res = HttpResponse::Ok();
            res.insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]));
            // When the record, and with it the files, expire.
            if let Some(ttl) = state.queue.record_ttl(&record.id).await? {
                let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(ttl);
                res.insert_header(header::Expires(expires.into()));
            }
            Ok(res.json(served_manifest(&state, &record.id, manifest)))
        }
        JobStatus::Failed => Err(ApiError::JobFailed(record.error.unwrap_or_else(|| {
            bulk_core::OperationOutcome::error(bulk_core::IssueCode::Exception, "Export job failed")
        }))),
        JobStatus::Cancelled => Err(ApiError::JobNotFound),
    }
}

/// Cancels a queued or running job, or discards a finished one.
pub(crate) async fn cancel(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = owned_job(&state, &who, &id).await?;
    cancel_job(&state, &record, &who).await?;
    Ok(match state.conformance {
        Conformance::Usage => HttpResponse::NoContent().finish(),
        // The IG: "202 Accepted ... optionally an OperationOutcome".
        Conformance::IgV2 => HttpResponse::Accepted().content_type(FHIR_JSON).json(OperationOutcome::single(
            "information",
            IssueCode::Informational,
            "Export job cancelled; its status URL and files are gone",
        )),
    })
}

/// Seconds the client should wait before polling a queued or running job again.
async fn retry_after(state: &AppState, record: &JobRecord) -> Result<u64, ApiError> {
    Ok(match record.status {
        JobStatus::Queued => estimate::queued(state.queue.queue_len().await?),
        _ => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            estimate::running(record.processed, record.total, record.started_at.map(|t| now.saturating_sub(t)))
        }
    })
}

/// The manifest as this deployment serves it. The stored one keeps
/// `ipfs://{cid}` URLs; in `ig-v2` mode every file's URL (in `output`,
/// `error` and `deleted`) becomes the absolute file-endpoint URL the IG
/// requires. The CID, size and SHA-256 extensions stay in both modes.
fn served_manifest(state: &AppState, id: &JobId, mut manifest: Manifest) -> Manifest {
    if state.conformance == Conformance::IgV2 {
        for file in manifest.files_mut() {
            if let Some(url) = file.cid().map(|cid| state.file_url(id, cid)) {
                file.url = url;
            }
        }
    }
    manifest
}

/// Cancels (or discards) `record` for `who`, the owner or an admin: the
/// record ends cancelled and its files become due for unpinning.
pub(crate) async fn cancel_job(state: &AppState, record: &JobRecord, who: &Principal) -> Result<(), ApiError> {
    if !state.queue.cancel(&record.id).await? {
        return Err(ApiError::JobNotFound);
    }
    bulk_core::metrics::metrics().jobs_finished.with_label_values(&["cancelled"]).inc();
    discard_files(state, record).await;
    tracing::info!(job.id = %record.id, user.id = %who.subject, "export cancelled");
    Ok(())
}

/// A cancelled or discarded job's files (manifest and checkpoint) become due
/// for unpinning unless another live job lists them. Best effort: files not
/// discarded here are still unpinned when their tracking time runs out.
pub(crate) async fn discard_files(state: &AppState, record: &JobRecord) {
    let files = record.manifest.iter().flat_map(Manifest::files).chain(record.checkpoint.iter());
    let cids: Vec<String> = files.filter_map(OutputFile::cid).map(str::to_owned).collect();
    if let Err(e) = state.queue.discard_files(&record.id, &cids).await {
        tracing::warn!(error = %e, job.id = %record.id, "could not discard a cancelled job's files");
    }
}
