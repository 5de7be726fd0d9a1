//! Two-connection full syncs (Redis 8's RDB channel, Valkey's dual channel), built byte for
//! byte from protocol.md §5: how the two connections pair into one session, where the main
//! connection's offsets come from, and every way it can go wrong. The cases whose events say
//! it all are files in `fixtures/wire/` (`rdb-channel-*`); these read the paired report.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use repl_sniff::{Config, Direction, Event, EventKind, Input, InputKind, Monitor, Timestamp};
use serde_json::Value;

use crate::support::{line, resp, Collect};

const REPLID: &str = "95835e068611862944db211d287d8824a71041a2";
const MARK: &str = "5806cca6e294561a8ea62ddbf10716c53218d234";
const M: Direction = Direction::MasterToReplica;
const R: Direction = Direction::ReplicaToMaster;

/// What happens on the wire, in order.
enum Step {
    /// Connection `conn` opens from `127.0.0.<host>:<port>` to the master.
    Open(u64, u8, u16),
    /// Bytes on connection `conn`.
    Data(u64, Direction, Vec<u8>),
    /// Connection `conn` closes.
    Close(u64),
    /// The clock moves on by this much.
    Wait(Duration),
    /// The report as it stands now is kept (it comes back in `Run::during`).
    Snapshot,
}
use Step::*;

/// A small valid RDB (RDB 12, one key in db 0, RESIZEDB 1/0) in diskless framing.
fn diskless_rdb() -> Vec<u8> {
    let mut rdb = b"REDIS0012".to_vec();
    rdb.extend_from_slice(&[0xFE, 0x00, 0xFB, 0x01, 0x00]);
    rdb.extend_from_slice(&[0x00, 0x01, b'k', 0x01, b'v']);
    rdb.push(0xFF);
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&rdb);
    rdb.extend_from_slice(&crc.to_le_bytes());
    let mut out = format!("$EOF:{MARK}\r\n").into_bytes();
    out.extend_from_slice(&rdb);
    out.extend_from_slice(MARK.as_bytes());
    out
}

/// `SELECT 0` then `SET k<i> v` for each i: returns the bytes.
fn writes(keys: std::ops::Range<u32>) -> Vec<u8> {
    let mut out = resp(&["SELECT", "0"]);
    for i in keys {
        out.extend(resp(&["SET", &format!("k{i}"), "v"]));
    }
    out
}

fn ack(offset: u64) -> Vec<u8> {
    resp(&["REPLCONF", "ACK", &offset.to_string()])
}

/// A replica's handshake up to its capabilities (`capa eof capa psync2 capa <capa>`), whose
/// `+OK` the caller sends.
fn hello(conn: u64, capa: &str) -> Vec<Step> {
    let capas = ["REPLCONF", "capa", "eof", "capa", "psync2", "capa", capa];
    vec![
        Data(conn, R, resp(&["PING"])),
        Data(conn, M, line("+PONG")),
        Data(conn, R, resp(&["REPLCONF", "listening-port", "6380"])),
        Data(conn, M, line("+OK")),
        Data(conn, R, resp(&capas)),
    ]
}

/// Redis 8's main connection up to `+RDBCHANNELSYNC <id>`.
fn redis_main(conn: u64, id: u64) -> Vec<Step> {
    let mut steps = hello(conn, "rdb-channel-repl");
    steps.extend([
        Data(conn, M, line("+OK")),
        Data(conn, R, resp(&["PSYNC", "?", "-1"])),
        Data(conn, M, line(&format!("+RDBCHANNELSYNC {id}"))),
    ]);
    steps
}

/// Redis 8's RDB connection naming main connection `id`, up to its `+FULLRESYNC` at `off`.
fn redis_rdb(conn: u64, id: u64, off: u64) -> Vec<Step> {
    let id = id.to_string();
    vec![
        Data(
            conn,
            R,
            resp(&[
                "REPLCONF",
                "capa",
                "eof",
                "rdb-only",
                "1",
                "rdb-channel",
                "1",
                "main-ch-client-id",
                &id,
                "listening-port",
                "6380",
            ]),
        ),
        Data(conn, M, line("+OK")),
        Data(conn, R, resp(&["PSYNC", "?", "-1"])),
        Data(conn, M, line(&format!("+FULLRESYNC {REPLID} {off}"))),
    ]
}

/// Runs the steps through a monitor; returns the final report as JSON and every event.
fn run(steps: Vec<Step>) -> (Value, Vec<Event>) {
    let (report, events, _) = run_with_snapshots(steps);
    (report, events)
}

