//! What an export contains: file splitting and the IG's export parameters,
//! checked on the files themselves.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::resources::load_text;

/// Every type in the Synthea fixture.
pub const FIXTURE_TYPES: &str = "AllergyIntolerance,CarePlan,CareTeam,Claim,Condition,DiagnosticReport,Encounter,\
ExplanationOfBenefit,Group,Immunization,MedicationRequest,Observation,Organization,Patient,Practitioner,Procedure";

/// The lines of every file of `ty` in the manifest array `array` (`output`, `error`, `deleted`).
async fn lines_in(app: &TestApp, manifest: &Value, array: &str, ty: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for item in manifest[array].as_array().expect(array).iter().filter(|i| i["type"] == ty) {
        let bytes = app.fetch_ipfs(item["url"].as_str().expect("url")).await;
        let lines = ndjson(&bytes);
        assert_eq!(item["count"], lines.len() as u64, "count of a {ty} file in {array}");
        all.extend(lines);
    }
    all
}

fn ids(resources: &[Value]) -> BTreeSet<String> {
    resources.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect()
}

fn instant(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).expect("instant").replace('+', "%2B")
}

/// Kicks off with a POST `Parameters` body; returns the status path.
async fn kick_off_post(app: &TestApp, path: &str, parameters: Value) -> String {
    let res = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(admin())
        .header("content-type", "application/fhir+json")
        .header("prefer", "respond-async")
        .json(&json!({"resourceType": "Parameters", "parameter": parameters}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    let location = res.headers()["content-location"].to_str().expect("ascii");
    location.strip_prefix(PUBLIC_BASE).expect("under the public base").to_owned()
}

async fn export(app: &TestApp, path: &str) -> Value {
    let status = app.kick_off(path, &admin()).await;
    app.run_worker().await;
    app.manifest(&status, &admin()).await
}

/// The lines of every file of `ty` in `manifest`, fetched back, with each item's count checked.
async fn lines_of(app: &TestApp, manifest: &Value, ty: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for item in manifest["output"].as_array().expect("output").iter().filter(|i| i["type"] == ty) {
        let bytes = app.fetch_ipfs(item["url"].as_str().expect("url")).await;
        let text = String::from_utf8(bytes).expect("utf-8");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
        assert_eq!(item["count"], lines.len() as u64, "count of {ty} file");
        all.extend(lines);
    }
    all
}

async fn a_type_with_more_resources_than_a_file_holds_is_split_into_files_with_exact_counts(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__EXPORT__MAX_FILE_RESOURCES", "7")]).await;
    app.seed(23, 0).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let items: Vec<&Value> = manifest["output"].as_array().expect("output").iter().collect();
    let counts: Vec<u64> = items.iter().map(|i| i["count"].as_u64().expect("count")).collect();
    assert_eq!(counts, [7, 7, 7, 2], "{manifest}");
    let ids: BTreeSet<String> =
        lines_of(&app, &manifest, "Patient").await.iter().map(|p| p["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(ids.len(), 23, "every patient exactly once across the files");
}

async fn files_are_also_cut_by_size(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__EXPORT__MAX_FILE_BYTES", "2000")]).await;
    app.seed(10, 0).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let items = manifest["output"].as_array().expect("output");
    assert!(items.len() > 1, "{manifest}");
    for item in items {
        let size = item["extension"]
            .as_array()
            .expect("extension")
            .iter()
            .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/size")));
        let size = size.and_then(|s| s["valueDecimal"].as_u64()).expect("size extension");
        assert!(size <= 2000 || item["count"] == 1, "file of {size} bytes");
    }
    assert_eq!(lines_of(&app, &manifest, "Patient").await.len(), 10);
}

async fn since_exports_what_changed_after_it_and_lists_what_was_deleted(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = app.resources.now().await.expect("now");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let changed = app.resources.get("Patient", "seed-p0000001").await.expect("get").expect("seeded");
    load_text(app.resources.as_ref(), "changed.ndjson", &changed).await;
    let gone = [("DocumentReference".to_owned(), "seed-p0000002-doc001".to_owned())];
    assert_eq!(app.resources.delete(&gone).await.expect("delete"), 1);

    let manifest =
        export(&app, &format!("/fhir/r4/$export?_type=Patient,DocumentReference&_since={}", instant(since))).await;
    assert_eq!(
        ids(&lines_in(&app, &manifest, "output", "Patient").await),
        BTreeSet::from(["seed-p0000001".to_owned()])
    );
    assert!(lines_in(&app, &manifest, "output", "DocumentReference").await.is_empty());
    let deleted = lines_in(&app, &manifest, "deleted", "Bundle").await;
    assert_eq!(deleted.len(), 1, "{manifest}");
    assert_eq!(deleted[0]["type"], "transaction");
    assert_eq!(
        deleted[0]["entry"][0]["request"],
        json!({"method": "DELETE", "url": "DocumentReference/seed-p0000002-doc001"})
    );

    // Without _since nothing is listed as deleted, and the deleted resource is not exported.
    let manifest = export(&app, "/fhir/r4/$export?_type=DocumentReference").await;
    assert!(manifest.get("deleted").is_none_or(|d| d == &json!([])), "{manifest}");
    let docs = ids(&lines_in(&app, &manifest, "output", "DocumentReference").await);
    assert_eq!(docs.len(), 5);
    assert!(!docs.contains("seed-p0000002-doc001"));
}

async fn until_leaves_out_what_changed_after_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 0).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let until = app.resources.now().await.expect("now");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.add_unique_patient().await;
    let manifest = export(&app, &format!("/fhir/r4/$export?_type=Patient&_until={}", instant(until))).await;
    let exported = ids(&lines_in(&app, &manifest, "output", "Patient").await);
    assert_eq!(exported, BTreeSet::from(["seed-p0000000".to_owned(), "seed-p0000001".to_owned()]));
}

async fn type_filters_export_only_the_matching_resources_of_their_type(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__EXPORT__TYPES", FIXTURE_TYPES)]).await;
    app.load_fixture().await;
    let path = "/fhir/r4/$export?_type=Observation,Patient,Practitioner\
        &_typeFilter=Observation%3Fcategory%3Dlaboratory&_typeFilter=Patient%3Fgender%3Dfemale";
    let manifest = export(&app, path).await;
    let fixture = fixture_lines("Observation");
    let labs = fixture.iter().filter(|o| o["category"].to_string().contains("\"code\":\"laboratory\"")).count();
    let observations = lines_in(&app, &manifest, "output", "Observation").await;
    assert!(labs > 0 && labs < fixture.len());
    assert_eq!(observations.len(), labs);
    assert!(observations.iter().all(|o| o["category"].to_string().contains("laboratory")));
    let women = fixture_lines("Patient").iter().filter(|p| p["gender"] == "female").count();
    let patients = lines_in(&app, &manifest, "output", "Patient").await;
    assert_eq!(patients.len(), women);
    assert!(patients.iter().all(|p| p["gender"] == "female"));
    // A type without a filter is exported whole.
    assert_eq!(lines_in(&app, &manifest, "output", "Practitioner").await.len(), fixture_lines("Practitioner").len());
}

/// The resources of one type in the Synthea fixture.
fn fixture_lines(ty: &str) -> Vec<Value> {
    use std::io::Read;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("data/synthea-12/{ty}.ndjson.gz"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("fixture")).read_to_string(&mut text).expect("gzip");
    ndjson(text.as_bytes())
}

async fn elements_keep_the_named_and_mandatory_elements_and_tag_the_resource_subsetted(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 0).await;
    let manifest = export(&app, "/fhir/r4/$export?_type=Patient,Consent&_elements=gender,Consent.dateTime").await;
    for p in lines_in(&app, &manifest, "output", "Patient").await {
        let keys: BTreeSet<&str> = p.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["resourceType", "id", "meta", "gender"]), "{p}");
        assert!(p["meta"]["tag"].to_string().contains("SUBSETTED"), "{p}");
    }
    for c in lines_in(&app, &manifest, "output", "Consent").await {
        assert!(c.get("dateTime").is_some() && c.get("status").is_some(), "mandatory status kept: {c}");
        assert!(c.get("policyRule").is_none() && c.get("provision").is_none(), "{c}");
        assert!(c["meta"]["tag"].to_string().contains("SUBSETTED"), "{c}");
    }
}

