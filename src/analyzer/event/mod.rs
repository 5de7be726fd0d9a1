//! What the analyzer reports: plain data, one JSON object each (their text lines are
//! `render::event`'s).
//!
//! The JSON form (`--format json`, one object per line) is a public interface: fields are only
//! ever added, never renamed. Every object has `session`, `ts` (seconds since the epoch) and
//! `event` (the variant name in snake case).

mod vocab;

pub use vocab::*;

use serde::Serialize;

use crate::analyzer::input::{Direction, Timestamp};
pub use crate::protocol::compression::Codec;
use crate::protocol::resp::Name;
use crate::protocol::tls::TlsVersion;

/// One thing that happened on one link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The session (TCP connection) it happened on.
    pub session: u64,
    /// When the bytes that completed it were seen.
    pub ts: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An inclusive range of cluster slots.
pub type SlotRange = [u16; 2];

/// How far an RDB transfer has come.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RdbProgress {
    /// Bytes received.
    pub bytes: u64,
    /// The announced length (disk framing).
    pub total: Option<u64>,
    /// Bytes per second since the transfer began.
    pub bytes_per_s: f64,
    /// Seconds to go, when the length is known.
    pub eta_s: Option<f64>,
    /// Keys read so far (the RDB is parsed as it streams).
    pub keys: u64,
    /// Keys the `RESIZEDB` hints of the databases reached so far announce: with `keys`, the
    /// progress of a diskless transfer, whose length comes only with its end mark.
    pub keys_announced: Option<u64>,
}

