//! SMART Backend Services: registered clients get short-lived tokens at
//! `POST /auth/token` with a signed assertion, and export with them; external
//! identity-provider tokens keep working alongside.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bulk_api::{AppState, Application};
use bulk_queue::QueueConfig;
use bulk_testkit::keys::{CLIENT_EC384_PEM, CLIENT_RSA_PEM, OTHER_RSA_PEM};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

mod tls;

const TOKEN_URL: &str = "https://bulk.example.org/auth/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SIGNING_SECRET: &str = "smart-signing-secret-0123456789abcdef";

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(CLIENT_RSA_PEM.as_bytes()).expect("rsa key")
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(CLIENT_EC384_PEM.as_bytes()).expect("ec key")
}

/// The public half of `key` as a JWKS with one key `kid`.
fn jwks(key: &EncodingKey, alg: Algorithm, kid: &str) -> String {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json")
}

/// A client assertion by `client` for this deployment's token endpoint.
fn assertion(client: &str, alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    let claims = json!({
        "iss": client, "sub": client, "aud": TOKEN_URL, "exp": now() + 240,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    encode(&h, &claims, key).expect("signs")
}

/// `application/x-www-form-urlencoded`, by hand (the HTTP client has no form support).
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

async fn post_token(address: &str, client: &reqwest::Client, pairs: &[(&str, &str)]) -> reqwest::Response {
    client
        .post(format!("{address}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .expect("sent")
}

/// A token request with these four parameters.
async fn post_grant(
    address: &str,
    client: &reqwest::Client,
    grant: &str,
    assertion_type: &str,
    assertion: &str,
    scope: &str,
) -> reqwest::Response {
    let pairs = [
        ("grant_type", grant),
        ("client_assertion_type", assertion_type),
        ("client_assertion", assertion),
        ("scope", scope),
    ];
    post_token(address, client, &pairs).await
}

/// A well-formed token request to `app`.
async fn request_token(app: &TestApp, assertion: &str, scope: &str) -> reqwest::Response {
    post_grant(&app.address, &app.client, "client_credentials", ASSERTION_TYPE, assertion, scope).await
}

/// A granted token response's access token, after checking the response's shape.
async fn granted(res: reqwest::Response, scope: &str) -> String {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["token_type"], "bearer", "{body}");
    assert_eq!(body["expires_in"], 300, "{body}");
    assert_eq!(body["scope"], scope, "{body}");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// An OAuth error response: status, code, and no caching.
async fn assert_oauth_error(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

/// An app with `clients` registered (through `auth.clients_file`).
async fn spawn_with_clients(mode: Mode, clients: Value) -> (TestApp, TempDir) {
    spawn_with_clients_and(mode, clients, &[]).await
}

/// An app with `clients` registered and `extra` `BULK__*` settings.
async fn spawn_with_clients_and(mode: Mode, clients: Value, extra: &[(&str, &str)]) -> (TestApp, TempDir) {
    let dir = TempDir::new();
    let file = dir.0.join("clients.json");
    std::fs::write(&file, clients.to_string()).expect("write clients");
    let file = file.display().to_string();
    let mut settings =
        vec![("BULK__AUTH__CLIENTS_FILE", file.as_str()), ("BULK__AUTH__TOKEN_SIGNING_SECRET", SIGNING_SECRET)];
    settings.extend_from_slice(extra);
    let app = TestApp::spawn_in(mode, &settings).await;
    (app, dir)
}

/// Client `rsa-client` (inline JWKS, RS384 key `k1`) allowed `scopes`.
fn rsa_client(scopes: &[&str]) -> Value {
    json!([{"client_id": "rsa-client", "jwks": jwks(&rsa(), Algorithm::RS384, "k1"), "scopes": scopes}])
}

/// A real HTTP (or HTTPS) server answering every request with a JWKS.
struct JwksServer {
    url: String,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
    /// Requests answered with the JWKS (over TLS: after a completed handshake).
    hits: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve_jwks(body: String) -> JwksServer {
    serve(body, None).await
}

/// Serves `body` on loopback, over TLS when `tls` is given.
async fn serve(body: String, tls: Option<tokio_rustls::TlsAcceptor>) -> JwksServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
    let (connections, hits, stop) = (Arc::default(), Arc::default(), CancellationToken::new());
    let server = JwksServer { url, connections, hits, stop };
    let (accepted_n, hits, stopped) = (server.connections.clone(), server.hits.clone(), server.stop.clone());
    tokio::spawn(async move {
        loop {
            let sock = tokio::select! {
                _ = stopped.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => return },
            };
            accepted_n.fetch_add(1, Ordering::SeqCst);
            let (body, hits, tls) = (body.clone(), hits.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => answer(sock, &body, &hits).await,
                    Some(tls) => {
                        if let Ok(sock) = tls.accept(sock).await {
                            answer(sock, &body, &hits).await;
                        }
                    }
                }
            });
        }
    });
    server
}

/// Reads one HTTP request from `sock` and answers it with the JWKS `body`.
async fn answer(mut sock: impl AsyncRead + AsyncWrite + Unpin, body: &str, hits: &AtomicUsize) {
    let mut buf = vec![0u8; 8192];
    let mut read = 0;
    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
        match sock.read(&mut buf[read..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn a_registered_rs384_client_gets_a_short_lived_token_and_exports_with_it(mode: Mode) {
    let (app, _dir) = spawn_with_clients(mode, rsa_client(&["system/*.read"])).await;
    app.add_unique_patient().await;
    let token = granted(
        request_token(&app, &assertion("rsa-client", Algorithm::RS384, "k1", &rsa()), "system/*.read").await,
        "system/*.read",
    )
    .await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    assert_eq!(manifest["output"][0]["type"], "Patient", "{manifest}");
    let record = app.queue.get(&status.rsplit('/').next().expect("id").parse().expect("id")).await;
    assert_eq!(record.expect("read").expect("record").owner, "rsa-client", "the client owns its exports");
}

async fn an_es384_client_with_a_jwks_url_gets_tokens_and_its_jwks_is_fetched_once(mode: Mode) {
    let server = serve_jwks(jwks(&ec(), Algorithm::ES384, "ec-1")).await;
    let clients = json!([{"client_id": "ec-client", "jwks_url": server.url, "scopes": ["system/*.rs"]}]);
    let (app, _dir) = spawn_with_clients(mode, clients).await;
    for _ in 0..2 {
        let a = assertion("ec-client", Algorithm::ES384, "ec-1", &ec());
        let token = granted(request_token(&app, &a, "system/*.rs").await, "system/*.rs").await;
        app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "the JWKS is cached between token requests");
    // A kid the set lacks is refused; it would re-fetch the set (a rotated
    // key), but not within 10 s of the last fetch: unknown kids cannot make
    // the service hammer the client's server.
    let unknown = assertion("ec-client", Algorithm::ES384, "ec-2", &ec());
    assert_oauth_error(request_token(&app, &unknown, "system/*.rs").await, 401, "invalid_client").await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "re-fetches for unknown kids are rate-limited");
}

async fn a_replayed_assertion_is_refused_even_by_another_api_replica(mode: Mode) {
    let (app, _dir) = spawn_with_clients(mode, rsa_client(&["system/*.read"])).await;
    let a = assertion("rsa-client", Algorithm::RS384, "k1", &rsa());
    granted(request_token(&app, &a, "system/*.read").await, "system/*.read").await;
    assert_oauth_error(request_token(&app, &a, "system/*.read").await, 401, "invalid_client").await;

    // A second API process on the same backends, with its own queue connection.
    let queue =
        bulk_queue::open(&app.settings.queue, QueueConfig::from_settings(&app.settings.worker)).await.expect("queue");
    let state = AppState::new(&app.settings, queue, app.content.clone(), app.resources.clone()).expect("state");
    let replica = Application::build("127.0.0.1:0", state).expect("bind");
    let replica_address = format!("http://127.0.0.1:{}", replica.port());
    let stop = CancellationToken::new();
    tokio::spawn(replica.run_until_stopped(stop.clone()));
    let on_replica = |a: String| {
        let (address, client) = (replica_address.clone(), app.client.clone());
        async move { post_grant(&address, &client, "client_credentials", ASSERTION_TYPE, &a, "system/*.read").await }
    };
    assert_oauth_error(on_replica(a).await, 401, "invalid_client").await;
    let fresh = assertion("rsa-client", Algorithm::RS384, "k1", &rsa());
    let token = granted(on_replica(fresh.clone()).await, "system/*.read").await;
    assert_oauth_error(request_token(&app, &fresh, "system/*.read").await, 401, "invalid_client").await;
    // Each replica accepts the tokens the other issued (one shared signing secret).
    app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    stop.cancel();
}

async fn a_per_type_scope_limits_the_export_to_the_granted_types(mode: Mode) {
    let (app, _dir) = spawn_with_clients(mode, rsa_client(&["system/Patient.read"])).await;
    let a = assertion("rsa-client", Algorithm::RS384, "k1", &rsa());
    // Asking for everything is narrowed to what the client is allowed.
    let token = granted(request_token(&app, &a, "system/*.read").await, "system/Patient.read").await;
    app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    let res = app.get("/fhir/r4/$export?_type=Consent", Some(&token)).await;
    assert_outcome(res, 403, "forbidden").await;
}

async fn bad_token_requests_get_oauth_errors_with_the_right_status(mode: Mode) {
    let (app, _dir) = spawn_with_clients(mode, rsa_client(&["system/*.read"])).await;
    let (address, client) = (&app.address, &app.client);
    let a = assertion("rsa-client", Algorithm::RS384, "k1", &rsa());
    let res = post_grant(address, client, "password", ASSERTION_TYPE, &a, "system/*.read").await;
    assert_oauth_error(res, 400, "unsupported_grant_type").await;
    let res = post_grant(address, client, "client_credentials", "not_an_assertion_type", &a, "system/*.read").await;
    assert_oauth_error(res, 400, "invalid_request").await;
    let res = post_grant(address, client, "client_credentials", ASSERTION_TYPE, "", "system/*.read").await;
    assert_oauth_error(res, 400, "invalid_request").await;
    let other = EncodingKey::from_rsa_pem(OTHER_RSA_PEM.as_bytes()).expect("key");
    let forged = assertion("rsa-client", Algorithm::RS384, "k1", &other);
    assert_oauth_error(request_token(&app, &forged, "system/*.read").await, 401, "invalid_client").await;
    let stranger = assertion("stranger", Algorithm::RS384, "k1", &rsa());
    assert_oauth_error(request_token(&app, &stranger, "system/*.read").await, 401, "invalid_client").await;
    let patient_scope = assertion("rsa-client", Algorithm::RS384, "k1", &rsa());
    assert_oauth_error(request_token(&app, &patient_scope, "patient/*.read").await, 400, "invalid_scope").await;
    let res = app
        .client
        .post(format!("{}/auth/token", app.address))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_oauth_error(res, 400, "invalid_request").await;
}

async fn external_idp_tokens_keep_working_and_cannot_pose_as_issued_ones(mode: Mode) {
    let (app, _dir) = spawn_with_clients(mode, rsa_client(&["system/*.read"])).await;
    app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    // Signed with the identity provider's secret but claiming to be ours.
    let posing = token_with(json!({
        "iss": PUBLIC_BASE, "aud": format!("{PUBLIC_BASE}/fhir/r4"), "sub": "rsa-client",
        "scope": "system/*.read", "exp": now() + 60,
    }));
    let res = app.get("/fhir/r4/$export?_type=Patient", Some(&posing)).await;
    assert_outcome(res, 401, "login").await;
}

async fn smart_configuration_advertises_the_token_endpoint_when_clients_are_registered(mode: Mode) {
    let (app, _dir) = spawn_with_clients(mode, rsa_client(&["system/*.read"])).await;
    let res = app.get("/.well-known/smart-configuration", None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["token_endpoint"], TOKEN_URL, "{body}");
    assert_eq!(body["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(body["token_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
    let algs = body["token_endpoint_auth_signing_alg_values_supported"].as_array().expect("algs");
    assert!(algs.contains(&json!("RS384")) && algs.contains(&json!("ES384")), "{body}");
    let scopes = body["scopes_supported"].as_array().expect("scopes");
    assert!(scopes.contains(&json!("system/*.read")) && scopes.contains(&json!("system/*.rs")), "{body}");
}

#[tokio::test]
async fn remember_once_accepts_a_value_once_per_backend() {
    for mode in [Mode::Embedded, Mode::Production] {
        let app = TestApp::spawn_in(mode, &[]).await;
        assert!(app.queue.remember_once("jti-1", 60).await.expect("first"), "{mode:?}");
        assert!(!app.queue.remember_once("jti-1", 60).await.expect("replay"), "{mode:?}");
        assert!(app.queue.remember_once("jti-2", 60).await.expect("another"), "{mode:?}");
    }
}

both_modes!(
    a_registered_rs384_client_gets_a_short_lived_token_and_exports_with_it,
    an_es384_client_with_a_jwks_url_gets_tokens_and_its_jwks_is_fetched_once,
    a_replayed_assertion_is_refused_even_by_another_api_replica,
    a_per_type_scope_limits_the_export_to_the_granted_types,
    bad_token_requests_get_oauth_errors_with_the_right_status,
    external_idp_tokens_keep_working_and_cannot_pose_as_issued_ones,
    smart_configuration_advertises_the_token_endpoint_when_clients_are_registered,
);
