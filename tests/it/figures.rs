//! The figures a user reads first, held against what the servers say at the moment it matters:
//! lag during a full sync's catch-up, the sync's phases, backlog advice after a burst, the
//! metrics during an RDB transfer, and reports that survive SIGHUP and SIGKILL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{assert_phases_add_up, http_get, metric};
use crate::support::{
    assert_valid_report, free_port, process, temp_dir, wait_for_quiescence, wait_until, Link,
    Outcome, Server, Sniffer, Version,
};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Writes 1 kB SETs on `master` every 5 ms until told to stop.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(master: &Server) -> Writer {
        let (stop, sets) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let mut c = master.client();
        let (s, n) = (Arc::clone(&stop), Arc::clone(&sets));
        let thread = std::thread::spawn(move || {
            let value = "v".repeat(1000);
            while !s.load(Ordering::Relaxed) {
                let i = n.fetch_add(1, Ordering::Relaxed);
                c.cmd(&["SET", &format!("w{}", i % 200), &value]);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A disk-based full sync made slow on the master (2 ms per key in the BGSAVE) while writes
/// go on: the master buffers them, and after the load the replica catches up. Before its
/// first ACK the lag is everything forwarded since the stream began, and once the master
/// sends the stream, the proxy's lag is the master's own figure (its offset minus the
/// replica's ACKed offset) within what one ACK period, and the metrics' one-second refresh,
/// let through.
#[test]
fn lag_during_the_catch_up_of_a_full_sync_is_the_masters_own_figure() {
    let v = Version::V7;
    let master = Server::start(
        v,
        "master",
        &["--repl-diskless-sync", "no", "--rdb-key-save-delay", "2000"],
    );
    let mut c = master.client();
    for i in 0..1500 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let sniffer = Sniffer::start(master.port, &["--interval", "1"]);
    let writer = Writer::start(&master);
    let replica = sniffer.replica(v, &[]);
    // The master's own lag figure, sampled with the time, until the replica has caught up.
    // While the master prepares and sends the RDB it holds the stream back (its offset runs
    // ahead of anything on the wire); from the RDB's end, state online, it sends it.
    let now = || {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        t.unwrap().as_secs_f64()
    };
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let info = master.info("replication");
        let at = now();
        let m: u64 = info["master_repl_offset"].parse().unwrap();
        let slave0 = info.get("slave0").cloned().unwrap_or_default();
        let acked = slave0
            .split(',')
            .find_map(|f| f.strip_prefix("offset="))
            .and_then(|o| o.parse::<u64>().ok());
        if let Some(acked) = acked.filter(|_| slave0.contains("state=online")) {
            samples.push((at, m.saturating_sub(acked)));
            if acked == m && samples.len() > 40 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.stop();
    wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    // A SET of 1000 bytes on "w<i>" is 1040 to 1045 bytes in the stream; the writer makes
    // 200 a second at most, and the replica ACKs once a second: between the two clocks'
    // readings, one ACK period's writes may separate the figures.
    let per_set = 1045u64;
    let slack = 210 * per_set;
    let (first, last) = (samples[0].0, samples[samples.len() - 1].0);
    let statuses: Vec<(f64, u64)> = (out.events.iter())
        .filter(|e| e["event"] == "status")
        .map(|e| (e["ts"].as_f64().unwrap(), u(&e["lag_bytes"])))
        .filter(|(ts, _)| (first..=last).contains(ts))
        .collect();
    assert!(
        !statuses.is_empty(),
        "no status during the catch-up: {samples:?}"
    );
    let mut well_behind = false;
    for &(ts, proxy) in &statuses {
        let &(_, server) = samples
            .iter()
            .min_by(|a, b| (a.0 - ts).abs().total_cmp(&(b.0 - ts).abs()))
            .unwrap();
        assert!(
            server.abs_diff(proxy) <= slack,
            "at {ts}: master says {server} B behind, repl-sniff {proxy} B: {statuses:?} {samples:?}"
        );
        well_behind |= server > 20 * per_set && proxy > 20 * per_set;
    }
    assert!(
        well_behind,
        "no moment well behind: {statuses:?} {samples:?}"
    );
    let s = out.sessions_of_kind("replication")[0];
    assert!(
        u(&s["timing"]["max_lag_bytes"]) >= u(&s["timeline"]["buffered_bytes"]),
        "the buffered stream was all lag before the first ACK: {}",
        s["timing"]
    );
    assert_valid_report(&out.report_path);
}

/// Starts a replica through a fresh proxy, waits until it caught up, and returns the report's
/// replication session with the time the test saw it take, and the proxy's outputs.
fn sync_through_proxy(v: Version, master: &Server) -> (Value, Duration, Outcome) {
    let sniffer = Sniffer::start(master.port, &["--interval", "1"]);
    let started = Instant::now();
    let replica = sniffer.replica(v, &[]);
    wait_until("the replica online", Duration::from_secs(60), || {
        replica.link_up()
    });
    // An ACK of a write shows the replica caught up (before any write, the master's offset
    // for it equals its own from the start).
    master.client().cmd(&["SET", "caught-up", "1"]);
    wait_for_quiescence(master, &replica);
    let seen = started.elapsed();
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0].clone();
    (s, seen, out)
}

/// Redis 7.0's defaults: diskless, with a 5 s delay before the fork, during which the master
/// sends keep-alives before it even answers the PSYNC. That wait is the master preparing,
/// not the handshake.
#[test]
fn a_diskless_sync_with_the_default_delay_spends_it_preparing_not_in_the_handshake() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-diskless-sync-delay", "5"]);
    let (s, seen, out) = sync_through_proxy(v, &master);
    let stderr = &out.stderr;
    let t = &s["timeline"];
    assert_phases_add_up(t, seen);
    let (handshake, preparing) = (
        t["handshake_ms"].as_f64().unwrap(),
        t["bgsave_wait_ms"].as_f64().unwrap(),
    );
    // The server counts the delay in whole seconds of its clock: at least 4 s of it.
    assert!(preparing >= 4000.0 && handshake < preparing, "{t}");
    assert!(
        u(&t["bgsave_keepalives"]) >= 3,
        "one keep-alive a second: {t}"
    );
    assert!(stderr.contains("master preparing the RDB"), "{stderr}");
    // Live, the wait is not silent: a status each second says where the sync stands.
    let waits: Vec<f64> = (out.events.iter())
        .filter(|e| e["event"] == "status" && e["phase"] == "preparing")
        .map(|e| e["phase_s"].as_f64().unwrap())
        .collect();
    assert!(waits.len() >= 3, "{waits:?}");
    assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
    assert!(
        stderr.contains("full sync: the master prepares the RDB for"),
        "{stderr}"
    );
}

/// A disk-based sync (the BGSAVE made slow) on 7.0, and the default sync of 8.2.3 (over the
/// RDB channel): every phase is there and they add up.
#[test]
fn the_phases_of_a_disk_sync_and_of_an_rdb_channel_sync_add_up_to_the_sync() {
    let master = Server::start(
        Version::V7,
        "master",
        &["--repl-diskless-sync", "no", "--rdb-key-save-delay", "1000"],
    );
    let mut c = master.client();
    for i in 0..1000 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let (s, seen, _) = sync_through_proxy(Version::V7, &master);
    let total = assert_phases_add_up(&s["timeline"], seen);
    assert!(
        s["timeline"]["bgsave_wait_ms"].as_f64().unwrap() >= 1000.0,
        "1000 keys at 1 ms"
    );
    assert!(total >= 1000.0);

    let master = Server::start(Version::V8, "master", &["--repl-diskless-sync-delay", "1"]);
    let (s, seen, _) = sync_through_proxy(Version::V8, &master);
    assert_eq!(s["sync"]["mode"], "rdb_channel", "{s}");
    assert_phases_add_up(&s["timeline"], seen);
}

/// A burst of writes, then 3 s of quiet, then the run ends: the stream lasted far less than
/// the 60 s a disconnect should survive, so the advice is what the stream wrote (a lower
/// bound), not that burst's rate stretched to a minute.
#[test]
fn backlog_advice_after_a_3_s_burst_is_what_the_burst_wrote() {
    let v = Version::V7;
    let Link(master, sniffer, replica) = Link::of(v).up();
    let mut c = master.client();
    let value = "b".repeat(100);
    for i in 0..20_000 {
        c.send(&[b"SET", format!("burst{i}").as_bytes(), value.as_bytes()]);
        if i % 1000 == 999 {
            for _ in 0..1000 {
                c.read_reply().unwrap();
            }
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    let b = &s["timing"]["backlog"];
    let stream = u(&s["offsets"]["end"]) + 1 - u(&s["offsets"]["start"]);
    assert_eq!(b["lower_bound"], true, "{b}");
    assert!(u(&b["based_on_s"]) < 60, "{b}");
    // Every stream byte was written inside the window: the advice holds exactly them.
    assert_eq!(u(&b["window_bytes"]), stream, "{b}");
    let advised = u(&b["advised_bytes"]);
    assert!(
        advised >= stream && advised <= stream + stream / 4 + (1 << 20),
        "{advised} for {stream} bytes: {b}"
    );
}

/// An RDB transfer made slow (a diskless fork writing 1 ms per key): a scrape in the middle
/// of it finds the sync in its transfer phase and the RDB bytes strictly between 0 and the
/// RDB's final size, and the per-replica counters agree with the sync counters.
#[test]
fn a_scrape_during_an_rdb_transfer_shows_the_bytes_so_far_and_the_phase() {
    let v = Version::V7;
    let master = Server::start(
        v,
        "master",
        &[
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-key-save-delay",
            "1000",
        ],
    );
    let mut c = master.client();
    let value = "x".repeat(500);
    for i in 0..3000 {
        c.cmd(&["SET", &format!("k{i}"), &value]);
    }
    let metrics = free_port();
    let sniffer = Sniffer::start(master.port, &["--metrics", &metrics.to_string()]);
    let replica_port = free_port();
    let replica = Server::start_on(
        v,
        replica_port,
        "replica",
        &["--replicaof", "127.0.0.1", &sniffer.port.to_string()],
    );
    let mut during = Vec::new();
    wait_until(
        "the transfer to be scraped",
        Duration::from_secs(30),
        || {
            let phase = metric(metrics, "repl_sniff_sync_phase", "phase=\"transfer\"");
            let bytes = metric(metrics, "repl_sniff_rdb_bytes_total", "");
            if phase == Some(1.0) {
                during.extend(bytes);
            }
            during.len() >= 2 || replica.link_up()
        },
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    // A reconnect: the replica drops its link, and continues with a partial resync.
    replica.client().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    wait_until("the partial resync", Duration::from_secs(30), || {
        master.info_u64("stats", "sync_partial_ok") == 1 && replica.link_up()
    });
    std::thread::sleep(Duration::from_millis(1500)); // metrics are rendered every second
    let (_, body) = http_get(metrics, "/metrics");
    let out = sniffer.stop();
    let total = u(&out.sessions_of_kind("replication")[0]["rdb"]["bytes"]) as f64;
    // A diskless transfer's length comes with its end mark: its progress is the keys read
    // against those the RDB's RESIZEDB hint announces.
    let keys: Vec<(u64, Value)> = (out.events.iter())
        .filter(|e| e["event"] == "status" && e["rdb"].is_object())
        .map(|e| (u(&e["rdb"]["keys"]), e["rdb"]["keys_announced"].clone()))
        .collect();
    assert!(
        keys.iter()
            .any(|(k, all)| *all == 3000 && 0 < *k && *k < 3000),
        "{keys:?}"
    );
    assert!(!during.is_empty(), "no scrape in the transfer phase");
    assert!(
        during.iter().any(|&b| 0.0 < b && b < total),
        "RDB bytes during the transfer {during:?}, of {total}"
    );
    let label = format!("replica=\"127.0.0.1:{replica_port}\"");
    assert!(
        body.lines()
            .any(|l| l.starts_with("repl_sniff_lag_bytes{") && l.contains(&label)),
        "the replica is named by its listening port: {body}"
    );
    let full = |name: &str| {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    // The counters agree with each other and with the master, at the scrape.
    for counter in [
        "repl_sniff_syncs_total{type=\"full\"}",
        "repl_sniff_syncs_total{type=\"partial\"}",
        "repl_sniff_replica_full_syncs_total{",
        "repl_sniff_replica_partial_syncs_total{",
        "repl_sniff_replica_reconnects_total{",
    ] {
        assert_eq!(full(counter), Some(1.0), "{counter}: {body}");
    }
}

/// SIGHUP (a closed terminal) writes the reports and the proxy goes on forwarding; SIGKILL
/// leaves the report of the last interval, valid against the schema.
#[test]
fn reports_survive_sighup_and_sigkill() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let html = temp_dir("sighup").join("report.html");
    let html_s = html.to_str().unwrap().to_string();
    let sniffer = Sniffer::start(
        master.port,
        &["--report-interval", "1", "--report-html", &html_s],
    );
    let replica_port = free_port();
    let replica = Server::start_on(
        v,
        replica_port,
        "replica",
        &["--replicaof", "127.0.0.1", &sniffer.port.to_string()],
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    let report = sniffer.report_path();
    process::signal(sniffer.pid(), "-HUP");
    wait_until("SIGHUP's reports", Duration::from_secs(10), || {
        sniffer.stderr().contains("SIGHUP: reports written")
    });
    let mut sniffer = sniffer;
    assert!(sniffer.is_running(), "SIGHUP ended the proxy");
    assert_valid_report(&report);
    assert!(std::fs::read_to_string(&html).unwrap().contains("</html>"));
    // Still forwarding: a write reaches the replica through it.
    master.client().cmd(&["SET", "after-hup", "1"]);
    wait_for_quiescence(&master, &replica);
    // The last interval's report holds the write: it survives a SIGKILL.
    let end = master.info_u64("replication", "master_repl_offset");
    wait_until("a report with the write", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        serde_json::from_str::<Value>(&text).is_ok_and(|r| {
            r["sessions"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["offsets"]["end"] == end))
        })
    });
    let kept = temp_dir("sigkill").join("report.json");
    sniffer.kill_keeping(&kept);
    assert_valid_report(&kept);
}

/// Stopping the proxy leaves its replicas pointed at a port nobody listens on: its last line
/// names each, with the command that points it back at the master.
#[test]
fn stopping_the_proxy_says_how_to_point_the_replica_back() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let sniffer = Sniffer::start(master.port, &[]);
    let replica_port = free_port();
    let replica = Server::start_on(
        v,
        replica_port,
        "replica",
        &["--replicaof", "127.0.0.1", &sniffer.port.to_string()],
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    let out = sniffer.stop();
    let said = format!(
        "redis-cli -h 127.0.0.1 -p {replica_port} REPLICAOF 127.0.0.1 {}",
        master.port
    );
    assert!(out.stderr.contains(&said), "{}", out.stderr);
    // Log lines carry the time as replay's lines do: HH:MM:SS.micros.
    let first = out.stderr.lines().next().unwrap_or_default();
    let time = first.split(' ').next().unwrap_or_default();
    let shape: String = time
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "99:99:99.999999", "{first}");
}
