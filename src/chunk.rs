//! The one input type of the analysis: bytes seen on a link, in one direction, at a time.
//!
//! The proxy produces them, tests (and later the replayer) produce them, and
//! [`Session::feed`](crate::Session::feed) consumes them. Nothing else reaches the analyzer.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// Which side of the link sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the connecting side (a replica, `redis-cli`, any client) to the upstream server.
    ReplicaToMaster,
    /// From the upstream server back to the connecting side.
    MasterToReplica,
}

impl Direction {
    /// The stable name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ReplicaToMaster => "replica_to_master",
            Direction::MasterToReplica => "master_to_replica",
        }
    }

    /// A short arrow for human-readable lines.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ReplicaToMaster => "R->M",
            Direction::MasterToReplica => "M->R",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::ReplicaToMaster => 0,
            Direction::MasterToReplica => 1,
        }
    }
}

impl Serialize for Direction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A point in time, as microseconds since the Unix epoch.
///
/// The analyzer never reads a clock: every timestamp is an input. The live proxy derives them
/// from a monotonic clock anchored once at start-up; a capture carries its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Converts a wall-clock time (times before 1970 clamp to zero).
    pub fn from_system_time(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    /// Seconds since the epoch, as JSON carries them.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `HH:MM:SS.micros` (UTC), for log lines.
    pub fn time_of_day(self) -> String {
        let secs = self.0 / 1_000_000;
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        format!("{h:02}:{m:02}:{s:02}.{:06}", self.0 % 1_000_000)
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self` moved forward by `d`.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_secs_f64())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Bytes observed on the link (borrowed view; what the analyzer is fed).
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Who sent them.
    pub dir: Direction,
    /// When they were seen.
    pub at: Timestamp,
    /// The bytes, exactly as forwarded.
    pub bytes: &'a [u8],
}
