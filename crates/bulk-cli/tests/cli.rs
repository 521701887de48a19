//! The `fhir-bulk` binary as a user runs it: `load` then `serve`, JSON logs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "cli-test-secret-0123456789abcdef0123456789";

fn fhir_bulk(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhir-bulk"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BULK__QUEUE__KIND", "sqlite")
        .env("BULK__QUEUE__PATH", dir.join("db"))
        .env("BULK__RESOURCES__KIND", "sqlite")
        .env("BULK__RESOURCES__PATH", dir.join("db"))
        .env("BULK__CONTENT__KIND", "local")
        .env("BULK__CONTENT__DIR", dir.join("blobs"))
        .env("BULK__AUTH__HS256_SECRET", SECRET)
        .env("BULK__SERVER__LISTEN", "127.0.0.1:0")
        .env("BULK__TELEMETRY__FORMAT", "json");
    cmd
}

#[tokio::test]
async fn json_logs_name_jobs_users_and_requests_but_never_tokens_or_resource_contents() {
    let dir = std::env::temp_dir().join(format!("cli-logs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let marker = format!("Marker{}", uuid::Uuid::new_v4().simple());
    std::fs::write(
        dir.join("Patient.ndjson"),
        format!("{{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{{\"family\":\"{marker}\"}}]}}\n"),
    )
    .expect("write");
    let load = fhir_bulk(&dir).arg("load").arg(dir.join("Patient.ndjson")).output().expect("load runs");
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let out = fhir_bulk(&dir).args(["token", "--sub", "ops-user", "--role", "admin"]).output().expect("token");
    let token = String::from_utf8(out.stdout).expect("utf8").trim().to_owned();

    // Debug level: what an operator turns on when something is wrong.
    let mut serve = fhir_bulk(&dir)
        .args(["serve", "--workers", "1"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(serve.stdout.take().expect("stdout"));
    let mut logs = String::new();
    let port = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).expect("read") > 0, "serve exited: {logs}");
        logs.push_str(&line);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if let Some(p) = v["port"].as_u64() {
                break p;
            }
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = bulk_api::http_client().build().expect("client");
    let res = client
        .get(format!("{base}/fhir/r4/$export?_type=Patient"))
        .bearer_auth(&token)
        .header("X-Request-Id", "cli-log-test-1")
        .send()
        .await
        .expect("kick-off");
    assert_eq!(res.status(), 202);
    let status = res.headers()["content-location"].to_str().expect("ascii").replace("http://localhost:3000", &base);
    let deadline = Instant::now() + Duration::from_secs(30);
    let manifest: serde_json::Value = loop {
        let res = client.get(&status).bearer_auth(&token).send().await.expect("poll");
        if res.status() == 200 {
            break res.json().await.expect("json");
        }
        assert!(Instant::now() < deadline, "export did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cid = manifest["output"][0]["url"].as_str().expect("url").trim_start_matches("ipfs://").to_owned();
    let file = client.get(format!("{base}/ipfs/{cid}")).bearer_auth(&token).send().await.expect("file");
    assert!(file.text().await.expect("body").contains(&marker));

    let stopped = Command::new("kill").arg("-TERM").arg(serve.id().to_string()).status().expect("kill");
    assert!(stopped.success());
    stdout.read_to_string(&mut logs).expect("rest of stdout");
    let mut stderr = String::new();
    serve.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    assert!(serve.wait().expect("exit").success(), "serve did not stop cleanly: {stderr}");
    logs.push_str(&stderr);

    assert!(!logs.contains(&token), "a bearer token was logged");
    assert!(!logs.contains(token.split('.').nth(2).expect("signature")), "a token signature was logged");
    assert!(!logs.contains(&marker), "resource contents were logged");
    assert!(!logs.contains(SECRET), "the signing secret was logged");
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        lines.iter().any(|l| l["span"]["request_id"] == "cli-log-test-1" && l["http.status"] == 202),
        "no request line"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["user.id"] == "ops-user" && l["span"]["job.id"].is_string() && l["elapsed_ms"].is_u64()),
        "no export line with job and user"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn delete_tombstones_what_exists_says_how_many_and_refuses_malformed_references() {
    let dir = std::env::temp_dir().join(format!("cli-delete-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("Observation.ndjson"),
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"subject\":{\"reference\":\"Patient/p1\"}}\n",
    )
    .expect("write");
    let load = fhir_bulk(&dir).arg("load").arg(dir.join("Observation.ndjson")).output().expect("load runs");
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));

    let run = |args: &[&str]| fhir_bulk(&dir).arg("delete").args(args).output().expect("delete runs");
    let first = run(&["Observation/o1", "Observation/nope"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), "deleted 1 resources");
    assert!(String::from_utf8_lossy(&first.stderr).contains("1 were absent or already deleted"));
    let again = run(&["Observation/o1"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "deleted 0 resources");
    let bad = run(&["Observations/o1"]);
    assert_eq!(bad.status.code(), Some(1), "a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a FHIR R4 resource type"));
    std::fs::remove_dir_all(dir).ok();
}
