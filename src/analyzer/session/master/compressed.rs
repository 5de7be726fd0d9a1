//! A compressed stream on the master's direction (Redis `repl-compression`): its zstd frames
//! decoded as they come, and what they carry handed to the stream parser, so offsets,
//! commands and ACK latency are the decompressed stream's, as on a plain link. A frame that
//! bytes the capture lost cut is passed over: the master begins a frame at each flush, so the
//! analysis goes on at the next frame's magic. A frame the decoder refuses (corrupt, a window
//! too large) stops the analysis of the direction.

use super::MasterPhase;
use crate::analyzer::event::EventKind;
use crate::analyzer::input::{Direction, Timestamp};
use crate::analyzer::session::{LateAnchor, Session};
use crate::protocol::compression::{MagicFinder, Zstd, ZSTD_MAGIC};

/// Decompressed bytes handed to the parser at a time.
const DECODED_CHUNK: usize = 16 * 1024;

/// The decoder of a compressed stream, and the frame it is in.
#[derive(Debug)]
pub(in crate::analyzer::session) struct Compressed {
    /// The frame being decoded, or `None` while looking for the next frame's magic.
    decoder: Option<Zstd>,
    /// Looking for the next magic: where the bytes passed over began, and the search.
    seeking: Option<(u64, MagicFinder)>,
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
            decoder: Some(Zstd::new().ok()?),
            seeking: None,
            out: vec![0; DECODED_CHUNK].into_boxed_slice(),
            frame_wire: 0,
            frame_stream: 0,
            frame_at: 0,
        })
    }

    /// A decoder for a frame whose magic, which began at wire byte `at`, was just read.
    pub(in crate::analyzer::session) fn at_magic(at: u64) -> Option<Compressed> {
        let mut z = Compressed::new()?;
        z.begin_frame(at).ok()?;
        Some(z)
    }

    /// Starts a new decoder on a frame whose magic (at wire byte `at`) was read by a search.
    fn begin_frame(&mut self, at: u64) -> Result<(), ()> {
        let mut decoder = Zstd::new().map_err(|_| ())?;
        // Four bytes of header cannot produce output: the decoder only takes them in.
        decoder.step(&ZSTD_MAGIC, &mut self.out).map_err(|_| ())?;
        self.decoder = Some(decoder);
        self.seeking = None;
        (self.frame_at, self.frame_wire, self.frame_stream) = (at, ZSTD_MAGIC.len() as u64, 0);
        Ok(())
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
        while done < rest.len() || z.decoder.is_some() {
            let Some(decoder) = &mut z.decoder else {
                let Some((from, finder)) = &mut z.seeking else {
                    break;
                };
                let Some(end) = finder.find(&rest[done..]) else {
                    break;
                };
                done += end;
                let magic_at = pos + done as u64 - ZSTD_MAGIC.len() as u64;
                let passed = magic_at.saturating_sub(*from);
                if z.begin_frame(magic_at).is_err() {
                    return;
                }
                let dir = Direction::MasterToReplica;
                let resumed = EventKind::Resumed {
                    dir,
                    position: magic_at,
                    offset: None,
                    passed,
                };
                self.emit(at, resumed);
                continue;
            };
            if z.frame_wire == 0 {
                z.frame_at = pos + done as u64;
            }
            let step = match decoder.step(&rest[done..], &mut z.out) {
                Ok(step) => step,
                Err(e) => {
                    // How much of a broken frame the decoder took in before it judged depends
                    // on how the input was cut, so where a search for the next frame would
                    // begin does too: the analysis stops here instead (bytes still counted).
                    let from = z.frame_at;
                    self.lose_compressed(at, &mut z, from, e.to_string(), false);
                    break;
                }
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
            match &mut self.master.phase {
                MasterPhase::Stream => i += self.stream_bytes(at, &bytes[i..], pos),
                // After a frame that could not be decoded, or joined mid-frame: the first
                // command in the next frame (the Resumed or JoinedLate event was said at its
                // magic). What comes before it counts in the offsets.
                MasterPhase::Resync { finder, .. } => match finder.find(&bytes[i..]) {
                    Some(found) => {
                        self.master.stream.pass_to(&found);
                        self.enter_master(MasterPhase::Stream);
                        self.stream_bytes(at, found.header(), pos);
                        i += found.resume;
                    }
                    None => {
                        self.master.stream.bytes += (bytes.len() - i) as u64;
                        return;
                    }
                },
                _ => {
                    self.master.stream.bytes += (bytes.len() - i) as u64;
                    return;
                }
            }
        }
    }

    /// A gap in a compressed stream: the frame it cut cannot be decoded.
    pub(in crate::analyzer::session) fn compressed_gap(
        &mut self,
        at: Timestamp,
        len: u64,
        reason: String,
    ) {
        let Some(mut z) = self.master.compressed.take() else {
            return;
        };
        let position = self.seen[Direction::MasterToReplica];
        self.lose_compressed(at, &mut z, position, reason, true);
        // What is passed over after the gap counts from its end.
        if let Some((from, _)) = &mut z.seeking {
            *from = position + len;
        }
        self.master.compressed = Some(z);
    }

    /// The compressed stream cannot be followed from wire byte `position` on: a desync there,
    /// and, if `resume`, a search for the next frame's magic. The offsets are unknown from
    /// here on (the decompressed length of what is passed over cannot be known) until two
    /// GETACK answers agree, as on a joined-late stream.
    fn lose_compressed(
        &mut self,
        at: Timestamp,
        z: &mut Compressed,
        position: u64,
        reason: String,
        resume: bool,
    ) {
        z.decoder = None;
        z.seeking = resume.then(|| (z.frame_at, MagicFinder::default()));
        (z.frame_wire, z.frame_stream) = (0, 0);
        let dir = Direction::MasterToReplica;
        // The command the loss cut began before the bytes the parser holds.
        let cut = self.master.stream.parser.partial_len();
        let offset =
            (self.master.stream.offset_end()).map(|o| o.saturating_sub(cut).saturating_add(1));
        let reason = if resume {
            format!(
                "{reason} (a compressed stream: the analysis goes on at the next frame, offsets \
                 unknown from there until two GETACK answers agree)"
            )
        } else {
            format!("{reason} (a compressed stream: offsets are unknown from here on)")
        };
        self.desync(dir, at, position, offset, reason);
        self.master.stream.base = None;
        self.late.get_or_insert_with(LateAnchor::default);
        self.resync_after_gap();
    }
}
