//! Compressed replication streams. Redis (PR #15366, `repl-compression <level>`) sends the
//! master's stream as zstd frames (magic `28 B5 2F FD`), one per flush; offsets and ACKs count
//! the decompressed bytes. [`Zstd`] decodes them as they come, with bounded memory: a frame's
//! window size comes from the wire, and one above [`MAX_WINDOW_LOG`] is refused instead of
//! allocated.

use std::fmt;

use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

/// How every zstd frame begins.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The largest window a frame may ask for, as a power of two: 2^25 bytes (32 MiB), what zstd
/// levels up to 21 use on a stream of unknown size (level 3, Redis's example, uses 2 MiB).
/// A frame asking for more is refused.
pub const MAX_WINDOW_LOG: u32 = 25;

/// Finds the next zstd frame magic in bytes whose framing is unknown (a capture that joined a
/// compressed link mid-frame, or lost bytes of one): each flush of the master begins a frame,
/// so the stream can be followed again from there. Resumable across any cut of the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct MagicFinder {
    /// Bytes of the magic matched at the end of the input so far.
    matched: usize,
}

impl MagicFinder {
    /// Where in `input` the magic ends (it may have begun in earlier input), if it does.
    pub fn find(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.matched == 0 {
                // Nothing can begin before the magic's first byte.
                i += memchr::memchr(ZSTD_MAGIC[0], &input[i..])?;
            }
            let b = input[i];
            i += 1;
            self.matched = if b == ZSTD_MAGIC[self.matched] {
                self.matched + 1
            } else {
                // The magic repeats none of its bytes: a mismatch can only restart it.
                usize::from(b == ZSTD_MAGIC[0])
            };
            if self.matched == ZSTD_MAGIC.len() {
                self.matched = 0;
                return Some(i);
            }
        }
        None
    }
}

/// A compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// zstd frames (Redis; Valkey's envelope codec 2).
    Zstd,
    /// LZ4 (Valkey 9.2's envelope codec 1).
    Lz4,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Zstd => f.write_str("zstd"),
            Codec::Lz4 => f.write_str("lz4"),
        }
    }
}

/// The codec of Valkey's compression envelope, if `b` begins with one (Valkey 9.2,
/// unreleased: `VCS` version codec reserved kind, or in one revision `VKCS` version codec
/// flags kind). repl-sniff recognises it to say so; it does not decode it.
pub fn valkey_envelope(b: &[u8]) -> Option<Codec> {
    let codec = if b.starts_with(b"VKCS") {
        *b.get(5)?
    } else if b.starts_with(b"VCS") {
        *b.get(4)?
    } else {
        return None;
    };
    match codec {
        1 => Some(Codec::Lz4),
        2 => Some(Codec::Zstd),
        _ => None,
    }
}

/// A stream that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The decoder could not be set up.
    #[error("the zstd decoder could not start: {0}")]
    Setup(String),
    /// The bytes are not a zstd frame, or a frame is corrupt.
    #[error("the compressed stream is not valid zstd: {0}")]
    Corrupt(String),
    /// A frame asks for a window above [`MAX_WINDOW_LOG`].
    #[error("a zstd frame asks for a window above 2^{MAX_WINDOW_LOG} bytes, more than repl-sniff allocates")]
    WindowTooLarge,
}

/// What one [`Zstd::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Compressed bytes consumed.
    pub read: usize,
    /// Decompressed bytes written.
    pub written: usize,
    /// A frame ended with this step (each flush of the master ends one).
    pub frame_end: bool,
}

/// A streaming zstd decoder for one direction.
pub struct Zstd {
    decoder: Decoder<'static>,
}

impl fmt::Debug for Zstd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zstd").finish_non_exhaustive()
    }
}

