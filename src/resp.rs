//! Streaming parser for the commands that cross a replication link: RESP arrays of bulk
//! strings (`*N\r\n$len\r\narg\r\n…`), inline commands (`SYNC\r\n`), and bare `\n` keep-alives.
//!
//! The parser is push-based and resumable: it is handed whatever bytes arrived, consumes what
//! it can, and keeps only a bounded header-line carry between calls. Argument bodies are never
//! buffered: the first [`MAX_CAPTURED_ARGS`] arguments are copied up to [`CAPTURE_BYTES`] in
//! total (enough for command names, offsets, replication ids, `REPLCONF` options) and the rest
//! is skipped by count, so a 512 MB value passes in constant memory. Lengths read from the wire
//! are only ever counted down, never used to allocate.

use std::fmt;

use memchr::memchr;

/// How many leading arguments of a command are kept.
pub const MAX_CAPTURED_ARGS: usize = 16;
/// How many argument bytes, in total, are kept per command.
pub const CAPTURE_BYTES: usize = 384;

/// Bounds on what the parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest inline command line (Redis: `PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline: usize,
    /// Longest `*N` / `$N` header line.
    pub max_header: usize,
    /// Largest argument count accepted in a `*N` header.
    pub max_argc: u64,
    /// Largest bulk length accepted in a `$N` header (the master's stream is not bounded by
    /// `proto-max-bulk-len`, so this is only a sanity bound).
    pub max_bulk: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inline: 64 * 1024,
            max_header: 32,
            max_argc: i32::MAX as u64,
            max_bulk: 1 << 48,
        }
    }
}

/// Why the bytes are not a command stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A header or inline line grew past its limit without a newline.
    #[error("line longer than {limit} bytes without a newline")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// `*` followed by something that is not a count.
    #[error("invalid multibulk length")]
    BadArrayLength,
    /// `$` followed by something that is not a length.
    #[error("invalid bulk length")]
    BadBulkLength,
    /// An array element that does not start with `$`.
    #[error("expected '$', got {}", Printable(*.0))]
    ExpectedBulk(u8),
    /// A bulk string not followed by `\r\n`.
    #[error("bulk string not terminated by CRLF")]
    ExpectedCrlf,
    /// A command that is not a RESP array where only arrays may appear (the master's stream).
    #[error("expected '*' (a RESP array), got {}", Printable(*.0))]
    ExpectedArray(u8),
}

/// Shows one byte the way a person wants to read it in an error message.
pub(crate) struct Printable(pub(crate) u8);

impl fmt::Display for Printable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b @ 0x21..=0x7e => write!(f, "'{}'", b as char),
            b => write!(f, "byte 0x{b:02x}"),
        }
    }
}

/// One captured argument.
#[derive(Debug, Clone, Copy)]
pub struct Arg<'a> {
    /// The captured bytes (a prefix of the argument if it was long).
    pub bytes: &'a [u8],
    /// The argument's real length on the wire.
    pub len: u64,
}

impl Arg<'_> {
    /// Returns true if and only if `bytes` holds the whole argument.
    pub fn is_complete(&self) -> bool {
        self.bytes.len() as u64 == self.len
    }

    /// The argument as UTF-8 text, if it is complete and valid.
    pub fn as_str(&self) -> Option<&str> {
        if self.is_complete() {
            std::str::from_utf8(self.bytes).ok()
        } else {
            None
        }
    }

    /// The argument as a decimal integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_str()?.parse().ok()
    }

    /// Returns true if and only if the argument equals `word`, ignoring ASCII case.
    pub fn eq_ignore_case(&self, word: &str) -> bool {
        self.is_complete() && self.bytes.eq_ignore_ascii_case(word.as_bytes())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u16,
    captured: u16,
    len: u64,
}

/// A complete command, with its leading arguments captured.
///
/// Fixed-size and allocation-free, so that parsing millions of commands a second costs no
/// allocator traffic.
#[derive(Clone)]
pub struct Command {
    argc: u64,
    wire_len: u64,
    inline: bool,
    nspans: u8,
    spans: [Span; MAX_CAPTURED_ARGS],
    used: u16,
    buf: [u8; CAPTURE_BYTES],
}

