//! Who may export what, and see whose jobs.

use serde_json::Value;

use crate::helpers::*;

async fn a_patient_users_export_contains_only_their_own_compartment(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(5, 2).await;
    let me = "seed-p0000003";
    let token = patient(me);
    let status = app.kick_off("/fhir/r4/Patient/$export", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let mut total = 0;
    for item in manifest["output"].as_array().expect("output") {
        let resources = ndjson(&app.fetch_ipfs(item["url"].as_str().expect("url")).await);
        assert_eq!(item["count"], resources.len() as u64);
        for r in &resources {
            total += 1;
            let text = r.to_string();
            // Every reference to a patient in the resource is to this patient.
            for other in (0..5).map(|n| format!("seed-p{n:07}")).filter(|p| p != me) {
                assert!(!text.contains(&other), "{} of {other} leaked", r["resourceType"]);
            }
            let owner = match r["resourceType"].as_str() {
                Some("Patient") => r["id"].clone(),
                Some("DocumentReference") => Value::from(r["subject"]["reference"].as_str().map(|s| &s[8..])),
                Some("Consent") => Value::from(r["patient"]["reference"].as_str().map(|s| &s[8..])),
                Some("Provenance") => Value::from(r["target"][0]["reference"].as_str().map(|s| &s[8..])),
                other => panic!("unexpected type {other:?}"),
            };
            assert_eq!(owner, me);
        }
    }
    // 1 Patient + 2 DocumentReference + 1 Consent + 1 Provenance.
    assert_eq!(total, 5);
}

async fn a_patient_user_may_not_start_a_system_export_and_nothing_is_enqueued(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let res = app.get("/fhir/r4/$export", Some(&patient("p1"))).await;
    assert_eq!(assert_outcome(res, 403, "forbidden").await, "Access denied");
    assert_eq!(app.queue.queue_len().await.expect("len"), 0);
}

async fn status_cancel_and_download_of_a_job_are_refused_to_other_users(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 1).await;
    let owner = patient("seed-p0000000");
    let status = app.kick_off("/fhir/r4/Patient/$export", &owner).await;

    let intruder = patient("seed-p0000001");
    assert_eq!(assert_outcome(app.get(&status, Some(&intruder)).await, 403, "forbidden").await, "Access denied");
    assert_outcome(app.delete(&status, &intruder).await, 403, "forbidden").await;

    // The owner and an admin may poll it.
    assert_eq!(app.get(&status, Some(&owner)).await.status(), 202);
    assert_eq!(app.get(&status, Some(&admin())).await.status(), 202);

    app.run_worker().await;
    let manifest = app.manifest(&status, &owner).await;
    let cid = manifest["output"][0]["url"].as_str().expect("url").trim_start_matches("ipfs://").to_owned();
    let file = format!("{}/{cid}", status.replace("$export-status", "$export-file"));
    assert_outcome(app.get(&file, Some(&intruder)).await, 403, "forbidden").await;
    assert_eq!(app.get(&file, Some(&owner)).await.status(), 200);
    // The intruder's refused cancel did not cancel it.
    assert_eq!(app.get(&status, Some(&owner)).await.status(), 200);
}

async fn an_unknown_or_malformed_job_id_is_the_usage_documents_not_found_outcome(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let token = admin();
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".into(), "..%2F..%2Fetc".into()] {
        let res = app.get(&format!("/fhir/r4/$export-status/{id}"), Some(&token)).await;
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["content-type"], "application/fhir+json");
        let body: Value = res.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "not-found", "diagnostics": "Export job not found"}]})
        );
    }
}

async fn unsupported_types_and_parameters_are_400_outcomes_and_nothing_is_enqueued(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let token = admin();
    for (query, code, names) in [
        ("_type=Observation", "invalid", "Observation"),
        ("_type=Patient,patient", "invalid", "patient"),
        ("_type=", "invalid", "_type"),
        ("_outputFormat=text/csv", "invalid", "_outputFormat"),
        ("_since=2020-01-01&_type=Patient", "invalid", "_since"),
        ("_foo=1&_type=Patient", "not-supported", "_foo"),
    ] {
        let res = app.get(&format!("/fhir/r4/Patient/$export?{query}"), Some(&token)).await;
        let diagnostics = assert_outcome(res, 400, code).await;
        assert!(diagnostics.contains(names), "{query}: {diagnostics}");
    }
    assert_eq!(app.queue.queue_len().await.expect("len"), 0);
}

async fn an_unknown_route_is_a_404_outcome(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    assert_outcome(app.get("/fhir/r4/Observation", Some(&admin())).await, 404, "not-found").await;
}

both_modes!(
    a_patient_users_export_contains_only_their_own_compartment,
    a_patient_user_may_not_start_a_system_export_and_nothing_is_enqueued,
    status_cancel_and_download_of_a_job_are_refused_to_other_users,
    an_unknown_or_malformed_job_id_is_the_usage_documents_not_found_outcome,
    unsupported_types_and_parameters_are_400_outcomes_and_nothing_is_enqueued,
    an_unknown_route_is_a_404_outcome,
);

async fn a_kick_off_retried_with_the_same_idempotency_key_returns_the_same_job(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let kick = |token: String, key: &'static str, query: &'static str| {
        let req = app.client.get(format!("{}/fhir/r4/$export?{query}", app.address)).bearer_auth(token);
        req.header("Idempotency-Key", key).send()
    };
    let first = kick(admin(), "order-7", "_type=Patient").await.expect("sent");
    assert_eq!(first.status(), 202);
    let location = first.headers()["content-location"].clone();
    let again = kick(admin(), "order-7", "_type=Patient").await.expect("sent");
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["content-location"], location);
    assert_eq!(app.queue.queue_len().await.expect("len"), 1);

    // Another user's identical key is another job; the same key for another request is refused.
    let other = kick(
        token_with(serde_json::json!({"sub": "admin-2", "role": "admin", "exp": now() + 600})),
        "order-7",
        "_type=Patient",
    );
    let other = other.await.expect("sent");
    assert_eq!(other.status(), 202);
    assert_ne!(other.headers()["content-location"], location);
    assert_outcome(kick(admin(), "order-7", "_type=Consent").await.expect("sent"), 422, "conflict").await;
    let bad = kick(admin(), "has space", "_type=Patient").await.expect("sent");
    assert_outcome(bad, 400, "invalid").await;
    assert_eq!(app.queue.queue_len().await.expect("len"), 2);
}

both_modes!(a_kick_off_retried_with_the_same_idempotency_key_returns_the_same_job);
