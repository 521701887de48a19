//! The `auth` section: bearer tokens from an external identity provider, and
//! the SMART Backend Services clients the service issues tokens to itself.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Bearer-token verification. At least one key must be configured; with none,
/// every request is refused (fail closed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<SecretString>,
    /// PEM public key (RSA for RS256 or EC P-256 for ES256), inline.
    pub public_key_pem: Option<String>,
    /// PEM public key read from this file; used when `public_key_pem` is not set.
    pub public_key_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, in seconds.
    pub leeway_secs: u64,
    /// SMART Backend Services clients that may get tokens at `POST /auth/token`.
    pub clients: Vec<BackendClient>,
    /// A JSON file holding more clients (an array of `clients` entries), e.g. a
    /// mounted Kubernetes secret; read when the API starts.
    pub clients_file: Option<PathBuf>,
    /// HS256 secret (at least 32 bytes) signing the tokens `POST /auth/token`
    /// issues; required when any client is registered, and the same on every
    /// API replica so each accepts the others' tokens.
    pub token_signing_secret: Option<SecretString>,
    /// Lifetime of an issued access token, in seconds (SMART: short-lived).
    pub token_ttl_secs: u64,
    /// A PEM bundle of CA certificates trusted for `https://` JWKS URLs in
    /// addition to the platform's roots (a hospital's private PKI). Read when
    /// the API starts; unreadable or empty is a start-up error.
    pub jwks_ca_file: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            hs256_secret: None,
            public_key_pem: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 0,
            clients: Vec::new(),
            clients_file: None,
            token_signing_secret: None,
            token_ttl_secs: 300,
            jwks_ca_file: None,
        }
    }
}

/// A registered SMART Backend Services client: who it is, how its assertions
/// are checked, and the most it may be granted.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendClient {
    /// The `client_id`: the assertion's `iss` and `sub`, and the owner of its exports.
    pub client_id: String,
    /// The client's public keys, a JWKS as inline JSON.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Where the client publishes its JWKS (used when `jwks` is not set):
    /// `https://`, or `http://` on a loopback host only.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Scopes it may be granted, e.g. `system/*.read` or `system/Patient.rs`.
    pub scopes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::Settings;

    #[test]
    fn backend_clients_are_read_from_toml_with_a_five_minute_token_ttl_by_default() {
        let path = std::env::temp_dir().join(format!("fhir-bulk-clients-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            r#"
[auth]
token_signing_secret = "0123456789abcdef0123456789abcdef"
[[auth.clients]]
client_id = "analytics"
jwks_url = "http://127.0.0.1:8080/jwks.json"
scopes = ["system/*.read"]
[[auth.clients]]
client_id = "registry"
jwks = '{"keys": []}'
scopes = ["system/Patient.rs", "system/Consent.read"]
"#,
        )
        .expect("write");
        let s = Settings::load_from(Some(path.clone()), Vec::new());
        std::fs::remove_file(&path).ok();
        let s = s.expect("loads");
        assert_eq!(s.auth.clients.len(), 2);
        assert_eq!(s.auth.clients[1].scopes, ["system/Patient.rs", "system/Consent.read"]);
        assert_eq!(s.auth.token_ttl_secs, 300);
        assert!(!format!("{s:?}").contains("0123456789abcdef0123456789abcdef"));
    }
}
