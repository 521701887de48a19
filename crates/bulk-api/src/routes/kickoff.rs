//! Kick-off: GET or POST `/fhir/r4/$export`, `/fhir/r4/Patient/$export` and
//! `/fhir/r4/Group/{id}/$export`.
//!
//! GET parameters come from the query string, POST parameters from a FHIR
//! `Parameters` body (plus any in the query string); both go through
//! [`ExportRequest::parse`], so the rules are the same. Nothing is enqueued
//! unless the whole request is valid and, at group level, the group exists.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use bulk_core::{ExportLevel, ExportRequest, Handling, JobId, ParseOptions};
use bulk_queue::Enqueued;
use futures_util::StreamExt;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// Longest query string we parse; `_type` lists of every type fit many times over.
const MAX_QUERY_LEN: usize = 16 * 1024;

/// Largest POST body we read: room for thousands of `patient` references.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// System-level export (admins only).
pub(crate) async fn system(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, body, state, who, ExportLevel::System).await
}

/// Patient-level export: all patients for an admin, their own compartment for a patient.
pub(crate) async fn patient(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, body, state, who, ExportLevel::Patient).await
}

/// Group-level export: the compartments of a stored Group's member patients (admins only).
pub(crate) async fn group(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    kick_off(req, body, state, who, ExportLevel::Group(id.into_inner())).await
}

async fn kick_off(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    level: ExportLevel,
) -> Result<HttpResponse, ApiError> {
    let accept = req.headers().get_all(header::ACCEPT).map(|v| v.to_str().unwrap_or("\u{0}"));
    if !bulk_core::accepts_fhir_json(accept) {
        return Err(ApiError::Invalid("The Accept header must allow application/fhir+json".into()));
    }
    // `Prefer: respond-async` is what the IG asks clients to send, but the
    // usage document's curl flow omits it and the IG lets a server treat a
    // missing header as if it were there; so it is not required. Only the
    // `handling` preference changes what we do.
    let prefer = req.headers().get_all("prefer").filter_map(|v| v.to_str().ok());
    let lenient = bulk_core::parse_prefer(prefer).handling == Handling::Lenient;

    let query = req.query_string();
    if query.len() > MAX_QUERY_LEN {
        return Err(ApiError::Invalid("Query string too long".into()));
    }
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let body = if req.method() == Method::POST { read_parameters(&req, body).await? } else { Vec::new() };
    // The manifest's `request`: for a POST, the URL alone (body parameters are not in it).
    let request_url = format!(
        "{}{}",
        state.public_base_url,
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_else(|| req.path())
    );
    let opts = ParseOptions { exportable: &state.exportable, lenient, now: time::OffsetDateTime::now_utc() };
    let request = ExportRequest::parse(level, &query, &body, &who, request_url, &opts)?;
    if let ExportLevel::Group(id) = &request.level {
        ensure_group_exists(&state, id).await?;
    }

    let key = idempotency_key(&req)?;
    // The queue refuses a new job when the client has too many queued or running,
    // in the same step as the Idempotency-Key check: a retry still gets its job.
    let max_active = state.throttle.max_active_exports();
    let id = match state.queue.enqueue_within(JobId::new(), &who.subject, &request, key, max_active).await? {
        Enqueued::New(id) => {
            bulk_core::metrics::metrics().jobs_enqueued.inc();
            tracing::info!(
                job.id = %id, user.id = %who.subject, types = ?request.types, ignored = request.ignored.len(),
                "export enqueued"
            );
            id
        }
        Enqueued::Existing(id) => {
            tracing::info!(job.id = %id, user.id = %who.subject, "kick-off retried with its Idempotency-Key");
            id
        }
        Enqueued::KeyReused(_) => {
            return Err(ApiError::Unprocessable("This Idempotency-Key was used for a different export request".into()))
        }
        Enqueued::AtLimit => return Err(state.throttle.too_many_exports(&who)),
    };
    Ok(HttpResponse::Accepted().insert_header((header::CONTENT_LOCATION, state.status_url(&id))).finish())
}

/// Reads and flattens a POST body: a FHIR `Parameters` resource of at most
/// [`MAX_BODY_BYTES`]. An empty body means no parameters.
async fn read_parameters(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<(String, String)>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::Invalid("The request body could not be read".into()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(format!("The request body exceeds {MAX_BODY_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media != "application/fhir+json" && media != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            "A kick-off body must be a FHIR Parameters resource sent as application/fhir+json".into(),
        ));
    }
    Ok(bulk_core::parse_parameters(&body)?)
}

/// A Group export needs a stored, not deleted, Group; checked before anything is enqueued.
async fn ensure_group_exists(state: &AppState, id: &str) -> Result<(), ApiError> {
    if !bulk_core::is_fhir_id(id) {
        return Err(ApiError::GroupNotFound);
    }
    match state.resources.get("Group", id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::GroupNotFound),
    }
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
