//! Faults under load (issue 13, items 4, 5 and 10): frozen and killed replicas, many replicas
//! on one proxy. Each is compared with the servers' own accounting, and where the issue asks,
//! with the same scenario through socat.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::process::{rss_kib, signal};
use crate::support::{wait_for_quiescence, wait_until, Server, Sniffer, Socat, Version};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// What happened when the replica froze.
struct Frozen {
    /// From SIGSTOP to the master dropping the replica.
    dropped_after: Duration,
    /// The master's sync counters after the replica came back.
    sync_full: u64,
    sync_partial_ok: u64,
}

/// Pipelined SETs of 16 kB values: fast enough to fill any buffer in a second.
fn write_burst(c: &mut crate::support::Client, round: usize) {
    let value = vec![b'v'; 16 * 1024];
    for i in 0..64 {
        let key = format!("burst:{round}:{i}");
        c.send(&[b"SET", key.as_bytes(), &value]);
    }
    for _ in 0..64 {
        c.read_reply().unwrap();
    }
}

/// A replica through `relay_port` is frozen under fast writes until the master drops it
/// (its output-buffer limit), and `hold` has passed; then it thaws and resyncs. `during` is
/// called between bursts while it is frozen.
fn freeze_until_dropped(
    master: &Server,
    replica: &Server,
    hold: Duration,
    mut during: impl FnMut(),
) -> Frozen {
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    let mut c = master.client();
    write_burst(&mut c, 0);
    wait_for_quiescence(master, replica);
    signal(replica.pid(), "-STOP");
    let t0 = Instant::now();
    let mut round = 1;
    let dropped_after = loop {
        write_burst(&mut c, round);
        round += 1;
        during();
        if master.info_u64("replication", "connected_slaves") == 0 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the master never dropped the frozen replica"
        );
    };
    while t0.elapsed() < hold {
        during();
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(replica.pid(), "-CONT");
    wait_until("the replica back", Duration::from_secs(60), || {
        replica.link_up() && master.info_u64("replication", "connected_slaves") == 1
    });
    wait_for_quiescence(master, replica);
    assert_eq!(master.digest(), replica.digest());
    Frozen {
        dropped_after,
        sync_full: master.info_u64("stats", "sync_full"),
        sync_partial_ok: master.info_u64("stats", "sync_partial_ok"),
    }
}

/// A master that drops a replica whose output buffer passes 4 MB.
fn master_with_small_cob(v: Version) -> Server {
    Server::start(
        v,
        "master",
        &[
            "--client-output-buffer-limit",
            "replica 4mb 2mb 10",
            "--repl-diskless-sync-delay",
            "0",
        ],
    )
}

/// Item 5: a frozen replica (SIGSTOP) under fast writes. The master's output buffer grows and
/// it drops the replica no later than through socat; repl-sniff's own memory grows by at most
/// 1 MiB meanwhile; it warns that the replica is not draining and never blames the master.
#[test]
fn a_frozen_replica_is_dropped_by_the_master_as_through_socat_and_repl_sniff_stays_small() {
    let v = Version::V7;

    let reference = {
        let master = master_with_small_cob(v);
        let socat = Socat::start(master.port);
        let port = socat.port.to_string();
        let replica = Server::start(v, "replica", &["--replicaof", "127.0.0.1", &port]);
        freeze_until_dropped(&master, &replica, Duration::ZERO, || {})
    };

    let master = master_with_small_cob(v);
    let sniffer = Sniffer::start(master.port, &[]);
    let port = sniffer.port.to_string();
    let replica = Server::start(v, "replica", &["--replicaof", "127.0.0.1", &port]);
    let pid = sniffer.pid();
    let (mut before, mut peak) = (0, 0);
    // Frozen for at least 4 s: the warning comes after 2 s of not reading.
    let frozen = freeze_until_dropped(&master, &replica, Duration::from_secs(4), || {
        let now = rss_kib(pid);
        if before == 0 {
            before = now;
        }
        peak = peak.max(now);
    });
    let out = sniffer.stop();

    eprintln!(
        "frozen replica: dropped after {:?} through socat, {:?} through repl-sniff; \
         repl-sniff RSS {before} KiB before, {peak} KiB at most while frozen",
        reference.dropped_after, frozen.dropped_after
    );
    assert!(
        frozen.dropped_after <= reference.dropped_after * 3 / 2 + Duration::from_secs(1),
        "dropped after {:?}, through socat after {:?}",
        frozen.dropped_after,
        reference.dropped_after
    );
    assert_eq!(
        (frozen.sync_full, frozen.sync_partial_ok),
        (reference.sync_full, reference.sync_partial_ok),
        "the same syncs as through socat"
    );
    assert!(
        peak <= before + 1024,
        "repl-sniff grew from {before} KiB to {peak} KiB while the replica was frozen"
    );
    let first = out.sessions_of_kind("replication")[0];
    assert!(
        u(&first["timing"]["warnings_by_kind"]["not_draining"]) >= 1,
        "{}",
        out.report_text
    );
    assert!(
        first["timing"]["warnings_by_kind"]
            .get("master_silent")
            .is_none(),
        "a frozen replica is not a silent master: {}",
        out.report_text
    );
    let warning = out
        .events
        .iter()
        .find(|e| e["event"] == "warning" && e["kind"] == "not_draining")
        .expect("a not_draining event");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("replica not draining"),
        "{warning}"
    );
}
