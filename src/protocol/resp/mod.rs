//! Streaming parser for the commands that cross a replication link: RESP arrays of bulk
//! strings (`*N\r\n$len\r\narg\r\n…`), inline commands (`SYNC\r\n`), and bare `\n` keep-alives.
//!
//! The parser is push-based and resumable: it is handed whatever bytes arrived, consumes what
//! it can, and keeps only a bounded header-line carry between calls. Argument bodies are never
//! buffered: the first [`MAX_CAPTURED_ARGS`] arguments are copied up to [`CAPTURE_BYTES`] in
//! total (enough for command names, offsets, replication ids, `REPLCONF` options) and the rest
//! is skipped by count, so a 512 MB value passes in constant memory. Lengths read from the wire
//! are only ever counted down, never used to allocate.

mod boundary;
mod command;
mod inline;
mod parser;

use std::fmt;

pub use boundary::{Boundary, BoundaryFinder};
pub use command::{Arg, Command, Item, Name};
pub use parser::Parser;

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
    #[error(
        "expected '*' (a RESP array; a master never sends inline commands), got {}",
        Printable(*.0)
    )]
    ExpectedArray(u8),
}

/// Where and why the bytes stopped being a command stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// What was wrong.
    pub error: Error,
    /// Position of the element that broke the protocol (the first byte of its line, or the
    /// single unexpected byte), counted from the parser's first byte. It does not depend on how
    /// the input was split into calls.
    pub at: u64,
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
