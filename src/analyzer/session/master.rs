//! The master's direction: a phase machine. [`Session::enter`] is the one place the phase
//! changes; the replies that move it are matched in `on_master_line`, `on_psync_reply` and
//! `on_payload_line`.

use super::replica::{is_syncslots, is_tls_record};
use super::{Pending, Role, Session, MAX_OFFSET};
use crate::analyzer::event::{Channel, EventKind, Framing, SyncKind, WarningKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::protocol::handshake::{self, Line, Reply, ID_LEN};
use crate::protocol::resp::{self, Command, Item, Name};

/// Where the master's direction is.
#[derive(Debug)]
pub(super) enum Phase {
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
    Resync {
        finder: resp::BoundaryFinder,
        after_gap: bool,
    },
    /// A plain client's replies: forwarded, not parsed.
    Opaque,
    /// Analysis stopped after a desync; stream bytes are still counted.
    Lost,
}

/// The replication stream and its offsets.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) parser: resp::Parser,
    pub(super) started: bool,
    /// Offset of the byte just before the first stream byte, when known.
    pub(super) base: Option<u64>,
    pub(super) bytes: u64,
    /// Stream bytes outside the offset space (atomic slot migration's `STREAM-EOF`).
    pub(super) outside: u64,
    pub(super) db: Option<u32>,
    pub(super) in_multi: bool,
}

impl Stream {
    pub(super) fn offset_end(&self) -> Option<u64> {
        // The base is at most `MAX_OFFSET`, so this cannot saturate on any real link.
        self.base
            .map(|b| b.saturating_add(self.bytes.saturating_sub(self.outside)))
    }
}

/// An RDB transfer under way.
#[derive(Debug)]
pub(super) struct RdbTransfer {
    pub(super) framing: Framing,
    pub(super) started: Timestamp,
    pub(super) bytes: u64,
    pub(super) contents: Box<crate::protocol::rdb::Parser>,
    /// The header was said (`RdbHeader`).
    pub(super) header_said: bool,
}

impl Session {
    pub(super) fn feed_master(&mut self, at: Timestamp, bytes: &[u8]) {
        if self.seen[1] == 0 && is_tls_record(bytes) && !matches!(self.phase, Phase::Lost) {
            let why = "the link is encrypted (a TLS ServerHello): repl-sniff cannot analyse it; \
                       bytes are still forwarded";
            self.lose_master(at, 0, why.to_string());
        }
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            let used = match &mut self.phase {
                Phase::Replies => {
                    if self.pending.front() == Some(&Pending::Sync) {
                        // SYNC has no reply line: its payload starts right away.
                        self.pending.pop_front();
                        self.enter(Phase::AwaitPayload { legacy: true });
                        continue;
                    }
                    self.master_line(at, rest)
                }
                Phase::AwaitPayload { .. } => self.master_line(at, rest),
                Phase::RdbDisk { remaining } => {
                    let take = (*remaining).min(rest.len() as u64);
                    *remaining -= take;
                    let finished = *remaining == 0;
                    if let Some(rdb) = &mut self.rdb {
                        rdb.bytes += take;
                        rdb.contents.feed(&rest[..take as usize]);
                    }
                    if finished {
                        self.rdb_done(at);
                    }
                    take as usize
                }
                Phase::RdbEof { .. } => self.scan_eof_mark(at, rest),
                Phase::Resync { finder, after_gap } => match finder.find(rest) {
                    Some(found) => {
                        let (dir, after_gap) = (Direction::MasterToReplica, *after_gap);
                        let header = found.header();
                        // The header may have begun in earlier chunks: count back from where it ends.
                        let header_at = self.seen[1] + found.resume as u64 - header.len() as u64;
                        if after_gap {
                            // Offsets stayed exact across the gap: the bytes passed over count
                            // (the header's, which earlier chunks may have counted, once parsed).
                            let bytes = self.stream.bytes + found.resume as u64;
                            self.stream.bytes = bytes - header.len() as u64;
                            let (position, offset) = (header_at, self.stream.offset_end());
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
                        self.enter(Phase::Stream);
                        self.stream_bytes(at, header, header_at);
                        found.resume
                    }
                    None => {
                        if *after_gap {
                            self.stream.bytes += rest.len() as u64;
                        }
                        rest.len()
                    }
                },
                Phase::Stream => self.stream_bytes(at, rest, self.seen[1]),
                Phase::Opaque | Phase::Lost => {
                    if self.stream.started {
                        self.stream.bytes += rest.len() as u64;
                    }
                    rest.len()
                }
            };
            done += used;
            self.seen[1] += used as u64;
            self.say_rdb_header(at);
        }
    }

