//! JWKS URLs over real TLS: a client publishing its keys at an `https://` URL
//! whose certificate chains to a CA in `auth.jwks_ca_file` gets tokens; one
//! whose certificate chains to nothing trusted gets none (fail closed); plain
//! `http://` off loopback is refused when the API starts.
//!
//! Certificates are made per test with `rcgen` (ECDSA P-256, milliseconds):
//! nothing to expire in the repository, no private key committed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bulk_api::AppState;
use jsonwebtoken::Algorithm;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio_rustls::TlsAcceptor;

use super::*;

/// A certificate authority of the test's own.
struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        TestCa(CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA"))
    }

    /// The CA certificate as a PEM bundle, written into `dir`.
    fn write_pem(&self, dir: &TempDir) -> String {
        let path = dir.0.join("jwks-ca.pem");
        std::fs::write(&path, self.0.pem()).expect("write CA");
        path.display().to_string()
    }

    /// A TLS acceptor for `127.0.0.1` with a certificate this CA issued.
    fn acceptor_for_loopback(&self) -> TlsAcceptor {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, "jwks.test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.0).expect("signed");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// `ec-client`, its ES384 keys published at `url`, allowed `system/*.read`.
fn ec_client_at(url: &str) -> Value {
    json!([{"client_id": "ec-client", "jwks_url": url, "scopes": ["system/*.read"]}])
}

async fn a_client_with_an_https_jwks_url_on_a_private_ca_gets_an_es384_token_and_exports(mode: Mode) {
    let ca = TestCa::new("fhir-bulk test hospital CA");
    let server = serve(jwks(&ec(), Algorithm::ES384, "ec-1"), Some(ca.acceptor_for_loopback())).await;
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let ca_dir = TempDir::new();
    let ca_file = ca.write_pem(&ca_dir);
    let (app, _dir) =
        spawn_with_clients_and(mode, ec_client_at(&server.url), &[("BULK__AUTH__JWKS_CA_FILE", &ca_file)]).await;
    app.add_unique_patient().await;

    let a = assertion("ec-client", Algorithm::ES384, "ec-1", &ec());
    let token = granted(request_token(&app, &a, "system/*.read").await, "system/*.read").await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "the JWKS was fetched over TLS");

    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    assert_eq!(manifest["output"][0]["type"], "Patient", "{manifest}");
    let record = app.queue.get(&status.rsplit('/').next().expect("id").parse().expect("id")).await;
    assert_eq!(record.expect("read").expect("record").owner, "ec-client");
}

async fn an_https_jwks_url_whose_certificate_is_not_trusted_fails_closed(mode: Mode) {
    let trusted = TestCa::new("fhir-bulk test hospital CA");
    let stranger = TestCa::new("somebody else's CA");
    let server = serve(jwks(&ec(), Algorithm::ES384, "ec-1"), Some(stranger.acceptor_for_loopback())).await;
    let ca_dir = TempDir::new();
    let ca_file = trusted.write_pem(&ca_dir);
    let (app, _dir) =
        spawn_with_clients_and(mode, ec_client_at(&server.url), &[("BULK__AUTH__JWKS_CA_FILE", &ca_file)]).await;

    let a = assertion("ec-client", Algorithm::ES384, "ec-1", &ec());
    let res = request_token(&app, &a, "system/*.read").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert!(body.get("access_token").is_none(), "no token without a verified key: {body}");
    assert!(server.connections.load(Ordering::SeqCst) >= 1, "the API did try the URL");
    assert_eq!(server.hits.load(Ordering::SeqCst), 0, "no request got past the TLS handshake");
}

#[tokio::test]
async fn a_plain_http_jwks_url_off_loopback_is_refused_at_start_up() {
    let app = TestApp::spawn_in(Mode::Embedded, &[]).await;
    let dir = TempDir::new();
    for (url, refused) in [
        ("http://keys.example.org/.well-known/jwks.json", true),
        ("http://10.1.2.3/jwks.json", true),
        ("https://keys.example.org/.well-known/jwks.json", false),
        ("http://127.0.0.1:9/jwks.json", false),
    ] {
        let file = dir.0.join("clients.json");
        std::fs::write(&file, ec_client_at(url).to_string()).expect("write clients");
        let file = file.display().to_string();
        let settings = test_settings(
            Vec::new(),
            &[("BULK__AUTH__CLIENTS_FILE", &file), ("BULK__AUTH__TOKEN_SIGNING_SECRET", SIGNING_SECRET)],
        );
        // What `bulk-api` builds at start-up from its settings.
        let state = AppState::new(&settings, app.queue.clone(), app.content.clone(), app.resources.clone());
        match state {
            Err(e) if refused => assert!(e.to_string().contains("http:// on a loopback host"), "{url}: {e}"),
            Err(e) => panic!("{url} must be accepted: {e}"),
            Ok(_) => assert!(!refused, "{url} must be refused at start-up"),
        }
    }
}

both_modes!(
    a_client_with_an_https_jwks_url_on_a_private_ca_gets_an_es384_token_and_exports,
    an_https_jwks_url_whose_certificate_is_not_trusted_fails_closed,
);
