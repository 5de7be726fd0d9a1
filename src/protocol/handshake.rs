//! The handshake vocabulary: the master's single-line answers (`+PONG`, `+FULLRESYNC <id> <off>`,
//! `+CONTINUE [id]`, `$<len>`, `$EOF:<mark>`, errors …), the bounded line reader that frames them,
//! and how a replica's handshake commands are shown (with `AUTH` secrets redacted).
//!
//! Grammar per `protocol.md` §2–§4: replies are read by the replica one `\n`-terminated line at
//! a time, and an empty line is a keep-alive.

use memchr::memchr;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{i64 as dec_i64, space1, u64 as dec_u64};
use nom::combinator::{all_consuming, opt, rest};
use nom::sequence::preceded;
use nom::{IResult, Parser as _};

use crate::protocol::resp::Command;

/// A replication id or EOF mark: exactly 40 hex digits (`CONFIG_RUN_ID_SIZE`).
pub const ID_LEN: usize = 40;

/// One line the master sent outside the command stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// An empty line: a keep-alive while the master prepares the RDB.
    KeepAlive,
    /// `+FULLRESYNC <replid> <offset>`: a full sync; the RDB follows.
    FullResync {
        /// The master's replication id.
        replid: &'a str,
        /// `master_repl_offset` at the fork: the stream after the RDB starts at `offset + 1`.
        offset: u64,
    },
    /// `+CONTINUE [replid]`: a partial sync; the backlog follows immediately.
    Continue {
        /// The master's replication id (absent for replicas without `capa psync2`).
        replid: Option<&'a str>,
    },
    /// `+RDBCHANNELSYNC <client id>` (Redis 8): the RDB will come on a second connection.
    RdbChannelSync {
        /// The id of this (main) connection's client on the master.
        client_id: u64,
    },
    /// `+DUALCHANNELSYNC` (Valkey 8): the RDB will come on a second connection.
    DualChannelSync,
    /// `+RDBCHANNELSYNCSLOTS` (Redis 8.4+ atomic slot migration, main connection): the
    /// migrating slots' command stream follows, in its own offset space.
    SlotStream,
    /// `+SLOTSSNAPSHOT` (atomic slot migration, snapshot connection): the slots' snapshot
    /// follows as RESP commands, up to `CLUSTER SYNCSLOTS SNAPSHOT-EOF`.
    SlotSnapshot,
    /// `$ENDOFF:<offset> <replid> <dbid> <client id>` (Valkey dual-channel RDB connection).
    EndOffset {
        /// The offset the snapshot corresponds to.
        offset: u64,
        /// The master's replication id.
        replid: &'a str,
        /// The RDB connection's client id on the master (the main connection names it in
        /// `REPLCONF set-rdb-client-id`), when the line has it.
        client_id: Option<u64>,
    },
    /// `$<len>`: a disk-based RDB of `len` bytes follows, with no trailing CRLF.
    BulkLen(u64),
    /// `$EOF:<mark>`: a diskless RDB follows, terminated by the same 40-byte mark.
    EofMark(&'a [u8]),
    /// Any other `+…` status line.
    Status(&'a str),
    /// A `-…` error line.
    Error(&'a str),
    /// Anything else.
    Other(&'a [u8]),
}

fn hex_id(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while_m_n(ID_LEN, ID_LEN, |c: u8| c.is_ascii_hexdigit()).parse(i)
}

fn text(b: &[u8]) -> &str {
    // Callers only pass bytes the grammar accepted as hex/ASCII.
    std::str::from_utf8(b).unwrap_or("")
}

fn full_resync(i: &[u8]) -> IResult<&[u8], Reply<'_>> {
    let (i, (_, id, _, off)) = (tag(&b"+FULLRESYNC "[..]), hex_id, space1, dec_u64).parse(i)?;
    Ok((
        i,
        Reply::FullResync {
            replid: text(id),
            offset: off,
        },
    ))
}

fn continue_(i: &[u8]) -> IResult<&[u8], Reply<'_>> {
    let (i, (_, id)) = (tag(&b"+CONTINUE"[..]), opt(preceded(space1, hex_id))).parse(i)?;
    Ok((
        i,
        Reply::Continue {
            replid: id.map(text),
        },
    ))
}

fn rdb_channel(i: &[u8]) -> IResult<&[u8], Reply<'_>> {
    let (i, id) = preceded(tag(&b"+RDBCHANNELSYNC "[..]), dec_u64).parse(i)?;
    Ok((i, Reply::RdbChannelSync { client_id: id }))
}

