//! Two-connection full syncs (Redis 8's RDB channel, Valkey's dual channel), built byte for
//! byte from protocol.md §5: how the two connections pair into one session, where the main
//! connection's offsets come from, and every way it can go wrong.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use repl_sniff::{Config, Direction, Event, EventKind, Input, InputKind, Monitor, Timestamp};
use serde_json::Value;

use crate::support::Collect;

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

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn line(s: &str) -> Vec<u8> {
    format!("{s}\r\n").into_bytes()
}

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

/// Redis 8's main connection up to `+RDBCHANNELSYNC <id>`.
fn redis_main(conn: u64, id: u64) -> Vec<Step> {
    vec![
        Data(conn, R, resp(&["PING"])),
        Data(conn, M, line("+PONG")),
        Data(conn, R, resp(&["REPLCONF", "listening-port", "6380"])),
        Data(conn, M, line("+OK")),
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
                "rdb-channel-repl",
            ]),
        ),
        Data(conn, M, line("+OK")),
        Data(conn, R, resp(&["PSYNC", "?", "-1"])),
        Data(conn, M, line(&format!("+RDBCHANNELSYNC {id}"))),
    ]
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

#[test]
fn an_unrecognized_client_id_is_reported_and_the_main_connection_stays_unanchored() {
    let mut steps = vec![Open(1, 1, 40001)];
    steps.extend(redis_main(1, 7));
    steps.push(Open(2, 1, 40002));
    steps.push(Data(
        2,
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
            "7",
        ]),
    ));
    steps.push(Data(2, M, line("-ERR Unrecognized RDB client id: 7")));
    steps.push(Close(2));
    steps.push(Data(1, M, writes(0..1)));
    let (report, events) = run(steps);
    let s = &sessions(&report)[0];
    assert_eq!(sessions(&report).len(), 1);
    assert_eq!(
        s["handshake"]["errors"][0],
        "-ERR Unrecognized RDB client id: 7"
    );
    assert_eq!(s["offsets"]["end"], Value::Null, "never guessed");
    assert_eq!(s["timing"]["warnings_by_kind"]["unpaired"], 1);
    assert!(command_ends(&events, 1).iter().all(Option::is_none));
}

#[test]
fn an_rdb_connection_that_closes_mid_transfer_leaves_an_incomplete_rdb_and_exact_offsets() {
    let mut steps = vec![Open(1, 1, 40001)];
    steps.extend(redis_main(1, 7));
    steps.push(Open(2, 1, 40002));
    steps.extend(redis_rdb(2, 7, 0));
    let rdb = diskless_rdb();
    steps.push(Data(2, M, rdb[..60].to_vec()));
    steps.push(Close(2));
    let stream = writes(0..1);
    steps.push(Data(1, M, stream.clone()));
    let (report, _) = run(steps);
    let s = &sessions(&report)[0];
    assert_eq!(s["rdb"]["complete"], false);
    assert!(s["rdb"]["contents"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    assert_eq!(
        s["offsets"]["end"],
        stream.len() as u64,
        "the anchor came before the cut"
    );
    assert_eq!(s["timing"]["warnings_by_kind"].get("unpaired"), None);
}

#[test]
fn a_main_connection_whose_partner_never_comes_gives_up_after_repl_timeout() {
    let mut steps = vec![Open(1, 1, 40001)];
    steps.extend(redis_main(1, 7));
    steps.push(Data(1, M, writes(0..2)));
    steps.push(Wait(Duration::from_secs(30)));
    steps.push(Data(1, M, writes(2..3)));
    steps.push(Wait(Duration::from_secs(31)));
    let (report, events) = run(steps);
    // Released at the timeout, while the connection is still open.
    let warning = events
        .iter()
        .position(|e| matches!(&e.kind, EventKind::Warning { message, .. } if message.contains("repl-timeout")))
        .expect("an unpaired warning");
    let end = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::SessionEnd { .. }))
        .unwrap();
    assert!(warning < end);
    let s = &sessions(&report)[0];
    assert_eq!(roles(s), [("main".into(), 1)]);
    assert_eq!(s["stream"]["commands"], 5);
    assert_eq!(s["offsets"]["end"], Value::Null);
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

// ----- live, Redis 8.2.3 ---------------------------------------------------------------------

/// Redis 8.2.3 with its defaults (diskless, RDB channel), the RDB slowed down so that writes
/// land while it crosses: one paired session whose offsets, RDB and commands equal the
/// servers' own accounting, every write of the transfer counted once.
#[test]
fn redis_8_writes_during_the_rdb_transfer_are_counted_once_with_exact_offsets() {
    use crate::support::{wait_for_quiescence, wait_until, Server, Sniffer, Version};

    let v = Version::V8;
    // 2 ms per key: the RDB of 600 keys takes over a second.
    let master = Server::start(
        v,
        "master",
        &[
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-key-save-delay",
            "2000",
        ],
    );
    let mut c = master.client();
    for i in 0..600 {
        c.cmd(&["SET", &format!("k{i}"), "before"]);
    }
    let crate::support::Reply::Int(dbsize) = c.cmd(&["DBSIZE"]) else {
        panic!("DBSIZE is an integer")
    };
    let offset_before = master.info_u64("replication", "master_repl_offset");
    let sniffer = Sniffer::start(master.port, &[]);
    let replica = Server::start(
        v,
        "replica",
        &["--replicaof", "127.0.0.1", &sniffer.port.to_string()],
    );
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
    assert_eq!(master.digest(), replica.digest(), "datasets differ");
    let replica_sets = replica.info("commandstats")["cmdstat_set"].clone();
    let out = sniffer.stop();

    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 1, "{}", out.report_text);
    let s = sessions[0];
    assert_eq!(s["sync"]["mode"], "rdb_channel");
    assert_eq!(s["channels"].as_array().unwrap().len(), 2);
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
}
