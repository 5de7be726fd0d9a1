//! The small vocabulary events are made of: roles, sync kinds and reasons, warning kinds,
//! RDB framing, channels, sync phases and slot-migration steps (each a stable snake_case
//! name in JSON).

use serde::Serialize;

/// What the connecting side turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Nothing decisive seen yet (only `PING`/`AUTH`/`REPLCONF`).
    Undetermined,
    /// A plain client: it sent a command that is not part of a replication handshake.
    Client,
    /// A replica that sent `PSYNC` (or, seen joining late, `REPLCONF ACK`).
    Replication,
    /// A legacy `SYNC` (old replicas, `redis-cli --replica`/`--rdb`, Valkey's RDB connection).
    Sync,
    /// An atomic slot migration link between cluster nodes (`CLUSTER SYNCSLOTS`: Redis 8.4+,
    /// where the importing node pulls; Valkey 9, where the source pushes). Not a replica: no
    /// `PSYNC`, no replid, outside the master's offset space.
    SlotMigration,
    /// Two cluster nodes' bus (their binary protocol, on the data port + 10000): recognised
    /// by its message header (`RCmb`), counted, never parsed.
    ClusterBus,
}

impl Role {
    /// The name used in the report and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Undetermined => "undetermined",
            Role::Client => "client",
            Role::Replication => "replication",
            Role::Sync => "sync",
            Role::SlotMigration => "slot_migration",
            Role::ClusterBus => "cluster_bus",
        }
    }
}

/// Why a sync happened (or why it was partial): `protocol.md` §3.3, read from the `PSYNC`,
/// the master's answer, and the replica's earlier links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncReason {
    /// `PSYNC ? -1` from a replica never seen before: it has no replication state.
    FirstSync,
    /// `PSYNC ? -1` from a replica seen before: it lost its state (restarted, or was reset).
    ReplicaRestarted,
    /// The replica asked to continue a replid the master no longer has (the master restarted
    /// without persistence, or was replaced).
    ReplidMismatch,
    /// Same replid, but the offset is no longer in the master's backlog.
    OffsetOutsideBacklog,
    /// The replica asked for an offset beyond the master's: the master lost data.
    ReplicaAhead,
    /// `+CONTINUE <new replid>`: the master was promoted and continued the replica's history.
    Failover,
    /// The partial resync was granted.
    PartialGranted,
    /// Legacy `SYNC` from a tool (`redis-cli --replica`/`--rdb`) or a very old replica.
    Tool,
    /// Not enough was seen to say (the capture began after the `PSYNC`).
    Unknown,
    /// `PSYNC ? -1` after the replica's last full sync ended before it was online: it starts
    /// over.
    FullSyncRestarted,
    /// The same, for the second time or more: a full-sync loop.
    FullSyncLoop,
}

impl SyncReason {
    /// The name used in the report and the events.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncReason::FirstSync => "first_sync",
            SyncReason::ReplicaRestarted => "replica_restarted",
            SyncReason::ReplidMismatch => "replid_mismatch",
            SyncReason::OffsetOutsideBacklog => "offset_outside_backlog",
            SyncReason::ReplicaAhead => "replica_ahead",
            SyncReason::Failover => "failover",
            SyncReason::PartialGranted => "partial_granted",
            SyncReason::Tool => "tool",
            SyncReason::Unknown => "unknown",
            SyncReason::FullSyncRestarted => "full_sync_restarted",
            SyncReason::FullSyncLoop => "full_sync_loop",
        }
    }
}

/// What a warning is about. Declared in name order: counts by kind are listed in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The replica ACKed an offset beyond what was forwarded.
    AckAhead,
    /// A connection reached a cap on what its analysis keeps (distinct command names): the
    /// rest is counted together, so memory stays bounded.
    AnalysisLimit,
    /// The replica's ACK went backwards.
    AckBackwards,
    /// The master refused the replica's `AUTH` (wrong `masterauth` or `masteruser`).
    AuthFailed,
    /// The stream the master buffered during a full sync came near the replica output-buffer
    /// limit (`--cob-limit`).
    CobLimit,
    /// A replica's full syncs keep being dropped before it is online.
    FullSyncLoop,
    /// The replica lags more than `--lag-warn` bytes.
    Lag,
    /// No bytes from the master for half of `repl-timeout`, or all of it.
    MasterSilent,
    /// One side has not read what the other sent for a while (a frozen replica): the bytes
    /// pile up in the sender's output buffer.
    NotDraining,
    /// An RDB whose checksum does not match, or whose analysis stopped (corrupt, or newer than
    /// this analyzer); the bytes are still forwarded.
    Rdb,
    /// A two-connection sync's RDB is in an older version than the replica announced on its
    /// main connection (Valkey's RDB-version trap, valkey #4103): a dataset that needs the
    /// newer format cannot be saved in it, and the replica full-syncs in a loop.
    RdbVersion,
    /// One connection of a two-connection sync whose partner never came, or ended before it
    /// gave the offsets.
    Unpaired,
    /// A capability that changes the wire format was offered (Valkey's compressed
    /// replication): the analysis may stop or be wrong.
    WireFormat,
}

