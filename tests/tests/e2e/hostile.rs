//! Hostile clients: malformed ids, query strings, headers, bodies and tokens,
//! sent over a raw socket so that nothing on the client side tidies them up.
//! Every one gets a 4xx; what our handlers answer is an OperationOutcome that
//! names nothing internal; and afterwards the server still serves a normal
//! kick-off.
//!
//! Some requests never reach our code: actix-web's HTTP/1 codec refuses a
//! request line or header that is not valid HTTP (raw non-ASCII bytes, a
//! `Content-Length` beside `Transfer-Encoding`) with an empty `400`, a URI over
//! 64 KiB with an empty `400`, and more than 96 headers or a head over 128 KiB
//! with an empty `431`. Those are accepted here as long as they are 4xx with no body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

/// A response as it came off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `request` byte for byte on a new connection and reads the response
/// until the server closes it (every request says `Connection: close`).
async fn send(app: &TestApp, request: Vec<u8>) -> Raw {
    let addr = app.address.strip_prefix("http://").expect("http address").to_owned();
    tokio::task::spawn_blocking(move || send_blocking(&addr, &request)).await.expect("raw request task")
}

fn send_blocking(addr: &str, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(30))).expect("write timeout");
    // The server may answer and close before it has read everything (a body
    // it does not want): keep whatever it said.
    let _ = stream.write_all(request);
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Parses a response; a connection closed without one (a panic, a crash) fails the test.
fn parse_response(buf: &[u8]) -> Raw {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("no HTTP response: connection closed after {} bytes {:?}", buf.len(), String::from_utf8_lossy(buf));
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_len + 4..].to_vec();
    if let Some(len) = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()) {
        body.truncate(len);
    }
    Raw { status, headers, body }
}

