//! What operators rely on: metrics, request ids, probes, the admin API, draining.

use std::time::Duration;

use bulk_core::JobStatus;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// The value of an exposition line starting with `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics_text(app: &TestApp) -> String {
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    res.text().await.expect("text")
}

async fn metrics_counters_move_with_kick_off_export_and_requests(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(2, 1).await;
    let before = metrics_text(&app).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient,DocumentReference", &admin()).await;
    app.run_worker().await;
    app.manifest(&status, &admin()).await;
    let after = metrics_text(&app).await;
    for (series, at_least) in [
        ("fhir_bulk_jobs_enqueued_total", 1.0),
        ("fhir_bulk_jobs_finished_total{outcome=\"completed\"}", 1.0),
        ("fhir_bulk_resources_exported_total", 4.0),
        ("fhir_bulk_export_duration_seconds_count", 1.0),
        ("fhir_bulk_http_requests_total{method=\"GET\",route=\"/fhir/r4/$export\",status=\"202\"}", 1.0),
    ] {
        let (b, a) = (sample(&before, series), sample(&after, series));
        assert!(a - b >= at_least, "{series}: {b} -> {a}");
    }
    assert!(sample(&after, "fhir_bulk_bytes_exported_total") > sample(&before, "fhir_bulk_bytes_exported_total"));
    assert!(after.contains("fhir_bulk_queue_length"));
    assert!(after.contains("fhir_bulk_http_request_duration_seconds_bucket"));
}

async fn a_request_id_is_echoed_or_made_up(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let res = app.client.get(format!("{}/healthz", app.address)).header("X-Request-Id", "req-42.a").send().await;
    assert_eq!(res.expect("sent").headers()["x-request-id"], "req-42.a");
    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .header(
            "X-Request-Id",
            "bad id; with spaces and a very long tail .................................................",
        )
        .send()
        .await;
    let made_up = res.expect("sent").headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&made_up).is_ok(), "{made_up}");
    assert_eq!(app.get("/readyz", None).await.status(), 200);
}

async fn the_admin_api_lists_shows_dead_letters_and_requeues_failed_jobs(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(1, 0).await;
    let alice = patient("seed-p0000000");
    let done = app.kick_off("/fhir/r4/Patient/$export", &alice).await;
    app.run_worker().await;
    let failing = app.kick_off("/fhir/r4/$export?_type=Patient", &admin()).await;
    app.worker_with_dead_ipfs().run_until_empty().await.expect("ran");
    let failed_id = failing.rsplit('/').next().expect("id");

    assert_outcome(app.get("/admin/jobs", Some(&alice)).await, 403, "forbidden").await;
    // A malformed admin query is refused without echoing the client's bytes.
    let diagnostics = assert_outcome(app.get("/admin/jobs?%1b%5b31m=1", Some(&admin())).await, 400, "invalid").await;
    assert_eq!(diagnostics, "Malformed or unsupported query parameters");
    assert_outcome(app.get("/admin/jobs", None).await, 401, "login").await;

    let list: Value = app.get("/admin/jobs?owner=user-seed-p0000000", Some(&admin())).await.json().await.expect("json");
    let jobs = list["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], done.rsplit('/').next().expect("id"));
    assert_eq!(jobs[0]["status"], "completed");

    let dead: Value = app.get("/admin/dead-letter", Some(&admin())).await.json().await.expect("json");
    assert_eq!(
        dead["jobs"].as_array().map(|j| j.iter().map(|x| x["id"].clone()).collect::<Vec<_>>()),
        Some(vec![Value::from(failed_id)])
    );
    assert_eq!(dead["jobs"][0]["error"]["issue"][0]["code"], "transient");

    let shown: Value = app.get(&format!("/admin/jobs/{failed_id}"), Some(&admin())).await.json().await.expect("json");
    assert_eq!(shown["status"], "failed");

    // Re-queued, it runs again with a working content store.
    let res = app.client.post(format!("{}/admin/jobs/{failed_id}/requeue", app.address)).bearer_auth(admin()).send();
    assert_eq!(res.await.expect("sent").status(), 202);
    let res = app.client.post(format!("{}/admin/jobs/{failed_id}/requeue", app.address)).bearer_auth(admin()).send();
    assert_outcome(res.await.expect("sent"), 409, "conflict").await;
    assert_eq!(app.run_worker().await, 1);
    assert_eq!(app.manifest(&failing, &admin()).await["output"][0]["count"], 1);

    let cancel = app.client.delete(format!("{}/admin/jobs/{failed_id}", app.address)).bearer_auth(admin()).send();
    assert_eq!(cancel.await.expect("sent").status(), 204);
    assert_outcome(app.get(&failing, Some(&admin())).await, 404, "not-found").await;
}

async fn a_worker_asked_to_stop_hands_its_job_back_after_the_drain_deadline(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__PAGE_SIZE", "3"), ("BULK__WORKER__DRAIN_SECS", "0")]).await;
    app.seed(300, 1).await;
    let status = app.kick_off("/fhir/r4/$export", &admin()).await;
    let id = status.rsplit('/').next().expect("id").parse().expect("id");
    let stop = CancellationToken::new();
    let worker = app.worker();
    let stopping = stop.clone();
    let run = tokio::spawn(async move { worker.run(stopping).await });
    app.wait_for_record(&status, |r| r.processed > 0).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("worker stopped in time").expect("join");

    // Back on the queue at once, not after the 30 s lease, and nothing half-done in it.
    let record = app.queue.get(&id).await.expect("get").expect("record");
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(app.queue.queue_len().await.expect("len"), 1);
    assert_eq!(app.run_worker().await, 1);
    let manifest = app.manifest(&status, &admin()).await;
    let total: u64 = manifest["output"].as_array().expect("o").iter().map(|o| o["count"].as_u64().expect("c")).sum();
    assert_eq!(total, 300 * 4);
}

async fn the_worker_admin_port_serves_probes_and_metrics(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let backends = bulk_worker::Backends {
        queue: app.queue.clone(),
        resources: app.resources.clone(),
        content: app.content.clone(),
    };
    let stop = CancellationToken::new();
    let (port, server) = bulk_worker::serve_admin("127.0.0.1:0", backends, stop.clone()).expect("bind");
    let base = format!("http://127.0.0.1:{port}");
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let res = app.client.get(format!("{base}{path}")).send().await.expect("sent");
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.text().await.expect("text"), body);
    }
    let text = app.client.get(format!("{base}/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(text.contains("fhir_bulk_jobs_running"), "{text}");
    stop.cancel();
    server.await.expect("join").expect("server");
}

#[tokio::test]
async fn readiness_fails_with_a_503_outcome_while_redis_is_unreachable() {
    let app = TestApp::spawn_with(&[("BULK__QUEUE__URL", "redis://127.0.0.1:9/")]).await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let res = app.get("/readyz", None).await;
    assert_eq!(res.headers()["retry-after"], "5");
    assert_outcome(res, 503, "transient").await;
    let res = app.get("/fhir/r4/$export", Some(&admin())).await;
    assert_outcome(res, 503, "transient").await;
}

both_modes!(
    metrics_counters_move_with_kick_off_export_and_requests,
    a_request_id_is_echoed_or_made_up,
    the_admin_api_lists_shows_dead_letters_and_requeues_failed_jobs,
    a_worker_asked_to_stop_hands_its_job_back_after_the_drain_deadline,
    the_worker_admin_port_serves_probes_and_metrics,
);
