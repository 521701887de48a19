//! Status polling and file serving: the `ig-v2` switch (cancel status,
//! absolute file URLs), every manifest file downloadable, `Range`, gzip,
//! `Retry-After` sized to the work left, and `429` throttling.

use std::io::Read;
use std::time::Duration;

use bulk_core::{Manifest, OutputFile};
use bulk_queue::Progress;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// The job id in a status path.
fn job_id(status: &str) -> bulk_core::JobId {
    status.rsplit('/').next().expect("id").parse().expect("job id")
}

/// The CID in a manifest item's `cid` extension.
fn cid_of(item: &Value) -> String {
    let ext = item["extension"].as_array().expect("extension");
    let cid = ext.iter().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/cid"))).expect("cid extension");
    cid["valueString"].as_str().expect("cid").to_owned()
}

/// Stores `bytes` and describes them as a manifest file of `ty`, as a worker would.
async fn stored_file(app: &TestApp, ty: &str, bytes: Vec<u8>, count: u64) -> OutputFile {
    let sha = format!("{:x}", Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    let stored = app.content.put(Box::new(std::io::Cursor::new(bytes))).await.expect("put");
    let ext = "https://fhir-bulk.dev/StructureDefinition";
    OutputFile {
        resource_type: ty.into(),
        url: stored.cid.ipfs_url(),
        count,
        extension: vec![
            json!({"url": format!("{ext}/cid"), "valueString": stored.cid.as_str()}),
            json!({"url": format!("{ext}/size"), "valueDecimal": size}),
            json!({"url": format!("{ext}/sha256"), "valueString": sha}),
        ],
    }
}

/// Completes the only queued job by hand with one `output`, one `error` and
/// one `deleted` file (no worker writes the last two yet); returns their
/// bytes in that order.
async fn complete_with_every_kind_of_file(app: &TestApp, status: &str) -> [Vec<u8>; 3] {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let output = format!("{{\"resourceType\":\"Patient\",\"id\":\"{tag}\"}}\n").into_bytes();
    let error = format!(
        "{{\"resourceType\":\"OperationOutcome\",\"issue\":[{{\"severity\":\"error\",\"code\":\"processing\",\"diagnostics\":\"{tag}\"}}]}}\n"
    )
    .into_bytes();
    let deleted = format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{{\"request\":{{\"method\":\"DELETE\",\"url\":\"Patient/{tag}\"}}}}]}}\n"
    )
    .into_bytes();
    let claimed = app.queue.claim("test-worker").await.expect("claim").expect("a queued job");
    assert_eq!(claimed.id, job_id(status));
    let manifest = Manifest {
        transaction_time: "2026-01-01T00:00:00Z".into(),
        request: format!("{PUBLIC_BASE}/fhir/r4/$export"),
        requires_access_token: true,
        output: vec![stored_file(app, "Patient", output.clone(), 1).await],
        error: vec![stored_file(app, "OperationOutcome", error.clone(), 1).await],
        deleted: vec![stored_file(app, "Bundle", deleted.clone(), 1).await],
    };
    let files = manifest.output.iter().chain(&manifest.error).chain(&manifest.deleted);
    let cids: Vec<String> = files.map(|f| f.url.trim_start_matches("ipfs://").to_owned()).collect();
    assert!(app.queue.complete(&claimed.id, "test-worker", &manifest, &cids).await.expect("complete"));
    [output, error, deleted]
}

async fn cancel_answers_204_by_default_and_202_with_an_outcome_in_ig_v2_mode(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    let res = app.delete(&status, &admin()).await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.expect("body").is_empty());

    let app = TestApp::spawn_in(mode, &[IG_V2]).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    let res = app.delete(&status, &admin()).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["content-type"], "application/fhir+json");
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"][0]["severity"], "information", "{body}");
    assert_outcome(app.get(&status, Some(&admin())).await, 404, "not-found").await;
}

