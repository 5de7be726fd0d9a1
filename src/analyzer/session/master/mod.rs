//! The master's direction: a phase machine. [`Session::enter_master`] is the one place the phase
//! changes; the replies that move it are matched in `replies.rs`; the RDB transfer is
//! `rdb.rs`'s, the stream and its offsets `stream.rs`'s.

mod compressed;
mod rdb;
mod replies;
mod stream;

pub(super) use compressed::Compressed;

pub(super) use rdb::RdbTransfer;
pub(super) use stream::Stream;

use super::handshake::Pending;
use super::Session;
use crate::analyzer::event::EventKind;
use crate::analyzer::input::{Direction, Timestamp};
use crate::protocol::compression::{Codec, MagicFinder, ZSTD_MAGIC};
use crate::protocol::handshake::ID_LEN;
use crate::protocol::resp;
use crate::protocol::tls::is_tls_record;

/// Where the master's direction is.
#[derive(Debug)]
pub(super) enum MasterPhase {
    /// Single-line answers to handshake requests.
    Replies,
    /// After `+FULLRESYNC` or `SYNC`: keep-alives, then the RDB framing line.
    AwaitPayload { legacy: bool },
    /// A disk-based RDB with `remaining` bytes to go.
    RdbDisk { remaining: u64 },
    /// A diskless RDB, ended by `mark`; `tail` keeps the last bytes in case the mark is split.
    RdbEof {
        mark: [u8; ID_LEN],
        tail: Vec<u8>,
        seen: u64,
    },
    /// The replication stream.
    Stream,
    /// Looking for a command boundary of the stream: joined mid-connection (offsets unknown),
    /// or `after_gap`, past bytes the analysis did not see (offsets known, and kept).
    /// `magic` looks for a zstd frame too, where the link may be compressed unseen.
    Resync {
        finder: resp::BoundaryFinder,
        after_gap: bool,
        magic: Option<MagicFinder>,
    },
    /// A plain client's replies: forwarded, not parsed.
    Opaque,
    /// Analysis stopped after a desync; stream bytes are still counted.
    Lost,
}