impl Default for Command {
    fn default() -> Self {
        Command {
            argc: 0,
            wire_len: 0,
            inline: false,
            nspans: 0,
            spans: [Span::default(); MAX_CAPTURED_ARGS],
            used: 0,
            buf: [0; CAPTURE_BYTES],
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args: Vec<_> = self
            .args()
            .map(|a| String::from_utf8_lossy(a.bytes))
            .collect();
        f.debug_struct("Command")
            .field("argc", &self.argc)
            .field("wire_len", &self.wire_len)
            .field("inline", &self.inline)
            .field("args", &args)
            .finish()
    }
}

impl Command {
    /// Number of arguments, the command name included.
    pub fn argc(&self) -> u64 {
        self.argc
    }

    /// Bytes the command occupied on the wire.
    pub fn wire_len(&self) -> u64 {
        self.wire_len
    }

    /// Returns true if and only if the command came in inline form (`SYNC\r\n`).
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// The `i`-th argument (0 is the command name), if it was captured.
    pub fn arg(&self, i: usize) -> Option<Arg<'_>> {
        if i >= self.nspans as usize {
            return None;
        }
        let s = self.spans[i];
        let start = s.start as usize;
        Some(Arg {
            bytes: &self.buf[start..start + s.captured as usize],
            len: s.len,
        })
    }

    /// The captured arguments, in order.
    pub fn args(&self) -> impl Iterator<Item = Arg<'_>> {
        (0..self.nspans as usize).filter_map(|i| self.arg(i))
    }

    /// The command name, upper-cased.
    pub fn name(&self) -> Name {
        self.arg(0).map(|a| Name::new(a.bytes)).unwrap_or_default()
    }

    fn reset(&mut self) {
        self.argc = 0;
        self.wire_len = 0;
        self.inline = false;
        self.nspans = 0;
        self.used = 0;
    }

    /// Starts capturing a new argument of `len` bytes; returns true if any of it will be kept.
    fn begin_arg(&mut self, len: u64) -> bool {
        if (self.nspans as usize) >= MAX_CAPTURED_ARGS {
            return false;
        }
        self.spans[self.nspans as usize] = Span {
            start: self.used,
            captured: 0,
            len,
        };
        self.nspans += 1;
        true
    }

    /// Appends bytes of the argument begun last, as far as the capture buffer allows.
    fn capture(&mut self, bytes: &[u8]) {
        let room = CAPTURE_BYTES - self.used as usize;
        let take = bytes.len().min(room);
        if take == 0 {
            return;
        }
        let at = self.used as usize;
        self.buf[at..at + take].copy_from_slice(&bytes[..take]);
        self.used += take as u16;
        self.spans[self.nspans as usize - 1].captured += take as u16;
    }
}

/// A command name: upper-cased ASCII, at most 23 bytes (longer names are cut), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name {
    len: u8,
    bytes: [u8; 23],
}

impl Name {
    /// Builds a name from raw bytes: upper-cased, non-printable bytes replaced by `?`.
    pub fn new(raw: &[u8]) -> Name {
        let mut n = Name::default();
        for (dst, &b) in n.bytes.iter_mut().zip(raw) {
            *dst = match b.to_ascii_uppercase() {
                c @ 0x21..=0x7e => c,
                _ => b'?',
            };
        }
        n.len = raw.len().min(23) as u8;
        n
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }

