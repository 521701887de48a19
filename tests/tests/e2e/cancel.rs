//! DELETE on the status URL.

use bulk_core::JobStatus;

use crate::helpers::*;

async fn cancelling_a_queued_job_answers_204_then_404_and_no_worker_runs_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(1, 1).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export", &token).await;

    let res = app.delete(&status, &token).await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.expect("body").is_empty());
    let diagnostics = assert_outcome(app.get(&status, Some(&token)).await, 404, "not-found").await;
    assert_eq!(diagnostics, "Export job not found");
    // A second cancel finds nothing to cancel.
    assert_outcome(app.delete(&status, &token).await, 404, "not-found").await;

    assert_eq!(app.run_worker().await, 0, "a cancelled job was processed");
    assert_eq!(app.queue.queue_len().await.expect("len"), 0);
}

async fn cancelling_a_running_export_stops_the_worker_within_a_page(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__PAGE_SIZE", "5")]).await;
    app.seed(400, 1).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient,DocumentReference", &token).await;
    let id = status.rsplit('/').next().expect("id").parse().expect("job id");

    let (worker, counter) = app.counted_worker();
    let run = tokio::spawn(async move { worker.run_until_empty().await });
    app.wait_for_record(&status, |r| r.processed > 0).await;
    assert_eq!(app.delete(&status, &token).await.status(), 204);
    let pages_at_cancel = counter.pages.load(std::sync::atomic::Ordering::SeqCst);
    run.await.expect("join").expect("worker");
    // 160 pages in all; after the cancel at most the page in flight and one more are read.
    let pages = counter.pages.load(std::sync::atomic::Ordering::SeqCst);
    assert!(pages <= pages_at_cancel + 2, "worker read {pages} pages, {pages_at_cancel} at cancel");

    let record = app.queue.get(&id).await.expect("get").expect("record kept for its TTL");
    assert_eq!(record.status, JobStatus::Cancelled);
    assert!(record.manifest.is_none(), "a cancelled export wrote a manifest");
    assert_outcome(app.get(&status, Some(&token)).await, 404, "not-found").await;
}

async fn discarding_a_completed_export_makes_its_status_and_files_404(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(1, 0).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &token).await;
    let cid = manifest["output"][0]["url"].as_str().expect("url").trim_start_matches("ipfs://").to_owned();
    assert_eq!(app.delete(&status, &token).await.status(), 204);
    assert_outcome(app.get(&status, Some(&token)).await, 404, "not-found").await;
    let file = format!("{}/{cid}", status.replace("$export-status", "$export-file"));
    assert_outcome(app.get(&file, Some(&token)).await, 404, "not-found").await;
}

both_modes!(
    cancelling_a_queued_job_answers_204_then_404_and_no_worker_runs_it,
    cancelling_a_running_export_stops_the_worker_within_a_page,
    discarding_a_completed_export_makes_its_status_and_files_404,
);