impl Zstd {
    /// A decoder that refuses windows above [`MAX_WINDOW_LOG`].
    pub fn new() -> Result<Zstd, DecodeError> {
        let setup = |e: std::io::Error| DecodeError::Setup(e.to_string());
        let mut decoder = Decoder::new().map_err(setup)?;
        (decoder.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))).map_err(setup)?;
        Ok(Zstd { decoder })
    }

    /// Decodes what it can of `input` into `out`. Call again with the rest of the input (and
    /// with empty input while `written == out.len()`: more may be waiting).
    pub fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, DecodeError> {
        let mut input = InBuffer::around(input);
        let mut output = OutBuffer::around(out);
        let hint = self.decoder.run(&mut input, &mut output).map_err(|e| {
            let text = e.to_string();
            if text.contains("too much memory") || text.contains("Window") {
                DecodeError::WindowTooLarge
            } else {
                DecodeError::Corrupt(text)
            }
        })?;
        Ok(Step {
            read: input.pos(),
            written: output.pos(),
            frame_end: hint == 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8], level: i32) -> Vec<u8> {
        zstd::stream::encode_all(data, level).unwrap()
    }

    fn decode_all(z: &mut Zstd, mut input: &[u8]) -> Result<(Vec<u8>, usize), DecodeError> {
        let (mut out, mut frames, mut buf) = (Vec::new(), 0, [0u8; 64]);
        loop {
            let step = z.step(input, &mut buf)?;
            out.extend_from_slice(&buf[..step.written]);
            frames += usize::from(step.frame_end);
            input = &input[step.read..];
            if input.is_empty() && step.written < buf.len() {
                return Ok((out, frames));
            }
        }
    }

    #[test]
    fn frames_decode_whole_and_one_byte_at_a_time_and_their_ends_are_counted() {
        let text: Vec<u8> = (0..5000u32)
            .flat_map(|i| i.to_string().into_bytes())
            .collect();
        let mut wire = frame(&text[..3000], 3);
        assert_eq!(wire[..4], ZSTD_MAGIC);
        wire.extend(frame(&text[3000..], 3));
        let (out, frames) = decode_all(&mut Zstd::new().unwrap(), &wire).unwrap();
        assert_eq!((out.as_slice(), frames), (text.as_slice(), 2));
        let mut z = Zstd::new().unwrap();
        let (mut out, mut frames) = (Vec::new(), 0);
        for b in wire.chunks(1) {
            let (o, f) = decode_all(&mut z, b).unwrap();
            out.extend(o);
            frames += f;
        }
        assert_eq!((out.as_slice(), frames), (text.as_slice(), 2));
    }

    #[test]
    fn the_magic_is_found_however_the_input_is_cut() {
        let mut wire = b"\x28\xb5\x2f garbage \x28\x28".to_vec();
        let end = wire.len() + ZSTD_MAGIC.len() - 1;
        wire.extend_from_slice(&ZSTD_MAGIC[1..]);
        wire.extend_from_slice(b"frame");
        assert_eq!(MagicFinder::default().find(&wire), Some(end));
        for cut in 0..wire.len() {
            let mut finder = MagicFinder::default();
            let found = match finder.find(&wire[..cut]) {
                Some(i) => Some(i),
                None => finder.find(&wire[cut..]).map(|i| cut + i),
            };
            assert_eq!(found, Some(end), "cut at {cut}");
        }
        assert_eq!(MagicFinder::default().find(b"*1\r\n$4\r\nPING\r\n"), None);
    }

    #[test]
    fn a_window_above_the_limit_is_refused_and_garbage_is_an_error() {
        let mut header = ZSTD_MAGIC.to_vec();
        // Frame header: no checksum, no single segment; window descriptor exponent 30 - 10.
        header.extend_from_slice(&[0x00, (30 - 10) << 3]);
        header.extend_from_slice(&[0; 16]);
        let mut z = Zstd::new().unwrap();
        assert_eq!(
            decode_all(&mut z, &header).unwrap_err(),
            DecodeError::WindowTooLarge
        );
        let mut z = Zstd::new().unwrap();
        assert!(matches!(
            decode_all(&mut z, b"*1\r\n$4\r\nPING\r\n"),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