    /// Says the RDB's header once its leading AUX fields went by: which version the master
    /// chose for this replica matters before the transfer ends (or fails).
    fn say_rdb_header(&mut self, at: Timestamp) {
        let Some(rdb) = self.rdb.as_mut().filter(|r| !r.header_said) else {
            return;
        };
        if let Some(header) = rdb.contents.header() {
            rdb.header_said = true;
            self.emit(at, EventKind::RdbHeader { header });
        }
    }

    fn master_line(&mut self, at: Timestamp, rest: &[u8]) -> usize {
        match self.lines.next_line(rest, self.cfg.max_reply_line) {
            Line::Partial => rest.len(),
            Line::TooLong { carried } => {
                let msg = format!(
                    "master sent a line longer than {} bytes before the stream",
                    self.cfg.max_reply_line
                );
                self.lose_master(at, self.seen[1] - carried as u64, msg);
                0
            }
            Line::Complete {
                line,
                used,
                carried,
            } => {
                self.on_master_line(at, &line, self.seen[1] - carried as u64);
                used
            }
        }
    }

    /// Stops the analysis of the master's direction: what broke it begins at `position`.
    fn lose_master(&mut self, at: Timestamp, position: u64, reason: String) {
        let offset = self
            .stream
            .started
            .then(|| self.stream.offset_end())
            .flatten();
        self.desync(Direction::MasterToReplica, at, position, offset, reason);
        self.enter(Phase::Lost);
    }

    /// One reply line from the master, which began at byte `line_at` of its direction.
    fn on_master_line(&mut self, at: Timestamp, line: &[u8], line_at: u64) {
        let reply = handshake::parse_reply(line);
        if reply == Reply::KeepAlive {
            let dir = Direction::MasterToReplica;
            return self.emit(at, EventKind::KeepAlive { dir });
        }
        let shown = handshake::printable(line, 200);
        if let Phase::AwaitPayload { legacy } = self.phase {
            return self.on_payload_line(at, reply, shown, legacy, line_at);
        }
        match self.pending.pop_front() {
            Some(Pending::Psync) => {
                let to = Some(Name::new(b"PSYNC"));
                self.emit(
                    at,
                    EventKind::Reply {
                        to,
                        reply: shown.clone(),
                    },
                );
                self.on_psync_reply(at, reply, shown, line_at);
            }
            Some(Pending::Other(name)) if matches!(line[0], b'+' | b'-') => {
                // A Valkey migration's `ESTABLISH` (the link's one reply), or Redis's
                // `CLUSTER SYNCSLOTS SYNC`/`RDBCHANNEL`.
                let establish = (self.push.is_some() && name.is("CLUSTER")).then(|| shown.clone());
                self.emit(
                    at,
                    EventKind::Reply {
                        to: Some(name),
                        reply: shown,
                    },
                );
                if let Some(shown) = establish {
                    self.on_establish_reply(at, &reply, &shown);
                } else if self.role == Role::SlotMigration && self.push.is_none() {
                    self.on_slot_reply(at, reply);
                }
                if name.is("AUTH") && line[0] == b'-' {
                    let message = format!(
                        "the master refused AUTH ({}): the replica cannot sync until its \
                         masterauth (and masteruser) match",
                        handshake::printable(line, 120)
                    );
                    let kind = WarningKind::AuthFailed;
                    self.emit(at, EventKind::Warning { kind, message });
                }
            }
            None if matches!(line[0], b'+' | b'-') => {
                self.emit(
                    at,
                    EventKind::Reply {
                        to: None,
                        reply: shown,
                    },
                );
            }
            _ if self.role == Role::Undetermined => {
                // Not a handshake answer (e.g. `PING hello` gets a bulk reply): a client.
                self.become_client(at, None);
            }
            _ => {
                let msg = format!("unexpected answer from master during the handshake: {shown}");
                self.lose_master(at, line_at, msg);
            }
        }
    }