/// Like [`run`], with the reports taken at each [`Step::Snapshot`].
fn run_with_snapshots(steps: Vec<Step>) -> (Value, Vec<Event>, Vec<Value>) {
    let mut during = Vec::new();
    let collect = Collect::default();
    let events = Arc::clone(&collect.0);
    let mut monitor = Monitor::new(Config::default(), vec![Box::new(collect)]);
    let mut at = Timestamp(1_800_000_000_000_000);
    for step in steps {
        at = Timestamp(at.0 + 1000);
        let (conn, kind) = match step {
            Open(conn, host, port) => (
                conn,
                InputKind::Open {
                    replica: format!("127.0.0.{host}:{port}"),
                    upstream: "127.0.0.1:6379".into(),
                    joined_late: false,
                },
            ),
            Data(conn, dir, bytes) => (
                conn,
                InputKind::Data {
                    dir,
                    bytes: Bytes::from(bytes),
                },
            ),
            Close(conn) => (
                conn,
                InputKind::Close {
                    reason: "closed".into(),
                },
            ),
            Wait(d) => {
                at = Timestamp(at.0 + d.as_micros() as u64);
                monitor.tick(at);
                continue;
            }
            Snapshot => {
                during.push(serde_json::to_value(monitor.report()).unwrap());
                continue;
            }
        };
        monitor.handle(&Input { conn, at, kind });
        monitor.tick(at);
    }
    monitor.close_all(Timestamp(at.0 + 1000), "end");
    let report = serde_json::to_value(monitor.report()).unwrap();
    let events = std::mem::take(&mut *events.lock().unwrap());
    (report, events, during)
}

fn sessions(report: &Value) -> &Vec<Value> {
    report["sessions"].as_array().unwrap()
}

fn command_ends(events: &[Event], session: u64) -> Vec<Option<u64>> {
    events
        .iter()
        .filter(|e| e.session == session)
        .filter_map(|e| match &e.kind {
            EventKind::Command { end, .. } => Some(*end),
            _ => None,
        })
        .collect()
}

