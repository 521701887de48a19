//! The registered backend clients and their public keys: inline JWKS, or a
//! JWKS URL fetched with a cache.
//!
//! A JWKS URL is `https://` (server certificate checked against the platform
//! roots plus `auth.jwks_ca_file`, see `tls.rs`), or `http://` only on a
//! loopback host (a sidecar or a local key server): anything else is refused
//! at start-up. A fetch that fails, TLS included, verifies nothing (fail
//! closed): the assertion is refused as `invalid_client`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bulk_core::settings::{AuthSettings, BackendClient};
use jsonwebtoken::jwk::{Jwk, JwkSet};

use super::assertion::Rejection;
use super::scopes::Scope;
use super::tls;
use crate::AuthConfigError;

/// How long a fetched JWKS is used before it is fetched again.
const JWKS_CACHE: Duration = Duration::from_secs(300);
/// An unknown `kid` re-fetches the JWKS (the client may have rotated its key),
/// but at most this often, so unknown kids cannot make us hammer the URL.
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(10);
/// Timeout of one JWKS fetch.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const JWKS_MAX_BYTES: usize = 64 * 1024;

/// One registered client.
pub(crate) struct Client {
    /// `client_id`: the assertion's `iss` and `sub`.
    pub id: String,
    /// The most it may be granted.
    pub allowed: Vec<Scope>,
    keys: KeySource,
}

enum KeySource {
    Inline(JwkSet),
    Url(RemoteJwks),
}

struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    /// A tokio mutex: held across the fetch, so concurrent requests wait for
    /// one fetch instead of each starting their own.
    cache: tokio::sync::Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

impl Client {
    /// The registered JWKS URL, which an assertion's `jku` must equal.
    pub(crate) fn jwks_url(&self) -> Option<&str> {
        match &self.keys {
            KeySource::Inline(_) => None,
            KeySource::Url(r) => Some(&r.url),
        }
    }

    /// The client's key with id `kid`.
    pub(crate) async fn key(&self, kid: &str) -> Result<Jwk, Rejection> {
        match &self.keys {
            KeySource::Inline(set) => set.find(kid).cloned().ok_or(Rejection::UnknownKid),
            KeySource::Url(remote) => remote.key(kid).await,
        }
    }
}

impl RemoteJwks {
    async fn key(&self, kid: &str) -> Result<Jwk, Rejection> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.fetched.is_some_and(|t| t.elapsed() < JWKS_CACHE);
        if fresh {
            if let Some(k) = cache.set.as_ref().and_then(|s| s.find(kid)) {
                return Ok(k.clone());
            }
        }
        let may_fetch = !fresh || cache.attempted.is_none_or(|t| t.elapsed() >= JWKS_REFETCH_MIN);
        if may_fetch {
            cache.attempted = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => {
                    cache.set = Some(set);
                    cache.fetched = Some(Instant::now());
                }
                // A stale copy still verifies keys it holds; without one the client cannot be checked.
                Err(e) => tracing::warn!(jwks.url = %self.url, error = %e, "JWKS fetch failed"),
            }
        }
        match cache.set.as_ref() {
            Some(set) => set.find(kid).cloned().ok_or(Rejection::UnknownKid),
            None => Err(Rejection::JwksUnavailable),
        }
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let res = self.http.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("status {}", res.status()));
        }
        if res.content_length().is_some_and(|n| n > JWKS_MAX_BYTES as u64) {
            return Err("JWKS too large".into());
        }
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > JWKS_MAX_BYTES {
            return Err("JWKS too large".into());
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))
    }
}

/// Every registered client, by `client_id`.
pub(crate) struct ClientRegistry {
    clients: HashMap<String, Client>,
}

