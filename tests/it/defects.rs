//! Defects found by fuzzing, each kept as a specification built from bytes written here and
//! checked whole, byte by byte and at random splits.

use std::path::Path;

use bytes::Bytes;
use repl_sniff::capture::record::Recorder;
use repl_sniff::render::sinks::TextLines;
use repl_sniff::report::monitor::Monitor;
use repl_sniff::{
    Chunk, Config, Direction, Event, EventKind, Input, InputKind, Session, Skipped, Timestamp,
};

use crate::splits::{assert_same, same_events_at_every_split, session_events, Split};
use crate::support::temp_dir;

const R: Direction = Direction::ReplicaToMaster;
const M: Direction = Direction::MasterToReplica;
const ID: &str = "3942fbd58f44ed5ba7b5962efa141dd34e423bbc";
const MARK: &str = "5806cca6e294561a8ea62ddbf10716c53218d234";
const PSYNC: &[u8] = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

// ----- 1. AUTH secrets in recordings -------------------------------------------------------

fn open() -> InputKind {
    InputKind::Open {
        replica: "127.0.0.1:50000".into(),
        upstream: "127.0.0.1:6379".into(),
        joined_late: false,
    }
}

fn data(dir: Direction, bytes: Bytes) -> InputKind {
    InputKind::Data { dir, bytes }
}

fn close() -> InputKind {
    InputKind::Close {
        reason: "end".into(),
    }
}

/// Records `replica_bytes` (cut by `split`) through a masking recorder and reads back what the
/// recording holds of the replica's direction.
fn recorded(replica_bytes: &[u8], split: Split, file: &Path) -> Vec<u8> {
    let recorder = Recorder::create(file, true).unwrap();
    let mut monitor = Monitor::new(Config::default(), vec![]).with_tap(Box::new(recorder));
    let at = Timestamp(1_000_000);
    let mut state = 0;
    let pieces = split.pieces(replica_bytes, &mut state);
    let data = pieces
        .into_iter()
        .map(|p| data(R, Bytes::copy_from_slice(p)));
    for kind in std::iter::once(open()).chain(data).chain([close()]) {
        monitor.handle(&Input { conn: 1, at, kind });
    }
    drop(monitor);

    let mut out = Vec::new();
    for input in crate::fixtures::reassembled(file) {
        if let InputKind::Data { dir: R, bytes } = &input.kind {
            out.extend_from_slice(&bytes[..]);
        }
    }
    out
}

#[test]
fn recordings_mask_exactly_the_auth_arguments_in_every_form() {
    // (what the replica sent, what the recording must hold)
    let forms: &[(&str, &str)] = &[
        (
            "*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n",
            "*2\r\n$4\r\nAUTH\r\n$6\r\n******\r\n",
        ),
        (
            "*3\r\n$4\r\nauth\r\n$4\r\nuser\r\n$6\r\nsecret\r\n",
            "*3\r\n$4\r\nauth\r\n$4\r\n****\r\n$6\r\n******\r\n",
        ),
        (
            "*3\r\n$4\r\nAUTH\r\n$04\r\nuser\r\n$000000000000000006\r\nsecret\r\n",
            "*3\r\n$4\r\nAUTH\r\n$04\r\n****\r\n$000000000000000006\r\n******\r\n",
        ),
        (
            "*2\r\n$0004\r\nAUTH\r\n$06\r\nsecret\r\n",
            "*2\r\n$0004\r\nAUTH\r\n$06\r\n******\r\n",
        ),
        (
            "*2\n$4\nAUTH\r\n$6\nsecret\r\n",
            "*2\n$4\nAUTH\r\n$6\n******\r\n",
        ),
        ("AUTH secret\r\n", "AUTH ******\r\n"),
        ("AUTH secret\n", "AUTH ******\n"),
        ("AUTH user secret\r\n", "AUTH **** ******\r\n"),
        ("auth  user\tsecret\n", "auth  ****\t******\n"),
        ("AUTH \"my secret\"\r\n", "AUTH ***********\r\n"),
    ];
    let dir = temp_dir("masking");
    for (i, (wire, want)) in forms.iter().enumerate() {
        // Commands around it must come through untouched.
        let wire = [PING, wire.as_bytes(), PING].concat();
        let want = [PING, want.as_bytes(), PING].concat();
        for split in Split::ALL {
            let file = dir.join(format!("form-{i}.pcapng"));
            let got = recorded(&wire, split, &file);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "form {i} {split:?}"
            );
        }
    }
}

#[test]
fn an_auth_longer_than_the_hold_back_is_masked_whole() {
    let secret = vec![b's'; 100_000];
    let wire = [
        b"*2\r\n$4\r\nAUTH\r\n$100000\r\n".as_slice(),
        &secret,
        b"\r\n",
        PING,
    ]
    .concat();
    let dir = temp_dir("masking-long");
    for split in [Split::Whole, Split::Random(3)] {
        let got = recorded(&wire, split, &dir.join("long.pcapng"));
        assert_eq!(got.len(), wire.len(), "{split:?}");
        assert!(
            !got.contains(&b's'),
            "{split:?}: a byte of the password was recorded"
        );
        assert!(got.ends_with(PING), "{split:?}");
    }
}

