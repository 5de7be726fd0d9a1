//! The offset space's edges: a `+FULLRESYNC` offset beyond the servers' signed 64 bits is a
//! desync and nothing wraps; the largest allowed offset is followed exactly. (The events are
//! wire cases in `fixtures/wire/`; here, the report and the text lines.)

use bytes::Bytes;
use repl_sniff::render::sinks::TextLines;
use repl_sniff::report::monitor::Monitor;
use repl_sniff::{Config, Direction, EventKind, Input, Timestamp};

use crate::support::splits::same_events_at_every_split;
use crate::support::{as_steps, close_kind, data_kind, open_kind};

const R: Direction = Direction::ReplicaToMaster;
const M: Direction = Direction::MasterToReplica;
const ID: &str = "3942fbd58f44ed5ba7b5962efa141dd34e423bbc";
const PSYNC: &[u8] = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

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

#[test]
fn a_fullresync_offset_beyond_signed_64_bits_is_a_desync_and_nothing_wraps() {
    for offset in ["18446744073709551615", "9223372036854775808"] {
        let input = full_sync_at(offset);
        let events = same_events_at_every_split(&as_steps(&input), false);
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
    let events = same_events_at_every_split(&as_steps(&input), false);
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
        .map(|(d, b)| data_kind(*d, Bytes::copy_from_slice(b)));
    for (i, kind) in std::iter::once(open_kind())
        .chain(steps)
        .chain([close_kind()])
        .enumerate()
    {
        let at = Timestamp(1 + i as u64);
        monitor.handle(&Input { conn: 1, at, kind });
    }
    let report = serde_json::to_value(monitor.report()).unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    (report, text)
}
