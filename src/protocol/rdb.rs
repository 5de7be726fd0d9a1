//! Streaming RDB analysis: fed chunks as they arrive (a full sync in flight, or a file), it
//! counts keys, expires, types, elements and sizes per database, collects AUX fields,
//! functions and module types, keeps the biggest keys, and verifies the CRC-64 — without
//! ever holding a whole value. Format per `protocol.md` §9 (RDB 1–12, `REDIS`/`VALKEY` magic).
//!
//! The parser is a small interpreter: every construct of the format is a sequence of
//! `Op`s on a stack (read a length, read a string for some purpose, skip fixed bytes,
//! repeat a body). String bodies stream through: only a bounded prefix is kept when its
//! content matters (key names for the top-N, AUX values, the header of a listpack, ziplist
//! or intset, which holds its element count; an LZF-compressed container is decompressed
//! only as far as that header). Lengths from the input are only counted down. Memory is
//! the op stack (bounded by the format's nesting) plus a few hundred bytes of carry.
//! Counts taken from the input saturate rather than overflow: damaged input is reported,
//! never a panic.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crc::{Crc, Table, CRC_64_REDIS};
use serde::Serialize;

use crate::protocol::handshake::printable;

static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// Longest key prefix kept for the biggest-keys list.
const KEY_CAPTURE: usize = 128;
/// Longest AUX value kept.
const AUX_CAPTURE: usize = 256;
/// Bytes of a container blob needed to read its element count.
const HEADER_CAPTURE: usize = 10;

/// Why an RDB could not be analysed to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} (at byte {offset} of the RDB)")]
pub struct Error {
    /// Byte offset into the RDB payload.
    pub offset: u64,
    /// What was wrong or expected.
    pub message: String,
}

/// Per-database counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DbStats {
    /// Keys.
    pub keys: u64,
    /// Keys with an expire.
    pub expires: u64,
    /// The `RESIZEDB` hint: keys and expires the saver announced.
    pub resize_hint: Option<(u64, u64)>,
}

/// Per-type counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeStats {
    /// Keys of this type.
    pub keys: u64,
    /// Elements (1 per string; list items, set members, hash fields, zset members, stream
    /// entries).
    pub elements: u64,
    /// Serialized bytes (key and value as stored in the RDB).
    pub bytes: u64,
}

/// One of the biggest keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BigKey {
    /// Serialized bytes.
    pub bytes: u64,
    /// The database.
    pub db: u64,
    /// The key, non-printable bytes escaped, long names shortened.
    pub key: String,
    /// The type (`string`, `hash`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The encoding as stored (`hash_listpack`, …).
    pub encoding: &'static str,
    /// Elements.
    pub elements: u64,
}

/// Everything learnt from one RDB.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `REDIS` or `VALKEY`.
    pub magic: Option<String>,
    /// The RDB version.
    pub version: Option<u32>,
    /// AUX fields (values shown printable).
    pub aux: BTreeMap<String, String>,
    /// Per database number.
    pub dbs: BTreeMap<u64, DbStats>,
    /// Per type (`string`, `list`, `set`, `zset`, `hash`, `stream`, `module`).
    pub types: BTreeMap<&'static str, TypeStats>,
    /// Keys per stored encoding.
    pub encodings: BTreeMap<&'static str, u64>,
    /// Consumer groups and consumers over all streams.
    pub stream_groups: u64,
    /// Consumers over all stream groups.
    pub stream_consumers: u64,
    /// Listpacks, ziplists and zipmaps whose header does not carry their element count
    /// (65535 or more elements); their elements are not in `types.*.elements`.
    pub uncounted_containers: u64,
    /// The biggest keys by serialized size, biggest first.
    pub biggest: Vec<BigKey>,
    /// Function libraries (`#!lua name=…`).
    pub functions: Vec<String>,
    /// Module types present (values and module AUX).
    pub modules: Vec<String>,
    /// `ok`, `mismatch`, `absent` (stored as 0) or `not_reached`.
    pub checksum: &'static str,
    /// Bytes analysed.
    pub bytes: u64,
    /// Returns true if and only if the parser reached the end of the RDB.
    pub complete: bool,
    /// Why the analysis stopped early, if it did.
    pub error: Option<Error>,
}

/// A length field: a number, or (where a string is expected) a special string encoding:
/// 0/1/2 = an 8/16/32-bit integer, 3 = LZF.
#[derive(Debug, Clone, Copy)]
enum Length {
    Value(u64),
    Encoded(u8),
}

/// What a string read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Skip,
    Key,
    AuxKey,
    AuxValue,
    Function,
    /// A container blob whose element count is in its header.
    Container(Container),
    /// A quicklist 2 node: plain (one element) or packed (a listpack).
    QuicklistNode,
    /// A string value (one element).
    StringValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Ziplist { per: u64 },
    Listpack { per: u64 },
    Intset,
    Zipmap,
}

impl Purpose {
    /// How many leading (decompressed) bytes of the string matter; 0 if none.
    fn keep(self) -> usize {
        match self {
            Purpose::Key => KEY_CAPTURE,
            Purpose::AuxKey | Purpose::AuxValue | Purpose::Function => AUX_CAPTURE,
            Purpose::Container(_) => HEADER_CAPTURE,
            Purpose::Skip | Purpose::QuicklistNode | Purpose::StringValue => 0,
        }
    }
}

