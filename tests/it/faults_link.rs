//! Faults on the link itself, made by the [`Toxic`] relay between
//! repl-sniff and the master: tiny fragments, latency, limited bandwidth, partitions shorter
//! and longer than repl-timeout, resets and a half-close. Each scenario runs twice, with the
//! replica connected through the relay directly and through repl-sniff and the relay: the
//! servers' sync counters must be the same, and repl-sniff's figures the servers'.

use std::time::Duration;

use serde_json::Value;

use crate::support::toxic::Toxic;
use crate::support::{wait_for_quiescence, wait_until, Outcome, Server, Sniffer, Version};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// What the servers said at the end of a scenario.
#[derive(Debug, PartialEq, Eq)]
struct Counters {
    sync_full: u64,
    sync_partial_ok: u64,
    sets: u64,
}

/// The master, the relay in front of it, maybe repl-sniff in front of that, and the replica.
struct Link {
    master: Server,
    toxic: Toxic,
    sniffer: Option<Sniffer>,
    replica: Server,
}

impl Link {
    /// `prepare` runs once the master and the relay are up, before the replica starts.
    fn start(through_sniffer: bool, timeout: &str, prepare: impl FnOnce(&Server, &Toxic)) -> Link {
        let v = Version::V7;
        let master = Server::start(
            v,
            "master",
            &[
                "--repl-diskless-sync-delay",
                "0",
                "--repl-timeout",
                timeout,
                "--repl-ping-replica-period",
                "1",
            ],
        );
        let toxic = Toxic::start(master.port);
        prepare(&master, &toxic);
        let sniffer = through_sniffer.then(|| Sniffer::start(toxic.port, &[]));
        let port = sniffer.as_ref().map_or(toxic.port, |s| s.port).to_string();
        let replica = Server::start(
            v,
            "replica",
            &["--replicaof", "127.0.0.1", &port, "--repl-timeout", timeout],
        );
        Link {
            master,
            toxic,
            sniffer,
            replica,
        }
    }

    fn write(&self, tag: &str, n: usize, value_len: usize) {
        write(&self.master, tag, n, value_len);
    }
    fn settle(&self) -> u64 {
        wait_until("link up", Duration::from_secs(60), || {
            self.replica.link_up()
        });
        let end = wait_for_quiescence(&self.master, &self.replica);
        assert_eq!(self.master.digest(), self.replica.digest());
        end
    }

    fn finish(self) -> (Counters, u64, Option<Outcome>) {
        let end = self.settle();
        let counters = Counters {
            sync_full: self.master.info_u64("stats", "sync_full"),
            sync_partial_ok: self.master.info_u64("stats", "sync_partial_ok"),
            sets: self.master.info("commandstats")["cmdstat_set"]
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .unwrap()
                .parse()
                .unwrap(),
        };
        (counters, end, self.sniffer.map(Sniffer::stop))
    }
}

fn write(master: &Server, tag: &str, n: usize, value_len: usize) {
    let mut c = master.client();
    let value = "v".repeat(value_len);
    for i in 0..n {
        c.cmd(&["SET", &format!("{tag}:{i}"), &value]);
    }
}

/// 1-byte fragments (the handshake, the RDB and the stream), then 20 ms latency, then
/// 200 kB/s: no sync is repeated, and every figure is the servers'.
fn fragments_latency_bandwidth(through_sniffer: bool) -> (Counters, u64, Option<Outcome>) {
    let link = Link::start(through_sniffer, "60", |master, toxic| {
        write(master, "before", 200, 10);
        toxic.slicer(1);
    });
    link.settle();
    link.write("sliced", 300, 10);
    link.settle();
    link.toxic.clear();
    link.toxic.latency(Duration::from_millis(20));
    link.write("late", 200, 10);
    link.settle();
    link.toxic.clear();
    link.toxic.bandwidth(200_000);
    link.write("narrow", 100, 1000);
    link.settle();
    link.toxic.clear();
    link.finish()
}

