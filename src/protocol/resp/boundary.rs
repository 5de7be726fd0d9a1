//! Finding the first command boundary in a stream joined mid-way (a capture that began
//! after the connection did).

use memchr::memchr;

/// The longest `*<count>\r\n` a [`BoundaryFinder`] takes for a command's start.
const MAX_GUESSED_HEADER: usize = 24;

/// Finds the first command boundary in bytes whose framing is unknown (a capture that began
/// mid-connection): a `*<count>\r\n$` at the very start or right after a `\n`.
///
/// Resumable and chunk-independent: the pattern may be split across any number of calls, and
/// the boundary found never depends on where. The `*<count>\r\n` already passed is kept (at
/// most 24 bytes) so the caller can hand it to a [`Parser`](super::Parser) first.
#[derive(Debug, Clone)]
pub struct BoundaryFinder {
    scan: Scan,
    header: [u8; MAX_GUESSED_HEADER],
    header_len: usize,
    skipped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Just after a `\n` (or at the start): a `*` here may begin a command.
    LineStart,
    /// Inside a line that cannot begin a command.
    Inside,
    /// After `*` and `digits` digits.
    Count { digits: usize },
    /// After `*<count>\r`.
    Cr,
    /// After `*<count>\r\n`: a `$` confirms the boundary.
    Lf,
}

/// A command boundary found by [`BoundaryFinder::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    /// Where in the last input the command goes on, after [`Boundary::header`].
    pub resume: usize,
    /// Bytes before the command, over all calls.
    pub skipped: u64,
    header: [u8; MAX_GUESSED_HEADER],
    header_len: usize,
}

impl Boundary {
    /// The command's `*<count>\r\n`, which (part of) earlier inputs may have carried: feed it
    /// to the parser before the input from [`Boundary::resume`] on.
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }
}

impl Default for BoundaryFinder {
    fn default() -> Self {
        BoundaryFinder {
            scan: Scan::LineStart,
            header: [0; MAX_GUESSED_HEADER],
            header_len: 0,
            skipped: 0,
        }
    }
}

impl BoundaryFinder {
    /// Looks for the boundary in the next bytes of the stream.
    pub fn find(&mut self, input: &[u8]) -> Option<Boundary> {
        let mut i = 0;
        while i < input.len() {
            if self.scan == Scan::Inside {
                // Nothing can start before the next newline.
                match memchr(b'\n', &input[i..]) {
                    Some(nl) => {
                        self.skipped += (nl + 1) as u64;
                        i += nl + 1;
                        self.scan = Scan::LineStart;
                        continue;
                    }
                    None => {
                        self.skipped += (input.len() - i) as u64;
                        return None;
                    }
                }
            }
            let b = input[i];
            i += 1;
            let next = match (self.scan, b) {
                (Scan::LineStart, b'*') => Some(Scan::Count { digits: 0 }),
                (Scan::Count { digits }, b'0'..=b'9') if digits + 4 < MAX_GUESSED_HEADER => {
                    Some(Scan::Count { digits: digits + 1 })
                }
                (Scan::Count { digits }, b'\r') if digits > 0 => Some(Scan::Cr),
                (Scan::Cr, b'\n') => Some(Scan::Lf),
                (Scan::Lf, b'$') => {
                    return Some(Boundary {
                        resume: i - 1,
                        skipped: self.skipped,
                        header: self.header,
                        header_len: self.header_len,
                    })
                }
                _ => None,
            };
            match next {
                Some(scan) => {
                    self.header[self.header_len] = b;
                    self.header_len += 1;
                    self.scan = scan;
                }
                None => {
                    // Not a boundary: what was taken for a header was skipped after all, and
                    // this byte is looked at afresh (after `\r\n`, a `*` may begin one).
                    let after_newline = self.scan == Scan::Lf;
                    self.skipped += self.header_len as u64;
                    self.header_len = 0;
                    if after_newline && b == b'*' {
                        self.header[0] = b;
                        self.header_len = 1;
                        self.scan = Scan::Count { digits: 0 };
                    } else {
                        self.skipped += 1;
                        self.scan = if b == b'\n' {
                            Scan::LineStart
                        } else {
                            Scan::Inside
                        };
                    }
                }
            }
        }
        None
    }
}