fn roles(s: &Value) -> Vec<(String, u64)> {
    s["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["role"].as_str().unwrap().to_string(),
                c["session"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn redis_rdb_channel_sync_is_one_session_with_exact_offsets_even_when_the_stream_comes_first() {
    let stream = writes(0..3);
    let n = stream.len() as u64;
    let mut steps = vec![Open(1, 1, 40001)];
    steps.extend(redis_main(1, 7));
    // The master feeds the main connection before the RDB connection's +FULLRESYNC is seen.
    steps.push(Data(1, M, stream.clone()));
    steps.push(Open(2, 1, 40002));
    steps.extend(redis_rdb(2, 7, 100));
    steps.push(Data(2, M, diskless_rdb()));
    steps.push(Snapshot);
    steps.push(Close(2));
    steps.push(Data(1, R, ack(100 + n)));
    let (report, events, during) = run_with_snapshots(steps);
    // While both connections are open, they are one session too.
    assert_eq!(sessions(&during[0]).len(), 1, "{:#}", during[0]);
    assert_eq!(during[0]["sessions"][0]["rdb"]["complete"], true);

    let list = sessions(&report);
    assert_eq!(list.len(), 1, "one session: {report:#}");
    let s = &list[0];
    assert_eq!(roles(s), [("main".into(), 1), ("rdb".into(), 2)]);
    assert_eq!(s["kind"], "replication");
    assert_eq!(
        (&s["sync"]["type"], &s["sync"]["mode"]),
        (&"full".into(), &"rdb_channel".into())
    );
    assert_eq!(s["sync"]["replid"], REPLID);
    assert_eq!(s["sync"]["offset"], 100);
    assert_eq!(s["offsets"]["start"], 101);
    assert_eq!(s["offsets"]["end"], 100 + n);
    assert_eq!(s["offsets"]["acked"], 100 + n);
    assert_eq!(s["rdb"]["complete"], true);
    assert_eq!(s["rdb"]["contents"]["checksum"], "ok");
    assert_eq!(s["rdb"]["contents"]["dbs"]["0"]["keys"], 1);
    assert_eq!(s["channels"][1]["end_reason"], "closed");
    assert_eq!(
        s["timing"]["acked_commands"], 4,
        "SELECT and three SETs, acked once"
    );

    // Held back, then released with their offsets: the last command ends at the last byte.
    let ends = command_ends(&events, 1);
    assert_eq!(ends.len(), 4);
    assert!(ends.iter().all(Option::is_some), "{ends:?}");
    assert_eq!(ends.last().unwrap(), &Some(100 + n));
    // Released after the anchor, in their order, after the sync_start that anchors them.
    let anchored = events.iter().position(|e| {
        e.session == 1
            && matches!(
                &e.kind,
                EventKind::SyncStart {
                    offset: Some(100),
                    ..
                }
            )
    });
    let first_cmd = events
        .iter()
        .position(|e| e.session == 1 && matches!(e.kind, EventKind::Command { .. }));
    assert!(anchored.unwrap() < first_cmd.unwrap());
}

#[test]
fn valkey_dual_channel_sync_pairs_whichever_connection_speaks_first() {
    let stream = writes(0..2);
    let n = stream.len() as u64;
    let rdb = |conn| {
        vec![
            Open(conn, 1, 40002),
            Data(
                conn,
                R,
                resp(&[
                    "REPLCONF",
                    "capa",
                    "eof",
                    "rdb-only",
                    "1",
                    "rdb-channel",
                    "1",
                    "listening-port",
                    "6380",
                ]),
            ),
            Data(conn, M, line("+OK")),
            Data(conn, R, b"SYNC\r\n".to_vec()),
            Data(conn, M, line(&format!("\n$ENDOFF:50 {REPLID} 0 9"))),
        ]
    };
    let main = |conn| {
        let mut v = vec![
            Open(conn, 1, 40001),
            Data(
                conn,
                R,
                resp(&[
                    "REPLCONF",
                    "capa",
                    "eof",
                    "capa",
                    "psync2",
                    "capa",
                    "dual-channel",
                ]),
            ),
            Data(conn, M, line("+OK")),
            Data(conn, R, resp(&["PSYNC", "?", "-1"])),
            Data(conn, M, line("+DUALCHANNELSYNC")),
        ];
        v.push(Data(conn, R, resp(&["REPLCONF", "set-rdb-client-id", "9"])));
        v.push(Data(conn, M, line("+OK")));
        v.push(Data(conn, R, resp(&["PSYNC", REPLID, "51"])));
        v.push(Data(conn, M, line(&format!("+CONTINUE {REPLID}"))));
        v
    };
    // As Valkey does it: the RDB connection announces its id first.
    let mut first = rdb(2);
    first.extend(main(1));
    // And the other way round.
    let mut second = main(1);
    second.extend(rdb(2));
    for mut steps in [first, second] {
        steps.push(Data(2, M, diskless_rdb()));
        steps.push(Data(1, M, stream.clone()));
        steps.push(Close(2));
        steps.push(Data(1, R, ack(50 + n)));
        let (report, _) = run(steps);
        let list = sessions(&report);
        assert_eq!(list.len(), 1, "{report:#}");
        let s = &list[0];
        assert_eq!(roles(s), [("main".into(), 1), ("rdb".into(), 2)]);
        assert_eq!(
            (&s["sync"]["type"], &s["sync"]["mode"]),
            (&"full".into(), &"dual_channel".into())
        );
        assert_eq!(
            (&s["sync"]["offset"], &s["offsets"]["start"]),
            (&50.into(), &51.into())
        );
        assert_eq!(
            (&s["offsets"]["end"], &s["offsets"]["acked"]),
            (&(50 + n).into(), &(50 + n).into())
        );
        assert_eq!(s["rdb"]["contents"]["checksum"], "ok");
    }
}

/// Valkey 9's dual-channel sync as a 9.1 replica makes it, from the Valkey source
/// (protocol-2026-12.md P1): the main connection announces `version` in a REPLCONF of its
/// own; the RDB connection announces it at the end of its one REPLCONF, or (before valkey
/// #4105) not at all. `client_id` names the RDB connection; `rdb` is what its master sends
/// after `$ENDOFF` (the dbid is -1: no SELECT yet).
fn valkey_9_dual_channel(
    main: u64,
    rdb_conn: u64,
    port: u16,
    rdb_version: Option<&str>,
    client_id: u64,
    rdb: Vec<u8>,
) -> Vec<Step> {
    let mut rdb_replconf = vec![
        "REPLCONF",
        "capa",
        "eof",
        "rdb-only",
        "1",
        "rdb-channel",
        "1",
        "listening-port",
        "6380",
    ];
    if let Some(v) = rdb_version {
        rdb_replconf.extend(["version", v]);
    }
    let id = client_id.to_string();
    let mut steps = vec![Open(main, 1, port)];
    steps.extend(hello(main, "dual-channel"));
    steps.extend([
        Data(main, R, resp(&["REPLCONF", "version", "9.1.0"])),
        Data(main, M, line("+OK")),
        Data(main, M, line("+OK")),
        Data(main, R, resp(&["PSYNC", "?", "-1"])),
        Data(main, M, line("+DUALCHANNELSYNC")),
        Open(rdb_conn, 1, port + 1),
        Data(rdb_conn, R, resp(&rdb_replconf)),
        Data(rdb_conn, M, line("+OK")),
        Data(rdb_conn, R, b"SYNC\r\n".to_vec()),
        Data(rdb_conn, M, line(&format!("$ENDOFF:0 {REPLID} -1 {id}"))),
        Data(main, R, resp(&["REPLCONF", "set-rdb-client-id", &id])),
        Data(main, M, line("+OK")),
        Data(rdb_conn, M, rdb),
    ]);
    steps
}

/// The start of an RDB a Valkey 9.1.0 master writes: `magic` (`REDIS0011`, `VALKEY080`), its
/// AUX fields, db 0 and two keys, in diskless framing; the EOF opcode, checksum and mark follow
/// only if `complete`.
fn valkey_rdb(magic: &str, complete: bool) -> Vec<u8> {
    let mut rdb = magic.as_bytes().to_vec();
    for (k, v) in [("valkey-ver", "9.1.0"), ("redis-bits", "64")] {
        rdb.extend([0xFA, k.len() as u8]);
        rdb.extend(k.as_bytes());
        rdb.push(v.len() as u8);
        rdb.extend(v.as_bytes());
    }
    rdb.extend([0xFE, 0x00, 0xFB, 0x03, 0x00]);
    rdb.extend([0x00, 0x01, b'a', 0x01, b'1', 0x00, 0x01, b'b', 0x01, b'2']);
    let mut out = format!("$EOF:{MARK}\r\n").into_bytes();
    if complete {
        rdb.push(0xFF);
        let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&rdb);
        rdb.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&rdb);
        out.extend_from_slice(MARK.as_bytes());
    } else {
        out.extend_from_slice(&rdb);
    }
    out
}

fn warnings_of<'a>(s: &'a Value, kind: &str) -> Vec<&'a str> {
    (s["timing"]["warnings"].as_array().unwrap().iter())
        .filter(|w| w["kind"] == kind)
        .map(|w| w["message"].as_str().unwrap())
        .collect()
}

