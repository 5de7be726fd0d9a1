//! What the handshake has said, consulted by both directions: the replica's requests waiting
//! for their replies (the master answers in order), what `PSYNC` asked for, and whether this
//! connection is one of a two-connection sync.

use std::collections::VecDeque;

use crate::protocol::compression::Codec;
use crate::protocol::resp::Name;

/// A handshake request waiting for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    Psync,
    Sync,
    /// `REPLCONF compression <level>`.
    Compression(u32),
    Other(Name),
}

/// The handshake so far.
#[derive(Debug, Default)]
pub(super) struct Handshake {
    /// Requests waiting for their replies, oldest first (at most `Config::max_pending`).
    pub(super) pending: VecDeque<Pending>,
    /// The offset `PSYNC` asked to continue from.
    pub(super) psync_offset: Option<u64>,
    /// The replication id `PSYNC` named.
    pub(super) psync_replid: Option<String>,
    /// The replica said `REPLCONF … rdb-channel 1`: an RDB connection of a two-connection sync.
    pub(super) rdb_channel: bool,
    /// The master said `+DUALCHANNELSYNC`: a Valkey main connection.
    pub(super) dual_channel: bool,
    /// The compression the master agreed to (`REPLCONF compression` answered `+OK`).
    pub(super) compression: Option<(Codec, u32)>,
}
