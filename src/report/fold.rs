//! The final report: a fold over events, per session, serialized as the `--report-json` file
//! and rendered as the summary printed at exit.
//!
//! The JSON shape is a public interface (README "Report schema"): fields are added, never
//! renamed or removed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analyzer::event::{Channel, Event, EventKind, Framing, Role, SyncKind, SyncReason};
use crate::analyzer::input::{Direction, Timestamp};
use crate::report::history::ReplicaHistory;
use crate::report::timing::{Overall, Timing};

/// Most handshake requests and errors listed per session.
pub const MAX_LISTED: usize = 64;

/// Everything repl-sniff saw in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always `"repl-sniff"`.
    pub tool: &'static str,
    /// The version of repl-sniff that wrote it.
    pub version: &'static str,
    /// One entry per TCP connection, in the order they were opened.
    pub sessions: Vec<SessionReport>,
    /// Accepted connections closed because the upstream could not be reached.
    pub upstream_connect_failures: u64,
    /// Ended sessions left out because the report keeps only the most recent ones.
    pub sessions_dropped: u64,
    /// Timing over all the sessions above (per-session histograms added together).
    pub overall: Overall,
    /// Each replica's history across its links, for the life of the process (a replica is
    /// its host and listening port).
    pub replicas: Vec<ReplicaHistory>,
    /// `sniff` only: packets captured and dropped by the kernel.
    pub capture: Option<CaptureStats>,
}

/// What a live capture (`sniff`) went through.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CaptureStats {
    /// Packets the filter let through.
    pub packets: u64,
    /// Packets the kernel dropped because the capture fell behind (their bytes are gaps).
    pub kernel_drops: u64,
    /// TCP segments analysed.
    pub tcp_segments: u64,
}

impl Report {
    /// A report over the given sessions.
    pub fn new(mut sessions: Vec<SessionReport>, upstream_connect_failures: u64) -> Report {
        sessions.sort_by_key(|s| s.id);
        let overall = Overall::of(sessions.iter().map(|s| &s.timing));
        Report {
            tool: "repl-sniff",
            version: env!("CARGO_PKG_VERSION"),
            sessions,
            upstream_connect_failures,
            sessions_dropped: 0,
            overall,
            replicas: Vec::new(),
            capture: None,
        }
    }
}

/// What happened on one connection.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// Session id (order of acceptance).
    pub id: u64,
    /// `"replication"` (sent PSYNC), `"sync"` (legacy SYNC, e.g. redis-cli --replica/--rdb)
    /// or `"client"` (anything else): the session's [`Role`], as its events said.
    pub kind: Role,
    /// The connecting side's address.
    pub replica: String,
    /// The upstream's address.
    pub upstream: String,
    /// When the connection was accepted.
    pub started_at: Timestamp,
    /// When it ended (null while live).
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The replica's handshake.
    pub handshake: HandshakeReport,
    /// The master's sync decision.
    pub sync: SyncReport,
    /// The RDB transfer, if there was one.
    pub rdb: Option<RdbReport>,
    /// Replication offsets.
    pub offsets: OffsetsReport,
    /// The replication stream.
    pub stream: StreamReport,
    /// Per command name (upper case): stream commands of a replication/sync session, or the
    /// commands a client sent.
    pub commands: BTreeMap<String, CommandCount>,
    /// `REPLCONF ACK`s received from the replica.
    pub acks: u64,
    /// Bare `\n` keep-alives per direction.
    pub keepalives: KeepAlives,
    /// Bytes forwarded per direction.
    pub bytes: ByteCounts,
    /// Null, or why the analysis lost track (the first desync, with direction and offset).
    pub desync: Option<String>,
    /// Every desync, in detail.
    pub desyncs: Vec<DesyncReport>,
    /// Returns true if and only if the capture began after the connection did (replay only).
    pub joined_late: bool,
    /// Ack latency, heartbeat intervals, lag, throughput and warnings (README "Timing").
    pub timing: Timing,
    /// How a full sync went, step by step (null without one).
    pub timeline: Option<Timeline>,
    /// The connections of a two-connection full sync (Redis 8 RDB channel, Valkey dual
    /// channel): this one, and its partner once paired. The partner's RDB, errors and desyncs
    /// are reported here; it is not listed as a session of its own. Empty for a sync on one
    /// connection.
    pub channels: Vec<ChannelReport>,
}