fn end_offset(i: &[u8]) -> IResult<&[u8], Reply<'_>> {
    let (i, (_, off, _, id)) = (tag(&b"$ENDOFF:"[..]), dec_u64, space1, hex_id).parse(i)?;
    // `<dbid> <client id>` follow; an older or odd line without them still gives the offset.
    // The dbid is the stream's selected database, `-1` before the master's first SELECT
    // (Valkey 9 sends that; 8.0 sent 0).
    let ids: IResult<&[u8], u64> = (space1, dec_i64, space1, dec_u64)
        .map(|(_, _db, _, cid)| cid)
        .parse(i);
    let (i, client_id) = match ids {
        Ok((i, cid)) => (i, Some(cid)),
        Err(_) => (i, None),
    };
    let (i, _) = rest(i)?;
    Ok((
        i,
        Reply::EndOffset {
            offset: off,
            replid: text(id),
            client_id,
        },
    ))
}

fn eof_mark(i: &[u8]) -> IResult<&[u8], Reply<'_>> {
    let (i, mark) = preceded(tag(&b"$EOF:"[..]), hex_id).parse(i)?;
    Ok((i, Reply::EofMark(mark)))
}

fn bulk_len(i: &[u8]) -> IResult<&[u8], Reply<'_>> {
    let (i, n) = preceded(tag(&b"$"[..]), dec_i64).parse(i)?;
    match u64::try_from(n) {
        Ok(n) => Ok((i, Reply::BulkLen(n))),
        Err(_) => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Digit,
        ))),
    }
}

/// Classifies one line (without its line ending).
pub fn parse_reply(line: &[u8]) -> Reply<'_> {
    if line.is_empty() {
        return Reply::KeepAlive;
    }
    let parsers = [
        full_resync as fn(&[u8]) -> IResult<&[u8], Reply<'_>>,
        continue_,
        rdb_channel,
        end_offset,
        eof_mark,
        bulk_len,
    ];
    for p in parsers {
        if let Ok((_, reply)) = all_consuming(p).parse(line) {
            return reply;
        }
    }
    if line.eq_ignore_ascii_case(b"+DUALCHANNELSYNC") {
        return Reply::DualChannelSync;
    }
    if line.eq_ignore_ascii_case(b"+RDBCHANNELSYNCSLOTS") {
        return Reply::SlotStream;
    }
    if line.eq_ignore_ascii_case(b"+SLOTSSNAPSHOT") {
        return Reply::SlotSnapshot;
    }
    match (line[0], std::str::from_utf8(&line[1..])) {
        (b'+', Ok(s)) => Reply::Status(s),
        (b'-', Ok(s)) => Reply::Error(s),
        _ => Reply::Other(line),
    }
}

/// Frames `\n`-terminated lines out of a byte stream, keeping at most `max` bytes of a partial
/// line between calls.
#[derive(Debug, Default)]
pub struct LineReader {
    carry: Vec<u8>,
}

/// What [`LineReader::next_line`] found.
#[derive(Debug)]
pub enum Line {
    /// A whole line.
    Complete {
        /// The line, without its `\r\n` (or bare `\n`).
        line: Vec<u8>,
        /// Bytes of this input it took, the `\n` included.
        used: usize,
        /// Bytes of it that arrived in earlier inputs (the line began that far before this one).
        carried: usize,
    },
    /// The input ended inside a line; all of it was consumed.
    Partial,
    /// The line exceeds the limit.
    TooLong {
        /// Bytes of it that arrived in earlier inputs.
        carried: usize,
    },
}

impl LineReader {
    /// Looks for the end of the current line in `input`.
    pub fn next_line(&mut self, input: &[u8], max: usize) -> Line {
        let carried = self.carry.len();
        match memchr(b'\n', input) {
            Some(i) if carried + i <= max => {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&input[..i]);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Line::Complete {
                    line,
                    used: i + 1,
                    carried,
                }
            }
            None if carried + input.len() <= max => {
                self.carry.extend_from_slice(input);
                Line::Partial
            }
            _ => Line::TooLong { carried },
        }
    }
}

/// Shows bytes as text for a log line: printable ASCII as is, anything else escaped, and long
/// values shortened.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        s.push('…');
    }
    s
}

/// The text shown for a password anywhere in repl-sniff's output.
pub const REDACTED: &str = "<redacted>";

/// The arguments of a replica's handshake command as they may be shown: `AUTH`'s password is
/// replaced by [`REDACTED`] (a username stays visible), long arguments are shortened.
pub fn shown_args(cmd: &Command) -> Vec<String> {
    let name = cmd.name();
    let argc = cmd.argc() as usize;
    (1..argc)
        .map(|i| {
            let secret = name.is("AUTH") && i == argc - 1;
            match cmd.arg(i) {
                _ if secret => REDACTED.to_string(),
                Some(a) if a.is_complete() => printable(a.bytes, 64),
                Some(a) => format!("{}… ({} bytes)", printable(a.bytes, 32), a.len),
                None => "…".to_string(),
            }
        })
        .collect()
}

