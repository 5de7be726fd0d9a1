//! The interpreter: runs the ops of `ops` over the input as it streams by.
//!
//! Every construct of the format is a sequence of ops on a stack (read a length, read a
//! string for some purpose, skip fixed bytes, repeat a body). String bodies stream through:
//! only a bounded prefix is kept when its content matters (key names for the top-N, AUX
//! values, the header of a listpack, ziplist or intset, which holds its element count; an
//! LZF-compressed container is decompressed only as far as that header). Lengths from the
//! input are only counted down. Memory is the op stack (bounded by the format's nesting)
//! plus a few hundred bytes of carry. Counts taken from the input saturate rather than
//! overflow: damaged input is reported, never a panic.

mod top_level;

use crc_fast::{CrcAlgorithm, Digest};

use super::census::Census;
use super::lzf::LzfPrefix;
use super::ops::*;
use super::summary::{self, Error, ErrorKind, Place, Summary};
use crate::protocol::handshake::printable;

/// The newest `REDIS` RDB version understood (Redis 8.8; protocol-next.md N1).
pub const MAX_VERSION: u32 = 14;

/// The streaming parser.
pub struct Parser {
    stack: Vec<Op>,
    carry: Vec<u8>,
    capture: Vec<u8>,
    lzf: Option<LzfPrefix>,
    lzf_compressed: u64,
    pos: u64,
    /// CRC-64/Redis (Jones) with carry-less multiplication where the CPU has it: the table
    /// version was a quarter of `repl-sniff rdb`'s time (issue 14).
    crc: Digest,
    /// Position just after the EOF opcode: where hashing stops.
    crc_end: Option<u64>,
    stored_crc: Option<u64>,
    valkey: bool,
    version: u32,
    census: Census,
    pending_expire: bool,
    ql_plain: bool,
    /// The element count of the ARRAY being read, until its flag is.
    array_count: u64,
    aux_key: String,
    /// An item other than an AUX field was reached: the header and its AUX fields are known.
    past_aux: bool,
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
            crc: Digest::new(CrcAlgorithm::Crc64Redis),
            crc_end: None,
            stored_crc: None,
            valkey: false,
            version: 0,
            census: Census::new(top_n),
            pending_expire: false,
            ql_plain: false,
            array_count: 0,
            aux_key: String::new(),
            past_aux: false,
            summary: Summary {
                checksum: summary::Checksum::NotReached,
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

    /// Returns true if and only if the parser read the whole RDB, checksum included.
    pub fn is_complete(&self) -> bool {
        self.summary.complete && !self.failed
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Keys read so far, and the keys announced by the `RESIZEDB` hints of the databases
    /// reached so far: the progress of an RDB whose length is not known (a diskless one).
    pub fn keys_so_far(&self) -> (u64, Option<u64>) {
        self.census.keys_so_far()
    }

    /// The header and its writer, once the leading AUX fields are read (or the analysis
    /// ended before them).
    pub fn header(&self) -> Option<crate::protocol::rdb::Header> {
        if !(self.past_aux || self.is_finished()) {
            return None;
        }
        let aux = &self.summary.aux;
        let written_by = (aux.get("valkey-ver").map(|v| format!("valkey {v}")))
            .or_else(|| aux.get("redis-ver").map(|v| format!("redis {v}")));
        Some(crate::protocol::rdb::Header {
            magic: self.summary.magic.clone()?,
            version: self.summary.version?,
            written_by,
        })
    }

    /// The analysis so far.
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        s.bytes = self.pos;
        self.census.fill(&mut s);
        s
    }

    /// Ends the analysis: an RDB that stopped before its end is reported as truncated.
    pub fn finish(&mut self) -> Summary {
        if !self.is_finished() {
            let place = match self.stack.last() {
                Some(Magic) => Place::Header,
                Some(TopLevel) => Place::KeyList,
                Some(Checksum) => Place::Checksum,
                Some(Body { .. }) | Some(Lzf { .. }) | Some(Str(_)) => Place::String,
                Some(Len(_)) => Place::Length,
                _ => Place::Value,
            };
            self.fail(ErrorKind::Truncated(place));
        }
        self.summary()
    }

    /// Gives up: `bytes` are missing (a lost segment, or, if `behind`, an analysis that fell
    /// behind).
    pub fn abandon(&mut self, bytes: u64, behind: bool) {
        self.fail(ErrorKind::Missing { bytes, behind });
    }

    fn fail(&mut self, kind: ErrorKind) {
        self.fail_at(self.pos, kind);
    }

    fn fail_at(&mut self, offset: u64, kind: ErrorKind) {
        if !self.is_finished() {
            self.failed = true;
            // What was analysed ends where the error is, however the input was split.
            self.pos = offset;
            self.summary.error = Some(Error { offset, kind });
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
            let computed = self.crc.finalize();
            self.summary.checksum = if stored == 0 {
                summary::Checksum::Absent
            } else if stored == computed {
                summary::Checksum::Ok
            } else {
                self.summary.error = Some(Error {
                    offset: self.pos - 8,
                    kind: ErrorKind::ChecksumMismatch { stored, computed },
                });
                summary::Checksum::Mismatch
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
    fn length(&mut self, input: &[u8]) -> Result<(usize, Option<Length>), ErrorKind> {
        let first = self.carry.first().copied().unwrap_or(input[0]);
        let need = match first >> 6 {
            0 | 3 => 1,
            1 => 2,
            _ if first == 0x80 => 5,
            _ if first == 0x81 => 9,
            _ => return Err(ErrorKind::LengthEncoding(first)),
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
    fn step(&mut self, input: &[u8]) -> Result<usize, ErrorKind> {
        let op = self.stack.pop().ok_or(ErrorKind::EmptyStack)?;
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
                    Some(Length::Encoded(enc)) => return Err(ErrorKind::EncodingNotLength(enc)),
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
                    Some(Length::Encoded(enc)) => return Err(ErrorKind::StringEncoding(enc)),
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
                self.census.end(self.pos);
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
                        return Err(ErrorKind::Lzf);
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

    fn begin_body(&mut self, len: u64, purpose: Purpose, int: bool) -> Result<(), ErrorKind> {
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

    fn then(&mut self, then: Then, v: u64) -> Result<(), ErrorKind> {
        match then {
            Then::Discard => {}
            Then::SelectDb => self.census.select_db(v),
            Then::ResizeKeys => self.census.resize_keys(v),
            Then::ResizeExpires => self.census.resize_expires(v),
            Then::Elements(body) => {
                self.census.elements(v);
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
                self.census.elements(v);
            }
            Then::QuicklistContainer => self.ql_plain = v == 1,
            Then::ModuleId => {
                let name = module_name(v);
                if !self.summary.modules.contains(&name) && self.summary.modules.len() < 64 {
                    self.summary.modules.push(name);
                }
            }
            Then::ModuleOpcode => {
                let ops = module_value_ops(v).ok_or(ErrorKind::ModuleOpcode(v))?;
                self.push_body(ops);
            }
            Then::OneElement => self.census.elements(1),
            Then::ArrayCount => {
                // The reader rejects an empty ARRAY: it is never saved.
                if v == 0 {
                    return Err(ErrorKind::BadArray);
                }
                self.census.elements(v);
                self.array_count = v;
            }
            Then::ArrayFlag => {
                let body = ARRAY_ELEMENT;
                self.stack.push(Repeat {
                    left: self.array_count,
                    body,
                });
                match v {
                    0 => {}
                    // The insert index, read before the elements.
                    1 => self.stack.push(Len(Then::Discard)),
                    _ => return Err(ErrorKind::BadArray),
                }
            }
            Then::ArrayTag => self.push_body(array_value_ops(v).ok_or(ErrorKind::BadArray)?),
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

    fn string_done(&mut self, purpose: Purpose, int: bool) -> Result<(), ErrorKind> {
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
            Purpose::StringValue => self.census.elements(1),
            Purpose::Key => {
                if int {
                    let name = text();
                    self.census.name(name.as_bytes());
                } else {
                    self.census.name(&self.capture);
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
            Purpose::Container(c) => match c.count(&self.capture) {
                Some(count) => self.census.elements(count),
                // 65535+ elements: the header says "unknown" (legal with raised limits).
                None if self.capture.len() >= 2 => self.summary.uncounted_containers += 1,
                None => return Err(ErrorKind::ShortContainer),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::rdb::{analyse, Checksum, DbStats, TypeStats};

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
            let crc = if with_crc {
                crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&self.0)
            } else {
                0
            };
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

    /// The fast CRC-64 (SIMD where the CPU has it) is the table-driven reference's, for every
    /// length around the SIMD block sizes and however the bytes are split.
    #[test]
    fn the_fast_crc_is_crc_64_redis() {
        let reference = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // The check value of the catalogue: CRC-64/REDIS of "123456789".
        let mut d = Digest::new(CrcAlgorithm::Crc64Redis);
        d.update(b"123456789");
        assert_eq!(d.finalize(), 0xe9c6_d914_c4b8_d9ca);
        for len in (0..300).chain([511, 512, 513, 1023, 1024, 4095, 4096, 5000]) {
            let want = reference.checksum(&data[..len]);
            for cut in [0, 1, len / 3, len.saturating_sub(1)] {
                let cut = cut.min(len);
                let mut d = Digest::new(CrcAlgorithm::Crc64Redis);
                d.update(&data[..cut]);
                d.update(&data[cut..len]);
                assert_eq!(d.finalize(), want, "len {len}, cut at {cut}");
            }
        }
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
        assert_eq!((s.checksum, s.complete), (Checksum::Ok, true));
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
        assert_eq!(s.checksum, Checksum::Ok);
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
        assert!(s.to_string().starts_with("VALKEY080: "), "{s}");
        assert_eq!(s.types["hash"].elements, 1);
        assert_eq!(s.encodings["hash_2"], 1);

        let mut w = W::new("REDIS0011");
        w.db(0, 1, 0).op(22).str(b"h");
        let s = analyse(&w.finish(true), 0);
        assert!(s
            .error
            .unwrap()
            .to_string()
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
        assert_eq!(s.checksum, Checksum::Ok, "{:?}", s.error);
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
        assert_eq!(s.checksum, Checksum::Absent);
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
        assert_eq!((s.checksum, s.uncounted_containers), (Checksum::Ok, 1));
        assert_eq!(s.types["set"].keys, 1);
    }

    #[test]
    fn a_corrupt_lzf_back_reference_is_an_error_not_a_panic() {
        let mut w = W::new("REDIS0010");
        w.db(0, 1, 0).op(16).str(b"h");
        w.op(0xC3).len(3).len(12).raw(&[0xE0, 0x00, 0x40]);
        let s = analyse(&w.finish(true), 0);
        assert!(s.error.unwrap().to_string().contains("LZF"));
    }

    // ----- RDB 13 and 14 (protocol-next.md N1–N3), built from the documented layouts ------

    /// A stream id as 16 raw bytes (big-endian ms then seq).
    fn id16(ms: u64, seq: u64) -> Vec<u8> {
        let mut b = ms.to_be_bytes().to_vec();
        b.extend_from_slice(&seq.to_be_bytes());
        b
    }

    /// A stream of 2 entries with one group (one pending entry, one consumer owning it), in
    /// the layout of type 26 (`nack` false) or 27 (`nack` true: one NACKed id in the group).
    fn stream_v4_v5(w: &mut W, key: &[u8], nack: bool) {
        w.op(if nack { 27 } else { 26 }).str(key);
        // One listpack: its master id, then the blob (not decoded: the length says how many).
        w.len(1).str(&id16(1, 0)).str(&listpack(12));
        w.len(2); // entries
        for _ in 0..7 {
            w.len(1); // last id, first id, max deleted id, entries added
        }
        w.len(1); // groups
        w.str(b"g1").len(1).len(1).len(2); // name, last id ms/seq, entries read
        w.len(1).raw(&id16(1, 0)).raw(&[0; 8]).len(1); // global PEL: id, delivery time, count
        w.len(1).str(b"c1").raw(&[0; 8]).raw(&[0; 8]); // consumer: name, seen, active
        w.len(1).raw(&id16(1, 0)); // its PEL
        if nack {
            w.len(1).raw(&id16(1, 1)); // NACK zone
        }
        // IDMP trailer: duration, max entries, one producer with one iid, then the counters.
        w.len(100)
            .len(100)
            .len(1)
            .str(b"p1")
            .len(1)
            .str(b"iid-1")
            .len(1)
            .len(0);
        w.len(1).len(0);
    }

    #[test]
    fn a_valkey_slot_import_is_counted_and_not_taken_for_key_metadata() {
        // SLOT_IMPORT: a 40-byte job name, then n ranges of (start, end) slots.
        let mut w = W::new("VALKEY080");
        w.op(0xF3)
            .str(&[b'a'; 40])
            .len(2)
            .len(0)
            .len(1000)
            .len(5000)
            .len(5460);
        w.db(0, 1, 0).op(0).str(b"k").str(b"v");
        let s = check(&w.finish(true));
        assert_eq!((s.slot_imports, s.key_meta), (1, 0));
        assert_eq!(s.dbs[&0].keys, 1);
        assert!(s.complete);
    }

    #[test]
    fn rdb_13_key_metadata_and_type_26_streams_are_counted() {
        let mut w = W::new("REDIS0013");
        w.op(0xFA).str(b"redis-ver").str(b"8.6.0");
        w.db(0, 2, 0);
        // N2.2's example: class KMT1, version 1, ALLOW_IGNORE, one UINT 42; then the key.
        w.raw(&[0xF3, 0x01, 0x09, 0xF5, 0xC4, 0x28, 0x02, 0x2A, 0x00]);
        w.op(0).str(b"with-meta").str(b"v");
        stream_v4_v5(&mut w, b"s", false);
        let s = check(&w.finish(true));
        assert_eq!(
            (s.checksum, s.complete, s.version),
            (Checksum::Ok, true, Some(13))
        );
        assert_eq!(s.key_meta, 1);
        assert_eq!(s.dbs[&0].keys, 2, "KEY_META is not a key");
        assert_eq!(s.types["string"].keys, 1);
        assert_eq!((s.types["stream"].keys, s.types["stream"].elements), (1, 2));
        assert_eq!((s.stream_groups, s.stream_consumers), (1, 1));
        assert_eq!(s.encodings["stream_listpacks_4"], 1);
    }

    /// Every value type RDB 14 adds, one key each (and ARRAY with and without an insert index).
    fn rdb_14() -> W {
        let mut w = W::new("REDIS0014");
        w.op(0xFA).str(b"redis-ver").str(b"8.8.0");
        w.db(0, 4, 1);
        stream_v4_v5(&mut w, b"s", true);
        // ARRAY, no insert index: one element of each tag (SDS, INT, FLOAT, SMALLSTR).
        w.op(28).str(b"arr").len(4).len(0);
        w.len(0).len(0).str(b"hello");
        w.len(5).len(1).raw(&(-7i64).to_le_bytes());
        w.len(9).len(2).raw(&1.5f64.to_le_bytes());
        w.len(10).len(3).str(b"abc");
        // ARRAY with an insert index (7), one INT element there.
        w.op(28).str(b"ring").len(1).len(1).len(7);
        w.len(7).len(1).raw(&42i64.to_le_bytes());
        // GCRA (29): an expire, then the arrival time in µs as a 64-bit length.
        w.op(0xFC).raw(&1_800_000_000_000u64.to_le_bytes());
        w.op(29)
            .str(b"limiter")
            .raw(&[0x81, 0x00, 0x06, 0x52, 0xE6, 0x8B, 0xB3, 0x40, 0x00]);
        w
    }

    #[test]
    fn rdb_14_streams_arrays_and_gcra_are_counted() {
        let s = check(&rdb_14().finish(true));
        assert_eq!(
            (s.checksum, s.complete, s.version),
            (Checksum::Ok, true, Some(14))
        );
        assert_eq!(s.error, None);
        assert_eq!((s.dbs[&0].keys, s.dbs[&0].expires), (4, 1));
        assert_eq!((s.types["stream"].keys, s.types["stream"].elements), (1, 2));
        assert_eq!(s.encodings["stream_listpacks_5"], 1);
        assert_eq!((s.types["array"].keys, s.types["array"].elements), (2, 5));
        assert_eq!((s.types["gcra"].keys, s.types["gcra"].elements), (1, 1));
    }

    #[test]
    fn an_rdb_14_without_checksum_reports_it_absent() {
        // rdb-no-checksum: the master's diskless child leaves the CRC at 0 (N5.1).
        let s = check(&rdb_14().finish(false));
        assert_eq!((s.checksum, s.complete), (Checksum::Absent, true));
        assert_eq!(s.error, None);
    }

    #[test]
    fn an_rdb_14_cut_at_any_byte_is_reported_truncated() {
        let whole = rdb_14().finish(true);
        for cut in 0..whole.len() {
            let s = analyse(&whole[..cut], 0);
            assert!(!s.complete, "cut at {cut}");
            let e = s
                .error
                .unwrap_or_else(|| panic!("no error when cut at {cut}"));
            assert!(
                matches!(e.kind, ErrorKind::Truncated(_)),
                "cut at {cut}: {e}"
            );
        }
    }

    #[test]
    fn newer_versions_and_broken_arrays_stop_the_analysis_with_a_reason() {
        let s = analyse(&W::new("REDIS0015").finish(true), 0);
        assert_eq!(s.error.unwrap().kind, ErrorKind::UnsupportedVersion(15));
        let mut w = W::new("REDIS0014");
        w.db(0, 1, 0).op(28).str(b"arr").len(1).len(0).len(0).len(9);
        let e = analyse(&w.finish(true), 0).error.unwrap();
        assert_eq!(e.kind, ErrorKind::BadArray, "tag 9");
        let mut w = W::new("REDIS0014");
        w.db(0, 1, 0).op(30).str(b"k");
        let e = analyse(&w.finish(true), 0).error.unwrap();
        assert_eq!(e.kind, ErrorKind::UnknownType(30));
    }
}
