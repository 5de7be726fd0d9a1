//! Faults and edge cases: what the servers' own replication test suites throw at a link
//! (big and wide commands, every database, masters killed at each phase of a sync, refused
//! upstreams, connection and file-handle limits), with the servers' own accounting as the
//! reference.

use std::time::Duration;

use repl_sniff::Direction::{MasterToReplica as M, ReplicaToMaster as R};
use serde_json::Value;

use crate::support::{line, one_connection, resp};
use crate::support::{wait_for_quiescence, wait_until, Link, Server, Sniffer, Version};

const REPLID: &str = "95835e068611862944db211d287d8824a71041a2";

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A 1.1 MB command, a 1000-argument MSET and writes in all 16 databases, through the proxy:
/// the stream's figures equal the servers'.
#[test]
fn big_commands_wide_commands_and_every_database_are_counted_exactly() {
    let v = Version::V7;
    let Link(master, sniffer, replica) = Link::of(v)
        .master(&["--repl-diskless-sync-delay", "0"])
        .up();
    let mut c = master.client();
    let big = vec![b'x'; 1_100_000];
    c.cmd_bytes(&[b"SET", b"big", &big]);
    let mut mset: Vec<String> = vec!["MSET".into()];
    for i in 0..500 {
        mset.push(format!("m{i}"));
        mset.push(format!("v{i}"));
    }
    let args: Vec<&str> = mset.iter().map(String::as_str).collect();
    c.cmd(&args);
    for db in 0..16 {
        c.cmd(&["SELECT", &db.to_string()]);
        c.cmd(&["SET", "in-every-db", &db.to_string()]);
    }
    let end = wait_for_quiescence(&master, &replica);
    assert_eq!(master.digest(), replica.digest());
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    assert_eq!(u(&s["offsets"]["end"]), end);
    assert_eq!(u(&s["commands"]["MSET"]["count"]), 1);
    assert!(u(&s["commands"]["MSET"]["bytes"]) > 8_000);
    assert_eq!(u(&s["commands"]["SET"]["count"]), 17);
    assert!(u(&s["commands"]["SELECT"]["count"]) >= 16);
    let sizes: Vec<u64> = out
        .events
        .iter()
        .filter(|e| e["event"] == "command" && e["name"] == "SET")
        .map(|e| u(&e["bytes"]))
        .collect();
    assert!(sizes.iter().any(|b| *b > 1_100_000), "{sizes:?}");
    assert_eq!(s["desync"], Value::Null);
}

/// A replica whose masterauth is wrong: the refusal is named, and nothing syncs.
#[test]
fn a_wrong_password_is_classed_auth_failed() {
    let steps = vec![
        (R, resp(&["AUTH", "not-the-password"])),
        (
            M,
            line("-WRONGPASS invalid username-password pair or user is disabled."),
        ),
        (R, resp(&["PSYNC", "?", "-1"])),
        (M, line("-NOAUTH Authentication required.")),
    ];
    let (s, events) = one_connection(&steps);
    let warning = events
        .iter()
        .find(|e| e["event"] == "warning" && e["kind"] == "auth_failed")
        .expect("an auth_failed warning");
    assert!(
        warning["message"].as_str().unwrap().contains("WRONGPASS"),
        "{warning}"
    );
    assert_eq!(s["timing"]["warnings_by_kind"]["auth_failed"], 1);
    assert_eq!(s["sync"]["type"], "none");
    assert!(!s.to_string().contains("not-the-password"));
}

/// A binary password (`abc\0def`) is masked like any other.
#[test]
fn a_binary_password_is_never_shown() {
    let steps = vec![(R, resp(&["AUTH", "abc\u{0}def"])), (M, line("+OK"))];
    let (s, events) = one_connection(&steps);
    let everything = format!("{s}{}", serde_json::to_string(&events).unwrap());
    assert!(
        !everything.contains("abc\\u0000def") && !everything.contains("abc"),
        "{everything}"
    );
    assert_eq!(s["handshake"]["auth"], true);
}

/// PSYNC with an offset that is not a number: the master refuses it; a refusal, not a desync.
#[test]
fn a_psync_with_a_bad_offset_is_a_refusal() {
    let steps = vec![
        (R, resp(&["PSYNC", REPLID, "not-a-number"])),
        (M, line("-ERR value is not an integer or out of range")),
    ];
    let (s, _) = one_connection(&steps);
    assert_eq!(
        s["sync"]["rejected"],
        "-ERR value is not an integer or out of range"
    );
    assert_eq!(s["desync"], Value::Null);
}

