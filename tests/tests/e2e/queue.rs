//! Job records in Redis: TTLs and transitions.

use std::time::Duration;

use bulk_core::{ExportLevel, ExportRequest, JobId, JobStatus, ResourceType};
use bulk_queue::JobQueue;

use crate::helpers::*;

fn request() -> ExportRequest {
    ExportRequest::new(ExportLevel::System, vec![ResourceType::PATIENT], "https://x/fhir/r4/$export")
}

async fn every_job_record_carries_a_ttl_and_a_finished_one_lives_24_hours(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(1, 0).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    let id: JobId = status.rsplit('/').next().expect("id").parse().expect("id");
    let queued_ttl = app.queue.record_ttl(&id).await.expect("ttl").expect("record");
    assert!(queued_ttl > 24 * 3600, "queued record TTL {queued_ttl}");

    app.run_worker().await;
    let ttl = app.queue.record_ttl(&id).await.expect("ttl").expect("record");
    assert!((24 * 3600 - 60..=24 * 3600).contains(&ttl), "completed record TTL {ttl}");

    let cancelled = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.delete(&cancelled, &token).await;
    let cid: JobId = cancelled.rsplit('/').next().expect("id").parse().expect("id");
    let ttl = app.queue.record_ttl(&cid).await.expect("ttl").expect("record");
    assert!((24 * 3600 - 60..=24 * 3600).contains(&ttl), "cancelled record TTL {ttl}");
}

async fn the_record_ttl_is_configurable_and_an_expired_job_is_not_found(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__RECORD_TTL_SECS", "1")]).await;
    app.seed(1, 0).await;
    let token = admin();
    let status = app.kick_off("/fhir/r4/$export?_type=Patient", &token).await;
    app.run_worker().await;
    assert_eq!(app.get(&status, Some(&token)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_outcome(app.get(&status, Some(&token)).await, 404, "not-found").await;
}

async fn a_job_whose_worker_lease_expired_is_requeued_and_claimed_again(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__LEASE_SECS", "3")]).await;
    let id = JobId::new();
    app.queue.enqueue(id, "u", &request(), None).await.expect("enqueue");
    let first = app.queue.claim("dead-worker").await.expect("claim").expect("a job");
    assert_eq!(first.id, id);
    assert_eq!(app.queue.claim("w2").await.expect("claim").map(|c| c.id), None);

    // The dead worker never renews; after the lease the reaper gives it back.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(app.queue.reap_expired_leases().await.expect("reap").requeued, 1);
    let again = app.queue.claim("w2").await.expect("claim").expect("requeued");
    assert_eq!(again.attempts, 2);
    assert_eq!(again.worker.as_deref(), Some("w2"));
    // The dead worker's late writes are refused.
    assert!(!app.queue.heartbeat(&id, "dead-worker", &bulk_queue::Progress::default()).await.expect("hb"));
    assert_eq!(app.queue.get(&id).await.expect("get").expect("rec").status, JobStatus::Running);
}

async fn a_job_that_keeps_losing_its_lease_fails_after_max_attempts(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__LEASE_SECS", "3"), ("BULK__WORKER__MAX_ATTEMPTS", "1")]).await;
    let id = JobId::new();
    app.queue.enqueue(id, "u", &request(), None).await.expect("enqueue");
    app.queue.claim("dead").await.expect("claim").expect("job");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(app.queue.reap_expired_leases().await.expect("reap").failed, 1);
    let record = app.queue.get(&id).await.expect("get").expect("record");
    assert_eq!(record.status, JobStatus::Failed);
    // It is a dead letter an operator can list.
    let dead = app.queue.list(&bulk_queue::JobFilter { status: Some(JobStatus::Failed), owner: None }, 10).await;
    assert_eq!(dead.expect("list").iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    assert!(record.error.is_some());
    assert!(app.queue.record_ttl(&id).await.expect("ttl").is_some_and(|t| t > 0));
}

both_modes!(
    every_job_record_carries_a_ttl_and_a_finished_one_lives_24_hours,
    the_record_ttl_is_configurable_and_an_expired_job_is_not_found,
    a_job_whose_worker_lease_expired_is_requeued_and_claimed_again,
    a_job_that_keeps_losing_its_lease_fails_after_max_attempts,
);

#[tokio::test]
async fn embedded_jobs_and_records_survive_a_restart_and_a_running_job_runs_again() {
    let dir = TempDir::new();
    let path = dir.0.join("q.db");
    let config = bulk_queue::QueueConfig {
        record_ttl: Duration::from_secs(3600),
        active_ttl: Duration::from_secs(7200),
        lease: Duration::from_secs(1),
        max_attempts: 3,
    };
    let (queued, running) = (JobId::new(), JobId::new());
    {
        let q = bulk_queue::SqliteQueue::open(&path, config.clone()).await.expect("open");
        q.enqueue(running, "u", &request(), None).await.expect("enqueue");
        q.enqueue(queued, "u", &request(), None).await.expect("enqueue");
        assert_eq!(q.claim("process-that-dies").await.expect("claim").map(|r| r.id), Some(running));
    }
    // "Restart": a new process opens the same file.
    let q = bulk_queue::SqliteQueue::open(&path, config).await.expect("reopen");
    assert_eq!(q.get(&queued).await.expect("get").map(|r| r.status), Some(JobStatus::Queued));
    assert_eq!(q.get(&running).await.expect("get").map(|r| r.status), Some(JobStatus::Running));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(q.reap_expired_leases().await.expect("reap").requeued, 1);
    // The interrupted job goes first: it was queued first.
    let next = q.claim("new-process").await.expect("claim").expect("job");
    assert_eq!((next.id, next.attempts), (running, 2));
    assert_eq!(q.claim("new-process").await.expect("claim").map(|r| r.id), Some(queued));
}
