//! What an export contains: file splitting and the IG's export parameters,
//! checked on the files themselves.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

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

both_modes!(
    a_type_with_more_resources_than_a_file_holds_is_split_into_files_with_exact_counts,
    files_are_also_cut_by_size,
);
