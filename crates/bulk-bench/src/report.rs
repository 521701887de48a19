//! `bulk-bench report`: the table, and the results JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// JSON-lines file of steps, as the other subcommands print them.
    steps: PathBuf,
    /// Where to write the results JSON.
    #[arg(long)]
    out: PathBuf,
}

/// Prints the table and writes the JSON; `Ok(false)` when any step failed.
pub(crate) fn run(args: ReportArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.steps).with_context(|| format!("reading {}", args.steps.display()))?;
    let steps: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|_| json!({"kind": "unknown", "ok": false, "error": format!("unreadable step: {l}")}))
        })
        .collect();
    let ratios = ratios(&steps);
    let table = table(&steps, &ratios);
    print!("{table}");
    let failed: Vec<&Value> = steps.iter().filter(|s| s["ok"] == json!(false)).collect();
    let results = json!({"steps": steps, "ratios": ratios, "failed_steps": failed.len(), "table": table});
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(failed.is_empty())
}

fn of_kind<'a>(steps: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    steps.iter().filter(move |s| s["kind"] == kind)
}

fn same(a: &Value, b: &Value) -> bool {
    a["mode"] == b["mode"] && a["size"] == b["size"]
}

/// Export wall time / max(baselines), per (mode, size) with an ok export.
fn ratios(steps: &[Value]) -> Vec<Value> {
    of_kind(steps, "export")
        .filter(|e| e["ok"] == json!(true))
        .filter_map(|e| {
            let base: Vec<&Value> =
                of_kind(steps, "baseline").filter(|b| same(b, e) && b["ok"] == json!(true)).collect();
            let slowest = base.iter().max_by(|a, b| f(a, "secs").total_cmp(&f(b, "secs")))?;
            let wall = f(e, "wall_secs");
            Some(json!({
                "mode": e["mode"], "size": e["size"], "export_secs": wall,
                "baseline_secs": f(slowest, "secs"), "baseline": slowest["name"],
                "ratio": wall / f(slowest, "secs"),
            }))
        })
        .collect()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Seconds, rates and sizes, `-` when missing.
fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

fn mib(v: &Value, k: &str) -> String {
    num(f(v, k) / 1024.0, 1)
}

fn table(steps: &[Value], ratios: &[Value]) -> String {
    let mut t = String::new();
    for e in of_kind(steps, "env") {
        let _ = writeln!(t, "# {}: {}", s(e, "name"), s(e, "text"));
    }
    let _ = writeln!(t, "\nEnd-to-end system export (4 types): kick-off -> manifest -> every file downloaded");
    let _ = writeln!(
        t,
        "{:<11}{:>9} {:>7} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  {:<11} status",
        "mode", "size", "seed s", "wall s", "res/s", "MB/s", "manif s", "dl s", "RSS0 MB", "peak MB", "process"
    );
    for e in of_kind(steps, "export") {
        let seed = of_kind(steps, "seed").find(|x| same(x, e)).map_or(f64::NAN, |x| f(x, "secs"));
        let _ = writeln!(
            t,
            "{:<11}{:>9} {:>7} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  {:<11} {}",
            s(e, "mode"),
            s(e, "size"),
            num(seed, 1),
            num(f(e, "wall_secs"), 2),
            num(f(e, "resources_per_sec"), 0),
            num(f(e, "mb_per_sec"), 1),
            num(f(e, "manifest_secs"), 2),
            num(f(e, "download_secs"), 2),
            mib(e, "rss_before_kb"),
            mib(e, "hwm_kb"),
            s(e, "process"),
            status(e)
        );
    }
    let _ = writeln!(t, "\nBaselines on the same data (seconds) and export wall / max(baselines)");
    let _ = writeln!(t, "{:<11}{:>9}  {:<44} {:>8} {:>9}  status", "mode", "size", "baseline", "secs", "MB");
    for b in of_kind(steps, "baseline") {
        let _ = writeln!(
            t,
            "{:<11}{:>9}  {:<44} {:>8} {:>9}  {}",
            s(b, "mode"),
            s(b, "size"),
            s(b, "name"),
            num(f(b, "secs"), 2),
            num(f(b, "bytes") / 1e6, 1),
            status(b)
        );
    }
    for r in ratios {
        let _ = writeln!(
            t,
            "  ratio {:<11}{:>9}: export {} s / {} {} s = {}x",
            s(r, "mode"),
            s(r, "size"),
            num(f(r, "export_secs"), 2),
            s(r, "baseline"),
            num(f(r, "baseline_secs"), 2),
            num(f(r, "ratio"), 2)
        );
    }
    api_table(&mut t, steps);
    scaling_table(&mut t, steps);
    let failed: Vec<&Value> = steps.iter().filter(|s| s["ok"] == json!(false)).collect();
    let _ = writeln!(t, "\nFailed steps: {}", failed.len());
    for x in failed {
        let _ = writeln!(t, "  {} {} {} {}: {}", s(x, "kind"), s(x, "mode"), s(x, "size"), s(x, "name"), s(x, "error"));
    }
    t
}

fn status(v: &Value) -> &'static str {
    if v["ok"] == json!(true) {
        "ok"
    } else {
        "FAILED"
    }
}

fn api_table(t: &mut String, steps: &[Value]) {
    let _ = writeln!(t, "\nAPI under load (wrk on loopback; RSS of the process serving the API)");
    let _ = writeln!(
        t,
        "{:<11}{:<26} {:>5} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8}  status",
        "mode", "request", "conns", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "RSS0 MB", "peak MB"
    );
    for a in of_kind(steps, "api") {
        let errors = f(a, "non_2xx") + f(a, "socket_errors");
        let _ = writeln!(
            t,
            "{:<11}{:<26} {:>5} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8}  {}",
            s(a, "mode"),
            s(a, "name"),
            s(a, "connections"),
            num(f(a, "rps"), 0),
            num(f(a, "p50_ms"), 2),
            num(f(a, "p99_ms"), 2),
            num(f(a, "max_ms"), 1),
            num(errors, 0),
            mib(a, "rss_before_kb"),
            mib(a, "rss_peak_kb"),
            status(a)
        );
    }
}

fn scaling_table(t: &mut String, steps: &[Value]) {
    let _ = writeln!(t, "\nScaling: N concurrent system exports on `serve --workers N` (embedded)");
    let _ = writeln!(
        t,
        "{:>7} {:>7} {:>9} {:>8} {:>10} {:>10} {:>8} {:>8}  status",
        "workers", "exports", "size", "wall s", "resources", "agg res/s", "MB/s", "peak MB"
    );
    for x in of_kind(steps, "scaling") {
        let _ = writeln!(
            t,
            "{:>7} {:>7} {:>9} {:>8} {:>10} {:>10} {:>8} {:>8}  {}",
            s(x, "workers"),
            s(x, "jobs"),
            s(x, "size"),
            num(f(x, "wall_secs"), 2),
            s(x, "resources"),
            num(f(x, "resources_per_sec"), 0),
            num(f(x, "mb_per_sec"), 1),
            mib(x, "hwm_kb"),
            status(x)
        );
    }
}