    fn on_psync_reply(&mut self, at: Timestamp, reply: Reply<'_>, shown: String, line_at: u64) {
        match reply {
            Reply::FullResync { offset, .. } if offset > MAX_OFFSET => {
                let msg = format!(
                    "+FULLRESYNC offset {offset} is beyond the largest replication offset \
                     ({MAX_OFFSET}: the servers keep offsets as signed 64-bit numbers)"
                );
                self.lose_master(at, line_at, msg);
            }
            Reply::FullResync { replid, offset } => {
                self.emit(
                    at,
                    EventKind::SyncStart {
                        sync: SyncKind::Full,
                        replid: Some(replid.to_ascii_lowercase()),
                        offset: Some(offset),
                    },
                );
                self.stream.base = Some(offset);
                self.enter(Phase::AwaitPayload { legacy: false });
            }
            Reply::Continue { replid } => {
                let replid = replid.map(str::to_string).or(self.psync_replid.clone());
                let replid = replid.map(|r| r.to_ascii_lowercase());
                let base = self.psync_offset.map(|o| o.saturating_sub(1));
                let (sync, offset) = if self.dual_channel {
                    // Valkey's main connection after its RDB connection's snapshot: the full
                    // sync's stream, anchored on that snapshot's offset (`$ENDOFF`).
                    (SyncKind::DualChannel, base)
                } else {
                    (SyncKind::Partial, self.psync_offset)
                };
                self.sync_stream(at, sync, replid, offset, base);
            }
            Reply::RdbChannelSync { client_id } => {
                self.sync_stream(at, SyncKind::RdbChannel, None, None, None);
                let (channel, link) = (Channel::Main, client_id);
                self.emit(at, EventKind::Channel { channel, link });
                self.hold_until_anchored(at);
            }
            // Valkey: the main link PSYNCs again once the RDB connection has its snapshot.
            Reply::DualChannelSync => {
                self.dual_channel = true;
                let (sync, replid, offset) = (SyncKind::DualChannel, None, None);
                self.emit(
                    at,
                    EventKind::SyncStart {
                        sync,
                        replid,
                        offset,
                    },
                );
            }
            _ => self.emit(at, EventKind::SyncRejected { reply: shown }),
        }
    }

    fn on_payload_line(
        &mut self,
        at: Timestamp,
        reply: Reply<'_>,
        shown: String,
        legacy: bool,
        line_at: u64,
    ) {
        let (framing, declared) = match reply {
            Reply::BulkLen(n) => (Framing::Disk, Some(n)),
            Reply::EofMark(_) => (Framing::Diskless, None),
            Reply::EndOffset { client_id, .. } => {
                // Valkey's dual-channel RDB connection: an announcement before `$EOF:`.
                let to = Some(Name::new(b"SYNC"));
                self.emit(at, EventKind::Reply { to, reply: shown });
                if let (true, Some(link)) = (self.rdb_channel, client_id) {
                    let channel = Channel::Rdb;
                    self.emit(at, EventKind::Channel { channel, link });
                }
                return;
            }
            Reply::Error(_) => {
                self.emit(at, EventKind::SyncRejected { reply: shown });
                self.enter(Phase::Replies);
                return;
            }
            _ => {
                let msg = format!("expected the RDB ($<len> or $EOF:<mark>), got {shown}");
                return self.lose_master(at, line_at, msg);
            }
        };
        if legacy {
            self.emit(
                at,
                EventKind::SyncStart {
                    sync: SyncKind::Sync,
                    replid: None,
                    offset: None,
                },
            );
        }
        self.emit(
            at,
            EventKind::RdbStart {
                framing,
                declared_bytes: declared,
            },
        );
        self.rdb = Some(RdbTransfer {
            framing,
            started: at,
            bytes: 0,
            contents: Box::new(crate::protocol::rdb::Parser::new(self.cfg.rdb_top)),
            header_said: false,
        });
        let next = match reply {
            Reply::EofMark(m) => {
                let mut mark = [0; ID_LEN];
                mark.copy_from_slice(m);
                Phase::RdbEof {
                    mark,
                    tail: Vec::with_capacity(ID_LEN),
                    seen: 0,
                }
            }
            _ => Phase::RdbDisk {
                remaining: declared.unwrap_or(0),
            },
        };
        self.enter(next);
        if declared == Some(0) {
            self.rdb_done(at);
        }
    }