    /// Returns true if and only if the name is `word` (given in upper case).
    pub fn is(&self, word: &str) -> bool {
        self.as_str() == word
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What one call to [`Parser::advance`] completed.
#[derive(Debug, Clone)]
pub enum Item {
    /// A whole command.
    Command(Box<Command>),
    /// A bare `\n` (or an empty inline line): a keep-alive, not a command.
    KeepAlive,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At a command boundary.
    Start,
    /// Inside the `*N` line.
    ArrayHeader,
    /// Inside an inline command line.
    Inline,
    /// Expecting a `$len` line; `left` arguments still to come.
    BulkHeader { left: u64 },
    /// Inside a bulk body.
    BulkBody {
        left: u64,
        remaining: u64,
        keep: bool,
    },
    /// Expecting the `\r` (or, if `cr_seen`, the `\n`) that ends a bulk body.
    BulkEnd { left: u64, cr_seen: bool },
}

/// The resumable parser. One per direction of a link.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    allow_inline: bool,
    state: State,
    /// Carry for a header or inline line split across calls; bounded by the limits.
    line: Vec<u8>,
    cur: Box<Command>,
}

impl Parser {
    /// A parser for commands a client sends: RESP arrays, inline commands and keep-alives.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            allow_inline: true,
            state: State::Start,
            line: Vec::new(),
            cur: Box::default(),
        }
    }

    /// A parser for a master's replication stream: only RESP arrays (the replica treats any
    /// inline line from its master as a desync; a bare `\n` is still a keep-alive).
    pub fn for_master_stream(limits: Limits) -> Parser {
        Parser {
            allow_inline: false,
            ..Parser::new(limits)
        }
    }

    /// Returns true if and only if the parser is between commands.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Start) && self.line.is_empty()
    }

    /// The name of the command being parsed, once its first argument is complete; `None`
    /// between commands and while the name itself is still arriving.
    pub fn partial_name(&self) -> Option<Name> {
        let past_name = match self.state {
            State::BulkHeader { .. } => self.cur.nspans >= 1,
            State::BulkBody { .. } | State::BulkEnd { .. } => self.cur.nspans >= 2,
            _ => false,
        };
        past_name.then(|| self.cur.name())
    }

    /// Consumes bytes from `input` until one item is complete or the input is exhausted.
    ///
    /// Returns how many bytes were consumed, and the item if one was completed. On error the
    /// consumed count says where the offending byte is (it is the next one); the parser must
    /// not be used again after an error.
    pub fn advance(&mut self, input: &[u8]) -> (usize, Result<Option<Item>, Error>) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Start => {
                    let Some(&first) = rest.first() else {
                        return (pos, Ok(None));
                    };
                    self.cur.reset();
                    match first {
                        b'\n' => {
                            return (pos + 1, Ok(Some(Item::KeepAlive)));
                        }
                        b'*' => self.state = State::ArrayHeader,
                        _ if self.allow_inline => {
                            self.state = State::Inline;
                            self.cur.inline = true;
                        }
                        other => return (pos, Err(Error::ExpectedArray(other))),
                    }
                }
                State::ArrayHeader => {
                    let (n, line) = match self.take_line(rest, self.limits.max_header) {
                        Ok(Some(x)) => x,
                        Ok(None) => return (input.len(), Ok(None)),
                        Err(e) => return (pos, Err(e)),
                    };
                    pos += n;
                    let count = parse_len(&line[1..]);
                    self.recycle(line);
                    match count {
                        Some(c) if c <= 0 => {
                            // `*0` / `*-1`: Redis skips these without running anything.
                            self.state = State::Start;
                        }
                        Some(c) if (c as u64) <= self.limits.max_argc => {
                            self.cur.argc = c as u64;
                            self.state = State::BulkHeader { left: c as u64 };
                        }
                        _ => return (pos - n, Err(Error::BadArrayLength)),
                    }
                }
                State::Inline => {
                    let (n, line) = match self.take_line(rest, self.limits.max_inline) {
                        Ok(Some(x)) => x,
                        Ok(None) => return (input.len(), Ok(None)),
                        Err(e) => return (pos, Err(e)),
                    };
                    pos += n;
                    let mut argc = 0;
                    for word in line
                        .split(|b| *b == b' ' || *b == b'\t')
                        .filter(|w| !w.is_empty())
                    {
                        argc += 1;
                        if self.cur.begin_arg(word.len() as u64) {
                            self.cur.capture(word);
                        }
                    }
                    self.recycle(line);
                    self.state = State::Start;
                    self.cur.argc = argc;
                    return if argc == 0 {
                        (pos, Ok(Some(Item::KeepAlive)))
                    } else {
                        (pos, Ok(Some(self.finish())))
                    };
                }
                State::BulkHeader { left } => {
                    if left == 0 {
                        self.state = State::Start;
                        return (pos, Ok(Some(self.finish())));
                    }
                    let Some(&first) = rest.first() else {
                        return (pos, Ok(None));
                    };
                    if self.line.is_empty() && first != b'$' {
                        return (pos, Err(Error::ExpectedBulk(first)));
                    }
                    let (n, line) = match self.take_line(rest, self.limits.max_header) {
                        Ok(Some(x)) => x,
                        Ok(None) => return (input.len(), Ok(None)),
                        Err(e) => return (pos, Err(e)),
                    };
                    pos += n;
                    let len = parse_len(&line[1..]);
                    self.recycle(line);
                    match len {
                        Some(l) if l >= 0 && (l as u64) <= self.limits.max_bulk => {
                            let keep = self.cur.begin_arg(l as u64);
                            self.state = State::BulkBody {
                                left: left - 1,
                                remaining: l as u64,
                                keep,
                            };
                        }
                        _ => return (pos - n, Err(Error::BadBulkLength)),
                    }
                }
                State::BulkBody {
                    left,
                    remaining,
                    keep,
                } => {
                    let take = (remaining.min(rest.len() as u64)) as usize;
                    if keep {
                        self.cur.capture(&rest[..take]);
                    }
                    pos += take;
                    self.cur.wire_len += take as u64;
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.state = State::BulkBody {
                            left,
                            remaining,
                            keep,
                        };
                        return (pos, Ok(None));
                    }
                    self.state = State::BulkEnd {
                        left,
                        cr_seen: false,
                    };
                }
                State::BulkEnd { left, cr_seen } => {
                    let Some(&b) = rest.first() else {
                        return (pos, Ok(None));
                    };
                    let expected = if cr_seen { b'\n' } else { b'\r' };
                    if b != expected {
                        return (pos, Err(Error::ExpectedCrlf));
                    }
                    pos += 1;
                    self.cur.wire_len += 1;
                    self.state = if cr_seen {
                        State::BulkHeader { left }
                    } else {
                        State::BulkEnd {
                            left,
                            cr_seen: true,
                        }
                    };
                }
            }
        }
    }

    fn finish(&mut self) -> Item {
        Item::Command(std::mem::take(&mut self.cur))
    }

    /// Returns a line (without its `\r\n`) once a `\n` is found, with the bytes of `input`
    /// consumed; carries a partial line over to the next call, up to `max` bytes.
    fn take_line(&mut self, input: &[u8], max: usize) -> Result<Option<(usize, Vec<u8>)>, Error> {
        match memchr(b'\n', input) {
            Some(i) => {
                if self.line.len() + i > max {
                    return Err(Error::LineTooLong { limit: max });
                }
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..i]);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.cur.wire_len += i as u64 + 1;
                Ok(Some((i + 1, line)))
            }
            None => {
                if self.line.len() + input.len() > max {
                    return Err(Error::LineTooLong { limit: max });
                }
                self.line.extend_from_slice(input);
                self.cur.wire_len += input.len() as u64;
                Ok(None)
            }
        }
    }

    /// Gives a line buffer back so the carry keeps its allocation.
    fn recycle(&mut self, mut line: Vec<u8>) {
        line.clear();
        self.line = line;
    }
}

