//! What the kernel says about a process (`/proc`).

/// What the kernel says about a process: its memory, its file handles, its CPU time.
pub mod process {
    use std::process::Command;

    /// Sends `sig` (`-STOP`, `-CONT`, `-KILL`…) to `pid`.
    pub fn signal(pid: u32, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Resident anonymous memory, in KiB (`RssAnon`): the heap and stacks, without the
    /// binary's own pages, which are read in from the file as code paths first run.
    pub fn anon_kib(pid: u32) -> u64 {
        status_field(pid, "RssAnon:")
    }

    /// The most resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(pid: u32) -> u64 {
        status_field(pid, "VmHWM:")
    }

    fn status_field(pid: u32, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Open file handles.
    pub fn fds(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    }

    /// User plus system CPU time, in clock ticks (1/100 s).
    pub fn cpu_ticks(pid: u32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name may hold spaces: fields are counted after its closing parenthesis.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        tick(11) + tick(12)
    }
}
