//! The usage document's flow, end to end.

use std::collections::BTreeMap;

use bulk_resources::{PatientFilter, ResourceQuery};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Every stored resource of `ty`, as the store holds it, by id.
async fn stored(app: &TestApp, ty: &str) -> BTreeMap<String, String> {
    let q = ResourceQuery {
        resource_type: ty.into(),
        patients: PatientFilter::All,
        since: None,
        until: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    let page = app.resources.page(&q, None, 100_000).await.expect("page");
    page.into_iter().map(|r| (r.id, r.json)).collect()
}

async fn an_admin_export_runs_from_kick_off_to_files_fetched_back_from_ipfs(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(4, 3).await;
    let token = admin();

    let status = app.kick_off("/fhir/r4/Patient/$export?_type=Patient,DocumentReference", &token).await;

    // Queued: 202 with the usage document's body and the IG's headers.
    let res = app.get(&status, Some(&token)).await;
    assert_eq!(res.status(), 202);
    assert!(res.headers()["retry-after"].to_str().expect("ascii").parse::<u32>().is_ok());
    assert!(res.headers().contains_key("x-progress"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["progress"], 0);
    assert!(body["status"].is_string() && body["totalResources"].is_u64(), "{body}");

    assert_eq!(app.run_worker().await, 1);

    let manifest = app.manifest(&status, &token).await;
    assert_eq!(manifest["request"], format!("{PUBLIC_BASE}/fhir/r4/Patient/$export?_type=Patient,DocumentReference"));
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(manifest["error"], serde_json::json!([]));
    let tt = manifest["transactionTime"].as_str().expect("transactionTime");
    time::OffsetDateTime::parse(tt, &time::format_description::well_known::Rfc3339).expect("FHIR instant");

    let output = manifest["output"].as_array().expect("output");
    let types: Vec<&str> = output.iter().map(|o| o["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["Patient", "DocumentReference"]);
    for item in output {
        let ty = item["type"].as_str().expect("type");
        let url = item["url"].as_str().expect("url");
        assert!(url.starts_with("ipfs://Qm"), "{url}");
        let bytes = app.fetch_ipfs(url).await;
        let expected = stored(&app, ty).await;
        // Every line is a stored resource, byte for byte, each exactly once.
        let lines: Vec<&str> = std::str::from_utf8(&bytes).expect("utf8").lines().collect();
        assert_eq!(item["count"], lines.len() as u64);
        assert_eq!(lines.len(), expected.len());
        let mut seen = BTreeMap::new();
        for line in lines {
            let v: Value = serde_json::from_str(line).expect("json line");
            assert_eq!(v["resourceType"], ty);
            let id = v["id"].as_str().expect("id").to_owned();
            assert_eq!(expected.get(&id).map(String::as_str), Some(line), "line differs from the stored resource");
            assert!(seen.insert(id, ()).is_none(), "resource exported twice");
        }
        // The extension names the file's CID, size and SHA-256.
        let ext = item["extension"].as_array().expect("extension");
        let sha = format!("{:x}", Sha256::digest(&bytes));
        assert!(ext.iter().any(|e| e["valueString"] == sha), "sha256 missing: {ext:?}");
        assert!(ext.iter().any(|e| e["valueDecimal"] == bytes.len()), "size missing: {ext:?}");
        assert!(ext.iter().any(|e| url.ends_with(e["valueString"].as_str().unwrap_or("-"))), "cid missing");
    }
    assert_eq!(output[0]["count"], 4);
    assert_eq!(output[1]["count"], 12);
}

async fn the_files_are_also_served_by_the_api_to_their_owner(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 1).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Consent", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let url = manifest["output"][0]["url"].as_str().expect("url");
    let cid = url.trim_start_matches("ipfs://");
    let id = status.rsplit('/').next().expect("id");

    let res = app.get(&format!("/fhir/r4/$export-file/{id}/{cid}"), Some(&token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
    let served = res.bytes().await.expect("body");
    assert_eq!(served.to_vec(), app.fetch_ipfs(url).await);
    assert_eq!(ndjson(&served).len(), 2);

    let other = patient("seed-p0000000");
    assert_outcome(app.get(&format!("/fhir/r4/$export-file/{id}/{cid}"), Some(&other)).await, 403, "forbidden").await;
    assert_outcome(app.get(&format!("/fhir/r4/$export-file/{id}/{cid}"), None).await, 401, "login").await;
    let unknown = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
    assert_outcome(app.get(&format!("/fhir/r4/$export-file/{id}/{unknown}"), Some(&token)).await, 404, "not-found")
        .await;
}

async fn type_filtering_exports_only_the_requested_types_and_no_entry_for_empty_types(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 2).await;
    let token = admin();
    // Repeated and comma-separated forms combine.
    let status = app.kick_off("/fhir/r4/$export?_type=Consent&_type=Provenance,Consent", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let summary: Vec<(String, u64)> = manifest["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|o| (o["type"].as_str().expect("t").to_owned(), o["count"].as_u64().expect("count")))
        .collect();
    assert_eq!(summary, [("Consent".to_owned(), 3), ("Provenance".to_owned(), 3)]);

    // No resources of a requested type: no output entry at all.
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(0, 0).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    assert_eq!(manifest["output"], serde_json::json!([]));
}

async fn no_type_parameter_exports_all_four_supported_types(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 2).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let counts: BTreeMap<String, u64> = manifest["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|o| (o["type"].as_str().expect("t").to_owned(), o["count"].as_u64().expect("c")))
        .collect();
    let expected: BTreeMap<String, u64> = [("Patient", 2), ("DocumentReference", 4), ("Consent", 2), ("Provenance", 2)]
        .into_iter()
        .map(|(t, c)| (t.to_owned(), c))
        .collect();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn a_job_whose_content_store_is_down_fails_with_an_outcome_naming_what_failed() {
    let app = TestApp::spawn().await;
    app.seed(1, 1).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.worker_with_dead_ipfs().run_until_empty().await.expect("ran");
    let diagnostics = assert_outcome(app.get(&status, Some(&token)).await, 500, "transient").await;
    assert!(diagnostics.contains("Patient") && diagnostics.contains("IPFS"), "{diagnostics}");
    assert!(!diagnostics.contains("127.0.0.1"), "internals leaked: {diagnostics}");
}

async fn a_resource_written_after_the_transaction_time_is_not_in_the_export(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(300, 0).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    let worker = app.worker();
    let run = tokio::spawn(async move { worker.run_until_empty().await });
    // Once the export has taken its transaction time and read a page, write a
    // patient whose id sorts after every other: later pages would reach it.
    app.wait_for_record(&status, |r| r.transaction_time.is_some() && r.processed > 0).await;
    let late = bulk_resources::NewResource {
        resource_type: "Patient".into(),
        id: "zzzz-late".into(),
        patient_ids: vec!["zzzz-late".into()],
        json: r#"{"resourceType":"Patient","id":"zzzz-late"}"#.into(),
    };
    app.resources.upsert(&[late]).await.expect("upsert");
    run.await.expect("join").expect("worker");

    let manifest = app.manifest(&status, &token).await;
    assert_eq!(manifest["output"][0]["count"], 300);
    let bytes = app.fetch_ipfs(manifest["output"][0]["url"].as_str().expect("url")).await;
    assert!(!ndjson(&bytes).iter().any(|r| r["id"] == "zzzz-late"));

    // The next export sees it, with a later transaction time.
    let next = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let m2 = app.manifest(&next, &token).await;
    assert_eq!(m2["output"][0]["count"], 301);
    assert!(m2["transactionTime"].as_str() > manifest["transactionTime"].as_str());
}

both_modes!(
    an_admin_export_runs_from_kick_off_to_files_fetched_back_from_ipfs,
    the_files_are_also_served_by_the_api_to_their_owner,
    type_filtering_exports_only_the_requested_types_and_no_entry_for_empty_types,
    no_type_parameter_exports_all_four_supported_types,
    a_resource_written_after_the_transaction_time_is_not_in_the_export,
);

#[tokio::test]
async fn both_modes_export_the_same_data_to_byte_identical_files_with_identical_cids() {
    let mut manifests = Vec::new();
    for mode in [Mode::Production, Mode::Embedded] {
        let app = TestApp::spawn_in(mode, &[]).await;
        assert_eq!(app.mode, mode);
        app.seed(6, 2).await;
        let status = app.kick_off("/fhir/r4/$export", &admin()).await;
        app.run_worker().await;
        let manifest = app.manifest(&status, &admin()).await;
        for item in manifest["output"].as_array().expect("output") {
            // The CID in the manifest is the CID of the bytes served.
            let bytes = app.fetch_ipfs(item["url"].as_str().expect("url")).await;
            let mut cid = bulk_content::CidBuilder::new();
            cid.update(&bytes);
            assert_eq!(format!("ipfs://{}", cid.finish()), item["url"]);
        }
        manifests.push(manifest["output"].clone());
    }
    assert_eq!(manifests[0], manifests[1]);
}

async fn discovery_and_the_complete_response_carry_what_bulk_clients_look_for(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let res = app.get("/fhir/r4/metadata", None).await;
    assert_eq!(res.status(), 200);
    let cs: Value = res.json().await.expect("json");
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["instantiates"][0], "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data");
    let ops = cs["rest"][0]["operation"].to_string() + &cs["rest"][0]["resource"].to_string();
    for op in ["export", "patient-export", "group-export"] {
        assert!(ops.contains(&format!("bulkdata/OperationDefinition/{op}\"")), "{op} missing from {ops}");
    }
    assert_eq!(app.get("/.well-known/smart-configuration", None).await.status(), 200);

    app.seed(1, 0).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    app.run_worker().await;
    let res = app.get(&status, Some(&admin())).await;
    assert_eq!(res.status(), 200);
    let expires = res.headers()["expires"].to_str().expect("ascii").to_owned();
    let expires =
        time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc2822).expect("HTTP date");
    let in_hours = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((23..=24).contains(&in_hours), "Expires {expires} is not 24 h away");
}

both_modes!(discovery_and_the_complete_response_carry_what_bulk_clients_look_for);
