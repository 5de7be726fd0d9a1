//! What Redis added after 8.0 (protocol-next.md N5, N6), built byte for byte: the
//! `rdb-no-compress` / `rdb-no-checksum` handshake and its refusals, atomic slot migration's
//! two connections, and the new commands in the replication stream.

use repl_sniff::Direction;
use serde_json::Value;

use crate::support::{line, one_connection, one_connection_summary, resp};

const REPLID: &str = "95835e068611862944db211d287d8824a71041a2";
const MARK: &str = "5806cca6e294561a8ea62ddbf10716c53218d234";
const TASK: &str = "0123456789abcdef0123456789abcdef01234567";
const SECRET: &str = "c2VjcmV0LWJ5dGVzLW5vYm9keS1zaG91bGQtc2VlLQ";
const M: Direction = Direction::MasterToReplica;
const R: Direction = Direction::ReplicaToMaster;

/// An RDB 14 with one key, `crc` stored as given (0 = `rdb-no-checksum`), diskless framing.
fn rdb14(zero_crc: bool) -> Vec<u8> {
    let mut rdb = b"REDIS0014".to_vec();
    rdb.extend_from_slice(&[
        0xFE, 0x00, 0xFB, 0x01, 0x00, 0x00, 0x01, b'k', 0x01, b'v', 0xFF,
    ]);
    let crc = if zero_crc {
        0
    } else {
        crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&rdb)
    };
    rdb.extend_from_slice(&crc.to_le_bytes());
    let mut out = format!("$EOF:{MARK}\r\n").into_bytes();
    out.extend(rdb);
    out.extend_from_slice(MARK.as_bytes());
    out
}

/// Redis 8.8's main-connection burst (N5.1): AUTH, listening-port, the RDB request, capa;
/// `answer` is the master's reply to the RDB request; then a full sync of an RDB 14 whose
/// CRC is zero when the master honoured `rdb-no-checksum`, and one write.
fn rdb_request_handshake(answer: &str, zero_crc: bool) -> Vec<(Direction, Vec<u8>)> {
    let mut burst = resp(&["AUTH", "repl-user", "pw-that-must-not-show"]);
    burst.extend(resp(&["REPLCONF", "listening-port", "6380"]));
    let request = resp(&["REPLCONF", "rdb-no-compress", "1", "rdb-no-checksum", "1"]);
    assert_eq!(request.len(), 76, "protocol-next.md N5.1: 76 bytes");
    burst.extend(request);
    burst.extend(resp(&["REPLCONF", "capa", "eof", "capa", "psync2"]));
    let mut replies = line("+OK");
    replies.extend(line("+OK"));
    replies.extend(line(answer));
    replies.extend(line("+OK"));
    let mut sync = line(&format!("+FULLRESYNC {REPLID} 500"));
    sync.extend(rdb14(zero_crc));
    sync.extend(resp(&["SELECT", "0"])); // 23 B
    sync.extend(resp(&["SET", "a", "1"])); // 27 B
    vec![
        (R, resp(&["PING"])),
        (M, line("+PONG")),
        (R, burst),
        (M, replies),
        (R, resp(&["PSYNC", "?", "-1"])),
        (M, sync),
        (R, resp(&["REPLCONF", "ACK", "550"])),
    ]
}