/// valkey #4103: a 9.1 replica's RDB connection announced no version, so the 9.1 master chose
/// RDB 11; the dataset needs RDB 80 (hash fields with TTLs), the fork's save fails, and the
/// master closes the RDB connection before any RDB byte (as 9.1.2 does, seen live), the replica
/// drops its main connection and starts over. Each attempt says which trap it is; the third
/// names the loop and its cause.
#[test]
fn valkey_rdb_version_trap_is_named_at_each_cut_rdb_connection_and_its_loop_after() {
    let mut steps = Vec::new();
    for attempt in 0..3u64 {
        let (main, rdb) = (2 * attempt + 1, 2 * attempt + 2);
        let port = 40001 + 2 * attempt as u16;
        steps.extend(valkey_9_dual_channel(
            main,
            rdb,
            port,
            None,
            20 + attempt,
            vec![],
        ));
        steps.push(Close(rdb));
        steps.push(Wait(Duration::from_millis(20)));
        steps.push(Close(main));
        steps.push(Wait(Duration::from_secs(1)));
    }
    let (report, events) = run(steps);
    let list = sessions(&report);
    assert_eq!(
        list.len(),
        3,
        "three main connections, their RDB connections paired: {report:#}"
    );
    for (attempt, s) in list.iter().enumerate() {
        assert_eq!(s["sync"]["mode"], "dual_channel", "{s:#}");
        assert_eq!(s["rdb"], Value::Null, "no RDB byte came: {s:#}");
        let trap = warnings_of(s, "rdb_version");
        assert_eq!(trap.len(), 1, "attempt {attempt}: {s:#}");
        assert!(trap[0].contains("valkey #4103"), "{}", trap[0]);
        assert!(
            trap[0].contains("announced no REPLCONF version"),
            "{}",
            trap[0]
        );
        assert!(
            trap[0].contains("(REDIS0011) than the VALKEY080"),
            "{}",
            trap[0]
        );
    }
    assert_eq!(list[1]["sync"]["reason"]["code"], "full_sync_restarted");
    assert_eq!(list[2]["sync"]["reason"]["code"], "full_sync_loop");
    let loops = warnings_of(&list[2], "full_sync_loop");
    assert_eq!(loops.len(), 1, "{:#}", list[2]);
    assert!(
        loops[0].contains("RDB-version trap (valkey #4103"),
        "{}",
        loops[0]
    );
    // Said when the RDB connection ended, while the main connection still waited.
    let at = |f: &dyn Fn(&Event) -> bool| events.iter().position(f).unwrap();
    let warned = at(
        &|e| matches!(&e.kind, EventKind::Warning { kind, .. } if kind.as_str() == "rdb_version"),
    );
    let main_ended = at(&|e| e.session == 1 && matches!(e.kind, EventKind::SessionEnd { .. }));
    assert!(warned < main_ended);
}

