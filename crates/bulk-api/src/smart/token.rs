//! `POST /auth/token`: the `client_credentials` grant with a JWT client
//! assertion. Logs name the client and the outcome, never the assertion, the
//! token or a key.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::assertion::{self, Rejection};
use super::oauth::{OAuthCode, OAuthError};
use super::scopes;
use crate::AppState;

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const fn err(code: OAuthCode, description: &'static str) -> OAuthError {
    OAuthError::new(code, description)
}

/// Issues an access token to a registered client.
pub(crate) async fn issue_token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form_encoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(err(OAuthCode::InvalidRequest, "the body must be application/x-www-form-urlencoded"));
    }
    let form = parse_form(&body)?;
    let param = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    match param("grant_type") {
        None => return Err(err(OAuthCode::InvalidRequest, "grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => return Err(err(OAuthCode::UnsupportedGrantType, "grant_type must be client_credentials")),
    }
    if param("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err(err(OAuthCode::InvalidRequest, "client_assertion_type must be jwt-bearer (RFC 7523)"));
    }
    let assertion = param("client_assertion").ok_or(err(OAuthCode::InvalidRequest, "client_assertion is required"))?;
    let requested = param("scope").ok_or(err(OAuthCode::InvalidScope, "scope is required"))?;
    let smart =
        state.smart.as_ref().ok_or(err(OAuthCode::InvalidClient, "this server has no registered backend clients"))?;

    let now = jsonwebtoken::get_current_timestamp();
    let reject = |r: Rejection| {
        tracing::warn!(oauth.reason = r.reason(), "client assertion refused");
        OAuthError::new(OAuthCode::InvalidClient, r.description())
    };
    let verified =
        assertion::verify(assertion, &smart.registry, &smart.token_url, smart.leeway, now).await.map_err(reject)?;
    let client = verified.client;
    if param("client_id").is_some_and(|id| id != client.id) {
        tracing::warn!(client.id = %client.id, "client_id parameter differs from the assertion's");
        return Err(err(OAuthCode::InvalidClient, "client_id does not match the assertion"));
    }
    // Remembered until the assertion expires (plus leeway): after that, it is refused as expired anyway.
    let ttl = verified.exp.saturating_sub(now) + smart.leeway + 1;
    let first =
        state.queue.remember_once(&format!("smart-jti\0{}\0{}", client.id, verified.jti), ttl).await.map_err(|e| {
            tracing::error!(client.id = %client.id, error = %e, "jti replay check failed");
            err(OAuthCode::ServerError, "temporarily unable to check the assertion; retry later")
        })?;
    if !first {
        tracing::warn!(client.id = %client.id, oauth.reason = Rejection::Replayed.reason(), "client assertion refused");
        return Err(OAuthError::new(OAuthCode::InvalidClient, Rejection::Replayed.description()));
    }

    let granted = scopes::grant(requested, &client.allowed);
    if granted.is_empty() {
        tracing::warn!(client.id = %client.id, "no requested scope can be granted");
        return Err(err(OAuthCode::InvalidScope, "none of the requested scopes can be granted to this client"));
    }
    let scope = scopes::to_scope_string(&granted);
    let token = smart.issued.issue(&client.id, &scope, now).map_err(|e| {
        tracing::error!(client.id = %client.id, error = %e, "signing an access token failed");
        err(OAuthCode::ServerError, "could not issue a token")
    })?;
    tracing::info!(client.id = %client.id, oauth.scope = %scope, "access token issued");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": smart.issued.ttl_secs(),
            "scope": scope,
        })))
}

/// The form's parameters; a repeated one is an error (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut form = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if form.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(err(OAuthCode::InvalidRequest, "a parameter is repeated"));
        }
    }
    Ok(form)
}
