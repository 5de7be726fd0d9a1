//! Real `redis-server` processes on free loopback ports, a minimal RESP client to talk to them,
//! and a driver for the `repl-sniff` binary.
//!
//! Binaries: `REPL_SNIFF_REDIS_7` (default `redis-server` on PATH, Debian's 7.0),
//! `REPL_SNIFF_REDIS_6` (default `.cache/redis-6.0.9/redis_server/bin/redis-server`),
//! `REPL_SNIFF_REDIS_8` (default `.cache/redis-8.2.3/redis-server`), `REPL_SNIFF_VALKEY_8`
//! (default `.cache/valkey-8.1.8/valkey-server`) and `REPL_SNIFF_VALKEY_9` (default
//! `.cache/valkey-9.1.2/valkey-server`), the PyPI wheels that `scripts/test` unpacks. A missing
//! binary fails the test with a hint: these tests never skip silently.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use repl_sniff::live::proxy::{self, ProxyConfig};
use repl_sniff::report::monitor::{Secrets, Tap};
use repl_sniff::Input;
use repl_sniff::{Config, Event, Monitor, Sink};
use serde_json::Value;

/// Which server the test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V7,
    V6,
    /// 8.2.3: RDB 12, and every full sync over two connections (the RDB channel).
    V8,
    /// Valkey 8.1.8 with its defaults: diskless, one connection per sync, RDB 11.
    Valkey8,
    /// Valkey 9.1.2 with dual-channel replication on: every diskless full sync over two
    /// connections, RDBs written `VALKEY080` to a replica that announces its version.
    Valkey9,
}

impl Version {
    pub fn server_binary(self) -> PathBuf {
        let (var, default) = match self {
            Version::V7 => ("REPL_SNIFF_REDIS_7", PathBuf::from("redis-server")),
            Version::V6 => (
                "REPL_SNIFF_REDIS_6",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(".cache/redis-6.0.9/redis_server/bin/redis-server"),
            ),
            Version::V8 => (
                "REPL_SNIFF_REDIS_8",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/redis-8.2.3/redis-server"),
            ),
            Version::Valkey8 => (
                "REPL_SNIFF_VALKEY_8",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/valkey-8.1.8/valkey-server"),
            ),
            Version::Valkey9 => (
                "REPL_SNIFF_VALKEY_9",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/valkey-9.1.2/valkey-server"),
            ),
        };
        let bin = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
        let ok = Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} not found ({var}); run scripts/test, which installs Redis 7.0, 6.0.9 and 8.2.3 \
             and Valkey 8.1.8 and 9.1.2",
            bin.display()
        );
        bin
    }

    /// The cli shipped beside the server, else `redis-cli` on PATH (any cli talks to any of
    /// these servers).
    pub fn cli_binary(self) -> PathBuf {
        let server = self.server_binary();
        ["redis-cli", "valkey-cli"]
            .iter()
            .map(|name| server.with_file_name(name))
            .find(|beside| beside.exists())
            .unwrap_or_else(|| PathBuf::from("redis-cli"))
    }

    pub fn is_valkey(self) -> bool {
        matches!(self, Version::Valkey8 | Version::Valkey9)
    }
}

