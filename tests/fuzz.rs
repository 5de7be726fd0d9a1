//! The bounded fuzz run (stable Rust, in CI): a structured mutation harness seeded from the
//! shipped captures drives the four checks of `fuzz/checks.rs` (analyzer, RESP, RDB, pcap).
//!
//! By default each target gets `REPL_SNIFF_FUZZ_SECS` seconds (4). The long run gives each a
//! number of inputs instead (README, Fuzzing):
//!
//! ```text
//! REPL_SNIFF_FUZZ_RUNS=10000000 cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! An input that fails is written to `target/fuzz-failures/` before the test fails, so
//! `REPL_SNIFF_FUZZ_REPLAY=<file>` (with the target's test name) reruns exactly it.

#![allow(unreachable_pub, missing_docs)]

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use checks::{Rng, Step};
use repl_sniff::capture::tcp::Reassembler;
use repl_sniff::capture::{self, Reader};
use repl_sniff::{InputKind, Timestamp};

#[global_allocator]
static ALLOC: checks::CappedAlloc = checks::CappedAlloc;

/// Seeds are cut to this size: mutations of a smaller input explore more per second.
const MAX_SEED: usize = 16 * 1024;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every shipped capture file.
fn captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![fixtures().join("captures"), fixtures().join("recorded")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A capture as an analyzer script: its first two connections' bytes, gaps and time.
fn script_of(capture: &Path) -> Vec<u8> {
    let mut reader = Reader::open(capture).unwrap();
    let mut tcp = Reassembler::new(Default::default());
    let mut inputs = Vec::new();
    while let Some(Ok(frame)) = reader.next_frame() {
        if let Some(seg) = capture::decode(&frame) {
            tcp.push(frame.ts, &seg);
        }
        inputs.extend(std::iter::from_fn(|| tcp.poll()));
    }
    tcp.finish(Timestamp(u64::MAX));
    inputs.extend(std::iter::from_fn(|| tcp.poll()));
    let mut conns: Vec<u64> = Vec::new();
    let mut steps = Vec::new();
    for input in &inputs {
        if !conns.contains(&input.conn) {
            conns.push(input.conn);
        }
        let Some(conn) = conns
            .iter()
            .position(|c| *c == input.conn)
            .filter(|i| *i < 2)
        else {
            continue;
        };
        let conn = conn as u64 + 1;
        match &input.kind {
            InputKind::Data { dir, bytes } => {
                for piece in bytes.chunks(65535) {
                    steps.push(Step::Data(conn, *dir, piece));
                }
            }
            InputKind::Gap { dir, len, .. } => steps.push(Step::Gap(conn, *dir, *len)),
            _ => {}
        }
    }
    checks::encode(&steps)
}

/// The bytes each direction of a script carries (RESP and RDB seeds).
fn streams(script: &[u8]) -> [Vec<u8>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for step in checks::script(script) {
        if let Step::Data(_, dir, bytes) = step {
            out[usize::from(dir == repl_sniff::Direction::MasterToReplica)].extend(bytes);
        }
    }
    out
}

/// The RDB payloads inside a master's stream: from each `REDIS` magic on.
fn rdbs(master: &[u8]) -> Vec<Vec<u8>> {
    master
        .windows(5)
        .enumerate()
        .filter(|(_, w)| w == b"REDIS")
        .map(|(i, _)| master[i..master.len().min(i + MAX_SEED)].to_vec())
        .take(4)
        .collect()
}

/// Lengths and bytes that parsers have to take seriously.
const INTERESTING: &[&[u8]] = &[
    b"*2147483647\r\n",
    b"$9223372036854775807\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"$0\r\n\r\n",
    b"\r\n",
    b"\n",
    b"+FULLRESYNC 0000000000000000000000000000000000000000 0\r\n",
    b"+CONTINUE\r\n",
    b"$EOF:0123456789012345678901234567890123456789\r\n",
    b"REDIS0012",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xfe\x00\xfb\xff\xff",
    b"\xc0\xff\xff\xff\xff\xff\xff\xff\xff",
];

/// One random change to `input`, with `others` as splice sources.
fn mutate(input: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut Rng) {
    let len = input.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = [0, 0xff, b'\r', b'\n', b'*', b'$', b'0', b'9', b':', 0x7f][rng.below(10)];
        }
        2 => {
            let what = INTERESTING[rng.below(INTERESTING.len())];
            let at = rng.below(len + 1);
            input.splice(at..at, what.iter().copied());
        }
        3 if len > 1 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            input.drain(a..b);
        }
        4 if len > 1 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(256)).min(len);
            let copy = input[a..b].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, copy);
        }
        5 if !others.is_empty() => {
            let other = &others[rng.below(others.len())];
            if !other.is_empty() {
                let a = rng.below(other.len());
                let b = (a + 1 + rng.below(4096)).min(other.len());
                let at = rng.below(len + 1);
                input.splice(at..at, other[a..b].iter().copied());
            }
        }
        6 if len > 0 => input.truncate(rng.below(len)),
        _ if len > 0 => {
            // A little-endian or ASCII number somewhere: lengths are where parsers break.
            let i = rng.below(len);
            let n = rng.next().to_le_bytes();
            let end = (i + 1 + rng.below(8)).min(len);
            let width = end - i;
            input[i..end].copy_from_slice(&n[..width]);
        }
        _ => input.push(rng.next() as u8),
    }
}

