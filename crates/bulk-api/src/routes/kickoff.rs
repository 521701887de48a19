//! Kick-off: `GET /fhir/r4/$export` and `GET /fhir/r4/Patient/$export`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bulk_core::{ExportLevel, ExportRequest, JobId};
use bulk_queue::Enqueued;

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
    // Too many exports of this client queued or running: 429 before anything else.
    state.throttle.admit_export(&who, &*state.queue).await?;
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
    let key = idempotency_key(&req)?;
    let id = match state.queue.enqueue(JobId::new(), &who.subject, &request, key).await? {
        Enqueued::New(id) => {
            bulk_core::metrics::metrics().jobs_enqueued.inc();
            tracing::info!(job.id = %id, user.id = %who.subject, types = ?request.types, "export enqueued");
            id
        }
        Enqueued::Existing(id) => {
            tracing::info!(job.id = %id, user.id = %who.subject, "kick-off retried with its Idempotency-Key");
            id
        }
        Enqueued::KeyReused(_) => {
            return Err(ApiError::Unprocessable("This Idempotency-Key was used for a different export request".into()))
        }
    };
    Ok(HttpResponse::Accepted().insert_header((header::CONTENT_LOCATION, state.status_url(&id))).finish())
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::Invalid("Idempotency-Key must be 1 to 255 visible ASCII characters".into()))?;
    Ok(Some(key))
}