/// Adversarial lengths and floods from either side: no panic, bounded state, a clear desync
/// where the protocol breaks, every byte counted.
#[test]
fn adversarial_lengths_and_floods_are_desyncs_or_counted_never_a_crash() {
    // A replica announcing 2^31-1 arguments, then a bulk of 2^63-1 bytes.
    let steps = vec![(R, b"*2147483647\r\n$9223372036854775807\r\nxx".to_vec())];
    let (s, _) = one_connection(&steps);
    assert!(
        s["desync"]
            .as_str()
            .is_some_and(|d| d.contains("replica_to_master")),
        "{}",
        s["desync"]
    );
    assert_eq!(u(&s["bytes"]["to_master"]), 37);

    // The master's stream announcing the same.
    let mut sync = line(&format!("+FULLRESYNC {REPLID} 0"));
    sync.extend(b"$0\r\n*2147483647\r\n$9223372036854775807\r\n");
    let (s, _) = one_connection(&[(R, resp(&["PSYNC", "?", "-1"])), (M, sync)]);
    assert!(
        s["desync"]
            .as_str()
            .is_some_and(|d| d.contains("master_to_replica")),
        "{}",
        s["desync"]
    );

    // 100 000 bare newlines from the replica (keep-alives), then a command: all counted.
    let mut flood = vec![b'\n'; 100_000];
    flood.extend(resp(&["PING"]));
    let (s, _) = one_connection(&[(R, flood)]);
    assert_eq!(u(&s["keepalives"]["replica_to_master"]), 100_000);
    assert_eq!(s["desync"], Value::Null);
}

/// Item 12: what one connection's analysis keeps is capped. A stream of 300 distinct command
/// names (garbage, or an attack) keeps 256 of them and counts the rest as OTHER, and says so.
#[test]
fn distinct_command_names_are_capped_per_connection_with_a_warning() {
    let mut sync = line(&format!("+FULLRESYNC {REPLID} 0"));
    sync.extend(b"$0\r\n");
    for i in 0..300 {
        sync.extend(resp(&[&format!("NAME{i}"), "x"]));
    }
    let (s, events) = one_connection(&[(R, resp(&["PSYNC", "?", "-1"])), (M, sync)]);
    let commands = s["commands"].as_object().unwrap();
    assert_eq!(commands.len(), 257, "256 names and OTHER");
    assert_eq!(u(&commands["OTHER"]["count"]), 44);
    let counted: u64 = commands.values().map(|c| u(&c["count"])).sum();
    assert_eq!(counted, 300, "every command still counted");
    assert_eq!(s["timing"]["warnings_by_kind"]["analysis_limit"], 1);
    assert!(events
        .iter()
        .any(|e| e["kind"] == "analysis_limit" && e["message"].as_str().unwrap().contains("256")));
    assert_eq!(s["desync"], Value::Null);
}

/// Item 1: the link cut 30 times under write load, from either side: every reconnect is a
/// partial resync, the offsets continue, and the last session ends at the master's offset.
#[test]
fn thirty_link_cuts_under_write_load_are_thirty_partial_resyncs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let v = Version::V7;
    let Link(master, sniffer, replica) = Link::of(v)
        .master(&["--repl-diskless-sync-delay", "0"])
        .up();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, port) = (Arc::clone(&stop), master.port);
        std::thread::spawn(move || {
            let mut c = crate::support::Client::connect(port);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.cmd(&["SET", &format!("k{}", i % 500), &i.to_string()]);
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
    };
    for cut in 1..=30u64 {
        if cut % 2 == 0 {
            master.client().cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
        } else {
            replica.client().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
        }
        wait_until("partial resync", Duration::from_secs(30), || {
            master.info_u64("stats", "sync_partial_ok") == cut && replica.link_up()
        });
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 100, "{writes}");
    let end = wait_for_quiescence(&master, &replica);
    assert_eq!(master.info_u64("stats", "sync_full"), 1);
    assert_eq!(master.digest(), replica.digest());
    let out = sniffer.stop();
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 31, "{}", out.report_text);
    assert_eq!(sessions[0]["sync"]["type"], "full");
    for s in &sessions[1..] {
        assert_eq!(s["sync"]["type"], "partial", "session {}", s["id"]);
        assert_eq!(s["sync"]["reason"]["code"], "partial_granted");
        // The stream resumes exactly where the replica asked.
        assert_eq!(s["offsets"]["start"], s["sync"]["offset"]);
        assert_eq!(s["desync"], Value::Null);
    }
    assert_eq!(
        u(&sessions[30]["offsets"]["end"]),
        end,
        "vs master_repl_offset"
    );
    let history = &out.report["replicas"][0];
    assert_eq!(
        (u(&history["links"]), u(&history["partial_syncs"])),
        (31, 30)
    );
}

