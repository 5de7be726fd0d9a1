//! Chunk boundaries that once changed the events (found by fuzzing), and the property over
//! generated sessions: whole, byte by byte and at random splits, the events are the same.

use repl_sniff::{Direction, Event, EventKind};

use crate::support::as_steps;
use crate::support::splits::{assert_same, same_events_at_every_split, session_events, Split};

const R: Direction = Direction::ReplicaToMaster;
const M: Direction = Direction::MasterToReplica;
const ID: &str = "3942fbd58f44ed5ba7b5962efa141dd34e423bbc";
const MARK: &str = "5806cca6e294561a8ea62ddbf10716c53218d234";
const PSYNC: &[u8] = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

fn desync_positions(events: &[Event]) -> Vec<(Direction, u64, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Desync {
                dir,
                position,
                offset,
                ..
            } => Some((*dir, *position, *offset)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_desync_is_placed_where_the_broken_element_begins() {
    // The replica's `$4x` line begins at byte 4 of its direction.
    let events = same_events_at_every_split(&[(R, b"*1\r\n$4x\r\n")], false);
    assert_eq!(desync_positions(&events), [(R, 4, None)]);

    // In the master's stream: after `+FULLRESYNC … 100` and `$0\r\n`, the stream's PING is
    // offsets 101..114 and the broken `$4x` line starts at offset 119.
    let full = format!("+FULLRESYNC {ID} 100\r\n$0\r\n");
    let stream = [PING, b"*1\r\n$4x\r\n"].concat();
    let events =
        same_events_at_every_split(&[(R, PSYNC), (M, full.as_bytes()), (M, &stream)], false);
    let at = (full.len() + PING.len() + 4) as u64;
    assert_eq!(desync_positions(&events), [(M, at, Some(119))]);

    // A reply line over the limit is placed at its first byte.
    let long = [b"+PONG\r\n".as_slice(), &[b'x'; 5000], b"\r\n"].concat();
    let events = same_events_at_every_split(&[(R, PING), (R, PING), (M, &long)], false);
    assert_eq!(desync_positions(&events), [(M, 7, None)]);
}

#[test]
fn a_late_join_finds_a_command_that_begins_a_chunk() {
    let names = |events: &[Event]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Command { name, .. } => Some(name.to_string()),
                _ => None,
            })
            .collect()
    };
    let tail = b"rest-of-a-value\r\n";
    let two_chunks = same_events_at_every_split(&[(M, tail), (M, PING)], true);
    let one_chunk = same_events_at_every_split(&[(M, &[tail.as_slice(), PING].concat())], true);
    assert_eq!(names(&two_chunks), ["PING"]);
    assert_eq!(names(&one_chunk), ["PING"]);
    // A `\n` that ends one chunk and a `*` that begins the next.
    let split_newline = same_events_at_every_split(&[(M, b"value\r\n*"), (M, &PING[1..])], true);
    assert_eq!(names(&split_newline), ["PING"]);
}

#[test]
fn bytes_after_a_diskless_rdb_mark_never_reach_the_rdb_parser() {
    // An RDB cut inside an AUX key that claims 100 bytes: the parser must stop at the mark,
    // not read the stream as the rest of the key.
    let mut payload = format!("$EOF:{MARK}\r\n").into_bytes();
    payload.extend_from_slice(b"REDIS0011\xfa\x40\x64abc");
    payload.extend_from_slice(MARK.as_bytes());
    payload.extend_from_slice(PING);
    let full = format!("+FULLRESYNC {ID} 0\r\n");
    let events =
        same_events_at_every_split(&[(R, PSYNC), (M, full.as_bytes()), (M, &payload)], false);
    let contents = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RdbContents { contents } => Some(contents.clone()),
            _ => None,
        })
        .expect("rdb contents");
    assert_eq!(contents.bytes, 15);
    let error = contents.error.as_ref().expect("a truncated RDB");
    assert_eq!(error.offset, 15);
    assert!(error.to_string().contains("truncated"), "{error:?}");
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Command { end: Some(14), .. })));
}

/// An RDB parsed in pieces: the summary as JSON (it has no `PartialEq`).
fn rdb_summary(bytes: &[u8], split: Split) -> serde_json::Value {
    let mut p = repl_sniff::protocol::rdb::Parser::new(10);
    let mut state = 0;
    for piece in split.pieces(bytes, &mut state) {
        p.feed(piece);
    }
    serde_json::to_value(p.finish()).unwrap()
}

