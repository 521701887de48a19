//! SMART Backend Services: `POST /auth/token` issues short-lived access
//! tokens to registered clients that authenticate with a signed JWT assertion
//! (`client_credentials` grant, `private_key_jwt`), scoped by SMART `system/`
//! scopes. Tokens from an external identity provider are verified as before
//! (`crate::auth`); the verifier tells ours apart by their `iss`.
//!
//! | file | concern |
//! |---|---|
//! | `clients.rs` | the client registry and JWKS (inline or fetched, cached) |
//! | `assertion.rs` | checking a client assertion, every rejection reason |
//! | `scopes.rs` | scope syntax, requested ∩ allowed, types a scope exports |
//! | `issued.rs` | signing and verifying the tokens we issue |
//! | `token.rs` | the endpoint |
//! | `oauth.rs` | its RFC 6749 error bodies |
//! | `tls.rs` | TLS (ring, platform roots + `auth.jwks_ca_file`) for JWKS fetches |

mod assertion;
mod clients;
pub(crate) mod issued;
mod oauth;
mod scopes;
mod tls;
mod token;

use std::sync::Arc;

use bulk_core::settings::Settings;

pub use oauth::{OAuthCode, OAuthError};
pub use tls::http_client;
pub(crate) use token::issue_token;

use crate::AuthConfigError;
use clients::ClientRegistry;
use issued::IssuedTokens;

/// The token endpoint's configuration: registered clients and the key that
/// signs the tokens it issues. Built once at start-up.
pub struct BackendServices {
    registry: ClientRegistry,
    issued: Arc<IssuedTokens>,
    token_url: String,
    leeway: u64,
}

impl BackendServices {
    /// `None` when no backend client is registered (the endpoint then refuses
    /// every request). Fails when clients are registered without a signing
    /// secret, or when the external issuer would be confused with ours.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Option<Self>, AuthConfigError> {
        let auth = &settings.auth;
        let registry = ClientRegistry::from_settings(auth)?;
        if registry.is_empty() {
            return Ok(None);
        }
        let base = &settings.server.public_base_url;
        let secret = auth.token_signing_secret.as_ref().ok_or_else(|| {
            AuthConfigError::new(
                "auth.token_signing_secret is required when backend clients are registered \
                 (the same value on every API replica)"
                    .into(),
            )
        })?;
        if auth.issuer.as_deref() == Some(base.as_str()) {
            return Err(AuthConfigError::new(
                "auth.issuer must differ from server.public_base_url, the issuer of the tokens /auth/token issues"
                    .into(),
            ));
        }
        let issued = IssuedTokens::new(secret, base, auth.token_ttl_secs, auth.leeway_secs)?;
        Ok(Some(BackendServices {
            registry,
            issued: Arc::new(issued),
            token_url: format!("{base}/auth/token"),
            leeway: auth.leeway_secs,
        }))
    }

    /// The absolute token endpoint URL: what assertions' `aud` must be.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The issued-token verifier, for `crate::auth::Verifier`.
    pub(crate) fn issued(&self) -> Arc<IssuedTokens> {
        Arc::clone(&self.issued)
    }
}

/// Signing algorithms accepted for client assertions, for discovery.
pub(crate) fn signing_algorithms() -> Vec<String> {
    assertion::ALGORITHMS.iter().map(|a| format!("{a:?}")).collect()
}
