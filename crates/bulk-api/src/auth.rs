//! Bearer-token verification: which keys, which algorithms, which claims.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use bulk_core::settings::AuthSettings;
use bulk_core::Principal;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::smart::issued::IssuedTokens;
use crate::{ApiError, AppState};

/// Longest token we will try to parse; real ones are far shorter.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// HS256 secrets shorter than this are refused at start-up (RFC 7518 §3.2).
const MIN_HS256_SECRET: usize = 32;

/// The claims we read. `exp` is required and checked by the library.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Who the caller is; owner of the jobs they create.
    pub sub: String,
    /// `admin` or `patient`.
    #[serde(default)]
    pub role: Option<String>,
    /// A patient user's patient id (else `sub` is used).
    #[serde(default)]
    pub patient: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Verifies tokens against the configured keys. Each key is bound to one
/// algorithm family, so a token cannot choose how it is checked (no HS/RS
/// confusion, no `none`).
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    /// Tokens this service issued at `/auth/token` (SMART Backend Services),
    /// told apart from the identity provider's by their `iss`.
    issued: Option<Arc<IssuedTokens>>,
}

/// Configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid auth configuration: {0}")]
pub struct AuthConfigError(String);

impl AuthConfigError {
    pub(crate) fn new(message: String) -> Self {
        AuthConfigError(message)
    }
}

impl Verifier {
    /// Builds the verifier from settings. With no key configured every request is refused.
    pub fn from_settings(s: &AuthSettings) -> Result<Self, AuthConfigError> {
        let mut keys = Vec::new();
        // An empty value (e.g. `BULK__AUTH__HS256_SECRET=`) means "not configured".
        if let Some(secret) = s.hs256_secret.as_ref().filter(|s| !s.expose_secret().is_empty()) {
            let secret = secret.expose_secret().as_bytes();
            if secret.len() < MIN_HS256_SECRET {
                return Err(AuthConfigError(format!("auth.hs256_secret must be at least {MIN_HS256_SECRET} bytes")));
            }
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret)));
        }
        let pem = match (&s.public_key_pem, &s.public_key_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| AuthConfigError(format!("cannot read {}: {e}", path.display())))?,
            ),
            (None, None) => None,
        };
        if let Some(pem) = pem {
            if let Ok(k) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                keys.push((Algorithm::RS256, k));
            } else if let Ok(k) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                keys.push((Algorithm::ES256, k));
            } else {
                return Err(AuthConfigError("public key is neither an RSA nor an EC PEM public key".into()));
            }
        }
        if keys.is_empty() {
            tracing::warn!("no external JWT key configured: only tokens issued at /auth/token are accepted");
        }
        Ok(Verifier {
            keys,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            leeway: s.leeway_secs,
            issued: None,
        })
    }

    /// Also accepts the tokens the token endpoint issues.
    pub(crate) fn with_issued(mut self, issued: Arc<IssuedTokens>) -> Self {
        self.issued = Some(issued);
        self
    }

    /// Verifies `token` and maps its claims to a principal.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::Unauthorized("Invalid bearer token"));
        }
        if let Some(issued) = self.issued.as_ref().filter(|i| i.claims_to_be_ours(token)) {
            return issued.verify(token);
        }
        let header = decode_header(token).map_err(|_| ApiError::Unauthorized("Invalid bearer token"))?;
        let key = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, k)| k)
            .ok_or(ApiError::Unauthorized("Invalid bearer token"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        // A token not yet valid is refused too (the library skips `nbf` by default).
        validation.validate_nbf = true;
        match &self.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                validation.required_spec_claims.insert("iss".into());
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        let data = decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::Unauthorized("Bearer token expired"),
                _ => ApiError::Unauthorized("Invalid bearer token"),
            }
        })?;
        principal_of(data.claims)
    }
}

/// A verified token's claims as a principal; an unknown role is refused.
fn principal_of(c: Claims) -> Result<Principal, ApiError> {
    if c.sub.is_empty() {
        return Err(ApiError::Unauthorized("Invalid bearer token"));
    }
    match c.role.as_deref() {
        Some("admin") => Ok(Principal::admin(c.sub)),
        Some("patient") => {
            let patient = c.patient.unwrap_or_else(|| c.sub.clone());
            Ok(Principal::patient(c.sub, patient))
        }
        _ => Err(ApiError::Forbidden),
    }
}

/// Extractor: the caller, authenticated by their bearer token.
pub(crate) struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(Authenticated))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state =
        req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("Missing bearer token"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Invalid bearer token"))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized("Invalid bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized("Missing bearer token"));
    }
    state.verifier.verify(token.trim())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use secrecy::SecretString;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn verifier(issuer: Option<&str>, audience: Option<&str>) -> Verifier {
        Verifier::from_settings(&AuthSettings {
            hs256_secret: Some(SecretString::from(SECRET)),
            issuer: issuer.map(Into::into),
            audience: audience.map(Into::into),
            ..Default::default()
        })
        .expect("valid settings")
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("signs")
    }

    #[test]
    fn a_patient_token_without_patient_claim_uses_sub() {
        let p = verifier(None, None)
            .verify(&token(serde_json::json!({"sub": "p9", "role": "patient", "exp": now() + 60})))
            .expect("valid");
        assert_eq!(p.patient_id.as_deref(), Some("p9"));
    }

    #[test]
    fn expired_tokens_and_tokens_without_exp_are_refused() {
        let v = verifier(None, None);
        assert!(v.verify(&token(serde_json::json!({"sub": "a", "role": "admin", "exp": now() - 120}))).is_err());
        assert!(v.verify(&token(serde_json::json!({"sub": "a", "role": "admin"}))).is_err());
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let v = verifier(Some("https://idp"), Some("fhir-bulk"));
        let good = serde_json::json!({"sub": "a", "role": "admin", "exp": now() + 60, "iss": "https://idp", "aud": "fhir-bulk"});
        assert!(v.verify(&token(good)).is_ok());
        let wrong_aud =
            serde_json::json!({"sub": "a", "role": "admin", "exp": now() + 60, "iss": "https://idp", "aud": "other"});
        assert!(v.verify(&token(wrong_aud)).is_err());
        let no_iss = serde_json::json!({"sub": "a", "role": "admin", "exp": now() + 60, "aud": "fhir-bulk"});
        assert!(v.verify(&token(no_iss)).is_err());
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let v = verifier(None, None);
        let early = token(serde_json::json!({"sub": "a", "role": "admin", "exp": now() + 600, "nbf": now() + 300}));
        assert!(v.verify(&early).is_err());
        let ok = token(serde_json::json!({"sub": "a", "role": "admin", "exp": now() + 600, "nbf": now() - 5}));
        assert!(v.verify(&ok).is_ok());
    }

    #[test]
    fn an_unknown_role_is_forbidden_not_unauthenticated() {
        let r = verifier(None, None).verify(&token(serde_json::json!({"sub": "a", "role": "root", "exp": now() + 60})));
        assert!(matches!(r, Err(ApiError::Forbidden)));
    }

    #[test]
    fn a_short_shared_secret_is_refused_at_start_up() {
        let s = AuthSettings { hs256_secret: Some(SecretString::from("short")), ..Default::default() };
        assert!(Verifier::from_settings(&s).is_err());
    }
}
