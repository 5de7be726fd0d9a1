//! The `repl-sniff` binary: run to completion, or running as a proxy with its outputs in
//! files, and what it left behind when stopped.

use super::*;

/// Runs the `repl-sniff` binary to completion, hermetically (no RUST_LOG, no colour).
pub fn repl_sniff(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_repl-sniff"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Runs the binary, which must succeed.
pub fn repl_sniff_ok(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = repl_sniff(args);
    assert!(
        out.status.success(),
        "repl-sniff {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `repl-sniff` binary running as a proxy, with its outputs captured in files.
pub struct Sniffer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

/// What a stopped sniffer left behind.
pub struct Outcome {
    pub report_path: PathBuf,
    pub report: Value,
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub report_text: String,
    /// repl-sniff's peak resident memory (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

impl Outcome {
    pub fn sessions_of_kind(&self, kind: &str) -> Vec<&Value> {
        self.report["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == kind)
            .collect()
    }

    /// Everything repl-sniff wrote, for "never shows the password" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}\n{}", self.stdout, self.stderr, self.report_text)
    }
}

impl Sniffer {
    pub fn start(upstream_port: u16, extra: &[&str]) -> Sniffer {
        Self::start_on(free_port(), upstream_port, extra)
    }

    /// Like [`Sniffer::start`], listening on `port` (a restart on the same port).
    pub fn start_on(port: u16, upstream_port: u16, extra: &[&str]) -> Sniffer {
        let (port_s, upstream) = (port.to_string(), upstream_port.to_string());
        let args = ["--listen", &port_s, "--upstream", &upstream];
        let sniffer = Self::spawn("sniffer", port, &args, extra);
        wait_until("repl-sniff to listen", Duration::from_secs(10), || {
            sniffer.stderr().contains("listening on")
        });
        sniffer
    }

    /// Runs the binary with `args`, then JSON events, `-v`, a report file, and `extra`; its
    /// stdout and stderr go to files in a directory of its own.
    fn spawn(tag: &str, port: u16, args: &[&str], extra: &[&str]) -> Sniffer {
        let dir = temp_dir(tag);
        let child = Command::new(env!("CARGO_BIN_EXE_repl-sniff"))
            .args(args)
            .args(["--format", "json", "-v"])
            .arg("--report-json")
            .arg(dir.join("report.json"))
            .args(extra)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawn repl-sniff");
        Sniffer {
            port,
            child: Some(child),
            dir,
        }
    }

    /// `repl-sniff sniff -i lo --port <master_port>`: watching a link it is not part of.
    /// Packet capture needs root or CAP_NET_RAW; without it the test fails and says so.
    pub fn capture(master_port: u16, extra: &[&str]) -> Sniffer {
        let port = master_port.to_string();
        let args = ["sniff", "-i", "lo", "--port", &port];
        let mut sniffer = Self::spawn("capture", master_port, &args, extra);
        wait_until("repl-sniff to capture", Duration::from_secs(10), || {
            let err = sniffer.stderr();
            assert!(
                !err.contains("CAP_NET_RAW"),
                "packet capture needs root or CAP_NET_RAW (scripts/test runs as root in CI): {err}"
            );
            err.contains("capturing on")
        });
        assert!(sniffer.is_running());
        sniffer
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// The process id of the running repl-sniff.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Where it writes its JSON report.
    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    /// SIGKILL, then keeps the report file it left at `to` (its directory goes with it).
    pub fn kill_keeping(self, to: &Path) {
        let from = self.report_path();
        self.kill_then(|| std::fs::copy(&from, to).map(drop).unwrap());
    }

    fn kill_then(mut self, after: impl FnOnce()) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        after();
    }

    /// SIGKILL: no summary, no report, no goodbye; waits until the process is gone.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends SIGTERM, waits for a clean exit, and collects the outputs.
    pub fn stop(self) -> Outcome {
        self.stop_with("-TERM")
    }

    /// Sends `signal` (`-TERM`, `-INT`), waits for a clean exit, and collects the outputs.
    pub fn stop_with(mut self, signal: &str) -> Outcome {
        let mut child = self.child.take().unwrap();
        // The most it ever held, read before it exits (the fault tests' memory table).
        let peak_rss_kib = process::peak_rss_kib(child.id());
        eprintln!("repl-sniff peak RSS: {peak_rss_kib} KiB");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "repl-sniff did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let (stdout, stderr, report_text) = (read("stdout"), read("stderr"), read("report.json"));
        assert!(
            exit.success(),
            "repl-sniff exited with {exit}; stderr:\n{stderr}"
        );
        let report = serde_json::from_str(&report_text)
            .unwrap_or_else(|e| panic!("report is not JSON ({e}): {report_text}"));
        let events = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l}: {e}")))
            .collect();
        // Kept after the sniffer's directory is removed (a unique name, as for directories).
        let report_path = temp_dir("report").join("report.json");
        std::fs::write(&report_path, &report_text).unwrap();
        Outcome {
            report_path,
            report,
            events,
            stdout,
            stderr,
            report_text,
            peak_rss_kib,
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