#[test]
fn an_lzf_value_decodes_to_its_declared_length_whatever_the_split() {
    // RDB 9, AUX "k" = LZF(compressed 3, uncompressed 1): a literal run of two bytes "ab".
    // Only the declared one byte is the value.
    let mut rdb = b"REDIS0009\xfa\x01k\xc3\x03\x01\x01ab\xff".to_vec();
    rdb.extend_from_slice(&[0; 8]);
    let whole = rdb_summary(&rdb, Split::Whole);
    assert_eq!(whole["aux"]["k"], "a");
    assert_eq!(whole["checksum"], "absent");
    for split in Split::ALL {
        assert_eq!(rdb_summary(&rdb, split), whole, "{split:?}");
    }
    for cut in 1..rdb.len() {
        let mut p = repl_sniff::protocol::rdb::Parser::new(10);
        p.feed(&rdb[..cut]);
        p.feed(&rdb[cut..]);
        assert_eq!(
            serde_json::to_value(p.finish()).unwrap(),
            whole,
            "cut {cut}"
        );
    }
}

#[test]
fn rdb_errors_are_placed_the_same_whatever_the_split() {
    let damaged: &[&[u8]] = &[
        b"REDIX0011\xff",
        b"REDIS0011\xfe\x00\x00\xbf",
        // A back-reference before the start of the LZF output.
        b"REDIS0009\xfa\x01k\xc3\x04\x06\x01ab\x20\x09\xff",
        // A listpack blob too short for its header.
        b"REDIS0011\x10\x01k\x01\x01\xff",
        b"REDIS0011\xfa\x01k\x01v\x77",
    ];
    for bytes in damaged {
        let whole = rdb_summary(bytes, Split::Whole);
        assert!(whole["error"].is_object(), "{bytes:?}: {whole}");
        for split in Split::ALL {
            assert_eq!(rdb_summary(bytes, split), whole, "{bytes:?} {split:?}");
        }
    }
}

#[test]
fn generated_sessions_give_the_same_events_at_every_split() {
    let words: &[&[u8]] = &[
        PSYNC,
        b"*3\r\n$5\r\nPSYNC\r\n$40\r\n3942fbd58f44ed5ba7b5962efa141dd34e423bbc\r\n$2\r\n15\r\n",
        b"SYNC\r\n",
        b"AUTH pw\n",
        b"*2\r\n$4\r\nAUTH\r\n$02\r\npw\r\n",
        b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n42\r\n",
        b"+FULLRESYNC 3942fbd58f44ed5ba7b5962efa141dd34e423bbc 5\r\n",
        b"+FULLRESYNC 3942fbd58f44ed5ba7b5962efa141dd34e423bbc 18446744073709551615\r\n",
        b"+CONTINUE\r\n",
        b"+CONTINUE 3942fbd58f44ed5ba7b5962efa141dd34e423bbc\r\n",
        b"+RDBCHANNELSYNC 7\r\n",
        b"$10\r\n",
        b"$EOF:5806cca6e294561a8ea62ddbf10716c53218d234\r\n",
        b"5806cca6e294561a8ea62ddbf10716c53218d234",
        b"REDIS0011\xfa\x01k\x01v\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff\0\0\0\0\0\0\0\0",
        b"REDIS0009\xfa\x01k\xc3\x03\x01\x01ab",
        PING,
        b"\n",
        b"\r\n",
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
        b"*1\r\n$4x\r\n",
        b"-ERR x\r\n",
        b"$-1\r\n",
        b"\xff\x00garbage",
    ];
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..400 {
        let mut input: Vec<(Direction, Vec<u8>)> = Vec::new();
        for _ in 0..(2 + next() % 10) {
            let dir = if next() % 2 == 0 { R } else { M };
            // A step is one to three words, the last one possibly cut short.
            let mut bytes = Vec::new();
            for _ in 0..(1 + next() % 3) {
                bytes.extend_from_slice(words[(next() % words.len() as u64) as usize]);
            }
            if next() % 5 == 0 {
                bytes.truncate((next() % (bytes.len() as u64 + 1)) as usize);
            }
            input.push((dir, bytes));
        }
        let late = round % 4 == 3;
        let whole = session_events(&as_steps(&input), Split::Whole, late);
        for split in Split::ALL {
            let got = session_events(&as_steps(&input), split, late);
            assert_same(&got, &whole, &format!("round {round} {split:?}: {input:?}"));
        }
    }
}