/// Item 2: the master killed in the middle of a diskless transfer: the transfer is reported
/// cut short with its bytes, the replica's side is closed at once, and the next sync (with a
/// new master on the same port) is classed as the replica starting over.
/// On one connection (Redis 7.0), and on two (Valkey 9.1.2's dual channel, whose RDB
/// connection the master dies on).
mod a_master_killed_mid_transfer_is_reported_and_the_replica_released {
    use crate::support::Version;

    #[test]
    fn redis_7_0() {
        super::master_killed_mid_transfer(Version::V7);
    }

    #[test]
    fn valkey_9_1() {
        super::master_killed_mid_transfer(Version::Valkey9);
    }
}

fn master_killed_mid_transfer(v: Version) {
    let port = crate::support::free_port();
    let slow = [
        "--repl-diskless-sync-delay",
        "0",
        "--rdb-key-save-delay",
        "3000",
    ];
    let master = Server::start_on(v, port, "master", &slow);
    let mut c = master.client();
    for i in 0..2000 {
        c.cmd(&["SET", &format!("k{i}"), &"v".repeat(100)]);
    }
    let sniffer = Sniffer::start(port, &[]);
    let replica = sniffer.replica(v, &[]);
    wait_until("the transfer under way", Duration::from_secs(30), || {
        sniffer.stderr().contains("RDB transfer start")
    });
    std::thread::sleep(Duration::from_millis(500));
    crate::support::process::signal(master.pid(), "-KILL");
    // Released because repl-sniff passed the master's close on, not by its repl-timeout
    // (60 s): the replica's log says the connection was lost, and never "timeout".
    wait_until(
        "the replica to see the link down",
        Duration::from_secs(30),
        || {
            crate::support::Client::connect(replica.port)
                .info("replication")
                .get("master_link_status")
                .is_some_and(|s| s == "down")
        },
    );
    let log = replica.log();
    assert!(!log.contains("MASTER timeout"), "{log}");
    drop(master);
    let master = Server::start_on(v, port, "master2", &["--repl-diskless-sync-delay", "0"]);
    master.client().cmd(&["SET", "after", "1"]);
    wait_until("sync with the new master", Duration::from_secs(30), || {
        replica.link_up()
    });
    let out = sniffer.stop();
    let sessions = out.sessions_of_kind("replication");
    let first = sessions[0];
    assert_eq!(first["rdb"]["complete"], false, "{}", out.report_text);
    assert!(u(&first["rdb"]["bytes"]) > 0);
    assert!(first["rdb"]["contents"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    assert_eq!(first["end_reason"], "master closed the connection");
    let last = sessions.last().unwrap();
    assert_eq!(last["rdb"]["complete"], true);
    assert_eq!(
        last["sync"]["reason"]["code"], "full_sync_restarted",
        "{}",
        out.report_text
    );
    assert!(last["sync"]["reason"]["message"]
        .as_str()
        .unwrap()
        .contains("starts over"));
}

/// A master killed before it answers the PSYNC (Redis 7.0's diskless delay, keep-alives
/// arriving): not "no sync" but a sync attempt, with the phase it died in and how long after
/// the PSYNC.
#[test]
fn a_master_killed_before_answering_the_psync_was_a_sync_attempt() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-diskless-sync-delay", "30"]);
    let sniffer = Sniffer::start(master.port, &[]);
    let replica = sniffer.replica(v, &[]);
    wait_until("the master's keep-alives", Duration::from_secs(30), || {
        sniffer.stderr().contains("keep-alive") || sniffer.stderr().contains("PSYNC ? -1")
    });
    std::thread::sleep(Duration::from_millis(2500));
    crate::support::process::signal(master.pid(), "-KILL");
    wait_until("the replica let go", Duration::from_secs(15), || {
        replica.log().contains("I/O error") || replica.log().contains("closed")
    });
    let out = sniffer.stop();
    let first = out.sessions_of_kind("replication")[0];
    assert_eq!(first["sync"]["type"], "none", "{}", out.report_text);
    let t = &first["timeline"];
    assert_eq!(t["phase"], "preparing", "{t}");
    assert!(t["bgsave_keepalives"].as_u64().unwrap() >= 1, "{t}");
    let said = "(a sync attempt: PSYNC ? -1 unanswered; the link ended";
    assert!(out.stderr.contains(said), "{}", out.stderr);
    assert!(
        out.stderr.contains("while the master prepared the RDB"),
        "{}",
        out.stderr
    );
}

/// Item 2, the other two moments: the master killed while it prepares the RDB (a slow BGSAVE
/// to disk, nothing sent yet), and in the middle of a disk transfer (slowed to 3 MB/s by the
/// fault relay). The first is a full sync with no RDB; the second an RDB aborted at byte X of
/// Y. Either way the replica is let go, and the next master's sync is classed as a first one.
#[test]
fn a_master_killed_while_preparing_or_mid_disk_transfer_is_reported_so() {
    let v = Version::V7;
    for moment in ["preparing", "mid-disk-transfer"] {
        let port = crate::support::free_port();
        let preparing = moment == "preparing";
        let slow: &[&str] = if preparing {
            &["--rdb-key-save-delay", "3000"]
        } else {
            &["--rdbcompression", "no"]
        };
        let mut args = vec!["--repl-diskless-sync", "no"];
        args.extend(slow);
        let master = Server::start_on(v, port, "master", &args);
        let keys = if preparing { "2000" } else { "100000" };
        master
            .client()
            .cmd(&["DEBUG", "POPULATE", keys, "key", "100"]);
        let toxic = crate::support::toxic::Toxic::start(port);
        toxic.bandwidth(3_000_000);
        let sniffer = Sniffer::start(toxic.port, &[]);
        let replica = sniffer.replica(v, &[]);
        if preparing {
            wait_until("the BGSAVE under way", Duration::from_secs(30), || {
                master
                    .log()
                    .contains("Starting BGSAVE for SYNC with target: disk")
            });
        } else {
            wait_until("the transfer under way", Duration::from_secs(30), || {
                sniffer.stderr().contains("RDB transfer start")
            });
            std::thread::sleep(Duration::from_millis(1000));
        }
        // The whole server goes, its BGSAVE child too (which would keep the connection).
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &master.pid().to_string()])
            .status();
        crate::support::process::signal(master.pid(), "-KILL");
        wait_until(
            &format!("{moment}: the replica let go"),
            Duration::from_secs(15),
            || replica.log().contains("I/O error"),
        );
        drop(master);
        let master = Server::start_on(v, port, "master2", &["--repl-diskless-sync", "no"]);
        master.client().cmd(&["SET", "after", "1"]);
        wait_until("sync with the new master", Duration::from_secs(60), || {
            replica.link_up()
        });
        let out = sniffer.stop();
        let sessions = out.sessions_of_kind("replication");
        let first = sessions[0];
        assert_eq!(
            first["sync"]["type"], "full",
            "{moment}: {}",
            out.report_text
        );
        assert_eq!(first["end_reason"], "master closed the connection");
        if preparing {
            assert_eq!(first["rdb"], Value::Null, "{moment}: nothing was sent");
            assert_eq!(first["timeline"]["phase"], "preparing", "{moment}");
            let said = "the link ended while the master prepared the RDB";
            assert!(out.stderr.contains(said), "{moment}: {}", out.stderr);
        } else {
            let (bytes, declared) = (
                u(&first["rdb"]["bytes"]),
                u(&first["rdb"]["declared_bytes"]),
            );
            assert!(0 < bytes && bytes < declared, "{bytes} of {declared}");
            let said = format!("RDB transfer aborted at byte {bytes} of {declared} (disk)");
            assert!(out.stderr.contains(&said), "{moment}: {}", out.stderr);
        }
        let last = sessions.last().unwrap();
        assert_eq!(last["rdb"]["complete"], true, "{moment}");
        assert_eq!(
            last["sync"]["reason"]["code"], "full_sync_restarted",
            "{moment}"
        );
    }
}