async fn ig_v2_manifest_urls_are_absolute_and_downloadable_only_by_the_owner(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[IG_V2]).await;
    app.seed(2, 2).await;
    let owner = patient("seed-p0000000");
    let status = app.kick_off("/fhir/r4/Patient/$export", &owner).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &owner).await;
    assert_eq!(manifest["requiresAccessToken"], true);
    let id = job_id(&status);
    let output = manifest["output"].as_array().expect("output");
    assert!(!output.is_empty(), "{manifest}");
    for item in output {
        let cid = cid_of(item);
        let url = item["url"].as_str().expect("url");
        assert_eq!(url, format!("{PUBLIC_BASE}/fhir/r4/$export-file/{id}/{cid}"));
        assert_eq!(item["extension"].as_array().map(Vec::len), Some(3), "extensions stay in ig-v2 mode");
        let path = url.strip_prefix(PUBLIC_BASE).expect("under the public base");

        let res = app.get(path, Some(&owner)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
        let body = res.bytes().await.expect("body").to_vec();
        assert_eq!(body, fetch(app.content.as_ref(), &cid.parse().expect("cid")).await);
        assert_eq!(ndjson(&body).len() as u64, item["count"].as_u64().expect("count"));

        assert_outcome(app.get(path, None).await, 401, "login").await;
        assert_outcome(app.get(path, Some(&patient("seed-p0000001"))).await, 403, "forbidden").await;
    }
    // What is stored keeps the usage document's ipfs:// URLs.
    let record = app.queue.get(&id).await.expect("get").expect("record");
    assert!(record.manifest.expect("manifest").output.iter().all(|f| f.url.starts_with("ipfs://")));
}

async fn error_and_deleted_files_are_downloadable_until_the_export_is_cancelled(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[IG_V2]).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    let files = complete_with_every_kind_of_file(&app, &status).await;
    let manifest = app.manifest(&status, &admin()).await;
    let items = ["output", "error", "deleted"].map(|k| manifest[k][0].clone());
    let mut paths = Vec::new();
    for (item, bytes) in items.iter().zip(&files) {
        let cid = cid_of(item);
        let file_url = item["url"].as_str().expect("url").strip_prefix(PUBLIC_BASE).expect("absolute").to_owned();
        for path in [file_url, format!("/ipfs/{cid}")] {
            let res = app.get(&path, Some(&admin())).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(&res.bytes().await.expect("body").to_vec(), bytes, "{path}");
            assert_outcome(app.get(&path, Some(&patient("p1"))).await, 403, "forbidden").await;
            paths.push(path);
        }
    }
    assert_eq!(app.delete(&status, &admin()).await.status(), 202);
    for path in &paths {
        assert_outcome(app.get(path, Some(&admin())).await, 404, "not-found").await;
    }
}

async fn an_expired_exports_files_are_404_on_the_file_endpoint(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__RECORD_TTL_SECS", "1")]).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    complete_with_every_kind_of_file(&app, &status).await;
    let manifest = app.manifest(&status, &admin()).await;
    let file = |k: &str| format!("/fhir/r4/$export-file/{}/{}", job_id(&status), cid_of(&manifest[k][0]));
    assert_eq!(app.get(&file("error"), Some(&admin())).await.status(), 200);
    // The record's TTL runs out (1 s).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for kind in ["output", "error", "deleted"] {
        assert_outcome(app.get(&file(kind), Some(&admin())).await, 404, "not-found").await;
    }
}

/// `GET path` as the admin with extra request headers.
async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.address)).bearer_auth(admin());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("sent")
}