#[test]
fn tiny_fragments_latency_and_narrow_bandwidth_change_no_figure() {
    let (direct, _, _) = fragments_latency_bandwidth(false);
    let (counters, end, out) = fragments_latency_bandwidth(true);
    assert_eq!(counters, direct, "the same syncs as without repl-sniff");
    assert_eq!((counters.sync_full, counters.sync_partial_ok), (1, 0));
    let out = out.unwrap();
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 1, "{}", out.report_text);
    let s = sessions[0];
    assert_eq!(s["rdb"]["contents"]["checksum"], "ok");
    assert_eq!(s["rdb"]["contents"]["dbs"]["0"]["keys"], 200);
    assert_eq!(
        u(&s["commands"]["SET"]["count"]),
        600,
        "the RDB's 200 are not streamed"
    );
    assert_eq!(u(&s["offsets"]["end"]), end);
    assert_eq!(u(&s["offsets"]["acked"]), end);
    assert_eq!(s["desync"], Value::Null);
}

/// A partition shorter than repl-timeout (nothing happens), one longer (both sides time out,
/// then a partial resync), a reset of both peers and a half-close toward the master (each a
/// partial resync, the close passed on within 2 s).
fn partitions_resets_half_close(through_sniffer: bool) -> (Counters, u64, Option<Outcome>) {
    let link = Link::start(through_sniffer, "3", |_, _| {});
    link.write("start", 50, 10);
    link.settle();

    link.toxic.partition();
    std::thread::sleep(Duration::from_secs(1));
    link.toxic.heal();
    link.write("short", 50, 10);
    link.settle();

    link.toxic.partition();
    link.write("during", 50, 10);
    wait_until("the replica to time out", Duration::from_secs(15), || {
        !link.replica.link_up()
    });
    std::thread::sleep(Duration::from_secs(1));
    link.toxic.heal();
    link.settle();

    link.toxic.reset_peers();
    link.write("reset", 50, 10);
    link.settle();

    // The replica may be back within a millisecond, between two polls of its link status:
    // its log says when it saw the close.
    let lost = |r: &Server| r.log().matches("Connection with master lost").count();
    let before = lost(&link.replica);
    // An earlier partition here outlasted repl-timeout: only new timeouts count.
    let timeouts = |r: &Server| r.log().matches("MASTER timeout").count();
    let timeouts_before = timeouts(&link.replica);
    link.toxic.half_close_upstream();
    // Passed on as a close, not found by the replica's repl-timeout (60 s): its log says
    // the connection was lost, and the wait is well inside that timeout.
    let what = format!("the close passed on (through repl-sniff: {through_sniffer})");
    wait_until(&what, Duration::from_secs(30), || {
        lost(&link.replica) > before
    });
    assert_eq!(
        timeouts(&link.replica),
        timeouts_before,
        "found by a timeout"
    );
    link.write("half", 50, 10);
    link.finish()
}

#[test]
fn partitions_resets_and_half_closes_resync_as_without_repl_sniff() {
    let (direct, _, _) = partitions_resets_half_close(false);
    let (counters, end, out) = partitions_resets_half_close(true);
    assert_eq!(counters, direct, "the same syncs as without repl-sniff");
    assert_eq!(counters.sync_full, 1);
    assert_eq!(
        counters.sync_partial_ok, 3,
        "long partition, reset, half-close"
    );
    let out = out.unwrap();
    let synced: Vec<&Value> = out
        .sessions_of_kind("replication")
        .into_iter()
        .filter(|s| s["sync"]["type"] != "none")
        .collect();
    assert_eq!(synced.len(), 4, "{}", out.report_text);
    for s in &synced[1..] {
        assert_eq!(s["sync"]["type"], "partial", "{}", out.report_text);
        assert_eq!(s["sync"]["reason"]["code"], "partial_granted");
        assert_eq!(s["offsets"]["start"], s["sync"]["offset"]);
    }
    for s in &synced {
        assert_eq!(s["desync"], Value::Null, "{}", out.report_text);
    }
    let reset = synced[1]["end_reason"].as_str().unwrap();
    assert!(reset.contains("reset"), "{reset}");
    let half_closed = &synced[2]["end_reason"];
    assert_eq!(half_closed, "master closed the connection");
    assert_eq!(u(&synced[3]["offsets"]["end"]), end);
    assert_eq!(u(&synced[3]["commands"]["SET"]["count"]), 50);
}