/// The same trap seen by its RDB's header: a Valkey 9 master wrote a 9.1 replica RDB 11 (here
/// the dataset fits in it, so the sync succeeds, but the next hash-field TTL breaks it).
#[test]
fn valkey_rdb_version_trap_is_named_from_an_older_rdb_header() {
    let steps = valkey_9_dual_channel(1, 2, 40001, None, 9, valkey_rdb("REDIS0011", true));
    let (report, events) = run(steps);
    let s = &sessions(&report)[0];
    assert_eq!(s["rdb"]["header"]["version"], 11);
    assert_eq!(s["rdb"]["header"]["written_by"], "valkey 9.1.0");
    let trap = warnings_of(s, "rdb_version");
    assert_eq!(trap.len(), 1, "{s:#}");
    assert!(
        trap[0].contains("valkey 9.1.0 master wrote REDIS0011 instead of the VALKEY080"),
        "{}",
        trap[0]
    );
    // Said when the header went by, before the transfer ended.
    let at = |f: &dyn Fn(&EventKind) -> bool| events.iter().position(|e| f(&e.kind)).unwrap();
    let warned =
        at(&|k| matches!(k, EventKind::Warning { kind, .. } if kind.as_str() == "rdb_version"));
    assert!(warned < at(&|k| matches!(k, EventKind::RdbEnd { .. })));
}

/// What is not the trap: the fixed replica (its RDB connection announces 9.1.0 too, and gets
/// VALKEY080), an RDB 11 the replica's version does not call for (a replica of 8.1), and an
/// RDB connection cut short that announced what its main connection did.
#[test]
fn valkey_rdb_versions_that_match_the_replica_raise_no_warning() {
    let fixed = valkey_9_dual_channel(1, 2, 40001, Some("9.1.0"), 9, valkey_rdb("VALKEY080", true));
    let mut old = valkey_9_dual_channel(3, 4, 40011, None, 10, valkey_rdb("REDIS0011", true));
    // The same connections from an 8.1 replica: it announces 8.1.8.
    for step in &mut old {
        if let Data(3, R, bytes) = step {
            if bytes.ends_with(b"9.1.0\r\n") {
                *bytes = resp(&["REPLCONF", "version", "8.1.8"]);
            }
        }
    }
    for steps in [fixed, old] {
        let (report, _) = run(steps);
        let s = &sessions(&report)[0];
        assert_eq!(s["rdb"]["contents"]["checksum"], "ok", "{s:#}");
        assert_eq!(s["rdb"]["complete"], true);
        assert!(warnings_of(s, "rdb_version").is_empty(), "{s:#}");
    }
    let mut cut = valkey_9_dual_channel(1, 2, 40001, Some("9.1.0"), 9, vec![]);
    cut.push(Close(2));
    let (report, _) = run(cut);
    let s = &sessions(&report)[0];
    assert!(warnings_of(s, "rdb_version").is_empty(), "{s:#}");
}

/// A two-connection sync says it started twice (the master's answer, then its offsets): the
/// second must not undo why it happened. The first sync's link dropped mid-transfer, so the
/// next one restarts it, on Redis 8 as on Valkey.
#[test]
fn a_two_connection_sync_after_a_dropped_one_is_a_restart_on_both_of_its_starts() {
    let mut steps = vec![Open(1, 1, 40001)];
    steps.extend(redis_main(1, 7));
    steps.push(Open(2, 1, 40002));
    steps.extend(redis_rdb(2, 7, 100));
    let rdb = diskless_rdb();
    steps.push(Data(2, M, rdb[..rdb.len() / 2].to_vec()));
    steps.push(Close(2));
    steps.push(Close(1));
    steps.push(Wait(Duration::from_secs(1)));
    steps.push(Open(3, 1, 40003));
    steps.extend(redis_main(3, 8));
    steps.push(Open(4, 1, 40004));
    steps.extend(redis_rdb(4, 8, 200));
    steps.push(Data(4, M, diskless_rdb()));
    let (report, _) = run(steps);
    let list = sessions(&report);
    assert_eq!(list.len(), 2, "{report:#}");
    assert_eq!(
        list[1]["sync"]["reason"]["code"], "full_sync_restarted",
        "{:#}",
        list[1]
    );
    assert_eq!(
        report["replicas"][0]["dropped_full_syncs"], 1,
        "{:#}",
        report["replicas"]
    );
}