async fn range_requests_answer_206_with_exactly_the_requested_bytes_and_416_past_the_end(mode: Mode) {
    // Encrypted files, so ranges are cut from the decrypted stream, across its 64 KiB chunks.
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__ENCRYPT_FILES", "true")]).await;
    app.seed(30, 60).await;
    app.add_unique_patient().await;
    let status = app.kick_off("/fhir/r4/$export?_type=DocumentReference", &admin()).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &admin()).await;
    let cid = cid_of(&manifest["output"][0]);
    for path in [format!("/fhir/r4/$export-file/{}/{cid}", job_id(&status)), format!("/ipfs/{cid}")] {
        let res = get_with(&app, &path, &[]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["accept-ranges"], "bytes");
        assert_eq!(res.headers()["etag"], format!("\"{cid}\""));
        let len: usize = res.headers()["content-length"].to_str().expect("ascii").parse().expect("length");
        let full = res.bytes().await.expect("body").to_vec();
        assert_eq!(full.len(), len);
        assert!(len > 70_000, "the file spans several encryption chunks: {len} bytes");

        let cases = [
            ("bytes=0-9".to_owned(), 0, 9),
            ("bytes=65530-65545".to_owned(), 65530, 65545),
            ("bytes=70000-".to_owned(), 70000, len - 1),
            ("bytes=-100".to_owned(), len - 100, len - 1),
            (format!("bytes=10-{}", len + 500), 10, len - 1),
        ];
        for (range, start, end) in cases {
            let res = get_with(&app, &path, &[("Range", &range), ("Accept-Encoding", "gzip")]).await;
            assert_eq!(res.status(), 206, "{range}");
            assert_eq!(res.headers()["content-range"], format!("bytes {start}-{end}/{len}"), "{range}");
            assert!(res.headers().get("content-encoding").is_none(), "a range is served uncompressed");
            assert_eq!(res.headers()["content-length"], (end - start + 1).to_string(), "{range}");
            assert_eq!(res.bytes().await.expect("body").to_vec(), &full[start..=end], "{range}");
        }

        let res = get_with(&app, &path, &[("Range", &format!("bytes={len}-"))]).await;
        assert_eq!(res.headers()["content-range"], format!("bytes */{len}"));
        assert_outcome(res, 416, "invalid").await;
        // Several ranges, or an If-Range for another version, get the whole file.
        let res = get_with(&app, &path, &[("Range", "bytes=0-1,5-6")]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.expect("body").to_vec(), full);
        let res = get_with(&app, &path, &[("Range", "bytes=0-1"), ("If-Range", "\"other\"")]).await;
        assert_eq!(res.status(), 200);
        let res = get_with(&app, &path, &[("Range", "bytes=0-1"), ("If-Range", &format!("\"{cid}\""))]).await;
        assert_eq!(res.status(), 206);
    }
}

async fn a_gzip_download_decompresses_to_the_exact_file(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(20, 5).await;
    app.add_unique_patient().await;
    let status = app.kick_off("/fhir/r4/$export?_type=DocumentReference", &admin()).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &admin()).await;
    let cid = cid_of(&manifest["output"][0]);
    let full = fetch(app.content.as_ref(), &cid.parse().expect("cid")).await;
    for path in [format!("/fhir/r4/$export-file/{}/{cid}", job_id(&status)), format!("/ipfs/{cid}")] {
        let res = get_with(&app, &path, &[("Accept-Encoding", "br;q=0.9, gzip;q=0.8")]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-encoding"], "gzip");
        assert_eq!(res.headers()["vary"], "Accept-Encoding");
        assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
        let gz = res.bytes().await.expect("body").to_vec();
        assert!(gz.len() < full.len(), "{} compressed vs {} plain bytes", gz.len(), full.len());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain).expect("valid gzip");
        assert_eq!(plain, full);

        let res = get_with(&app, &path, &[("Accept-Encoding", "gzip;q=0, identity")]).await;
        assert!(res.headers().get("content-encoding").is_none(), "q=0 refuses gzip");
        assert_eq!(res.bytes().await.expect("body").to_vec(), full);
    }
}

/// The `Retry-After` of a `202` poll, checked to be delta-seconds.
async fn retry_after(app: &TestApp, status: &str) -> u64 {
    let res = app.get(status, Some(&admin())).await;
    assert_eq!(res.status(), 202);
    let value = res.headers()["retry-after"].to_str().expect("ascii").to_owned();
    let secs: u64 = value.parse().unwrap_or_else(|_| panic!("Retry-After {value:?} is not delta-seconds"));
    assert!((1..=60).contains(&secs), "{secs}");
    secs
}

