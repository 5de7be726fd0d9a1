//! What every fuzz target checks, shared by the coverage-guided targets (`fuzz/fuzz_targets`,
//! cargo-fuzz on nightly) and the bounded mutation run in CI (`tests/fuzz.rs`, stable).
//!
//! Each check takes arbitrary bytes and must never panic. Beyond that:
//! - `analyzer`: the bytes are a script of two connections (data either way, gaps, ticks);
//!   the events are the same when every data input is cut into pieces.
//! - `resp`: a command stream parses to the same items and the same failure whole and byte by
//!   byte.
//! - `rdb`: an RDB gives the same summary whole and in pieces.
//! - `pcap`: a capture file (pcap or pcapng, damaged anyhow) replays to a report or a clear
//!   error.
//!
//! The binaries that include this file also install [`CappedAlloc`]: an allocation larger
//! than [`MAX_ALLOCATION`] is a length from the input driving allocation, and aborts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Arc, Mutex};

use repl_sniff::protocol::rdb::Parser as RdbParser;
use repl_sniff::protocol::resp::{Item, Limits, Parser as RespParser};
use repl_sniff::{Config, Direction, Event, Input, InputKind, Monitor, Sink, Skipped, Timestamp};

/// Largest allocation allowed while checking an input (inputs are at most a few MiB).
pub const MAX_ALLOCATION: usize = 32 << 20;

/// The system allocator, refusing any single allocation over [`MAX_ALLOCATION`].
pub struct CappedAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// size check that aborts before allocating.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check_size(new_size);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn check_size(size: usize) {
    if size > MAX_ALLOCATION {
        // No allocation here: print with what the stack has, then abort like a panic would.
        eprintln!("allocation of {size} bytes: a wire length drives allocation");
        std::process::abort();
    }
}

/// A tiny deterministic generator: the same input is always cut the same way.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seed_of(data: &[u8]) -> u64 {
    // FNV-1a: cheap, and never zero for xorshift after the OR.
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1
}

/// Cuts `bytes` into pieces at pseudo-random points (1-byte pieces now and then).
fn pieces<'a>(bytes: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let one_by_one = rng.below(4) == 0;
    while !rest.is_empty() {
        let n = if one_by_one {
            1
        } else {
            1 + rng.below(rest.len())
        };
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// One step of an analyzer script.
#[derive(Debug)]
pub enum Step<'a> {
    Data(u64, Direction, &'a [u8]),
    Gap(u64, Direction, u64),
    Tick(u64),
}

/// Reads a script: an op byte, a 16-bit little-endian length, then (for data) that many
/// bytes. Op bits: 0-1 what (data to master, data to replica, gap, tick), 2 the direction of
/// a gap, 3 the connection (1 or 2).
pub fn script(data: &[u8]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let (op, len) = (rest[0], usize::from(u16::from_le_bytes([rest[1], rest[2]])));
        rest = &rest[3..];
        let conn = 1 + u64::from(op >> 3 & 1);
        let dir = |bit: u8| {
            if bit == 0 {
                Direction::ReplicaToMaster
            } else {
                Direction::MasterToReplica
            }
        };
        match op & 3 {
            0 | 1 => {
                let (bytes, after) = rest.split_at(len.min(rest.len()));
                rest = after;
                steps.push(Step::Data(conn, dir(op & 1), bytes));
            }
            2 => steps.push(Step::Gap(conn, dir(op >> 2 & 1), len as u64)),
            _ => steps.push(Step::Tick(len as u64)),
        }
    }
    steps
}

