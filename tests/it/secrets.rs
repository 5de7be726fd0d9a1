//! `AUTH` arguments are never shown: a recording masks exactly them, in every form and at
//! every split, even when the command is longer than what is held back or cut by missing
//! bytes; the analysis keeps what it found of them only as long as one chunk needs.
//! (Found by fuzzing.)

use std::path::Path;

use bytes::Bytes;
use repl_sniff::capture::record::Recorder;
use repl_sniff::report::monitor::Monitor;
use repl_sniff::{Chunk, Config, Direction, Input, InputKind, Session, Skipped, Timestamp};

use crate::support::splits::Split;
use crate::support::{close_kind, data_kind, open_kind, temp_dir};

const R: Direction = Direction::ReplicaToMaster;
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

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
        .map(|p| data_kind(R, Bytes::copy_from_slice(p)));
    for kind in std::iter::once(open_kind())
        .chain(data)
        .chain([close_kind()])
    {
        monitor.handle(&Input { conn: 1, at, kind });
    }
    drop(monitor);

    let mut out = Vec::new();
    for input in crate::support::fixtures::reassembled(file) {
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
        open_kind(),
        data_kind(R, Bytes::from_static(before)),
        gap,
        data_kind(R, Bytes::from_static(PING)),
        close_kind(),
    ];
    for kind in inputs {
        monitor.handle(&Input { conn: 1, at, kind });
    }
    drop(monitor);

    let mut out = Vec::new();
    for input in crate::support::fixtures::reassembled(&file) {
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