/// What to do with a length once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Discard,
    SelectDb,
    ResizeKeys,
    ResizeExpires,
    /// Count that many elements and repeat `body` for each.
    Elements(&'static [Op]),
    /// Repeat `body` this many times.
    Repeat(&'static [Op]),
    /// Repeat `body` this many times, counting stream groups.
    Groups(&'static [Op]),
    /// Repeat `body` this many times, counting stream consumers.
    Consumers(&'static [Op]),
    StreamLength,
    QuicklistContainer,
    ModuleId,
    ModuleOpcode,
    LzfCompressed(Purpose),
    LzfUncompressed(Purpose),
}

/// One step of the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Magic,
    TopLevel,
    Len(Then),
    Str(Purpose),
    /// Skip exactly this many bytes (at most 16).
    Skip(u8),
    /// An 8-byte expire in ms, or (`false`) a 4-byte one in seconds.
    Expire(bool),
    /// Legacy text double: 1 length byte (253..255 = NaN/±inf) then that many bytes.
    LegacyDouble,
    EndKey,
    Checksum,
    /// A repetition in progress.
    Repeat {
        left: u64,
        body: &'static [Op],
    },
    /// Streaming `left` bytes of a string body, keeping the first `Purpose::keep` of them.
    Body {
        left: u64,
        purpose: Purpose,
        int: bool,
    },
    /// Feeding `left` LZF-compressed bytes to the prefix decoder.
    Lzf {
        left: u64,
        purpose: Purpose,
    },
    Done,
}

use Op::*;

const ONE_STR: &[Op] = &[Str(Purpose::Skip)];
const TWO_STR: &[Op] = &[Str(Purpose::Skip), Str(Purpose::Skip)];
const ZSET_LEGACY: &[Op] = &[Str(Purpose::Skip), LegacyDouble];
const ZSET_BINARY: &[Op] = &[Str(Purpose::Skip), Skip(8)];
const HASH_TTL: &[Op] = &[Len(Then::Discard), Str(Purpose::Skip), Str(Purpose::Skip)];
const VALKEY_HASH2: &[Op] = &[Str(Purpose::Skip), Str(Purpose::Skip), Skip(8)];
const QUICKLIST: &[Op] = &[Str(Purpose::Container(Container::Ziplist { per: 1 }))];
const QUICKLIST2: &[Op] = &[Len(Then::QuicklistContainer), Str(Purpose::QuicklistNode)];
const STREAM_LP: &[Op] = &[Str(Purpose::Skip), Str(Purpose::Skip)];
const ID16: &[Op] = &[Skip(16)];
const PEL: &[Op] = &[Skip(16), Skip(8), Len(Then::Discard)];
const CONSUMER_V1: &[Op] = &[Str(Purpose::Skip), Skip(8), Len(Then::Repeat(ID16))];
const CONSUMER_V3: &[Op] = &[
    Str(Purpose::Skip),
    Skip(8),
    Skip(8),
    Len(Then::Repeat(ID16)),
];
const GROUP_V1: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V1)),
];
const GROUP_V2: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V1)),
];
const GROUP_V3: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V3)),
];
const SLOT_RANGE: &[Op] = &[Len(Then::Discard), Len(Then::Discard)];
const KEY_META_CLASS: &[Op] = &[Skip(4), Len(Then::ModuleOpcode)];

/// Logical types, in a fixed order (an index into per-type counters).
const TYPES: [&str; 7] = ["string", "list", "set", "zset", "hash", "stream", "module"];

/// The stored encoding of a value type byte, and its logical type.
fn encoding(t: u8, valkey: bool) -> Option<(&'static str, usize)> {
    Some(match t {
        0 => ("string", 0),
        1 => ("list", 1),
        2 => ("set", 2),
        3 => ("zset", 3),
        4 => ("hash", 4),
        5 => ("zset_2", 3),
        7 => ("module_2", 6),
        9 => ("hash_zipmap", 4),
        10 => ("list_ziplist", 1),
        11 => ("set_intset", 2),
        12 => ("zset_ziplist", 3),
        13 => ("hash_ziplist", 4),
        14 => ("list_quicklist", 1),
        15 => ("stream_listpacks", 5),
        16 => ("hash_listpack", 4),
        17 => ("zset_listpack", 3),
        18 => ("list_quicklist_2", 1),
        19 => ("stream_listpacks_2", 5),
        20 => ("set_listpack", 2),
        21 => ("stream_listpacks_3", 5),
        22 if valkey => ("hash_2", 4),
        24 if !valkey => ("hash_metadata", 4),
        25 if !valkey => ("hash_listpack_ex", 4),
        _ => return None,
    })
}

#[derive(Debug, Clone, Default)]
struct Key {
    kind: usize,
    encoding: &'static str,
    name: Vec<u8>,
    start: u64,
    elements: u64,
    expires: bool,
}

/// The prefix-only LZF decoder: decodes until `want` bytes exist, then only counts.
#[derive(Debug, Clone, Default)]
struct LzfPrefix {
    out: Vec<u8>,
    want: usize,
    literal: usize,
    ctrl: Option<u8>,
    long_len: Option<usize>,
}

impl LzfPrefix {
    fn new(want: usize) -> LzfPrefix {
        LzfPrefix {
            want,
            ..LzfPrefix::default()
        }
    }

    /// Decodes until `want` bytes exist, never more, whatever the input's split. On data that
    /// is not LZF (a back-reference before the start), returns the index of the byte that
    /// completed the bad reference.
    fn feed(&mut self, input: &[u8]) -> Result<(), usize> {
        let mut i = 0;
        while i < input.len() && self.out.len() < self.want {
            let room = self.want - self.out.len();
            if self.literal > 0 {
                let take = self.literal.min(input.len() - i).min(room);
                self.out.extend_from_slice(&input[i..i + take]);
                self.literal -= take;
                i += take;
                continue;
            }
            let b = input[i];
            i += 1;
            match self.ctrl {
                None if b < 32 => self.literal = b as usize + 1,
                None => {
                    self.ctrl = Some(b);
                    self.long_len = (b >> 5 != 7).then_some((b >> 5) as usize);
                }
                Some(_) if self.long_len.is_none() => self.long_len = Some(7 + b as usize),
                Some(c) => {
                    let len = self.long_len.unwrap_or(0) + 2;
                    let back = (((c & 0x1f) as usize) << 8) + b as usize + 1;
                    if back > self.out.len() {
                        return Err(i - 1);
                    }
                    for _ in 0..len.min(room) {
                        let byte = self.out[self.out.len() - back];
                        self.out.push(byte);
                    }
                    self.ctrl = None;
                    self.long_len = None;
                }
            }
        }
        Ok(())
    }
}