/// Bytes the analysis skipped can cut an `AUTH` in two. What came before the gap was held back
/// while the command might carry a password; it is masked, not released as it was.
#[test]
fn an_auth_cut_by_skipped_bytes_is_masked_up_to_the_gap() {
    let file = temp_dir("masking-gap").join("gap.pcapng");
    let recorder = Recorder::create(&file, true).unwrap();
    let mut monitor = Monitor::new(Config::default(), vec![]).with_tap(Box::new(recorder));
    let at = Timestamp(1_000_000);
    let before = b"*2\r\n$4\r\nAUTH\r\n$12\r\nsecret-p".as_slice(); // then "ass1\r\n", skipped
    let gap = InputKind::Gap {
        dir: R,
        len: 6,
        why: Skipped::Behind,
    };
    let inputs = [
        open(),
        data(R, Bytes::from_static(before)),
        gap,
        data(R, Bytes::from_static(PING)),
        close(),
    ];
    for kind in inputs {
        monitor.handle(&Input { conn: 1, at, kind });
    }
    drop(monitor);

    let mut out = Vec::new();
    for input in crate::fixtures::reassembled(&file) {
        if let InputKind::Data { dir: R, bytes } = &input.kind {
            out.extend_from_slice(&bytes[..]);
        }
    }
    assert_eq!(out.len(), before.len() + PING.len());
    assert!(
        !String::from_utf8_lossy(&out).contains("secret"),
        "a part of the password was recorded: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(out.ends_with(PING), "{}", String::from_utf8_lossy(&out));
}

// ----- 2. Offsets beyond the servers' range -------------------------------------------------

fn full_sync_at(offset: &str) -> Vec<(Direction, Vec<u8>)> {
    vec![
        (R, PSYNC.to_vec()),
        (
            M,
            format!("+FULLRESYNC {ID} {offset}\r\n$0\r\n").into_bytes(),
        ),
        (M, PING.to_vec()),
        (
            R,
            format!(
                "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{offset}\r\n",
                offset.len()
            )
            .into_bytes(),
        ),
    ]
}

fn steps(v: &[(Direction, Vec<u8>)]) -> Vec<(Direction, &[u8])> {
    v.iter().map(|(d, b)| (*d, b.as_slice())).collect()
}

#[test]
fn a_fullresync_offset_beyond_signed_64_bits_is_a_desync_and_nothing_wraps() {
    for offset in ["18446744073709551615", "9223372036854775808"] {
        let input = full_sync_at(offset);
        let events = same_events_at_every_split(&steps(&input), false);
        let desync = events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Desync {
                    dir: M,
                    position,
                    reason,
                    ..
                } => Some((*position, reason.clone())),
                _ => None,
            })
            .expect("a desync");
        assert_eq!(desync.0, 0, "the FULLRESYNC line is where it broke");
        assert!(
            desync.1.contains("beyond the largest replication offset"),
            "{desync:?}"
        );
        assert!(!events.iter().any(|e| matches!(
            e.kind,
            EventKind::SyncStart { .. } | EventKind::Command { .. }
        )));
        // The report fold and the text rendering take it too.
        let (report, text) = through_monitor(&input);
        assert!(
            report["sessions"][0]["offsets"]["start"].is_null(),
            "{offset}"
        );
        assert!(text.contains("DESYNC M->R: +FULLRESYNC offset"), "{text}");
    }
}

#[test]
fn the_largest_offset_the_servers_allow_is_followed_exactly() {
    let input = full_sync_at("9223372036854775807");
    let events = same_events_at_every_split(&steps(&input), false);
    let ping = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Command { start, end, .. } => Some((*start, *end)),
            _ => None,
        })
        .expect("the stream's PING");
    let first = 9_223_372_036_854_775_808u64;
    assert_eq!(ping, (Some(first), Some(first + 13)));
    let (report, text) = through_monitor(&input);
    assert_eq!(report["sessions"][0]["offsets"]["start"], first);
    assert!(
        text.contains("stream starts at 9223372036854775808"),
        "{text}"
    );
}

/// Runs steps through a monitor with a text sink: the report JSON and the text lines.
fn through_monitor(input: &[(Direction, Vec<u8>)]) -> (serde_json::Value, String) {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let sink = Box::new(TextLines::new(out.clone()));
    let mut monitor = Monitor::new(Config::default(), vec![sink]);
    let steps = input
        .iter()
        .map(|(d, b)| data(*d, Bytes::copy_from_slice(b)));
    for (i, kind) in std::iter::once(open())
        .chain(steps)
        .chain([close()])
        .enumerate()
    {
        let at = Timestamp(1 + i as u64);
        monitor.handle(&Input { conn: 1, at, kind });
    }
    let report = serde_json::to_value(monitor.report()).unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    (report, text)
}

// ----- 3. Memory held for secrets without a recorder ----------------------------------------

#[test]
fn secret_ranges_hold_only_the_last_chunk_s() {
    let auth = b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$6\r\nsecret\r\n";
    let chunk: Vec<u8> = auth.repeat(1000);
    let mut s = Session::new(1, Timestamp(0), "r", "m", Config::default());
    // A million AUTHs, and nobody asks for the ranges (no recorder).
    for i in 0..1000 {
        s.feed(Chunk {
            dir: R,
            at: Timestamp(i),
            bytes: &chunk,
        });
        while s.poll_event().is_some() {}
    }
    // Two arguments per AUTH of the last chunk's thousand: never more.
    assert_eq!(s.secret_ranges().len(), 2000);
    s.feed(Chunk {
        dir: R,
        at: Timestamp(5000),
        bytes: PING,
    });
    assert!(s.secret_ranges().is_empty());
}

// ----- 4. Chunk boundaries that changed the events ------------------------------------------

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

// ----- The property, over generated inputs ---------------------------------------------------

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
        let whole = session_events(&steps(&input), Split::Whole, late);
        for split in Split::ALL {
            let got = session_events(&steps(&input), split, late);
            assert_same(&got, &whole, &format!("round {round} {split:?}: {input:?}"));
        }
    }
}