#[test]
fn two_replicas_syncing_at_once_each_get_their_own_rdb_and_offsets() {
    let mut steps = vec![Open(1, 1, 40001), Open(3, 2, 40001)];
    steps.extend(redis_main(1, 7));
    steps.extend(redis_main(3, 8));
    steps.push(Open(4, 2, 40002));
    steps.push(Open(2, 1, 40002));
    steps.extend(redis_rdb(4, 8, 200));
    steps.extend(redis_rdb(2, 7, 100));
    steps.push(Data(2, M, diskless_rdb()));
    steps.push(Data(4, M, diskless_rdb()));
    steps.push(Data(1, M, writes(0..1)));
    steps.push(Data(3, M, writes(0..2)));
    let (report, _) = run(steps);
    let list = sessions(&report);
    assert_eq!(list.len(), 2, "{report:#}");
    assert_eq!(roles(&list[0]), [("main".into(), 1), ("rdb".into(), 2)]);
    assert_eq!(roles(&list[1]), [("main".into(), 3), ("rdb".into(), 4)]);
    assert_eq!(list[0]["offsets"]["start"], 101);
    assert_eq!(list[1]["offsets"]["start"], 201);
    assert_eq!(list[0]["offsets"]["end"], 100 + writes(0..1).len() as u64);
    assert_eq!(list[1]["offsets"]["end"], 200 + writes(0..2).len() as u64);
}

#[test]
fn redis_cli_rdb_stays_a_sync_session_and_is_never_paired() {
    // `redis-cli --rdb` on a master with a main connection waiting for id 7.
    let mut steps = vec![Open(1, 1, 40001)];
    steps.extend(redis_main(1, 7));
    steps.push(Open(2, 1, 40002));
    steps.push(Data(2, R, resp(&["REPLCONF", "rdb-only", "1"])));
    steps.push(Data(2, M, line("+OK")));
    steps.push(Data(2, R, b"SYNC\r\n".to_vec()));
    steps.push(Data(2, M, diskless_rdb()));
    steps.push(Close(2));
    let (report, _) = run(steps);
    let list = sessions(&report);
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["kind"], "sync");
    assert_eq!(list[1]["channels"], Value::Array(vec![]));
    assert_eq!(list[0]["rdb"], Value::Null);
}

#[test]
fn auth_on_both_connections_pairs_and_never_shows_the_password() {
    let auth = resp(&["AUTH", "default", "s3cret-pass"]);
    let mut steps = vec![
        Open(1, 1, 40001),
        Data(1, R, auth.clone()),
        Data(1, M, line("+OK")),
    ];
    steps.extend(redis_main(1, 7));
    steps.push(Open(2, 1, 40002));
    steps.push(Data(2, R, auth));
    steps.push(Data(2, M, line("+OK")));
    steps.extend(redis_rdb(2, 7, 0));
    steps.push(Data(2, M, diskless_rdb()));
    steps.push(Data(1, M, writes(0..1)));
    let (report, events) = run(steps);
    let s = &sessions(&report)[0];
    assert_eq!(roles(s), [("main".into(), 1), ("rdb".into(), 2)]);
    assert_eq!(s["handshake"]["auth_user"], "default");
    assert!(s["offsets"]["end"].is_u64());
    let all = format!("{report}{}", serde_json::to_string(&events).unwrap());
    assert!(!all.contains("s3cret"), "the password leaked");
}

// ----- live: Redis 8.2.3, Valkey 9.1.2 and 8.1.8 ----------------------------------------------

mod live {
    use crate::support::Version;

    /// Redis 8.2.3 with its defaults (diskless, RDB channel).
    #[test]
    fn redis_8_2() {
        super::writes_during_the_rdb_transfer_are_counted_once(Version::V8, None, &[]);
    }

    /// Valkey 9.1.2 with dual-channel replication on (as the suite starts it).
    #[test]
    fn valkey_9_1_dual_channel() {
        super::writes_during_the_rdb_transfer_are_counted_once(Version::Valkey9, None, &[]);
    }

