//! Kick-off: `GET /fhir/r4/$export` and `GET /fhir/r4/Patient/$export`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bulk_core::{ExportLevel, ExportRequest, JobId};

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// Longest query string we parse; `_type` lists of every type fit many times over.
const MAX_QUERY_LEN: usize = 16 * 1024;

/// System-level export (admins only).
pub(crate) async fn system(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, state, who, ExportLevel::System).await
}

/// Patient-level export: all patients for an admin, their own compartment for a patient.
pub(crate) async fn patient(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, state, who, ExportLevel::Patient).await
}

async fn kick_off(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    level: ExportLevel,
) -> Result<HttpResponse, ApiError> {
    let query = req.query_string();
    if query.len() > MAX_QUERY_LEN {
        return Err(ApiError::Invalid("Query string too long".into()));
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let request_url = format!(
        "{}{}",
        state.public_base_url,
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_else(|| req.path())
    );
    let request = ExportRequest::parse(level, &params, &who, request_url)?;
    let id = JobId::new();
    state.queue.enqueue(id, &who.subject, &request).await?;
    bulk_core::metrics::metrics().jobs_enqueued.inc();
    tracing::info!(job.id = %id, user.id = %who.subject, types = ?request.types, "export enqueued");
    Ok(HttpResponse::Accepted().insert_header((header::CONTENT_LOCATION, state.status_url(&id))).finish())
}