/// The streaming parser.
pub struct Parser {
    stack: Vec<Op>,
    carry: Vec<u8>,
    capture: Vec<u8>,
    lzf: Option<LzfPrefix>,
    lzf_compressed: u64,
    pos: u64,
    crc: crc::Digest<'static, u64, Table<16>>,
    /// Position just after the EOF opcode: where hashing stops.
    crc_end: Option<u64>,
    stored_crc: Option<u64>,
    valkey: bool,
    version: u32,
    db: u64,
    db_stats: BTreeMap<u64, DbStats>,
    resize_keys: u64,
    types: [TypeStats; 7],
    encodings: BTreeMap<&'static str, u64>,
    key: Option<Key>,
    pending_expire: bool,
    ql_plain: bool,
    aux_key: String,
    top_n: usize,
    heap: BinaryHeap<Reverse<BigKey>>,
    summary: Summary,
    failed: bool,
    /// Where the error a step is returning was found, when that is not where the element
    /// the step was reading began (the end of a string whose contents are wrong, say).
    error_at: Option<u64>,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("pos", &self.pos)
            .field("stack", &self.stack.len())
            .finish()
    }
}

impl Parser {
    /// A parser that keeps the `top_n` biggest keys.
    pub fn new(top_n: usize) -> Parser {
        Parser {
            stack: vec![Done, TopLevel, Magic],
            carry: Vec::with_capacity(16),
            capture: Vec::with_capacity(AUX_CAPTURE),
            lzf: None,
            lzf_compressed: 0,
            pos: 0,
            crc: CRC64.digest(),
            crc_end: None,
            stored_crc: None,
            valkey: false,
            version: 0,
            db: 0,
            db_stats: BTreeMap::new(),
            resize_keys: 0,
            types: Default::default(),
            encodings: BTreeMap::new(),
            key: None,
            pending_expire: false,
            ql_plain: false,
            aux_key: String::new(),
            top_n,
            heap: BinaryHeap::new(),
            summary: Summary {
                checksum: "not_reached",
                ..Summary::default()
            },
            failed: false,
            error_at: None,
        }
    }

    /// Returns true if and only if the parser reached the end of the RDB or gave up; later
    /// bytes (an EOF mark, the replication stream) are not its business.
    pub fn is_finished(&self) -> bool {
        self.failed || self.summary.complete
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The analysis so far.
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        s.bytes = self.pos;
        s.dbs = self.db_stats.clone();
        s.encodings = self.encodings.clone();
        s.types = TYPES
            .iter()
            .zip(&self.types)
            .filter(|(_, t)| t.keys > 0)
            .map(|(name, t)| (*name, t.clone()))
            .collect();
        let mut big: Vec<BigKey> = self.heap.iter().map(|Reverse(k)| k.clone()).collect();
        big.sort_by(|a, b| b.cmp(a));
        s.biggest = big;
        s
    }

    /// Ends the analysis: an RDB that stopped before its end is reported as truncated.
    pub fn finish(&mut self) -> Summary {
        if !self.is_finished() {
            let what = match self.stack.last() {
                Some(Magic) => "the header",
                Some(TopLevel) => "the key list (no EOF opcode yet)",
                Some(Checksum) => "the checksum",
                Some(Body { .. }) | Some(Lzf { .. }) | Some(Str(_)) => "a string",
                Some(Len(_)) => "a length",
                _ => "a value",
            };
            self.fail(format!("truncated: the RDB ends in the middle of {what}"));
        }
        self.summary()
    }

    /// Gives up: bytes are missing (a lost segment, an analysis that fell behind).
    pub fn abandon(&mut self, why: &str) {
        self.fail(why.to_string());
    }

    fn fail(&mut self, message: String) {
        self.fail_at(self.pos, message);
    }

    fn fail_at(&mut self, offset: u64, message: String) {
        if !self.is_finished() {
            self.failed = true;
            // What was analysed ends where the error is, however the input was split.
            self.pos = offset;
            self.summary.error = Some(Error { offset, message });
        }
    }

    /// Consumes a chunk of the RDB. Bytes after its end are ignored.
    pub fn feed(&mut self, data: &[u8]) {
        if self.is_finished() {
            return;
        }
        let start = self.pos;
        let mut i = 0;
        while i < data.len() && !self.is_finished() {
            // An error is reported where the element being read begins (part of it may have
            // come in earlier chunks, in `carry`), so the offset never depends on the split.
            let element = self.pos - self.carry.len() as u64;
            match self.step(&data[i..]) {
                Ok(n) => {
                    i += n;
                    self.pos += n as u64;
                }
                Err(msg) => {
                    let at = self.error_at.take().unwrap_or(element);
                    self.fail_at(at, msg);
                }
            }
        }
        // Hash what was consumed, up to and including the EOF opcode.
        let end = self.crc_end.unwrap_or(self.pos).min(self.pos);
        if end > start {
            self.crc.update(&data[..(end - start) as usize]);
        }
        if let Some(stored) = self.stored_crc.take() {
            let computed = self.crc.clone().finalize();
            self.summary.checksum = if stored == 0 {
                "absent"
            } else if stored == computed {
                "ok"
            } else {
                self.summary.error = Some(Error {
                    offset: self.pos - 8,
                    message: format!(
                        "checksum mismatch: stored {stored:016x}, computed {computed:016x}"
                    ),
                });
                "mismatch"
            };
        }
    }

    /// Reads `n` (≤ 16) bytes, carrying a partial read across chunks.
    fn fixed(&mut self, input: &[u8], n: usize) -> (usize, Option<[u8; 16]>) {
        let mut out = [0u8; 16];
        if self.carry.is_empty() && input.len() >= n {
            out[..n].copy_from_slice(&input[..n]);
            return (n, Some(out));
        }
        let take = (n - self.carry.len()).min(input.len());
        self.carry.extend_from_slice(&input[..take]);
        if self.carry.len() < n {
            return (take, None);
        }
        out[..n].copy_from_slice(&self.carry);
        self.carry.clear();
        (take, Some(out))
    }