    /// The same with a password on the master: both connections authenticate.
    #[test]
    fn valkey_9_1_dual_channel_with_auth() {
        let auth = Some("dual-channel-s3cret");
        super::writes_during_the_rdb_transfer_are_counted_once(Version::Valkey9, auth, &[]);
    }

    /// Valkey 8.1.8 with dual-channel replication turned on.
    #[test]
    fn valkey_8_1_dual_channel() {
        let on = ["--dual-channel-replication-enabled", "yes"];
        super::writes_during_the_rdb_transfer_are_counted_once(Version::Valkey8, None, &on);
    }
}

/// A two-connection full sync (`extra` given to both servers, `password` on the master if
/// any), the RDB slowed down so that writes land while it crosses: one paired session whose
/// offsets, RDB and commands equal the servers' own accounting, every write of the transfer
/// counted once, and a timeline with every phase.
fn writes_during_the_rdb_transfer_are_counted_once(
    v: crate::support::Version,
    password: Option<&str>,
    extra: &[&str],
) {
    use crate::support::{wait_for_quiescence, wait_until, Server, Sniffer};

    // 2 ms per key: the RDB of 600 keys takes over a second.
    let mut master_args = vec![
        "--repl-diskless-sync-delay",
        "0",
        "--rdb-key-save-delay",
        "2000",
    ];
    master_args.extend_from_slice(extra);
    let mut replica_args = extra.to_vec();
    if let Some(p) = password {
        master_args.extend(["--requirepass", p]);
        replica_args.extend(["--masterauth", p]);
    }
    let master = Server::start(v, "master", &master_args);
    let mut c = master.client();
    for i in 0..600 {
        c.cmd(&["SET", &format!("k{i}"), "before"]);
    }
    let crate::support::Reply::Int(dbsize) = c.cmd(&["DBSIZE"]) else {
        panic!("DBSIZE is an integer")
    };
    let offset_before = master.info_u64("replication", "master_repl_offset");
    let sniffer = Sniffer::start(master.port, &[]);
    let started = std::time::Instant::now();
    let port = sniffer.port.to_string();
    replica_args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = Server::start(v, "replica", &replica_args);
    // Overwrite existing keys while the RDB crosses: DBSIZE stays what the snapshot holds.
    let mut during = 0u64;
    wait_until("the RDB to start", Duration::from_secs(10), || {
        master.info("replication").contains_key("slave0")
    });
    while !replica.link_up() {
        c.cmd(&["SET", &format!("k{}", during % 600), "during"]);
        during += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        during >= 20,
        "only {during} writes landed during the transfer"
    );
    let end = wait_for_quiescence(&master, &replica);
    let seen = started.elapsed();
    assert_eq!(master.digest(), replica.digest(), "datasets differ");
    let replica_sets = replica.info("commandstats")["cmdstat_set"].clone();
    let out = sniffer.stop();

    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 1, "{}", out.report_text);
    assert_eq!(out.sessions_of_kind("sync").len(), 0, "{}", out.report_text);
    let s = sessions[0];
    let mode = if v.is_valkey() {
        "dual_channel"
    } else {
        "rdb_channel"
    };
    assert_eq!(s["sync"]["mode"], mode, "{}", out.report_text);
    assert_eq!(s["channels"].as_array().unwrap().len(), 2);
    assert!(
        !out.report_text.contains("never paired"),
        "{}",
        out.report_text
    );
    assert_eq!(s["sync"]["offset"].as_u64(), Some(offset_before));
    assert_eq!(s["offsets"]["start"].as_u64(), Some(offset_before + 1));
    assert_eq!(
        s["offsets"]["end"].as_u64(),
        Some(end),
        "vs master_repl_offset"
    );
    assert_eq!(
        s["offsets"]["acked"].as_u64(),
        Some(end),
        "vs the slave0 offset at quiescence"
    );
    let contents = &s["rdb"]["contents"];
    assert_eq!(contents["checksum"], "ok");
    assert_eq!(
        contents["dbs"]["0"]["keys"].as_i64(),
        Some(dbsize),
        "RDB keys vs DBSIZE"
    );
    // Every write of the transfer crossed once: the replica executed exactly those SETs.
    let sets = s["commands"]["SET"]["count"].as_u64().unwrap();
    assert_eq!(sets, during);
    assert!(
        replica_sets.starts_with(&format!("calls={during},")),
        "{replica_sets}"
    );
    // The stream's commands tile it, from the snapshot's offset on.
    let mut next = offset_before + 1;
    for e in out.events.iter().filter(|e| e["event"] == "command") {
        assert_eq!(e["start"].as_u64(), Some(next), "gap before {e}");
        next = e["end"].as_u64().unwrap() + 1;
    }
    assert_eq!(next, end + 1);
    // Every phase of the full sync is there, and they add up to it.
    crate::support::assert_phases_add_up(&s["timeline"], seen);
    if let Some(p) = password {
        assert!(!out.stderr.contains(p) && !out.report_text.contains(p));
    }
}

