//! What the parser yields: commands (name and the first arguments, captured up to a bound),
//! command names as small copyable values, and keep-alives.

use std::fmt;

use super::{CAPTURE_BYTES, MAX_CAPTURED_ARGS};

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
pub(super) struct Span {
    pub(super) start: u16,
    pub(super) captured: u16,
    pub(super) len: u64,
    /// Where the argument's bytes begin, counted from the command's first byte on the wire.
    pub(super) wire_at: u64,
}

/// A complete command, with its leading arguments captured.
///
/// Fixed-size and allocation-free, so that parsing millions of commands a second costs no
/// allocator traffic.
#[derive(Clone)]
pub struct Command {
    pub(super) argc: u64,
    pub(super) wire_len: u64,
    pub(super) inline: bool,
    pub(super) nspans: u8,
    pub(super) spans: [Span; MAX_CAPTURED_ARGS],
    pub(super) used: u16,
    pub(super) buf: [u8; CAPTURE_BYTES],
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

    /// Where the `i`-th argument's bytes lie on the wire, as `(start, end)` counted from the
    /// command's first byte (for an inline command, the word as sent, quotes included).
    pub fn arg_wire_range(&self, i: usize) -> Option<(u64, u64)> {
        if i >= self.nspans as usize {
            return None;
        }
        let s = self.spans[i];
        Some((s.wire_at, s.wire_at + s.len))
    }

    /// Returns true if and only if every argument was captured (so that
    /// [`Command::arg_wire_range`] knows where each one is).
    pub fn all_args_captured(&self) -> bool {
        self.nspans as u64 == self.argc
    }

    /// The captured arguments, in order.
    pub fn args(&self) -> impl Iterator<Item = Arg<'_>> {
        (0..self.nspans as usize).filter_map(|i| self.arg(i))
    }

    /// The command name, upper-cased.
    pub fn name(&self) -> Name {
        self.arg(0).map(|a| Name::new(a.bytes)).unwrap_or_default()
    }

    pub(super) fn reset(&mut self) {
        self.argc = 0;
        self.wire_len = 0;
        self.inline = false;
        self.nspans = 0;
        self.used = 0;
    }

    /// Starts capturing a new argument of `len` bytes that begins at `wire_at` (counted from the
    /// command's first byte); returns true if any of it will be kept.
    pub(super) fn begin_arg(&mut self, len: u64, wire_at: u64) -> bool {
        if (self.nspans as usize) >= MAX_CAPTURED_ARGS {
            return false;
        }
        self.spans[self.nspans as usize] = Span {
            start: self.used,
            captured: 0,
            len,
            wire_at,
        };
        self.nspans += 1;
        true
    }

    /// Appends bytes of the argument begun last, as far as the capture buffer allows.
    pub(super) fn capture(&mut self, bytes: &[u8]) {
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
    pub(super) len: u8,
    pub(super) bytes: [u8; 23],
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

    /// The name's bytes: printable ASCII. Matching on these spares the UTF-8 check
    /// [`Name::as_str`] makes, which showed in the per-command profile.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Returns true if and only if the name is `word` (given in upper case).
    pub fn is(&self, word: &str) -> bool {
        self.as_bytes() == word.as_bytes()
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

/// What one call to [`Parser::advance`](super::Parser::advance) completed.
#[derive(Debug, Clone)]
pub enum Item {
    /// A whole command.
    Command(Box<Command>),
    /// A bare `\n` (or an empty inline line): a keep-alive, not a command.
    KeepAlive,
}
