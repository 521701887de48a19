//! A worker process killed with SIGKILL mid-export, against the real
//! Redis, PostgreSQL and IPFS node: another process finishes the job.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulk_testkit::{TestDb, TestServices};

const SECRET: &str = "crash-test-secret-0123456789abcdef0123456789";

fn fhir_bulk(services: &TestServices, db: &str, prefix: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhir-bulk"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BULK__QUEUE__KIND", "redis")
        .env("BULK__QUEUE__URL", &services.redis_url)
        .env("BULK__QUEUE__KEY_PREFIX", prefix)
        .env("BULK__RESOURCES__KIND", "postgres")
        .env("BULK__RESOURCES__URL", db)
        .env("BULK__CONTENT__KIND", "kubo")
        .env("BULK__CONTENT__API_URL", &services.ipfs_url)
        .env("BULK__AUTH__HS256_SECRET", SECRET)
        .env("BULK__SERVER__LISTEN", "127.0.0.1:0")
        .env("BULK__WORKER__PAGE_SIZE", "5")
        .env("BULK__WORKER__LEASE_SECS", "3")
        // The test polls every 20 ms to catch the export mid-way: no 429s.
        .env("BULK__SERVER__POLL_BURST", "0")
        .env("BULK__TELEMETRY__FORMAT", "json");
    cmd
}

/// Starts `fhir-bulk serve` and returns it with its API port (read from its log).
fn serve(services: &TestServices, db: &str, prefix: &str) -> (Child, u16) {
    let mut child = fhir_bulk(services, db, prefix)
        .args(["serve", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let port = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).expect("read") > 0, "serve exited early");
        if let Some(p) = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v["port"].as_u64()) {
            break p as u16;
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    (child, port)
}

#[tokio::test]
async fn a_worker_killed_mid_export_is_replaced_and_the_manifest_is_exact() {
    let services = TestServices::from_env();
    let db = TestDb::create(&services.postgres_url).await;
    let prefix = services.unique_prefix();
    let mut seed = fhir_bulk(&services, &db.url, &prefix);
    seed.args(["seed", "--patients", "300", "--documents-per-patient", "1"]);
    assert!(seed.status().expect("seed runs").success());
    let mut mint = fhir_bulk(&services, &db.url, &prefix);
    let token = mint.args(["token", "--sub", "ops", "--role", "admin"]).output().expect("token");
    let token = String::from_utf8(token.stdout).expect("utf8").trim().to_owned();
    let client = bulk_api::http_client().build().expect("client");

    let (mut doomed, port) = serve(&services, &db.url, &prefix);
    let base = format!("http://127.0.0.1:{port}");
    let res = client.get(format!("{base}/fhir/r4/$export")).bearer_auth(&token).send().await.expect("kick-off");
    assert_eq!(res.status(), 202);
    let location = res.headers()["content-location"].to_str().expect("ascii").to_owned();
    let job_path = location.trim_start_matches("http://localhost:3000").to_owned();
    let job_id = job_path.rsplit('/').next().expect("id").to_owned();

    // Wait until it is well into the export, then SIGKILL the whole process.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = client.get(format!("{base}{job_path}")).bearer_auth(&token).send().await.expect("poll");
        assert_eq!(res.status(), 202, "the export finished before it could be killed");
        let body: serde_json::Value = res.json().await.expect("json");
        if body["progress"].as_u64().unwrap_or(0) >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the export never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().expect("SIGKILL");
    doomed.wait().expect("reaped");

    let (mut survivor, port) = serve(&services, &db.url, &prefix);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest: serde_json::Value = loop {
        let res = client.get(format!("{base}{job_path}")).bearer_auth(&token).send().await.expect("poll");
        if res.status() == 200 {
            break res.json().await.expect("manifest");
        }
        assert_eq!(res.status(), 202);
        assert!(Instant::now() < deadline, "no worker took the job over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut total = 0;
    for item in manifest["output"].as_array().expect("output") {
        let cid = item["url"].as_str().expect("url").trim_start_matches("ipfs://");
        let body = client.get(format!("{base}/ipfs/{cid}")).bearer_auth(&token).send().await.expect("file");
        let text = body.text().await.expect("body");
        let ids: HashSet<&str> =
            text.lines().map(|l| l.split("\"id\":\"").nth(1).expect("id").split('"').next().expect("id")).collect();
        assert_eq!(ids.len(), text.lines().count(), "a resource appears twice in {}", item["type"]);
        assert_eq!(ids.len() as u64, item["count"].as_u64().expect("count"));
        total += ids.len();
    }
    assert_eq!(total, 300 * 4, "every resource exactly once");
    let job: serde_json::Value = client
        .get(format!("{base}/admin/jobs/{job_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(job["attempts"], 2, "{job}");

    survivor.kill().expect("stop");
    survivor.wait().expect("reaped");
}
