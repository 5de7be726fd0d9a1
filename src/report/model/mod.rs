//! The report's model: plain data, serialized as the `--report-json` file (README "Report
//! schema"). Fields are added, never renamed or removed. [`fold`](super::fold) fills it from
//! events.

mod compression;
mod replicas;

pub use compression::CompressionReport;
pub use replicas::ReplicaHistory;

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::analyzer::event::SyncPhase;
use crate::analyzer::event::{Channel, Framing, MigrationStep, Role, SlotRange, SyncReason};
use crate::analyzer::input::{Direction, Timestamp};
use crate::protocol::tls::TlsVersion;
use crate::report::timing::{Overall, Timing};

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
    /// The thresholds the warnings and the advice were measured against; `None` in a
    /// report built without a monitor.
    pub settings: Option<Settings>,
}

/// The thresholds a run's warnings and advice used (`--repl-timeout`, `--lag-warn`, ...).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    /// The replica's `repl-timeout`, in seconds: `master_silent` at half and past it.
    pub repl_timeout_s: f64,
    /// Lag, in bytes, past which a `lag` warning is raised.
    pub lag_warn_bytes: u64,
    /// The disconnect, in seconds, the advised `repl-backlog-size` survives.
    pub backlog_survive_s: f64,
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
            settings: None,
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
    /// The desyncs, in detail: the first [`MAX_LISTED`](super::fold::MAX_LISTED) (a link
    /// whose analysis falls behind again and again has one per skip).
    pub desyncs: Vec<DesyncReport>,
    /// Every desync, counted.
    pub desync_count: u64,
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
    /// The Valkey slot migration this link carries (the source pushing slots to the target),
    /// if it is one.
    pub migration: Option<MigrationReport>,
    /// The slot migrations a replica's stream carried (its master was their target), the first
    /// [`MAX_LISTED`](super::fold::MAX_LISTED).
    pub migrations_forwarded: Vec<ForwardedMigration>,
    /// The stream's compression, when the master agreed to compress it (null otherwise).
    pub compression: Option<CompressionReport>,
    /// The link's TLS, when it is a TLS link (null otherwise).
    pub tls: Option<TlsReport>,
}

/// A full sync step by step (README "Diagnosis"): where the time went, and what the master
/// had to buffer meanwhile. Each phase runs from one marker on the wire to the next, so the
/// phases never overlap and add up to `duration_ms`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// From the connection to the replica's `PSYNC` (or `SYNC`).
    pub handshake_ms: f64,
    /// From the `PSYNC` to the RDB's first byte: the master preparing the RDB (its
    /// `repl-diskless-sync-delay`, the fork, a BGSAVE to disk).
    pub bgsave_wait_ms: Option<f64>,
    /// `\n` keep-alives the master sent meanwhile.
    pub bgsave_keepalives: u64,
    /// The RDB transfer, from its first byte to its last.
    pub transfer_ms: Option<f64>,
    /// From the RDB's end to the replica's first ACK: it flushed and loaded the RDB.
    pub load_ms: Option<f64>,
    /// `\n` keep-alives the replica sent while it loaded.
    pub load_keepalives: u64,
    /// Stream bytes forwarded by the first ACK: what the master had buffered for the replica
    /// during the sync (compare with `client-output-buffer-limit replica`).
    pub buffered_bytes: Option<u64>,
    /// From the replica's first ACK to the ACK covering those bytes: it caught up.
    pub catch_up_ms: Option<f64>,
    /// From the connection to the end of the catch-up: the sum of the phases (null until the
    /// replica caught up).
    pub duration_ms: Option<f64>,
    /// The phase the sync is in, or was in when its link ended.
    pub phase: SyncPhase,
    /// When each phase began, as seen on the wire.
    #[serde(skip)]
    pub marks: Marks,
}

/// When each phase of a full sync began (the markers on the wire), and the offset the
/// catch-up must reach.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    /// The connection was opened.
    pub start: Option<Timestamp>,
    /// The replica's `PSYNC`/`SYNC`.
    pub psync: Option<Timestamp>,
    /// The RDB's first byte.
    pub rdb_start: Option<Timestamp>,
    /// Its last byte.
    pub rdb_end: Option<Timestamp>,
    /// The replica's first ACK after it.
    pub loaded: Option<Timestamp>,
    /// The stream offset forwarded by then: the catch-up ends when an ACK reaches it.
    pub target: Option<u64>,
    /// During the load, the last read of stream forwarded: when, and the offset before it.
    pub last_read: Option<(Timestamp, Option<u64>)>,
    /// The ACK that did.
    pub caught_up: Option<Timestamp>,
}

