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
    let (out, whole) = zstd_cli_run(wire);
    (out.len(), whole)
}

/// The bytes `zstd -dc` decodes from `wire`.
fn zstd_cli_bytes(wire: &[u8]) -> Vec<u8> {
    zstd_cli_run(wire).0
}

fn zstd_cli_run(wire: &[u8]) -> (Vec<u8>, bool) {
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
    (out.stdout, out.status.success())
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

/// The commands in decompressed stream bytes, counted without repl-sniff: `*<n>` arrays of
/// `$<len>` strings, and keep-alive newlines between them; a cut last command is not counted.
fn resp_commands(mut s: &[u8]) -> u64 {
    fn line(s: &[u8]) -> Option<(&[u8], &[u8])> {
        let end = s.windows(2).position(|w| w == b"\r\n")?;
        Some((&s[..end], &s[end + 2..]))
    }
    let number = |l: &[u8]| std::str::from_utf8(l).ok()?.parse::<usize>().ok();
    let mut n = 0;
    'commands: loop {
        while s.first() == Some(&b'\n') {
            s = &s[1..];
        }
        let Some((header, mut rest)) = line(s).filter(|(h, _)| h.first() == Some(&b'*')) else {
            return n;
        };
        for _ in 0..number(&header[1..]).expect("an array header") {
            let Some((len, body)) = line(rest) else {
                break 'commands n;
            };
            let len = number(&len[1..]).expect("a bulk header");
            let Some(after) = body.get(len + 2..) else {
                break 'commands n;
            };
            rest = after;
        }
        n += 1;
        s = rest;
    }
}

/// A capture's inputs, the master's compressed stream bytes of its (only) compressed session,
/// and the input carrying the most of them, with where it begins in that stream of bytes.
struct Cut {
    inputs: Vec<repl_sniff::Input>,
    wire: Vec<u8>,
    /// The index of the largest master input inside the compressed stream, and the byte of
    /// the master's direction it begins at.
    largest: usize,
    at: usize,
    /// That input's bytes.
    bytes: bytes::Bytes,
}

fn largest_compressed_input_of_full_disk() -> Cut {
    let pcap = manifest().join("fixtures/captures/redis-zstd-2026-06/full-disk.pcap");
    let inputs = fixtures::reassembled(&pcap);
    let mut wire = Vec::new();
    let mut starts = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        if let InputKind::Data {
            dir: Direction::MasterToReplica,
            bytes,
        } = &input.kind
        {
            assert_eq!(input.conn, inputs[0].conn, "one connection");
            starts.push((i, wire.len(), bytes.len()));
            wire.extend_from_slice(bytes);
        }
    }
    let from = compressed_from(&wire).expect("a compressed stream");
    let (largest, at, _) = (starts.into_iter())
        .filter(|&(_, at, _)| at >= from)
        .max_by_key(|&(_, _, len)| len)
        .unwrap();
    let InputKind::Data { bytes, .. } = &inputs[largest].kind else {
        unreachable!("a master input")
    };
    let bytes = bytes.clone();
    Cut {
        inputs,
        wire,
        largest,
        at,
        bytes,
    }
}

fn report_of(inputs: &[repl_sniff::Input]) -> Value {
    use repl_sniff::{Config, Monitor, Timestamp};
    let mut monitor = Monitor::new(Config::default(), vec![]);
    for input in inputs {
        monitor.handle(input);
    }
    let end = inputs.last().map_or(Timestamp(0), |i| i.at);
    monitor.close_all(Timestamp(end.0 + 1), "end");
    let report = serde_json::to_value(monitor.report()).unwrap();
    report["sessions"][0].clone()
}

fn data(like: &repl_sniff::Input, bytes: &[u8]) -> repl_sniff::Input {
    let dir = Direction::MasterToReplica;
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    let kind = InputKind::Data { dir, bytes };
    repl_sniff::Input {
        kind,
        ..like.clone()
    }
}

/// Where the first zstd magic at or after `from` begins, found by a plain byte search.
fn next_magic(wire: &[u8], from: usize) -> usize {
    let magic = [0x28, 0xB5, 0x2F, 0xFD];
    from + wire[from..]
        .windows(4)
        .position(|w| w == magic)
        .expect("a later frame")
}

