//! Compressed replication links (Redis `repl-compression`, zstd): the shipped captures of a
//! development build give the servers' offsets through the decompressed stream, and the
//! compression figures equal what an independent decoder (the `zstd` command) finds in the
//! same bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use repl_sniff::{Direction, InputKind};
use serde_json::Value;

use crate::support::fixtures::{self, manifest, replay_file};

fn zstd_captures() -> Vec<std::path::PathBuf> {
    let dir = manifest().join("fixtures/captures/redis-zstd-2026-06");
    let mut pcaps: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    pcaps.sort();
    pcaps
}

/// Where the compressed stream begins in a master's bytes, found without repl-sniff: after
/// the `PSYNC` answer's line, and after the RDB payload that follows `+FULLRESYNC`.
fn compressed_from(bytes: &[u8]) -> Option<usize> {
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        (from..hay.len().saturating_sub(needle.len())).find(|&i| hay[i..].starts_with(needle))
    };
    let line_end = |from: usize| find(bytes, b"\r\n", from).map(|i| i + 2);
    for answer in [&b"+CONTINUE"[..], b"+RDBCHANNELSYNC"] {
        if let Some(i) = find(bytes, answer, 0) {
            return line_end(i);
        }
    }
    let mut at = line_end(find(bytes, b"+FULLRESYNC", 0)?)?;
    while bytes.get(at) == Some(&b'\n') {
        at += 1;
    }
    let framing_end = line_end(at)?;
    let framing = std::str::from_utf8(&bytes[at + 1..framing_end - 2]).ok()?;
    match framing.strip_prefix("EOF:") {
        Some(mark) => find(bytes, mark.as_bytes(), framing_end).map(|i| i + mark.len()),
        None => Some(framing_end + framing.parse::<usize>().ok()?),
    }
}

/// What `zstd -dc` makes of `wire`: the bytes decoded, and whether every frame was whole.
fn zstd_cli(wire: &[u8]) -> (usize, bool) {
    let mut child = Command::new("zstd")
        .args(["-dc", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the zstd command (Debian's zstd package, which scripts/test installs)");
    let mut stdin = child.stdin.take().unwrap();
    let input = wire.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (out.stdout.len(), out.status.success())
}

#[test]
fn zstd_captures_give_the_servers_offsets_and_the_ratio_an_independent_decoder_finds() {
    let pcaps = zstd_captures();
    assert_eq!(pcaps.len(), 5, "the five shipped zstd captures");
    let mut checked = 0;
    for pcap in pcaps {
        let name = fixtures::name(&pcap);
        let report = serde_json::to_value(replay_file(&pcap)).unwrap();
        // The master's bytes of each connection, by the replica's address.
        let (mut addr, mut wire) = (BTreeMap::new(), BTreeMap::<String, Vec<u8>>::new());
        for input in fixtures::reassembled(&pcap) {
            match &input.kind {
                InputKind::Open { replica, .. } => {
                    addr.insert(input.conn, replica.clone());
                }
                InputKind::Data {
                    dir: Direction::MasterToReplica,
                    bytes,
                } => wire
                    .entry(addr[&input.conn].clone())
                    .or_default()
                    .extend_from_slice(bytes),
                _ => {}
            }
        }
        for s in report["sessions"].as_array().unwrap() {
            assert_eq!(s["desync"], Value::Null, "{name}: session {}", s["id"]);
            let Some(c) = s["compression"].as_object() else {
                continue;
            };
            assert_eq!(
                (&c["codec"], &c["level"]),
                (&"zstd".into(), &3.into()),
                "{name}"
            );
            let bytes = &wire[s["replica"].as_str().unwrap()];
            let from = compressed_from(bytes).unwrap_or_else(|| panic!("{name}: no stream"));
            let region = &bytes[from..];
            let (decoded, whole) = zstd_cli(region);
            // Offsets count the decompressed bytes: every one the decoder found.
            assert_eq!(s["stream"]["bytes"], decoded as u64, "{name}: stream bytes");
            let (wire_bytes, stream_bytes) = (c["wire_bytes"].as_u64(), c["stream_bytes"].as_u64());
            if whole {
                assert_eq!(wire_bytes, Some(region.len() as u64), "{name}: wire bytes");
                assert_eq!(stream_bytes, Some(decoded as u64), "{name}: stream bytes");
                let ratio = decoded as f64 / region.len() as f64;
                assert!(
                    (c["ratio"].as_f64().unwrap() - ratio).abs() < 1e-9,
                    "{name}"
                );
                checked += 1;
            } else {
                // The link was cut inside a frame: only whole frames are counted.
                assert!(wire_bytes.unwrap() < region.len() as u64, "{name}");
                assert!(stream_bytes.unwrap() <= decoded as u64, "{name}");
            }
            assert!(c["frames"].as_u64().unwrap() > 0, "{name}");
        }
    }
    assert!(checked >= 5, "whole compressed streams checked: {checked}");
}

#[test]
fn the_metrics_count_the_compressed_frames_and_bytes_the_report_shows() {
    use repl_sniff::capture::replay;
    use repl_sniff::{Config, Monitor};

    let pcap = manifest().join("fixtures/captures/redis-zstd-2026-06/partial.pcap");
    let mut monitor = Monitor::new(Config::default(), vec![]);
    let options = replay::Options::default();
    replay::replay(&[pcap.as_path()], &options, &mut monitor, &mut |_| {}).unwrap();
    let report = serde_json::to_value(monitor.report()).unwrap();
    let sum = |k: &str| -> u64 {
        let sessions = report["sessions"].as_array().unwrap();
        sessions
            .iter()
            .filter_map(|s| s["compression"][k].as_u64())
            .sum()
    };
    let metrics = repl_sniff::render::prometheus::render(&monitor.snapshot());
    for (metric, field) in [
        ("repl_sniff_compressed_frames_total", "frames"),
        ("repl_sniff_compressed_wire_bytes_total", "wire_bytes"),
        ("repl_sniff_compressed_stream_bytes_total", "stream_bytes"),
    ] {
        let line = format!("{metric} {}", sum(field));
        assert!(
            sum(field) > 0 && metrics.lines().any(|l| l == line),
            "{line} in:\n{metrics}"
        );
    }
}
