//! The push-based, resumable RESP command parser.

use memchr::memchr;

use super::command::*;
use super::inline::InlineWords;
use super::*;

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
    /// A finished command handed back by the caller ([`Parser::give_back`]): the next one is
    /// parsed into it, so a stream of commands costs no allocation (nor a 700-byte copy and
    /// clear) per command.
    spare: Option<Box<Command>>,
    /// Bytes consumed over the parser's life (positions in [`Failure`] count from here).
    consumed: u64,
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
            spare: None,
            consumed: 0,
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

    /// Bytes consumed so far, over the parser's life.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Where the command being parsed began (counted like [`Parser::consumed`]); `None`
    /// between commands.
    pub fn command_start(&self) -> Option<u64> {
        (!self.at_boundary()).then(|| self.consumed - self.cur.wire_len)
    }

    /// Bytes of the command being parsed consumed so far; 0 between commands. What a gap in
    /// the input cuts off.
    pub fn partial_len(&self) -> u64 {
        self.command_start()
            .map_or(0, |start| self.consumed - start)
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
    /// Returns how many bytes were consumed, and the item if one was completed. After a
    /// [`Failure`] the parser must not be used again.
    pub fn advance(&mut self, input: &[u8]) -> (usize, Result<Option<Item>, Failure>) {
        let (n, r) = self.advance_inner(input);
        self.consumed += n as u64;
        (n, r)
    }

    /// A failure at `pos` of the current input, for an element of which `carried` bytes
    /// arrived in earlier calls.
    fn failure(&self, error: Error, pos: usize, carried: usize) -> Failure {
        Failure {
            error,
            at: self.consumed + pos as u64 - carried as u64,
        }
    }

    fn advance_inner(&mut self, input: &[u8]) -> (usize, Result<Option<Item>, Failure>) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            let carried = self.line.len();
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
                        other => {
                            return (pos, Err(self.failure(Error::ExpectedArray(other), pos, 0)))
                        }
                    }
                }
                State::ArrayHeader => {
                    let (n, count) = match self.take_header(rest) {
                        Ok(Some(x)) => x,
                        Ok(None) => return (input.len(), Ok(None)),
                        Err(e) => return (pos, Err(self.failure(e, pos, carried))),
                    };
                    match count {
                        Some(c) if c <= 0 => {
                            // `*0` / `*-1`: Redis skips these without running anything.
                            self.state = State::Start;
                        }
                        Some(c) if (c as u64) <= self.limits.max_argc => {
                            self.cur.argc = c as u64;
                            self.state = State::BulkHeader { left: c as u64 };
                        }
                        _ => {
                            let f = self.failure(Error::BadArrayLength, pos, carried);
                            return (pos + n, Err(f));
                        }
                    }
                    pos += n;
                }
                State::Inline => {
                    let (n, line) = match self.take_line(rest, self.limits.max_inline) {
                        Ok(Some(x)) => x,
                        Ok(None) => return (input.len(), Ok(None)),
                        Err(e) => return (pos, Err(self.failure(e, pos, carried))),
                    };
                    pos += n;
                    let mut argc = 0;
                    for (start, end) in InlineWords::new(&line) {
                        argc += 1;
                        let word = &line[start..end];
                        if self.cur.begin_arg(word.len() as u64, start as u64) {
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
                        return (pos, Err(self.failure(Error::ExpectedBulk(first), pos, 0)));
                    }
                    let (n, len) = match self.take_header(rest) {
                        Ok(Some(x)) => x,
                        Ok(None) => return (input.len(), Ok(None)),
                        Err(e) => return (pos, Err(self.failure(e, pos, carried))),
                    };
                    match len {
                        Some(l) if l >= 0 && (l as u64) <= self.limits.max_bulk => {
                            let keep = self.cur.begin_arg(l as u64, self.cur.wire_len);
                            self.state = State::BulkBody {
                                left: left - 1,
                                remaining: l as u64,
                                keep,
                            };
                        }
                        _ => {
                            let f = self.failure(Error::BadBulkLength, pos, carried);
                            return (pos + n, Err(f));
                        }
                    }
                    pos += n;
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
                        return (pos, Err(self.failure(Error::ExpectedCrlf, pos, 0)));
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
        // The next command resets what it uses when it starts (`Command::reset`).
        let next = self.spare.take().unwrap_or_default();
        Item::Command(std::mem::replace(&mut self.cur, next))
    }

    /// Hands a command the parser returned back to it, to be parsed into again.
    pub fn give_back(&mut self, cmd: Box<Command>) {
        self.spare = Some(cmd);
    }

    /// The number on a `*N` or `$N` line once its `\n` is found (`None` inside if it is not
    /// a number), with the bytes of `input` consumed. A line wholly in `input`, the common
    /// case, is read where it lies; one split across calls goes through the carry.
    fn take_header(&mut self, input: &[u8]) -> Result<Option<(usize, Option<i64>)>, Error> {
        let max = self.limits.max_header;
        if self.line.is_empty() {
            // A header is a few bytes: a plain scan of the first ones finds its end sooner
            // than memchr's set-up for a 64 KiB input.
            let near = input.iter().take(24).position(|&b| b == b'\n');
            if let Some(i) = near.or_else(|| memchr(b'\n', input)) {
                if i > max {
                    return Err(Error::LineTooLong { limit: max });
                }
                let line = &input[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                self.cur.wire_len += i as u64 + 1;
                return Ok(Some((i + 1, parse_len(line.get(1..).unwrap_or_default()))));
            }
        }
        let Some((n, line)) = self.take_line(input, max)? else {
            return Ok(None);
        };
        let len = parse_len(line.get(1..).unwrap_or_default());
        self.recycle(line);
        Ok(Some((n, len)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(p: &mut Parser, mut input: &[u8]) -> Result<Vec<Item>, Failure> {
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

    /// Feeds `input` in pieces cut at `cuts`; returns the items and the failure, if any.
    fn parse_split(p: &mut Parser, input: &[u8], cuts: &[usize]) -> (Vec<Item>, Option<Failure>) {
        let mut items = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain([&input.len()]) {
            let mut piece = &input[start..end];
            start = end;
            while !piece.is_empty() {
                let (n, r) = p.advance(piece);
                piece = &piece[n..];
                match r {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => {}
                    Err(f) => return (items, Some(f)),
                }
            }
        }
        (items, None)
    }

    #[test]
    fn errors_say_what_was_expected_and_where_the_element_begins() {
        let master = || Parser::for_master_stream(Limits::default());
        let cases: &[(&[u8], Error, u64)] = &[
            (b"+OK\r\n", Error::ExpectedArray(b'+'), 0),
            (b"*1\r\n:5\r\n", Error::ExpectedBulk(b':'), 4),
            (b"*1\r\n$2\r\nabX", Error::ExpectedCrlf, 10),
            (b"*1\r\n$4x\r\n", Error::BadBulkLength, 4),
            (b"*99999999999999999999\r\n", Error::BadArrayLength, 0),
            (b"*1\r\n$1\r\na\r\n*2\r\n$-3\r\n", Error::BadBulkLength, 15),
        ];
        for &(input, error, at) in cases {
            let (_, f) = parse_split(&mut master(), input, &[]);
            assert_eq!(f, Some(Failure { error, at }), "{input:?}");
        }
        assert_eq!(
            Error::ExpectedArray(b'+').to_string(),
            "expected '*' (a RESP array; a master never sends inline commands), got '+'"
        );
        let (_, f) = parse_split(&mut Parser::new(Limits::default()), &[b'A'; 70_000], &[]);
        let too_long = Error::LineTooLong { limit: 64 * 1024 };
        assert_eq!(
            f,
            Some(Failure {
                error: too_long,
                at: 0
            })
        );
    }

    #[test]
    fn failures_are_the_same_at_every_split() {
        // Fuzzing found positions relative to the call: `$4x` split after `$4` said 6, not 4.
        let inputs: &[&[u8]] = &[
            b"*1\r\n$4x\r\n",
            b"*2\r\n$3\r\nSET\r\n$99999999999999999999\r\n",
            b"*1\r\n$3\r\nabcX\r\n",
            b"*1\r\n:1\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1x\r\n",
            b"\n\n*1\r\n$4\r\nPING\r\n-ERR\r\n",
        ];
        for input in inputs {
            for (limits, inline) in [(Limits::default(), false), (Limits::default(), true)] {
                let new = || {
                    if inline {
                        Parser::new(limits)
                    } else {
                        Parser::for_master_stream(limits)
                    }
                };
                let whole = parse_split(&mut new(), input, &[]);
                let want = (format!("{:?}", whole.0), whole.1);
                assert!(inline || want.1.is_some(), "{input:?} must fail");
                for cut in 1..input.len() {
                    let (items, f) = parse_split(&mut new(), input, &[cut]);
                    assert_eq!((format!("{items:?}"), f), want, "{input:?} cut at {cut}");
                }
                let bytewise: Vec<usize> = (1..input.len()).collect();
                let (items, f) = parse_split(&mut new(), input, &bytewise);
                assert_eq!((format!("{items:?}"), f), want, "{input:?} byte by byte");
            }
        }
        // A too-long line is reported where it began, however much of it was carried.
        let limits = Limits {
            max_header: 8,
            ..Limits::default()
        };
        let input = b"*1\r\n$123456789012\r\n";
        let want = Some(Failure {
            error: Error::LineTooLong { limit: 8 },
            at: 4,
        });
        for cut in 1..input.len() {
            let (_, f) = parse_split(&mut Parser::for_master_stream(limits), input, &[cut]);
            assert_eq!(f, want, "cut at {cut}");
        }
    }

    #[test]
    fn arguments_know_where_they_are_on_the_wire() {
        let wire = b"*3\r\n$004\r\nAUTH\r\n$0004\r\nuser\r\n$2\r\npw\r\n";
        let (items, _) = parse_split(&mut Parser::new(Limits::default()), wire, &[]);
        let Item::Command(c) = &items[0] else {
            panic!()
        };
        let args: Vec<&[u8]> = (0..3)
            .map(|i| c.arg_wire_range(i).unwrap())
            .map(|(a, b)| &wire[a as usize..b as usize])
            .collect();
        assert_eq!(args, [&b"AUTH"[..], b"user", b"pw"]);
    }

    #[test]
    fn inline_words_split_like_sdssplitargs() {
        let words = |line: &[u8]| -> Vec<String> {
            InlineWords::new(line)
                .map(|(a, b)| String::from_utf8_lossy(&line[a..b]).into_owned())
                .collect()
        };
        assert_eq!(words(b"AUTH  user\tpass"), ["AUTH", "user", "pass"]);
        assert_eq!(words(b"AUTH \"my pass\" x"), ["AUTH", "\"my pass\"", "x"]);
        assert_eq!(words(b"AUTH 'a\\' b' c"), ["AUTH", "'a\\' b'", "c"]);
        assert_eq!(
            words(b"AUTH \"unbalanced rest"),
            ["AUTH", "\"unbalanced rest"]
        );
        assert_eq!(words(b"AUTH pw\r"), ["AUTH", "pw"]);
        assert!(words(b" \t ").is_empty());
    }

    /// Runs a finder over `input` cut at `cuts`; returns where the command begins (absolute)
    /// and the bytes from there that a parser would be fed.
    fn boundary(input: &[u8], cuts: &[usize]) -> Option<(u64, Vec<u8>)> {
        let mut finder = BoundaryFinder::default();
        let mut start = 0;
        for &end in cuts.iter().chain([&input.len()]) {
            let piece = &input[start..end];
            if let Some(b) = finder.find(piece) {
                let mut fed = b.header().to_vec();
                fed.extend_from_slice(&input[start + b.resume..]);
                return Some((b.skipped, fed));
            }
            start = end;
        }
        None
    }

    #[test]
    fn a_boundary_is_found_wherever_the_input_is_split() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"*1\r\n$4\r\nping\r\n", Some(0)),
            (b"ng\r\n*1\r\n$4\r\nping\r\n", Some(4)),
            (b"xx\r\n*1\r\n*2\r\n$3\r\nget\r\n", Some(8)),
            (b"ab*1\r\n$4\r\nping\r\n", None),
            (b"\n*\r\n$\n*123456789012345678901234567890\r\n$\n", None),
            (b"value\r\n\n*3\r\n$3\r\nSET\r\n", Some(8)),
        ];
        for &(input, want) in cases {
            let whole = boundary(input, &[]);
            assert_eq!(whole.as_ref().map(|w| w.0), want, "{input:?}");
            if let Some((at, fed)) = &whole {
                assert_eq!(&fed[..], &input[*at as usize..]);
            }
            for cut in 1..input.len() {
                assert_eq!(boundary(input, &[cut]), whole, "{input:?} cut at {cut}");
            }
            let bytewise: Vec<usize> = (1..input.len()).collect();
            assert_eq!(boundary(input, &bytewise), whole, "{input:?} byte by byte");
        }
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
