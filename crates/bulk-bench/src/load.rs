//! `bulk-bench load`: a load generator run while a process's memory is sampled.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cpu::CpuSnapshot;
use crate::procfs;

/// Marker of the summary line `scripts/bench/auth.lua` prints from wrk's `done`.
const MARKER: &str = "BENCH_JSON ";

/// Arguments of `load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// Backend set, for the table.
    #[arg(long)]
    mode: String,
    /// What is loaded, for the table (e.g. `status 200`).
    #[arg(long)]
    name: String,
    /// Process whose RSS is sampled every 100 ms (the API).
    #[arg(long)]
    pid: Option<u32>,
    /// What `--pid` is, for the CPU figures.
    #[arg(long, default_value = "api")]
    process: String,
    /// The load generator and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Prints the step; `Ok(false)` when the load generator failed or saw errors.
pub(crate) fn run(args: LoadArgs) -> anyhow::Result<bool> {
    let before = args.pid.and_then(procfs::mem);
    let specs: Vec<String> = args.pid.map(|p| format!("{}={p}", args.process)).into_iter().collect();
    let cpu_before = CpuSnapshot::take(&specs, args.pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = args.pid.map(|pid| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = procfs::mem(pid).map_or(peak, |m| m.rss_kb.max(peak));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    });
    let outcome = generate(&args.command);
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.and_then(|s| s.join().ok());
    let after = args.pid.and_then(procfs::mem);
    let (cpu, threads) = cpu_before.until(&CpuSnapshot::take(&specs, args.pid)?);
    let mut step = json!({
        "kind": "api", "mode": args.mode, "name": args.name, "command": args.command.join(" "),
        "rss_before_kb": before.map(|m| m.rss_kb), "rss_peak_kb": peak, "hwm_kb": after.map(|m| m.hwm_kb),
        "cpu_secs": cpu, "thread_cpu_secs": threads,
    });
    let ok = match outcome {
        Ok(summary) => summarise(&summary, &mut step),
        Err(e) => {
            step["error"] = json!(format!("{e:#}"));
            false
        }
    };
    step["ok"] = json!(ok);
    println!("{step}");
    Ok(ok)
}

/// Runs the command; its `BENCH_JSON` summary.
fn generate(command: &[String]) -> anyhow::Result<Value> {
    let (program, rest) = command.split_first().context("no command")?;
    let mut child = Command::new(program)
        .args(rest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err)?;
    }
    let status = child.wait()?;
    if !status.success() {
        anyhow::bail!("{program} exited with {status}: {}", last_lines(&format!("{out}{err}")));
    }
    let line = out.lines().find_map(|l| l.strip_prefix(MARKER)).context("no BENCH_JSON summary in the output")?;
    serde_json::from_str(line).context("unreadable BENCH_JSON summary")
}

/// Adds rates and latencies to the step; false when any request failed.
fn summarise(s: &Value, step: &mut Value) -> bool {
    let n = |k: &str| s[k].as_f64().unwrap_or(0.0);
    let requests = n("requests");
    let secs = n("duration_us") / 1e6;
    let socket_errors = n("errors_connect") + n("errors_read") + n("errors_write") + n("errors_timeout");
    let non_2xx = n("errors_status");
    step["requests"] = json!(requests);
    step["duration_secs"] = json!(secs);
    step["rps"] = json!(if secs > 0.0 { requests / secs } else { 0.0 });
    for p in ["p50", "p90", "p99", "max"] {
        step[format!("{p}_ms")] = json!(n(&format!("latency_{p}_us")) / 1000.0);
    }
    step["mean_ms"] = json!(n("latency_mean_us") / 1000.0);
    step["non_2xx"] = json!(non_2xx);
    step["socket_errors"] = json!(socket_errors);
    step["threads"] = s["threads"].clone();
    step["connections"] = s["connections"].clone();
    if requests == 0.0 {
        step["error"] = json!("no request completed");
        return false;
    }
    if non_2xx > 0.0 || socket_errors > 0.0 {
        step["error"] = json!(format!("{non_2xx} non-2xx responses, {socket_errors} socket errors"));
        return false;
    }
    true
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
