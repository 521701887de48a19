//! `bulk-bench export`: kick-off → poll → manifest → every file downloaded.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::cpu::CpuSnapshot;
use crate::procfs;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The API's base URL, e.g. `http://127.0.0.1:3000`.
    #[arg(long)]
    base: String,
    /// An admin bearer token.
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// System-level exports kicked off at the same time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Process whose memory is reported (the worker, or `serve`).
    #[arg(long)]
    pid: Option<u32>,
    /// What `--pid` is, for the table (`serve`, `bulk-worker`).
    #[arg(long, default_value = "")]
    process: String,
    /// Step kind written in the JSON (`export` or `scaling`).
    #[arg(long, default_value = "export")]
    kind: String,
    /// Backend set, for the table.
    #[arg(long)]
    mode: String,
    /// Resources in the store, for the table.
    #[arg(long)]
    size: u64,
    /// Workers serving the exports, for the table.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Status polling interval.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Give up on a job after this long.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// `NAME=PID`: report the CPU seconds that process (and its children)
    /// used during the exports; repeatable.
    #[arg(long = "cpu", value_name = "NAME=PID")]
    cpu: Vec<String>,
    /// The worker's log: the `elapsed_ms` of its last `--jobs` "export
    /// completed" lines are reported (the worker's own time, claim to manifest).
    #[arg(long)]
    worker_log: Option<std::path::PathBuf>,
}

/// Seconds the worker logged for its last `n` completed exports.
fn worker_secs(log: &std::path::Path, n: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("export completed"))
        .filter_map(|l| l.split("elapsed_ms=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .map(|ms: f64| ms / 1000.0)
        .collect();
    all[all.len().saturating_sub(n)..].to_vec()
}

/// One job's timeline, in seconds since the first kick-off.
#[derive(Debug, Default)]
struct JobTiming {
    status_url: String,
    kickoff_secs: f64,
    /// First `202` with a non-zero `totalResources`: the worker has claimed and counted.
    counted_secs: Option<f64>,
    manifest_secs: f64,
    done_secs: f64,
    polls: u64,
    resources: u64,
    bytes: u64,
    files: Vec<Value>,
}

/// Prints the step; `Ok(false)` when an export failed.
pub(crate) fn run(args: ExportArgs) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let before = args.pid.and_then(procfs::mem);
    let cpu_before = CpuSnapshot::take(&args.cpu, args.pid)?;
    let start = Instant::now();
    let results = rt.block_on(run_jobs(&args, start));
    let cpu_after = CpuSnapshot::take(&args.cpu, args.pid)?;
    let after = args.pid.and_then(procfs::mem);
    let (cpu, threads) = cpu_before.until(&cpu_after);
    let mut step = json!({
        "kind": args.kind, "mode": args.mode, "size": args.size, "workers": args.workers,
        "jobs": args.jobs, "process": args.process, "pid": args.pid,
        "rss_before_kb": before.map(|m| m.rss_kb),
        "rss_after_kb": after.map(|m| m.rss_kb),
        "hwm_kb": after.map(|m| m.hwm_kb),
        "cpu_secs": cpu, "thread_cpu_secs": threads,
    });
    let ok = match results {
        Ok(jobs) => {
            let wall = jobs.iter().map(|j| j.done_secs).fold(0.0, f64::max);
            let resources: u64 = jobs.iter().map(|j| j.resources).sum();
            let bytes: u64 = jobs.iter().map(|j| j.bytes).sum();
            let max = |f: fn(&JobTiming) -> f64| jobs.iter().map(f).fold(0.0, f64::max);
            step["ok"] = json!(true);
            step["wall_secs"] = json!(wall);
            step["resources"] = json!(resources);
            step["bytes"] = json!(bytes);
            step["resources_per_sec"] = json!(resources as f64 / wall);
            step["mb_per_sec"] = json!(bytes as f64 / 1e6 / wall);
            step["kickoff_secs"] = json!(max(|j| j.kickoff_secs));
            step["counted_secs"] = json!(jobs.iter().filter_map(|j| j.counted_secs).fold(0.0, f64::max));
            step["manifest_secs"] = json!(max(|j| j.manifest_secs));
            step["download_secs"] = json!(max(|j| j.done_secs - j.manifest_secs));
            if let Some(log) = &args.worker_log {
                let secs = worker_secs(log, args.jobs);
                step["worker_secs"] =
                    json!(secs.iter().copied().fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))));
                step["worker_export_secs"] = json!(secs);
            }
            step["job_details"] = Value::Array(jobs.iter().map(job_json).collect());
            true
        }
        Err(e) => {
            step["ok"] = json!(false);
            step["error"] = json!(format!("{e:#}"));
            step["wall_secs"] = json!(start.elapsed().as_secs_f64());
            false
        }
    };
    println!("{step}");
    Ok(ok)
}

fn job_json(j: &JobTiming) -> Value {
    json!({
        "status_url": j.status_url, "kickoff_secs": j.kickoff_secs, "counted_secs": j.counted_secs,
        "manifest_secs": j.manifest_secs, "done_secs": j.done_secs, "polls": j.polls,
        "resources": j.resources, "bytes": j.bytes, "files": j.files,
    })
}

/// reqwest is built with `rustls-no-provider` (for the API's JWKS fetches) and
/// panics when it must pick a crypto provider itself. The bench talks plain
/// HTTP to a local API, so its TLS names ring and trusts no server.
fn plain_http_only() -> anyhow::Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