/// The event payloads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A connection was accepted and its upstream connection established.
    SessionStart {
        /// The connecting side's address.
        replica: String,
        /// The upstream server's address.
        upstream: String,
    },
    /// The connecting side turned out to be a replica, a legacy `SYNC` or a plain client (said
    /// once per change, after the command that showed it).
    Role {
        /// What it is.
        role: Role,
    },
    /// This connection is one of the two of a two-connection full sync, and `link` is the
    /// client id both name: Redis 8's main connection (`+RDBCHANNELSYNC <id>`, `REPLCONF …
    /// main-ch-client-id <id>`), Valkey's RDB connection (`$ENDOFF:… <id>`, `REPLCONF
    /// set-rdb-client-id <id>`).
    Channel {
        /// Which of the two.
        channel: Channel,
        /// The client id that pairs them.
        link: u64,
    },
    /// The master agreed to compress the stream (`REPLCONF compression <level>` answered
    /// `+OK`): what it sends after the RDB (or after `+CONTINUE`) is compressed, and offsets
    /// count the decompressed bytes.
    Compression {
        /// The codec.
        codec: Codec,
        /// The level both sides use (null when the capture began after the handshake and the
        /// compression was recognised on the wire).
        level: Option<u32>,
    },
    /// The link is TLS: its bytes are counted and forwarded, not analysed (a capture cannot be
    /// decrypted). Said once per connection, when the master's hello is in (or at the end).
    Encrypted {
        /// The version the ServerHello chose, else the highest the ClientHello offered.
        version: Option<TlsVersion>,
        /// The server name the ClientHello asked for (SNI), if any.
        sni: Option<String>,
    },
    /// A compressed frame of the stream ended (the master flushes one at a time).
    CompressedFrame {
        /// Its bytes on the wire.
        wire_bytes: u64,
        /// The stream bytes it carried.
        stream_bytes: u64,
    },
    /// A handshake command from the replica (`PING`, `AUTH`, `REPLCONF`, `PSYNC`, `SYNC`).
    Request {
        /// Command name, upper-cased.
        name: Name,
        /// Its arguments; `AUTH` passwords are redacted.
        args: Vec<String>,
    },
    /// A single-line answer from the master during the handshake.
    Reply {
        /// The request it answers, when known.
        to: Option<Name>,
        /// The line as sent (without CRLF).
        reply: String,
    },
    /// A bare `\n` keep-alive (never counted in offsets).
    KeepAlive {
        /// Who sent it.
        dir: Direction,
    },
    /// The master's sync decision.
    SyncStart {
        /// Full, partial, legacy or two-connection.
        sync: SyncKind,
        /// The replication id, if the master named one.
        replid: Option<String>,
        /// `+FULLRESYNC`'s offset, or the `PSYNC` offset for a partial sync: the first stream
        /// byte has offset `offset + 1` for a full sync, `offset` for a partial one.
        offset: Option<u64>,
    },
    /// Why the sync just started happened, for people and machines (said by the monitor, which
    /// remembers each replica's earlier links; said again if the other connection of a
    /// two-connection sync changes the answer).
    Why {
        /// The reason.
        reason: SyncReason,
        /// The bytes behind it: the backlog a full sync would have needed, or the gap a
        /// partial one filled.
        gap_bytes: Option<u64>,
        /// In a sentence, with the numbers.
        message: String,
    },
    /// The master refused `PSYNC`/`SYNC` (or answered something unexpected).
    SyncRejected {
        /// The master's answer.
        reply: String,
    },
    /// The RDB transfer began.
    RdbStart {
        /// How it is framed.
        framing: Framing,
        /// The announced length (disk framing only).
        declared_bytes: Option<u64>,
    },
    /// The RDB transfer completed.
    RdbEnd {
        /// How it was framed.
        framing: Framing,
        /// RDB bytes (framing and EOF marks excluded).
        bytes: u64,
        /// From the framing line to the last RDB byte, in microseconds.
        duration_us: u64,
    },
    /// The RDB's header and the server that wrote it, once its leading AUX fields went by.
    RdbHeader {
        /// `REDIS0011` / `VALKEY080`, and `valkey 9.1.2`.
        header: crate::protocol::rdb::Header,
    },
    /// What the RDB contains (parsed in flight), once the transfer ended.
    RdbContents {
        /// Keys, types, sizes, AUX fields, checksum; or why the analysis stopped.
        contents: Box<crate::protocol::rdb::Summary>,
    },
    /// The connection ended during the RDB transfer.
    RdbAborted {
        /// How it was framed.
        framing: Framing,
        /// RDB bytes received before the end.
        bytes: u64,
        /// The size the master announced (`$<len>`; none for a diskless transfer).
        declared: Option<u64>,
    },
    /// A command in the master's replication stream.
    Command {
        /// Replication offset of its first byte (unknown after a legacy `SYNC`).
        start: Option<u64>,
        /// Replication offset of its last byte.
        end: Option<u64>,
        /// Command name, upper-cased.
        name: Name,
        /// For `REPLCONF`, the subcommand (`GETACK`).
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<Name>,
        /// The database it applies to, once a `SELECT` has been seen.
        db: Option<u32>,
        /// Returns true if and only if it is inside `MULTI`…`EXEC`.
        in_multi: bool,
        /// Its size on the wire.
        bytes: u64,
    },
    /// `CLUSTER SYNCSLOTS ESTABLISH SOURCE <id> NAME <job> SLOTSRANGE …`: a Valkey slot
    /// migration begins on this link (the source pushes to the target), or, with `offset`,
    /// the target forwarded it to its replica in the stream.
    MigrationStart {
        /// The migration job's name (40 hex digits).
        job: String,
        /// The source node's id.
        source: String,
        /// The slot ranges, as many as the command's captured arguments hold (four; `ranges`
        /// says how many it names).
        slots: Vec<SlotRange>,
        /// How many ranges the command names.
        ranges: u64,
        /// In a replica's stream: the offset of the command's last byte.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// The sender of a cluster bus link's first message in a direction: its node id and the
    /// data port it announces (what names a slot migration's target node).
    ClusterNode {
        /// Who sent it.
        dir: Direction,
        /// Its node id (40 hex digits).
        node: String,
        /// The data port it announces.
        port: u16,
    },
    /// A slot migration moved on (on the migration link).
    Migration {
        /// What happened.
        step: MigrationStep,
    },
    /// The target refused `ESTABLISH`.
    MigrationRefused {
        /// Its answer.
        reply: String,
    },
    /// `CLUSTER SYNCSLOTS FINISH STATE <state> NAME <job> [MESSAGE <msg>]` in a replica's
    /// stream: how the target says a migration ended.
    MigrationFinish {
        /// The migration job's name.
        job: String,
        /// `success` or `failed`.
        state: String,
        /// Why, when it failed.
        message: Option<String>,
        /// The offset of the command's last byte.
        offset: Option<u64>,
    },
    /// A command of a slot migration's snapshot or of the writes after it, pushed by the
    /// source (its arguments are never shown).
    MigratedCommand {
        /// Command name, upper-cased.
        name: Name,
        /// Its size on the wire.
        bytes: u64,
        /// Returns true if and only if it names another key than the command before it: the
        /// snapshot writes each key's commands together, so these count the keys moved.
        new_key: bool,
    },
    /// A command from a plain client (a connection that never asked for replication).
    ClientCommand {
        /// Command name, upper-cased.
        name: Name,
        /// Its size on the wire.
        bytes: u64,
    },
    /// `REPLCONF ACK <offset> [FACK <offset>]` from the replica.
    Ack {
        /// The replica's applied offset.
        offset: u64,
        /// The replica's fsynced offset (Redis ≥ 7.2 with AOF).
        fack: Option<u64>,
    },
    /// The analysis of one direction stopped: the bytes are not what the protocol allows, or
    /// analysis fell behind and skipped some. Forwarding is not affected.
    Desync {
        /// Which direction.
        dir: Direction,
        /// Bytes into that direction where it happened.
        position: u64,
        /// The replication offset there, when in the stream.
        offset: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// A stream joined mid-connection has its offsets: two `REPLCONF GETACK` answers agreed.
    /// Commands from here on carry exact offsets.
    Anchored {
        /// The offset of the last stream byte seen so far.
        offset: u64,
    },
    /// The capture began after the connection did: analysis of this direction starts at the
    /// first command boundary found, with offsets unknown.
    JoinedLate {
        /// Which direction.
        dir: Direction,
        /// Bytes passed over before that boundary.
        skipped: u64,
    },
    /// The analysis of a direction found its way back after bytes it did not see (a capture
    /// lost them, or the analysis fell behind: the [`EventKind::Desync`] before says which):
    /// it goes on from the first command boundary after them. Offsets stayed exact throughout,
    /// so commands from here on carry exact offsets again; commands in the bytes missed and
    /// passed over are not counted. On a compressed stream it goes on at the next frame's
    /// magic (`position`), and the offsets are unknown (`offset` null) until two GETACK
    /// answers agree ([`EventKind::Anchored`]).
    Resumed {
        /// Which direction.
        dir: Direction,
        /// Bytes into that direction where the command it resumes at begins.
        position: u64,
        /// The replication offset of that command's first byte, when in the stream.
        offset: Option<u64>,
        /// Bytes passed over between the last missing byte and that command.
        passed: u64,
    },
    /// Something a person should look at (lag, a silent master, odd ACKs).
    Warning {
        /// What kind of warning.
        kind: WarningKind,
        /// What is wrong.
        message: String,
    },
    /// Periodic state of a replication session (every `--interval`; every second while an
    /// RDB is transferred).
    Status {
        /// Last forwarded stream offset.
        offset: Option<u64>,
        /// Last ACK.
        acked: Option<u64>,
        /// Forwarded minus acknowledged.
        lag_bytes: u64,
        /// Age of the oldest unacknowledged forwarded byte.
        lag_ms: f64,
        /// Stream commands per second over the last interval.
        commands_per_s: f64,
        /// Stream bytes per second over the last interval.
        bytes_per_s: f64,
        /// RDB transfer progress, while one is under way.
        rdb: Option<Box<RdbProgress>>,
        /// The phase of the full sync under way (null when none is, or it is done).
        phase: Option<SyncPhase>,
        /// Seconds the sync has been in that phase.
        phase_s: Option<f64>,
    },
    /// The connection ended.
    SessionEnd {
        /// Why (peer closed, error, proxy shutdown, end of capture).
        reason: String,
        /// Bytes the replica sent.
        bytes_to_master: u64,
        /// Bytes the master sent.
        bytes_to_replica: u64,
        /// Stream bytes (those that count in the replication offset).
        stream_bytes: u64,
        /// Offset of the last stream byte, when offsets are known.
        offset_end: Option<u64>,
    },
}

impl EventKind {
    /// Returns true if and only if this event is routine traffic (stream and client commands,
    /// ACKs, keep-alives) rather than a change of state worth a log line by default.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            EventKind::Command { .. }
                | EventKind::ClientCommand { .. }
                | EventKind::MigratedCommand { .. }
                | EventKind::Ack { .. }
                | EventKind::KeepAlive { .. }
                | EventKind::CompressedFrame { .. }
        )
    }
}
