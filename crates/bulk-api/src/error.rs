//! The one place errors become HTTP responses: status, headers and an
//! `OperationOutcome` body with `Content-Type: application/fhir+json`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use bulk_core::{IssueCode, OperationOutcome, RequestError};
use bulk_queue::QueueError;
use bulk_resources::ResourceError;

/// FHIR JSON media type of every error body.
pub(crate) const FHIR_JSON: &str = "application/fhir+json";

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed, expired or otherwise unverifiable token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed.
    #[error("Access denied")]
    Forbidden,
    /// No such job (or not any more).
    #[error("Export job not found")]
    JobNotFound,
    /// No such file of a job.
    #[error("Export file not found")]
    FileNotFound,
    /// No such route.
    #[error("Resource not found")]
    RouteNotFound,
    /// A group export named a Group that is not stored (or was deleted).
    #[error("Group not found")]
    GroupNotFound,
    /// A request body in a media type we do not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A request body over the size we read.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Bad parameter value.
    #[error("{0}")]
    Invalid(String),
    /// Unsupported parameter or feature.
    #[error("{0}")]
    NotSupported(String),
    /// The request conflicts with the job's state.
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but refused (an idempotency key reused for another request).
    #[error("{0}")]
    Unprocessable(String),
    /// The client is asking too often or has too many exports running; it
    /// may try again after `retry_after` seconds.
    #[error("{message}")]
    Throttled {
        /// Seconds until a retry may succeed (the `Retry-After` header).
        retry_after: u64,
        /// Which limit was hit.
        message: String,
    },
    /// A `Range` no byte of the file satisfies; `len` is the file's size.
    #[error("Requested range not satisfiable")]
    RangeNotSatisfiable {
        /// The full representation's length (`Content-Range: bytes */len`).
        len: u64,
    },
    /// A backend is unreachable; retry later.
    #[error("Service temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The job failed; its own outcome is the body.
    #[error("Export job failed")]
    JobFailed(OperationOutcome),
    /// Anything else. The cause goes to the log, never to the client.
    #[error("Internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The table: error → (status, issue code).
    fn classify(&self) -> (StatusCode, IssueCode) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, IssueCode::Login),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, IssueCode::Forbidden),
            ApiError::JobNotFound | ApiError::FileNotFound | ApiError::RouteNotFound | ApiError::GroupNotFound => {
                (StatusCode::NOT_FOUND, IssueCode::NotFound)
            }
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, IssueCode::Invalid),
            ApiError::NotSupported(_) => (StatusCode::BAD_REQUEST, IssueCode::NotSupported),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, IssueCode::NotSupported),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, IssueCode::Invalid),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, IssueCode::Conflict),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, IssueCode::Conflict),
            ApiError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, IssueCode::Throttled),
            ApiError::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, IssueCode::Invalid),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, IssueCode::Transient),
            ApiError::JobFailed(_) | ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, IssueCode::Exception),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(m) => ApiError::Invalid(m),
            RequestError::NotSupported(m) => ApiError::NotSupported(m),
            RequestError::Forbidden => ApiError::Forbidden,
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(Box::new(e))
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(Box::new(e))
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.classify();
        match self {
            ApiError::Unavailable(cause) | ApiError::Internal(cause) => {
                tracing::error!(error = %cause, status = status.as_u16(), "request failed");
            }
            _ => {}
        }
        let outcome = match self {
            ApiError::JobFailed(o) => o.clone(),
            other => OperationOutcome::error(code, other.to_string()),
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)));
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="fhir-bulk", error="invalid_token""#));
            }
            ApiError::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::Throttled { retry_after, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::RangeNotSatisfiable { len } => {
                res.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
            }
            _ => {}
        }
        res.body(serde_json::to_vec(&outcome).unwrap_or_default())
    }
}
