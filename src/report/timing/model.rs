//! The timing of a session as reported: plain data, serialized into the report as is. The
//! [`Tracker`](super::Tracker) keeps it up to date.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::Hist;
use crate::analyzer::event::{EventKind, WarningKind};
use crate::analyzer::input::Timestamp;

/// Timing of one command name.
#[derive(Debug, Clone, Serialize)]
pub struct CommandTiming {
    /// Ack latency, µs.
    pub ack_latency_us: Hist,
    /// Size on the wire, bytes.
    pub size_bytes: Hist,
}

impl CommandTiming {
    pub(super) fn new() -> CommandTiming {
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
    /// Between the replica's periodic `REPLCONF ACK`s (once a second), µs. An ACK that answers
    /// a `REPLCONF GETACK` is not a heartbeat: it is counted in `solicited_acks`.
    pub replica_ack_interval_us: Hist,
    /// Between master `\n` keep-alives, µs.
    pub master_keepalive_interval_us: Hist,
    /// Between replica `\n` keep-alives, µs.
    pub replica_keepalive_interval_us: Hist,
    /// `REPLCONF GETACK`s sent by the master.
    pub getacks: u64,
    /// ACKs that answered a GETACK (their offset is the one just before it).
    pub solicited_acks: u64,
    /// From forwarding a GETACK to the ACK that answers it, µs.
    pub getack_round_trip_us: Hist,
    /// Master `PING`s forwarded while the replica loaded its RDB (between the RDB's end and
    /// its first ACK): they waited in the master's buffer, so their spacing says nothing of
    /// the master's heartbeat, and they are not in `master_ping_interval_us`.
    pub buffered_pings: u64,
}

/// Timing over every session of a run: the per-session histograms added together.
#[derive(Debug, Clone, Serialize)]
pub struct Overall {
    /// Ack latency over all commands of all sessions, µs.
    pub ack_latency_us: Hist,
    /// Commands acknowledged, over all sessions.
    pub acked_commands: u64,
    /// Per command name, over all sessions.
    pub commands: BTreeMap<String, CommandTiming>,
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
            a.solicited_acks += b.solicited_acks;
            a.getack_round_trip_us.add(&b.getack_round_trip_us);
            a.buffered_pings += b.buffered_pings;
        }
        o
    }
}

impl Heartbeats {
    pub(super) fn new() -> Heartbeats {
        Heartbeats {
            master_ping_interval_us: Hist::micros(),
            replica_ack_interval_us: Hist::micros(),
            master_keepalive_interval_us: Hist::micros(),
            replica_keepalive_interval_us: Hist::micros(),
            getacks: 0,
            solicited_acks: 0,
            getack_round_trip_us: Hist::micros(),
            buffered_pings: 0,
        }
    }
}

/// The `repl-backlog-size` a measured write rate calls for.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogAdvice {
    /// Stream bytes per second, over the whole session.
    pub mean_bytes_per_s: f64,
    /// Stream bytes per second in the busiest window of `survive_s` seconds (or over the
    /// whole stream, when it is shorter than that).
    pub peak_bytes_per_s: f64,
    /// The disconnect to survive (`--survive`).
    pub survive_s: u64,
    /// The backlog that holds `window_bytes`: a quarter more, rounded up to a MiB.
    pub advised_bytes: u64,
    /// Stream bytes written in the busiest `survive_s` seconds: what a disconnect at the worst
    /// moment would have needed. Measured, never extrapolated.
    pub window_bytes: u64,
    /// Seconds of stream the advice rests on: `survive_s`, or the stream's own length when
    /// shorter.
    pub based_on_s: u64,
    /// Returns true if and only if the stream was shorter than `survive_s`: `window_bytes` is
    /// then all it wrote, a lower bound of what such a disconnect needs.
    pub lower_bound: bool,
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
    /// The most stream bytes forwarded but not yet acknowledged, during the second.
    pub lag_bytes: u64,
    /// The oldest unacknowledged byte's age at its worst during the second, in ms.
    pub lag_ms: f64,
}

