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

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use crate::analyzer::event::{EventKind, SyncKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::protocol::resp::Name;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lag_warn_bytes: 1 << 20,
            repl_timeout: Duration::from_secs(60),
        }
    }
}

/// A bounded histogram of microseconds or bytes.
#[derive(Debug, Clone)]
pub struct Hist {
    h: Histogram<u64>,
    buckets: &'static [u64],
}

impl Hist {
    /// Microseconds, 1 µs to 1 hour.
    pub fn micros() -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
            buckets: LATENCY_BUCKETS_US,
        }
    }

    /// Bytes, 1 B to 1 TiB.
    pub fn bytes() -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1, 1 << 40, 2).expect("valid bounds"),
            buckets: SIZE_BUCKETS,
        }
    }

    /// Records one value (clamped into the bounds).
    pub fn record(&mut self, v: u64) {
        self.h.saturating_record(v.max(1));
    }

    /// Records `n` equal values.
    pub fn record_n(&mut self, v: u64, n: u64) {
        let _ = self.h.record_n(v.max(1).min(self.h.high()), n);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The value at quantile `q` (0..=1), 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.value_at_quantile(q)
        }
    }

    /// The largest value recorded, 0 when empty.
    pub fn max(&self) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.max()
        }
    }

    /// Sum of the values (approximate: each value counts as its bucket's equivalent).
    pub fn sum(&self) -> f64 {
        self.h.mean() * self.h.len() as f64
    }

    /// `(upper bound, cumulative count)` at each fixed bucket bound.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .map(|&le| {
                (
                    le,
                    if self.h.is_empty() {
                        0
                    } else {
                        self.h.count_between(0, le)
                    },
                )
            })
            .collect()
    }

    /// Adds another histogram of the same kind.
    pub fn add(&mut self, other: &Hist) {
        let _ = self.h.add(&other.h);
    }
}

/// How a histogram appears in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct HistSummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// Cumulative counts at fixed upper bounds: `[[le, count], …]`.
    pub buckets: Vec<(u64, u64)>,
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HistSummary {
            count: self.count(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
            mean: if self.h.is_empty() {
                0.0
            } else {
                self.h.mean()
            },
            buckets: self.cumulative(),
        }
        .serialize(s)
    }
}

/// Timing of one command name.
#[derive(Debug, Clone, Serialize)]
pub struct CommandTiming {
    /// Ack latency, µs.
    pub ack_latency_us: Hist,
    /// Size on the wire, bytes.
    pub size_bytes: Hist,
}

impl CommandTiming {
    fn new() -> CommandTiming {
        CommandTiming {
            ack_latency_us: Hist::micros(),
            size_bytes: Hist::bytes(),
        }
    }
}

/// Heartbeat intervals.
#[derive(Debug, Clone, Serialize)]
pub struct Heartbeats {
    /// Between master `PING`s in the stream, µs.
    pub master_ping_interval_us: Hist,
    /// Between replica `REPLCONF ACK`s, µs.
    pub replica_ack_interval_us: Hist,
    /// Between master `\n` keep-alives, µs.
    pub master_keepalive_interval_us: Hist,
    /// Between replica `\n` keep-alives, µs.
    pub replica_keepalive_interval_us: Hist,
    /// `REPLCONF GETACK`s sent by the master.
    pub getacks: u64,
}

/// Timing over every session of a run: the per-session histograms added together.
#[derive(Debug, Clone, Serialize)]
pub struct Overall {
    /// Ack latency over all commands of all sessions, µs.
    pub ack_latency_us: Hist,
    /// Commands acknowledged, over all sessions.
    pub acked_commands: u64,
    /// Per command name, over all sessions.
    pub commands: std::collections::BTreeMap<String, CommandTiming>,
    /// Heartbeat intervals, over all sessions.
    pub heartbeats: Heartbeats,
}

impl Overall {
    /// The sum of `timings`.
    pub fn of<'a>(timings: impl IntoIterator<Item = &'a Timing>) -> Overall {
        let mut o = Overall {
            ack_latency_us: Hist::micros(),
            acked_commands: 0,
            commands: Default::default(),
            heartbeats: Heartbeats::new(),
        };
        for t in timings {
            o.ack_latency_us.add(&t.ack_latency_us);
            o.acked_commands += t.acked_commands;
            for (name, c) in &t.commands {
                let e = o
                    .commands
                    .entry(name.clone())
                    .or_insert_with(CommandTiming::new);
                e.ack_latency_us.add(&c.ack_latency_us);
                e.size_bytes.add(&c.size_bytes);
            }
            let (a, b) = (&mut o.heartbeats, &t.heartbeats);
            a.master_ping_interval_us.add(&b.master_ping_interval_us);
            a.replica_ack_interval_us.add(&b.replica_ack_interval_us);
            a.master_keepalive_interval_us
                .add(&b.master_keepalive_interval_us);
            a.replica_keepalive_interval_us
                .add(&b.replica_keepalive_interval_us);
            a.getacks += b.getacks;
        }
        o
    }
}

