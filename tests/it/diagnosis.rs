//! Diagnosis against real servers: why each sync happened, with the numbers behind it, as the
//! servers' own accounting confirms.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    free_port, wait_for_quiescence, wait_until, Link, Outcome, Server, Sniffer, Version,
};

fn signal(server: &Server, sig: &str) {
    crate::support::process::signal(server.pid(), sig);
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
    let Link(master, sniffer, replica) = Link::of(v).master(&["--repl-backlog-size", "16kb"]).up();
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
    let replica = sniffer.replica(v, &[]);
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

/// A disk-based full sync slowed down (2 ms per key): the replica waits for the BGSAVE with
/// the master's keep-alives, and the writes made meanwhile reach it as the catch-up.
#[test]
fn a_slow_disk_sync_shows_the_bgsave_wait_and_the_catch_up() {
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
    let sniffer = Sniffer::start(master.port, &[]);
    let replica = sniffer.replica(v, &[]);
    // Writes while the BGSAVE runs: the master buffers them for the replica.
    let mut during = 0;
    while !replica.link_up() {
        c.cmd(&["SET", &format!("during{during}"), &"d".repeat(100)]);
        during += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(during > 50, "{during}");
    wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    let t = &s["timeline"];
    let wait = t["bgsave_wait_ms"].as_f64().unwrap();
    assert!(wait > 2000.0, "1500 keys at 2 ms each: {t}");
    assert!(
        t["bgsave_keepalives"].as_u64().unwrap() >= 1,
        "keep-alives every second: {t}"
    );
    let buffered = t["buffered_bytes"].as_u64().unwrap();
    assert!(buffered > 50 * 100, "the writes made during the sync: {t}");
    assert!(t["catch_up_ms"].as_f64().is_some(), "{t}");
    assert!(
        out.stderr.contains("full sync: handshake"),
        "{}",
        out.stderr
    );
}

/// A master that may buffer only 64 kB for a replica, writes during every sync: it drops the
/// replica each time, and the replica starts over. (6.0: from 7.0 on, replicas share one
/// replication buffer, and the same settings did not drop the replica during the BGSAVE.)
#[test]
fn a_full_sync_loop_from_a_tiny_output_buffer_is_diagnosed_with_its_count() {
    let v = Version::V6;
    let master = Server::start(
        v,
        "master",
        &[
            "--repl-diskless-sync",
            "no",
            "--rdb-key-save-delay",
            "1000",
            "--client-output-buffer-limit",
            "replica",
            "64kb",
            "32kb",
            "1",
        ],
    );
    let mut c = master.client();
    for i in 0..500 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let sniffer = Sniffer::start(master.port, &[]);
    let replica = sniffer.replica(v, &[]);
    let value = "w".repeat(4000);
    let started = std::time::Instant::now();
    let mut i = 0;
    while master.info_u64("stats", "sync_full") < 4 && started.elapsed() < Duration::from_secs(40) {
        c.cmd(&["SET", &format!("w{}", i % 100), &value]);
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let full = master.info_u64("stats", "sync_full");
    assert!(full >= 4, "the master did {full} full syncs");
    let out = sniffer.stop();
    drop(replica);
    let history = &out.report["replicas"][0];
    let dropped = history["dropped_full_syncs"].as_u64().unwrap();
    assert!(dropped >= 2, "{history}");
    assert!(history["full_syncs"].as_u64().unwrap() >= 3, "{history}");
    let loops: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| e["event"] == "warning" && e["kind"] == "full_sync_loop")
        .collect();
    assert!(!loops.is_empty(), "no full_sync_loop warning");
    let message = loops.last().unwrap()["message"].as_str().unwrap();
    assert!(message.contains(&format!("{dropped} times")), "{message}");
    assert!(message.contains("client-output-buffer-limit"), "{message}");
    // The reason codes say what the text says: the first sync, its restart, then the loop.
    let codes: Vec<&str> = sessions_reasons(&out);
    assert_eq!(
        codes[..3],
        ["first_sync", "full_sync_restarted", "full_sync_loop"],
        "{codes:?}"
    );
    assert!(
        codes[2..].iter().all(|c| *c == "full_sync_loop"),
        "{codes:?}"
    );
}

/// The reason code of every replication session's sync, in order.
fn sessions_reasons(out: &Outcome) -> Vec<&str> {
    out.sessions_of_kind("replication")
        .into_iter()
        .filter_map(|s| s["sync"]["reason"]["code"].as_str())
        .collect()
}

// ----- anomalies, from byte streams ----------------------------------------------------------

mod anomalies {
    use repl_sniff::Direction::{MasterToReplica as M, ReplicaToMaster as R};
    use serde_json::Value;

    use crate::support::{line, one_connection, resp};

    const REPLID: &str = "95835e068611862944db211d287d8824a71041a2";
    const MARK: &str = "5806cca6e294561a8ea62ddbf10716c53218d234";

    /// An RDB 10 with one key; `crc_ok` false flips a checksum byte.
    fn rdb(crc_ok: bool) -> Vec<u8> {
        let mut rdb = b"REDIS0010".to_vec();
        rdb.extend_from_slice(&[
            0xFE, 0x00, 0xFB, 0x01, 0x00, 0x00, 0x01, b'k', 0x01, b'v', 0xFF,
        ]);
        let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&rdb);
        rdb.extend_from_slice(&(if crc_ok { crc } else { crc ^ 1 }).to_le_bytes());
        rdb
    }

    fn full_sync(payload: Vec<u8>) -> Vec<(repl_sniff::Direction, Vec<u8>)> {
        let mut m = line(&format!("+FULLRESYNC {REPLID} 0"));
        m.extend(payload);
        vec![(R, resp(&["PSYNC", "?", "-1"])), (M, m)]
    }

    fn warnings(events: &[Value], kind: &str) -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "warning" && e["kind"] == kind)
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn an_encrypted_link_is_named_not_misparsed() {
        // A ClientHello offering TLS 1.3 and asking for "master.example", a ServerHello
        // choosing TLS 1.3: the link is named once, never called broken.
        let hello = client_hello(&[0x03, 0x04, 0x03, 0x03], Some("master.example"));
        let server = server_hello(0x0304);
        let (s, events) =
            one_connection(&[(R, hello), (M, server), (R, vec![0x17, 3, 3, 0, 1, 0])]);
        assert_eq!(s["desync_count"], 0, "{s:#}");
        let tls =
            serde_json::json!({"analysed": false, "version": "TLS 1.3", "sni": "master.example"});
        assert_eq!(s["tls"], tls, "{s:#}");
        let named: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "encrypted")
            .collect();
        assert_eq!(named.len(), 1, "{events:?}");
    }

    #[test]
    fn a_tls_1_2_link_without_a_server_hello_is_named_at_its_end_from_the_client_hello() {
        let (s, _) = one_connection(&[(R, client_hello(&[], None))]);
        assert_eq!(s["desync_count"], 0, "{s:#}");
        let tls = serde_json::json!({"analysed": false, "version": "TLS 1.2", "sni": null});
        assert_eq!(s["tls"], tls, "{s:#}");
    }

    /// A ClientHello record: legacy version 1.2, the `supported_versions` offered (none: no
    /// such extension), a server name.
    fn client_hello(versions: &[u8], sni: Option<&str>) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let n = name.len() as u16;
            exts.extend([0, 0]);
            exts.extend((n + 5).to_be_bytes());
            exts.extend((n + 3).to_be_bytes());
            exts.push(0);
            exts.extend(n.to_be_bytes());
            exts.extend(name.as_bytes());
        }
        if !versions.is_empty() {
            exts.extend([0, 43, 0, versions.len() as u8 + 1, versions.len() as u8]);
            exts.extend(versions);
        }
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        record(1, body)
    }

    /// A ServerHello record choosing `version` (in `supported_versions`, as TLS 1.3 does).
    fn server_hello(version: u16) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([9; 32]);
        body.extend([0, 0x13, 0x01, 0]);
        body.extend([0, 6, 0, 43, 0, 2]);
        body.extend(version.to_be_bytes());
        record(2, body)
    }

    fn record(kind: u8, body: Vec<u8>) -> Vec<u8> {
        let mut handshake = vec![kind, 0];
        handshake.extend((body.len() as u16).to_be_bytes());
        handshake.extend(body);
        let mut out = vec![0x16, 3, 1];
        out.extend((handshake.len() as u16).to_be_bytes());
        out.extend(handshake);
        out
    }

    #[test]
    fn a_wrong_eof_mark_is_a_desync_and_the_rdb_is_still_reported() {
        let mut payload = format!("$EOF:{MARK}\r\n").into_bytes();
        payload.extend(rdb(true));
        payload.extend("0".repeat(40).as_bytes());
        payload.extend(resp(&["PING"]));
        let (s, _) = one_connection(&full_sync(payload));
        assert!(
            s["desync"].as_str().unwrap().contains("EOF mark"),
            "{}",
            s["desync"]
        );
        assert_eq!(s["rdb"]["contents"]["checksum"], "ok");
        assert_eq!(s["rdb"]["contents"]["dbs"]["0"]["keys"], 1);
    }

    #[test]
    fn a_damaged_rdb_and_an_unknown_version_are_warnings() {
        let mut payload = format!("$EOF:{MARK}\r\n").into_bytes();
        payload.extend(rdb(false));
        payload.extend(MARK.as_bytes());
        let (_, events) = one_connection(&full_sync(payload));
        let w = warnings(&events, "rdb");
        assert!(w.len() == 1 && w[0].contains("checksum mismatch"), "{w:?}");

        let mut newer = b"REDIS0015".to_vec();
        newer.extend_from_slice(&[0xFF; 9]);
        let mut payload = format!("${}\r\n", newer.len()).into_bytes();
        payload.extend(newer);
        payload.extend(resp(&["PING"]));
        let (s, events) = one_connection(&full_sync(payload));
        let w = warnings(&events, "rdb");
        assert!(w.len() == 1 && w[0].contains("version 15"), "{w:?}");
        assert_eq!(s["stream"]["pings"], 1, "the stream is still analysed");
    }

    #[test]
    fn an_inline_command_in_the_stream_is_a_desync_that_says_so() {
        let mut payload = b"$0\r\n".to_vec();
        payload.extend(b"PING\r\n");
        let (s, _) = one_connection(&full_sync(payload));
        assert!(
            s["desync"].as_str().unwrap().contains("inline"),
            "{}",
            s["desync"]
        );
    }

    #[test]
    fn compressed_replication_offered_by_the_replica_is_a_warning() {
        let capa = resp(&["REPLCONF", "capa", "eof", "capa", "psync2", "capa", "lz4"]);
        let (s, events) = one_connection(&[(R, capa), (M, line("+OK"))]);
        let w = warnings(&events, "wire_format");
        assert!(w.len() == 1 && w[0].contains("capa lz4"), "{w:?}");
        assert_eq!(s["timing"]["warnings_by_kind"]["wire_format"], 1);
    }
}

