//! The master's reply lines before the stream: the answers to the handshake's requests in
//! order, the `PSYNC` answer that chooses the sync, and the RDB's framing line.

use super::{MasterPhase, RdbTransfer};
use crate::analyzer::event::{Channel, EventKind, Framing, SyncKind, WarningKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::analyzer::session::handshake::Pending;
use crate::analyzer::session::{Role, Session, MAX_OFFSET};
use crate::protocol::compression::Codec;
use crate::protocol::handshake::{self, Line, Reply, ID_LEN};
use crate::protocol::resp::Name;

impl Session {
    pub(in crate::analyzer::session) fn master_line(
        &mut self,
        at: Timestamp,
        rest: &[u8],
    ) -> usize {
        match self.master.lines.next_line(rest, self.cfg.max_reply_line) {
            Line::Partial => rest.len(),
            Line::TooLong { carried } => {
                let msg = format!(
                    "master sent a line longer than {} bytes before the stream",
                    self.cfg.max_reply_line
                );
                self.lose_master(
                    at,
                    self.seen[Direction::MasterToReplica] - carried as u64,
                    msg,
                );
                0
            }
            Line::Complete {
                line,
                used,
                carried,
            } => {
                self.on_master_line(
                    at,
                    &line,
                    self.seen[Direction::MasterToReplica] - carried as u64,
                );
                used
            }
        }
    }

    /// One reply line from the master, which began at byte `line_at` of its direction.
    pub(in crate::analyzer::session) fn on_master_line(
        &mut self,
        at: Timestamp,
        line: &[u8],
        line_at: u64,
    ) {
        let reply = handshake::parse_reply(line);
        if reply == Reply::KeepAlive {
            let dir = Direction::MasterToReplica;
            return self.emit(at, EventKind::KeepAlive { dir });
        }
        let shown = handshake::printable(line, 200);
        if let MasterPhase::AwaitPayload { legacy } = self.master.phase {
            return self.on_payload_line(at, reply, shown, legacy, line_at);
        }
        match self.handshake.pending.pop_front() {
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
            Some(Pending::Compression(level)) => {
                let to = Some(Name::new(b"REPLCONF"));
                self.emit(at, EventKind::Reply { to, reply: shown });
                // A refusal (`-ERR Master has not enabled replication compression`, or a level
                // that differs) is a handshake error, and the stream stays plain.
                if line[0] == b'+' {
                    let codec = Codec::Zstd;
                    self.handshake.compression = Some((codec, level));
                    let level = Some(level);
                    self.emit(at, EventKind::Compression { codec, level });
                }
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

    pub(in crate::analyzer::session) fn on_psync_reply(
        &mut self,
        at: Timestamp,
        reply: Reply<'_>,
        shown: String,
        line_at: u64,
    ) {
        match reply {
            Reply::FullResync { offset, .. } if offset > MAX_OFFSET => {
                let msg = format!(
                    "+FULLRESYNC offset {offset} is beyond the largest replication offset \
                     ({MAX_OFFSET}: the servers keep offsets as signed 64-bit numbers)"
                );
                self.lose_master(at, line_at, msg);
            }
            Reply::FullResync { replid, offset } => {
                let replid = Some(replid.to_ascii_lowercase());
                self.sync_started(at, SyncKind::Full, replid, Some(offset));
                self.master.stream.base = Some(offset);
                self.enter_master(MasterPhase::AwaitPayload { legacy: false });
            }
            Reply::Continue { replid } => {
                let replid = replid
                    .map(str::to_string)
                    .or(self.handshake.psync_replid.clone());
                let replid = replid.map(|r| r.to_ascii_lowercase());
                let base = self.handshake.psync_offset.map(|o| o.saturating_sub(1));
                let (sync, offset) = if self.handshake.dual_channel {
                    // Valkey's main connection after its RDB connection's snapshot: the full
                    // sync's stream, anchored on that snapshot's offset (`$ENDOFF`).
                    (SyncKind::DualChannel, base)
                } else {
                    (SyncKind::Partial, self.handshake.psync_offset)
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
                self.handshake.dual_channel = true;
                self.sync_started(at, SyncKind::DualChannel, None, None);
            }
            _ => self.emit(at, EventKind::SyncRejected { reply: shown }),
        }
    }

    pub(in crate::analyzer::session) fn on_payload_line(
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
                if let (true, Some(link)) = (self.handshake.rdb_channel, client_id) {
                    let channel = Channel::Rdb;
                    self.emit(at, EventKind::Channel { channel, link });
                }
                return;
            }
            Reply::Error(_) => {
                self.emit(at, EventKind::SyncRejected { reply: shown });
                self.enter_master(MasterPhase::Replies);
                return;
            }
            _ => {
                let msg = format!("expected the RDB ($<len> or $EOF:<mark>), got {shown}");
                return self.lose_master(at, line_at, msg);
            }
        };
        if legacy {
            self.sync_started(at, SyncKind::Sync, None, None);
        }
        self.emit(
            at,
            EventKind::RdbStart {
                framing,
                declared_bytes: declared,
            },
        );
        self.master.rdb = Some(RdbTransfer {
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
                MasterPhase::RdbEof {
                    mark,
                    tail: Vec::with_capacity(ID_LEN),
                    seen: 0,
                }
            }
            _ => MasterPhase::RdbDisk {
                remaining: declared.unwrap_or(0),
            },
        };
        self.enter_master(next);
        if declared == Some(0) {
            self.rdb_done(at);
        }
    }

    /// A slot migration's answer to `CLUSTER SYNCSLOTS SYNC` or `RDBCHANNEL`: its stream or its
    /// snapshot follows (protocol-next.md N6.2, N6.3).
    pub(in crate::analyzer::session) fn on_slot_reply(&mut self, at: Timestamp, reply: Reply<'_>) {
        let (sync, base) = match reply {
            // Its own offset space: the importing node ACKs the bytes it applied.
            Reply::SlotStream => (SyncKind::SlotStream, Some(0)),
            Reply::SlotSnapshot => (SyncKind::SlotSnapshot, None),
            _ => return,
        };
        self.sync_stream(at, sync, None, base, base);
    }

    /// The master's answer started a sync of kind `sync`: the one place that says so.
    pub(in crate::analyzer::session) fn sync_started(
        &mut self,
        at: Timestamp,
        sync: SyncKind,
        replid: Option<String>,
        offset: Option<u64>,
    ) {
        let kind = EventKind::SyncStart {
            sync,
            replid,
            offset,
        };
        self.emit(at, kind);
    }
}
