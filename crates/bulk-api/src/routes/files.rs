//! Export files: `GET /fhir/r4/$export-file/{id}/{cid}` (one job's file) and
//! `GET /ipfs/{cid}` (gateway-style path), both only to the job's owner or an admin.

use actix_web::{web, HttpResponse};
use bulk_content::Cid;
use bulk_core::{JobStatus, OutputFile};
use bulk_queue::JobRecord;
use std::sync::Arc;

use bulk_queue::JobQueue;
use futures_util::{StreamExt, TryStreamExt};

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
    let item = listed_file(&record, &cid).ok_or(ApiError::FileNotFound)?;
    stream(&state, &cid, item).await
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
        let Some(item) = listed_file(&record, &cid) else { continue };
        if who.may_access(&record.owner) {
            return stream(&state, &cid, item).await;
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

/// The output item for `cid`, when the job is completed (not cancelled or
/// expired) and its manifest lists it.
fn listed_file<'a>(record: &'a JobRecord, cid: &Cid) -> Option<&'a OutputFile> {
    if record.status != JobStatus::Completed {
        return None;
    }
    record.manifest.as_ref()?.output.iter().find(|f| f.url == cid.ipfs_url())
}

/// Streams the file from the content store; never loads it whole. While the
/// download is in flight the file is counted as being read, so expiry does
/// not unpin it mid-stream.
async fn stream(state: &AppState, cid: &Cid, item: &OutputFile) -> Result<HttpResponse, ApiError> {
    let key = bulk_content::output_key(item).map_err(|e| ApiError::Internal(Box::new(e)))?;
    state.queue.reading(cid.as_str(), true).await?;
    let guard = ReadGuard { queue: Arc::clone(&state.queue), cid: cid.to_string() };
    let stream = match state.content.get(cid).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Err(ApiError::FileNotFound),
        Err(e) => return Err(ApiError::Unavailable(Box::new(e))),
    };
    // Encrypted files are decrypted on the way out; a chunk that fails
    // authentication ends the response with an error, never a clean end.
    let stream = match key {
        Some(key) => bulk_content::decrypt_stream(stream, key),
        None => stream,
    };
    let body = stream.map_err(|e| std::io::Error::other(e.to_string())).map(move |chunk| {
        let _held = &guard;
        chunk
    });
    Ok(HttpResponse::Ok().content_type("application/fhir+ndjson").streaming(body))
}

/// Ends the "being read" mark when the response body is dropped (finished,
/// failed or abandoned by the client).
struct ReadGuard {
    queue: Arc<dyn JobQueue>,
    cid: String,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let (queue, cid) = (Arc::clone(&self.queue), std::mem::take(&mut self.cid));
        tokio::spawn(async move {
            if let Err(e) = queue.reading(&cid, false).await {
                tracing::warn!(error = %e, "could not end a download mark; it expires by itself");
            }
        });
    }
}
