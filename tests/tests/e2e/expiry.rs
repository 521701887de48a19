//! Expiry and cancellation clean up everything: records, and the pins of the
//! files, but never a file another live export lists or a download in flight.

use std::time::Duration;

use bulk_content::Cid;

use crate::helpers::*;

fn cids(manifest: &serde_json::Value) -> Vec<Cid> {
    manifest["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|o| o["url"].as_str().expect("url").trim_start_matches("ipfs://").parse().expect("cid"))
        .collect()
}

async fn pinned(app: &TestApp, cid: &Cid) -> bool {
    match app.content.get(cid).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("content store: {e}"),
    }
}

async fn an_expired_export_loses_its_record_its_file_endpoint_and_its_pins(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__RECORD_TTL_SECS", "1")]).await;
    app.seed(2, 1).await;
    app.add_unique_patient().await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient,DocumentReference", &admin()).await;
    app.run_worker().await;
    let files = cids(&app.manifest(&status, &admin()).await);
    assert!(pinned(&app, &files[0]).await);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_outcome(app.get(&status, Some(&admin())).await, 404, "not-found").await;
    // The reaper runs with every worker pass.
    app.run_worker().await;
    for cid in &files {
        assert!(!pinned(&app, cid).await, "{cid} still pinned after expiry");
        assert_outcome(app.get(&format!("/ipfs/{cid}"), Some(&admin())).await, 404, "not-found").await;
    }
}

async fn a_cancelled_export_is_unpinned_but_the_same_file_of_another_live_export_is_kept(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 0).await;
    app.add_unique_patient().await;
    // Two exports of the same data: the same bytes, the same CID.
    let first = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    let second = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    app.run_worker().await;
    let a = cids(&app.manifest(&first, &admin()).await);
    assert_eq!(a, cids(&app.manifest(&second, &admin()).await));
    let other = app.kick_off("/fhir/r4/$export?_type=Consent", &admin()).await;
    app.run_worker().await;
    let b = cids(&app.manifest(&other, &admin()).await);

    assert_eq!(app.delete(&first, &admin()).await.status(), 204);
    assert_eq!(app.delete(&other, &admin()).await.status(), 204);
    app.run_worker().await;
    assert!(pinned(&app, &a[0]).await, "a file another live export lists was unpinned");
    assert_eq!(app.get(&format!("/ipfs/{}", a[0]), Some(&admin())).await.status(), 200);
    assert!(!pinned(&app, &b[0]).await, "the cancelled export's own file is still pinned");
}

async fn a_file_being_downloaded_is_not_unpinned_until_the_download_ends(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 0).await;
    app.add_unique_patient().await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    app.run_worker().await;
    let cid = cids(&app.manifest(&status, &admin()).await).remove(0);

    // A download in flight (as the file endpoints mark it).
    app.queue.reading(cid.as_str(), true).await.expect("mark");
    assert_eq!(app.delete(&status, &admin()).await.status(), 204);
    app.run_worker().await;
    assert!(pinned(&app, &cid).await, "unpinned mid-download");

    app.queue.reading(cid.as_str(), false).await.expect("unmark");
    // Postponed by a minute; discarding again makes it due now, as that later pass would.
    let id = status.rsplit('/').next().expect("id").parse().expect("id");
    app.queue.discard_files(&id, &[cid.to_string()]).await.expect("discard");
    app.run_worker().await;
    assert!(!pinned(&app, &cid).await);
}

async fn a_download_through_the_api_releases_its_mark_when_it_ends(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 0).await;
    app.add_unique_patient().await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    app.run_worker().await;
    let cid = cids(&app.manifest(&status, &admin()).await).remove(0);
    let body = app.get(&format!("/ipfs/{cid}"), Some(&admin())).await.bytes().await.expect("body");
    assert!(!body.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.delete(&status, &admin()).await.status(), 204);
    app.run_worker().await;
    assert!(!pinned(&app, &cid).await, "a finished download kept the file pinned");
}

both_modes!(
    an_expired_export_loses_its_record_its_file_endpoint_and_its_pins,
    a_cancelled_export_is_unpinned_but_the_same_file_of_another_live_export_is_kept,
    a_file_being_downloaded_is_not_unpinned_until_the_download_ends,
    a_download_through_the_api_releases_its_mark_when_it_ends,
);