/// A warning as the report keeps it: when, then what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptWarning {
    /// When it was raised.
    pub at: Timestamp,
    /// What it says.
    #[serde(flatten)]
    pub warning: Warning,
}

/// A warning raised by the timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// What kind of warning.
    pub kind: WarningKind,
    /// What is wrong, for people.
    pub message: String,
}

impl From<Warning> for EventKind {
    fn from(w: Warning) -> EventKind {
        EventKind::Warning {
            kind: w.kind,
            message: w.message,
        }
    }
}

/// The timing of one session.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Ack latency over all commands, µs.
    pub ack_latency_us: Hist,
    /// Commands whose ACK was seen.
    pub acked_commands: u64,
    /// Commands forwarded but not (yet) acknowledged.
    pub unacked_commands: u64,
    /// Times neighbouring groups of unacknowledged commands were merged (see module docs).
    pub coarsened: u64,
    /// Per command name (upper case; `OTHER` past the name limit).
    pub commands: BTreeMap<String, CommandTiming>,
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
    /// The most recent warnings (at most [`MAX_WARNINGS`](super::MAX_WARNINGS)), with when.
    pub warnings: VecDeque<KeptWarning>,
    /// The `repl-backlog-size` the measured write rate calls for (filled in reports).
    pub backlog: Option<BacklogAdvice>,
    /// How many warnings of each kind were raised in all.
    pub warnings_by_kind: BTreeMap<WarningKind, u64>,
    /// When the oldest byte not yet acknowledged was forwarded: the lag in ms at any moment
    /// between events ([`Timing::lag_ms_at`]).
    #[serde(skip)]
    pub oldest_unacked: Option<Timestamp>,
}

impl Timing {
    /// No timing yet.
    pub fn new() -> Timing {
        Timing {
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
            backlog: None,
            oldest_unacked: None,
        }
    }

    /// The lag in ms as of `now`: the age of the oldest byte forwarded and not acknowledged
    /// (the same definition as `lag_ms`, which is as of the last event).
    pub fn lag_ms_at(&self, now: Timestamp) -> f64 {
        self.oldest_unacked
            .map_or(0.0, |at| now.since(at).as_secs_f64() * 1000.0)
    }

    /// The backlog that lets a replica survive a disconnect of `survive` at the busiest
    /// moment: the most stream bytes written in any window of that length. A stream watched
    /// for less than the window (from its first command to `until`, the session's end or the
    /// run's now) gives what it wrote, as a lower bound. `None` before any stream.
    pub fn backlog_advice(
        &self,
        survive: std::time::Duration,
        until: Timestamp,
    ) -> Option<BacklogAdvice> {
        let (first, last) = (self.rates.front()?, self.rates.back()?);
        let total: u64 = self.rates.iter().map(|s| s.bytes).sum();
        if total == 0 {
            return None;
        }
        let span = (until.0 / 1_000_000).max(last.t) - first.t + 1;
        let window_s = survive.as_secs().max(1);
        let mut peak = 0u64;
        let mut window = 0u64;
        let mut head = self.rates.iter().peekable();
        for s in self.rates.iter() {
            window += s.bytes;
            while let Some(h) = head.next_if(|h| h.t + window_s <= s.t) {
                window -= h.bytes;
            }
            peak = peak.max(window);
        }
        let based_on_s = span.min(window_s);
        Some(BacklogAdvice {
            mean_bytes_per_s: total as f64 / span as f64,
            peak_bytes_per_s: peak as f64 / based_on_s as f64,
            survive_s: survive.as_secs(),
            advised_bytes: super::super::history::backlog_for(peak),
            window_bytes: peak,
            based_on_s,
            lower_bound: span < window_s,
        })
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
}

impl Default for Timing {
    fn default() -> Self {
        Timing::new()
    }
}