impl Heartbeats {
    fn new() -> Heartbeats {
        Heartbeats {
            master_ping_interval_us: Hist::micros(),
            replica_ack_interval_us: Hist::micros(),
            master_keepalive_interval_us: Hist::micros(),
            replica_keepalive_interval_us: Hist::micros(),
            getacks: 0,
        }
    }
}

/// Throughput during one second.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Second {
    /// Start of the second (seconds since the epoch).
    pub t: u64,
    /// Stream bytes in complete commands.
    pub bytes: u64,
    /// Stream commands.
    pub commands: u64,
}

/// A warning raised by the timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// `lag`, `master_silent`, `ack_backwards` or `ack_ahead`.
    pub kind: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl From<Warning> for EventKind {
    fn from(w: Warning) -> EventKind {
        EventKind::Warning {
            kind: w.kind.to_string(),
            message: w.message,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    end: u64,
    at: Timestamp,
    names: Vec<(u16, u32)>,
}

/// The timing of one session.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    #[serde(skip)]
    cfg: Config,
    /// Ack latency over all commands, µs.
    pub ack_latency_us: Hist,
    /// Commands whose ACK was seen.
    pub acked_commands: u64,
    /// Commands forwarded but not (yet) acknowledged.
    pub unacked_commands: u64,
    /// Times neighbouring groups of unacknowledged commands were merged (see module docs).
    pub coarsened: u64,
    /// Per command name (upper case; `OTHER` past the name limit).
    pub commands: std::collections::BTreeMap<String, CommandTiming>,
    /// Heartbeat intervals.
    pub heartbeats: Heartbeats,
    /// Current lag in bytes (last forwarded offset − last ACK).
    pub lag_bytes: u64,
    /// Current lag in ms (age of the oldest unacknowledged byte), as of the last event.
    pub lag_ms: f64,
    /// Largest lag in bytes seen at any command or ACK.
    pub max_lag_bytes: u64,
    /// Largest lag in ms seen at any command or ACK.
    pub max_lag_ms: f64,
    /// Throughput per second (the last hour).
    pub rates: VecDeque<Second>,
    /// The most recent warnings (at most [`MAX_WARNINGS`]).
    pub warnings: VecDeque<Warning>,
    /// How many warnings of each kind were raised in all.
    pub warnings_by_kind: std::collections::BTreeMap<&'static str, u64>,
    #[serde(skip)]
    names: HashMap<Name, u16>,
    /// The last name looked up: streams mostly repeat one command.
    #[serde(skip)]
    last_name: Option<(Name, u16)>,
    #[serde(skip)]
    name_list: Vec<String>,
    #[serde(skip)]
    pending: VecDeque<Pending>,
    #[serde(skip)]
    forwarded: Option<u64>,
    #[serde(skip)]
    acked: Option<u64>,
    #[serde(skip)]
    last: [Option<Timestamp>; 4],
    #[serde(skip)]
    last_master_bytes: Option<Timestamp>,
    #[serde(skip)]
    silence_warned: u8,
    #[serde(skip)]
    lag_warned: bool,
    #[serde(skip)]
    syncing: bool,
}

const PING: usize = 0;
const ACK: usize = 1;
const KA_MASTER: usize = 2;
const KA_REPLICA: usize = 3;

impl Timing {
    /// Empty timing with the given thresholds.
    pub fn new(cfg: Config) -> Timing {
        Timing {
            cfg,
            ack_latency_us: Hist::micros(),
            acked_commands: 0,
            unacked_commands: 0,
            coarsened: 0,
            commands: Default::default(),
            heartbeats: Heartbeats::new(),
            lag_bytes: 0,
            lag_ms: 0.0,
            max_lag_bytes: 0,
            max_lag_ms: 0.0,
            rates: VecDeque::new(),
            warnings: VecDeque::new(),
            warnings_by_kind: Default::default(),
            names: HashMap::new(),
            last_name: None,
            name_list: Vec::new(),
            pending: VecDeque::new(),
            forwarded: None,
            acked: None,
            last: [None; 4],
            last_master_bytes: None,
            silence_warned: 0,
            lag_warned: false,
            syncing: false,
        }
    }

    /// The last forwarded stream offset and the last ACK, when known.
    pub fn offsets(&self) -> (Option<u64>, Option<u64>) {
        (self.forwarded, self.acked)
    }

    /// Bytes arrived from the master at `at` (any bytes: RDB, keep-alives, stream).
    pub fn master_bytes(&mut self, at: Timestamp) {
        self.last_master_bytes = Some(at);
        self.silence_warned = 0;
    }

    /// Folds one event; returns the warnings it raises.
    pub fn observe(&mut self, at: Timestamp, kind: &EventKind) -> Vec<Warning> {
        let mut warnings = Vec::new();
        match kind {
            EventKind::SyncStart { sync, offset, .. } => {
                self.syncing = true;
                self.forwarded = match sync {
                    SyncKind::Full => *offset,
                    SyncKind::Partial => offset.map(|o| o.saturating_sub(1)),
                    SyncKind::Sync | SyncKind::RdbChannel => None,
                };
                self.acked = None;
                self.pending.clear();
            }
            EventKind::Command {
                end,
                name,
                sub,
                bytes,
                ..
            } => {
                let idx = self.name_index(*name);
                let key = &self.name_list[idx as usize];
                // Look up before inserting: no allocation per command once a name is known.
                if let Some(t) = self.commands.get_mut(key) {
                    t.size_bytes.record(*bytes);
                } else {
                    let mut t = CommandTiming::new();
                    t.size_bytes.record(*bytes);
                    self.commands.insert(key.clone(), t);
                }
                self.count_second(at, *bytes);
                if name.is("PING") {
                    self.interval(PING, at);
                }
                if name.is("REPLCONF") && sub.is_some_and(|s| s.is("GETACK")) {
                    self.heartbeats.getacks += 1;
                }
                if let Some(end) = end {
                    self.forwarded = Some(*end);
                    self.push_pending(*end, at, idx);
                    self.update_lag(at, &mut warnings);
                }
            }
            EventKind::Ack { offset, .. } => {
                self.interval(ACK, at);
                if let Some(prev) = self.acked {
                    if *offset < prev {
                        warnings.push(Warning {
                            kind: "ack_backwards",
                            message: format!("replica ACK went backwards: {offset} after {prev}"),
                        });
                    }
                }
                if let Some(fwd) = self.forwarded {
                    if *offset > fwd {
                        warnings.push(Warning {
                            kind: "ack_ahead",
                            message: format!(
                                "replica ACKed offset {offset}, beyond the {fwd} forwarded"
                            ),
                        });
                    }
                }
                self.acked = Some(*offset);
                self.settle(*offset, at);
                self.update_lag(at, &mut warnings);
            }
            EventKind::KeepAlive { dir } => match dir {
                Direction::MasterToReplica => self.interval(KA_MASTER, at),
                Direction::ReplicaToMaster => self.interval(KA_REPLICA, at),
            },
            _ => {}
        }
        self.keep(&warnings);
        warnings
    }

    fn keep(&mut self, warnings: &[Warning]) {
        for w in warnings {
            *self.warnings_by_kind.entry(w.kind).or_default() += 1;
            if self.warnings.len() == MAX_WARNINGS {
                self.warnings.pop_front();
            }
            self.warnings.push_back(w.clone());
        }
    }

    /// Time passes without events: warns when the master has been silent too long.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let Some(last) = self.last_master_bytes else {
            return warnings;
        };
        if !self.syncing {
            return warnings;
        }
        let silent = now.since(last);
        let timeout = self.cfg.repl_timeout;
        let level = if silent > timeout {
            2
        } else if silent > timeout / 2 {
            1
        } else {
            0
        };
        if level > self.silence_warned {
            self.silence_warned = level;
            let what = if level == 2 {
                "past repl-timeout: the replica drops the link now"
            } else {
                "half of repl-timeout"
            };
            warnings.push(Warning {
                kind: "master_silent",
                message: format!(
                    "no bytes from the master for {:.1} s ({what}, repl-timeout {} s)",
                    silent.as_secs_f64(),
                    timeout.as_secs()
                ),
            });
        }
        self.keep(&warnings);
        warnings
    }

    /// Lag as of `now` (bytes, ms).
    pub fn lag_at(&self, now: Timestamp) -> (u64, f64) {
        let bytes = match (self.forwarded, self.acked) {
            (Some(f), Some(a)) => f.saturating_sub(a),
            _ => 0,
        };
        let ms = self
            .pending
            .front()
            .map_or(0.0, |p| now.since(p.at).as_secs_f64() * 1000.0);
        (bytes, ms)
    }

    /// Commands and bytes per second over the `secs` seconds before `now`.
    pub fn rate(&self, now: Timestamp, secs: u64) -> (f64, f64) {
        let from = (now.0 / 1_000_000).saturating_sub(secs);
        let (mut c, mut b) = (0, 0);
        for s in self.rates.iter().rev().take_while(|s| s.t >= from) {
            c += s.commands;
            b += s.bytes;
        }
        let secs = secs.max(1) as f64;
        (c as f64 / secs, b as f64 / secs)
    }

    fn name_index(&mut self, name: Name) -> u16 {
        if let Some((last, i)) = self.last_name {
            if last == name {
                return i;
            }
        }
        let i = self.name_index_slow(name);
        self.last_name = Some((name, i));
        i
    }

    fn name_index_slow(&mut self, name: Name) -> u16 {
        if let Some(&i) = self.names.get(&name) {
            return i;
        }
        let label = if self.name_list.len() < MAX_NAMES {
            name.to_string()
        } else {
            "OTHER".to_string()
        };
        let i = match self.name_list.iter().position(|n| *n == label) {
            Some(i) => i as u16,
            None => {
                self.name_list.push(label);
                (self.name_list.len() - 1) as u16
            }
        };
        if self.names.len() < 4 * MAX_NAMES {
            self.names.insert(name, i);
        }
        i
    }

    fn interval(&mut self, which: usize, at: Timestamp) {
        if let Some(prev) = self.last[which] {
            let us = at.since(prev).as_micros() as u64;
            let h = match which {
                PING => &mut self.heartbeats.master_ping_interval_us,
                ACK => &mut self.heartbeats.replica_ack_interval_us,
                KA_MASTER => &mut self.heartbeats.master_keepalive_interval_us,
                _ => &mut self.heartbeats.replica_keepalive_interval_us,
            };
            h.record(us);
        }
        self.last[which] = Some(at);
    }

    fn count_second(&mut self, at: Timestamp, bytes: u64) {
        let t = at.0 / 1_000_000;
        match self.rates.back_mut() {
            Some(s) if s.t == t => {
                s.bytes += bytes;
                s.commands += 1;
            }
            _ => {
                if self.rates.len() == MAX_RATE_SECONDS {
                    self.rates.pop_front();
                }
                self.rates.push_back(Second {
                    t,
                    bytes,
                    commands: 1,
                });
            }
        }
    }

    fn push_pending(&mut self, end: u64, at: Timestamp, idx: u16) {
        self.unacked_commands += 1;
        if let Some(back) = self.pending.back_mut() {
            if back.at == at {
                back.end = end;
                match back.names.iter_mut().find(|(i, _)| *i == idx) {
                    Some((_, n)) => *n += 1,
                    None => back.names.push((idx, 1)),
                }
                return;
            }
        }
        if self.pending.len() >= MAX_PENDING {
            self.coarsen();
        }
        self.pending.push_back(Pending {
            end,
            at,
            names: vec![(idx, 1)],
        });
    }

    /// Merges neighbouring pending groups pairwise, halving their number.
    fn coarsen(&mut self) {
        let old = std::mem::take(&mut self.pending);
        let mut it = old.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.end = b.end;
                a.at = b.at;
                for (i, n) in b.names {
                    match a.names.iter_mut().find(|(j, _)| *j == i) {
                        Some((_, m)) => *m += n,
                        None => a.names.push((i, n)),
                    }
                }
                self.coarsened += 1;
            }
            self.pending.push_back(a);
        }
    }

    /// Records the latency of every pending command the ACK at `offset` covers.
    fn settle(&mut self, offset: u64, at: Timestamp) {
        while let Some(p) = self.pending.front() {
            if p.end > offset {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            let us = at.since(p.at).as_micros() as u64;
            for (idx, n) in p.names {
                let name = &self.name_list[idx as usize];
                if let Some(t) = self.commands.get_mut(name) {
                    t.ack_latency_us.record_n(us, n as u64);
                }
                self.ack_latency_us.record_n(us, n as u64);
                self.acked_commands += n as u64;
                self.unacked_commands = self.unacked_commands.saturating_sub(n as u64);
            }
        }
    }

    fn update_lag(&mut self, at: Timestamp, warnings: &mut Vec<Warning>) {
        let (bytes, ms) = self.lag_at(at);
        self.lag_bytes = bytes;
        self.lag_ms = ms;
        self.max_lag_bytes = self.max_lag_bytes.max(bytes);
        self.max_lag_ms = self.max_lag_ms.max(ms);
        if bytes > self.cfg.lag_warn_bytes && !self.lag_warned {
            self.lag_warned = true;
            warnings.push(Warning {
                kind: "lag",
                message: format!(
                    "replica lags {bytes} bytes ({ms:.0} ms) behind the stream (warning at {})",
                    self.cfg.lag_warn_bytes
                ),
            });
        } else if bytes <= self.cfg.lag_warn_bytes / 2 {
            self.lag_warned = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(end: u64, name: &str) -> EventKind {
        EventKind::Command {
            start: Some(end - 9),
            end: Some(end),
            name: Name::new(name.as_bytes()),
            sub: None,
            db: Some(0),
            in_multi: false,
            bytes: 10,
        }
    }

    fn ms(n: u64) -> Timestamp {
        Timestamp(1_000_000_000_000 + n * 1000)
    }

    #[test]
    fn ack_latency_is_from_forwarding_to_the_covering_ack() {
        let mut t = Timing::new(Config::default());
        let full = EventKind::SyncStart {
            sync: SyncKind::Full,
            replid: None,
            offset: Some(0),
        };
        t.observe(ms(0), &full);
        t.observe(ms(10), &cmd(10, "SET"));
        t.observe(ms(20), &cmd(20, "SET"));
        t.observe(ms(20), &cmd(30, "INCR"));
        // An ACK inside the stream covers only what ends at or before it.
        t.observe(
            ms(25),
            &EventKind::Ack {
                offset: 10,
                fack: None,
            },
        );
        assert_eq!((t.acked_commands, t.unacked_commands), (1, 2));
        assert_eq!(t.lag_at(ms(25)), (20, 5.0));
        t.observe(
            ms(40),
            &EventKind::Ack {
                offset: 30,
                fack: None,
            },
        );
        assert_eq!((t.acked_commands, t.unacked_commands), (3, 0));
        // Two significant digits: values are exact to 1 %.
        let near = |v: u64, want: u64| (v as f64 - want as f64).abs() <= want as f64 / 100.0;
        let set = &t.commands["SET"].ack_latency_us;
        assert_eq!(set.count(), 2);
        assert!(near(set.quantile(0.0), 15_000) && near(set.max(), 20_000));
        assert!(near(t.commands["INCR"].ack_latency_us.max(), 20_000));
        assert_eq!(t.lag_at(ms(40)), (0, 0.0));
        assert!(near(t.heartbeats.replica_ack_interval_us.max(), 15_000));
    }

    #[test]
    fn pending_tracking_is_bounded_and_coarsens() {
        let mut t = Timing::new(Config::default());
        for i in 1..=(3 * MAX_PENDING as u64) {
            t.observe(ms(i), &cmd(i * 10, "SET"));
        }
        assert!(t.pending.len() <= MAX_PENDING);
        assert!(t.coarsened > 0);
        t.observe(
            ms(10 * MAX_PENDING as u64),
            &EventKind::Ack {
                offset: u64::MAX,
                fack: None,
            },
        );
        assert_eq!(t.acked_commands, 3 * MAX_PENDING as u64);
    }

    #[test]
    fn warnings_for_lag_silence_and_odd_acks() {
        let cfg = Config {
            lag_warn_bytes: 15,
            repl_timeout: Duration::from_secs(10),
        };
        let mut t = Timing::new(cfg);
        let full = EventKind::SyncStart {
            sync: SyncKind::Full,
            replid: None,
            offset: Some(0),
        };
        t.observe(ms(0), &full);
        t.master_bytes(ms(0));
        t.observe(ms(1), &cmd(10, "SET"));
        let w = t.observe(ms(2), &cmd(20, "SET"));
        assert!(w.is_empty(), "no ACK yet: lag in bytes is unknown");
        t.observe(
            ms(3),
            &EventKind::Ack {
                offset: 0,
                fack: None,
            },
        );
        assert_eq!(t.warnings.back().unwrap().kind, "lag");
        let w = t.observe(
            ms(4),
            &EventKind::Ack {
                offset: 25,
                fack: None,
            },
        );
        assert_eq!(w[0].kind, "ack_ahead");
        let w = t.observe(
            ms(5),
            &EventKind::Ack {
                offset: 5,
                fack: None,
            },
        );
        assert_eq!(w[0].kind, "ack_backwards");
        assert!(t.tick(ms(4_000)).is_empty());
        assert_eq!(t.tick(ms(6_000))[0].kind, "master_silent");
        assert!(t.tick(ms(7_000)).is_empty(), "said once per level");
        assert!(t.tick(ms(11_000))[0].message.contains("past repl-timeout"));
    }
}
