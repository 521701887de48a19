//! Errors of the token endpoint. `POST /auth/token` is an OAuth 2.0 endpoint,
//! not a FHIR one, so its errors are RFC 6749 §5.2 JSON bodies rather than
//! OperationOutcomes; this is their one table (every FHIR error still goes
//! through `crate::error`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// RFC 6749 §5.2 error codes the endpoint answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthCode {
    /// A parameter missing, repeated or malformed, or not form-encoded.
    InvalidRequest,
    /// The client could not be authenticated (every client-assertion failure).
    InvalidClient,
    /// Not `client_credentials`.
    UnsupportedGrantType,
    /// No requested scope can be granted.
    InvalidScope,
    /// The service failed (a backend unreachable); retry later.
    ServerError,
}

/// A refused token request. The description is a fixed text: client input,
/// assertions and keys never appear in it.
#[derive(Debug, thiserror::Error)]
#[error("{description}")]
pub struct OAuthError {
    /// The RFC 6749 code.
    pub code: OAuthCode,
    /// Human-readable detail for the client developer.
    pub description: &'static str,
}

impl OAuthError {
    /// An error with `code` and `description`.
    pub const fn new(code: OAuthCode, description: &'static str) -> Self {
        OAuthError { code, description }
    }

    fn classify(&self) -> (StatusCode, &'static str) {
        match self.code {
            OAuthCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            // RFC 6749 allows 400 or 401; 401 says "authentication failed".
            OAuthCode::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            OAuthCode::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            OAuthCode::InvalidScope => (StatusCode::BAD_REQUEST, "invalid_scope"),
            OAuthCode::ServerError => (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.classify();
        HttpResponse::build(status)
            // RFC 6749 §5.1/§5.2: token responses, errors included, are never cached.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(json!({"error": code, "error_description": self.description}))
    }
}