/// valkey #4103 on a real Valkey 9.1.2 master: a scripted replica whose main connection
/// announces 9.1.2 and whose RDB connection announces no version (what 9.1 replicas did before
/// #4105), a hash field with a TTL in the dataset. The master fails to save RDB 11 and closes
/// the RDB connection; repl-sniff names the trap. The same replica announcing its version on
/// both connections gets its RDB (`VALKEY080`) and no warning.
#[test]
fn valkey_9_rdb_version_trap_on_a_real_master() {
    use crate::support::{Server, Sniffer, Version};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    let master = Server::start(
        Version::Valkey9,
        "master",
        &["--repl-diskless-sync-delay", "0"],
    );
    let mut c = master.client();
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["HEXPIRE", "h", "1000", "FIELDS", "1", "f"]);
    let sniffer = Sniffer::start(master.port, &[]);
    for rdb_version in [None, Some("9.1.2")] {
        let connect = || {
            let s = TcpStream::connect(("127.0.0.1", sniffer.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let reader = BufReader::new(s.try_clone().unwrap());
            (s, reader)
        };
        // One reply line, past the keep-alives.
        let reply = |r: &mut BufReader<TcpStream>| loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if !l.trim().is_empty() {
                return l.trim().to_string();
            }
        };
        let (mut main, mut main_r) = connect();
        for args in [
            &["PING"][..],
            &["REPLCONF", "listening-port", "7777"],
            &[
                "REPLCONF",
                "capa",
                "eof",
                "capa",
                "psync2",
                "capa",
                "dual-channel",
            ],
            &["REPLCONF", "version", "9.1.2"],
            &["PSYNC", "?", "-1"],
        ] {
            main.write_all(&resp(args)).unwrap();
            let r = reply(&mut main_r);
            assert!(r.starts_with('+'), "{args:?}: {r}");
        }
        let (mut rdb, mut rdb_r) = connect();
        let mut replconf = vec![
            "REPLCONF",
            "capa",
            "eof",
            "rdb-only",
            "1",
            "rdb-channel",
            "1",
        ];
        replconf.extend(["listening-port", "7777"]);
        replconf.extend(rdb_version.map(|v| ["version", v]).into_iter().flatten());
        rdb.write_all(&resp(&replconf)).unwrap();
        assert_eq!(reply(&mut rdb_r), "+OK");
        rdb.write_all(b"SYNC\r\n").unwrap();
        let endoff = reply(&mut rdb_r);
        let id = endoff.rsplit(' ').next().unwrap().to_string();
        main.write_all(&resp(&["REPLCONF", "set-rdb-client-id", &id]))
            .unwrap();
        assert_eq!(reply(&mut main_r), "+OK");
        let mut payload = Vec::new();
        if rdb_version.is_none() {
            // The save fails: the master closes the connection without an RDB byte.
            rdb_r.read_to_end(&mut payload).unwrap();
            assert!(
                payload.is_empty(),
                "{:?}",
                String::from_utf8_lossy(&payload)
            );
        } else {
            // `$EOF:<mark>` and the RDB: enough to see its header.
            while payload.len() < 60 {
                let mut chunk = [0u8; 4096];
                let n = rdb_r.read(&mut chunk).unwrap();
                assert!(n > 0, "the RDB connection closed early");
                payload.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(&payload[47..56], b"VALKEY080");
        }
        drop((rdb, rdb_r, main, main_r));
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = master.log();
    assert!(
        log.contains("in RDB version 11"),
        "the master's save failed: {log}"
    );
    let out = sniffer.stop();
    let trapped: Vec<&Value> = out.sessions_of_kind("replication");
    assert_eq!(trapped.len(), 2, "{}", out.report_text);
    assert_eq!(
        warnings_of(trapped[0], "rdb_version").len(),
        1,
        "{}",
        out.report_text
    );
    assert!(
        warnings_of(trapped[1], "rdb_version").is_empty(),
        "{}",
        out.report_text
    );
    assert_eq!(
        trapped[1]["rdb"]["header"]["version"], 80,
        "{}",
        out.report_text
    );
    assert!(
        out.report_text.contains("RDB-version trap (valkey #4103)"),
        "{}",
        out.report_text
    );
}