/// A diskless full sync (the servers' default) goes over two connections on Redis 8 and on
/// Valkey 9 as the tests start it: `s` must be that sync, paired into one session. Other
/// versions sync on one connection.
pub fn assert_two_connections_where_expected(v: Version, s: &Value) {
    let channels = s["channels"].as_array().map_or(0, Vec::len);
    let mode = match v {
        Version::V8 => "rdb_channel",
        Version::Valkey9 => "dual_channel",
        Version::V6 | Version::V7 | Version::Valkey8 => {
            return assert_eq!(channels, 0, "{s:#}");
        }
    };
    assert_eq!(s["sync"]["mode"], mode, "{s:#}");
    assert_eq!(channels, 2, "main and rdb: {s:#}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    // A counter, not a free port: two tests could be handed the same port number, and two
    // processes writing one directory's files interleave their output.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("repl-sniff-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A running `redis-server`, killed on drop.
pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    /// What the harness's own connections authenticate with: (user, password).
    pub auth: Option<(Option<String>, String)>,
    child: Child,
}

impl Server {
    /// Starts a server with test-friendly defaults plus `extra` (`["--name", "value", …]`).
    pub fn start(version: Version, tag: &str, extra: &[&str]) -> Server {
        Self::start_on(version, free_port(), tag, extra)
    }

    pub fn start_on(version: Version, port: u16, tag: &str, extra: &[&str]) -> Server {
        let dir = temp_dir(tag);
        let mut cmd = Command::new(version.server_binary());
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log", "--loglevel", "verbose"])
            // No PING moves the offset while a test compares it (tests that want PINGs set it).
            .args(["--repl-ping-replica-period", "3600"])
            .args(match version {
                // DEBUG DIGEST compares datasets; 7.0 disables DEBUG by default, 6.0 has no
                // such option.
                Version::V7 | Version::V8 | Version::Valkey8 => {
                    &["--enable-debug-command", "yes"][..]
                }
                Version::Valkey9 => &[
                    "--enable-debug-command",
                    "yes",
                    "--dual-channel-replication-enabled",
                    "yes",
                ],
                Version::V6 => &[],
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn redis-server");
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_string());
        let server = Server {
            port,
            dir,
            auth: password.map(|p| (None, p)),
            child,
        };
        wait_until(
            &format!("redis-server on port {port}"),
            Duration::from_secs(10),
            || Client::try_connect(port).is_some_and(|mut c| c.try_cmd(&["PING"]).is_ok()),
        );
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        let mut c = Client::connect(self.port);
        match &self.auth {
            Some((Some(user), pass)) => c.cmd(&["AUTH", user, pass]),
            Some((None, pass)) => c.cmd(&["AUTH", pass]),
            None => return c,
        };
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// `INFO <section>` as a map.
    pub fn info(&self, section: &str) -> HashMap<String, String> {
        self.client().info(section)
    }

    pub fn info_u64(&self, section: &str, field: &str) -> u64 {
        let info = self.info(section);
        info.get(field)
            .unwrap_or_else(|| panic!("no {field} in INFO {section}: {info:?}"))
            .parse()
            .unwrap()
    }

    /// The replica's offset as the master sees it (`slave0:…,offset=N,…`).
    pub fn slave0_offset(&self) -> Option<u64> {
        let info = self.info("replication");
        let slave0 = info.get("slave0")?;
        slave0
            .split(',')
            .find_map(|kv| kv.strip_prefix("offset="))
            .and_then(|v| v.parse().ok())
    }

    pub fn link_up(&self) -> bool {
        self.info("replication")
            .get("master_link_status")
            .is_some_and(|s| s == "up")
    }

    pub fn digest(&self) -> String {
        self.client().cmd(&["DEBUG", "DIGEST"]).text()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not text: {other:?}"),
        }
    }
}

/// A minimal blocking RESP2 client.
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    pub fn try_connect(port: u16) -> Option<Client> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.set_nodelay(true).ok()?;
        Some(Client {
            r: BufReader::new(s.try_clone().ok()?),
            w: s,
        })
    }

    pub fn connect(port: u16) -> Client {
        Self::try_connect(port).unwrap_or_else(|| panic!("cannot connect to port {port}"))
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        self.try_send(args).unwrap()
    }

    pub fn try_send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf)
    }

    pub fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.try_send(&args)?;
        self.read_reply()
    }

    /// Runs a command; an error reply fails the test.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        match self.try_cmd(args).unwrap() {
            Reply::Error(e) => panic!("{args:?} failed: {e}"),
            r => r,
        }
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Reply {
        self.send(args);
        self.read_reply().unwrap()
    }

    pub fn info(&mut self, section: &str) -> HashMap<String, String> {
        self.cmd(&["INFO", section])
            .text()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            // A closed connection is an error for the caller to judge (a refused connection
            // is what some tests wait through), not a reply.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        Ok(match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                let mut v = Vec::new();
                for _ in 0..n.max(0) {
                    v.push(self.read_reply()?);
                }
                Reply::Array(v)
            }
            other => panic!("unexpected reply type {other:?} in {line:?}"),
        })
    }
}

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