/// A full sync step by step (README "Diagnosis"): where the time went, and what the master
/// had to buffer meanwhile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// From the connection to the master's answer to `PSYNC`/`SYNC`.
    pub handshake_ms: f64,
    /// From that answer to the RDB's first byte: the master's BGSAVE (or fork) and its
    /// `repl-diskless-sync-delay`.
    pub bgsave_wait_ms: Option<f64>,
    /// `\n` keep-alives the master sent while the replica waited.
    pub bgsave_keepalives: u64,
    /// The RDB transfer.
    pub transfer_ms: Option<f64>,
    /// From the RDB's end to the replica's first ACK: it flushed and loaded the RDB.
    pub load_ms: Option<f64>,
    /// `\n` keep-alives the replica sent while it loaded.
    pub load_keepalives: u64,
    /// Stream bytes forwarded by the first ACK: what the master had buffered for the replica
    /// during the sync (compare with `client-output-buffer-limit replica`).
    pub buffered_bytes: Option<u64>,
    /// From the RDB's end to the ACK covering those bytes: the replica caught up.
    pub catch_up_ms: Option<f64>,
}

/// One connection of a two-connection full sync.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    /// `main` (handshake, stream, ACKs) or `rdb` (the snapshot).
    pub role: Channel,
    /// Its session id (order of acceptance).
    pub session: u64,
    /// The client id that paired the two.
    pub link: u64,
    /// The connecting side's address.
    pub replica: String,
    /// The upstream's address.
    pub upstream: String,
    /// When the connection was accepted.
    pub started_at: Timestamp,
    /// When it ended (null while live).
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Bytes forwarded per direction.
    pub bytes: ByteCounts,
}

/// The replica's handshake as seen on the wire.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HandshakeReport {
    /// Each handshake command, with `AUTH` passwords redacted (the first 64).
    pub requests: Vec<String>,
    /// `REPLCONF listening-port`.
    pub listening_port: Option<u16>,
    /// `REPLCONF ip-address`.
    pub ip_address: Option<String>,
    /// Every `capa` announced.
    pub capa: Vec<String>,
    /// Returns true if and only if the replica sent `AUTH`.
    pub auth: bool,
    /// The `AUTH` username, for the two-argument form (never the password).
    pub auth_user: Option<String>,
    /// Error answers from the master during the handshake (the first 64).
    pub errors: Vec<String>,
    /// Every other `REPLCONF` option and its last value (the first 64 names): `rdb-only`,
    /// `rdb-channel`, `main-ch-client-id`, `rdb-no-compress`, `rdb-no-checksum`, `version`, …
    pub options: BTreeMap<String, String>,
}

/// The master's sync decision.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// `"full"`, `"partial"` or `"none"`.
    #[serde(rename = "type")]
    pub kind: SyncType,
    /// How it was asked for and delivered: `"psync"`, `"sync"` (legacy) or `"rdb_channel"`.
    pub mode: Option<SyncMode>,
    /// The master's replication id.
    pub replid: Option<String>,
    /// The `+FULLRESYNC` offset, or the `PSYNC` offset for a partial sync.
    pub offset: Option<u64>,
    /// The replica's `PSYNC` arguments (the first, for a dual-channel main connection).
    pub requested: Option<String>,
    /// Why it happened (README "Diagnosis").
    pub reason: Option<ReasonReport>,
    /// The master's refusal, if it refused.
    pub rejected: Option<String>,
    /// When the master answered.
    pub at: Option<Timestamp>,
}

