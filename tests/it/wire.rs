//! Wire cases: every `fixtures/wire/<name>.txt` is a conversation on the wire, one step per
//! line (the format is in `fixtures/wire/README.md`). Each is fed through the whole pipe
//! (`Monitor`) whole, one byte at a time, and split in two at every byte of every step; each
//! time its events must be `fixtures/wire/<name>.events.jsonl`, line for line. Adding a case
//! is adding those two files (`UPDATE_GOLDEN=1` writes the second; read it before committing).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use repl_sniff::{Config, Direction, Input, InputKind, Monitor, Timestamp};

use crate::support::splits::assert_same;
use crate::support::Collect;

/// One step of a case.
#[derive(Debug, Clone)]
enum Step {
    Data {
        conn: u64,
        dir: Direction,
        bytes: Vec<u8>,
    },
    Close {
        conn: u64,
    },
    /// Connection `conn` opens from `replica` (otherwise it opens with its first bytes), or
    /// began before the capture did (`joined_late`).
    Open {
        conn: u64,
        replica: String,
        joined_late: bool,
    },
    /// `len` bytes of `dir` on `conn` went by unseen (a capture lost them).
    Gap {
        conn: u64,
        dir: Direction,
        len: u64,
    },
    /// The clock moves on by this many milliseconds.
    Wait {
        ms: u64,
    },
}

/// How a run cuts the steps' bytes into inputs.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Whole,
    Bytewise,
    /// Step `step` in two, at byte `at`.
    At {
        step: usize,
        at: usize,
    },
}

fn wire_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wire")
}

/// Bytes of a step's text: `\r`, `\n`, `\t`, `\\`, `\s` (a space, where one would be easy to
/// miss) and `\xHH`.
fn unescape(text: &str, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b's') => out.push(b' '),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).unwrap_or("");
                let byte = u8::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("{what}: \\x{hex} is not a hex byte"));
                out.push(byte);
            }
            other => panic!("{what}: unknown escape \\{}", other.map_or('?', char::from)),
        }
    }
    out
}

