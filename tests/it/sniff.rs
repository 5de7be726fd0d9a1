//! `repl-sniff sniff`: a master and its replica connected directly, watched on loopback.
//! The numbers must be the servers' own, as through the proxy.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    assert_two_connections_where_expected, wait_for_quiescence, wait_until, Client, Server,
    Sniffer, Version,
};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn replica_of(v: Version, master: &Server) -> Server {
    Server::start(
        v,
        "replica",
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    )
}

/// The capture starts before the replica connects: the whole sync is seen.
fn from_the_first_byte(v: Version) {
    let master = Server::start(v, "master", &["--repl-diskless-sync-delay", "0"]);
    let mut c = master.client();
    for i in 0..300 {
        c.cmd(&["SET", &format!("pre{i}"), "v"]);
    }
    let capture = Sniffer::capture(master.port, &[]);
    let replica = replica_of(v, &master);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    let trips = crate::support::acked_writes(&mut c, "k", 100);
    let end = wait_for_quiescence(&master, &replica);
    let out = capture.stop_with("-INT");
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 1, "{}", out.report_text);
    let s = sessions[0];
    assert_two_connections_where_expected(v, s);
    assert_eq!(s["sync"]["type"], "full");
    assert_eq!(
        u(&s["offsets"]["end"]),
        end,
        "offsets.end vs master_repl_offset"
    );
    assert_eq!(
        u(&s["offsets"]["acked"]),
        end,
        "offsets.acked vs slave0 offset"
    );
    assert_eq!(u(&s["commands"]["SET"]["count"]), 100);
    assert_eq!(
        u(&s["rdb"]["contents"]["dbs"]["0"]["keys"]),
        300,
        "RDB keys vs DBSIZE then"
    );
    let set = &s["timing"]["commands"]["SET"]["ack_latency_us"];
    crate::support::assert_within_round_trips(set, &trips, "SET ack latency");
    assert_eq!(out.report["capture"]["kernel_drops"], 0);
}

on_every_version!(from_the_first_byte);

/// The capture starts while the link is up: joined late, then anchored by GETACK answers.
#[test]
fn a_link_already_up_is_joined_late_and_anchored_by_getack_answers() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let replica = replica_of(v, &master);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    master.client().cmd(&["SET", "before", "1"]);
    wait_for_quiescence(&master, &replica);
    let metrics = crate::support::free_port().to_string();
    let capture = Sniffer::capture(master.port, &["--metrics", &metrics, "--interval", "1"]);
    let mut c = master.client();
    for i in 0..20 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
        c.cmd(&["WAIT", "1", "0"]);
    }
    let end = wait_for_quiescence(&master, &replica);
    std::thread::sleep(Duration::from_millis(1500)); // metrics are rendered every second
    let (_, body) = crate::support::http_get(metrics.parse().unwrap(), "/metrics");
    assert!(
        body.contains("repl_sniff_capture_kernel_drops_total 0"),
        "{body}"
    );
    assert!(body.contains("repl_sniff_capture_packets_total "), "{body}");
    let out = capture.stop_with("-INT");
    let s = out.sessions_of_kind("replication")[0];
    assert_eq!(s["joined_late"], true);
    assert_eq!(
        u(&s["offsets"]["end"]),
        end,
        "anchored: offsets.end vs master_repl_offset"
    );
    assert_eq!(u(&s["offsets"]["acked"]), end);
    assert!(out.events.iter().any(|e| e["event"] == "anchored"));
    // The capture's status line, with the kernel's drops.
    assert!(
        out.stderr.contains("dropped by the kernel"),
        "{}",
        out.stderr
    );
}

/// A partial resync after the replica's link is killed is a new, partial session.
#[test]
fn a_partial_resync_is_seen_as_a_new_partial_session() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let capture = Sniffer::capture(master.port, &[]);
    let replica = replica_of(v, &master);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    master.client().cmd(&["SET", "a", "1"]);
    wait_for_quiescence(&master, &replica);
    replica.client().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    wait_until("partial resync", Duration::from_secs(30), || {
        master.info_u64("stats", "sync_partial_ok") == 1 && replica.link_up()
    });
    Client::connect(master.port).cmd(&["SET", "b", "2"]);
    let end = wait_for_quiescence(&master, &replica);
    let out = capture.stop_with("-INT");
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 2, "{}", out.report_text);
    assert_eq!(sessions[1]["sync"]["type"], "partial");
    assert_eq!(sessions[1]["sync"]["reason"]["code"], "partial_granted");
    assert_eq!(u(&sessions[1]["offsets"]["end"]), end);
}