/// Why a sync happened.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonReport {
    /// `first_sync`, `replica_restarted`, `replid_mismatch`, `offset_outside_backlog`,
    /// `replica_ahead`, `failover`, `partial_granted`, `tool` or `unknown`.
    pub code: SyncReason,
    /// The backlog a full sync would have needed, or the gap a partial one filled.
    pub gap_bytes: Option<u64>,
    /// In a sentence, with the numbers.
    pub message: String,
}

/// What the master gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncType {
    /// An RDB, then the stream.
    Full,
    /// The stream from the replica's offset (`+CONTINUE`).
    Partial,
    /// No sync (a client, a refusal, a handshake cut short).
    None,
    /// Slots pulled by another cluster node (atomic slot migration), not a replica's sync.
    Slots,
}

impl SyncType {
    /// The name used in the report and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncType::Full => "full",
            SyncType::Partial => "partial",
            SyncType::None => "none",
            SyncType::Slots => "slots",
        }
    }
}

/// How a sync was asked for and delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// `PSYNC`, the RDB (if any) on the same connection.
    Psync,
    /// Legacy `SYNC`.
    Sync,
    /// `PSYNC` answered `+RDBCHANNELSYNC`: the RDB comes on another connection (Redis 8).
    RdbChannel,
    /// `PSYNC` answered `+DUALCHANNELSYNC`: the RDB comes on another connection (Valkey 8).
    DualChannel,
    /// `CLUSTER SYNCSLOTS SYNC` answered `+RDBCHANNELSYNCSLOTS`: the migrating slots' commands.
    SlotStream,
    /// `CLUSTER SYNCSLOTS RDBCHANNEL` answered `+SLOTSSNAPSHOT`: the slots' keys.
    SlotSnapshot,
}

impl SyncMode {
    /// The name used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Psync => "psync",
            SyncMode::Sync => "sync",
            SyncMode::RdbChannel => "rdb_channel",
            SyncMode::DualChannel => "dual_channel",
            SyncMode::SlotStream => "slot_stream",
            SyncMode::SlotSnapshot => "slot_snapshot",
        }
    }
}

/// An RDB transfer.
#[derive(Debug, Clone, Serialize)]
pub struct RdbReport {
    /// `"disk"` or `"diskless"`.
    pub framing: Framing,
    /// RDB payload bytes (framing and EOF marks excluded).
    pub bytes: u64,
    /// The announced length (disk framing).
    pub declared_bytes: Option<u64>,
    /// When the framing line arrived.
    pub started_at: Timestamp,
    /// From the framing line to the last byte, when complete.
    pub duration_ms: Option<f64>,
    /// Returns true if and only if the whole payload was seen.
    pub complete: bool,
    /// What the RDB contains, parsed as it streamed by.
    pub contents: Option<crate::protocol::rdb::Summary>,
}

/// Replication offsets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OffsetsReport {
    /// Offset of the first stream byte.
    pub start: Option<u64>,
    /// Offset of the last stream byte forwarded.
    pub end: Option<u64>,
    /// The last `REPLCONF ACK` offset.
    pub acked: Option<u64>,
    /// The last `FACK` offset (Redis ≥ 7.2 replicas with AOF).
    pub fsynced: Option<u64>,
}

/// The replication stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    /// Bytes that count in the offset.
    pub bytes: u64,
    /// Commands parsed.
    pub commands: u64,
    /// `MULTI`…`EXEC` blocks.
    pub transactions: u64,
    /// Master `PING`s.
    pub pings: u64,
    /// `REPLCONF GETACK`s.
    pub getacks: u64,
    /// The database selected last.
    pub db: Option<u32>,
    /// What the stream's bytes were: the answer to "my offset grows with no writes".
    pub ledger: Ledger,
}

