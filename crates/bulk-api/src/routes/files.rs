//! `GET /fhir/r4/$export-file/{id}/{cid}`: one file of a job, to its owner.

use actix_web::{web, HttpResponse};
use bulk_content::Cid;
use bulk_core::JobStatus;
use futures_util::TryStreamExt;

use super::status::owned_job;
use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// Streams the file from the content store; never loads it whole.
pub(crate) async fn download(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, cid) = path.into_inner();
    let record = owned_job(&state, &who, &id).await?;
    let cid: Cid = cid.parse().map_err(|_| ApiError::FileNotFound)?;
    let listed = record.status == JobStatus::Completed
        && record.manifest.as_ref().is_some_and(|m| m.output.iter().any(|f| f.url == cid.ipfs_url()));
    if !listed {
        return Err(ApiError::FileNotFound);
    }
    let stream = state.content.get(&cid).await.map_err(|e| {
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