/// The Python with the checkers the tests use (prometheus_client, jsonschema), as set up
/// by scripts/test.
pub fn python() -> PathBuf {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/py/bin/python");
    let py = std::env::var_os("REPL_SNIFF_PYTHON").map_or(default, PathBuf::from);
    assert!(py.exists(), "{} not found; run scripts/test", py.display());
    py
}

/// Validates a report file against docs/report.schema.json with the `jsonschema` package.
pub fn assert_valid_report(path: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    let script = "import json,sys,jsonschema\n\
        s=json.load(open(sys.argv[1]))\n\
        v=jsonschema.Draft202012Validator(s)\n\
        errs=[f'{list(e.absolute_path)}: {e.message}' for e in v.iter_errors(json.load(open(sys.argv[2])))]\n\
        print('\\n'.join(errs[:5]))\n\
        sys.exit(1 if errs else 0)";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(&schema)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not match docs/report.schema.json:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `n` keys on `master`, each acknowledged by one replica (`WAIT 1 1000`) and followed
/// by `pause`: a stream that spans several seconds, for reports drawn per second.
pub fn paced_acked_writes(master: &Server, n: usize, pause: Duration) {
    let mut c = master.client();
    for i in 0..n {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
        c.cmd(&["WAIT", "1", "1000"]);
        std::thread::sleep(pause);
    }
}

/// `SET <prefix><i> v` then `WAIT 1 0`, `n` times on `c`; returns each pair's round trip as
/// the client saw it, from sending the SET to the WAIT's answer. A SET's ack latency as any
/// observer between them measures it lies inside that round trip.
pub fn acked_writes(c: &mut Client, prefix: &str, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let sent = Instant::now();
            c.cmd(&["SET", &format!("{prefix}{i}"), "v"]);
            c.cmd(&["WAIT", "1", "0"]);
            sent.elapsed()
        })
        .collect()
}

/// Asserts that the report's histogram `h` (µs) is within the client's own `trips`: every
/// sample lies inside one of them, so its median and maximum can be no larger (with the
/// histogram's 0.1 % precision). Holds however busy the machine is.
pub fn assert_within_round_trips(h: &Value, trips: &[Duration], what: &str) {
    let mut us: Vec<u64> = trips.iter().map(|t| t.as_micros() as u64).collect();
    us.sort_unstable();
    let median = us[us.len().div_ceil(2) - 1];
    let max = us[us.len() - 1];
    let slack = |v: u64| v + v / 100 + 10;
    let (p50, hmax) = (h["p50"].as_u64().unwrap(), h["max"].as_u64().unwrap());
    assert!(
        p50 <= slack(median),
        "{what}: p50 {p50} µs, but the client's median round trip was {median} µs: {h}"
    );
    assert!(
        hmax <= slack(max),
        "{what}: max {hmax} µs, but the client's longest round trip was {max} µs: {h}"
    );
}

/// How late this machine runs things, measured by sleeping: a scheduler-bound delay that the
/// servers' timers and repl-sniff's reads suffer too. Busy machines show large ones.
#[derive(Debug, Default, Clone, Copy)]
pub struct Lateness(pub Duration);

impl Lateness {
    /// Sleeps `total` in `step`s, remembering the worst overshoot of one.
    pub fn sleep(&mut self, total: Duration, step: Duration) {
        let end = Instant::now() + total;
        while Instant::now() < end {
            let t = Instant::now();
            std::thread::sleep(step);
            self.0 = self.0.max(t.elapsed().saturating_sub(step));
        }
    }
}

