//! Conversations built byte for byte in Rust: RESP commands, reply lines, and one connection
//! fed through the whole pipe. (A case that needs no Rust is a file in `fixtures/wire/`.)

use super::*;

use bytes::Bytes;
use repl_sniff::{Direction, InputKind, Timestamp};

pub fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

pub fn line(s: &str) -> Vec<u8> {
    format!("{s}\r\n").into_bytes()
}

/// Feeds one connection's `(direction, bytes)` steps; returns its report and JSON events.
pub fn one_connection(steps: &[(Direction, Vec<u8>)]) -> (Value, Vec<Value>) {
    let (report, events, _) = one_connection_summary(steps);
    (report, events)
}

/// Like [`one_connection`], with the text summary too.
pub fn one_connection_summary(steps: &[(Direction, Vec<u8>)]) -> (Value, Vec<Value>, String) {
    let collect = crate::support::Collect::default();
    let events = std::sync::Arc::clone(&collect.0);
    let mut monitor = Monitor::new(Config::default(), vec![Box::new(collect)]);
    let mut at = Timestamp(1_800_000_000_000_000);
    let open = InputKind::Open {
        replica: "127.0.0.1:40001".into(),
        upstream: "127.0.0.1:6379".into(),
        joined_late: false,
    };
    monitor.handle(&Input {
        conn: 1,
        at,
        kind: open,
    });
    for (dir, bytes) in steps {
        at = Timestamp(at.0 + 1000);
        let kind = InputKind::Data {
            dir: *dir,
            bytes: Bytes::from(bytes.clone()),
        };
        monitor.handle(&Input { conn: 1, at, kind });
    }
    monitor.close_all(Timestamp(at.0 + 1000), "end");
    let summary = repl_sniff::render::summary::report(&monitor.report());
    let report = serde_json::to_value(monitor.report()).unwrap();
    let events = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    (report["sessions"][0].clone(), events, summary)
}

/// The `Open` of a connection from `127.0.0.1:50000` to `127.0.0.1:6379`.
pub fn open_kind() -> InputKind {
    InputKind::Open {
        replica: "127.0.0.1:50000".into(),
        upstream: "127.0.0.1:6379".into(),
        joined_late: false,
    }
}

/// `bytes` seen in direction `dir`.
pub fn data_kind(dir: Direction, bytes: Bytes) -> InputKind {
    InputKind::Data { dir, bytes }
}

/// The connection's end.
pub fn close_kind() -> InputKind {
    InputKind::Close {
        reason: "end".into(),
    }
}

/// Steps as the split helpers take them.
pub fn as_steps(v: &[(Direction, Vec<u8>)]) -> Vec<(Direction, &[u8])> {
    v.iter().map(|(d, b)| (*d, b.as_slice())).collect()
}