async fn run_jobs(args: &ExportArgs, start: Instant) -> anyhow::Result<Vec<JobTiming>> {
    let client =
        reqwest::Client::builder().tls_backend_preconfigured(plain_http_only()?).pool_max_idle_per_host(64).build()?;
    let mut set = JoinSet::new();
    for n in 0..args.jobs {
        let ctx = Ctx {
            client: client.clone(),
            base: args.base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {}", args.token),
            poll: Duration::from_millis(args.poll_ms),
            deadline: start + Duration::from_secs(args.timeout_secs),
            start,
        };
        set.spawn(async move { ctx.job().await.with_context(|| format!("export {}", n + 1)) });
    }
    let mut jobs = Vec::with_capacity(args.jobs);
    while let Some(r) = set.join_next().await {
        jobs.push(r.context("export task panicked")??);
    }
    Ok(jobs)
}

/// What one job's task needs.
#[derive(Clone)]
struct Ctx {
    client: reqwest::Client,
    base: String,
    auth: String,
    poll: Duration,
    deadline: Instant,
    start: Instant,
}

impl Ctx {
    fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    async fn job(self) -> anyhow::Result<JobTiming> {
        let mut t = JobTiming::default();
        let resp = self
            .client
            .get(format!("{}/fhir/r4/$export", self.base))
            .header("Authorization", &self.auth)
            .header("Accept", "application/fhir+json")
            .header("Prefer", "respond-async")
            .send()
            .await
            .context("kick-off")?;
        if resp.status().as_u16() != 202 {
            bail!("kick-off answered {}: {}", resp.status(), snippet(resp).await);
        }
        t.status_url = resp
            .headers()
            .get("content-location")
            .and_then(|v| v.to_str().ok())
            .context("kick-off without Content-Location")?
            .to_owned();
        t.kickoff_secs = self.secs();
        let manifest = self.poll(&mut t).await?;
        t.manifest_secs = self.secs();
        if manifest["error"].as_array().is_some_and(|e| !e.is_empty()) {
            bail!("manifest lists errors: {}", manifest["error"]);
        }
        self.download_all(&manifest, &mut t).await?;
        t.done_secs = self.secs();
        Ok(t)
    }

    /// Polls until `200`; the manifest.
    async fn poll(&self, t: &mut JobTiming) -> anyhow::Result<Value> {
        loop {
            if Instant::now() > self.deadline {
                bail!("no manifest before the timeout ({} polls)", t.polls);
            }
            tokio::time::sleep(self.poll).await;
            t.polls += 1;
            let resp = self.client.get(&t.status_url).header("Authorization", &self.auth).send().await?;
            match resp.status().as_u16() {
                200 => return resp.json().await.context("manifest is not JSON"),
                202 => {
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    if t.counted_secs.is_none() && body["totalResources"].as_u64().unwrap_or(0) > 0 {
                        t.counted_secs = Some(self.secs());
                    }
                }
                _ => bail!("status answered {}: {}", resp.status(), snippet(resp).await),
            }
        }
    }

    /// Downloads every file at once, checking each size against the manifest.
    async fn download_all(&self, manifest: &Value, t: &mut JobTiming) -> anyhow::Result<()> {
        let outputs = manifest["output"].as_array().context("manifest without output")?;
        let mut set = JoinSet::new();
        for item in outputs {
            let cid = item["url"].as_str().and_then(|u| u.strip_prefix("ipfs://")).context("output url")?.to_owned();
            let size = extension(item, "/size").and_then(Value::as_u64).context("no size extension")?;
            let count = item["count"].as_u64().context("no count")?;
            t.resources += count;
            t.files.push(json!({"type": item["type"], "cid": cid, "count": count, "bytes": size}));
            let ctx = self.clone();
            set.spawn(async move { ctx.download(&cid, size).await });
        }
        while let Some(r) = set.join_next().await {
            t.bytes += r.context("download task panicked")??;
        }
        Ok(())
    }

    async fn download(&self, cid: &str, expected: u64) -> anyhow::Result<u64> {
        let mut resp = self
            .client
            .get(format!("{}/ipfs/{cid}", self.base))
            .header("Authorization", &self.auth)
            .send()
            .await
            .with_context(|| format!("GET /ipfs/{cid}"))?;
        if !resp.status().is_success() {
            bail!("GET /ipfs/{cid} answered {}: {}", resp.status(), snippet(resp).await);
        }
        let mut got = 0u64;
        while let Some(chunk) = resp.chunk().await.with_context(|| format!("reading /ipfs/{cid}"))? {
            got += chunk.len() as u64;
        }
        if got != expected {
            bail!("/ipfs/{cid}: {got} bytes, the manifest says {expected}");
        }
        Ok(got)
    }
}

/// The value of the output item's extension whose url ends with `suffix`.
fn extension<'a>(item: &'a Value, suffix: &str) -> Option<&'a Value> {
    item["extension"].as_array()?.iter().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(suffix))).and_then(
        |e| {
            let v = &e["valueDecimal"];
            if v.is_null() {
                e.get("valueInteger")
            } else {
                Some(v)
            }
        },
    )
}

/// The start of an error body, for messages.
async fn snippet(resp: reqwest::Response) -> String {
    let body = resp.text().await.unwrap_or_default();
    body.chars().take(300).collect()
}