    /// Reads a length encoding (`Ok((consumed, None))` while it is incomplete).
    fn length(&mut self, input: &[u8]) -> Result<(usize, Option<Length>), String> {
        let first = self.carry.first().copied().unwrap_or(input[0]);
        let need = match first >> 6 {
            0 | 3 => 1,
            1 => 2,
            _ if first == 0x80 => 5,
            _ if first == 0x81 => 9,
            _ => return Err(format!("unknown length encoding 0x{first:02x}")),
        };
        let (n, bytes) = self.fixed(input, need);
        let Some(b) = bytes else { return Ok((n, None)) };
        let v = match need {
            1 if first >> 6 == 3 => return Ok((n, Some(Length::Encoded(first & 0x3f)))),
            1 => (first & 0x3f) as u64,
            2 => (((first & 0x3f) as u64) << 8) | b[1] as u64,
            5 => u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as u64,
            _ => u64::from_be_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]]),
        };
        Ok((n, Some(Length::Value(v))))
    }

    fn push_body(&mut self, ops: &[Op]) {
        self.stack.extend(ops.iter().rev());
    }

    /// Executes (part of) the op on top of the stack; returns the bytes consumed.
    fn step(&mut self, input: &[u8]) -> Result<usize, String> {
        let op = self.stack.pop().ok_or("internal: empty op stack")?;
        match op {
            Done => {
                self.summary.complete = true;
                Ok(0)
            }
            Magic => {
                let (n, b) = self.fixed(input, 9);
                let Some(b) = b else {
                    self.stack.push(Magic);
                    return Ok(n);
                };
                self.magic(&b[..9])?;
                Ok(n)
            }
            TopLevel => {
                self.top_level(input[0])?;
                Ok(1)
            }
            Len(then) => {
                let (n, v) = self.length(input)?;
                match v {
                    None => self.stack.push(Len(then)),
                    Some(Length::Value(v)) => self.then(then, v)?,
                    Some(Length::Encoded(enc)) => {
                        return Err(format!("expected a length, found string encoding {enc}"))
                    }
                }
                Ok(n)
            }
            Str(purpose) => {
                let (n, v) = self.length(input)?;
                let purpose = match purpose {
                    Purpose::QuicklistNode if self.ql_plain => Purpose::StringValue,
                    Purpose::QuicklistNode => Purpose::Container(Container::Listpack { per: 1 }),
                    p => p,
                };
                match v {
                    None => self.stack.push(Str(purpose)),
                    Some(Length::Value(len)) => self.begin_body(len, purpose, false)?,
                    Some(Length::Encoded(enc @ 0..=2)) => {
                        self.begin_body(1 << enc, purpose, true)?
                    }
                    Some(Length::Encoded(3)) => {
                        self.stack.push(Len(Then::LzfUncompressed(purpose)));
                        self.stack.push(Len(Then::LzfCompressed(purpose)));
                    }
                    Some(Length::Encoded(enc)) => {
                        return Err(format!("unknown string encoding {enc}"))
                    }
                }
                Ok(n)
            }
            Skip(k) => {
                let (n, b) = self.fixed(input, k as usize);
                if b.is_none() {
                    self.stack.push(Skip(k));
                }
                Ok(n)
            }
            Expire(ms) => {
                let (n, b) = self.fixed(input, if ms { 8 } else { 4 });
                match b {
                    None => self.stack.push(Expire(ms)),
                    Some(_) => self.pending_expire = true,
                }
                Ok(n)
            }
            LegacyDouble => {
                let (n, b) = self.fixed(input, 1);
                match b {
                    None => self.stack.push(LegacyDouble),
                    Some(b) if b[0] < 253 => self.skip_bytes(b[0] as u64),
                    Some(_) => {}
                }
                Ok(n)
            }
            EndKey => {
                self.end_key();
                Ok(0)
            }
            Checksum => {
                let (n, b) = self.fixed(input, 8);
                match b {
                    None => self.stack.push(Checksum),
                    Some(b) => {
                        let mut le = [0u8; 8];
                        le.copy_from_slice(&b[..8]);
                        self.stored_crc = Some(u64::from_le_bytes(le));
                        self.summary.complete = true;
                    }
                }
                Ok(n)
            }
            Repeat { left, body } => {
                if left > 0 {
                    self.stack.push(Repeat {
                        left: left - 1,
                        body,
                    });
                    self.push_body(body);
                }
                Ok(0)
            }
            Body { left, purpose, int } => {
                let take = left.min(input.len() as u64) as usize;
                let keep = purpose.keep().saturating_sub(self.capture.len()).min(take);
                self.capture.extend_from_slice(&input[..keep]);
                if left > take as u64 {
                    self.stack.push(Body {
                        left: left - take as u64,
                        purpose,
                        int,
                    });
                } else {
                    self.error_at = Some(self.pos + take as u64);
                    self.string_done(purpose, int)?;
                    self.error_at = None;
                }
                Ok(take)
            }
            Lzf { left, purpose } => {
                let take = left.min(input.len() as u64) as usize;
                if let Some(lzf) = &mut self.lzf {
                    if let Err(bad) = lzf.feed(&input[..take]) {
                        self.error_at = Some(self.pos + bad as u64);
                        return Err("LZF-compressed string is corrupt".into());
                    }
                }
                if left > take as u64 {
                    self.stack.push(Lzf {
                        left: left - take as u64,
                        purpose,
                    });
                } else {
                    if let Some(lzf) = self.lzf.take() {
                        self.capture = lzf.out;
                    }
                    self.error_at = Some(self.pos + take as u64);
                    self.string_done(purpose, false)?;
                    self.error_at = None;
                }
                Ok(take)
            }
        }
    }

    /// Skips `n` bytes with no interest in them (streamed, any size).
    fn skip_bytes(&mut self, n: u64) {
        if n > 0 {
            self.stack.push(Body {
                left: n,
                purpose: Purpose::Skip,
                int: false,
            });
        }
    }

    fn begin_body(&mut self, len: u64, purpose: Purpose, int: bool) -> Result<(), String> {
        self.capture.clear();
        if len == 0 {
            return self.string_done(purpose, int);
        }
        self.stack.push(Body {
            left: len,
            purpose,
            int,
        });
        Ok(())
    }

    fn magic(&mut self, b: &[u8]) -> Result<(), String> {
        let (magic, digits) = if b.starts_with(b"REDIS") {
            ("REDIS", &b[5..9])
        } else if b.starts_with(b"VALKEY") {
            ("VALKEY", &b[6..9])
        } else {
            return Err(format!(
                "not an RDB: it starts with \"{}\" instead of REDIS or VALKEY",
                printable(b, 9)
            ));
        };
        let version: u32 = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("bad RDB version \"{}\"", printable(digits, 4)))?;
        self.valkey = magic == "VALKEY";
        self.version = version;
        self.summary.magic = Some(magic.into());
        self.summary.version = Some(version);
        if version == 0 || (magic == "REDIS" && version > 12) {
            return Err(format!(
                "RDB version {version} is not supported (this analyzer knows versions 1 to 12 and VALKEY 80)"
            ));
        }
        Ok(())
    }

    fn top_level(&mut self, t: u8) -> Result<(), String> {
        let ops: &[Op] = match t {
            0xFF => {
                self.crc_end = Some(self.pos + 1);
                if self.version >= 5 {
                    self.stack.push(Checksum);
                } else {
                    self.summary.checksum = "absent";
                    self.summary.complete = true;
                }
                return Ok(());
            }
            0xFE => &[Len(Then::SelectDb)],
            0xFD => &[Expire(false)],
            0xFC => &[Expire(true)],
            0xFB => &[Len(Then::ResizeKeys), Len(Then::ResizeExpires)],
            0xFA => &[Str(Purpose::AuxKey), Str(Purpose::AuxValue)],
            0xF9 => &[Skip(1)],
            0xF8 => &[Len(Then::Discard)],
            0xF7 => &[
                Len(Then::ModuleId),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::ModuleOpcode),
            ],
            0xF6 => return Err("pre-release (7.0-rc) function format is not supported".into()),
            0xF5 => &[Str(Purpose::Function)],
            0xF4 => &[Len(Then::Discard), Len(Then::Discard), Len(Then::Discard)],
            0xF3 if self.valkey => &[Str(Purpose::Skip), Len(Then::Repeat(SLOT_RANGE))],
            0xF3 => &[Len(Then::Repeat(KEY_META_CLASS))],
            _ => {
                let Some((encoding, kind)) = encoding(t, self.valkey) else {
                    return Err(format!("unknown value type or opcode 0x{t:02x}"));
                };
                self.key = Some(Key {
                    kind,
                    encoding,
                    name: Vec::new(),
                    start: self.pos,
                    elements: 0,
                    expires: std::mem::take(&mut self.pending_expire),
                });
                self.stack.push(TopLevel);
                self.stack.push(EndKey);
                self.value_ops(t);
                self.stack.push(Str(Purpose::Key));
                return Ok(());
            }
        };
        // The opcode's ops run first, then the next top-level item.
        self.stack.push(TopLevel);
        self.push_body(ops);
        Ok(())
    }

    fn value_ops(&mut self, t: u8) {
        let ops: &[Op] = match t {
            0 => &[Str(Purpose::StringValue)],
            1 | 2 => &[Len(Then::Elements(ONE_STR))],
            3 => &[Len(Then::Elements(ZSET_LEGACY))],
            4 => &[Len(Then::Elements(TWO_STR))],
            5 => &[Len(Then::Elements(ZSET_BINARY))],
            7 => &[Len(Then::ModuleId), Len(Then::ModuleOpcode)],
            9 => &[Str(Purpose::Container(Container::Zipmap))],
            10 => &[Str(Purpose::Container(Container::Ziplist { per: 1 }))],
            11 => &[Str(Purpose::Container(Container::Intset))],
            12 | 13 => &[Str(Purpose::Container(Container::Ziplist { per: 2 }))],
            14 => &[Len(Then::Repeat(QUICKLIST))],
            15 => &[
                Len(Then::Repeat(STREAM_LP)),
                Len(Then::StreamLength),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Groups(GROUP_V1)),
            ],
            19 | 21 => &[
                Len(Then::Repeat(STREAM_LP)),
                Len(Then::StreamLength),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Discard),
                Len(Then::Groups(if t == 19 { GROUP_V2 } else { GROUP_V3 })),
            ],
            16 | 17 => &[Str(Purpose::Container(Container::Listpack { per: 2 }))],
            18 => &[Len(Then::Repeat(QUICKLIST2))],
            20 => &[Str(Purpose::Container(Container::Listpack { per: 1 }))],
            22 => &[Len(Then::Elements(VALKEY_HASH2))],
            24 => &[Skip(8), Len(Then::Elements(HASH_TTL))],
            25 => &[
                Skip(8),
                Str(Purpose::Container(Container::Listpack { per: 3 })),
            ],
            _ => &[],
        };
        self.push_body(ops);
    }

    fn then(&mut self, then: Then, v: u64) -> Result<(), String> {
        match then {
            Then::Discard => {}
            Then::SelectDb => {
                self.db = v;
                self.db_stats.entry(v).or_default();
            }
            Then::ResizeKeys => self.resize_keys = v,
            Then::ResizeExpires => {
                self.db_stats.entry(self.db).or_default().resize_hint = Some((self.resize_keys, v));
            }
            Then::Elements(body) => {
                if let Some(k) = &mut self.key {
                    k.elements = k.elements.saturating_add(v);
                }
                self.stack.push(Repeat { left: v, body });
            }
            Then::Repeat(body) => self.stack.push(Repeat { left: v, body }),
            Then::Groups(body) => {
                self.summary.stream_groups = self.summary.stream_groups.saturating_add(v);
                self.stack.push(Repeat { left: v, body });
            }
            Then::Consumers(body) => {
                self.summary.stream_consumers = self.summary.stream_consumers.saturating_add(v);
                self.stack.push(Repeat { left: v, body });
            }
            Then::StreamLength => {
                if let Some(k) = &mut self.key {
                    k.elements = k.elements.saturating_add(v);
                }
            }
            Then::QuicklistContainer => self.ql_plain = v == 1,
            Then::ModuleId => {
                let name = module_name(v);
                if !self.summary.modules.contains(&name) && self.summary.modules.len() < 64 {
                    self.summary.modules.push(name);
                }
            }
            Then::ModuleOpcode => match v {
                0 => {}
                1 | 2 => self.push_body(&[Len(Then::Discard), Len(Then::ModuleOpcode)]),
                3 => self.push_body(&[Skip(4), Len(Then::ModuleOpcode)]),
                4 => self.push_body(&[Skip(8), Len(Then::ModuleOpcode)]),
                5 => self.push_body(&[Str(Purpose::Skip), Len(Then::ModuleOpcode)]),
                op => return Err(format!("unknown module value opcode {op}")),
            },
            Then::LzfCompressed(_) => self.lzf_compressed = v,
            Then::LzfUncompressed(purpose) => {
                self.capture.clear();
                let keep = purpose.keep();
                self.lzf = (keep > 0).then(|| LzfPrefix::new(keep.min(v as usize)));
                if self.lzf_compressed == 0 {
                    return self.string_done(purpose, false);
                }
                self.stack.push(Lzf {
                    left: self.lzf_compressed,
                    purpose,
                });
            }
        }
        Ok(())
    }

    fn string_done(&mut self, purpose: Purpose, int: bool) -> Result<(), String> {
        let text = || -> String {
            if int {
                let mut b = [0u8; 8];
                let n = self.capture.len().min(8);
                b[..n].copy_from_slice(&self.capture[..n]);
                let v = match n {
                    1 => self.capture[0] as i8 as i64,
                    2 => i16::from_le_bytes([b[0], b[1]]) as i64,
                    _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
                };
                v.to_string()
            } else {
                printable(&self.capture, AUX_CAPTURE)
            }
        };
        match purpose {
            Purpose::Skip | Purpose::QuicklistNode => {}
            Purpose::StringValue => {
                if let Some(k) = &mut self.key {
                    k.elements += 1;
                }
            }
            Purpose::Key => {
                let name = if int {
                    text().into_bytes()
                } else {
                    std::mem::take(&mut self.capture)
                };
                if let Some(k) = &mut self.key {
                    k.name = name;
                }
            }
            Purpose::AuxKey => self.aux_key = text(),
            Purpose::AuxValue => {
                let key = std::mem::take(&mut self.aux_key);
                if self.summary.aux.len() < 64 {
                    self.summary.aux.insert(key, text());
                }
            }
            Purpose::Function => {
                let code = String::from_utf8_lossy(&self.capture);
                let name = code
                    .lines()
                    .next()
                    .and_then(|l| l.split("name=").nth(1))
                    .and_then(|n| n.split_whitespace().next())
                    .unwrap_or("?")
                    .to_string();
                self.summary.functions.push(name);
            }
            Purpose::Container(c) => {
                let h = &self.capture;
                let u16_at = |i: usize| {
                    h.get(i..i + 2)
                        .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
                };
                let count = match c {
                    Container::Ziplist { per } => {
                        u16_at(8).filter(|n| *n != 0xFFFF).map(|n| n / per)
                    }
                    Container::Listpack { per } => {
                        u16_at(4).filter(|n| *n != 0xFFFF).map(|n| n / per)
                    }
                    Container::Intset => h
                        .get(4..8)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
                    Container::Zipmap => h.first().filter(|n| **n < 254).map(|n| *n as u64),
                };
                match count {
                    Some(count) => {
                        if let Some(k) = &mut self.key {
                            k.elements = k.elements.saturating_add(count);
                        }
                    }
                    // 65535+ elements: the header says "unknown" (legal with raised limits).
                    None if h.len() >= 2 => self.summary.uncounted_containers += 1,
                    None => return Err("container blob too short for its header".into()),
                }
            }
        }
        Ok(())
    }

    fn end_key(&mut self) {
        let Some(key) = self.key.take() else { return };
        let bytes = self.pos.saturating_sub(key.start);
        let db = self.db_stats.entry(self.db).or_default();
        db.keys += 1;
        if key.expires {
            db.expires += 1;
        }
        let t = &mut self.types[key.kind];
        t.keys += 1;
        t.elements = t.elements.saturating_add(key.elements);
        t.bytes += bytes;
        *self.encodings.entry(key.encoding).or_default() += 1;
        let smallest = self.heap.peek().map_or(0, |Reverse(k)| k.bytes);
        if self.top_n > 0 && (self.heap.len() < self.top_n || bytes > smallest) {
            let big = BigKey {
                bytes,
                db: self.db,
                key: printable(&key.name, 64),
                kind: TYPES[key.kind],
                encoding: key.encoding,
                elements: key.elements,
            };
            self.heap.push(Reverse(big));
            if self.heap.len() > self.top_n {
                self.heap.pop();
            }
        }
    }
}