/// The byte ranges, relative to the start of `cmd` on the wire, of `AUTH`'s arguments (the
/// username too), so that recordings can mask them. Empty for any other command.
///
/// The positions are the ones the parser saw, so they are exact whatever the framing: RESP or
/// inline, CRLF or a bare LF, lengths with leading zeros. An `AUTH` with more arguments than the
/// parser keeps track of is masked from its first argument to its end, framing included.
pub fn auth_argument_ranges(cmd: &Command) -> Vec<(u64, u64)> {
    if !cmd.name().is("AUTH") || cmd.argc() < 2 {
        return Vec::new();
    }
    if cmd.all_args_captured() {
        return (1..cmd.argc() as usize)
            .filter_map(|i| cmd.arg_wire_range(i))
            .collect();
    }
    let start = cmd.arg_wire_range(1).map_or(0, |(a, _)| a);
    // Keep the line ending: `\r\n` after a bulk string, at least the `\n` of an inline line.
    let end = cmd.wire_len() - if cmd.is_inline() { 1 } else { 2 };
    vec![(start, end.max(start))]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "403b08aa50ec43bb050e0150a338a7d9dc1a37b4";

    #[test]
    fn master_answers_from_real_captures() {
        assert_eq!(
            parse_reply(format!("+FULLRESYNC {ID} 834").as_bytes()),
            Reply::FullResync {
                replid: ID,
                offset: 834
            }
        );
        assert_eq!(
            parse_reply(format!("+CONTINUE {ID}").as_bytes()),
            Reply::Continue { replid: Some(ID) }
        );
        assert_eq!(parse_reply(b"+CONTINUE"), Reply::Continue { replid: None });
        assert_eq!(parse_reply(b"$231542"), Reply::BulkLen(231542));
        assert_eq!(
            parse_reply(b"$EOF:5806cca6e294561a8ea62ddbf10716c53218d234"),
            Reply::EofMark(b"5806cca6e294561a8ea62ddbf10716c53218d234")
        );
        assert_eq!(
            parse_reply(format!("$ENDOFF:14 {ID} 0 25").as_bytes()),
            Reply::EndOffset {
                offset: 14,
                replid: ID,
                client_id: Some(25),
            }
        );
        assert_eq!(
            parse_reply(format!("$ENDOFF:0 {ID} -1 5").as_bytes()),
            Reply::EndOffset {
                offset: 0,
                replid: ID,
                client_id: Some(5),
            }
        );
        assert_eq!(
            parse_reply(b"+RDBCHANNELSYNC 25"),
            Reply::RdbChannelSync { client_id: 25 }
        );
        assert_eq!(parse_reply(b"+DUALCHANNELSYNC"), Reply::DualChannelSync);
        assert_eq!(parse_reply(b"+RDBCHANNELSYNCSLOTS"), Reply::SlotStream);
        assert_eq!(parse_reply(b"+SLOTSSNAPSHOT"), Reply::SlotSnapshot);
        assert_eq!(parse_reply(b""), Reply::KeepAlive);
        assert_eq!(parse_reply(b"+PONG"), Reply::Status("PONG"));
        assert_eq!(
            parse_reply(b"-NOAUTH Authentication required."),
            Reply::Error("NOAUTH Authentication required.")
        );
    }

    #[test]
    fn malformed_answers_are_not_mistaken_for_syncs() {
        // A replid must be exactly 40 hex digits, an offset a number.
        assert_eq!(
            parse_reply(b"+FULLRESYNC abc 1"),
            Reply::Status("FULLRESYNC abc 1")
        );
        assert_eq!(
            parse_reply(format!("+FULLRESYNC {ID} x").as_bytes()),
            Reply::Status(&format!("FULLRESYNC {ID} x"))
        );
        assert_eq!(parse_reply(b"$-1"), Reply::Other(b"$-1"));
        assert_eq!(parse_reply(b"$EOF:short"), Reply::Other(b"$EOF:short"));
    }

    #[test]
    fn auth_ranges_cover_exactly_the_arguments() {
        let wire = b"*3\r\n$4\r\nAUTH\r\n$4\r\nrepl\r\n$9\r\nrepl-pass\r\n";
        let mut p = crate::protocol::resp::Parser::new(crate::protocol::resp::Limits::default());
        let (_, r) = p.advance(wire);
        let Some(crate::protocol::resp::Item::Command(cmd)) = r.unwrap() else {
            panic!()
        };
        let shown: Vec<&[u8]> = auth_argument_ranges(&cmd)
            .iter()
            .map(|&(a, b)| &wire[a as usize..b as usize])
            .collect();
        assert_eq!(shown, [&b"repl"[..], b"repl-pass"]);
    }

    #[test]
    fn line_reader_carries_partial_lines_within_its_limit() {
        let mut r = LineReader::default();
        assert!(matches!(r.next_line(b"+FULL", 256), Line::Partial));
        match r.next_line(b"RESYNC x 1\r\n$5", 256) {
            Line::Complete {
                line,
                used,
                carried,
            } => {
                assert_eq!(line, b"+FULLRESYNC x 1");
                assert_eq!((used, carried), (12, 5));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.next_line(&[b'a'; 300], 256),
            Line::TooLong { carried: 0 }
        ));
    }
}