    /// Looks for the end mark of a diskless RDB; consumes up to and including it.
    ///
    /// The RDB parser is fed only bytes known to be RDB: the last `ID_LEN - 1` bytes seen are
    /// held back in `tail` until the next bytes show they do not begin the mark, so that what
    /// follows the mark (the stream) never reaches it, however the input was split.
    fn scan_eof_mark(&mut self, at: Timestamp, rest: &[u8]) -> usize {
        let Phase::RdbEof { mark, tail, seen } = &mut self.phase else {
            return 0;
        };
        let contents = self.rdb.as_mut().map(|r| &mut r.contents);
        // A mark split across chunks: search the held tail joined with the new head.
        let head = &rest[..rest.len().min(ID_LEN - 1)];
        let mut joint = [0u8; 2 * ID_LEN];
        joint[..tail.len()].copy_from_slice(tail);
        joint[tail.len()..tail.len() + head.len()].copy_from_slice(head);
        let joint = &joint[..tail.len() + head.len()];
        let found = match memchr::memmem::find(joint, mark) {
            Some(i) if i < tail.len() => Some((i, 0)),
            _ => memchr::memmem::find(rest, mark).map(|j| (tail.len(), j)),
        };
        let Some((from_tail, from_rest)) = found else {
            // No mark yet: everything but the last ID_LEN - 1 bytes is RDB.
            *seen += rest.len() as u64;
            let keep = ID_LEN - 1;
            let total = tail.len() + rest.len();
            let release = total.saturating_sub(keep);
            let from_tail = release.min(tail.len());
            let from_rest = release - from_tail;
            // Where the mark should have begun, once the RDB ended and 40 bytes followed. It
            // is counted from the RDB's end, not from where the chunk ends, so that it does
            // not depend on how the input was split.
            let mut overdue = None;
            if let Some(c) = contents {
                c.feed(&tail[..from_tail]);
                c.feed(&rest[..from_rest]);
                if c.is_complete() && *seen >= c.position() + ID_LEN as u64 {
                    let payload_at = self.seen[1] + rest.len() as u64 - *seen;
                    overdue = Some(payload_at + c.position());
                }
            }
            tail.drain(..from_tail);
            tail.extend_from_slice(&rest[from_rest..]);
            if let Some(mark_at) = overdue {
                self.mark_missing(at, mark_at);
            }
            return rest.len();
        };
        // The mark ends `end` bytes into `rest`, and begins `rdb_bytes` into the payload.
        let end = from_rest + ID_LEN - (tail.len() - from_tail);
        let rdb_bytes = (*seen + end as u64).saturating_sub(ID_LEN as u64);
        let mut early_end = None;
        if let Some(c) = contents {
            c.feed(&tail[..from_tail]);
            c.feed(&rest[..from_rest]);
            // The RDB ended before the mark began: the 40 bytes after its end were not the
            // mark, as a split input would have shown before this mark arrived.
            if c.is_complete() && c.position() < rdb_bytes {
                early_end = Some(c.position());
            }
        }
        if let Some(rdb_end) = early_end {
            let payload_at = self.seen[1] - *seen;
            self.mark_missing(at, payload_at + rdb_end);
            return rest.len();
        }
        if let Some(rdb) = &mut self.rdb {
            rdb.bytes = rdb_bytes;
        }
        self.rdb_done(at);
        end
    }

    /// A diskless RDB ended whole, but what followed it was not its end mark (which should
    /// have begun at byte `mark_at` of the direction): the RDB is reported, then the link is
    /// given up.
    fn mark_missing(&mut self, at: Timestamp, mark_at: u64) {
        if let Some(bytes) = self.rdb.as_ref().map(|r| r.contents.position()) {
            self.rdb_aborted(at, bytes, None);
        }
        let msg = "the diskless RDB ended, but the 40 bytes after it are not the EOF mark it \
                   announced"
            .to_string();
        self.lose_master(at, mark_at, msg);
    }