/// A module type's name from its 64-bit id: 9 characters of 6 bits each above a 10-bit
/// encoding version.
fn module_name(id: u64) -> String {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9)
        .map(|i| CHARS[((id >> (10 + 6 * (8 - i))) & 63) as usize] as char)
        .collect()
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: u64 = self.dbs.values().map(|d| d.keys).sum();
        let dbs: Vec<String> = self
            .dbs
            .iter()
            .map(|(n, d)| format!("db{n} {}", d.keys))
            .collect();
        write!(
            f,
            "{}{:04}: {keys} keys ({}), checksum {}",
            self.magic.as_deref().unwrap_or("?"),
            self.version.unwrap_or(0),
            dbs.join(", "),
            self.checksum
        )?;
        if let Some(e) = &self.error {
            write!(f, "; analysis stopped: {e}")?;
        }
        Ok(())
    }
}

impl Summary {
    /// The text report of `repl-sniff rdb`.
    pub fn tables(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "RDB {} version {}: {} bytes, checksum {}{}",
            self.magic.as_deref().unwrap_or("?"),
            self.version.map_or("?".into(), |v| v.to_string()),
            self.bytes,
            self.checksum,
            if self.complete { "" } else { " (incomplete)" }
        );
        if let Some(e) = &self.error {
            let _ = writeln!(o, "ERROR: {e}");
        }
        if !self.aux.is_empty() {
            let _ = writeln!(o, "\nAUX fields:");
            for (k, v) in &self.aux {
                let _ = writeln!(o, "  {k:<16} {v}");
            }
        }
        let _ = writeln!(
            o,
            "\n  {:>4} {:>12} {:>12} {:>18}",
            "db", "keys", "expires", "RESIZEDB hint"
        );
        for (n, d) in &self.dbs {
            let hint = d
                .resize_hint
                .map_or("-".into(), |(k, e)| format!("{k}/{e}"));
            let _ = writeln!(o, "  {n:>4} {:>12} {:>12} {hint:>18}", d.keys, d.expires);
        }
        let _ = writeln!(
            o,
            "\n  {:<8} {:>12} {:>14} {:>16}",
            "type", "keys", "elements", "bytes"
        );
        for (t, s) in &self.types {
            let _ = writeln!(
                o,
                "  {t:<8} {:>12} {:>14} {:>16}",
                s.keys, s.elements, s.bytes
            );
        }
        if !self.encodings.is_empty() {
            let enc: Vec<String> = self
                .encodings
                .iter()
                .map(|(e, n)| format!("{e} {n}"))
                .collect();
            let _ = writeln!(o, "\nencodings: {}", enc.join(", "));
        }
        if self.stream_groups > 0 {
            let _ = writeln!(
                o,
                "streams: {} consumer group(s), {} consumer(s)",
                self.stream_groups, self.stream_consumers
            );
        }
        if !self.functions.is_empty() {
            let _ = writeln!(o, "function libraries: {}", self.functions.join(", "));
        }
        if !self.modules.is_empty() {
            let _ = writeln!(o, "module types: {}", self.modules.join(", "));
        }
        if !self.biggest.is_empty() {
            let _ = writeln!(
                o,
                "\nbiggest keys:\n  {:>12} {:>4} {:<18} {:>10}  key",
                "bytes", "db", "encoding", "elements"
            );
            for k in &self.biggest {
                let _ = writeln!(
                    o,
                    "  {:>12} {:>4} {:<18} {:>10}  {}",
                    k.bytes, k.db, k.encoding, k.elements, k.key
                );
            }
        }
        o
    }
}