/// `METHOD target HTTP/1.1` with `Host`, `Connection: close`, the token if
/// any, the extra header lines as given, and `body` after the head.
fn request(method: &str, target: &[u8], token: Option<&str>, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(target.len() + body.len() + 256);
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(t) = token {
        r.extend_from_slice(b"Authorization: Bearer ");
        r.extend_from_slice(t.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    for h in headers {
        r.extend_from_slice(h);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn get(target: &[u8], token: Option<&str>) -> Vec<u8> {
    request("GET", target, token, &[], b"")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What a client must never read in an error: file paths, backend names,
/// Rust type names, panics and stack traces.
const INTERNALS: [&str; 28] = [
    "redis",
    "sqlite",
    "postgres",
    "deadpool",
    "kubo",
    "/work/",
    "/tmp/",
    "/root/",
    "/home/",
    "/usr/",
    ".rs:",
    "src/",
    "panicked",
    "backtrace",
    "thread '",
    "::",
    "apierror",
    "queueerror",
    "resourceerror",
    "contenterror",
    "requesterror",
    "box<dyn",
    "some(",
    "none)",
    "err(",
    "os error",
    "usize",
    "u64",
];

/// What an answer to a hostile request must be: a 4xx, and either our
/// OperationOutcome (with nothing internal in it) or, for requests actix's
/// codec refuses before routing, an empty 400 or 431. Returns the outcome's
/// issue code, or `None` for a codec refusal.
fn check(res: &Raw, what: &str) -> Option<String> {
    assert!((400..500).contains(&res.status), "{what}: answered {} {:?}", res.status, body_text(res));
    let Some(content_type) = res.header("content-type") else {
        assert!(
            res.body.is_empty() && [400, 431].contains(&res.status),
            "{what}: {} without a content type: {:?}",
            res.status,
            body_text(res)
        );
        return None;
    };
    assert_eq!(content_type, "application/fhir+json", "{what}");
    let text = body_text(res).to_lowercase();
    for word in INTERNALS {
        assert!(!text.contains(word), "{what}: the error mentions {word:?}: {text}");
    }
    let body: Value = serde_json::from_slice(&res.body).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e})"));
    assert_eq!(body["resourceType"], "OperationOutcome", "{what}: {body}");
    assert_eq!(body["issue"][0]["severity"], "error", "{what}: {body}");
    let diagnostics = body["issue"][0]["diagnostics"].as_str().unwrap_or_else(|| panic!("{what}: no diagnostics"));
    assert!(!diagnostics.is_empty(), "{what}");
    Some(body["issue"][0]["code"].as_str().unwrap_or_else(|| panic!("{what}: no issue code")).to_owned())
}

/// `check`, and our handler answered with exactly this status and issue code.
fn check_ours(res: &Raw, what: &str, status: u16, code: &str) {
    assert_eq!(res.status, status, "{what}: {:?}", body_text(res));
    assert_eq!(check(res, what).as_deref(), Some(code), "{what}");
}

/// A 401 from our code, with the `WWW-Authenticate` challenge.
fn check_unauthorized(res: &Raw, what: &str) {
    check_ours(res, what, 401, "login");
    let challenge = res.header("www-authenticate").unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
}

fn body_text(res: &Raw) -> String {
    String::from_utf8_lossy(&res.body).chars().take(500).collect()
}

fn label(bytes: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(bytes).chars().take(60).collect();
    format!("{s:?} ({} bytes)", bytes.len())
}

/// After a barrage, the server still kicks off, polls and answers its probe.
async fn still_serving(app: &TestApp) {
    let status = app.kick_off("/fhir/r4/Patient/$export?_type=Patient", &admin()).await;
    assert!([200, 202].contains(&app.get(&status, Some(&admin())).await.status().as_u16()));
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

/// Job ids no route should take: traversal, encodings of nothing, of invalid
/// UTF-8 and of control characters, and sheer length.
fn malformed_ids() -> Vec<Vec<u8>> {
    let mut ids: Vec<Vec<u8>> = [
        &b"..%2F..%2Fetc%2Fpasswd"[..],
        b"%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        b"..%5c..%5cwindows%5cwin.ini",
        b"%252e%252e%252f",
        b"%FF%FE",
        b"%C0%AF",
        b"%ED%A0%80",
        b"%00",
        b"%",
        b"%zz",
        b"%%%%",
        b"x%0d%0aSet-Cookie:%20a=b",
        b"%1b%5b31mred",
        b"%EF%BB%BF3f0c2e51-6a1e-4a8e-9c55-0c7d1f6b8a90",
        b"3F0C2E51-6A1E-4A8E-9C55-0C7D1F6B8A90%00",
        b"00000000-0000-0000-0000-000000000000",
        b"'%20OR%201=1--",
        b"*",
        b"%F0%9F%92%A9",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    ids.push(vec![b'a'; 10 * 1024]);
    ids.push(b"%41".repeat(3500));
    ids.push(b"%FF".repeat(3500));
    ids
}

async fn malformed_job_ids_are_not_found_on_every_route(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let admin = admin();
    let patient = patient("p1");
    for id in malformed_ids() {
        for token in [admin.as_str(), patient.as_str()] {
            let who = if token == admin { "admin" } else { "patient" };
            let status = cat(&[b"/fhir/r4/$export-status/", &id]);
            let file = cat(&[b"/fhir/r4/$export-file/", &id, b"/", &id]);
            let gateway = cat(&[b"/ipfs/", &id]);
            for (method, target, what) in [
                ("GET", &status, "poll"),
                ("DELETE", &status, "cancel"),
                ("GET", &file, "download"),
                ("GET", &gateway, "gateway"),
            ] {
                let res = send(&app, request(method, target, Some(token), &[], b"")).await;
                let what = format!("{what} of {} by {who}", label(&id));
                check_ours(&res, &what, 404, "not-found");
            }
            let admin_job = cat(&[b"/admin/jobs/", &id]);
            let requeue = cat(&[b"/admin/jobs/", &id, b"/requeue"]);
            for (method, target) in [("GET", &admin_job), ("DELETE", &admin_job), ("POST", &requeue)] {
                let res = send(&app, request(method, target, Some(token), &[b"Content-Length: 0"], b"")).await;
                let what = format!("{method} admin job {} by {who}", label(&id));
                // A patient is refused the operator API before the id is read.
                let (status, code) = if token == admin { (404, "not-found") } else { (403, "forbidden") };
                check_ours(&res, &what, status, code);
            }
        }
    }

    // Raw traversal never leaves the route table; raw invalid UTF-8 never reaches it.
    for target in [
        &b"/fhir/r4/$export-status/../../etc/passwd"[..],
        b"/fhir/r4/$export-file/../../../etc/passwd",
        b"/ipfs/../../etc/passwd",
        b"/fhir/r4/$export-status/\xff\xfe",
        b"/ipfs/\xc0\xaf",
    ] {
        let res = send(&app, get(target, Some(&admin))).await;
        let code = check(&res, &label(target));
        assert!(code.is_none() || code.as_deref() == Some("not-found"), "{}: {code:?}", label(target));
    }

    // A real, completed job with a malformed file CID.
    app.seed(1, 1).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &admin).await;
    app.run_worker().await;
    let job = status.rsplit('/').next().expect("job id").to_owned();
    for cid in malformed_ids() {
        let target = cat(&[b"/fhir/r4/$export-file/", job.as_bytes(), b"/", &cid]);
        let res = send(&app, get(&target, Some(&admin))).await;
        check_ours(&res, &format!("file {} of a real job", label(&cid)), 404, "not-found");
    }
    still_serving(&app).await;
}

async fn garbage_in_every_parameter_is_a_400_outcome(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let admin = admin();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"_type=%FF%FE".to_vec(), "invalid"),
        (b"_type=%C0%AF,Patient".to_vec(), "invalid"),
        (b"_type=Patient%00".to_vec(), "invalid"),
        (b"_type=Pat%1b%5b31mient".to_vec(), "invalid"),
        (b"_type=%".to_vec(), "invalid"),
        (b"_type=%zz".to_vec(), "invalid"),
        (b"_type=".to_vec(), "invalid"),
        (b"_type".to_vec(), "invalid"),
        (b"_type=,,,".to_vec(), "invalid"),
        (b"_type=Patient&_type=*".to_vec(), "invalid"),
        (b"_type=patient".to_vec(), "invalid"),
        (b"_type=Patient/../Group".to_vec(), "invalid"),
        (b"_outputFormat=%FF".to_vec(), "invalid"),
        (b"_outputFormat=".to_vec(), "invalid"),
        (b"_outputFormat=application/fhir+ndjson".to_vec(), "invalid"), // `+` is a space
        (b"_outputFormat=text/html%0d%0aX-Injected:%201".to_vec(), "invalid"),
        (b"%FF%FE=1".to_vec(), "not-supported"),
        (b"=".to_vec(), "not-supported"),
        (b"%00=%00".to_vec(), "not-supported"),
        (b"_since=yesterday".to_vec(), "invalid"),
        (b"_since=2020-01-01".to_vec(), "invalid"),
        (b"_since=2999-01-01T00:00:00Z".to_vec(), "invalid"),
        (b"_since=2020-01-01T00:00:00Z&_until=2019-01-01T00:00:00Z".to_vec(), "invalid"),
        (b"_typeFilter=Patient%3Fname%3D%27%20OR%201%3D1".to_vec(), "not-supported"),
        (b"_typeFilter=Patient%3F_sort%3Did".to_vec(), "invalid"),
        (b"_elements=Patient.name.given".to_vec(), "invalid"),
        (b"_elements=id,%1b".to_vec(), "invalid"),
        (b"patient=Patient/../../x".to_vec(), "invalid"),
        (b"includeAssociatedData=_everything".to_vec(), "not-supported"),
        (b"_TYPE=Patient".to_vec(), "not-supported"),
        (cat(&[b"_type=", &b"%1b".repeat(1000)]), "invalid"),
        (cat(&[&b"x".repeat(5000), b"=1"]), "not-supported"),
        // A 15 KB list fits the query cap but not the `_type` cap.
        (cat(&[b"_type=", vec!["Patient"; 1900].join(",").as_bytes()]), "invalid"),
        // 20 KB and 42 KB queries: over the query-string cap.
        (cat(&[b"_type=", vec!["Patient"; 2500].join(",").as_bytes()]), "invalid"),
        ("_outputFormat=ndjson&".repeat(2000).into_bytes(), "invalid"),
        ("a=1&".repeat(3000).into_bytes(), "not-supported"),
    ];
    for path in ["/fhir/r4/$export?", "/fhir/r4/Patient/$export?"] {
        for (query, code) in &cases {
            let target = cat(&[path.as_bytes(), query]);
            let res = send(&app, get(&target, Some(&admin))).await;
            let what = format!("{path}{}", label(query));
            check_ours(&res, &what, 400, code);
            let body: Value = serde_json::from_slice(&res.body).expect("JSON");
            let diagnostics = body["issue"][0]["diagnostics"].as_str().expect("diagnostics");
            assert!(!diagnostics.chars().any(char::is_control), "{what}: {diagnostics:?}");
            assert!(diagnostics.chars().count() <= 300, "{what}: {} chars", diagnostics.chars().count());
        }
    }
    assert_eq!(app.queue.queue_len().await.expect("queue length"), 0, "a refused kick-off was enqueued");

    // Raw invalid UTF-8 and a 100 KB `_type` list are refused by the HTTP codec.
    let huge = cat(&[b"/fhir/r4/$export?_type=", vec!["Patient"; 100 * 1024 / 8].join(",").as_bytes()]);
    for target in [&b"/fhir/r4/$export?_type=\xff\xfe"[..], b"/fhir/r4/$export?\xc3\x28=1", &huge] {
        let res = send(&app, get(target, Some(&admin))).await;
        let code = check(&res, &label(target));
        assert!(code.is_none() || code.as_deref() == Some("invalid"), "{}: {code:?}", label(target));
    }

    // Thousands of repeated, valid parameters are one request for one type.
    let repeated = cat(&[b"/fhir/r4/$export?", "_type=Consent&".repeat(1100).as_bytes()]);
    let res = send(&app, get(&repeated, Some(&admin))).await;
    assert_eq!(res.status, 202, "{}", body_text(&res));
    let location = res.header("content-location").expect("status URL");
    let id = location.rsplit('/').next().expect("id").parse().expect("job id");
    let record = app.queue.get(&id).await.expect("queue").expect("record");
    assert_eq!(record.request.types, vec![bulk_core::ResourceType::CONSENT]);

    // The operator API's query parameters.
    for query in [
        "status=bogus",
        "status=%FF",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999999",
        "limit=1e3",
        "limit=",
        "unknown=1",
        "status=queued&status=failed",
    ] {
        let res = send(&app, get(format!("/admin/jobs?{query}").as_bytes(), Some(&admin))).await;
        check_ours(&res, &format!("/admin/jobs?{query}"), 400, "invalid");
    }

    // The Idempotency-Key header.
    let long_key = format!("Idempotency-Key: {}", "k".repeat(10 * 1024));
    for header in
        [&b"Idempotency-Key: "[..], b"Idempotency-Key: a b", b"Idempotency-Key: \xff\xfe", long_key.as_bytes()]
    {
        let res = send(&app, request("GET", b"/fhir/r4/$export", Some(&admin), &[header], b"")).await;
        check_ours(&res, &label(header), 400, "invalid");
    }
    // A control character in a header value is the codec's 400.
    let res = send(&app, request("GET", b"/fhir/r4/$export", Some(&admin), &[b"Idempotency-Key: k\x01"], b"")).await;
    assert_eq!(res.status, 400);
    check(&res, "control character in Idempotency-Key");
    assert_eq!(app.queue.queue_len().await.expect("queue length"), 1, "only the repeated-_type kick-off");
    still_serving(&app).await;
}

async fn oversized_and_malformed_headers_and_bodies_are_refused_without_a_crash(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let admin = admin();
    let junk_64k = format!("X-Junk: {}", "a".repeat(64 * 1024));
    let junk_130k = format!("X-Junk: {}", "a".repeat(130 * 1024));
    let long_bearer = format!("Authorization: Bearer {}", "a".repeat(100 * 1024));
    let long_request_id = format!("X-Request-Id: {}", "r".repeat(10 * 1024));

    // Without a token, a 64 KB header reaches our code and is a 401.
    let res = send(&app, request("GET", b"/fhir/r4/$export", None, &[junk_64k.as_bytes()], b"")).await;
    check_unauthorized(&res, "64 KB header without a token");
    // With one, it is not a crash (actix allows a 128 KiB head: see the report).
    let res = send(&app, request("GET", b"/fhir/r4/$export-status/x", Some(&admin), &[junk_64k.as_bytes()], b"")).await;
    check_ours(&res, "64 KB header on a poll", 404, "not-found");
    // A head over 128 KiB, or over 96 headers, is the codec's 431.
    let res = send(&app, request("GET", b"/fhir/r4/$export", Some(&admin), &[junk_130k.as_bytes()], b"")).await;
    assert_eq!(res.status, 431);
    check(&res, "130 KB header");
    let many: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&[u8]> = many.iter().map(|s| s.as_bytes()).collect();
    let res = send(&app, request("GET", b"/fhir/r4/$export", Some(&admin), &many, b"")).await;
    assert_eq!(res.status, 431);
    check(&res, "200 headers");

    // Authorization headers that are not one bearer token.
    for header in [
        long_bearer.as_bytes(),
        b"Authorization: Bearer \xff\xfe",
        b"Authorization: Bearer",
        b"Authorization: Bearer ",
        b"Authorization: Bearer a b c",
        b"Authorization: Bearer\tx",
        b"Authorization: Basic YWRtaW46YWRtaW4=",
        b"Authorization: Negotiate x",
        b"Authorization: ",
    ] {
        let res = send(&app, request("GET", b"/fhir/r4/$export", None, &[header], b"")).await;
        check_unauthorized(&res, &label(header));
    }
    // A garbage Authorization header first and a valid one second: the first is the one read.
    let valid = format!("Authorization: Bearer {admin}");
    let res =
        send(&app, request("GET", b"/fhir/r4/$export", None, &[b"Authorization: Bearer x", valid.as_bytes()], b""))
            .await;
    check_unauthorized(&res, "two Authorization headers");

    // A client's request id is not echoed when it is not short and plain.
    let res = send(&app, request("GET", b"/fhir/r4/$export", None, &[long_request_id.as_bytes()], b"")).await;
    check_unauthorized(&res, "10 KB X-Request-Id");
    assert!(res.header("x-request-id").is_some_and(|v| v.len() <= 64), "{:?}", res.header("x-request-id"));

    // Bodies on GET and DELETE: ignored or refused, never a crash.
    let body = vec![b'x'; 1024 * 1024];
    let length = format!("Content-Length: {}", body.len());
    for method in ["GET", "DELETE"] {
        let res =
            send(&app, request(method, b"/fhir/r4/$export-status/nope", Some(&admin), &[length.as_bytes()], &body))
                .await;
        check_ours(&res, &format!("1 MB body on {method}"), 404, "not-found");
    }
    let chunked = cat(&[b"100000\r\n", &body, b"\r\n0\r\n\r\n"]);
    let res = send(
        &app,
        request("GET", b"/fhir/r4/$export", Some(&patient("p1")), &[b"Transfer-Encoding: chunked"], &chunked),
    )
    .await;
    check_ours(&res, "1 MB chunked body on a patient's system kick-off", 403, "forbidden");
    // A body announced and never sent does not hold the answer.
    let res = send(
        &app,
        request("DELETE", b"/fhir/r4/$export-status/nope", Some(&admin), &[b"Content-Length: 99999999999"], b""),
    )
    .await;
    check_ours(&res, "announced 100 GB body", 404, "not-found");
    // Framing the codec refuses.
    for (what, headers) in [
        ("Content-Length and Transfer-Encoding", &[&b"Content-Length: 5"[..], b"Transfer-Encoding: chunked"][..]),
        ("non-numeric Content-Length", &[&b"Content-Length: abc"[..]][..]),
        ("two Content-Lengths", &[&b"Content-Length: 1"[..], b"Content-Length: 2"][..]),
    ] {
        let res = send(&app, request("DELETE", b"/fhir/r4/$export-status/nope", Some(&admin), headers, b"xxxxx")).await;
        check(&res, what);
    }
    let res = send(&app, b"GARBAGE\r\n\r\n".to_vec()).await;
    check(&res, "a request line that is not HTTP");
    still_serving(&app).await;
}

/// A token with this exact header and payload text, HS256-signed with the test secret
/// (whatever the header claims).
fn hs256_raw(header: &str, payload: &str) -> String {
    let message =
        format!("{}.{}", bulk_testkit::base64url(header.as_bytes()), bulk_testkit::base64url(payload.as_bytes()));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
    format!("{message}.{signature}")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).expect("RSA key")
}

/// Tokens that must never authenticate on an HS256-only server.
fn hostile_tokens() -> Vec<(&'static str, String)> {
    let exp = now() + 600;
    let claims = json!({"sub": "a", "role": "admin", "exp": exp}).to_string();
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    let valid = hs256_raw(hs, &claims);
    let parts: Vec<&str> = valid.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let mut flipped = valid.clone();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    vec![
        ("alg none", format!("{}.{p}.", bulk_testkit::base64url(br#"{"alg":"none","typ":"JWT"}"#))),
        ("alg None, signed", format!("{}.{p}.{s}", bulk_testkit::base64url(br#"{"alg":"None"}"#))),
        ("alg hs256 lowercase", hs256_raw(r#"{"alg":"hs256"}"#, &claims)),
        ("alg missing", hs256_raw(r#"{"typ":"JWT"}"#, &claims)),
        ("alg as a number", hs256_raw(r#"{"alg":256}"#, &claims)),
        (
            "RS256 on an HS256 server",
            encode(&Header::new(Algorithm::RS256), &json!({"sub": "a", "role": "admin", "exp": exp}), &rsa_key())
                .expect("sign"),
        ),
        ("RS256 header, HS256 signature", hs256_raw(r#"{"alg":"RS256"}"#, &claims)),
        (
            "HS512 with the right secret",
            encode(
                &Header::new(Algorithm::HS512),
                &json!({"sub": "a", "role": "admin", "exp": exp}),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .expect("sign"),
        ),
        ("exp as a string", hs256_raw(hs, &json!({"sub": "a", "role": "admin", "exp": exp.to_string()}).to_string())),
        ("exp as a float", hs256_raw(hs, &json!({"sub": "a", "role": "admin", "exp": exp as f64 + 0.5}).to_string())),
        ("exp negative", hs256_raw(hs, &json!({"sub": "a", "role": "admin", "exp": -1}).to_string())),
        ("exp null", hs256_raw(hs, &json!({"sub": "a", "role": "admin", "exp": null}).to_string())),
        ("exp missing", hs256_raw(hs, &json!({"sub": "a", "role": "admin"}).to_string())),
        ("exp in the past", hs256_raw(hs, &json!({"sub": "a", "role": "admin", "exp": now() - 3600}).to_string())),
        ("sub missing", hs256_raw(hs, &json!({"role": "admin", "exp": exp}).to_string())),
        ("sub empty", hs256_raw(hs, &json!({"sub": "", "role": "admin", "exp": exp}).to_string())),
        ("sub a number", hs256_raw(hs, &json!({"sub": 7, "role": "admin", "exp": exp}).to_string())),
        ("sub null", hs256_raw(hs, &json!({"sub": null, "role": "admin", "exp": exp}).to_string())),
        ("role a number", hs256_raw(hs, &json!({"sub": "a", "role": 1, "exp": exp}).to_string())),
        (
            "50 KB of claims",
            hs256_raw(hs, &json!({"sub": "a", "role": "admin", "exp": exp, "x": "x".repeat(50 * 1024)}).to_string()),
        ),
        ("payload an array", hs256_raw(hs, "[1,2,3]")),
        ("payload not JSON", hs256_raw(hs, "sub=a&role=admin")),
        ("payload deeply nested", hs256_raw(hs, &format!("{}{}", "[".repeat(5000), "]".repeat(5000)))),
        ("header not JSON", hs256_raw("HS256", &claims)),
        ("non-base64 segments", "!!!.@@@.###".to_owned()),
        ("non-base64 header", format!("{{alg}}.{p}.{s}")),
        ("base64 with padding", format!("{h}==.{p}.{s}")),
        ("whitespace inside", format!("{h}. {p}.{s}")),
        ("bad signature", flipped),
        ("no signature", format!("{h}.{p}.")),
        ("two segments", format!("{h}.{p}")),
        ("four segments", format!("{valid}.{s}")),
        ("five segments", format!("{valid}..")),
        ("one segment", h.to_owned()),
        ("only dots", "..".to_owned()),
        ("non-ASCII character", format!("{h}.{p}.{s}é")),
    ]
}

async fn hostile_tokens_are_401_outcomes_on_every_route(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let tokens = hostile_tokens();
    let routes = [
        ("GET", "/fhir/r4/$export"),
        ("GET", "/fhir/r4/Patient/$export?_type=Patient"),
        ("POST", "/fhir/r4/$export"),
        ("GET", "/fhir/r4/Group/g1/$export"),
        ("POST", "/fhir/r4/Group/g1/$export"),
        ("GET", "/fhir/r4/$export-status/3f0c2e51-6a1e-4a8e-9c55-0c7d1f6b8a90"),
        ("DELETE", "/fhir/r4/$export-status/3f0c2e51-6a1e-4a8e-9c55-0c7d1f6b8a90"),
        ("GET", "/fhir/r4/$export-file/3f0c2e51-6a1e-4a8e-9c55-0c7d1f6b8a90/x"),
        ("GET", "/ipfs/QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco"),
        ("GET", "/admin/jobs"),
    ];
    for (what, token) in &tokens {
        for (method, path) in routes {
            let res = send(&app, request(method, path.as_bytes(), Some(token), &[], b"")).await;
            check_unauthorized(&res, &format!("{what} on {method} {path}"));
        }
    }
    // An expired token says so, and nothing more.
    let expired = token_with(json!({"sub": "a", "role": "admin", "exp": now() - 3600}));
    let res = send(&app, get(b"/fhir/r4/$export", Some(&expired))).await;
    check_unauthorized(&res, "expired");
    let body: Value = serde_json::from_slice(&res.body).expect("JSON");
    assert_eq!(body["issue"][0]["diagnostics"], "Bearer token expired");
    // 100 KB of claims make a head over actix's 128 KiB: the codec's 431.
    let huge = token_with(json!({"sub": "a", "role": "admin", "exp": now() + 60, "x": "x".repeat(100 * 1024)}));
    let res = send(&app, get(b"/fhir/r4/$export", Some(&huge))).await;
    assert!([401, 431].contains(&res.status), "{}", res.status);
    check(&res, "100 KB of claims");
    // A role with the wrong case is an unknown role: 403, not admin.
    let role = token_with(json!({"sub": "a", "role": "Admin", "exp": now() + 60}));
    check_ours(&send(&app, get(b"/fhir/r4/$export", Some(&role))).await, "role Admin", 403, "forbidden");
    assert_eq!(app.queue.queue_len().await.expect("queue length"), 0, "a hostile token enqueued a job");
    still_serving(&app).await;
}

#[tokio::test]
async fn hs256_tokens_are_refused_when_only_rs256_is_configured_and_vice_versa() {
    let rsa_only = TestApp::spawn_with(&[
        ("BULK__AUTH__PUBLIC_KEY_FILE", &format!("{}/fixtures/rsa-public.pem", env!("CARGO_MANIFEST_DIR"))),
        ("BULK__AUTH__HS256_SECRET", ""),
    ])
    .await;
    let claims = json!({"sub": "a", "role": "admin", "exp": now() + 600});
    let hs_secret = token_with(claims.clone());
    let hs_pem = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&fixture("rsa-public.pem")))
        .expect("sign");
    let es = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(&fixture("ec-private.pem")).expect("EC key"),
    )
    .expect("sign");
    let rs_header_hs_pem = {
        let message = format!(
            "{}.{}",
            bulk_testkit::base64url(br#"{"alg":"RS256"}"#),
            bulk_testkit::base64url(claims.to_string().as_bytes())
        );
        let key = EncodingKey::from_secret(&fixture("rsa-public.pem"));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
        format!("{message}.{signature}")
    };
    for (what, token) in [
        ("HS256 with the shared secret", hs_secret),
        ("HS256 keyed with the public key", hs_pem),
        ("ES256 on an RSA key", es),
        ("RS256 header over an HMAC keyed with the public key", rs_header_hs_pem),
    ] {
        check_unauthorized(&send(&rsa_only, get(b"/fhir/r4/$export", Some(&token))).await, what);
    }
    let rs = encode(&Header::new(Algorithm::RS256), &claims, &rsa_key()).expect("sign");
    assert_eq!(send(&rsa_only, get(b"/fhir/r4/$export", Some(&rs))).await.status, 202);

    let hs_only = TestApp::spawn().await;
    check_unauthorized(&send(&hs_only, get(b"/fhir/r4/$export", Some(&rs))).await, "RS256 on an HS256 server");
    assert_eq!(send(&hs_only, get(b"/fhir/r4/$export", Some(&admin()))).await.status, 202);
}

both_modes!(
    malformed_job_ids_are_not_found_on_every_route,
    garbage_in_every_parameter_is_a_400_outcome,
    oversized_and_malformed_headers_and_bodies_are_refused_without_a_crash,
    hostile_tokens_are_401_outcomes_on_every_route,
);
