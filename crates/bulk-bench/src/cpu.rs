//! Where the CPU went: per-process and per-thread CPU seconds around a run.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::{json, Value};

use crate::procfs;

/// CPU seconds used so far by named processes (with their children), by
/// this client, and by one process's threads, grouped by thread name.
pub(crate) struct CpuSnapshot {
    procs: Vec<(String, Option<f64>)>,
    machine: Option<f64>,
    reaped: Option<f64>,
    threads: BTreeMap<String, f64>,
}

impl CpuSnapshot {
    /// `specs` are `NAME=PID`; `threads_of` is the process whose threads are broken down.
    pub(crate) fn take(specs: &[String], threads_of: Option<u32>) -> anyhow::Result<Self> {
        let mut procs = Vec::new();
        for spec in specs {
            let (name, pid) = spec.split_once('=').context("--cpu wants NAME=PID")?;
            procs.push((name.to_owned(), procfs::cpu_secs_tree(pid.parse().context("--cpu PID")?)));
        }
        procs.push(("bench client".to_owned(), procfs::cpu_secs_tree(std::process::id())));
        let threads = threads_of.map(procfs::cpu_secs_by_thread).unwrap_or_default();
        Ok(CpuSnapshot {
            procs,
            machine: procfs::machine_busy_secs(),
            reaped: procfs::reaped_children_cpu_secs(),
            threads,
        })
    }

    /// `(processes, threads)`: seconds used between `self` and `later`, by
    /// name, to 10 ms; threads that used less are left out. The processes
    /// end with `others`: what the rest of the machine used meanwhile (another
    /// build, say), which disturbs the timings.
    pub(crate) fn until(&self, later: &CpuSnapshot) -> (Value, Value) {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let mut procs = serde_json::Map::new();
        let mut ours = 0.0;
        for ((name, before), (_, after)) in self.procs.iter().zip(&later.procs) {
            let used = after.zip(*before).map(|(a, b)| a - b);
            ours += used.unwrap_or(0.0);
            procs.insert(name.clone(), json!(used.map(round)));
        }
        // A child run meanwhile and waited for: the load generator.
        if let Some(reaped) = later.reaped.zip(self.reaped).map(|(a, b)| a - b).filter(|r| *r > 0.0) {
            ours += reaped;
            procs.insert("load generator".into(), json!(round(reaped)));
        }
        let machine = later.machine.zip(self.machine).map(|(a, b)| a - b);
        procs.insert("others".into(), json!(machine.map(|m| round((m - ours).max(0.0)))));
        let mut threads = serde_json::Map::new();
        for (name, after) in &later.threads {
            let used = after - self.threads.get(name).copied().unwrap_or(0.0);
            if used >= 0.01 {
                threads.insert(name.clone(), json!(round(used)));
            }
        }
        (Value::Object(procs), Value::Object(threads))
    }
}