#[test]
fn rdb_no_checksum_and_no_compress_are_shown_with_what_the_master_answered() {
    // 8.8 honours both (+OK, zero CRC); 8.6 takes the first and refuses the second; 8.4
    // refuses the first; a bad value is out of range. None of them stops the sync.
    let cases = [
        ("+OK", true, None),
        (
            "-ERR Unrecognized REPLCONF option: rdb-no-checksum",
            false,
            Some("rdb-no-checksum"),
        ),
        (
            "-ERR Unrecognized REPLCONF option: rdb-no-compress",
            false,
            Some("rdb-no-compress"),
        ),
        (
            "-ERR value is out of range, value must between 0 and 1",
            false,
            Some("out of range"),
        ),
    ];
    for (answer, honoured, refused) in cases {
        let (s, events, summary) = one_connection_summary(&rdb_request_handshake(answer, honoured));
        // A checksum the replica asked not to get is information, not a fault.
        let note = summary.contains("asked for rdb-no-checksum but the RDB has a checksum");
        assert_eq!(note, !honoured, "{summary}");
        assert_eq!(s["kind"], "replication", "{answer}");
        let options = &s["handshake"]["options"];
        assert_eq!(
            (&options["rdb-no-compress"], &options["rdb-no-checksum"]),
            (&"1".into(), &"1".into())
        );
        let errors = s["handshake"]["errors"].as_array().unwrap();
        match refused {
            None => assert!(errors.is_empty(), "{errors:?}"),
            Some(what) => assert!(errors[0].as_str().unwrap().contains(what), "{errors:?}"),
        }
        // Pipelined: the replies come in the order of the requests, the third is its answer.
        let replies: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "reply" && e["to"] != "PING")
            .collect();
        assert_eq!(
            (&replies[2]["to"], &replies[2]["reply"]),
            (&"REPLCONF".into(), &answer.into())
        );
        let checksum = &s["rdb"]["contents"]["checksum"];
        assert_eq!(checksum, if honoured { "absent" } else { "ok" }, "{answer}");
        assert_eq!(s["rdb"]["contents"]["version"], 14);
        // SELECT 0 (23 B) and SET a 1 (27 B) after offset 500: exact, and acknowledged.
        assert_eq!(
            (&s["offsets"]["start"], &s["offsets"]["end"]),
            (&501.into(), &550.into())
        );
        assert_eq!(s["offsets"]["acked"], 550);
        assert_eq!(s["desync"], Value::Null);
        assert!(!s.to_string().contains("pw-that-must-not-show"));
    }
}

/// The main connection of an atomic slot migration, as the importing node D opens it to the
/// source S (N6.2): internal AUTH, node id, a refused then accepted SYNC, the slots' stream,
/// D's ACKs, S's STREAM-EOF.
#[test]
fn a_slot_migration_main_connection_is_its_own_kind_with_its_own_offsets() {
    let set_a = resp(&["SET", "{a}k", "1"]);
    let set_b = resp(&["SET", "{a}j", "2"]);
    let n = (set_a.len() + set_b.len()) as u64;
    let node = "f".repeat(40);
    let sync = resp(&["CLUSTER", "SYNCSLOTS", "SYNC", TASK, "0", "100"]);
    let steps = vec![
        (R, resp(&["AUTH", "internal connection", SECRET])),
        (M, line("+OK")),
        (R, resp(&["CLUSTER", "SYNCSLOTS", "CONF", "NODE-ID", &node])),
        (M, line("+OK")),
        (R, sync.clone()),
        (M, line("-NOTREADY Cluster is not ready to migrate slots")),
        (R, sync),
        (M, line("+RDBCHANNELSYNCSLOTS")),
        (M, set_a.clone()),
        (
            R,
            resp(&[
                "CLUSTER",
                "SYNCSLOTS",
                "ACK",
                "streaming-buffer",
                &set_a.len().to_string(),
            ]),
        ),
        (M, set_b),
        (
            R,
            resp(&[
                "CLUSTER",
                "SYNCSLOTS",
                "ACK",
                "wait-stream-eof",
                &n.to_string(),
            ]),
        ),
        (M, resp(&["CLUSTER", "SYNCSLOTS", "STREAM-EOF"])),
    ];
    let (s, events) = one_connection(&steps);
    assert_eq!(s["kind"], "slot_migration");
    assert_eq!(
        (&s["sync"]["type"], &s["sync"]["mode"]),
        (&"slots".into(), &"slot_stream".into())
    );
    assert_eq!(
        s["handshake"]["errors"][0],
        "-NOTREADY Cluster is not ready to migrate slots"
    );
    // Offsets count the applied bytes from 0; STREAM-EOF is outside them.
    assert_eq!(
        (&s["offsets"]["start"], &s["offsets"]["end"]),
        (&1.into(), &n.into())
    );
    assert_eq!(s["offsets"]["acked"], n);
    assert_eq!(s["acks"], 2);
    assert_eq!(s["commands"]["SET"]["count"], 2);
    assert_eq!(s["timing"]["acked_commands"], 2);
    let eof = events
        .iter()
        .find(|e| e["event"] == "command" && e["name"] == "CLUSTER")
        .unwrap();
    assert_eq!((&eof["start"], &eof["end"]), (&Value::Null, &Value::Null));
    assert_eq!(s["desync"], Value::Null);
    let everything = format!("{s}{}", serde_json::to_string(&events).unwrap());
    assert!(!everything.contains(SECRET), "the internal secret leaked");
}