/// Stream bytes by what carried them. Each counts toward the replication offset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// Commands that change data (everything below excepted).
    pub data: u64,
    /// The master's `PING`s (every `repl-ping-replica-period`, also with no writes).
    pub ping: u64,
    /// `REPLCONF GETACK` (sent for `WAIT`, `WAITAOF` and failover).
    pub getack: u64,
    /// `SELECT`, inserted when the database changes.
    pub select: u64,
    /// `MULTI` and `EXEC` around transactions, scripts and multi-key propagation.
    pub multi_exec: u64,
}

/// Count and wire bytes of one command name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommandCount {
    /// How many.
    pub count: u64,
    /// Their total size on the wire.
    pub bytes: u64,
}

/// Keep-alive counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeepAlives {
    /// Sent by the master (before `+FULLRESYNC` and while a disk BGSAVE runs).
    pub master_to_replica: u64,
    /// Sent by the replica (while it flushes or loads).
    pub replica_to_master: u64,
}

/// Bytes per direction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ByteCounts {
    /// Sent by the replica.
    pub to_master: u64,
    /// Sent by the master.
    pub to_replica: u64,
}

/// One desync.
#[derive(Debug, Clone, Serialize)]
pub struct DesyncReport {
    /// Which direction.
    pub direction: Direction,
    /// Byte position in that direction.
    pub position: u64,
    /// Replication offset, when in the stream.
    pub offset: Option<u64>,
    /// What was wrong.
    pub reason: String,
}

impl SessionReport {
    /// An empty report for a session that has just started.
    pub fn new(id: u64, started_at: Timestamp) -> SessionReport {
        SessionReport {
            id,
            kind: Role::Client,
            replica: String::new(),
            upstream: String::new(),
            started_at,
            ended_at: None,
            end_reason: None,
            handshake: HandshakeReport::default(),
            sync: SyncReport {
                kind: SyncType::None,
                mode: None,
                replid: None,
                offset: None,
                requested: None,
                reason: None,
                rejected: None,
                at: None,
            },
            rdb: None,
            offsets: OffsetsReport::default(),
            stream: StreamReport::default(),
            commands: BTreeMap::new(),
            acks: 0,
            keepalives: KeepAlives::default(),
            bytes: ByteCounts::default(),
            desync: None,
            desyncs: Vec::new(),
            joined_late: false,
            timing: Timing::new(),
            timeline: None,
            channels: Vec::new(),
        }
    }

