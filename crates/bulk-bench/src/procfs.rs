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