/// How long, or how many inputs, each target runs.
enum Budget {
    Secs(Duration),
    Runs(u64),
}

fn budget() -> Budget {
    if let Some(runs) = std::env::var("REPL_SNIFF_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Budget::Runs(runs);
    }
    let secs = std::env::var("REPL_SNIFF_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    Budget::Secs(Duration::from_secs_f64(secs))
}

/// Runs `check` on the seeds, then on mutants of them until the budget is spent; a failing
/// input is saved first.
fn fuzz(target: &str, seeds: &[Vec<u8>], check: impl Fn(&[u8])) {
    let failures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let run = |input: &[u8]| {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input)));
        if let Err(panic) = result {
            std::fs::create_dir_all(&failures).unwrap();
            let path = failures.join(format!(
                "{target}-{:016x}",
                checks::Rng(input.len() as u64 | 1).next()
            ));
            std::fs::write(&path, input).unwrap();
            eprintln!("{target}: failing input saved as {}", path.display());
            std::panic::resume_unwind(panic);
        }
    };
    if let Ok(file) = std::env::var("REPL_SNIFF_FUZZ_REPLAY") {
        return run(&std::fs::read(file).unwrap());
    }
    assert!(!seeds.is_empty(), "{target}: no seeds");
    for seed in seeds {
        run(seed);
    }
    let started = Instant::now();
    let mut rng = Rng(0x5eed ^ target.len() as u64);
    let mut n = 0u64;
    let mut input = Vec::new();
    loop {
        let done = match budget() {
            Budget::Secs(d) => started.elapsed() >= d,
            Budget::Runs(r) => n >= r,
        };
        if done {
            break;
        }
        // A fresh mutant of a seed now and then; otherwise stack mutations.
        if n % 16 == 0 || input.is_empty() {
            input = seeds[rng.below(seeds.len())].clone();
        }
        for _ in 0..1 + rng.below(4) {
            mutate(&mut input, seeds, &mut rng);
        }
        run(&input);
        n += 1;
        if n % 1_000_000 == 0 {
            eprintln!(
                "{target}: {n} inputs, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{target}: {n} inputs in {secs:.1} s ({:.0}/s) from {} seeds",
        n as f64 / secs,
        seeds.len()
    );
}

/// Every capture as a whole script.
fn scripts() -> Vec<Vec<u8>> {
    captures().iter().map(|c| script_of(c)).collect()
}

#[test]
fn analyzer() {
    // The start of each script (handshake, the master's answer, the RDB) as it is, whatever
    // its length cut to a few steps at most MAX_SEED long.
    let seeds: Vec<Vec<u8>> = scripts()
        .iter()
        .map(|s| {
            let mut steps = checks::script(s);
            let mut total = 0;
            steps.retain(|step| {
                total += match step {
                    Step::Data(_, _, b) => b.len() + 3,
                    _ => 3,
                };
                total <= MAX_SEED
            });
            checks::encode(&steps)
        })
        .collect();
    fuzz("analyzer", &seeds, checks::analyzer);
}

#[test]
fn resp() {
    let seeds: Vec<Vec<u8>> = scripts()
        .iter()
        .flat_map(|s| streams(s))
        .map(|mut s| {
            s.truncate(MAX_SEED);
            s
        })
        .filter(|s| !s.is_empty())
        .collect();
    fuzz("resp", &seeds, checks::resp);
}

#[test]
fn rdb() {
    let seeds: Vec<Vec<u8>> = scripts()
        .iter()
        .flat_map(|s| rdbs(&streams(s)[1]))
        .collect();
    fuzz("rdb", &seeds, checks::rdb);
}

#[test]
fn pcap() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-pcap-scratch");
    let seeds: Vec<Vec<u8>> = captures()
        .iter()
        .map(|c| {
            // A capture cut short is still a capture: its first packets.
            let mut bytes = std::fs::read(c).unwrap();
            bytes.truncate(2 * MAX_SEED);
            bytes
        })
        .collect();
    fuzz("pcap", &seeds, |data| checks::pcap(data, &scratch));
}
