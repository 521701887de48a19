//! Bearer tokens: what is accepted, and that everything else is a 401 outcome.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;

const EXPORT: &str = "/fhir/r4/$export?_type=Patient";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn signed(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    encode(&Header::new(alg), &claims, key).expect("sign")
}

async fn assert_unauthorized(app: &TestApp, token: Option<&str>) {
    let res = app.get(EXPORT, token).await;
    assert_eq!(res.status(), 401, "token {token:?} accepted");
    let www = res.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(www.starts_with("Bearer"), "{www}");
    assert_outcome(res, 401, "login").await;
}

fn b64(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    // base64url without padding, by hand: the test must not trust the library it checks.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = v.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn missing_malformed_expired_unsigned_tampered_and_foreign_tokens_are_401() {
    let app = TestApp::spawn().await;
    assert_unauthorized(&app, None).await;
    assert_unauthorized(&app, Some("not.a.jwt")).await;
    assert_unauthorized(&app, Some("")).await;

    let expired = token_with(json!({"sub": "a", "role": "admin", "exp": now() - 3600}));
    assert_unauthorized(&app, Some(&expired)).await;
    let no_exp = token_with(json!({"sub": "a", "role": "admin"}));
    assert_unauthorized(&app, Some(&no_exp)).await;

    let wrong_key = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-sufficient-length-000"),
        json!({"sub": "a", "role": "admin", "exp": now() + 60}),
    );
    assert_unauthorized(&app, Some(&wrong_key)).await;

    // alg: none, with an admin payload and an empty signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "a", "role": "admin", "exp": now() + 60}))
    );
    assert_unauthorized(&app, Some(&none)).await;

    // A patient token whose payload is swapped for an admin one keeps its signature: refused.
    let real = patient("p1");
    let parts: Vec<&str> = real.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&json!({"sub": "a", "role": "admin", "exp": now() + 60})), parts[2]);
    assert_unauthorized(&app, Some(&forged)).await;

    // Another scheme is not a bearer token.
    let res = app.client.get(format!("{}{EXPORT}", app.address)).header("Authorization", "Basic YTpi").send().await;
    assert_eq!(res.expect("sent").status(), 401);

    // And the valid token works.
    assert_eq!(app.get(EXPORT, Some(&admin())).await.status(), 202);
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_a_configured_public_key() {
    let rsa = TestApp::spawn_with(&[("BULK__AUTH__PUBLIC_KEY_FILE", &fixture("rsa-public.pem"))]).await;
    let rsa_key = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).expect("pem")).expect("rsa");
    let claims = json!({"sub": "a", "role": "admin", "exp": now() + 60});
    assert_eq!(rsa.get(EXPORT, Some(&signed(Algorithm::RS256, &rsa_key, claims.clone()))).await.status(), 202);

    // RS/HS confusion: an HS256 token keyed with the public key's text is refused.
    let pem = std::fs::read(fixture("rsa-public.pem")).expect("pem");
    let confused = signed(Algorithm::HS256, &EncodingKey::from_secret(&pem), claims.clone());
    assert_unauthorized(&rsa, Some(&confused)).await;

    let ec = TestApp::spawn_with(&[
        ("BULK__AUTH__PUBLIC_KEY_FILE", &fixture("ec-public.pem")),
        ("BULK__AUTH__HS256_SECRET", ""),
    ])
    .await;
    let ec_key = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).expect("pem")).expect("ec");
    assert_eq!(ec.get(EXPORT, Some(&signed(Algorithm::ES256, &ec_key, claims.clone()))).await.status(), 202);
    // The RSA key does not verify against the EC key.
    assert_unauthorized(&ec, Some(&signed(Algorithm::RS256, &rsa_key, claims))).await;
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let app =
        TestApp::spawn_with(&[("BULK__AUTH__ISSUER", "https://idp.example"), ("BULK__AUTH__AUDIENCE", "fhir-bulk")])
            .await;
    let good = token_with(
        json!({"sub": "a", "role": "admin", "exp": now() + 60, "iss": "https://idp.example", "aud": "fhir-bulk"}),
    );
    assert_eq!(app.get(EXPORT, Some(&good)).await.status(), 202);
    let other_aud =
        token_with(json!({"sub": "a", "role": "admin", "exp": now() + 60, "iss": "https://idp.example", "aud": "x"}));
    assert_unauthorized(&app, Some(&other_aud)).await;
    let other_iss =
        token_with(json!({"sub": "a", "role": "admin", "exp": now() + 60, "iss": "https://evil", "aud": "fhir-bulk"}));
    assert_unauthorized(&app, Some(&other_iss)).await;
    assert_unauthorized(&app, Some(&admin())).await;
}
