//! Operator endpoints under `/admin`, for admin tokens only: list, show,
//! cancel, dead letters, re-queue.

use actix_web::{web, HttpResponse};
use bulk_core::{JobId, JobStatus, Principal, Role};
use bulk_queue::{JobFilter, JobRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// Most jobs one listing returns.
const MAX_LIMIT: usize = 1000;

fn admin_only(who: &Principal) -> Result<(), ApiError> {
    if who.role == Role::Admin {
        Ok(())
    } else {
        tracing::warn!(user.id = %who.subject, "non-admin refused on /admin");
        Err(ApiError::Forbidden)
    }
}

/// `?status=&owner=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    owner: Option<String>,
    limit: Option<usize>,
}

/// `GET /admin/jobs`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&who)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::Invalid("status must be queued, in_progress, completed, failed or cancelled".into())
        })?),
    };
    let filter = JobFilter { status, owner: q.owner.clone() };
    listing(&state, &filter, q.limit.unwrap_or(100).clamp(1, MAX_LIMIT)).await
}

/// `{"jobs": [summary, …]}` for the jobs matching `filter`, newest first.
async fn listing(state: &AppState, filter: &JobFilter, limit: usize) -> Result<HttpResponse, ApiError> {
    let jobs = state.queue.list(filter, limit).await?;
    Ok(HttpResponse::Ok().json(json!({"jobs": jobs.iter().map(JobRecord::summary).collect::<Vec<_>>()})))
}

/// `GET /admin/dead-letter`: failed jobs, newest first.
pub(crate) async fn dead_letter(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    admin_only(&who)?;
    listing(&state, &JobFilter { status: Some(JobStatus::Failed), owner: None }, MAX_LIMIT).await
}

async fn job(state: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::JobNotFound)?;
    state.queue.get(&id).await?.ok_or(ApiError::JobNotFound)
}

/// `GET /admin/jobs/{id}`: the whole record, cancelled ones included.
pub(crate) async fn show(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&who)?;
    let r = job(&state, &id).await?;
    let mut body = r.summary();
    body["manifest"] = serde_json::to_value(&r.manifest).unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(body))
}

/// `DELETE /admin/jobs/{id}`: cancel any job.
pub(crate) async fn cancel(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&who)?;
    let r = job(&state, &id).await?;
    super::status::cancel_job(&state, &r, &who).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /admin/jobs/{id}/requeue`: run a failed job again.
pub(crate) async fn requeue(
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&who)?;
    let r = job(&state, &id).await?;
    if !state.queue.requeue(&r.id).await? {
        return Err(ApiError::Conflict("Only a failed job can be re-queued".into()));
    }
    bulk_core::metrics::metrics().job_retries.inc();
    tracing::info!(job.id = %r.id, user.id = %who.subject, "failed job re-queued by an operator");
    Ok(HttpResponse::Accepted().json(job(&state, &id).await?.summary()))
}
