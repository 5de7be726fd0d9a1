//! A compressed stream on the master's direction (Redis `repl-compression`): its zstd frames
//! decoded as they come, and what they carry handed to the stream parser, so offsets,
//! commands and ACK latency are the decompressed stream's, as on a plain link.

use super::MasterPhase;
use crate::analyzer::event::EventKind;
use crate::analyzer::input::{Direction, Timestamp};
use crate::analyzer::session::Session;
use crate::protocol::compression::Zstd;

/// Decompressed bytes handed to the parser at a time.
const DECODED_CHUNK: usize = 16 * 1024;

/// The decoder of a compressed stream, and the frame it is in.
#[derive(Debug)]
pub(in crate::analyzer::session) struct Compressed {
    decoder: Zstd,
    out: Box<[u8]>,
    /// The current frame's bytes so far: on the wire, and decompressed.
    frame_wire: u64,
    frame_stream: u64,
    /// Where the current frame began on the wire: a broken frame is placed there, however
    /// its bytes were cut (the decoder may take a header in before it judges it).
    frame_at: u64,
}

impl Compressed {
    /// A decoder for a stream that begins now (`None` if zstd cannot start one).
    pub(in crate::analyzer::session) fn new() -> Option<Compressed> {
        Some(Compressed {
            decoder: Zstd::new().ok()?,
            out: vec![0; DECODED_CHUNK].into_boxed_slice(),
            frame_wire: 0,
            frame_stream: 0,
            frame_at: 0,
        })
    }
}

impl Session {
    /// Decodes compressed stream bytes (all of `rest`) and parses what they carry.
    pub(in crate::analyzer::session) fn compressed_bytes(&mut self, at: Timestamp, rest: &[u8]) {
        let Some(mut z) = self.master.compressed.take() else {
            return;
        };
        let pos = self.seen[Direction::MasterToReplica];
        let mut done = 0;
        loop {
            if z.frame_wire == 0 {
                z.frame_at = pos + done as u64;
            }
            let step = match z.decoder.step(&rest[done..], &mut z.out) {
                Ok(step) => step,
                Err(e) => return self.lose_compressed(at, z.frame_at, e.to_string()),
            };
            done += step.read;
            z.frame_wire += step.read as u64;
            z.frame_stream += step.written as u64;
            self.decoded(at, &z.out[..step.written], pos + done as u64);
            if step.frame_end && z.frame_wire > 0 {
                let (wire_bytes, stream_bytes) = (z.frame_wire, z.frame_stream);
                (z.frame_wire, z.frame_stream) = (0, 0);
                let frame = EventKind::CompressedFrame {
                    wire_bytes,
                    stream_bytes,
                };
                self.emit(at, frame);
            }
            let more_out = step.written == z.out.len();
            if (done == rest.len() && !more_out) || (step.read == 0 && step.written == 0) {
                break;
            }
        }
        self.master.compressed = Some(z);
    }

    /// Stream bytes decompressed: parsed while the stream is understood, and counted in the
    /// offsets either way.
    fn decoded(&mut self, at: Timestamp, bytes: &[u8], pos: u64) {
        let mut i = 0;
        while i < bytes.len() {
            if !matches!(self.master.phase, MasterPhase::Stream) {
                self.master.stream.bytes += (bytes.len() - i) as u64;
                return;
            }
            i += self.stream_bytes(at, &bytes[i..], pos);
        }
    }

    /// The compressed stream cannot be followed from here (corrupt, a window too large, or
    /// bytes missing, which a decoder cannot pass over): a desync at wire byte `position`, and
    /// the offsets are unknown from here on, since the decompressed length of what follows
    /// cannot be known.
    pub(in crate::analyzer::session) fn lose_compressed(
        &mut self,
        at: Timestamp,
        position: u64,
        reason: String,
    ) {
        self.master.compressed = None;
        let dir = Direction::MasterToReplica;
        let offset = self.master.stream.offset_end().map(|o| o.saturating_add(1));
        let reason = format!("{reason} (a compressed stream: offsets are unknown from here on)");
        self.desync(dir, at, position, offset, reason);
        self.master.stream.base = None;
        self.master.stream.started = false;
        self.enter_master(MasterPhase::Opaque);
    }
}