/// Asserts that a heartbeat histogram's median `h["p50"]` (µs) is the sender's `period`: the
/// servers' timers tick every 100 ms (hz 10), and on a busy machine both the sender's timer
/// and repl-sniff's read of it can run late by what the test measured the machine doing.
pub fn assert_period(h: &Value, period: Duration, late: Lateness, what: &str) {
    let p50 = Duration::from_micros(h["p50"].as_u64().unwrap());
    let slack = Duration::from_millis(100) + late.0;
    let off = p50.abs_diff(period);
    assert!(
        off <= slack,
        "{what}: p50 {p50:?}, {off:?} from the {period:?} period, more than a timer tick and \
         the {:?} this machine ran late: {h}",
        late.0
    );
}

/// Waits until master and replica agree on the offset and the replica has acknowledged it.
pub fn wait_for_quiescence(master: &Server, replica: &Server) -> u64 {
    let mut last = None;
    wait_until(
        "replica to catch up and ACK",
        Duration::from_secs(30),
        || {
            let m = master.info_u64("replication", "master_repl_offset");
            let r = replica.info_u64("replication", "slave_repl_offset");
            let acked = master.slave0_offset();
            let settled = m == r && acked == Some(m) && last == Some(m);
            last = Some(m);
            settled
        },
    );
    last.unwrap()
}

/// The proxy running inside the test, with every input recorded and every event collected.
pub struct InProcessProxy {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub events: Arc<Mutex<Vec<Event>>>,
    inputs: Arc<Mutex<Vec<Input>>>,
}

impl InProcessProxy {
    /// Starts it in front of `upstream` with an analysis budget of `budget` bytes; events go to
    /// `sinks` first, then to the collection.
    pub fn start(upstream: u16, budget: usize, mut sinks: Vec<Box<dyn Sink>>) -> InProcessProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let collect = Collect::default();
        let recording = Recording::default();
        let (events, inputs) = (Arc::clone(&collect.0), Arc::clone(&recording.0));
        sinks.push(Box::new(collect));
        let monitor = Monitor::new(Config::default(), sinks).with_tap(Box::new(recording));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cfg = ProxyConfig {
            upstream: format!("127.0.0.1:{upstream}"),
            analysis_budget: budget,
            ..ProxyConfig::default()
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                proxy::run(listener, cfg, monitor, shutdown).await.unwrap();
            });
        });
        InProcessProxy {
            port,
            stop: Some(stop),
            thread: Some(thread),
            events,
            inputs,
        }
    }

    /// Stops it: every event, and every input the analysis was handed.
    pub fn stop(mut self) -> (Vec<Event>, Vec<Input>) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
        let events = self.events.lock().unwrap().clone();
        let inputs = self.inputs.lock().unwrap().clone();
        (events, inputs)
    }
}

/// Keeps every event in memory.
#[derive(Debug, Default, Clone)]
pub struct Collect(pub Arc<Mutex<Vec<Event>>>);

impl Sink for Collect {
    fn event(&mut self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
}

/// Keeps every input in memory, shareable with the code that started the run.
#[derive(Debug, Default, Clone)]
pub struct Recording(pub Arc<Mutex<Vec<Input>>>);

impl Tap for Recording {
    fn input(&mut self, input: &Input, _secrets: &Secrets<'_>) {
        self.0.lock().unwrap().push(input.clone());
    }
}

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

/// `socat` relaying a port to `upstream` (one process per connection), the reference relay
/// the fault tests compare with. Killed on drop.
pub struct Socat {
    pub port: u16,
    child: Child,
}

impl Socat {
    pub fn start(upstream: u16) -> Socat {
        let port = free_port();
        let child = Command::new("socat")
            .arg(format!(
                "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay"
            ))
            .arg(format!("TCP:127.0.0.1:{upstream},nodelay"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (scripts/test installs it from Debian)");
        wait_until("socat to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Socat { port, child }
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