#[test]
fn a_capture_that_lost_bytes_inside_a_frame_goes_on_at_the_next_frame() {
    let Cut {
        inputs,
        wire,
        largest,
        at,
        bytes,
    } = largest_compressed_input_of_full_disk();
    // The capture lost bytes 100 to 300 of the largest segment, inside its frame.
    assert!(
        bytes.len() > 400,
        "a segment long enough to cut: {}",
        bytes.len()
    );
    let (kept, lost) = (100, 200);
    let gap = InputKind::Gap {
        dir: Direction::MasterToReplica,
        len: lost as u64,
        why: repl_sniff::Skipped::NotCaptured,
    };
    let mut cut = inputs[..largest].to_vec();
    cut.push(data(&inputs[largest], &bytes[..kept]));
    let prefix = report_of(&cut);
    cut.push(repl_sniff::Input {
        kind: gap,
        ..inputs[largest].clone()
    });
    cut.push(data(&inputs[largest], &bytes[kept + lost..]));
    cut.extend_from_slice(&inputs[largest + 1..]);
    let s = report_of(&cut);

    let (gap_at, gap_end) = (at + kept, at + kept + lost);
    let magic = next_magic(&wire, gap_end);
    let d = &s["desyncs"][0];
    assert_eq!(
        d["position"], gap_at as u64,
        "the desync is where the gap begins: {d}"
    );
    assert_eq!(d["direction"], "master_to_replica");
    assert_eq!(
        (&d["resumed"]["position"], &d["resumed"]["passed"]),
        (&(magic as u64).into(), &((magic - gap_end) as u64).into()),
        "the analysis goes on at the next frame's magic: {d}"
    );
    assert_eq!(
        d["resumed"]["offset"],
        Value::Null,
        "offsets unknown from there"
    );
    assert_eq!(s["desync_count"], 1, "{s}");
    // From that frame on, every command and stream byte an independent decoder finds.
    let (decoded, _) = zstd_cli(&wire[magic..]);
    let after = resp_commands(&zstd_cli_bytes(&wire[magic..]));
    assert!(after > 0, "commands after the gap");
    assert_eq!(
        s["stream"]["commands"].as_u64().unwrap(),
        prefix["stream"]["commands"].as_u64().unwrap() + after,
        "commands: those before the gap, and those after it"
    );
    assert_eq!(
        s["stream"]["bytes"].as_u64().unwrap(),
        prefix["stream"]["bytes"].as_u64().unwrap() + decoded as u64,
        "stream bytes"
    );
}

#[test]
fn a_capture_that_joins_a_compressed_link_mid_frame_decodes_from_the_next_frame() {
    let Cut {
        inputs,
        wire,
        largest,
        at,
        bytes,
    } = largest_compressed_input_of_full_disk();
    // The capture begins 100 bytes into the largest segment, inside its frame.
    let skip = 100;
    let InputKind::Open {
        replica, upstream, ..
    } = &inputs[0].kind
    else {
        panic!("the capture opens its connection first")
    };
    let open = InputKind::Open {
        replica: replica.clone(),
        upstream: upstream.clone(),
        joined_late: true,
    };
    let mut joined = vec![repl_sniff::Input {
        kind: open,
        ..inputs[0].clone()
    }];
    joined.push(data(&inputs[largest], &bytes[skip..]));
    joined.extend_from_slice(&inputs[largest + 1..]);
    let s = report_of(&joined);

    assert_eq!(s["desync"], Value::Null, "{s}");
    assert_eq!(s["joined_late"], true);
    let c = &s["compression"];
    assert_eq!(
        (&c["codec"], &c["level"]),
        (&"zstd".into(), &Value::Null),
        "{c}"
    );
    let magic = next_magic(&wire, at + skip);
    let after = resp_commands(&zstd_cli_bytes(&wire[magic..]));
    let commands = s["stream"]["commands"].as_u64().unwrap();
    // What the rest of the first frame carries as it is (zstd's raw blocks) may count too.
    let rest_of_frame = resp_commands(&wire[at + skip..magic]) + 1;
    assert!(
        (after..=after + rest_of_frame).contains(&commands),
        "{commands} commands, {after} in the frames after the join"
    );
    assert_eq!(c["stream_bytes"], zstd_cli(&wire[magic..]).0 as u64, "{c}");
}

/// Everything about a session that a capture can carry (the close reason cannot).
fn comparable(mut session: Value) -> Value {
    session["end_reason"] = Value::Null;
    for c in session["channels"].as_array_mut().into_iter().flatten() {
        c["end_reason"] = Value::Null;
    }
    session
}

#[test]
fn a_recording_of_a_compressed_link_replays_to_the_same_report() {
    use repl_sniff::capture::record::Recorder;
    use repl_sniff::{Config, Monitor, Timestamp};

    for pcap in zstd_captures() {
        let name = fixtures::name(&pcap);
        // What a proxy between these two servers would have seen and recorded.
        let file = crate::support::temp_dir("zstd-recording").join("recorded.pcapng");
        let recorder = Recorder::create(&file, true).unwrap();
        let mut monitor = Monitor::new(Config::default(), vec![]).with_tap(Box::new(recorder));
        let inputs = fixtures::reassembled(&pcap);
        for input in &inputs {
            monitor.handle(input);
        }
        let end = inputs.last().map_or(Timestamp(0), |i| i.at);
        monitor.close_all(Timestamp(end.0 + 1), "end");
        let live = serde_json::to_value(monitor.report()).unwrap();
        drop(monitor);

        let replayed = serde_json::to_value(replay_file(&file)).unwrap();
        let sessions = |r: &Value| -> Vec<Value> {
            let all = r["sessions"].as_array().unwrap().iter().cloned();
            all.map(comparable).collect()
        };
        let (live, replayed) = (sessions(&live), sessions(&replayed));
        assert!(
            live.iter()
                .any(|s| s["compression"]["frames"].as_u64() > Some(0)),
            "{name}: a compressed session"
        );
        assert_eq!(replayed, live, "{name}: the recording's replay");
    }
}