async fn the_patient_parameter_exports_only_those_patients_and_reports_the_unknown_ones(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 1).await;
    let reference = |id: &str| json!({"name": "patient", "valueReference": {"reference": format!("Patient/{id}")}});
    let params = json!([
        {"name": "_type", "valueString": "Patient,DocumentReference"},
        reference("seed-p0000001"),
        reference("no-such-patient"),
    ]);
    let status = kick_off_post(&app, "/fhir/r4/Patient/$export", params).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &admin()).await;
    assert_eq!(manifest["request"], format!("{PUBLIC_BASE}/fhir/r4/Patient/$export"));
    assert_eq!(
        ids(&lines_in(&app, &manifest, "output", "Patient").await),
        BTreeSet::from(["seed-p0000001".to_owned()])
    );
    let docs = lines_in(&app, &manifest, "output", "DocumentReference").await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["subject"]["reference"], "Patient/seed-p0000001");
    let errors = lines_in(&app, &manifest, "error", "OperationOutcome").await;
    assert_eq!(errors.len(), 1, "{manifest}");
    assert!(errors[0]["issue"][0]["diagnostics"].as_str().expect("text").contains("Patient/no-such-patient"));
}

async fn a_group_export_covers_exactly_its_members_compartments(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(4, 1).await;
    let group = json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true, "member": [
        {"entity": {"reference": "Patient/seed-p0000000"}},
        {"entity": {"reference": "Patient/seed-p0000002"}},
        {"entity": {"reference": "Patient/seed-p0000003"}, "inactive": true},
    ]});
    load_text(app.resources.as_ref(), "group.ndjson", &group.to_string()).await;
    let manifest = export(&app, "/fhir/r4/Group/g1/$export?_type=Patient,DocumentReference").await;
    let members = BTreeSet::from(["seed-p0000000".to_owned(), "seed-p0000002".to_owned()]);
    assert_eq!(ids(&lines_in(&app, &manifest, "output", "Patient").await), members);
    let docs = lines_in(&app, &manifest, "output", "DocumentReference").await;
    let subjects: BTreeSet<String> = docs
        .iter()
        .map(|d| d["subject"]["reference"].as_str().expect("ref").trim_start_matches("Patient/").to_owned())
        .collect();
    assert_eq!(subjects, members);
}

