//! Timing of one session, folded from its events: per-command ack latency, heartbeat
//! intervals, lag in bytes and time, throughput per second, and the warnings they raise.
//!
//! Definitions (README "Timing"):
//! - *ack latency* of a stream command: from when its last byte was seen (and forwarded) to
//!   the first `REPLCONF ACK` whose offset is at least the command's end offset. With the
//!   default 1 s ACK period this is dominated by the period; `WAIT` makes the master send
//!   `REPLCONF GETACK`, and then it is the real round trip.
//! - *lag*: bytes = last forwarded stream offset − last ACK; time = age of the oldest
//!   forwarded byte not yet acknowledged.
//! - *heartbeat intervals*: between master `PING`s, replica ACKs, and keep-alives each way.
//!
//! Memory is bounded: histograms have fixed bounds (2 significant digits, values saturate at
//! the top), at most [`MAX_NAMES`] command names are tracked (the rest are `OTHER`), and at
//! most [`MAX_PENDING`] groups of unacknowledged commands are kept. Commands seen in the same
//! chunk form one group; past the limit, neighbouring groups merge, and a merged group's
//! latency is measured from its last command (so it can only be under-estimated, by at most
//! the span of the group; `coarsened` counts merges).

mod hist;
mod model;
mod tracker;

use std::time::Duration;

pub use hist::{Hist, HistSummary};
pub use model::{BacklogAdvice, CommandTiming, Heartbeats, Overall, Second, Timing, Warning};
pub use tracker::Tracker;

/// Distinct command names tracked per session; more fold into `OTHER`.
pub const MAX_NAMES: usize = 64;
/// Groups of unacknowledged commands kept per session before neighbours merge.
pub const MAX_PENDING: usize = 65_536;
/// Warnings kept per session (the most recent); all are counted by kind.
pub const MAX_WARNINGS: usize = 256;
/// Seconds of per-second throughput kept.
pub const MAX_RATE_SECONDS: usize = 3600;

/// Bucket upper bounds, in microseconds, used for Prometheus and the JSON buckets.
pub const LATENCY_BUCKETS_US: &[u64] = &[
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];
/// Bucket upper bounds, in bytes, for command sizes.
pub const SIZE_BUCKETS: &[u64] = &[
    16,
    32,
    64,
    128,
    256,
    512,
    1024,
    4096,
    16_384,
    65_536,
    262_144,
    1 << 20,
    16 << 20,
    512 << 20,
];

/// Thresholds for warnings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Warn when the lag exceeds this many bytes.
    pub lag_warn_bytes: u64,
    /// The replica's `repl-timeout`: warn after half of it without bytes from the master,
    /// and again past it.
    pub repl_timeout: Duration,
    /// The master's `client-output-buffer-limit replica`: what it may buffer for a replica
    /// during a full sync before it drops it.
    pub cob_limit: CobLimit,
    /// How long a disconnect the advised `repl-backlog-size` should survive.
    pub survive: Duration,
}

/// `client-output-buffer-limit replica <hard> <soft> <soft seconds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CobLimit {
    /// Dropped at once above this (0: no limit).
    pub hard: u64,
    /// Dropped when above this for `soft_seconds` (0: no limit).
    pub soft: u64,
    /// How long the soft limit may be exceeded.
    pub soft_seconds: u64,
}

impl Default for CobLimit {
    /// Redis's default: `256mb 64mb 60`.
    fn default() -> Self {
        CobLimit {
            hard: 256 << 20,
            soft: 64 << 20,
            soft_seconds: 60,
        }
    }
}

impl std::str::FromStr for CobLimit {
    type Err = String;

    /// `"256mb 64mb 60"`, as in redis.conf (units b, k, kb, m, mb, g, gb; k = 1000, kb = 1024).
    fn from_str(s: &str) -> Result<CobLimit, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [hard, soft, secs] = parts[..] else {
            return Err(format!(
                "expected \"<hard> <soft> <seconds>\", like \"256mb 64mb 60\", got \"{s}\""
            ));
        };
        let secs = secs
            .parse()
            .map_err(|_| format!("\"{secs}\" is not a number of seconds"))?;
        Ok(CobLimit {
            hard: memory_size(hard)?,
            soft: memory_size(soft)?,
            soft_seconds: secs,
        })
    }
}

/// A redis.conf memory size: `64mb`, `1gb`, `512k`, `100` (`k` is 1000, `kb` 1024; a bare
/// number is bytes). The command line takes sizes in this form too.
pub fn memory_size(v: &str) -> Result<u64, String> {
    let lower = v.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "\"{v}\": unknown unit \"{unit}\" (b, k, kb, m, mb, g, gb)"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("\"{v}\" is not a size"))?;
    Ok(n.saturating_mul(mult))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lag_warn_bytes: 1 << 20,
            repl_timeout: Duration::from_secs(60),
            cob_limit: CobLimit::default(),
            survive: Duration::from_secs(60),
        }
    }
}
