//! The access tokens the token endpoint issues: HS256 JWTs signed with
//! `auth.token_signing_secret` (shared by every API replica), `iss` = the
//! public base URL, `aud` = the FHIR base, `sub` = the client id, and the
//! granted `scope`. The verifier recognises them by their `iss`.

use bulk_core::Principal;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{ApiError, AuthConfigError};

/// HS256 secrets shorter than this are refused (RFC 7518 §3.2).
const MIN_SECRET: usize = 32;

/// Signs and verifies issued tokens.
pub(crate) struct IssuedTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
    ttl_secs: u64,
    leeway: u64,
}

#[derive(Serialize, Deserialize)]
struct IssuedClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    scope: String,
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

impl IssuedTokens {
    /// Tokens of the service at `public_base_url`, living `ttl_secs`.
    pub(crate) fn new(
        secret: &SecretString,
        public_base_url: &str,
        ttl_secs: u64,
        leeway: u64,
    ) -> Result<Self, AuthConfigError> {
        let secret = secret.expose_secret().as_bytes();
        if secret.len() < MIN_SECRET {
            return Err(AuthConfigError::new(format!("auth.token_signing_secret must be at least {MIN_SECRET} bytes")));
        }
        Ok(IssuedTokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: public_base_url.to_owned(),
            audience: format!("{public_base_url}/fhir/r4"),
            ttl_secs,
            leeway,
        })
    }

    /// Lifetime of a new token, seconds (`expires_in`).
    pub(crate) fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A token for `client_id` carrying `scope`.
    pub(crate) fn issue(&self, client_id: &str, scope: &str, now: u64) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = IssuedClaims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            aud: self.audience.clone(),
            exp: now + self.ttl_secs,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scope.to_owned(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Whether `token` claims to be one of ours (unverified; `verify` decides).
    pub(crate) fn claims_to_be_ours(&self, token: &str) -> bool {
        decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256)
            && jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
                .is_ok_and(|c| c.iss.as_deref() == Some(self.issuer.as_str()))
    }

    /// Verifies one of our tokens: a system-level (admin) principal limited
    /// to the types its scopes grant.
    pub(crate) fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.leeway = self.leeway;
        let claims = decode::<IssuedClaims>(token, &self.decoding, &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::Unauthorized("Bearer token expired"),
                _ => ApiError::Unauthorized("Invalid bearer token"),
            })?
            .claims;
        let mut principal = Principal::admin(claims.sub);
        principal.granted_types = super::scopes::exportable_types(&claims.scope);
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use bulk_core::ResourceType;

    use super::*;

    fn tokens() -> IssuedTokens {
        IssuedTokens::new(&SecretString::from("0123456789abcdef0123456789abcdef"), "https://b.example", 300, 0)
            .expect("valid")
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn an_issued_token_verifies_as_a_system_principal_limited_to_its_scopes() {
        let t = tokens();
        let token = t.issue("client-a", "system/Patient.read system/Consent.rs", now()).expect("signs");
        assert!(t.claims_to_be_ours(&token));
        let p = t.verify(&token).expect("valid");
        assert_eq!(p.subject, "client-a");
        assert_eq!(p.role, bulk_core::Role::Admin);
        assert_eq!(p.granted_types, Some(vec![ResourceType::CONSENT, ResourceType::PATIENT]));
        let all = t.verify(&t.issue("client-a", "system/*.read", now()).expect("signs")).expect("valid");
        assert_eq!(all.granted_types, None);
        let none = t.verify(&t.issue("client-a", "system/*.write", now()).expect("signs")).expect("valid");
        assert!(!none.may_read(ResourceType::PATIENT));
    }

    #[test]
    fn an_expired_or_foreign_token_is_refused() {
        let t = tokens();
        assert!(t.verify(&t.issue("c", "system/*.read", now() - 1000).expect("signs")).is_err());
        let other =
            IssuedTokens::new(&SecretString::from("another-secret-another-secret-xx"), "https://b.example", 300, 0)
                .expect("valid");
        let forged = other.issue("c", "system/*.read", now()).expect("signs");
        assert!(t.claims_to_be_ours(&forged), "same iss: routed to us");
        assert!(t.verify(&forged).is_err(), "but the signature is not ours");
    }

    #[test]
    fn a_short_signing_secret_is_refused() {
        assert!(IssuedTokens::new(&SecretString::from("short"), "https://b", 300, 0).is_err());
    }
}