/// A RESP array of `args` (space-separated, escapes allowed in each).
fn command(args: &str, what: &str) -> Vec<u8> {
    let args: Vec<Vec<u8>> = args.split(' ').map(|a| unescape(a, what)).collect();
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(&a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse(name: &str, text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let what = format!("{name}.txt:{}", n + 1);
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let step = match word {
            "close" => Step::Close {
                conn: rest
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{what}: close N")),
            },
            "open" => {
                let (conn, replica) = (rest.split_once(' '))
                    .and_then(|(n, r)| Some((n.parse().ok()?, r.trim().to_string())))
                    .unwrap_or_else(|| panic!("{what}: open N HOST:PORT"));
                Step::Open {
                    conn,
                    replica,
                    joined_late: false,
                }
            }
            "joined" => {
                let conn = (rest.trim().parse()).unwrap_or_else(|_| panic!("{what}: joined N"));
                let replica = format!("127.0.0.1:{}", 40000 + conn);
                Step::Open {
                    conn,
                    replica,
                    joined_late: true,
                }
            }
            "gap" => gap(rest, &what),
            "wait" => {
                let secs: f64 =
                    (rest.trim().parse()).unwrap_or_else(|_| panic!("{what}: wait SECONDS"));
                Step::Wait {
                    ms: (secs * 1000.0).round() as u64,
                }
            }
            _ => data(line, &what),
        };
        steps.push(step);
    }
    steps
}

/// `gap R 20`, `gap 2 M 20`: bytes the capture lost.
fn gap(rest: &str, what: &str) -> Step {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (conn, dir, len) = match words.as_slice() {
        [dir, len] => (Some(1), *dir, *len),
        [conn, dir, len] => (conn.parse().ok(), *dir, *len),
        _ => (None, "", ""),
    };
    let dir = match dir {
        "R" => Some(Direction::ReplicaToMaster),
        "M" => Some(Direction::MasterToReplica),
        _ => None,
    };
    match (conn, dir, len.parse()) {
        (Some(conn), Some(dir), Ok(len)) => Step::Gap { conn, dir, len },
        _ => panic!("{what}: gap [N] R|M LEN"),
    }
}

/// `R: bytes`, `M> command args`, `2R: …`.
fn data(line: &str, what: &str) -> Step {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let conn = line[..digits].parse().unwrap_or(1);
    let rest = &line[digits..];
    let (dir, rest) = match rest.as_bytes().first() {
        Some(b'R') => (Direction::ReplicaToMaster, &rest[1..]),
        Some(b'M') => (Direction::MasterToReplica, &rest[1..]),
        _ => panic!("{what}: a step begins with R or M (or a connection number): {line}"),
    };
    let bytes = if let Some(raw) = rest.strip_prefix(": ") {
        unescape(raw, what)
    } else if let Some(args) = rest.strip_prefix("> ") {
        command(args, what)
    } else {
        panic!("{what}: `R: bytes` or `R> command args`: {line}");
    };
    Step::Data { conn, dir, bytes }
}

/// The events of one run, as JSON lines.
fn run(steps: &[Step], cut: Cut) -> Vec<String> {
    let collect = Collect::default();
    let events = std::sync::Arc::clone(&collect.0);
    let mut monitor = Monitor::new(Config::default(), vec![Box::new(collect)]);
    let mut opened = std::collections::BTreeSet::new();
    let mut at = Timestamp(1_800_000_000_000_000);
    let open = |monitor: &mut Monitor, conn: u64, at: Timestamp, replica: String, joined_late| {
        let kind = InputKind::Open {
            replica,
            upstream: "127.0.0.1:6379".into(),
            joined_late,
        };
        monitor.handle(&Input { conn, at, kind });
    };
    for (i, step) in steps.iter().enumerate() {
        at = Timestamp(at.0 + 1000);
        match step {
            Step::Close { conn } => {
                let reason = "closed".into();
                let kind = InputKind::Close { reason };
                monitor.handle(&Input {
                    conn: *conn,
                    at,
                    kind,
                });
            }
            Step::Open {
                conn,
                replica,
                joined_late,
            } => {
                opened.insert(*conn);
                open(&mut monitor, *conn, at, replica.clone(), *joined_late);
            }
            Step::Gap { conn, dir, len } => {
                let why = repl_sniff::Skipped::NotCaptured;
                let kind = InputKind::Gap {
                    dir: *dir,
                    len: *len,
                    why,
                };
                monitor.handle(&Input {
                    conn: *conn,
                    at,
                    kind,
                });
            }
            Step::Wait { ms } => at = Timestamp(at.0 + ms * 1000),
            Step::Data { conn, dir, bytes } => {
                let (conn, dir) = (*conn, *dir);
                if opened.insert(conn) {
                    open(
                        &mut monitor,
                        conn,
                        at,
                        format!("127.0.0.1:{}", 40000 + conn),
                        false,
                    );
                }
                let pieces: Vec<&[u8]> = match cut {
                    Cut::Whole => vec![bytes],
                    Cut::Bytewise => bytes.chunks(1).collect(),
                    Cut::At { step, at: k } if step == i => vec![&bytes[..k], &bytes[k..]],
                    Cut::At { .. } => vec![bytes],
                };
                for piece in pieces {
                    let bytes = Bytes::copy_from_slice(piece);
                    let kind = InputKind::Data { dir, bytes };
                    monitor.handle(&Input { conn, at, kind });
                }
            }
        }
        monitor.tick(at);
    }
    monitor.close_all(Timestamp(at.0 + 1000), "end");
    let events = events.lock().unwrap();
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect()
}

fn cases() -> Vec<(String, PathBuf)> {
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(wire_dir())
        .expect("fixtures/wire")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_wire_case_gives_its_golden_events_whole_bytewise_and_at_every_split() {
    let cases = cases();
    assert!(cases.len() >= 8, "the wire cases are in fixtures/wire");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, path) in cases {
        let steps = parse(&name, &std::fs::read_to_string(&path).unwrap());
        let whole = run(&steps, Cut::Whole);
        let golden = path.with_extension("events.jsonl");
        let text = whole.join("\n") + "\n";
        if update {
            std::fs::write(&golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{name}: no {} (UPDATE_GOLDEN=1 writes it)",
                golden.display()
            )
        });
        let want: Vec<String> = want.lines().map(str::to_string).collect();
        assert_same(&whole, &want, &format!("{name} whole, against its golden"));
        assert_same(
            &run(&steps, Cut::Bytewise),
            &whole,
            &format!("{name} byte by byte"),
        );
        for (i, step) in steps.iter().enumerate() {
            let Step::Data { bytes, .. } = step else {
                continue;
            };
            for k in 1..bytes.len() {
                let got = run(&steps, Cut::At { step: i, at: k });
                assert_same(&got, &whole, &format!("{name} step {} split at {k}", i + 1));
            }
        }
    }
}

#[test]
fn a_step_says_its_bytes_in_the_notation_the_readme_gives() {
    let steps = parse(
        "notation",
        "# a comment\n\nR> PSYNC ? -1\nM: +OK\\r\\n\\x00\\s\nopen 2 127.0.0.2:40002\n2R: x\nwait 1.5\nclose 2\n",
    );
    let data: Vec<(u64, Direction, &[u8])> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Data { conn, dir, bytes } => Some((*conn, *dir, bytes.as_slice())),
            _ => None,
        })
        .collect();
    assert_eq!(
        data,
        vec![
            (
                1,
                Direction::ReplicaToMaster,
                &b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"[..]
            ),
            (1, Direction::MasterToReplica, &b"+OK\r\n\x00 "[..]),
            (2, Direction::ReplicaToMaster, &b"x"[..]),
        ]
    );
    assert!(
        matches!(&steps[2], Step::Open { conn: 2, replica, .. } if replica == "127.0.0.2:40002")
    );
    assert!(matches!(steps[4], Step::Wait { ms: 1500 }));
    assert!(matches!(steps.last(), Some(Step::Close { conn: 2 })));
}
