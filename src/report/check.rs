//! What `repl-sniff check` was asked and found: plain data, rendered by `render::check`.

use std::time::Duration;

use crate::report::timing::Hist;

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The master's `host:port`.
    pub master: String,
    /// The replica's `host:port`.
    pub replica: String,
    /// Keys to write and verify.
    pub keys: u32,
    /// ACL user for both servers (with `password`).
    pub user: Option<String>,
    /// Password for both servers.
    pub password: Option<String>,
    /// How long a server may take to answer, and a key to reach the replica.
    pub timeout: Duration,
}

/// One server's replication state (`INFO replication`).
#[derive(Debug, Clone, Default)]
pub struct ReplState {
    /// `role`.
    pub role: String,
    /// The replication id its data follows (`master_replid`).
    pub replid: String,
    /// `master_repl_offset`.
    pub offset: u64,
    /// A replica's `master_link_status`.
    pub link: Option<String>,
    /// A master's `connected_slaves`.
    pub replicas: Option<u64>,
}

/// What the check found.
#[derive(Debug)]
pub struct CheckReport {
    /// The master's state before the writes.
    pub master: ReplState,
    /// The replica's state before the writes.
    pub replica: ReplState,
    /// Keys the replica served with the value written.
    pub verified: u32,
    /// Keys the replica served with another value: (key, written, served).
    pub mismatches: Vec<(String, String, String)>,
    /// Keys the replica never served within the timeout.
    pub missing: Vec<String>,
    /// From the master's `+OK` to the replica serving the value, µs.
    pub visible_us: Hist,
    /// `WAIT 1 <timeout>` round trips, µs.
    pub wait_us: Hist,
    /// `WAIT 1` calls that returned before a replica acknowledged.
    pub wait_unacked: u32,
    /// Offsets after the writes: how far behind the replica is, in bytes.
    pub lag_bytes: u64,
}
