//! Memory of a process, from `/proc/PID/status` (Linux).

/// Resident set size now and its high-water mark since the process started, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mem {
    /// `VmRSS`.
    pub rss_kb: u64,
    /// `VmHWM`: the peak resident set size.
    pub hwm_kb: u64,
}

/// `None` when the process is gone (or this is not Linux).
pub(crate) fn mem(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Mem { rss_kb: field("VmRSS:")?, hwm_kb: field("VmHWM:")? })
}

/// Clock ticks a second in `/proc/*/stat` (`USER_HZ`, 100 on every Linux
/// architecture we run on).
const TICKS: f64 = 100.0;

/// `(pid, ppid, comm, utime + stime in ticks)` from a `/proc/.../stat` line.
fn parse_stat(line: &str) -> Option<(u32, u32, String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let comm = line[open + 1..close].to_owned();
    // After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((pid, ppid, comm, utime + stime))
}

/// CPU seconds (user + system) used so far by `pid` and its live descendants
/// (e.g. PostgreSQL's backends under the postmaster).
pub(crate) fn cpu_secs_tree(pid: u32) -> Option<f64> {
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) {
            procs.extend(parse_stat(&line));
        }
    }
    if !procs.iter().any(|p| p.0 == pid) {
        return None;
    }
    let mut tree = vec![pid];
    let mut ticks = 0;
    while let Some(p) = tree.pop() {
        for (child, parent, _, t) in &procs {
            if *child == p {
                ticks += t;
            }
            if *parent == p && *child != p {
                tree.push(*child);
            }
        }
    }
    Some(ticks as f64 / TICKS)
}

/// CPU seconds used by this process's children that have exited and been
/// waited for (`cutime + cstime`): a finished load generator.
pub(crate) fn reaped_children_cpu_secs() -> Option<f64> {
    let line = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest: Vec<&str> = line[line.rfind(')')? + 1..].split_whitespace().collect();
    let cutime: u64 = rest.get(13)?.parse().ok()?;
    let cstime: u64 = rest.get(14)?.parse().ok()?;
    Some((cutime + cstime) as f64 / TICKS)
}

/// CPU seconds the whole machine has been busy (all cores, every state but
/// idle and iowait), from `/proc/stat`.
pub(crate) fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle) as f64 / TICKS)
}

/// CPU seconds used so far by each thread of `pid`, summed by thread name.
pub(crate) fn cpu_secs_by_thread(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return by_name };
    for entry in tasks.flatten() {
        if let Some((_, _, comm, t)) =
            std::fs::read_to_string(entry.path().join("stat")).ok().and_then(|l| parse_stat(&l))
        {
            *by_name.entry(comm).or_insert(0.0) += t as f64 / TICKS;
        }
    }
    by_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_parses() {
        let line = "42 (tokio runtime) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1 2 3";
        assert_eq!(parse_stat(line), Some((42, 1, "tokio runtime".to_owned(), 300)));
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let me = std::process::id();
        assert!(mem(me).is_some_and(|m| m.hwm_kb >= m.rss_kb && m.rss_kb > 0));
        assert!(cpu_secs_tree(me).is_some());
        assert!(!cpu_secs_by_thread(me).is_empty());
        assert!(machine_busy_secs().is_some_and(|s| s > 0.0));
        assert!(reaped_children_cpu_secs().is_some());
    }
}