/// A Valkey atomic slot migration, seen on the link its source opened to its target.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The job's name (40 hex digits, as `CLUSTER GETSLOTMIGRATIONS` shows it).
    pub job: String,
    /// The source node's id.
    pub source_node: String,
    /// The target: this link's upstream address.
    pub target: String,
    /// The target's node id, when its cluster bus was seen too (`sniff`, a capture): the
    /// migration's link does not carry it.
    pub target_node: Option<String>,
    /// The slot ranges (inclusive), as many as were captured.
    pub slots: Vec<SlotRange>,
    /// How many ranges `ESTABLISH` named.
    pub ranges: u64,
    /// When the source sent `ESTABLISH`.
    pub started_at: Timestamp,
    /// The slots' snapshot: every command up to `SNAPSHOT-EOF`, and the keys they wrote.
    pub snapshot: MigrationPart,
    /// From `ESTABLISH` to `SNAPSHOT-EOF`.
    pub snapshot_ms: Option<f64>,
    /// The slots' writes the source forwarded after the snapshot (`keys` is not counted here).
    pub stream: MigrationPart,
    /// When the target asked the source to pause writes (`REQUEST-PAUSE`).
    pub pause_requested_at: Option<Timestamp>,
    /// From `REQUEST-PAUSE` to the source's `PAUSED`.
    pub pause_ms: Option<f64>,
    /// From `REQUEST-PAUSE` to `FAILOVER-GRANTED`: how long writes to the slots waited.
    pub failover_ms: Option<f64>,
    /// From `ESTABLISH` to `FAILOVER-GRANTED` (or to the link's end).
    pub duration_ms: Option<f64>,
    /// How it ended.
    pub outcome: MigrationOutcome,
    /// The target's refusal of `ESTABLISH`, if it refused.
    pub refused: Option<String>,
    /// The last step seen.
    pub step: Option<MigrationStep>,
    /// How the target said it ended to its replicas (`FINISH STATE success|failed`), when a
    /// replica's stream with it was seen too.
    pub target_state: Option<String>,
    /// The target's `FINISH MESSAGE` (why it failed: "Connection lost to source", …).
    pub target_message: Option<String>,
}

/// Commands of a slot migration, their bytes, and the keys they wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MigrationPart {
    /// Commands.
    pub commands: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Keys moved: each run of commands on one key counts once.
    pub keys: u64,
}

/// How a slot migration ended, as its link showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationOutcome {
    /// Still under way (the link is open).
    InProgress,
    /// The source granted the failover: the target owns the slots.
    Finished,
    /// The target refused `ESTABLISH`.
    Refused,
    /// The link ended before the failover was granted (cancelled, failed, or lost).
    LinkLost,
}

impl MigrationOutcome {
    /// The name used in the report and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationOutcome::InProgress => "in_progress",
            MigrationOutcome::Finished => "finished",
            MigrationOutcome::Refused => "refused",
            MigrationOutcome::LinkLost => "link_lost",
        }
    }
}

/// A slot migration whose commands came in a replica's stream (its master was the target).
#[derive(Debug, Clone, Serialize)]
pub struct ForwardedMigration {
    /// The job's name.
    pub job: String,
    /// The source node's id.
    pub source_node: String,
    /// The slot ranges, as many as were captured.
    pub slots: Vec<SlotRange>,
    /// How many ranges it named.
    pub ranges: u64,
    /// The offset of `ESTABLISH`'s last byte in the stream.
    pub established_offset: Option<u64>,
    /// The offset of `FINISH`'s last byte.
    pub finish_offset: Option<u64>,
    /// `FINISH STATE`: `success` or `failed` (null before it).
    pub state: Option<String>,
    /// `FINISH MESSAGE`, when there is one.
    pub message: Option<String>,
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
    /// `replica_ahead`, `failover`, `partial_granted`, `tool`, `unknown`,
    /// `full_sync_restarted` or `full_sync_loop`.
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
    /// Its header and writer, once its leading AUX fields went by: the version the master
    /// chose for this replica.
    pub header: Option<crate::protocol::rdb::Header>,
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
    /// The connection it happened on (this session's, or its partner's): not in the JSON,
    /// whose `reason` names a partner.
    #[serde(skip)]
    pub session: u64,
    /// Which direction.
    pub direction: Direction,
    /// Byte position in that direction.
    pub position: u64,
    /// Replication offset, when in the stream.
    pub offset: Option<u64>,
    /// What was wrong.
    pub reason: String,
    /// Where the analysis of that direction went on after missing bytes, if it did.
    pub resumed: Option<ResumedReport>,
}

/// Where the analysis went on after a desync over missing bytes.
#[derive(Debug, Clone, Serialize)]
pub struct ResumedReport {
    /// Byte position, in that direction, of the command it went on at.
    pub position: u64,
    /// That command's replication offset, when in the stream.
    pub offset: Option<u64>,
    /// Bytes passed over between the last missing byte and that command.
    pub passed: u64,
}

/// A TLS link, as its hellos show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsReport {
    /// Whether what is inside was analysed (false: a capture of TLS cannot be decrypted, so
    /// only bytes are counted).
    pub analysed: bool,
    /// The version the ServerHello chose, else the highest the ClientHello offered.
    pub version: Option<TlsVersion>,
    /// The server name the ClientHello asked for (SNI), if any.
    pub sni: Option<String>,
}
