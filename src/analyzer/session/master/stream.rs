//! The replication stream and its offsets: commands with exact offsets, bytes the analysis
//! did not see (offsets kept where the framing allows it, parsing resumed at the next
//! command), and the master's side of a slot migration's stream.

use super::MasterPhase;
use crate::analyzer::event::{EventKind, SyncKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::analyzer::session::{Role, Session};
use crate::protocol::cluster::is_syncslots;
use crate::protocol::compression::{MagicFinder, ZSTD_MAGIC};
use crate::protocol::resp::{self, Command, Item, Name};

/// The replication stream and its offsets.
#[derive(Debug)]
pub(in crate::analyzer::session) struct Stream {
    pub(in crate::analyzer::session) parser: resp::Parser,
    pub(in crate::analyzer::session) started: bool,
    /// Offset of the byte just before the first stream byte, when known.
    pub(in crate::analyzer::session) base: Option<u64>,
    pub(in crate::analyzer::session) bytes: u64,
    /// Stream bytes outside the offset space (atomic slot migration's `STREAM-EOF`).
    pub(in crate::analyzer::session) outside: u64,
    pub(in crate::analyzer::session) db: Option<u32>,
    pub(in crate::analyzer::session) in_multi: bool,
}

impl Stream {
    /// Counts the bytes passed over to `found`, a command boundary: the command's header,
    /// which earlier input may have carried (and counted), is counted once, when parsed.
    pub(in crate::analyzer::session) fn pass_to(&mut self, found: &resp::Boundary) {
        self.bytes = self.bytes + found.resume as u64 - found.header().len() as u64;
    }

    pub(in crate::analyzer::session) fn offset_end(&self) -> Option<u64> {
        // The base is at most `MAX_OFFSET`, so this cannot saturate on any real link.
        self.base
            .map(|b| b.saturating_add(self.bytes.saturating_sub(self.outside)))
    }
}

impl Session {
    /// `len` bytes were forwarded but not seen: offsets stay exact where the framing allows.
    pub(in crate::analyzer::session) fn skip_master(
        &mut self,
        at: Timestamp,
        len: u64,
        reason: String,
    ) {
        let dir = Direction::MasterToReplica;
        if self.master.compressed.is_some() {
            self.compressed_gap(at, len, reason);
            self.seen[dir] += len;
            return;
        }
        match &mut self.master.phase {
            MasterPhase::RdbDisk { remaining } if len <= *remaining => {
                // The framing says exactly where the RDB ends: nothing is lost.
                *remaining -= len;
                if let Some(rdb) = &mut self.master.rdb {
                    rdb.bytes += len;
                }
                if *remaining == 0 {
                    self.rdb_done(at);
                }
            }
            MasterPhase::RdbDisk { remaining } => {
                let rdb_part = *remaining;
                if let Some(rdb) = &mut self.master.rdb {
                    rdb.bytes += rdb_part;
                }
                self.rdb_done(at);
                let first = self.seen[Direction::MasterToReplica] + rdb_part;
                self.lose_stream_bytes(at, first, len - rdb_part, reason);
            }
            // Still looking after an earlier gap: this one is said too, and the search starts
            // over after it.
            MasterPhase::Stream
            | MasterPhase::Resync {
                after_gap: true, ..
            } => self.lose_stream_bytes(at, self.seen[Direction::MasterToReplica], len, reason),
            MasterPhase::Opaque | MasterPhase::Lost => {
                if self.master.stream.started {
                    self.master.stream.bytes += len;
                }
            }
            MasterPhase::Replies
            | MasterPhase::AwaitPayload { .. }
            | MasterPhase::RdbEof { .. }
            | MasterPhase::Resync { .. } => {
                self.desync(dir, at, self.seen[Direction::MasterToReplica], None, reason);
                self.enter_master(MasterPhase::Lost);
            }
        }
        self.seen[Direction::MasterToReplica] += len;
    }

    /// `len` stream bytes, from byte `first` of the direction on, went by unseen: a desync
    /// where the command they cut began (it is lost), then a search for the next command
    /// boundary after them. They are counted, so offsets stay exact.
    pub(in crate::analyzer::session) fn lose_stream_bytes(
        &mut self,
        at: Timestamp,
        first: u64,
        len: u64,
        reason: String,
    ) {
        let dir = Direction::MasterToReplica;
        let cut = self.master.stream.parser.partial_len();
        // The offset of the stream byte before `first` (the last one seen), less the cut part.
        let before = self.master.stream.offset_end();
        let offset = before.map(|o| o.saturating_sub(cut).saturating_add(1));
        self.desync(dir, at, first - cut, offset, reason);
        self.master.stream.bytes += len;
        self.resync_after_gap();
    }

    /// Starts looking for the next command boundary, with a parser that knows nothing of the
    /// command a gap cut, nor of the database or transaction it was in.
    pub(in crate::analyzer::session) fn resync_after_gap(&mut self) {
        self.master.stream.parser = resp::Parser::for_master_stream(self.cfg.limits);
        self.master.stream.db = None;
        self.master.stream.in_multi = false;
        self.enter_master(MasterPhase::Resync {
            finder: resp::BoundaryFinder::default(),
            after_gap: true,
            magic: None,
        });
    }

    /// Parses stream bytes that begin at byte `pos` of the master's direction.
    pub(in crate::analyzer::session) fn stream_bytes(
        &mut self,
        at: Timestamp,
        rest: &[u8],
        pos: u64,
    ) -> usize {
        let consumed = self.master.stream.parser.consumed();
        // In a compressed stream `pos` is where the compressed bytes being decoded begin, which
        // can be fewer than the stream bytes they carry.
        let (origin, stream_origin) = (
            pos.saturating_sub(consumed),
            self.master.stream.bytes - consumed,
        );
        let (n, r) = self.master.stream.parser.advance(rest);
        self.master.stream.bytes += n as u64;
        match r {
            Ok(None) => {}
            Ok(Some(Item::KeepAlive)) => self.emit(
                at,
                EventKind::KeepAlive {
                    dir: Direction::MasterToReplica,
                },
            ),
            Ok(Some(Item::Command(cmd))) => {
                self.on_stream_command(at, &cmd);
                self.master.stream.parser.give_back(cmd);
            }
            Err(f)
                if f.error == resp::Error::ExpectedArray(ZSTD_MAGIC[0])
                    && self.unseen_compression() =>
            {
                // A link joined late whose frames carried commands as they are (zstd's raw
                // blocks): the next frame's magic shows it compressed. Decoded from there.
                self.master.stream.parser = resp::Parser::for_master_stream(self.cfg.limits);
                self.enter_master(MasterPhase::Resync {
                    finder: resp::BoundaryFinder::default(),
                    after_gap: false,
                    magic: Some(MagicFinder::default()),
                });
            }
            Err(f) => {
                let first = stream_origin + f.at == 0;
                let byte = (f.at as usize)
                    .checked_sub(consumed as usize)
                    .and_then(|i| rest.get(i));
                let msg = if first && byte == Some(&b'V') {
                    // Valkey 9.2's compressed stream begins with its envelope, `VCS`.
                    "the stream begins with 'V', as Valkey's compression envelope (VCS) does: \
                     compressed, and not decoded by repl-sniff"
                        .to_string()
                } else {
                    format!("master stream is not RESP: {}", f.error)
                };
                // The offset of the byte the broken element starts at.
                let offset = (self.master.stream.base)
                    .map(|b| b.saturating_add(stream_origin + f.at).saturating_add(1));
                self.desync(Direction::MasterToReplica, at, origin + f.at, offset, msg);
                self.enter_master(MasterPhase::Lost);
            }
        }
        n
    }

    /// A stream that could be compressed without the analysis knowing: joined late, offsets
    /// not yet anchored, no handshake seen.
    fn unseen_compression(&self) -> bool {
        self.late.is_some()
            && self.master.stream.base.is_none()
            && self.handshake.compression.is_none()
            && self.master.compressed.is_none()
    }

    /// The master's answer starts the stream right away: says so, and where its offsets
    /// start (`base`: the offset of the byte before the first, when known).
    pub(in crate::analyzer::session) fn sync_stream(
        &mut self,
        at: Timestamp,
        sync: SyncKind,
        replid: Option<String>,
        offset: Option<u64>,
        base: Option<u64>,
    ) {
        self.sync_started(at, sync, replid, offset);
        self.master.stream.base = base;
        self.enter_master(MasterPhase::Stream);
    }

    pub(in crate::analyzer::session) fn on_stream_command(&mut self, at: Timestamp, cmd: &Command) {
        if self.on_target_command(at, cmd) {
            return;
        }
        let name = cmd.name();
        if self.master.stream.base.is_none() && name.is("REPLCONF") {
            if let (Some(late), Some(sub)) = (&mut self.late, cmd.arg(1)) {
                if sub.eq_ignore_case("GETACK") {
                    late.getack_at = Some(self.master.stream.bytes - cmd.wire_len());
                }
            }
        }
        let outside = self.role == Role::SlotMigration && is_syncslots(cmd, Some("STREAM-EOF"));
        let end = if outside {
            // The source's end-of-stream marker lies outside the applied-bytes count.
            self.master.stream.outside += cmd.wire_len();
            None
        } else {
            self.master.stream.offset_end()
        };
        let start = end.map(|e| e.saturating_add(1).saturating_sub(cmd.wire_len()));
        let mut sub = None;
        let mut in_multi = self.master.stream.in_multi;
        match name.as_bytes() {
            b"SELECT" => {
                if let Some(db) = cmd.arg(1).and_then(|a| a.as_i64()) {
                    self.master.stream.db = u32::try_from(db).ok();
                }
            }
            b"MULTI" => {
                self.master.stream.in_multi = true;
                in_multi = true;
            }
            b"EXEC" | b"DISCARD" => self.master.stream.in_multi = false,
            b"REPLCONF" => sub = cmd.arg(1).map(|a| Name::new(a.bytes)),
            _ => {}
        }
        let kind = EventKind::Command {
            start,
            end,
            name,
            sub,
            db: self.master.stream.db,
            in_multi,
            bytes: cmd.wire_len(),
        };
        self.emit(at, kind);
        if is_syncslots(cmd, None) && self.role == Role::Replication {
            self.forwarded(at, cmd, end);
        }
    }
}