/// Finds where a RESP array most likely starts in bytes whose framing is unknown (a capture
/// that begins mid-connection): a `*<count>\r\n$` right after a newline, or at `input[0]`
/// if `at_start` says a command may begin there.
pub fn find_array_start(input: &[u8], at_start: bool) -> Option<usize> {
    let looks_like_array = |rest: &[u8]| {
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        digits > 0 && rest[1 + digits..].starts_with(b"\r\n$")
    };
    if at_start && input.first() == Some(&b'*') && looks_like_array(input) {
        return Some(0);
    }
    memchr::memmem::find_iter(input, b"\n*")
        .map(|i| i + 1)
        .find(|&i| looks_like_array(&input[i..]))
}

/// Parses a RESP length: an optional `-` and decimal digits, nothing else.
fn parse_len(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as i64;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(p: &mut Parser, mut input: &[u8]) -> Result<Vec<Item>, Error> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (n, r) = p.advance(input);
            input = &input[n..];
            if let Some(item) = r? {
                out.push(item);
            }
        }
        Ok(out)
    }

    fn names(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Command(c) => c.name().to_string(),
                Item::KeepAlive => "\\n".into(),
            })
            .collect()
    }

    // From the 7.0.15 full-disk capture: the first stream segment after the RDB.
    const STREAM: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$6\r\nw1:k:0\r\n$7\r\nvalue-0\r\n*1\r\n$4\r\nping\r\n";

    #[test]
    fn parses_a_master_stream_and_counts_wire_bytes() {
        let mut p = Parser::for_master_stream(Limits::default());
        let items = parse_all(&mut p, STREAM).unwrap();
        assert_eq!(names(&items), ["SELECT", "SET", "PING"]);
        let lens: Vec<u64> = items
            .iter()
            .map(|i| match i {
                Item::Command(c) => c.wire_len(),
                _ => 0,
            })
            .collect();
        assert_eq!(lens, [23, 38, 14]);
        assert_eq!(lens.iter().sum::<u64>(), STREAM.len() as u64);
    }

    #[test]
    fn any_split_gives_the_same_commands() {
        let whole = {
            let mut p = Parser::for_master_stream(Limits::default());
            format!("{:?}", parse_all(&mut p, STREAM).unwrap())
        };
        for split in 1..STREAM.len() {
            let mut p = Parser::for_master_stream(Limits::default());
            let mut items = parse_all(&mut p, &STREAM[..split]).unwrap();
            items.extend(parse_all(&mut p, &STREAM[split..]).unwrap());
            assert_eq!(format!("{items:?}"), whole, "split at {split}");
        }
    }

    #[test]
    fn inline_sync_and_keepalives_from_a_client() {
        let mut p = Parser::new(Limits::default());
        let items = parse_all(&mut p, b"\nSYNC\r\n\r\nREPLCONF ACK 0\r\n").unwrap();
        assert_eq!(names(&items), ["\\n", "SYNC", "\\n", "REPLCONF"]);
        let Item::Command(c) = &items[3] else {
            panic!()
        };
        assert!(c.is_inline());
        assert_eq!(c.arg(2).unwrap().as_i64(), Some(0));
    }

    #[test]
    fn a_huge_value_is_counted_not_buffered() {
        let mut p = Parser::for_master_stream(Limits::default());
        let head = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$10000000\r\n";
        let (n, r) = p.advance(head);
        assert_eq!((n, r.unwrap().is_none()), (head.len(), true));
        let body = vec![b'x'; 1 << 20];
        for _ in 0..9 {
            assert!(p.advance(&body).1.unwrap().is_none());
        }
        let mut tail = vec![b'x'; 10_000_000 - 9 * (1 << 20)];
        tail.extend_from_slice(b"\r\n");
        let (_, r) = p.advance(&tail);
        let Some(Item::Command(c)) = r.unwrap() else {
            panic!()
        };
        assert_eq!(c.arg(2).unwrap().len, 10_000_000);
        assert!(!c.arg(2).unwrap().is_complete());
        assert_eq!(c.wire_len(), head.len() as u64 + 10_000_002);
        assert!(p.line.capacity() < 1024);
    }

    #[test]
    fn errors_say_what_was_expected() {
        let mut p = Parser::for_master_stream(Limits::default());
        let (n, r) = p.advance(b"+OK\r\n");
        assert_eq!((n, r.unwrap_err()), (0, Error::ExpectedArray(b'+')));
        assert_eq!(
            Error::ExpectedArray(b'+').to_string(),
            "expected '*' (a RESP array), got '+'"
        );

        let mut p = Parser::for_master_stream(Limits::default());
        let (n, r) = p.advance(b"*1\r\n:5\r\n");
        assert_eq!((n, r.unwrap_err()), (4, Error::ExpectedBulk(b':')));

        let mut p = Parser::for_master_stream(Limits::default());
        let (_, r) = p.advance(b"*1\r\n$2\r\nabX");
        assert_eq!(r.unwrap_err(), Error::ExpectedCrlf);

        let mut p = Parser::new(Limits::default());
        let (_, r) = p.advance(&[b'A'; 70_000]);
        assert_eq!(r.unwrap_err(), Error::LineTooLong { limit: 64 * 1024 });

        let mut p = Parser::for_master_stream(Limits::default());
        let (_, r) = p.advance(b"*99999999999999999999\r\n");
        assert_eq!(r.unwrap_err(), Error::BadArrayLength);
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut p = Parser::new(Limits::default());
            let mut buf = Vec::new();
            for _ in 0..(seed % 200) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Mostly protocol characters, so that the parser gets deep.
                const ALPHABET: &[u8] = b"*$\r\n0123456789-:+ ab";
                buf.push(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
            }
            let _ = parse_all(&mut p, &buf);
        }
    }
}