impl ClientRegistry {
    /// The clients of `auth.clients` and `auth.clients_file`, checked: unique
    /// ids, one key source each, parseable keys and scopes, fetchable URLs.
    pub(crate) fn from_settings(auth: &AuthSettings) -> Result<Self, AuthConfigError> {
        let mut entries = auth.clients.clone();
        if let Some(path) = &auth.clients_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| AuthConfigError::new(format!("cannot read {}: {e}", path.display())))?;
            let more: Vec<BackendClient> = serde_json::from_str(&text)
                .map_err(|e| AuthConfigError::new(format!("{}: not a JSON array of clients: {e}", path.display())))?;
            entries.extend(more);
        }
        // One HTTP client for every JWKS URL, built only when one is registered.
        // Only https:// URLs need TLS roots: a host without a CA bundle can
        // still serve clients whose keys come from a loopback http:// URL.
        let https = entries.iter().any(|e| {
            e.jwks_url.as_deref().and_then(|u| url::Url::parse(u).ok()).is_some_and(|u| u.scheme() == "https")
        });
        let mut http = None;
        let mut clients = HashMap::new();
        for entry in entries {
            if entry.jwks_url.is_some() && http.is_none() {
                http = Some(jwks_http_client(auth, https)?);
            }
            let client = client_of(entry, http.as_ref())?;
            if clients.contains_key(&client.id) {
                return Err(AuthConfigError::new(format!("client {:?} is registered twice", client.id)));
            }
            clients.insert(client.id.clone(), client);
        }
        Ok(ClientRegistry { clients })
    }

    /// The client `id`, if registered.
    pub(crate) fn get(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    /// Whether no client is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// The HTTP client fetching JWKS: TLS roots of the platform plus
/// `auth.jwks_ca_file`, a timeout, and no redirects (a redirect could lead a
/// JWKS fetch to a URL nobody registered).
fn jwks_http_client(auth: &AuthSettings, https: bool) -> Result<reqwest::Client, AuthConfigError> {
    let extra = match &auth.jwks_ca_file {
        Some(path) => tls::read_ca_file(path).map_err(|e| AuthConfigError::new(format!("auth.jwks_ca_file: {e}")))?,
        None => Vec::new(),
    };
    let config = if https {
        tls::client_config(extra).map_err(|e| AuthConfigError::new(format!("JWKS over https: {e}")))?
    } else {
        tls::trusting_nothing()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(JWKS_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AuthConfigError::new(format!("JWKS HTTP client: {e}")))
}

fn client_of(c: BackendClient, http: Option<&reqwest::Client>) -> Result<Client, AuthConfigError> {
    let bad = |what: String| AuthConfigError::new(format!("client {:?}: {what}", c.client_id));
    if c.client_id.trim().is_empty() || c.client_id.len() > 256 {
        return Err(AuthConfigError::new("a client_id must be 1 to 256 characters".into()));
    }
    let allowed = c
        .scopes
        .iter()
        .map(|s| Scope::parse(s).ok_or_else(|| bad(format!("scope {s:?} is not a system/ scope this service grants"))))
        .collect::<Result<Vec<_>, _>>()?;
    if allowed.is_empty() {
        return Err(bad("no scopes".into()));
    }
    let keys = match (&c.jwks, &c.jwks_url) {
        (Some(json), None) => {
            let set: JwkSet = serde_json::from_str(json).map_err(|e| bad(format!("jwks is not a JWKS: {e}")))?;
            if set.keys.is_empty() || set.keys.iter().any(|k| k.common.key_id.is_none()) {
                return Err(bad("jwks must hold at least one key, each with a kid".into()));
            }
            KeySource::Inline(set)
        }
        (None, Some(url)) => {
            let http = http.ok_or_else(|| bad("no HTTP client for jwks_url".into()))?;
            KeySource::Url(remote(url, http.clone()).map_err(bad)?)
        }
        _ => return Err(bad("set exactly one of jwks and jwks_url".into())),
    };
    Ok(Client { id: c.client_id, allowed, keys })
}

/// A JWKS URL we fetch: `https://` anywhere, `http://` only on loopback
/// (plain HTTP off the host could be tampered with on the way).
fn remote(url: &str, http: reqwest::Client) -> Result<RemoteJwks, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("jwks_url is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => {}
        "http" if loopback => {}
        _ => return Err("jwks_url must be https://, or http:// on a loopback host".into()),
    }
    // The URL is logged when a fetch fails: it must not carry a secret.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("jwks_url must not carry credentials".into());
    }
    Ok(RemoteJwks { url: url.to_owned(), http, cache: tokio::sync::Mutex::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(jwks: Option<&str>, url: Option<&str>, scopes: &[&str]) -> BackendClient {
        BackendClient {
            client_id: "c1".into(),
            jwks: jwks.map(Into::into),
            jwks_url: url.map(Into::into),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn registry(clients: Vec<BackendClient>) -> Result<ClientRegistry, AuthConfigError> {
        ClientRegistry::from_settings(&AuthSettings { clients, ..Default::default() })
    }

    #[test]
    fn jwks_urls_are_https_or_plain_http_on_loopback_only() {
        for url in [
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
            "https://keys.example.org/.well-known/jwks.json",
            "https://127.0.0.1:8443/jwks",
        ] {
            assert!(registry(vec![client(None, Some(url), &["system/*.read"])]).is_ok(), "{url}");
        }
        for url in ["http://keys.example.org/jwks", "http://10.0.0.1/jwks", "file:///k", "ftp://127.0.0.1/k"] {
            let err = registry(vec![client(None, Some(url), &["system/*.read"])]).err().expect(url);
            assert!(err.to_string().contains("https://, or http:// on a loopback host"), "{err}");
        }
        let err = registry(vec![client(None, Some("https://user:pw@keys.example.org/j"), &["system/*.read"])]);
        assert!(err.err().expect("credentials").to_string().contains("credentials"));
    }

    #[test]
    fn an_unreadable_jwks_ca_file_is_refused_at_start_up() {
        let auth = AuthSettings {
            clients: vec![client(None, Some("https://keys.example.org/jwks"), &["system/*.read"])],
            jwks_ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = ClientRegistry::from_settings(&auth).err().expect("refused");
        assert!(err.to_string().contains("auth.jwks_ca_file"), "{err}");
    }

    #[test]
    fn a_client_needs_one_key_source_keys_with_kids_and_grantable_scopes() {
        assert!(registry(vec![client(None, None, &["system/*.read"])]).is_err());
        assert!(registry(vec![client(Some(r#"{"keys":[]}"#), Some("http://127.0.0.1/j"), &["system/*.read"])]).is_err());
        assert!(registry(vec![client(Some(r#"{"keys":[]}"#), None, &["system/*.read"])]).is_err());
        assert!(registry(vec![client(Some("not json"), None, &["system/*.read"])]).is_err());
        assert!(registry(vec![client(None, Some("http://127.0.0.1/j"), &["patient/*.read"])]).is_err());
        assert!(registry(vec![client(None, Some("http://127.0.0.1/j"), &[])]).is_err());
    }

    #[test]
    fn a_client_id_registered_twice_is_refused() {
        let c = client(None, Some("http://127.0.0.1/j"), &["system/*.read"]);
        assert!(registry(vec![c.clone(), c]).is_err());
    }
}
