//! Export files: `GET /fhir/r4/$export-file/{id}/{cid}` (one job's file) and
//! `GET /ipfs/{cid}` (gateway-style path), both only to the job's owner or an admin.

use actix_web::{web, HttpResponse};
use bulk_content::Cid;
use bulk_core::JobStatus;
use bulk_queue::JobRecord;
use futures_util::TryStreamExt;

use super::status::owned_job;
use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// One file of one job.
pub(crate) async fn download(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, cid) = path.into_inner();
    let record = owned_job(&state, &who, &id).await?;
    let cid: Cid = cid.parse().map_err(|_| ApiError::FileNotFound)?;
    if !lists_file(&record, &cid) {
        return Err(ApiError::FileNotFound);
    }
    stream(&state, &cid).await
}

/// A file by CID alone, as an IPFS gateway would serve it, but only to the
/// owner (or an admin) of a live job whose manifest lists it.
pub(crate) async fn gateway(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cid: Cid = cid.parse().map_err(|_| ApiError::FileNotFound)?;
    let mut listed_elsewhere = false;
    for id in state.queue.jobs_with_file(cid.as_str()).await? {
        let Some(record) = state.queue.get(&id).await? else { continue };
        if !lists_file(&record, &cid) {
            continue;
        }
        if who.may_access(&record.owner) {
            return stream(&state, &cid).await;
        }
        listed_elsewhere = true;
    }
    if listed_elsewhere {
        tracing::warn!(user.id = %who.subject, "access to another user's file refused");
        Err(ApiError::Forbidden)
    } else {
        Err(ApiError::FileNotFound)
    }
}

/// The job is completed (not cancelled or expired) and its manifest lists `cid`.
fn lists_file(record: &JobRecord, cid: &Cid) -> bool {
    record.status == JobStatus::Completed
        && record.manifest.as_ref().is_some_and(|m| m.output.iter().any(|f| f.url == cid.ipfs_url()))
}

/// Streams the file from the content store; never loads it whole.
async fn stream(state: &AppState, cid: &Cid) -> Result<HttpResponse, ApiError> {
    let stream = state.content.get(cid).await.map_err(|e| {
        if e.is_not_found() {
            ApiError::FileNotFound
        } else {
            ApiError::Unavailable(Box::new(e))
        }
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/fhir+ndjson")
        .streaming(stream.map_err(|e| std::io::Error::other(e.to_string()))))
}