/// The snapshot connection (N6.3): keep-alives, `+SLOTSSNAPSHOT`, then RESP commands (not an
/// RDB) up to SNAPSHOT-EOF.
#[test]
fn a_slot_migration_snapshot_is_parsed_as_commands_not_as_an_rdb() {
    let dump = "\u{0}\u{1}v\u{e}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}";
    let mut snapshot = b"\n\n".to_vec();
    snapshot.extend(line("+SLOTSSNAPSHOT"));
    snapshot.extend(resp(&["FUNCTION", "RESTORE", "payload", "REPLACE"]));
    snapshot.extend(resp(&["SELECT", "0"]));
    snapshot.extend(resp(&[
        "CLUSTER",
        "SYNCSLOTS",
        "CONF",
        "SLOT-INFO",
        "5:1:0",
    ]));
    snapshot.extend(resp(&["RESTORE", "{a}k", "0", dump, "ABSTTL"]));
    snapshot.extend(resp(&["CLUSTER", "SYNCSLOTS", "SNAPSHOT-EOF"]));
    let steps = vec![
        (R, resp(&["AUTH", "internal connection", SECRET])),
        (M, line("+OK")),
        (R, resp(&["CLUSTER", "SYNCSLOTS", "RDBCHANNEL", TASK])),
        (M, snapshot),
    ];
    let (s, _) = one_connection(&steps);
    assert_eq!(s["kind"], "slot_migration");
    assert_eq!(s["sync"]["mode"], "slot_snapshot");
    assert_eq!(s["rdb"], Value::Null);
    assert_eq!(s["keepalives"]["master_to_replica"], 2);
    assert_eq!(s["commands"]["RESTORE"]["count"], 1);
    assert_eq!(s["commands"]["CLUSTER"]["count"], 2);
    assert_eq!(
        s["offsets"]["end"],
        Value::Null,
        "a snapshot has no offsets"
    );
    assert_eq!(s["desync"], Value::Null);
}

#[test]
fn the_new_stream_commands_of_a_cluster_master_are_counted_with_exact_offsets() {
    let task = format!(
        "{TASK}:{}:{}:import:completed:0-100",
        "a".repeat(40),
        "b".repeat(40)
    );
    let mut stream = resp(&["CLUSTER", "SYNCSLOTS", "CONF", "ASM-TASK", &task]);
    stream.extend(resp(&["TRIMSLOTS", "RANGES", "1", "0", "1000"]));
    assert_eq!(
        resp(&["TRIMSLOTS", "RANGES", "1", "0", "1000"]).len(),
        55,
        "N5.5: 55 B"
    );
    let n = stream.len() as u64;
    let mut sync = line(&format!("+FULLRESYNC {REPLID} 0"));
    sync.extend(rdb14(false));
    sync.extend(stream);
    let steps = vec![
        (R, resp(&["PSYNC", "?", "-1"])),
        (M, sync),
        (R, resp(&["REPLCONF", "ACK", &n.to_string()])),
    ];
    let (s, events) = one_connection(&steps);
    assert_eq!(s["kind"], "replication");
    assert_eq!(
        (&s["offsets"]["end"], &s["offsets"]["acked"]),
        (&n.into(), &n.into())
    );
    assert_eq!(s["commands"]["TRIMSLOTS"]["count"], 1);
    assert_eq!(s["commands"]["CLUSTER"]["count"], 1);
    let ends: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "command")
        .map(|e| &e["end"])
        .collect();
    assert_eq!(ends.last().unwrap().as_u64(), Some(n));
}