impl WarningKind {
    /// The name used in the report, the events and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::AckAhead => "ack_ahead",
            WarningKind::AnalysisLimit => "analysis_limit",
            WarningKind::AckBackwards => "ack_backwards",
            WarningKind::AuthFailed => "auth_failed",
            WarningKind::Lag => "lag",
            WarningKind::MasterSilent => "master_silent",
            WarningKind::NotDraining => "not_draining",
            WarningKind::Unpaired => "unpaired",
            WarningKind::Rdb => "rdb",
            WarningKind::RdbVersion => "rdb_version",
            WarningKind::WireFormat => "wire_format",
            WarningKind::FullSyncLoop => "full_sync_loop",
            WarningKind::CobLimit => "cob_limit",
        }
    }
}

impl std::fmt::Display for WarningKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a full sync's RDB is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `$<len>\r\n` then exactly `len` bytes (the master's `dump.rdb`).
    Disk,
    /// `$EOF:<mark>\r\n`, the RDB, then the 40-byte mark again (streamed from a fork).
    Diskless,
}

/// What kind of synchronisation the master granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// `+FULLRESYNC`: an RDB, then the stream.
    Full,
    /// `+CONTINUE`: the stream resumes from the replica's offset.
    Partial,
    /// Legacy `SYNC` (old replicas, `redis-cli --replica`/`--rdb`): an RDB with no offsets.
    Sync,
    /// `+RDBCHANNELSYNC` (Redis 8): the RDB comes on a second connection; this one gets the
    /// stream, whose offsets are only known from the other connection. Said again, with the
    /// replid and the `+FULLRESYNC` offset, once that connection gave them.
    RdbChannel,
    /// `+DUALCHANNELSYNC` (Valkey 8): the RDB comes on a second connection; this one then
    /// asks for the stream with `PSYNC <replid> <ENDOFF+1>`. Said again at its `+CONTINUE`,
    /// with the replid and the snapshot's offset (`ENDOFF`: the stream starts at the next).
    DualChannel,
    /// `+RDBCHANNELSYNCSLOTS` (atomic slot migration, main connection): the migrating slots'
    /// commands follow, in an offset space of their own that starts at 0 (the importing
    /// node's `CLUSTER SYNCSLOTS ACK` counts the bytes it applied).
    SlotStream,
    /// `+SLOTSSNAPSHOT` (atomic slot migration, snapshot connection): the slots' keys follow
    /// as RESP commands (`RESTORE`, …), with no offsets.
    SlotSnapshot,
}

/// Which connection of a two-connection full sync this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The main connection: the handshake, then the stream and the ACKs.
    Main,
    /// The RDB connection: the snapshot only, closed by the replica once loaded.
    Rdb,
}

impl Channel {
    /// The name used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Main => "main",
            Channel::Rdb => "rdb",
        }
    }
}

/// The steps of a full sync, in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// Before the `PSYNC`.
    #[default]
    Handshake,
    /// The master prepares the RDB.
    Preparing,
    /// The RDB crosses the link.
    Transfer,
    /// The replica loads it.
    Loading,
    /// The replica applies what the master buffered meanwhile.
    CatchUp,
    /// Caught up: the sync is done.
    Online,
}

impl SyncPhase {
    /// Every phase, in order.
    pub const ALL: [SyncPhase; 6] = [
        SyncPhase::Handshake,
        SyncPhase::Preparing,
        SyncPhase::Transfer,
        SyncPhase::Loading,
        SyncPhase::CatchUp,
        SyncPhase::Online,
    ];

    /// The name used in the report and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::Handshake => "handshake",
            SyncPhase::Preparing => "preparing",
            SyncPhase::Transfer => "transfer",
            SyncPhase::Loading => "loading",
            SyncPhase::CatchUp => "catch_up",
            SyncPhase::Online => "online",
        }
    }

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            SyncPhase::Handshake => "in the handshake",
            SyncPhase::Preparing => "while the master prepared the RDB",
            SyncPhase::Transfer => "during the RDB transfer",
            SyncPhase::Loading => "while the replica loaded the RDB",
            SyncPhase::CatchUp => "during the catch-up",
            SyncPhase::Online => "after the sync",
        }
    }
}

/// A step of a Valkey 9 atomic slot migration, where the source node pushes the slots to the
/// target over a connection it opened (`protocol-2026-12.md` P2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStep {
    /// The target answered `+OK` to `ESTABLISH`: the snapshot follows.
    Accepted,
    /// `CLUSTER SYNCSLOTS SNAPSHOT-EOF`: the snapshot is over; the slots' writes follow.
    SnapshotEnd,
    /// The target asked the source to pause writes to the slots (`REQUEST-PAUSE`).
    PauseRequested,
    /// The source paused them (`PAUSED`).
    Paused,
    /// The target asked to take the slots over (`REQUEST-FAILOVER`).
    FailoverRequested,
    /// The source handed them over (`FAILOVER-GRANTED`): the migration is done on the link.
    FailoverGranted,
}

impl MigrationStep {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            MigrationStep::Accepted => "the target accepted it; the snapshot follows",
            MigrationStep::SnapshotEnd => "snapshot sent; the slots' writes follow",
            MigrationStep::PauseRequested => "the target asks the source to pause writes",
            MigrationStep::Paused => "the source paused writes to the slots",
            MigrationStep::FailoverRequested => "the target asks to take the slots over",
            MigrationStep::FailoverGranted => "the source handed the slots over",
        }
    }
}
