//! Diagnosis against real servers: why each sync happened, with the numbers behind it, as the
//! servers' own accounting confirms.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{free_port, wait_for_quiescence, wait_until, Server, Sniffer, Version};

fn signal(server: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn reason(s: &Value) -> (&str, Option<u64>) {
    let r = &s["sync"]["reason"];
    (
        r["code"].as_str().unwrap_or("none"),
        r["gap_bytes"].as_u64(),
    )
}

/// A 16 kB backlog, a replica stopped while its link is killed and 1.5 MB are written: when
/// it comes back, its offset is long gone from the backlog.
#[test]
fn a_backlog_too_small_for_the_gap_is_named_with_the_gap_and_the_backlog_that_fits() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-backlog-size", "16kb"]);
    let sniffer = Sniffer::start(master.port, &[]);
    let port = sniffer.port.to_string();
    let replica = Server::start(v, "replica", &["--replicaof", "127.0.0.1", &port]);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    let before = wait_for_quiescence(&master, &replica);
    signal(&replica, "-STOP");
    master.client().cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    let value = "x".repeat(1000);
    let mut c = master.client();
    for i in 0..1500 {
        c.cmd(&["SET", &format!("k{i}"), &value]);
    }
    let master_at = master.info_u64("replication", "master_repl_offset");
    signal(&replica, "-CONT");
    wait_until("second full sync", Duration::from_secs(30), || {
        master.info_u64("stats", "sync_full") == 2 && replica.link_up()
    });
    wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();

    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 2, "{}", out.report_text);
    assert_eq!(reason(sessions[0]), ("first_sync", None));
    let (code, gap) = reason(sessions[1]);
    assert_eq!(code, "offset_outside_backlog", "{}", out.report_text);
    // The replica asked for the byte after what it had; the master was `master_at`.
    assert_eq!(
        gap,
        Some(master_at - before),
        "gap vs the master's INFO offsets"
    );
    let message = sessions[1]["sync"]["reason"]["message"].as_str().unwrap();
    assert!(message.contains("repl-backlog-size of"), "{message}");
    let advice: f64 = message
        .rsplit("repl-backlog-size of ")
        .next()
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        advice * 1048576.0 > gap.unwrap() as f64,
        "advice {advice} MB vs gap {gap:?}"
    );
    let history = &out.report["replicas"][0];
    assert_eq!(
        (&history["links"], &history["full_syncs"]),
        (&2.into(), &2.into())
    );
}

/// A master restarted without persistence has a new replid: the replica's PSYNC cannot match.
#[test]
fn a_master_restarted_without_persistence_is_a_replid_mismatch() {
    let v = Version::V7;
    let port = free_port();
    let master = Server::start_on(v, port, "master", &[]);
    let sniffer = Sniffer::start(port, &[]);
    let replica = Server::start(
        v,
        "replica",
        &["--replicaof", "127.0.0.1", &sniffer.port.to_string()],
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    master.client().cmd(&["SET", "k", "v"]);
    wait_for_quiescence(&master, &replica);
    let old_replid = master.info("replication")["master_replid"].clone();
    drop(master);
    let master = Server::start_on(v, port, "master2", &[]);
    wait_until(
        "resync with the new master",
        Duration::from_secs(30),
        || replica.link_up() && master.info_u64("stats", "sync_full") == 1,
    );
    let new_replid = master.info("replication")["master_replid"].clone();
    assert_ne!(old_replid, new_replid);
    let out = sniffer.stop();
    let sessions = out.sessions_of_kind("replication");
    let last = sessions.last().unwrap();
    assert_eq!(reason(last).0, "replid_mismatch", "{}", out.report_text);
    let message = last["sync"]["reason"]["message"].as_str().unwrap();
    assert!(
        message.contains(&old_replid) && message.contains(&new_replid),
        "{message}"
    );
}