    /// The transfer ended after `bytes` of the RDB (`declared` announced): says so, with what
    /// the RDB held so far.
    pub(super) fn rdb_aborted(&mut self, at: Timestamp, bytes: u64, declared: Option<u64>) {
        // A diskless RDB's last bytes were held back in case they began the end mark; none
        // came, so they are the RDB's.
        if let (Phase::RdbEof { tail, .. }, Some(rdb)) = (&mut self.phase, &mut self.rdb) {
            rdb.contents.feed(tail);
            tail.clear();
        }
        self.say_rdb_header(at);
        let Some(rdb) = &mut self.rdb else { return };
        let framing = rdb.framing;
        let contents = rdb_summary(&mut rdb.contents, self.cfg.show_keys);
        let aborted = EventKind::RdbAborted {
            framing,
            bytes,
            declared,
        };
        self.emit(at, aborted);
        self.emit(at, EventKind::RdbContents { contents });
    }

    /// `len` bytes were forwarded but not seen: offsets stay exact where the framing allows.
    pub(super) fn skip_master(&mut self, at: Timestamp, len: u64, reason: String) {
        let dir = Direction::MasterToReplica;
        match &mut self.phase {
            Phase::RdbDisk { remaining } if len <= *remaining => {
                // The framing says exactly where the RDB ends: nothing is lost.
                *remaining -= len;
                if let Some(rdb) = &mut self.rdb {
                    rdb.bytes += len;
                }
                if *remaining == 0 {
                    self.rdb_done(at);
                }
            }
            Phase::RdbDisk { remaining } => {
                let rdb_part = *remaining;
                if let Some(rdb) = &mut self.rdb {
                    rdb.bytes += rdb_part;
                }
                self.rdb_done(at);
                let first = self.seen[1] + rdb_part;
                self.lose_stream_bytes(at, first, len - rdb_part, reason);
            }
            // Still looking after an earlier gap: this one is said too, and the search starts
            // over after it.
            Phase::Stream
            | Phase::Resync {
                after_gap: true, ..
            } => self.lose_stream_bytes(at, self.seen[1], len, reason),
            Phase::Opaque | Phase::Lost => {
                if self.stream.started {
                    self.stream.bytes += len;
                }
            }
            Phase::Replies
            | Phase::AwaitPayload { .. }
            | Phase::RdbEof { .. }
            | Phase::Resync { .. } => {
                self.desync(dir, at, self.seen[1], None, reason);
                self.enter(Phase::Lost);
            }
        }
        self.seen[1] += len;
    }

    /// `len` stream bytes, from byte `first` of the direction on, went by unseen: a desync
    /// where the command they cut began (it is lost), then a search for the next command
    /// boundary after them. They are counted, so offsets stay exact.
    fn lose_stream_bytes(&mut self, at: Timestamp, first: u64, len: u64, reason: String) {
        let dir = Direction::MasterToReplica;
        let cut = self.stream.parser.partial_len();
        // The offset of the stream byte before `first` (the last one seen), less the cut part.
        let before = self.stream.offset_end();
        let offset = before.map(|o| o.saturating_sub(cut).saturating_add(1));
        self.desync(dir, at, first - cut, offset, reason);
        self.stream.bytes += len;
        self.resync_after_gap();
    }

    /// Starts looking for the next command boundary, with a parser that knows nothing of the
    /// command a gap cut, nor of the database or transaction it was in.
    fn resync_after_gap(&mut self) {
        self.stream.parser = resp::Parser::for_master_stream(self.cfg.limits);
        self.stream.db = None;
        self.stream.in_multi = false;
        self.enter(Phase::Resync {
            finder: resp::BoundaryFinder::default(),
            after_gap: true,
        });
    }

    fn rdb_done(&mut self, at: Timestamp) {
        self.say_rdb_header(at);
        if let Some(rdb) = &mut self.rdb {
            let kind = EventKind::RdbEnd {
                framing: rdb.framing,
                bytes: rdb.bytes,
                duration_us: at.since(rdb.started).as_micros() as u64,
            };
            let contents = rdb_summary(&mut rdb.contents, self.cfg.show_keys);
            self.emit(at, kind);
            self.emit(at, EventKind::RdbContents { contents });
        }
        if self.role == Role::Sync && self.stream.base.is_some() {
            // Valkey's RDB connection announced an offset, but no stream follows on it.
            self.stream.base = None;
        }
        self.enter(Phase::Stream);
    }

    /// Moves the master's direction to `next`: the one place its phase changes.
    pub(super) fn enter(&mut self, next: Phase) {
        if matches!(next, Phase::Stream) {
            self.stream.started = true;
        }
        self.phase = next;
    }