async fn associated_provenance_is_all_of_it_or_only_the_latest_per_target(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 1).await;
    let seeded = app.resources.get("Provenance", "seed-p0000000-prov").await.expect("get").expect("seeded");
    let mut newer: Value = serde_json::from_str(&seeded).expect("JSON");
    newer["id"] = json!("seed-p0000000-prov2");
    newer["recorded"] = json!("2030-01-01T00:00:00Z");
    load_text(app.resources.as_ref(), "prov.ndjson", &newer.to_string()).await;

    let manifest =
        export(&app, "/fhir/r4/Patient/$export?_type=Patient&includeAssociatedData=RelevantProvenanceResources").await;
    let all = ids(&lines_in(&app, &manifest, "output", "Provenance").await);
    assert_eq!(all.len(), 3, "{all:?}");
    let manifest =
        export(&app, "/fhir/r4/Patient/$export?_type=Patient&includeAssociatedData=LatestProvenanceResources").await;
    let latest = ids(&lines_in(&app, &manifest, "output", "Provenance").await);
    assert_eq!(latest, BTreeSet::from(["seed-p0000000-prov2".to_owned(), "seed-p0000001-prov".to_owned()]));
}

async fn lenient_handling_exports_and_reports_what_it_ignored(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(1, 0).await;
    let path = "/fhir/r4/$export?_type=Patient&_frobnicate=yes";
    let strict = app.get(path, Some(&admin())).await;
    assert_outcome(strict, 400, "not-supported").await;
    let res = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(admin())
        .header("prefer", "respond-async, handling=lenient")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 202);
    let status =
        res.headers()["content-location"].to_str().expect("ascii").strip_prefix(PUBLIC_BASE).expect("base").to_owned();
    app.run_worker().await;
    let manifest = app.manifest(&status, &admin()).await;
    assert_eq!(lines_in(&app, &manifest, "output", "Patient").await.len(), 1);
    let errors = lines_in(&app, &manifest, "error", "OperationOutcome").await;
    assert_eq!(errors.len(), 1, "{manifest}");
    assert!(errors[0].to_string().contains("_frobnicate"), "{}", errors[0]);
}

both_modes!(
    since_exports_what_changed_after_it_and_lists_what_was_deleted,
    until_leaves_out_what_changed_after_it,
    type_filters_export_only_the_matching_resources_of_their_type,
    elements_keep_the_named_and_mandatory_elements_and_tag_the_resource_subsetted,
    the_patient_parameter_exports_only_those_patients_and_reports_the_unknown_ones,
    a_group_export_covers_exactly_its_members_compartments,
    associated_provenance_is_all_of_it_or_only_the_latest_per_target,
    lenient_handling_exports_and_reports_what_it_ignored,
);

both_modes!(
    a_type_with_more_resources_than_a_file_holds_is_split_into_files_with_exact_counts,
    files_are_also_cut_by_size,
);