impl Session {
    pub(super) fn feed_master(&mut self, at: Timestamp, bytes: &[u8]) {
        if self.seen[Direction::MasterToReplica] == 0
            && is_tls_record(bytes)
            && !matches!(self.master.phase, MasterPhase::Lost)
        {
            let why = "the link is encrypted (a TLS ServerHello): repl-sniff cannot analyse it; \
                       bytes are still forwarded";
            self.lose_master(at, 0, why.to_string());
        }
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            if self.master.compressed.is_some() {
                // Everything after a compressed stream's start is compressed, whatever the
                // analysis makes of it.
                self.compressed_bytes(at, rest);
                self.seen[Direction::MasterToReplica] += rest.len() as u64;
                return;
            }
            let used = match &mut self.master.phase {
                MasterPhase::Replies => {
                    if self.handshake.pending.front() == Some(&Pending::Sync) {
                        // SYNC has no reply line: its payload starts right away.
                        self.handshake.pending.pop_front();
                        self.enter_master(MasterPhase::AwaitPayload { legacy: true });
                        continue;
                    }
                    self.master_line(at, rest)
                }
                MasterPhase::AwaitPayload { .. } => self.master_line(at, rest),
                MasterPhase::RdbDisk { remaining } => {
                    let take = (*remaining).min(rest.len() as u64);
                    *remaining -= take;
                    let finished = *remaining == 0;
                    if let Some(rdb) = &mut self.master.rdb {
                        rdb.bytes += take;
                        rdb.contents.feed(&rest[..take as usize]);
                    }
                    if finished {
                        self.rdb_done(at);
                    }
                    take as usize
                }
                MasterPhase::RdbEof { .. } => self.scan_eof_mark(at, rest),
                MasterPhase::Resync {
                    finder,
                    after_gap,
                    magic,
                } => {
                    let after_gap = *after_gap;
                    // Joined late: the link may be compressed (the handshake was not seen),
                    // and then its next frame's magic comes before any command it could trust.
                    let magic_end = magic.as_mut().and_then(|m| m.find(rest));
                    let plain = &rest[..magic_end.map_or(rest.len(), |e| e.saturating_sub(4))];
                    match (finder.find(plain), magic_end) {
                        (Some(found), _) => self.resynced(at, found, after_gap),
                        (None, Some(end)) => self.joined_compressed(at, end),
                        (None, None) => {
                            if after_gap {
                                self.master.stream.bytes += rest.len() as u64;
                            }
                            rest.len()
                        }
                    }
                }
                MasterPhase::Stream => {
                    self.stream_bytes(at, rest, self.seen[Direction::MasterToReplica])
                }
                MasterPhase::Opaque | MasterPhase::Lost => {
                    if self.master.stream.started {
                        self.master.stream.bytes += rest.len() as u64;
                    }
                    rest.len()
                }
            };
            done += used;
            self.seen[Direction::MasterToReplica] += used as u64;
            self.say_rdb_header(at);
        }
    }

    /// The first command boundary after bytes of unknown framing: the analysis goes on there.
    /// Returns the bytes of the input used.
    fn resynced(&mut self, at: Timestamp, found: resp::Boundary, after_gap: bool) -> usize {
        let dir = Direction::MasterToReplica;
        let header = found.header();
        // The header may have begun in earlier chunks: count back from where it ends.
        let header_at =
            self.seen[Direction::MasterToReplica] + found.resume as u64 - header.len() as u64;
        if after_gap {
            // Offsets stayed exact across the gap: the bytes passed over count.
            self.master.stream.pass_to(&found);
            let (position, offset) = (header_at, self.master.stream.offset_end());
            let offset = offset.map(|o| o.saturating_add(1));
            let passed = found.skipped;
            let resumed = EventKind::Resumed {
                dir,
                position,
                offset,
                passed,
            };
            self.emit(at, resumed);
        } else {
            let skipped = found.skipped;
            self.emit(at, EventKind::JoinedLate { dir, skipped });
        }
        self.enter_master(MasterPhase::Stream);
        self.stream_bytes(at, header, header_at);
        found.resume
    }

    /// A joined-late link whose master sends zstd frames: a frame's magic ends at `end` of
    /// the input. The stream is decoded from that frame on (its first command is found in
    /// what it carries); the level was in the handshake the capture missed.
    fn joined_compressed(&mut self, at: Timestamp, end: usize) -> usize {
        let dir = Direction::MasterToReplica;
        let magic_at = (self.seen[dir] + end as u64).saturating_sub(ZSTD_MAGIC.len() as u64);
        let Some(z) = Compressed::at_magic(magic_at) else {
            return end;
        };
        self.master.compressed = Some(Box::new(z));
        let codec = Codec::Zstd;
        self.emit(at, EventKind::Compression { codec, level: None });
        let skipped = magic_at;
        self.emit(at, EventKind::JoinedLate { dir, skipped });
        self.enter_master(MasterPhase::Resync {
            finder: resp::BoundaryFinder::default(),
            after_gap: false,
            magic: None,
        });
        end
    }

    /// Stops the analysis of the master's direction: what broke it begins at `position`.
    pub(in crate::analyzer::session) fn lose_master(
        &mut self,
        at: Timestamp,
        position: u64,
        reason: String,
    ) {
        let stream = &self.master.stream;
        let offset = stream.started.then(|| stream.offset_end()).flatten();
        self.desync(Direction::MasterToReplica, at, position, offset, reason);
        self.enter_master(MasterPhase::Lost);
    }

    /// Moves the master's direction to `next`: the one place its phase changes.
    pub(super) fn enter_master(&mut self, next: MasterPhase) {
        if matches!(next, MasterPhase::Stream) {
            self.master.stream.started = true;
            // The master agreed to compress: the stream begins compressed.
            if self.handshake.compression.is_some() && self.master.compressed.is_none() {
                self.master.compressed = Compressed::new().map(Box::new);
            }
        }
        self.master.phase = next;
    }
}
