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

/// Appends an aligned table: the columns numbered in `left` (text) left-aligned, the rest right-aligned.
fn grid(t: &mut String, headers: &[&str], left: &[usize], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if left.contains(&i) {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
            out.push_str("  ");
        }
        out.trim_end().to_owned()
    };
    let _ = writeln!(t, "{}", line(headers.to_vec()));
    for row in rows {
        let _ = writeln!(t, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

fn table(steps: &[Value], ratios: &[Value]) -> String {
    let mut t = String::new();
    for e in of_kind(steps, "env") {
        let _ = writeln!(t, "# {}: {}", s(e, "name"), s(e, "text"));
    }
    let _ = writeln!(t, "\nEnd-to-end system export (4 types): kick-off -> manifest -> every file downloaded");
    let rows: Vec<Vec<String>> = of_kind(steps, "export")
        .map(|e| {
            let seed = of_kind(steps, "seed").find(|x| same(x, e)).map_or(f64::NAN, |x| f(x, "secs"));
            vec![
                s(e, "mode"),
                s(e, "size"),
                num(seed, 1),
                num(f(e, "wall_secs"), 2),
                num(f(e, "resources_per_sec"), 0),
                num(f(e, "mb_per_sec"), 1),
                num(f(e, "counted_secs"), 2),
                num(f(e, "manifest_secs"), 2),
                num(f(e, "worker_secs"), 2),
                num(f(e, "download_secs"), 2),
                mib(e, "rss_before_kb"),
                mib(e, "hwm_kb"),
                s(e, "process"),
                status(e).into(),
            ]
        })
        .collect();
    let headers = [
        "mode",
        "size",
        "seed s",
        "wall s",
        "res/s",
        "MB/s",
        "count s",
        "manifest s",
        "worker s",
        "download s",
        "RSS0 MB",
        "peak MB",
        "process",
        "status",
    ];
    grid(&mut t, &headers, &[0, 12, 13], &rows);
    let _ = writeln!(
        t,
        "  (count s: first 202 with totalResources; manifest s: first 200; worker s: the worker's own log, claim to \
         manifest; download s: manifest to last byte; RSS0: before kick-off; peak: VmHWM after)"
    );
    cpu_table(&mut t, steps);
    let _ = writeln!(t, "\nBaselines on the same data, and export wall / max(baselines)");
    let rows: Vec<Vec<String>> = of_kind(steps, "baseline")
        .map(|b| {
            vec![
                s(b, "mode"),
                s(b, "size"),
                s(b, "name"),
                num(f(b, "secs"), 2),
                num(f(b, "bytes") / 1e6, 1),
                status(b).into(),
            ]
        })
        .collect();
    grid(&mut t, &["mode", "size", "baseline", "secs", "MB", "status"], &[0, 2, 5], &rows);
    for r in ratios {
        let _ = writeln!(
            t,
            "  ratio {} {}: export {} s / {} {} s = {}x",
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
        let what: Vec<String> = ["kind", "mode", "size", "name"].iter().map(|k| s(x, k)).filter(|v| v != "-").collect();
        let _ = writeln!(t, "  {}: {}", what.join(" "), s(x, "error"));
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
    let rows: Vec<Vec<String>> = of_kind(steps, "api")
        .map(|a| {
            vec![
                s(a, "mode"),
                s(a, "name"),
                format!("{}x{}", s(a, "threads"), s(a, "connections")),
                num(f(a, "rps"), 0),
                num(f(a, "p50_ms"), 2),
                num(f(a, "p99_ms"), 2),
                num(f(a, "max_ms"), 1),
                num(f(a, "non_2xx") + f(a, "socket_errors"), 0),
                mib(a, "rss_before_kb"),
                mib(a, "rss_peak_kb"),
                status(a).into(),
            ]
        })
        .collect();
    let headers = [
        "mode",
        "request",
        "thr x conn",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "RSS0 MB",
        "peak MB",
        "status",
    ];
    grid(t, &headers, &[0, 1, 10], &rows);
    for a in of_kind(steps, "api") {
        let cpu = cpu_list(a, "cpu_secs");
        if !cpu.is_empty() {
            let _ = writeln!(t, "  CPU s during {} {}: {cpu}", s(a, "mode"), s(a, "name"));
        }
    }
}

fn scaling_table(t: &mut String, steps: &[Value]) {
    let _ = writeln!(t, "\nScaling: N concurrent system exports on `serve --workers N` (embedded)");
    let rows: Vec<Vec<String>> = of_kind(steps, "scaling")
        .map(|x| {
            vec![
                s(x, "workers"),
                s(x, "jobs"),
                s(x, "size"),
                num(f(x, "wall_secs"), 2),
                s(x, "resources"),
                num(f(x, "resources_per_sec"), 0),
                num(f(x, "mb_per_sec"), 1),
                mib(x, "hwm_kb"),
                status(x).into(),
            ]
        })
        .collect();
    let headers = ["workers", "exports", "size", "wall s", "resources", "agg res/s", "MB/s", "peak MB", "status"];
    grid(t, &headers, &[8], &rows);
}

/// Where the CPU went during each export (user + system seconds).
fn cpu_table(t: &mut String, steps: &[Value]) {
    let _ = writeln!(t, "\nCPU seconds used during each export (user+sys; at most cores x wall)");
    for e in steps.iter().filter(|s| s["kind"] == "export" || s["kind"] == "scaling") {
        let list = |k: &str| cpu_list(e, k);
        let _ = writeln!(
            t,
            "  {} {} {} x{} (wall {} s): {}",
            s(e, "kind"),
            s(e, "mode"),
            s(e, "size"),
            s(e, "jobs"),
            num(f(e, "wall_secs"), 2),
            list("cpu_secs")
        );
        let threads = list("thread_cpu_secs");
        if !threads.is_empty() {
            let _ = writeln!(t, "      {} threads: {threads}", s(e, "process"));
        }
    }
}

/// `name secs, ...` of a step's CPU map.
fn cpu_list(step: &Value, key: &str) -> String {
    step[key]
        .as_object()
        .map(|m| m.iter().map(|(n, v)| format!("{n} {}", num(v.as_f64().unwrap_or(f64::NAN), 2))).collect::<Vec<_>>())
        .unwrap_or_default()
        .join(", ")
}
