//! Checking a client's `private_key_jwt` assertion (SMART Backend Services,
//! RFC 7523): who signed it, with which key and algorithm, for whom, until when.
//! Replay of its `jti` is checked by the caller, which holds the queue.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::PublicKeyUse;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::clients::{Client, ClientRegistry};

/// Longest assertion we parse; real ones are a few kB.
const MAX_ASSERTION_LEN: usize = 16 * 1024;
/// SMART: `exp` at most five minutes in the future.
pub(crate) const MAX_LIFETIME_SECS: u64 = 300;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// SMART requires RS384 and ES384; RS256 and ES256 are accepted too (common
/// client libraries default to them). HMAC (no shared secret exists), `none`,
/// PS* and EdDSA are not.
pub(crate) const ALGORITHMS: [Algorithm; 4] = [Algorithm::RS384, Algorithm::ES384, Algorithm::RS256, Algorithm::ES256];

/// Why an assertion was refused. Each is `invalid_client` to the client;
/// the reason names go to the log (never the assertion itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    Malformed,
    UnsupportedAlgorithm,
    MissingKid,
    UnknownClient,
    UntrustedJku,
    UnknownKid,
    JwksUnavailable,
    KeyMismatch,
    BadSignature,
    Expired,
    ExpiresTooLate,
    WrongAudience,
    IssuerNotSubject,
    MissingJti,
    Replayed,
}

impl Rejection {
    /// A short name for logs and metrics.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::UnsupportedAlgorithm => "unsupported_alg",
            Rejection::MissingKid => "missing_kid",
            Rejection::UnknownClient => "unknown_client",
            Rejection::UntrustedJku => "untrusted_jku",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::JwksUnavailable => "jwks_unavailable",
            Rejection::KeyMismatch => "key_mismatch",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::ExpiresTooLate => "exp_too_far",
            Rejection::WrongAudience => "wrong_aud",
            Rejection::IssuerNotSubject => "iss_not_sub",
            Rejection::MissingJti => "missing_jti",
            Rejection::Replayed => "replayed_jti",
        }
    }

    /// What the client developer is told.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Rejection::Malformed => "client_assertion is not a well-formed JWT with iss, sub, aud, exp and jti",
            Rejection::UnsupportedAlgorithm => {
                "client_assertion header must name a supported alg: RS384 or ES384 (or RS256, ES256)"
            }
            Rejection::MissingKid => "client_assertion header must carry the kid of the signing key",
            Rejection::UnknownClient => "unknown client",
            Rejection::UntrustedJku => "jku does not match the JWKS URL registered for the client",
            Rejection::UnknownKid => "no registered key of the client has this kid",
            Rejection::JwksUnavailable => "the client's JWKS could not be fetched",
            Rejection::KeyMismatch => "the key with this kid is not a signing key for this alg",
            Rejection::BadSignature => "client_assertion signature does not verify",
            Rejection::Expired => "client_assertion has expired",
            Rejection::ExpiresTooLate => "client_assertion exp must be at most 5 minutes in the future",
            Rejection::WrongAudience => "client_assertion aud must be this token endpoint's URL",
            Rejection::IssuerNotSubject => "client_assertion iss and sub must both be the client_id",
            Rejection::MissingJti => "client_assertion must carry a jti",
            Rejection::Replayed => "client_assertion jti has already been used",
        }
    }
}

/// The claims we read before the signature is checked (to find the client).
#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

/// The verified claims.
#[derive(Deserialize)]
struct AssertionClaims {
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
}

/// A verified assertion.
pub(crate) struct Verified<'a> {
    /// The client it authenticates.
    pub client: &'a Client,
    /// Its one-time id, still to be checked for replay.
    pub jti: String,
    /// Its expiry (seconds since the epoch): how long the `jti` must be remembered.
    pub exp: u64,
}

/// Verifies `assertion` for a token endpoint at `token_url`.
pub(crate) async fn verify<'a>(
    assertion: &str,
    registry: &'a ClientRegistry,
    token_url: &str,
    leeway: u64,
    now: u64,
) -> Result<Verified<'a>, Rejection> {
    if assertion.is_empty() || assertion.len() > MAX_ASSERTION_LEN {
        return Err(Rejection::Malformed);
    }
    let header = decode_header(assertion).map_err(|e| match e.kind() {
        // An `alg` outside jsonwebtoken's list (`none`, …) fails to parse.
        ErrorKind::Json(_) => Rejection::UnsupportedAlgorithm,
        _ => Rejection::Malformed,
    })?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(Rejection::UnsupportedAlgorithm);
    }
    let kid = header.kid.as_deref().ok_or(Rejection::MissingKid)?;
    let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(assertion)
        .map_err(|_| Rejection::Malformed)?
        .iss
        .ok_or(Rejection::Malformed)?;
    let client = registry.get(&iss).ok_or(Rejection::UnknownClient)?;
    // SMART: a `jku` must be the registered JWKS URL; keys come only from the registration.
    if header.jku.as_deref().is_some_and(|jku| Some(jku) != client.jwks_url()) {
        return Err(Rejection::UntrustedJku);
    }
    let jwk = client.key(kid).await?;
    if jwk.common.key_algorithm.is_some_and(|a| a.to_string().parse::<Algorithm>().ok() != Some(header.alg))
        || jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(Rejection::KeyMismatch);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Rejection::KeyMismatch)?;
    if key.family() != header.alg.family() {
        return Err(Rejection::KeyMismatch);
    }
    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[&client.id]);
    validation.sub = Some(client.id.clone());
    validation.set_audience(&[token_url]);
    validation.leeway = leeway;
    validation.validate_nbf = true;
    let claims = decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => Rejection::BadSignature,
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => Rejection::IssuerNotSubject,
            ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
                Rejection::KeyMismatch
            }
            _ => Rejection::Malformed,
        })?
        .claims;
    if claims.exp > now + MAX_LIFETIME_SECS + leeway {
        return Err(Rejection::ExpiresTooLate);
    }
    let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN).ok_or(Rejection::MissingJti)?;
    Ok(Verified { client, jti, exp: claims.exp })
}

#[cfg(test)]
mod tests;