/// Analyses a whole RDB held in memory (tests, small files).
pub fn analyse(bytes: &[u8], top_n: usize) -> Summary {
    let mut p = Parser::new(top_n);
    p.feed(bytes);
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds RDB bytes for encodings that no server available to the tests writes.
    struct W(Vec<u8>);

    impl W {
        fn new(magic: &str) -> W {
            W(magic.as_bytes().to_vec())
        }
        fn op(&mut self, b: u8) -> &mut W {
            self.0.push(b);
            self
        }
        fn raw(&mut self, b: &[u8]) -> &mut W {
            self.0.extend_from_slice(b);
            self
        }
        fn len(&mut self, n: u64) -> &mut W {
            match n {
                0..=63 => self.0.push(n as u8),
                64..=16383 => self.0.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
                _ => {
                    self.0.push(0x81);
                    self.0.extend_from_slice(&n.to_be_bytes());
                }
            }
            self
        }
        fn str(&mut self, s: &[u8]) -> &mut W {
            self.len(s.len() as u64).raw(s)
        }
        fn db(&mut self, n: u64, keys: u64, expires: u64) -> &mut W {
            self.op(0xFE).len(n).op(0xFB).len(keys).len(expires)
        }
        fn finish(&mut self, with_crc: bool) -> Vec<u8> {
            self.0.push(0xFF);
            let crc = if with_crc { CRC64.checksum(&self.0) } else { 0 };
            self.0.extend_from_slice(&crc.to_le_bytes());
            std::mem::take(&mut self.0)
        }
    }

    /// A listpack blob whose header announces `n` elements.
    fn listpack(n: u16) -> Vec<u8> {
        let mut b = 7u32.to_le_bytes().to_vec();
        b.extend_from_slice(&n.to_le_bytes());
        b.push(0xFF);
        b
    }

    fn check(bytes: &[u8]) -> Summary {
        let whole = analyse(bytes, 10);
        // Byte by byte gives the same.
        let mut p = Parser::new(10);
        for b in bytes {
            p.feed(std::slice::from_ref(b));
        }
        assert_eq!(p.finish(), whole);
        whole
    }

    #[test]
    fn hash_field_ttl_types_24_and_25_count_their_fields() {
        let mut w = W::new("REDIS0012");
        w.db(0, 2, 0);
        w.op(24).str(b"h24").raw(&7u64.to_le_bytes()).len(2);
        w.len(0).str(b"f1").str(b"v1").len(5).str(b"f2").str(b"v2");
        w.op(25)
            .str(b"h25")
            .raw(&7u64.to_le_bytes())
            .str(&listpack(6));
        let s = check(&w.finish(true));
        assert_eq!((s.checksum, s.complete), ("ok", true));
        assert_eq!(
            s.types["hash"],
            TypeStats {
                keys: 2,
                elements: 4,
                bytes: s.types["hash"].bytes
            }
        );
        assert_eq!(s.encodings["hash_metadata"], 1);
        assert_eq!(s.encodings["hash_listpack_ex"], 1);
    }

    #[test]
    fn module_values_and_module_aux_are_skipped_via_their_opcode_stream() {
        let name = "ReJSON-RL";
        const CHARS: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut id = 0u64;
        for c in name.bytes() {
            id = (id << 6) | CHARS.iter().position(|x| *x == c).unwrap() as u64;
        }
        let id = (id << 10) | 3;
        let mut w = W::new("REDIS0009");
        w.op(0xF7).len(id).len(2).len(2).len(5).str(b"aux").len(0);
        w.db(0, 1, 0);
        w.op(7).str(b"doc").len(id);
        w.len(2)
            .len(300)
            .len(5)
            .str(b"{\"a\":1}")
            .len(4)
            .raw(&[0; 8]);
        w.len(3).raw(&[0; 4]).len(1).len(7).len(0);
        let s = check(&w.finish(true));
        assert_eq!(s.checksum, "ok");
        assert_eq!(s.modules, [name]);
        assert_eq!(s.types["module"].keys, 1);
    }

    #[test]
    fn valkey_magic_decides_what_type_22_is() {
        let mut w = W::new("VALKEY080");
        w.db(0, 1, 0);
        w.op(22)
            .str(b"h")
            .len(1)
            .str(b"f")
            .str(b"v")
            .raw(&(-1i64).to_le_bytes());
        let s = check(&w.finish(true));
        assert_eq!((s.magic.as_deref(), s.version), (Some("VALKEY"), Some(80)));
        assert_eq!(s.types["hash"].elements, 1);
        assert_eq!(s.encodings["hash_2"], 1);

        let mut w = W::new("REDIS0011");
        w.db(0, 1, 0).op(22).str(b"h");
        let s = analyse(&w.finish(true), 0);
        assert!(s
            .error
            .unwrap()
            .message
            .contains("unknown value type or opcode 0x16"));
    }

    #[test]
    fn old_encodings_and_lzf_containers_are_counted_from_their_headers() {
        let mut w = W::new("REDIS0006");
        w.db(0, 6, 0);
        // Plain list and legacy zset (text doubles; 253..255 are NaN/±inf with no text).
        w.op(1).str(b"l").len(2).str(b"a").str(b"b");
        w.op(3)
            .str(b"z")
            .len(3)
            .str(b"m1")
            .str(b"1.5")
            .str(b"m2")
            .op(254)
            .str(b"m3")
            .op(253);
        // Zipmap: first byte is the number of pairs.
        w.op(9).str(b"zm").str(&[2, 1, b'a', 1, 0, b'x', 0xFF]);
        // Ziplist: zlbytes, zltail, zllen = 3.
        let mut zl = 13u32.to_le_bytes().to_vec();
        zl.extend_from_slice(&10u32.to_le_bytes());
        zl.extend_from_slice(&3u16.to_le_bytes());
        zl.extend_from_slice(&[0, 0xFF]);
        w.op(10).str(b"zl").str(&zl);
        // An LZF-compressed listpack: a 6-byte literal (total 12, 7 elements), then a
        // 6-byte back-reference to it (length 6 → 4 << 5, distance 6 → offset 5).
        let compressed = [5, 12, 0, 0, 0, 7, 0, 0x80, 0x05];
        w.op(20).op(0xC0).raw(&[0xFB]); // integer-encoded key name: -5
        w.op(0xC3)
            .len(compressed.len() as u64)
            .len(12)
            .raw(&compressed);
        // A string value compressed with LZF, skipped without decoding.
        w.op(0)
            .str(b"lzfstr")
            .op(0xC3)
            .len(4)
            .len(40)
            .raw(&[2, b'a', b'b', b'c']);
        let s = check(&w.finish(true));
        assert_eq!(s.checksum, "ok", "{:?}", s.error);
        assert_eq!(s.types["hash"].elements, 2);
        assert_eq!(s.types["list"].elements, 2 + 3);
        assert_eq!(s.types["zset"].elements, 3);
        assert_eq!(s.types["set"].elements, 7);
        assert!(s.biggest.iter().any(|k| k.key == "-5"));
    }

    #[test]
    fn expires_idle_and_freq_attach_to_the_next_key_and_zero_checksum_is_absent() {
        let mut w = W::new("REDIS0010");
        w.db(3, 2, 1);
        w.op(0xFC)
            .raw(&1_900_000_000_000u64.to_le_bytes())
            .op(0xF8)
            .len(100)
            .op(0xF9)
            .op(5);
        w.op(0).str(b"k1").str(b"v");
        w.op(0).str(b"k2").str(b"v");
        w.op(0xF5)
            .str(b"#!lua name=lib1\nredis.register_function('f', function() end)");
        let s = check(&w.finish(false));
        assert_eq!(s.checksum, "absent");
        assert_eq!(
            s.dbs[&3],
            DbStats {
                keys: 2,
                expires: 1,
                resize_hint: Some((2, 1))
            }
        );
        assert_eq!(s.functions, ["lib1"]);
    }

    #[test]
    fn a_listpack_too_big_to_count_its_elements_is_noted_not_an_error() {
        let mut w = W::new("REDIS0011");
        w.db(0, 1, 0).op(20).str(b"s").str(&listpack(u16::MAX));
        let s = check(&w.finish(true));
        assert_eq!((s.checksum, s.uncounted_containers), ("ok", 1));
        assert_eq!(s.types["set"].keys, 1);
    }

    #[test]
    fn a_corrupt_lzf_back_reference_is_an_error_not_a_panic() {
        let mut w = W::new("REDIS0010");
        w.db(0, 1, 0).op(16).str(b"h");
        w.op(0xC3).len(3).len(12).raw(&[0xE0, 0x00, 0x40]);
        let s = analyse(&w.finish(true), 0);
        assert!(s.error.unwrap().message.contains("LZF"));
    }
}
