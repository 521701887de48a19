//! Real faults in the real services, mid-export: PostgreSQL connections
//! killed, the IPFS node unreachable, Redis killed and restarted. Each test
//! checks the end state: the job completed, every resource exactly once.

use std::collections::HashSet;
use std::time::Duration;

use bulk_core::JobStatus;
use bulk_testkit::{OwnRedis, TcpProxy, TestServices};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// Retries that outlast a few seconds of outage.
const PATIENT_RETRIES: [(&str, &str); 4] = [
    ("BULK__WORKER__RETRY_MAX", "10"),
    ("BULK__WORKER__RETRY_BASE_MS", "100"),
    ("BULK__WORKER__RETRY_CAP_MS", "1000"),
    ("BULK__WORKER__PAGE_SIZE", "5"),
];

/// Every output file holds each of its resources once, and the counts add
/// up; and nothing of the run is left over: the job holds no worker or lease,
/// nothing waits on the queue, and every file of the manifest is pinned.
async fn assert_exact(app: &TestApp, status: &str, expected_total: u64) {
    let id = status.rsplit('/').next().expect("id").parse().expect("id");
    let record = app.queue.get(&id).await.expect("get").expect("record");
    assert_eq!((record.status, record.worker.as_deref()), (JobStatus::Completed, None));
    assert_eq!(app.queue.queue_len().await.expect("len"), 0, "a job was left on the queue");
    assert_eq!(app.queue.reap_expired_leases().await.expect("reap"), Default::default(), "a lease was left behind");
    let manifest = app.manifest(status, &admin()).await;
    let mut total = 0;
    for item in manifest["output"].as_array().expect("output") {
        // fetch_ipfs reads through the store's pin check: the file is pinned.
        let lines = ndjson(&app.fetch_ipfs(item["url"].as_str().expect("url")).await);
        let ids: HashSet<String> = lines.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect();
        assert_eq!(ids.len(), lines.len(), "a resource was exported twice");
        assert_eq!(lines.len() as u64, item["count"].as_u64().expect("count"));
        total += lines.len() as u64;
    }
    assert_eq!(total, expected_total);
}

/// `PATIENT_RETRIES` plus settings whose values are made at run time.
fn settings_with(more: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    PATIENT_RETRIES.iter().map(|(k, v)| (*k, v.to_string())).chain(more).collect()
}

fn as_refs<'a>(owned: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn postgres_connections_killed_mid_export_are_retried_to_an_exact_export() {
    let app = TestApp::spawn_with(&PATIENT_RETRIES).await;
    app.seed(150, 1).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    let worker = app.worker();
    let run = tokio::spawn(async move { worker.run_until_empty().await });
    app.wait_for_record(&status, |r| r.processed > 0).await;

    let db = match &app.settings.resources {
        bulk_core::settings::ResourceSettings::Postgres { url, .. } => {
            url.expose_secret().rsplit('/').next().expect("db name").to_owned()
        }
        _ => unreachable!("production mode"),
    };
    let (admin_db, conn) =
        tokio_postgres::connect(&TestServices::from_env().postgres_url, tokio_postgres::NoTls).await.expect("admin");
    tokio::spawn(conn);
    let mut killed = 0;
    for _ in 0..5 {
        let rows = admin_db
            .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&db])
            .await
            .expect("terminate");
        killed += rows.len();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    run.await.expect("join").expect("worker");
    assert!(killed > 0, "no connection was killed: the test proved nothing");
    assert_exact(&app, &status, 150 * 4).await;
}

#[tokio::test]
async fn an_ipfs_node_unreachable_mid_export_is_retried_to_an_exact_export() {
    let services = TestServices::from_env();
    let target = services.ipfs_url.trim_start_matches("http://").parse().expect("ipfs addr");
    let proxy = TcpProxy::start(target).await;
    let via_proxy = format!("http://{}", proxy.addr);
    let extra = settings_with(vec![("BULK__CONTENT__API_URL", via_proxy)]);
    let app = TestApp::spawn_with(&as_refs(&extra)).await;
    app.seed(150, 1).await;
    app.add_unique_patient().await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    let worker = app.worker();
    let run = tokio::spawn(async move { worker.run_until_empty().await });
    app.wait_for_record(&status, |r| r.processed > 0).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    run.await.expect("join").expect("worker");
    let id = status.rsplit('/').next().expect("id").parse().expect("id");
    let record = app.queue.get(&id).await.expect("get").expect("record");
    assert_eq!(record.status, JobStatus::Completed, "{:?}", record.error);
    assert_exact(&app, &status, 151 * 4 - 1).await;
}

#[tokio::test]
async fn redis_killed_and_restarted_mid_export_loses_no_job_and_the_api_recovers() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let extra = settings_with(vec![("BULK__QUEUE__URL", url), ("BULK__WORKER__LEASE_SECS", "3".into())]);
    let app = TestApp::spawn_with(&as_refs(&extra)).await;
    app.seed(150, 1).await;
    let running = app.kick_off("/fhir/r4/$export", &admin()).await;
    let queued = app.kick_off("/fhir/r4/$export?_type=Consent", &admin()).await;

    let stop = CancellationToken::new();
    let worker = app.worker();
    let stopping = stop.clone();
    let run = tokio::spawn(async move { worker.run(stopping).await });
    app.wait_for_record(&running, |r| r.processed > 0).await;

    redis.kill();
    // While Redis is down the API says so, with a Retry-After, and does not crash.
    let res = app.get("/fhir/r4/$export", Some(&admin())).await;
    assert_eq!(res.headers()["retry-after"], "5");
    assert_outcome(res, 503, "transient").await;
    assert_outcome(app.get(&running, Some(&admin())).await, 503, "transient").await;
    redis.restart();

    // Both jobs finish: the running one continues, the queued one is still queued.
    for status in [&running, &queued] {
        let id = status.rsplit('/').next().expect("id").parse().expect("id");
        let mut done = false;
        for _ in 0..600 {
            if let Ok(Some(r)) = app.queue.get(&id).await {
                if r.status == JobStatus::Completed {
                    done = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(done, "job {status} did not complete after the restart");
    }
    stop.cancel();
    run.await.expect("join");
    assert_exact(&app, &running, 150 * 4).await;
    assert_exact(&app, &queued, 150).await;
    assert_eq!(app.get(&queued, Some(&admin())).await.status(), 200);
}
