//! Every reason an assertion is refused, and the ones that pass.

use bulk_core::settings::{AuthSettings, BackendClient};
use bulk_testkit::keys::{CLIENT_EC384_PEM, CLIENT_RSA_PEM, OTHER_RSA_PEM};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::super::clients::ClientRegistry;
use super::*;

const TOKEN_URL: &str = "https://bulk.example.org/auth/token";

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(CLIENT_RSA_PEM.as_bytes()).expect("rsa key")
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(CLIENT_EC384_PEM.as_bytes()).expect("ec key")
}

fn public(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("public jwk");
    jwk.common.key_id = Some(kid.into());
    jwk
}

/// Client `c1` with an RSA key `rsa-1` and an EC P-384 key `ec-1`.
fn registry() -> ClientRegistry {
    let set = JwkSet { keys: vec![public(&rsa(), Algorithm::RS384, "rsa-1"), public(&ec(), Algorithm::ES384, "ec-1")] };
    let client = BackendClient {
        client_id: "c1".into(),
        jwks: Some(serde_json::to_string(&set).expect("json")),
        jwks_url: None,
        scopes: vec!["system/*.read".into()],
    };
    ClientRegistry::from_settings(&AuthSettings { clients: vec![client], ..Default::default() }).expect("registry")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims() -> Value {
    json!({"iss": "c1", "sub": "c1", "aud": TOKEN_URL, "exp": now() + 240, "jti": uuid::Uuid::new_v4().to_string()})
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(Into::into);
    encode(&h, claims, key).expect("signs")
}

async fn check(assertion: &str) -> Result<String, Rejection> {
    let reg = registry();
    verify(assertion, &reg, TOKEN_URL, 0, now()).await.map(|v| v.client.id.clone())
}

#[tokio::test]
async fn rs384_and_es384_assertions_from_a_registered_client_verify() {
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &claims(), &rsa())).await, Ok("c1".into()));
    assert_eq!(check(&sign(Algorithm::ES384, Some("ec-1"), &claims(), &ec())).await, Ok("c1".into()));
}

#[tokio::test]
async fn hmac_and_other_algorithms_are_refused() {
    let hs = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &claims(),
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    );
    assert_eq!(check(&hs).await, Err(Rejection::UnsupportedAlgorithm));
    let ps = sign(Algorithm::PS384, Some("rsa-1"), &claims(), &rsa());
    assert_eq!(check(&ps).await, Err(Rejection::UnsupportedAlgorithm));
    // `alg: none` with no signature.
    let none = format!(
        "{}.{}.",
        bulk_testkit::base64url(r#"{"alg":"none","kid":"rsa-1"}"#),
        bulk_testkit::base64url(claims().to_string())
    );
    assert_eq!(check(&none).await, Err(Rejection::UnsupportedAlgorithm));
}

#[tokio::test]
async fn an_expired_assertion_or_one_expiring_too_late_is_refused() {
    let expired = with(claims(), "exp", json!(now() - 60));
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &expired, &rsa())).await, Err(Rejection::Expired));
    let late = with(claims(), "exp", json!(now() + 301 + 5));
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &late, &rsa())).await, Err(Rejection::ExpiresTooLate));
    let no_exp = {
        let mut c = claims();
        c.as_object_mut().expect("object").remove("exp");
        c
    };
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &no_exp, &rsa())).await, Err(Rejection::Malformed));
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_refused() {
    let c = with(claims(), "aud", json!("https://bulk.example.org/fhir/r4"));
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &c, &rsa())).await, Err(Rejection::WrongAudience));
}

#[tokio::test]
async fn an_assertion_whose_iss_and_sub_differ_is_refused() {
    let c = with(claims(), "sub", json!("someone-else"));
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &c, &rsa())).await, Err(Rejection::IssuerNotSubject));
}

#[tokio::test]
async fn an_assertion_from_an_unknown_client_is_refused() {
    let c = with(with(claims(), "iss", json!("c2")), "sub", json!("c2"));
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &c, &rsa())).await, Err(Rejection::UnknownClient));
}

#[tokio::test]
async fn an_unknown_or_missing_kid_is_refused() {
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-9"), &claims(), &rsa())).await, Err(Rejection::UnknownKid));
    assert_eq!(check(&sign(Algorithm::RS384, None, &claims(), &rsa())).await, Err(Rejection::MissingKid));
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let other = EncodingKey::from_rsa_pem(OTHER_RSA_PEM.as_bytes()).expect("key");
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &claims(), &other)).await, Err(Rejection::BadSignature));
    // Change a character inside the signature (the last one holds padding
    // bits, and replacing it with itself would change nothing).
    let mut tampered = sign(Algorithm::RS384, Some("rsa-1"), &claims(), &rsa()).into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_eq!(check(&tampered).await, Err(Rejection::BadSignature));
}

#[tokio::test]
async fn a_kid_naming_a_key_of_another_type_is_refused() {
    // Signed ES384 but naming the RSA key.
    assert_eq!(check(&sign(Algorithm::ES384, Some("rsa-1"), &claims(), &ec())).await, Err(Rejection::KeyMismatch));
    // The RSA key is registered for RS384; RS256 with it is refused.
    assert_eq!(check(&sign(Algorithm::RS256, Some("rsa-1"), &claims(), &rsa())).await, Err(Rejection::KeyMismatch));
}

#[tokio::test]
async fn an_assertion_without_jti_is_refused() {
    let mut c = claims();
    c.as_object_mut().expect("object").remove("jti");
    assert_eq!(check(&sign(Algorithm::RS384, Some("rsa-1"), &c, &rsa())).await, Err(Rejection::MissingJti));
}

#[tokio::test]
async fn a_jku_other_than_the_registered_jwks_url_is_refused() {
    let mut h = Header::new(Algorithm::RS384);
    h.kid = Some("rsa-1".into());
    h.jku = Some("http://attacker.example/jwks".into());
    let a = encode(&h, &claims(), &rsa()).expect("signs");
    assert_eq!(check(&a).await, Err(Rejection::UntrustedJku));
}

#[tokio::test]
async fn garbage_is_malformed() {
    assert_eq!(check("").await, Err(Rejection::Malformed));
    assert_eq!(check("a.b.c").await, Err(Rejection::Malformed));
    assert_eq!(check(&"x".repeat(20_000)).await, Err(Rejection::Malformed));
}
