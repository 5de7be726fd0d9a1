//! The replica's direction: always a command stream (the handshake, `REPLCONF ACK`s, or a
//! plain client's commands). What it asks for decides what the master's direction is.

use super::handshake::Pending;
use super::master::MasterPhase;
use super::{ReplicaPhase, Role, Session};
use crate::analyzer::event::{Channel, EventKind, WarningKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::protocol::cluster::is_syncslots;
use crate::protocol::handshake;
use crate::protocol::resp::{self, Command, Item, Name};
use crate::protocol::tls::is_tls_record;

impl Session {
    pub(super) fn feed_requests(&mut self, at: Timestamp, bytes: &[u8]) {
        if self.seen[Direction::ReplicaToMaster] == 0 && is_tls_record(bytes) {
            self.seen[Direction::ReplicaToMaster] += bytes.len() as u64;
            let why = "the link is encrypted (a TLS ClientHello): repl-sniff cannot analyse it; \
                       bytes are still forwarded";
            return self.lose_requests(at, 0, why.to_string());
        }
        let mut from = 0;
        if let ReplicaPhase::Resync { finder, after_gap } = &mut self.replica.phase {
            let Some(found) = finder.find(bytes) else {
                self.seen[Direction::ReplicaToMaster] += bytes.len() as u64;
                return;
            };
            let (dir, after_gap) = (Direction::ReplicaToMaster, *after_gap);
            self.enter_replica(ReplicaPhase::Commands);
            // The header may have begun in earlier chunks: count back from where it ends.
            let header_at = self.seen[Direction::ReplicaToMaster] + found.resume as u64
                - found.header().len() as u64;
            if after_gap {
                let (position, offset, passed) = (header_at, None, found.skipped);
                self.emit(
                    at,
                    EventKind::Resumed {
                        dir,
                        position,
                        offset,
                        passed,
                    },
                );
            } else {
                let skipped = found.skipped;
                self.emit(at, EventKind::JoinedLate { dir, skipped });
            }
            self.replica.origin = header_at;
            self.parse_requests(at, found.header(), header_at);
            from = found.resume;
        }
        self.parse_requests(
            at,
            &bytes[from..],
            self.seen[Direction::ReplicaToMaster] + from as u64,
        );
        self.seen[Direction::ReplicaToMaster] += bytes.len() as u64;
    }

    /// Parses the replica's commands in `bytes`, which begin at byte `pos` of its direction.
    fn parse_requests(&mut self, at: Timestamp, bytes: &[u8], pos: u64) {
        let mut done = 0;
        while matches!(self.replica.phase, ReplicaPhase::Commands) && done < bytes.len() {
            let (n, r) = self.replica.requests.advance(&bytes[done..]);
            done += n;
            match r {
                Ok(None) if n == 0 => break,
                Ok(None) => {}
                Ok(Some(Item::KeepAlive)) => self.emit(
                    at,
                    EventKind::KeepAlive {
                        dir: Direction::ReplicaToMaster,
                    },
                ),
                Ok(Some(Item::Command(cmd))) => {
                    let end = pos + done as u64;
                    let start = end - cmd.wire_len();
                    let ranges = handshake::auth_argument_ranges(&cmd);
                    self.replica
                        .secrets
                        .extend(ranges.iter().map(|&(a, b)| (start + a, start + b)));
                    self.on_request(at, &cmd);
                    self.replica.requests.give_back(cmd);
                }
                Err(f) => {
                    let msg = format!("replica sent bytes that are not a command: {}", f.error);
                    let position = self.replica.origin + f.at;
                    self.lose_requests(at, position, msg);
                }
            }
        }
    }

    fn on_request(&mut self, at: Timestamp, cmd: &Command) {
        let name = cmd.name();
        let bytes = cmd.wire_len();
        if self.role == Role::Client {
            return self.emit(at, EventKind::ClientCommand { name, bytes });
        }
        if self.on_pushed(at, cmd) {
            return;
        }
        let is_ack = name.is("REPLCONF") && cmd.arg(1).is_some_and(|a| a.eq_ignore_case("ACK"));
        if is_ack {
            if let Some(offset) = cmd.arg(2).and_then(|a| a.as_i64()) {
                let fack = match (cmd.arg(3), cmd.arg(4)) {
                    (Some(k), Some(v)) if k.eq_ignore_case("FACK") => {
                        v.as_i64().and_then(|v| u64::try_from(v).ok())
                    }
                    _ => None,
                };
                let offset = u64::try_from(offset).unwrap_or(0);
                self.emit(at, EventKind::Ack { offset, fack });
                self.late_anchor(at, offset);
                // Only replicas ACK: this tells them apart when the capture missed the PSYNC.
                if self.role == Role::Undetermined {
                    self.set_role(at, Role::Replication);
                }
                return;
            }
        }
        let mut role = self.role;
        let pending = match name.as_str() {
            "REPLCONF" if cmd.arg(1).is_some_and(|a| a.eq_ignore_case("compression")) => {
                let level = cmd.arg(2).and_then(|a| a.as_i64());
                Pending::Compression(level.and_then(|l| u32::try_from(l).ok()).unwrap_or(0))
            }
            "PING" | "AUTH" | "REPLCONF" => Pending::Other(name),
            "PSYNC" => {
                role = Role::Replication;
                self.handshake.psync_replid =
                    cmd.arg(1).and_then(|a| a.as_str().map(str::to_string));
                self.handshake.psync_offset = cmd
                    .arg(2)
                    .and_then(|a| a.as_i64())
                    .and_then(|o| u64::try_from(o).ok());
                Pending::Psync
            }
            "SYNC" => {
                if role == Role::Undetermined {
                    role = Role::Sync;
                }
                Pending::Sync
            }
            // Atomic slot migration (protocol-next.md N6): a cluster node pulling slots.
            "CLUSTER" if is_syncslots(cmd, None) && role != Role::Client => {
                if is_syncslots(cmd, Some("ACK")) && role == Role::SlotMigration {
                    // `CLUSTER SYNCSLOTS ACK <state> <applied>`: bytes of the slot stream
                    // the importing node applied (no reply comes).
                    if let Some(applied) = cmd.arg(4).and_then(|a| a.as_i64()) {
                        let offset = u64::try_from(applied).unwrap_or(0);
                        return self.emit(at, EventKind::Ack { offset, fack: None });
                    }
                }
                role = Role::SlotMigration;
                Pending::Other(name)
            }
            _ if self.role == Role::Undetermined => {
                return self.become_client(at, Some((name, bytes)))
            }
            _ => {
                // A replica sending something unexpected after its handshake: show it, but
                // never its arguments (they could be anything, secrets included).
                return self.emit(at, EventKind::Request { name, args: vec![] });
            }
        };
        if self.handshake.pending.len() >= self.cfg.max_pending {
            return self.become_client(at, Some((name, bytes)));
        }
        self.handshake.pending.push_back(pending);
        let args = handshake::shown_args(cmd);
        self.emit(at, EventKind::Request { name, args });
        self.set_role(at, role);
        if name.is("REPLCONF") {
            self.on_replconf(at, cmd);
        }
    }

    /// A joined-late stream: the first ACK after a GETACK answers it with the offset just
    /// before the GETACK; when two answers give the same base, the stream is anchored.
    fn late_anchor(&mut self, at: Timestamp, ack: u64) {
        if self.master.stream.base.is_some() {
            return;
        }
        let Some(late) = &mut self.late else { return };
        let Some(before) = late.getack_at.take() else {
            return;
        };
        let base = ack.checked_sub(before);
        if base.is_none() || late.candidate != base {
            late.candidate = base;
            return;
        }
        self.master.stream.base = base;
        self.late = None;
        let offset = self.master.stream.offset_end().unwrap_or(0);
        self.emit(at, EventKind::Anchored { offset });
    }

    /// `REPLCONF` options that make this connection one of a two-connection sync.
    fn on_replconf(&mut self, at: Timestamp, cmd: &Command) {
        let mut i = 1;
        while let (Some(key), Some(value)) = (cmd.arg(i), cmd.arg(i + 1)) {
            i += 2;
            let id = || value.as_i64().and_then(|v| u64::try_from(v).ok());
            if key.eq_ignore_case("capa")
                && (value.eq_ignore_case("lz4") || value.eq_ignore_case("zstd"))
            {
                let message = format!(
                    "the replica offers compressed replication (capa {}): a Valkey master with \
                     repl-compression wraps the stream and the RDB in a compressed envelope \
                     repl-sniff cannot decode, and counts decoded bytes in the offsets",
                    value.as_str().unwrap_or("?")
                );
                let kind = WarningKind::WireFormat;
                self.emit(at, EventKind::Warning { kind, message });
            } else if key.eq_ignore_case("rdb-channel") {
                self.handshake.rdb_channel = value.eq_ignore_case("1");
            } else if key.eq_ignore_case("main-ch-client-id") {
                // Redis 8's RDB connection names its main connection.
                if let Some(link) = id() {
                    let channel = Channel::Rdb;
                    self.emit(at, EventKind::Channel { channel, link });
                }
            } else if key.eq_ignore_case("set-rdb-client-id") {
                // Valkey's main connection names its RDB connection.
                if let Some(link) = id() {
                    let channel = Channel::Main;
                    self.emit(at, EventKind::Channel { channel, link });
                }
            }
        }
    }

    pub(super) fn become_client(&mut self, at: Timestamp, name: Option<(Name, u64)>) {
        self.set_role(at, Role::Client);
        self.handshake.pending.clear();
        if !matches!(self.master.phase, MasterPhase::Lost) {
            self.enter_master(MasterPhase::Opaque);
        }
        if let Some((name, bytes)) = name {
            self.emit(at, EventKind::ClientCommand { name, bytes });
        }
    }

    /// `len` bytes of the replica's direction went by unseen. Commands are parsed again from
    /// the next command boundary after them; the command they cut is lost.
    pub(super) fn skip_requests(&mut self, at: Timestamp, len: u64, reason: String) {
        let position = self.seen[Direction::ReplicaToMaster] - self.replica.requests.partial_len();
        self.seen[Direction::ReplicaToMaster] += len;
        match &mut self.replica.phase {
            // Still looking after an earlier gap: this one is said too, and the search starts
            // over after it.
            ReplicaPhase::Commands
            | ReplicaPhase::Resync {
                after_gap: true, ..
            } => {
                self.desync(Direction::ReplicaToMaster, at, position, None, reason);
                self.replica.requests = resp::Parser::new(self.cfg.limits);
                self.enter_replica(ReplicaPhase::Resync {
                    finder: resp::BoundaryFinder::default(),
                    after_gap: true,
                });
            }
            ReplicaPhase::Resync { .. } | ReplicaPhase::Lost => {
                self.lose_requests(at, position, reason)
            }
        }
    }

    /// Stops the analysis of the replica's direction (once): what broke it begins at
    /// `position`. Its bytes are still counted.
    fn lose_requests(&mut self, at: Timestamp, position: u64, reason: String) {
        if !matches!(self.replica.phase, ReplicaPhase::Lost) {
            self.enter_replica(ReplicaPhase::Lost);
            self.desync(Direction::ReplicaToMaster, at, position, None, reason);
        }
    }

    /// Moves the replica's direction to `next`: the one place its phase changes.
    pub(super) fn enter_replica(&mut self, next: ReplicaPhase) {
        self.replica.phase = next;
    }
}