    /// Parses stream bytes that begin at byte `pos` of the master's direction.
    fn stream_bytes(&mut self, at: Timestamp, rest: &[u8], pos: u64) -> usize {
        let consumed = self.stream.parser.consumed();
        let (origin, stream_origin) = (pos - consumed, self.stream.bytes - consumed);
        let (n, r) = self.stream.parser.advance(rest);
        self.stream.bytes += n as u64;
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
                self.stream.parser.give_back(cmd);
            }
            Err(f) => {
                let msg = format!("master stream is not RESP: {}", f.error);
                // The offset of the byte the broken element starts at.
                let offset = (self.stream.base)
                    .map(|b| b.saturating_add(stream_origin + f.at).saturating_add(1));
                self.desync(Direction::MasterToReplica, at, origin + f.at, offset, msg);
                self.enter(Phase::Lost);
            }
        }
        n
    }

    /// A slot migration's answer to `CLUSTER SYNCSLOTS SYNC` or `RDBCHANNEL`: its stream or its
    /// snapshot follows (protocol-next.md N6.2, N6.3).
    fn on_slot_reply(&mut self, at: Timestamp, reply: Reply<'_>) {
        let (sync, base) = match reply {
            // Its own offset space: the importing node ACKs the bytes it applied.
            Reply::SlotStream => (SyncKind::SlotStream, Some(0)),
            Reply::SlotSnapshot => (SyncKind::SlotSnapshot, None),
            _ => return,
        };
        self.sync_stream(at, sync, None, base, base);
    }

    /// The master's answer starts the stream right away: says so, and where its offsets
    /// start (`base`: the offset of the byte before the first, when known).
    fn sync_stream(
        &mut self,
        at: Timestamp,
        sync: SyncKind,
        replid: Option<String>,
        offset: Option<u64>,
        base: Option<u64>,
    ) {
        self.emit(
            at,
            EventKind::SyncStart {
                sync,
                replid,
                offset,
            },
        );
        self.stream.base = base;
        self.enter(Phase::Stream);
    }

    fn on_stream_command(&mut self, at: Timestamp, cmd: &Command) {
        if self.on_target_command(at, cmd) {
            return;
        }
        let name = cmd.name();
        if self.stream.base.is_none() && name.is("REPLCONF") {
            if let (Some(late), Some(sub)) = (&mut self.late, cmd.arg(1)) {
                if sub.eq_ignore_case("GETACK") {
                    late.getack_at = Some(self.stream.bytes - cmd.wire_len());
                }
            }
        }
        let outside = self.role == Role::SlotMigration && is_syncslots(cmd, Some("STREAM-EOF"));
        let end = if outside {
            // The source's end-of-stream marker lies outside the applied-bytes count.
            self.stream.outside += cmd.wire_len();
            None
        } else {
            self.stream.offset_end()
        };
        let start = end.map(|e| e.saturating_add(1).saturating_sub(cmd.wire_len()));
        let mut sub = None;
        let mut in_multi = self.stream.in_multi;
        match name.as_bytes() {
            b"SELECT" => {
                if let Some(db) = cmd.arg(1).and_then(|a| a.as_i64()) {
                    self.stream.db = u32::try_from(db).ok();
                }
            }
            b"MULTI" => {
                self.stream.in_multi = true;
                in_multi = true;
            }
            b"EXEC" | b"DISCARD" => self.stream.in_multi = false,
            b"REPLCONF" => sub = cmd.arg(1).map(|a| Name::new(a.bytes)),
            _ => {}
        }
        let kind = EventKind::Command {
            start,
            end,
            name,
            sub,
            db: self.stream.db,
            in_multi,
            bytes: cmd.wire_len(),
        };
        self.emit(at, kind);
        if is_syncslots(cmd, None) && self.role == Role::Replication {
            self.forwarded(at, cmd, end);
        }
    }
}

/// The RDB's summary as events carry it: key names hidden unless asked for.
fn rdb_summary(
    parser: &mut crate::protocol::rdb::Parser,
    show_keys: bool,
) -> Box<crate::protocol::rdb::Summary> {
    let mut summary = parser.finish();
    if !show_keys {
        summary.hide_keys();
    }
    Box::new(summary)
}