    /// Folds one event of this session into the report (all but `timing`, which its
    /// [`Tracker`](crate::report::timing::Tracker) keeps).
    pub fn fold(&mut self, e: &Event) {
        match &e.kind {
            EventKind::SessionStart { replica, upstream } => {
                self.replica.clone_from(replica);
                self.upstream.clone_from(upstream);
                self.started_at = e.ts;
            }
            // Pairing is the monitor's (it knows both connections); this one's part is noted.
            EventKind::Channel { channel, link } => {
                if self.channels.iter().all(|c| c.session != self.id) {
                    self.channels.push(ChannelReport {
                        role: *channel,
                        session: self.id,
                        link: *link,
                        replica: self.replica.clone(),
                        upstream: self.upstream.clone(),
                        started_at: self.started_at,
                        ended_at: None,
                        end_reason: None,
                        bytes: ByteCounts::default(),
                    });
                }
            }
            EventKind::Role { role } => {
                if *role != Role::Undetermined {
                    self.kind = *role;
                }
            }
            EventKind::Request { name, args } => self.observe_request(name.as_str(), args),
            EventKind::Reply { reply, .. } => {
                if reply.starts_with('-') && self.handshake.errors.len() < MAX_LISTED {
                    self.handshake.errors.push(reply.clone());
                }
            }
            EventKind::KeepAlive { dir } => {
                match dir {
                    Direction::MasterToReplica => self.keepalives.master_to_replica += 1,
                    Direction::ReplicaToMaster => self.keepalives.replica_to_master += 1,
                }
                self.timeline_keepalive(*dir);
            }
            EventKind::SyncStart {
                sync,
                replid,
                offset,
            } => {
                let (kind, mode, start) = match sync {
                    SyncKind::Full => (
                        SyncType::Full,
                        SyncMode::Psync,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::Partial => (SyncType::Partial, SyncMode::Psync, *offset),
                    SyncKind::Sync => (SyncType::Full, SyncMode::Sync, None),
                    SyncKind::RdbChannel => (
                        SyncType::Full,
                        SyncMode::RdbChannel,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::DualChannel => (
                        SyncType::Full,
                        SyncMode::DualChannel,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::SlotStream => (
                        SyncType::Slots,
                        SyncMode::SlotStream,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::SlotSnapshot => (SyncType::Slots, SyncMode::SlotSnapshot, None),
                };
                // A two-connection sync is said twice (answered, then anchored): it was
                // answered at the first.
                if self.sync.mode != Some(mode) || self.sync.at.is_none() {
                    self.sync.at = Some(e.ts);
                }
                if kind == SyncType::Full && self.timeline.is_none() {
                    self.timeline = Some(Timeline {
                        handshake_ms: e.ts.since(self.started_at).as_secs_f64() * 1000.0,
                        ..Timeline::default()
                    });
                }
                self.sync.kind = kind;
                self.sync.mode = Some(mode);
                self.sync.replid.clone_from(replid);
                self.sync.offset = *offset;
                self.sync.rejected = None;
                self.offsets.start = start;
                if *sync == SyncKind::Partial {
                    self.offsets.end = offset.map(|o| o.saturating_sub(1));
                }
            }
            EventKind::Why {
                reason,
                gap_bytes,
                message,
            } => {
                self.sync.reason = Some(ReasonReport {
                    code: *reason,
                    gap_bytes: *gap_bytes,
                    message: message.clone(),
                });
            }
            EventKind::SyncRejected { reply } => {
                self.sync.rejected = Some(reply.clone());
            }
            EventKind::RdbEnd { .. } => {
                self.fold_rdb(e);
                if self.offsets.start.is_some() {
                    self.offsets.end = self.offsets.start.map(|s| s.saturating_sub(1));
                }
            }
            EventKind::RdbStart { .. }
            | EventKind::RdbContents { .. }
            | EventKind::RdbAborted { .. } => self.fold_rdb(e),
            EventKind::Command {
                end,
                name,
                sub,
                db,
                bytes,
                ..
            } => {
                self.count(name.as_str(), *bytes);
                self.stream.commands += 1;
                self.stream.db = *db;
                let ledger = &mut self.stream.ledger;
                match name.as_str() {
                    "PING" => {
                        self.stream.pings += 1;
                        ledger.ping += bytes;
                    }
                    "EXEC" => {
                        self.stream.transactions += 1;
                        ledger.multi_exec += bytes;
                    }
                    "MULTI" => ledger.multi_exec += bytes,
                    "SELECT" => ledger.select += bytes,
                    "REPLCONF" if sub.is_some_and(|s| s.is("GETACK")) => {
                        self.stream.getacks += 1;
                        ledger.getack += bytes;
                    }
                    _ => ledger.data += bytes,
                }
                if end.is_some() {
                    self.offsets.end = *end;
                }
            }
            EventKind::ClientCommand { name, bytes } => self.count(name.as_str(), *bytes),
            EventKind::Ack { offset, fack } => {
                self.acks += 1;
                self.offsets.acked = Some(*offset);
                if fack.is_some() {
                    self.offsets.fsynced = *fack;
                }
                self.timeline_ack(e.ts, *offset);
            }
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            } => self.add_desync(*dir, *position, *offset, reason.clone()),
            EventKind::JoinedLate { .. } => self.joined_late = true,
            EventKind::Anchored { offset } => {
                let l = &self.stream.ledger;
                let seen = l.data + l.ping + l.getack + l.select + l.multi_exec;
                self.offsets.start = Some(offset.saturating_add(1).saturating_sub(seen));
                self.offsets.end = Some(*offset);
            }
            EventKind::Warning { .. } | EventKind::Status { .. } => {}
            EventKind::SessionEnd {
                reason,
                bytes_to_master,
                bytes_to_replica,
                stream_bytes,
                offset_end,
            } => {
                self.ended_at = Some(e.ts);
                self.end_reason = Some(reason.clone());
                self.bytes.to_master = *bytes_to_master;
                self.bytes.to_replica = *bytes_to_replica;
                self.stream.bytes = *stream_bytes;
                self.offsets.end = *offset_end;
                self.channel_ended(e);
            }
        }
    }

    /// A keep-alive: the master's while the replica waits for the RDB, the replica's while
    /// it loads.
    fn timeline_keepalive(&mut self, dir: Direction) {
        let Some(t) = &mut self.timeline else { return };
        match (dir, &self.rdb) {
            (Direction::MasterToReplica, None) => t.bgsave_keepalives += 1,
            (Direction::ReplicaToMaster, Some(r)) if r.complete && t.load_ms.is_none() => {
                t.load_keepalives += 1
            }
            _ => {}
        }
    }

    /// An ACK after the RDB: the first ends the load and measures what was buffered; the one
    /// covering that ends the catch-up.
    fn timeline_ack(&mut self, at: Timestamp, offset: u64) {
        let (Some(t), Some(rdb)) = (&mut self.timeline, &self.rdb) else {
            return;
        };
        let Some(duration) = rdb.duration_ms.filter(|_| rdb.complete) else {
            return;
        };
        let since_end = |at: Timestamp| at.since(rdb.started_at).as_secs_f64() * 1000.0 - duration;
        if t.load_ms.is_none() {
            t.load_ms = Some(since_end(at).max(0.0));
            if let (Some(start), Some(end)) = (self.offsets.start, self.offsets.end) {
                t.buffered_bytes = Some(end.saturating_add(1).saturating_sub(start));
            }
        }
        let target = match (self.offsets.start, t.buffered_bytes) {
            (Some(start), Some(b)) => start.saturating_add(b).saturating_sub(1),
            _ => return,
        };
        if t.catch_up_ms.is_none() && offset >= target {
            t.catch_up_ms = Some(since_end(at).max(0.0));
        }
    }

    /// The RDB transfer's events: this connection's, or its RDB connection's.
    fn fold_rdb(&mut self, e: &Event) {
        match &e.kind {
            EventKind::RdbStart {
                framing,
                declared_bytes,
            } => {
                if let (Some(t), Some(answered)) = (&mut self.timeline, self.sync.at) {
                    t.bgsave_wait_ms = Some(e.ts.since(answered).as_secs_f64() * 1000.0);
                }
                self.rdb = Some(RdbReport {
                    framing: *framing,
                    bytes: 0,
                    declared_bytes: *declared_bytes,
                    started_at: e.ts,
                    duration_ms: None,
                    complete: false,
                    contents: None,
                });
            }
            EventKind::RdbEnd {
                bytes, duration_us, ..
            } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.bytes = *bytes;
                    rdb.duration_ms = Some(*duration_us as f64 / 1000.0);
                    rdb.complete = true;
                }
                if let Some(t) = &mut self.timeline {
                    t.transfer_ms = Some(*duration_us as f64 / 1000.0);
                }
            }
            EventKind::RdbContents { contents } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.contents = Some((**contents).clone());
                }
            }
            EventKind::RdbAborted { bytes, .. } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.bytes = *bytes;
                }
            }
            _ => {}
        }
    }

    /// Takes in the RDB connection `rdb` that pairs with this main connection: its channel
    /// entry, and its RDB if it began already. Its later events come through
    /// [`SessionReport::fold_partner`].
    pub fn absorb(&mut self, rdb: &mut SessionReport) {
        self.channels.append(&mut rdb.channels);
        if self.rdb.is_none() {
            self.rdb = rdb.rdb.take();
        }
        self.handshake.errors.append(&mut rdb.handshake.errors);
        self.desyncs.append(&mut rdb.desyncs);
        if self.desync.is_none() {
            self.desync = rdb.desync.take();
        }
    }

    /// Folds an event of this session's paired RDB connection: its RDB, its errors, and how
    /// its connection ended. The rest (its handshake, its role) is its own business.
    pub fn fold_partner(&mut self, e: &Event) {
        match &e.kind {
            EventKind::RdbStart { .. }
            | EventKind::RdbEnd { .. }
            | EventKind::RdbContents { .. }
            | EventKind::RdbAborted { .. } => self.fold_rdb(e),
            EventKind::Reply { reply, .. } | EventKind::SyncRejected { reply }
                if reply.starts_with('-') && self.handshake.errors.len() < MAX_LISTED =>
            {
                self.handshake.errors.push(reply.clone());
            }
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            } => {
                let reason = format!("RDB connection (session {}): {reason}", e.session);
                self.add_desync(*dir, *position, *offset, reason);
            }
            EventKind::SessionEnd { .. } => self.channel_ended(e),
            _ => {}
        }
    }

    fn add_desync(
        &mut self,
        direction: Direction,
        position: u64,
        offset: Option<u64>,
        reason: String,
    ) {
        if self.desync.is_none() {
            let at = offset.map_or(format!("byte {position}"), |o| format!("offset {o}"));
            self.desync = Some(format!("{} at {at}: {reason}", direction.as_str()));
        }
        self.desyncs.push(DesyncReport {
            direction,
            position,
            offset,
            reason,
        });
    }

    /// A connection of a two-connection sync ended: its entry says when, why, and its bytes.
    fn channel_ended(&mut self, e: &Event) {
        let EventKind::SessionEnd {
            reason,
            bytes_to_master,
            bytes_to_replica,
            ..
        } = &e.kind
        else {
            return;
        };
        if let Some(c) = self.channels.iter_mut().find(|c| c.session == e.session) {
            c.ended_at = Some(e.ts);
            c.end_reason = Some(reason.clone());
            c.bytes.to_master = *bytes_to_master;
            c.bytes.to_replica = *bytes_to_replica;
        }
    }

    fn observe_request(&mut self, name: &str, args: &[String]) {
        // A health-check client that only PINGs stays "in the handshake" forever: bounded.
        if self.handshake.requests.len() < MAX_LISTED {
            let mut line = name.to_string();
            for a in args {
                line.push(' ');
                line.push_str(a);
            }
            self.handshake.requests.push(line);
        }
        match name {
            "AUTH" => {
                self.handshake.auth = true;
                if args.len() == 2 {
                    self.handshake.auth_user = Some(args[0].clone());
                }
            }
            // A dual-channel main connection's second PSYNC only fetches the stream.
            "PSYNC" if self.sync.mode != Some(SyncMode::DualChannel) => {
                self.sync.requested = Some(args.join(" "));
            }
            "REPLCONF" => {
                for pair in args.chunks(2) {
                    let [key, value] = pair else { continue };
                    match key.to_ascii_lowercase().as_str() {
                        "listening-port" => self.handshake.listening_port = value.parse().ok(),
                        "ip-address" => self.handshake.ip_address = Some(value.clone()),
                        "capa" => self.handshake.capa.push(value.clone()),
                        other => {
                            if self.handshake.options.len() < MAX_LISTED {
                                let value = value.clone();
                                self.handshake.options.insert(other.to_string(), value);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn count(&mut self, name: &str, bytes: u64) {
        // A lookup before the insert: no allocation per command once a name is known.
        if let Some(c) = self.commands.get_mut(name) {
            c.count += 1;
            c.bytes += bytes;
        } else {
            let c = self.commands.entry(name.to_string()).or_default();
            c.count += 1;
            c.bytes += bytes;
        }
    }
}
