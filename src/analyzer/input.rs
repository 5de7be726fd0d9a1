//! The input vocabulary of the analysis, spoken by every driver.
//!
//! An [`Input`] says what happened on one connection: it opened, bytes were seen in one
//! direction, bytes went by unseen, it closed. The proxy sends them, capture reassembly emits
//! them, recordings and tests replay them, and [`Monitor::handle`](crate::Monitor::handle) is
//! the one place that dispatches them. A [`Chunk`] is the borrowed view of the bytes that
//! [`Session::feed`](crate::Session::feed) consumes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Serialize, Serializer};

/// Which side of the link sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the connecting side (a replica, `redis-cli`, any client) to the upstream server.
    ReplicaToMaster,
    /// From the upstream server back to the connecting side.
    MasterToReplica,
}

/// One value per direction, indexed by [`Direction`] (so code never says which number a
/// direction is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sides<T>([T; 2]);

impl<T> std::ops::Index<Direction> for Sides<T> {
    type Output = T;
    fn index(&self, dir: Direction) -> &T {
        &self.0[dir.index()]
    }
}

impl<T> std::ops::IndexMut<Direction> for Sides<T> {
    fn index_mut(&mut self, dir: Direction) -> &mut T {
        &mut self.0[dir.index()]
    }
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

/// Why bytes were forwarded but not analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The analysis fell behind the forwarding (live proxy).
    Behind,
    /// The capture does not contain them (a lost segment).
    NotCaptured,
}

/// What happened on one connection, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The connection, numbered by the driver (the session id).
    pub conn: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: InputKind,
}

/// The things that happen on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// The connection was established: `replica` connected to `upstream`. `joined_late` says
    /// it began before the capture did (its first bytes are not command boundaries).
    Open {
        /// The connecting side's address.
        replica: String,
        /// The accepting side's address.
        upstream: String,
        /// The capture began after the connection did.
        joined_late: bool,
    },
    /// Bytes seen in one direction, exactly as forwarded (shared, never copied).
    Data {
        /// Who sent them.
        dir: Direction,
        /// The bytes.
        bytes: Bytes,
    },
    /// `len` bytes of one direction went by without being seen.
    Gap {
        /// Whose bytes.
        dir: Direction,
        /// How many.
        len: u64,
        /// Why they were not seen.
        why: Skipped,
    },
    /// Bytes of `dir` have waited since `since` because the receiving side does not read
    /// them (a frozen or overloaded peer). Only a relay can see this; captures never say it.
    Stalled {
        /// Whose bytes wait.
        dir: Direction,
        /// Since when the receiving side has read nothing.
        since: Timestamp,
        /// How many bytes wait in the relay.
        pending: u64,
    },
    /// The connection ended.
    Close {
        /// Why, as a person reads it.
        reason: String,
    },
}

impl Input {
    /// The bytes of a [`InputKind::Data`] input as the analyzer is fed them.
    pub fn chunk(&self) -> Option<Chunk<'_>> {
        match &self.kind {
            InputKind::Data { dir, bytes } => Some(Chunk {
                dir: *dir,
                at: self.at,
                bytes,
            }),
            _ => None,
        }
    }
}