/// Writes a script (the seeds are built from captures with this).
pub fn encode(steps: &[Step<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in steps {
        let (op, len, bytes): (u8, u16, &[u8]) = match *s {
            Step::Data(conn, dir, b) => {
                let d = u8::from(dir == Direction::MasterToReplica);
                (
                    d | (conn as u8 - 1) << 3,
                    b.len().min(65535) as u16,
                    &b[..b.len().min(65535)],
                )
            }
            Step::Gap(conn, dir, len) => {
                let d = u8::from(dir == Direction::MasterToReplica);
                (
                    2 | d << 2 | (conn as u8 - 1) << 3,
                    len.min(65535) as u16,
                    &[],
                )
            }
            Step::Tick(ms) => (3, ms.min(65535) as u16, &[]),
        };
        out.push(op);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Sink for Collect {
    fn event(&mut self, e: &Event) {
        self.0.lock().unwrap().push(format!("{e:?}"));
    }
}

/// Runs a script through a monitor, each data step cut by `cut`; returns the events.
fn run(steps: &[Step<'_>], mut cut: impl FnMut(&[u8]) -> Vec<&[u8]>) -> Vec<String> {
    let events = Collect::default();
    let mut m = Monitor::new(Config::default(), vec![Box::new(events.clone())]);
    let mut at = Timestamp(1_700_000_000_000_000);
    for conn in [1, 2] {
        let kind = InputKind::Open {
            replica: format!("127.0.0.1:{}", 40000 + conn),
            upstream: "127.0.0.1:6379".into(),
            joined_late: false,
        };
        m.handle(&Input { conn, at, kind });
    }
    for step in steps {
        at = at.plus(std::time::Duration::from_millis(1));
        match *step {
            Step::Data(conn, dir, bytes) => {
                for piece in cut(bytes) {
                    let kind = InputKind::Data {
                        dir,
                        bytes: bytes::Bytes::copy_from_slice(piece),
                    };
                    m.handle(&Input { conn, at, kind });
                }
            }
            Step::Gap(conn, dir, len) => {
                let why = Skipped::NotCaptured;
                m.handle(&Input {
                    conn,
                    at,
                    kind: InputKind::Gap { dir, len, why },
                });
            }
            Step::Tick(ms) => {
                at = at.plus(std::time::Duration::from_millis(ms));
                m.tick(at);
            }
        }
    }
    for conn in [1, 2] {
        let kind = InputKind::Close {
            reason: "end of script".into(),
        };
        m.handle(&Input { conn, at, kind });
    }
    // The report and its renderings must not panic either.
    let report = m.report();
    let _ = serde_json::to_string(&report).unwrap();
    let _ = repl_sniff::render::summary::report(&report);
    let out = events.0.lock().unwrap().clone();
    out
}

/// The analyzer: no panic, and the same events whatever the chunking.
pub fn analyzer(data: &[u8]) {
    let steps = script(data);
    let whole = run(&steps, |b| vec![b]);
    let mut rng = Rng(seed_of(data));
    let cut = run(&steps, |b| pieces(b, &mut rng));
    assert_eq!(
        whole.len(),
        cut.len(),
        "event count differs with chunking:\nwhole: {whole:#?}\ncut: {cut:#?}"
    );
    for (a, b) in whole.iter().zip(&cut) {
        assert_eq!(a, b, "an event differs with chunking");
    }
}

/// What a RESP parser made of a stream: items (as text) and where it failed.
fn parse_resp(pieces: &[&[u8]], master: bool) -> (Vec<String>, Option<String>) {
    let mut p = if master {
        RespParser::for_master_stream(Limits::default())
    } else {
        RespParser::new(Limits::default())
    };
    let mut items = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let (used, result) = p.advance(rest);
            rest = &rest[used..];
            match result {
                Ok(Some(Item::Command(c))) => items.push(format!("{c:?}")),
                Ok(Some(Item::KeepAlive)) => items.push("keep-alive".into()),
                Ok(None) => {}
                Err(f) => return (items, Some(format!("{f:?}"))),
            }
            if used == 0 && !rest.is_empty() {
                return (items, Some("no progress".into()));
            }
        }
    }
    (items, None)
}

/// RESP: the same items and failure whole and in pieces, for both parsers.
pub fn resp(data: &[u8]) {
    let mut rng = Rng(seed_of(data));
    for master in [false, true] {
        let whole = parse_resp(&[data], master);
        let cut = parse_resp(&pieces(data, &mut rng), master);
        assert_eq!(whole, cut, "RESP parse differs with chunking");
    }
}

/// RDB: the same summary whole and in pieces.
pub fn rdb(data: &[u8]) {
    let mut whole = RdbParser::new(10);
    whole.feed(data);
    let mut cut = RdbParser::new(10);
    let mut rng = Rng(seed_of(data));
    for piece in pieces(data, &mut rng) {
        cut.feed(piece);
    }
    let (a, b) = (whole.finish(), cut.finish());
    assert_eq!(
        format!("{a:?}"),
        format!("{b:?}"),
        "RDB summary differs with chunking"
    );
}

/// A capture file: replayed to a report, or refused with an error; never a panic.
pub fn pcap(data: &[u8], scratch: &std::path::Path) {
    std::fs::write(scratch, data).unwrap();
    let mut m = Monitor::new(Config::default(), Vec::new());
    let opts = repl_sniff::capture::replay::Options::default();
    match repl_sniff::capture::replay::replay(&[scratch], &opts, &mut m, &mut |_| {}) {
        Ok(_) => {
            let _ = serde_json::to_string(&m.report()).unwrap();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