async fn retry_after_is_a_positive_integer_that_grows_with_the_work_left(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    retry_after(&app, &status).await;
    // A stand-in worker reports progress, so the test decides the work left.
    let id = app.queue.claim("test-worker").await.expect("claim").expect("job").id;
    // Let some time pass since the claim: the estimate scales it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = |processed| Progress { total: Some(100_000), processed: Some(processed), ..Default::default() };
    assert!(app.queue.heartbeat(&id, "test-worker", &report(1)).await.expect("heartbeat"));
    let early = retry_after(&app, &status).await;
    assert!(app.queue.heartbeat(&id, "test-worker", &report(99_999)).await.expect("heartbeat"));
    let late = retry_after(&app, &status).await;
    assert!(early > late, "Retry-After {early} s with most work left, {late} s with almost none");
}

async fn polling_one_export_far_too_often_answers_429_with_retry_after(mode: Mode) {
    let app =
        TestApp::spawn_in(mode, &[("BULK__SERVER__POLL_BURST", "3"), ("BULK__SERVER__POLL_REFILL_MS", "60000")]).await;
    let owner = patient("p1");
    let status = app.kick_off("/fhir/r4/Patient/$export", &owner).await;
    for _ in 0..3 {
        assert_eq!(app.get(&status, Some(&owner)).await.status(), 202);
    }
    let res = app.get(&status, Some(&owner)).await;
    let wait: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("delta-seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_outcome(res, 429, "throttled").await;
    // Another client polling the same job has a bucket of its own.
    assert_eq!(app.get(&status, Some(&admin())).await.status(), 202);
}

async fn a_client_with_too_many_active_exports_gets_429_at_kick_off(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__SERVER__MAX_ACTIVE_EXPORTS_PER_CLIENT", "2")]).await;
    app.seed(1, 0).await;
    let owner = patient("seed-p0000000");
    let kick_off_with_key = |key: &'static str| {
        let req = app.client.get(format!("{}/fhir/r4/Patient/$export", app.address)).bearer_auth(&owner);
        req.header("idempotency-key", key).send()
    };
    let first = kick_off_with_key("k-1").await.expect("sent");
    assert_eq!(first.status(), 202);
    app.kick_off("/fhir/r4/Patient/$export", &owner).await;
    // At the limit, a retried kick-off still gets the job its key made.
    let retried = kick_off_with_key("k-1").await.expect("sent");
    assert_eq!(retried.status(), 202);
    assert_eq!(retried.headers()["content-location"], first.headers()["content-location"]);
    let res = app.get("/fhir/r4/Patient/$export", Some(&owner)).await;
    let wait: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("delta-seconds");
    assert!(wait >= 1);
    assert_outcome(res, 429, "throttled").await;
    assert_eq!(app.queue.queue_len().await.expect("len"), 2, "the refused kick-off was enqueued");
    // Other clients are not affected; once the exports finish the client may start more.
    app.kick_off("/fhir/r4/$export", &admin()).await;
    app.run_worker().await;
    app.kick_off("/fhir/r4/Patient/$export", &owner).await;
}

both_modes!(
    cancel_answers_204_by_default_and_202_with_an_outcome_in_ig_v2_mode,
    ig_v2_manifest_urls_are_absolute_and_downloadable_only_by_the_owner,
    error_and_deleted_files_are_downloadable_until_the_export_is_cancelled,
    an_expired_exports_files_are_404_on_the_file_endpoint,
    range_requests_answer_206_with_exactly_the_requested_bytes_and_416_past_the_end,
    a_gzip_download_decompresses_to_the_exact_file,
    retry_after_is_a_positive_integer_that_grows_with_the_work_left,
    polling_one_export_far_too_often_answers_429_with_retry_after,
    a_client_with_too_many_active_exports_gets_429_at_kick_off,
);
