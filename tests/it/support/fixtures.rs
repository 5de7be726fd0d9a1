//! The shipped fixtures, found by walking `fixtures/`: adding a capture means adding files,
//! never editing a list here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use repl_sniff::capture::replay;
use repl_sniff::capture::tcp::Reassembler;
use repl_sniff::capture::{self, Reader};
use repl_sniff::{Config, Direction, Input, InputKind, Monitor, Report};

/// The repository's root.
pub fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every capture in `fixtures/captures/*/` and `fixtures/recorded/`, sorted.
pub fn captures() -> Vec<PathBuf> {
    let fixtures = manifest().join("fixtures");
    let mut dirs = vec![fixtures.join("recorded")];
    dirs.extend(subdirs(&fixtures.join("captures")));
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "no captures under {}", fixtures.display());
    files
}

/// The folders directly inside `dir`, sorted.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Whether `capture` is of TLS links (its truth file says so): its RDBs and streams cannot be
/// seen, only its connections.
pub fn is_encrypted(capture: &Path) -> bool {
    let truth = std::fs::read(capture.with_extension("truth.json")).unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&truth)
        .is_ok_and(|t| t["scenario"] == "tls-replication")
}

/// A capture's path relative to `fixtures/`, for messages and golden names.
pub fn name(capture: &Path) -> String {
    let fixtures = manifest().join("fixtures");
    capture
        .strip_prefix(&fixtures)
        .unwrap_or(capture)
        .display()
        .to_string()
}

/// What reassembly makes of a capture: the analyzer's inputs, in order.
pub fn reassembled(capture: &Path) -> Vec<Input> {
    let mut reader = Reader::open(capture).unwrap_or_else(|e| panic!("{}: {e}", name(capture)));
    let mut tcp = Reassembler::new(Default::default());
    let mut out = Vec::new();
    let mut last = repl_sniff::Timestamp(0);
    while let Some(frame) = reader.next_frame() {
        let Ok(frame) = frame else { break };
        last = last.max(frame.ts);
        if let Some(seg) = capture::decode(&frame) {
            tcp.push(frame.ts, &seg);
        }
        out.extend(std::iter::from_fn(|| tcp.poll()));
    }
    tcp.finish(last);
    out.extend(std::iter::from_fn(|| tcp.poll()));
    out
}

/// The RDB payload of the first full sync in a capture (framing removed).
pub fn rdb_from_capture(pcap: &Path) -> Option<Vec<u8>> {
    let mut by_session: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for input in crate::support::fixtures::reassembled(pcap) {
        if let InputKind::Data {
            dir: Direction::MasterToReplica,
            bytes,
        } = &input.kind
        {
            by_session
                .entry(input.conn)
                .or_default()
                .extend_from_slice(bytes);
        }
    }
    for stream in by_session.values() {
        let Some(at) = stream.windows(5).position(|w| w == b"REDIS") else {
            continue;
        };
        let head = &stream[..at];
        let line_start = head[..head.len() - 2]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let line = std::str::from_utf8(&head[line_start..head.len() - 2]).ok()?;
        let len = match line.strip_prefix('$') {
            Some(n) if !n.starts_with("EOF:") => n.parse().ok()?,
            _ => stream.len() - at - 40,
        };
        return Some(stream[at..at + len].to_vec());
    }
    None
}

pub fn replay_file(path: &Path) -> Report {
    let mut monitor = Monitor::new(Config::default(), vec![]);
    replay::replay(
        &[path],
        &replay::Options::default(),
        &mut monitor,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    monitor.report()
}
