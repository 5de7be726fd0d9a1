//! Forwarding is independent of analysis, and legacy SYNC clients are told apart.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use repl_sniff::{Event, EventKind, Sink};

use crate::support::{wait_until, Client, InProcessProxy, Reply, Server, Sniffer, Version};

/// A sink that blocks the analysis thread until released.
#[derive(Clone, Default)]
struct Stall(Arc<(Mutex<bool>, Condvar)>);

impl Stall {
    fn release(&self) {
        let (released, cv) = &*self.0;
        *released.lock().unwrap() = true;
        cv.notify_all();
    }
}

impl Sink for Stall {
    fn event(&mut self, _e: &Event) {
        let (released, cv) = &*self.0;
        let mut r = released.lock().unwrap();
        while !*r {
            r = cv.wait(r).unwrap();
        }
    }
}

#[test]
fn forwarding_never_waits_on_a_stalled_analysis() {
    let master = Server::start(Version::V7, "master", &[]);
    let stall = Stall::default();
    // A small budget, so the stalled analysis is quickly "behind".
    let proxy = InProcessProxy::start(master.port, 256 * 1024, vec![Box::new(stall.clone())]);
    let started = Instant::now();
    let mut c = Client::connect(proxy.port);
    let big = vec![b'v'; 8_000_000];
    c.cmd_bytes(&[b"SET", b"big", &big]);
    assert_eq!(c.cmd_bytes(&[b"GET", b"big"]), Reply::Bulk(Some(big)));
    assert_eq!(c.cmd(&["PING"]).text(), "PONG");
    // A forwarding that waited on the stalled analysis would never finish: this bound only
    // turns such a hang into a failure, and is far beyond any busy machine's time for 16 MB.
    assert!(started.elapsed() < Duration::from_secs(120));
    // All of that went through while the analysis had not processed a single event.
    assert!(proxy.events.lock().unwrap().is_empty());
    drop(c);
    stall.release();
    // A relay reports the bytes it skipped with its next queued chunk or at the end of its
    // connection: stopping the proxy before the close reached the analysis would lose them.
    wait_until(
        "the connection's end in the analysis",
        Duration::from_secs(10),
        || {
            let events = proxy.events.lock().unwrap();
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::SessionEnd { .. }))
        },
    );
    let (events, _) = proxy.stop();
    let desync = events.iter().find_map(|e| match &e.kind {
        EventKind::Desync { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let reason = desync.expect("the skipped bytes are reported as a desync");
    assert!(reason.contains("not analysed"), "{reason}");
}

on_every_version!(legacy_sync_clients_are_reported_as_sync_sessions);

fn legacy_sync_clients_are_reported_as_sync_sessions(v: Version) {
    let master = Server::start(v, "master", &[]);
    let mut c = master.client();
    for i in 0..100 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let sniffer = Sniffer::start(master.port, &[]);
    let port = sniffer.port.to_string();

    // redis-cli --rdb: SYNC, one RDB, exit.
    let rdb_file = master.dir.join("cli.rdb");
    let status = std::process::Command::new(v.cli_binary())
        .args(["-p", &port, "--rdb"])
        .arg(&rdb_file)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let rdb_size = std::fs::metadata(&rdb_file).unwrap().len();

    // redis-cli --replica: SYNC, an RDB, then the stream it prints.
    let mut replica = std::process::Command::new(v.cli_binary())
        .args(["-p", &port, "--replica"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "redis-cli --replica to sync",
        Duration::from_secs(20),
        || sniffer.stderr().matches("RDB transfer done").count() >= 2,
    );
    c.cmd(&["SET", "seen-by-cli", "1"]);
    c.cmd(&["INCR", "n"]);
    wait_until(
        "the stream to reach redis-cli",
        Duration::from_secs(20),
        || sniffer.stderr().contains("M->R INCR"),
    );
    let _ = replica.kill();
    let _ = replica.wait();
    let out = sniffer.stop();

    let syncs = out.sessions_of_kind("sync");
    assert_eq!(syncs.len(), 2, "report: {}", out.report_text);
    assert!(out.sessions_of_kind("replication").is_empty());
    let rdb_only = syncs[0];
    assert_eq!(rdb_only["sync"]["mode"], "sync");
    assert_eq!(rdb_only["rdb"]["complete"], true);
    assert_eq!(rdb_only["rdb"]["bytes"].as_u64(), Some(rdb_size));
    let cli_replica = syncs[1];
    assert_eq!(cli_replica["rdb"]["complete"], true);
    assert_eq!(cli_replica["commands"]["SET"]["count"].as_u64(), Some(1));
    assert_eq!(cli_replica["commands"]["INCR"]["count"].as_u64(), Some(1));
    // SYNC gives no offsets.
    assert_eq!(cli_replica["offsets"]["end"], serde_json::Value::Null);
    assert_eq!(cli_replica["desync"], serde_json::Value::Null);
}
