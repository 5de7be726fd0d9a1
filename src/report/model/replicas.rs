//! Each replica's counts across its links, as the report shows them.

use serde::Serialize;

/// One replica's links so far.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaHistory {
    /// Its host and listening port (`host:port`, or `host:?` without `listening-port`).
    pub replica: String,
    /// Connections that ended.
    pub links: u64,
    /// Links after the first.
    pub reconnects: u64,
    /// Full syncs.
    pub full_syncs: u64,
    /// Partial syncs.
    pub partial_syncs: u64,
    /// Handshake errors and refusals, and sessions with desyncs.
    pub errors: u64,
    /// Bytes forwarded both ways (both connections of a two-connection sync).
    pub bytes: u64,
    /// Full syncs whose link ended before the replica was online (during the transfer or the
    /// load, before its first ACK) and that the next link had to repeat: what a full-sync
    /// loop is made of.
    pub dropped_full_syncs: u64,
}
