//! Faults during an export: transient failures are retried, a crashed
//! attempt is resumed after its last completed file.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bulk_core::JobStatus;

use crate::helpers::*;

async fn a_transient_content_store_failure_is_retried_and_the_export_completes(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 1).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient,Consent", &admin()).await;
    app.faulty_worker(2, None).run_until_empty().await.expect("ran");
    let manifest = app.manifest(&status, &admin()).await;
    let counts: Vec<u64> =
        manifest["output"].as_array().expect("o").iter().map(|o| o["count"].as_u64().expect("c")).collect();
    assert_eq!(counts, [3, 3]);
    let id = status.rsplit('/').next().expect("id").parse().expect("id");
    assert_eq!(app.queue.get(&id).await.expect("get").expect("rec").attempts, 1, "retried in place, not re-queued");
}

async fn exhausted_retries_fail_the_job_as_transient_and_dead_letter_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__RETRY_MAX", "2")]).await;
    app.seed(1, 0).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    app.faulty_worker(3, None).run_until_empty().await.expect("ran");
    let diagnostics = assert_outcome(app.get(&status, Some(&admin())).await, 500, "transient").await;
    assert!(diagnostics.contains("Patient"), "{diagnostics}");
    let dead = app.queue.list(&bulk_queue::JobFilter { status: Some(JobStatus::Failed), owner: None }, 10).await;
    assert_eq!(dead.expect("list").len(), 1);
}

async fn a_crashed_attempt_resumes_after_its_last_completed_file(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__LEASE_SECS", "3")]).await;
    app.seed(20, 2).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient,DocumentReference,Consent", &admin()).await;
    let id = status.rsplit('/').next().expect("id").parse().expect("id");

    // The first attempt writes the Patient file, then stalls on the next one and "dies".
    let doomed = app.faulty_worker(0, Some(1));
    let run = tokio::spawn(async move { doomed.run_until_empty().await });
    app.wait_for_record(&status, |r| r.checkpoint.len() == 1).await;
    run.abort();
    let checkpoint = app.queue.get(&id).await.expect("get").expect("rec").checkpoint;
    assert_eq!(checkpoint[0].resource_type, "Patient");

    // After the lease expires another worker takes over and re-reads only what is left.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (worker, pages) = app.counted_worker();
    assert_eq!(worker.run_until_empty().await.expect("ran"), 1);
    let manifest = app.manifest(&status, &admin()).await;
    let types: Vec<&str> =
        manifest["output"].as_array().expect("o").iter().map(|o| o["type"].as_str().expect("t")).collect();
    assert_eq!(types, ["Patient", "DocumentReference", "Consent"]);
    assert_eq!(manifest["output"][0]["url"].as_str(), Some(checkpoint[0].url.as_str()), "the completed file was kept");
    let counts: Vec<u64> =
        manifest["output"].as_array().expect("o").iter().map(|o| o["count"].as_u64().expect("c")).collect();
    assert_eq!(counts, [20, 40, 20]);
    // DocumentReference: 40 at 7 a page = 6 pages; Consent: 20 = 3 pages. No Patient page was read again.
    assert_eq!(pages.pages.load(Ordering::SeqCst), 9);
    let record = app.queue.get(&id).await.expect("get").expect("rec");
    assert_eq!((record.attempts, record.status), (2, JobStatus::Completed));
    // Every resource exactly once.
    for item in manifest["output"].as_array().expect("o") {
        let lines = ndjson(&app.fetch_ipfs(item["url"].as_str().expect("url")).await);
        let mut ids: Vec<String> = lines.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect();
        ids.dedup();
        assert_eq!(ids.len() as u64, item["count"].as_u64().expect("count"));
    }
}

both_modes!(
    a_transient_content_store_failure_is_retried_and_the_export_completes,
    exhausted_retries_fail_the_job_as_transient_and_dead_letter_it,
    a_crashed_attempt_resumes_after_its_last_completed_file,
);