/// Item 9: repl-sniff itself killed (SIGKILL) mid-run: the recording stays readable up to
/// its last block; restarted on the same port, it serves the replica's next PSYNC as a
/// partial resync.
#[test]
fn repl_sniff_killed_and_restarted_leaves_a_readable_recording_and_a_partial_resync() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-diskless-sync-delay", "0"]);
    let port = crate::support::free_port();
    let recording = master.dir.join("killed.pcapng");
    let first = Sniffer::start_on(
        port,
        master.port,
        &["--record", recording.to_str().unwrap()],
    );
    let replica = Server::start(
        v,
        "replica",
        &["--replicaof", "127.0.0.1", &port.to_string()],
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    for i in 0..200 {
        master.client().cmd(&["SET", &format!("k{i}"), "v"]);
    }
    wait_for_quiescence(&master, &replica);
    // The recording is flushed at least once a second.
    std::thread::sleep(Duration::from_millis(1500));
    master.client().cmd(&["SET", "flush", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    first.kill();
    // What was written before the kill replays.
    let arg = std::ffi::OsStr::new;
    let out = crate::support::repl_sniff(&[arg("replay"), recording.as_os_str(), arg("-q")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("sync: full"), "{text}");

    let second = Sniffer::start_on(port, master.port, &[]);
    master.client().cmd(&["SET", "after", "1"]);
    wait_until(
        "partial resync through the new proxy",
        Duration::from_secs(30),
        || master.info_u64("stats", "sync_partial_ok") == 1 && replica.link_up(),
    );
    let end = wait_for_quiescence(&master, &replica);
    assert_eq!(master.info_u64("stats", "sync_full"), 1);
    let out = second.stop();
    let s = out.sessions_of_kind("replication")[0];
    assert_eq!(s["sync"]["type"], "partial", "{}", out.report_text);
    assert_eq!(u(&s["offsets"]["end"]), end);
}

/// Item 7: an upstream refusing for `secs` while the replica retries every second: each
/// connection is closed at once, the refusals are one line plus counts (not one per retry),
/// the proxy's file handles and CPU stay flat, and the sync happens once the master is up.
fn upstream_refusing_for(secs: u64) {
    let v = Version::V7;
    let master_port = crate::support::free_port();
    let mut sniffer = Sniffer::start(master_port, &[]);
    let replica = sniffer.replica(v, &[]);
    let fds = crate::support::process::fds;
    wait_until("refusals", Duration::from_secs(10), || {
        sniffer.stderr().contains("unreachable")
    });
    let pid = sniffer.pid();
    let (before, cpu) = (fds(pid), crate::support::process::cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(secs));
    let after = fds(pid);
    assert!(
        after <= before + 2,
        "file handles grew from {before} to {after}"
    );
    let spent = crate::support::process::cpu_ticks(pid) - cpu;
    assert!(
        spent <= 5 * secs,
        "{spent} CPU ticks in {secs} s of refusals"
    );
    let lines = sniffer.stderr().matches("unreachable").count();
    // One line, then one per 10 s with the counts.
    assert!(
        lines <= 2 + secs as usize / 10,
        "{lines} lines for the refusals:\n{}",
        sniffer.stderr()
    );
    assert!(sniffer.is_running());
    let master = Server::start_on(v, master_port, "master", &[]);
    wait_until(
        "sync once the master is up",
        Duration::from_secs(30),
        || replica.link_up(),
    );
    wait_until("the proxy says so", Duration::from_secs(5), || {
        sniffer.stderr().contains("reachable again after")
    });
    let out = sniffer.stop();
    let refused = u(&out.report["upstream_connect_failures"]);
    assert!(
        refused >= secs - 1,
        "the replica retried every second: {refused}"
    );
    drop(master);
}

#[test]
fn an_upstream_refusing_is_one_line_with_counts_and_flat_handles() {
    upstream_refusing_for(5);
}

/// The long run of the refused-upstream test: a minute of refusals (README, Tests).
#[test]
#[ignore = "long: a minute of refusals"]
fn an_upstream_refusing_for_a_minute_is_a_few_lines_with_counts_and_flat_handles() {
    upstream_refusing_for(60);
}

/// Item 3: a real RDB (the full-disk capture's, every type) cut at 100 points, as a file and
/// as a full sync in flight: always reported truncated, never as damage or a bad checksum.
#[test]
fn an_rdb_cut_anywhere_is_truncated_never_damaged() {
    use repl_sniff::protocol::rdb::{self, Checksum, ErrorKind};

    let pcap =
        crate::support::fixtures::manifest().join("fixtures/captures/redis-7.0.15/full-disk.pcap");
    let whole = crate::support::fixtures::rdb_from_capture(&pcap).expect("an RDB in the capture");
    assert_eq!(rdb::analyse(&whole, 0).checksum, Checksum::Ok);
    // Cut points spread over the whole file, deterministic (a fixed LCG).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let cuts: Vec<usize> = (0..100)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize % whole.len()
        })
        .collect();
    for &cut in &cuts {
        let s = rdb::analyse(&whole[..cut], 5);
        let e = s.error.unwrap_or_else(|| panic!("no error at cut {cut}"));
        assert!(matches!(e.kind, ErrorKind::Truncated(_)), "cut {cut}: {e}");
        assert_ne!(s.checksum, Checksum::Mismatch, "cut {cut}");
        assert!(!s.complete);
    }
    // In flight: a disk-framed sync whose connection ends at the cut.
    for &cut in cuts.iter().take(20) {
        let mut m = line(&format!("+FULLRESYNC {REPLID} 0"));
        m.extend(format!("${}\r\n", whole.len()).as_bytes());
        m.extend(&whole[..cut]);
        let (s, _) = one_connection(&[(R, resp(&["PSYNC", "?", "-1"])), (M, m)]);
        assert_eq!(s["rdb"]["complete"], false, "cut {cut}");
        assert_eq!(u(&s["rdb"]["bytes"]), cut as u64, "cut {cut}");
        let message = s["rdb"]["contents"]["error"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains("truncated"), "cut {cut}: {message}");
        assert_eq!(s["desync"], Value::Null, "a cut transfer is not a desync");
    }
}

/// Item 3, memory: a 20 MB RDB cut at 10 %, 50 % and 90 % is read by `repl-sniff rdb` in the
/// same memory as the whole file (within 2 MiB): nothing grows with what was read.
#[test]
fn an_rdb_cut_anywhere_is_read_in_flat_memory() {
    let master = Server::start(Version::V7, "master", &["--rdbcompression", "no"]);
    let mut c = master.client();
    c.cmd(&["DEBUG", "POPULATE", "150000", "key", "100"]);
    c.cmd(&["SAVE"]);
    let whole = std::fs::read(master.dir.join("dump.rdb")).unwrap();
    assert!(whole.len() > 15_000_000, "{} bytes", whole.len());
    let dir = crate::support::temp_dir("rdb-cuts");
    // The peak RSS of the child, as the kernel accounts it (Python's getrusage).
    let peak_kib = |file: &std::path::Path| -> u64 {
        let script = "import resource, subprocess, sys\n\
                      subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
                      print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
        let out = std::process::Command::new(crate::support::python())
            .args(["-c", script, env!("CARGO_BIN_EXE_repl-sniff"), "rdb"])
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let full = dir.join("whole.rdb");
    std::fs::write(&full, &whole).unwrap();
    let base = peak_kib(&full);
    for percent in [10, 50, 90] {
        let cut = dir.join(format!("cut-{percent}.rdb"));
        std::fs::write(&cut, &whole[..whole.len() * percent / 100]).unwrap();
        let peak = peak_kib(&cut);
        eprintln!("rdb cut at {percent} %: peak RSS {peak} KiB (whole file: {base} KiB)");
        assert!(
            peak <= base + 2048,
            "{percent} %: {peak} KiB, whole {base} KiB"
        );
    }
    assert!(
        base < 32 * 1024,
        "{base} KiB for a {} byte RDB",
        whole.len()
    );
}

/// Item 6: the master stalled (SIGSTOP) past the replica's repl-timeout: repl-sniff warns at
/// half of it and again past it, before the replica gives up; repl-sniff itself never times
/// out the link; afterwards the replica resumes with a partial resync.
#[test]
fn a_stalled_master_is_warned_about_before_the_replica_times_out() {
    let v = Version::V7;
    let Link(master, sniffer, replica) = Link::of(v)
        .master(&["--repl-ping-replica-period", "1"])
        .sniffer(&["--repl-timeout", "4"])
        .replica(&["--repl-timeout", "4"])
        .up();
    master.client().cmd(&["SET", "k", "v"]);
    wait_for_quiescence(&master, &replica);
    let signal = |sig: &str| crate::support::process::signal(master.pid(), sig);
    signal("-STOP");
    wait_until("the replica to time out", Duration::from_secs(15), || {
        !replica.link_up()
    });
    let warned: Vec<String> = sniffer
        .stderr()
        .lines()
        .filter(|l| l.contains("master_silent"))
        .map(str::to_string)
        .collect();
    signal("-CONT");
    wait_until("partial resync", Duration::from_secs(30), || {
        master.info_u64("stats", "sync_partial_ok") == 1 && replica.link_up()
    });
    let end = wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    assert!(
        warned.iter().any(|l| l.contains("half of repl-timeout")),
        "{warned:?}"
    );
    // The report says what the warnings were measured against.
    assert_eq!(out.report["settings"]["repl_timeout_s"], 4.0);
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 2, "{}", out.report_text);
    // The first link was ended by the replica, not by repl-sniff.
    assert_eq!(sessions[0]["end_reason"], "replica closed the connection");
    assert_eq!(sessions[1]["sync"]["type"], "partial");
    assert_eq!(u(&sessions[1]["offsets"]["end"]), end);
}

/// Item 12 (in part): past --max-connections a connection is closed at once with a log line,
/// and the proxy keeps serving the others; a slot freed is served again.
#[test]
fn past_max_connections_a_connection_is_refused_and_the_rest_served() {
    use std::io::Read;

    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let sniffer = Sniffer::start(master.port, &["--max-connections", "2"]);
    let mut a = crate::support::Client::connect(sniffer.port);
    let mut b = crate::support::Client::connect(sniffer.port);
    a.cmd(&["PING"]);
    b.cmd(&["PING"]);
    let mut third = std::net::TcpStream::connect(("127.0.0.1", sniffer.port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(third.read(&mut buf).unwrap_or(0), 0, "closed at once");
    wait_until("the refusal logged", Duration::from_secs(5), || {
        sniffer.stderr().contains("--max-connections 2 reached")
    });
    assert_eq!(a.cmd(&["SET", "still", "served"]).text(), "OK");
    drop(b);
    wait_until("a slot freed", Duration::from_secs(5), || {
        crate::support::Client::try_connect(sniffer.port)
            .is_some_and(|mut c| c.try_cmd(&["PING"]).is_ok())
    });
    let out = sniffer.stop();
    assert!(
        out.sessions_of_kind("client").len() >= 3,
        "{}",
        out.report_text
    );
}

/// Item 12: out of file handles (EMFILE), repl-sniff neither spins nor floods its log; the
/// connections it has are still served, and once handles are free it accepts again.
#[test]
fn out_of_file_handles_it_backs_off_without_spinning_and_recovers() {
    use crate::support::process::{cpu_ticks, fds};
    use crate::support::Client;

    let master = Server::start(Version::V7, "master", &[]);
    let sniffer = Sniffer::start(master.port, &[]);
    let pid = sniffer.pid();
    let limit = fds(pid) + 8;
    let ok = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut first = Client::connect(sniffer.port);
    assert_eq!(first.cmd(&["PING"]).text(), "PONG");
    // Each served connection takes two handles: the rest exhaust the limit.
    let mut held: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", sniffer.port)).unwrap())
        .collect();
    wait_until("accept to fail", Duration::from_secs(10), || {
        sniffer.stderr().contains("cannot accept connections")
    });
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(pid) - before;
    assert!(
        spent <= 30,
        "{spent} ticks of CPU in 3 s while out of handles"
    );
    assert_eq!(first.cmd(&["SET", "still", "served"]).text(), "OK");
    let lines = sniffer
        .stderr()
        .matches("cannot accept connections")
        .count();
    assert!(lines <= 1, "{lines} lines in 3 s");
    assert!(
        sniffer.stderr().contains("ulimit -n"),
        "{}",
        sniffer.stderr()
    );

    held.clear();
    wait_until("served again", Duration::from_secs(10), || {
        Client::try_connect(sniffer.port).is_some_and(|mut c| c.try_cmd(&["PING"]).is_ok())
    });
    drop(first);
    sniffer.stop();
}