// ----- repl-sniff check ----------------------------------------------------------------------

fn check(master: &Server, replica: &Server, extra: &[&str]) -> std::process::Output {
    let (m, r) = (master.port.to_string(), replica.port.to_string());
    let mut args = vec!["check", "--master", &m, "--replica", &r];
    args.extend_from_slice(extra);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    crate::support::repl_sniff(&args)
}

#[test]
fn check_verifies_every_key_of_a_healthy_pair_and_cleans_up() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let replica = Server::start(
        v,
        "replica",
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    let out = check(&master, &replica, &["--keys", "200"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("200 verified on the replica, 0 mismatched, 0 missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("visible on the replica after (ms): p50"),
        "{stdout}"
    );
    assert!(stdout.contains("WAIT 1 round trip (ms): p50"), "{stdout}");
    assert!(stdout.contains("role slave, link up"), "{stdout}");
    let crate::support::Reply::Int(keys) = master.client().cmd(&["DBSIZE"]) else {
        panic!("DBSIZE")
    };
    assert_eq!(keys, 0, "the check removes its keys");
}

#[test]
fn check_fails_clearly_on_a_stopped_replica_and_on_servers_that_are_not_a_pair() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let replica = Server::start(
        v,
        "replica",
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    let stranger = Server::start(v, "stranger", &[]);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());

    // Two masters: not a pair.
    let out = check(&master, &stranger, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is not a replica (role master)"),
        "{stderr}"
    );

    // A stopped replica does not answer: said, not hung on.
    signal(&replica, "-STOP");
    let out = check(&master, &replica, &["--keys", "5", "--timeout", "1"]);
    signal(&replica, "-CONT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("replica") && stderr.contains("did not answer"),
        "{stderr}"
    );
}
