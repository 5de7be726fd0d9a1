//! The fold state behind a session's [`Timing`]: what is in flight, when things last
//! happened, which warnings were already given. It reads events and updates the model.

use std::collections::{HashMap, VecDeque};

use super::model::{CommandTiming, KeptWarning, Second, Timing, Warning};
use super::{Config, MAX_NAMES, MAX_PENDING, MAX_RATE_SECONDS, MAX_WARNINGS};
use crate::analyzer::event::{EventKind, SyncKind, WarningKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::protocol::resp::Name;
use crate::report::fold::MAX_COMMAND_NAMES;

#[derive(Debug, Clone)]
struct Pending {
    end: u64,
    at: Timestamp,
    names: Vec<(u16, u32)>,
}

/// Follows one session's events and keeps its [`Timing`] up to date.
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: Config,
    names: HashMap<Name, u16>,
    /// The last name looked up: streams mostly repeat one command.
    last_name: Option<(Name, u16)>,
    name_list: Vec<String>,
    pending: VecDeque<Pending>,
    forwarded: Option<u64>,
    acked: Option<u64>,
    /// The offset just before the stream's first byte: what lag counts from until the first
    /// ACK, so a catch-up after a full sync shows its lag before the replica speaks.
    base: Option<u64>,
    last: [Option<Timestamp>; 4],
    last_master_bytes: Option<Timestamp>,
    silence_warned: u8,
    lag_warned: bool,
    syncing: bool,
    /// GETACKs forwarded and not yet answered: the ACK offset that answers each, and when.
    getacks: VecDeque<(u64, Timestamp)>,
    /// The stream offset when this connection's RDB ended, and whether the stream the master
    /// had buffered meanwhile was checked against the output-buffer limit.
    rdb_end: Option<(u64, bool)>,
    /// Since when the replica has not read what the master sent (the relay said so), until
    /// the master's bytes flow again. Meanwhile the master is not silent, only unread.
    not_draining: Option<Timestamp>,
    /// More than [`MAX_COMMAND_NAMES`] distinct names came (warned once).
    names_capped: bool,
    /// Between this connection's RDB end and the replica's first ACK: it loads, and what the
    /// master sends meanwhile waits.
    loading: bool,
}

/// A replica's ACK period (`replicationCron`, once a second), with room for its jitter.
const ACK_PERIOD_MS: f64 = 1100.0;

/// GETACKs remembered while waiting for their answers.
const MAX_GETACKS: usize = 1024;

const PING: usize = 0;
const ACK: usize = 1;
const KA_MASTER: usize = 2;
const KA_REPLICA: usize = 3;

impl Tracker {
    /// A tracker with the given thresholds.
    pub fn new(cfg: Config) -> Tracker {
        Tracker {
            cfg,
            names: HashMap::new(),
            last_name: None,
            name_list: Vec::new(),
            pending: VecDeque::new(),
            forwarded: None,
            acked: None,
            base: None,
            last: [None; 4],
            last_master_bytes: None,
            silence_warned: 0,
            lag_warned: false,
            syncing: false,
            getacks: VecDeque::new(),
            rdb_end: None,
            not_draining: None,
            names_capped: false,
            loading: false,
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
        self.not_draining = None;
    }

    /// The relay says bytes of `dir` have waited since `since`, `pending` of them in the relay:
    /// the receiving side does not read. One warning per stall.
    pub fn stalled(
        &mut self,
        t: &mut Timing,
        now: Timestamp,
        dir: Direction,
        since: Timestamp,
        pending: u64,
    ) -> Vec<Warning> {
        let (reader, sender) = match dir {
            Direction::MasterToReplica => {
                if self.not_draining.is_some() {
                    return Vec::new();
                }
                self.not_draining = Some(since);
                (
                    "replica",
                    "master's output buffer (client-output-buffer-limit replica)",
                )
            }
            Direction::ReplicaToMaster => ("master", "replica's output buffer"),
        };
        let warnings = vec![Warning {
            kind: WarningKind::NotDraining,
            message: format!(
                "{reader} not draining: it has read nothing for {:.1} s; {pending} bytes wait \
                 in repl-sniff and the rest in the {sender}",
                now.since(since).as_secs_f64()
            ),
        }];
        keep(t, now, &warnings);
        warnings
    }

    /// Folds one event; returns the warnings it raises.
    pub fn observe(&mut self, t: &mut Timing, at: Timestamp, kind: &EventKind) -> Vec<Warning> {
        let mut warnings = Vec::new();
        match kind {
            EventKind::SyncStart { sync, offset, .. } => {
                self.syncing = true;
                self.forwarded = match sync {
                    SyncKind::Full
                    | SyncKind::RdbChannel
                    | SyncKind::DualChannel
                    | SyncKind::SlotStream => *offset,
                    SyncKind::Partial => offset.map(|o| o.saturating_sub(1)),
                    SyncKind::Sync | SyncKind::SlotSnapshot => None,
                };
                self.base = self.forwarded;
                self.acked = None;
                self.pending.clear();
                t.oldest_unacked = None;
                self.getacks.clear();
            }
            EventKind::Command {
                end,
                name,
                sub,
                bytes,
                ..
            } => {
                let capped = self.names_capped;
                let idx = self.name_index(*name);
                if self.names_capped && !capped {
                    warnings.push(Warning {
                        kind: WarningKind::AnalysisLimit,
                        message: format!(
                            "more than {MAX_COMMAND_NAMES} distinct command names on this \
                             connection (garbage or an attack?): new names are counted as OTHER"
                        ),
                    });
                }
                let key = &self.name_list[idx as usize];
                // Look up before inserting: no allocation per command once a name is known.
                if let Some(c) = t.commands.get_mut(key) {
                    c.size_bytes.record(*bytes);
                } else {
                    let mut c = CommandTiming::new();
                    c.size_bytes.record(*bytes);
                    t.commands.insert(key.clone(), c);
                }
                count_second(t, at, *bytes);
                if name.is("PING") && self.loading {
                    t.heartbeats.buffered_pings += 1;
                    self.last[PING] = None;
                } else if name.is("PING") {
                    self.interval(t, PING, at);
                }
                let getack = name.is("REPLCONF") && sub.is_some_and(|s| s.is("GETACK"));
                if getack {
                    t.heartbeats.getacks += 1;
                    // The replica answers with its offset before the GETACK (protocol.md §11).
                    if let Some(end) = end {
                        if self.getacks.len() == MAX_GETACKS {
                            self.getacks.pop_front();
                        }
                        self.getacks.push_back((end.saturating_sub(*bytes), at));
                    }
                }
                if let Some(end) = end {
                    self.forwarded = Some(*end);
                    self.push_pending(t, *end, at, idx, getack);
                    self.update_lag(t, at, &mut warnings);
                }
            }
            EventKind::Ack { offset, .. } => {
                self.loading = false;
                // GETACKs the replica answered with a larger offset are answered no more.
                while self.getacks.front().is_some_and(|(o, _)| o < offset) {
                    self.getacks.pop_front();
                }
                match self.getacks.front() {
                    Some(&(o, asked)) if o == *offset => {
                        self.getacks.pop_front();
                        t.heartbeats.solicited_acks += 1;
                        let us = at.since(asked).as_micros() as u64;
                        t.heartbeats.getack_round_trip_us.record(us);
                    }
                    _ => self.interval(t, ACK, at),
                }
                if let Some(prev) = self.acked {
                    if *offset < prev {
                        warnings.push(Warning {
                            kind: WarningKind::AckBackwards,
                            message: format!("replica ACK went backwards: {offset} after {prev}"),
                        });
                    }
                }
                if let Some(fwd) = self.forwarded {
                    if *offset > fwd {
                        warnings.push(Warning {
                            kind: WarningKind::AckAhead,
                            message: format!(
                                "replica ACKed offset {offset}, beyond the {fwd} forwarded"
                            ),
                        });
                    }
                }
                // The lag in ms peaks just before an ACK settles what it covers.
                let before = self.lag_at(at);
                t.max_lag_ms = t.max_lag_ms.max(before.1);
                note_lag(t, at, before);
                self.acked = Some(*offset);
                self.settle(t, *offset, at);
                self.update_lag(t, at, &mut warnings);
            }
            // Said by the session itself (an unpaired connection): counted like the others.
            EventKind::Warning { kind, message } => warnings_from_session(t, at, *kind, message),
            EventKind::KeepAlive { dir } => match dir {
                Direction::MasterToReplica => self.interval(t, KA_MASTER, at),
                Direction::ReplicaToMaster => self.interval(t, KA_REPLICA, at),
            },
            // The analysis of the master's stream broke: how far it has gone is known again at
            // the next command with an offset (a compressed stream's loss leaves the offsets
            // unknown until then). Until that, the replica's ACKs are not "ahead" of anything.
            EventKind::Desync {
                dir: Direction::MasterToReplica,
                ..
            } => self.forwarded = None,
            EventKind::RdbEnd { .. } => {
                self.rdb_end = self.forwarded.map(|f| (f, false));
                self.loading = true;
            }
            EventKind::Anchored { offset } => {
                // Joined mid-stream: what came before is unknown, so lag counts from here.
                self.forwarded = Some(*offset);
                self.base = self.base.or(Some(*offset));
            }
            // The summary's "now" is the session's end.
            EventKind::SessionEnd { .. } => self.update_lag(t, at, &mut warnings),
            EventKind::RdbContents { contents } => warnings.extend(rdb_warning(contents)),
            _ => {}
        }
        if let EventKind::Ack { .. } = kind {
            warnings.extend(self.buffered_warning());
        }
        keep(t, at, &warnings);
        warnings
    }

    /// Time passes without events: warns when the master has been silent too long. The
    /// report is not touched: it is sampled at events only (the lag in ms peaks just before an
    /// ACK, and at the end, both events), so a replay of a recording gives the live report.
    pub fn tick(&mut self, t: &mut Timing, now: Timestamp) -> Vec<Warning> {
        let warnings: Vec<Warning> = self.silence(now).into_iter().collect();
        keep(t, now, &warnings);
        warnings
    }

    /// A warning when the master has said nothing for half of `repl-timeout`, and past it.
    fn silence(&mut self, now: Timestamp) -> Option<Warning> {
        let last = self.last_master_bytes?;
        if !self.syncing || self.not_draining.is_some() {
            return None;
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
        if level <= self.silence_warned {
            return None;
        }
        self.silence_warned = level;
        let what = if level == 2 {
            "past repl-timeout: the replica drops the link now"
        } else {
            "half of repl-timeout"
        };
        Some(Warning {
            kind: WarningKind::MasterSilent,
            message: format!(
                "no bytes from the master for {:.1} s ({what}, repl-timeout {} s)",
                silent.as_secs_f64(),
                timeout.as_secs()
            ),
        })
    }

    /// Lag as of `now` (bytes, ms): the stream bytes forwarded and not acknowledged (from the
    /// stream's first byte until the first ACK), and the age of the oldest of them.
    pub fn lag_at(&self, now: Timestamp) -> (u64, f64) {
        let bytes = match (self.forwarded, self.acked.or(self.base)) {
            (Some(f), Some(a)) => f.saturating_sub(a),
            _ => 0,
        };
        let ms = self
            .pending
            .front()
            .map_or(0.0, |p| now.since(p.at).as_secs_f64() * 1000.0);
        (bytes, ms)
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
        if self.names.len() < MAX_COMMAND_NAMES {
            self.names.insert(name, i);
        } else {
            self.names_capped = true;
        }
        i
    }

    fn interval(&mut self, t: &mut Timing, which: usize, at: Timestamp) {
        if let Some(prev) = self.last[which] {
            let us = at.since(prev).as_micros() as u64;
            let h = match which {
                PING => &mut t.heartbeats.master_ping_interval_us,
                ACK => &mut t.heartbeats.replica_ack_interval_us,
                KA_MASTER => &mut t.heartbeats.master_keepalive_interval_us,
                _ => &mut t.heartbeats.replica_keepalive_interval_us,
            };
            h.record(us);
        }
        self.last[which] = Some(at);
    }

    /// `getack` starts a group of its own: the replica answers a GETACK with its offset just
    /// before it, an ACK that covers what came before the GETACK in the same read but not the
    /// GETACK, so in one group the commands before it would wait for a later ACK.
    fn push_pending(&mut self, t: &mut Timing, end: u64, at: Timestamp, idx: u16, getack: bool) {
        t.unacked_commands += 1;
        if let Some(back) = self.pending.back_mut().filter(|_| !getack) {
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
            self.coarsen(t);
        }
        self.pending.push_back(Pending {
            end,
            at,
            names: vec![(idx, 1)],
        });
    }

    /// Merges neighbouring pending groups pairwise, halving their number.
    fn coarsen(&mut self, t: &mut Timing) {
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
                t.coarsened += 1;
            }
            self.pending.push_back(a);
        }
    }

    /// Records the latency of every pending command the ACK at `offset` covers.
    fn settle(&mut self, t: &mut Timing, offset: u64, at: Timestamp) {
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
                if let Some(c) = t.commands.get_mut(name) {
                    c.ack_latency_us.record_n(us, n as u64);
                }
                t.ack_latency_us.record_n(us, n as u64);
                t.acked_commands += n as u64;
                t.unacked_commands = t.unacked_commands.saturating_sub(n as u64);
            }
        }
    }

    /// At the replica's first ACK after its RDB: the stream forwarded since the RDB ended is
    /// what the master had buffered for it during the transfer (plus what came meanwhile).
    /// Half of a `client-output-buffer-limit replica` is a warning: past the limit the master
    /// drops the replica and the full sync starts over.
    fn buffered_warning(&mut self) -> Option<Warning> {
        let (start, checked) = self.rdb_end.as_mut()?;
        if *checked {
            return None;
        }
        *checked = true;
        let buffered = self.forwarded?.saturating_sub(*start);
        let limit = self.cfg.cob_limit;
        let near = |l: u64| l > 0 && buffered.saturating_mul(2) >= l;
        let which = if near(limit.hard) {
            format!("the hard limit of {} bytes", limit.hard)
        } else if near(limit.soft) {
            format!(
                "the soft limit of {} bytes (dropped after {} s above it)",
                limit.soft, limit.soft_seconds
            )
        } else {
            return None;
        };
        Some(Warning {
            kind: WarningKind::CobLimit,
            message: format!(
                "the master buffered {buffered} bytes of stream for the replica during its full \
                 sync, at least half of {which} of client-output-buffer-limit replica \
                 (--cob-limit): a little more, and it drops the replica and starts over"
            ),
        })
    }

    fn update_lag(&mut self, t: &mut Timing, at: Timestamp, warnings: &mut Vec<Warning>) {
        let (bytes, ms) = self.lag_at(at);
        t.lag_bytes = bytes;
        t.lag_ms = ms;
        t.oldest_unacked = self.pending.front().map(|p| p.at);
        t.max_lag_bytes = t.max_lag_bytes.max(bytes);
        t.max_lag_ms = t.max_lag_ms.max(ms);
        note_lag(t, at, (bytes, ms));
        if bytes > self.cfg.lag_warn_bytes && !self.lag_warned {
            self.lag_warned = true;
            // The replica ACKs once a second: a stream that writes faster than lag-warn bytes
            // a second always shows that much lag, however healthy the replica.
            let period = if ms <= ACK_PERIOD_MS {
                format!(
                    "; all of it forwarded in the last {ms:.0} ms, within the replica's 1 s ACK \
                     period: a busy stream rather than a slow replica"
                )
            } else {
                String::new()
            };
            warnings.push(Warning {
                kind: WarningKind::Lag,
                message: format!(
                    "replica lags {bytes} bytes ({ms:.0} ms) behind the stream (warning at {}){period}",
                    self.cfg.lag_warn_bytes
                ),
            });
        } else if bytes <= self.cfg.lag_warn_bytes / 2 {
            self.lag_warned = false;
        }
    }
}

fn keep(t: &mut Timing, at: Timestamp, warnings: &[Warning]) {
    for w in warnings {
        *t.warnings_by_kind.entry(w.kind).or_default() += 1;
        if t.warnings.len() == MAX_WARNINGS {
            t.warnings.pop_front();
        }
        t.warnings.push_back(KeptWarning {
            at,
            warning: w.clone(),
        });
    }
}

/// A damaged RDB, or one this analyzer cannot read to its end. (A transfer cut short is said
/// by the transfer's own events.)
fn rdb_warning(contents: &crate::protocol::rdb::Summary) -> Option<Warning> {
    use crate::protocol::rdb::{Checksum, ErrorKind};
    let e = contents.error.as_ref()?;
    let message = match e.kind {
        ErrorKind::Truncated(_) | ErrorKind::Missing { .. } => return None,
        ErrorKind::ChecksumMismatch { .. } => format!("the RDB is damaged: {e}"),
        _ if contents.checksum == Checksum::Mismatch => format!("the RDB is damaged: {e}"),
        _ => format!("RDB analysis stopped: {e}; the bytes are still forwarded"),
    };
    Some(Warning {
        kind: WarningKind::Rdb,
        message,
    })
}

fn warnings_from_session(t: &mut Timing, at: Timestamp, kind: WarningKind, message: &str) {
    let message = message.to_string();
    keep(t, at, &[Warning { kind, message }]);
}

fn count_second(t: &mut Timing, at: Timestamp, bytes: u64) {
    let s = open_second(t, at);
    s.bytes += bytes;
    s.commands += 1;
}

/// The entry of `at`'s second in the per-second series, added if it is not the last one.
fn open_second(t: &mut Timing, at: Timestamp) -> &mut Second {
    let second = at.0 / 1_000_000;
    if t.rates.back().is_none_or(|s| s.t != second) {
        if t.rates.len() == MAX_RATE_SECONDS {
            t.rates.pop_front();
        }
        t.rates.push_back(Second {
            t: second,
            bytes: 0,
            commands: 0,
            lag_bytes: 0,
            lag_ms: 0.0,
        });
    }
    t.rates.back_mut().expect("just ensured")
}

/// Keeps the worst lag of the current second (a second with stream commands).
fn note_lag(t: &mut Timing, at: Timestamp, (bytes, ms): (u64, f64)) {
    if let Some(s) = t.rates.back_mut().filter(|s| s.t == at.0 / 1_000_000) {
        s.lag_bytes = s.lag_bytes.max(bytes);
        s.lag_ms = s.lag_ms.max(ms);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A session's timing and its tracker, driven together.
    struct Both {
        timing: Timing,
        tracker: Tracker,
    }

    impl Both {
        fn new(cfg: Config) -> Both {
            Both {
                timing: Timing::new(),
                tracker: Tracker::new(cfg),
            }
        }
        fn observe(&mut self, at: Timestamp, kind: &EventKind) -> Vec<Warning> {
            self.tracker.observe(&mut self.timing, at, kind)
        }
        fn tick(&mut self, now: Timestamp) -> Vec<Warning> {
            self.tracker.tick(&mut self.timing, now)
        }
    }

    impl std::ops::Deref for Both {
        type Target = Timing;
        fn deref(&self) -> &Timing {
            &self.timing
        }
    }

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

    /// `+FULLRESYNC … <offset>`: the stream starts at `offset + 1`.
    fn full_sync(offset: u64) -> EventKind {
        EventKind::SyncStart {
            sync: SyncKind::Full,
            replid: None,
            offset: Some(offset),
        }
    }

    #[test]
    fn ack_latency_is_from_forwarding_to_the_covering_ack() {
        let mut t = Both::new(Config::default());
        t.observe(ms(0), &full_sync(0));
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
        assert_eq!(t.tracker.lag_at(ms(25)), (20, 5.0));
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
        assert_eq!(t.tracker.lag_at(ms(40)), (0, 0.0));
        assert!(near(t.heartbeats.replica_ack_interval_us.max(), 15_000));
    }

    /// During the catch-up after a full sync the replica has not ACKed yet: what was forwarded
    /// since the stream began is its lag, and the oldest of it gives the lag in ms.
    #[test]
    fn lag_before_the_first_ack_counts_from_the_streams_first_byte() {
        let mut t = Both::new(Config::default());
        t.observe(ms(0), &full_sync(100));
        t.observe(ms(10), &cmd(130, "SET"));
        t.observe(ms(20), &cmd(160, "SET"));
        assert_eq!(t.tracker.lag_at(ms(20)), (60, 10.0));
        assert_eq!((t.lag_bytes, t.max_lag_bytes), (60, 60));
        // Time passes with no event: the lag in ms as of any moment is the oldest byte's age.
        assert_eq!(t.oldest_unacked, Some(ms(10)));
        assert_eq!(t.timing.lag_ms_at(ms(510)), 500.0);
        // The ACK settles everything: its moment is the lag's peak.
        t.observe(
            ms(700),
            &EventKind::Ack {
                offset: 160,
                fack: None,
            },
        );
        assert_eq!((t.lag_bytes, t.lag_ms, t.max_lag_ms), (0, 0.0, 690.0));
        let second = t
            .rates
            .iter()
            .find(|s| s.t == ms(700).0 / 1_000_000)
            .unwrap();
        assert_eq!(second.lag_ms, 690.0, "the series keeps the peak too");
        // A new sync starts afresh: nothing of the last one is unacknowledged.
        t.observe(ms(800), &cmd(170, "SET"));
        t.observe(ms(900), &full_sync(500));
        assert_eq!(t.timing.lag_ms_at(ms(1000)), 0.0);
    }

    /// WAIT: a SET and the master's GETACK come in one read; the replica's answer carries the
    /// offset just before the GETACK. It acknowledges the SET, whatever shares its read.
    #[test]
    fn the_answer_to_a_getack_acknowledges_what_came_before_it_in_the_same_read() {
        let mut t = Both::new(Config::default());
        t.observe(ms(0), &full_sync(0));
        t.observe(ms(10), &cmd(30, "SET"));
        let getack = EventKind::Command {
            start: Some(31),
            end: Some(67),
            name: Name::new(b"REPLCONF"),
            sub: Some(Name::new(b"GETACK")),
            db: None,
            in_multi: false,
            bytes: 37,
        };
        t.observe(ms(10), &getack);
        t.observe(
            ms(11),
            &EventKind::Ack {
                offset: 30,
                fack: None,
            },
        );
        let set = &t.commands["SET"].ack_latency_us;
        assert_eq!(
            (set.count(), set.max()),
            (1, 1000),
            "acknowledged by the answer, 1 ms"
        );
        assert_eq!(
            t.unacked_commands, 1,
            "the GETACK itself waits for a later ACK"
        );
    }

    #[test]
    fn pending_tracking_is_bounded_and_coarsens() {
        let mut t = Both::new(Config::default());
        for i in 1..=(3 * MAX_PENDING as u64) {
            t.observe(ms(i), &cmd(i * 10, "SET"));
        }
        assert!(t.tracker.pending.len() <= MAX_PENDING);
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
            ..Config::default()
        };
        let mut t = Both::new(cfg);
        t.observe(ms(0), &full_sync(0));
        t.tracker.master_bytes(ms(0));
        t.observe(ms(1), &cmd(10, "SET"));
        let w = t.observe(ms(2), &cmd(20, "SET"));
        assert_eq!(
            w[0].kind,
            WarningKind::Lag,
            "no ACK yet: lag counts from offset 1"
        );
        assert!(w[0].message.contains("within the replica's 1 s ACK period"));
        let w = t.observe(
            ms(4),
            &EventKind::Ack {
                offset: 25,
                fack: None,
            },
        );
        assert_eq!(w[0].kind, WarningKind::AckAhead);
        let w = t.observe(
            ms(5),
            &EventKind::Ack {
                offset: 5,
                fack: None,
            },
        );
        assert_eq!(w[0].kind, WarningKind::AckBackwards);
        assert!(t.tick(ms(4_000)).is_empty());
        assert_eq!(t.tick(ms(6_000))[0].kind, WarningKind::MasterSilent);
        assert!(t.tick(ms(7_000)).is_empty(), "said once per level");
        assert!(t.tick(ms(11_000))[0].message.contains("past repl-timeout"));
    }

    #[test]
    fn the_stream_buffered_during_a_full_sync_is_checked_against_the_output_buffer_limit() {
        let cfg = Config {
            cob_limit: "40 1000 60".parse().unwrap(),
            ..Config::default()
        };
        let mut t = Both::new(cfg);
        t.observe(ms(0), &full_sync(100));
        let end = EventKind::RdbEnd {
            framing: crate::analyzer::event::Framing::Disk,
            bytes: 10,
            duration_us: 5,
        };
        t.observe(ms(1), &end);
        t.observe(ms(2), &cmd(110, "SET"));
        t.observe(ms(2), &cmd(120, "SET"));
        let ack = |offset| EventKind::Ack { offset, fack: None };
        let w = t.observe(ms(3), &ack(120));
        assert_eq!(
            w.len(),
            1,
            "20 bytes buffered, half of the 40-byte hard limit"
        );
        assert_eq!(w[0].kind, WarningKind::CobLimit);
        assert!(
            t.observe(ms(4), &ack(120)).is_empty(),
            "checked once per sync"
        );
    }

    #[test]
    fn output_buffer_limits_read_as_redis_conf_writes_them() {
        let l: super::super::CobLimit = "256mb 64mb 60".parse().unwrap();
        assert_eq!((l.hard, l.soft, l.soft_seconds), (256 << 20, 64 << 20, 60));
        let l: super::super::CobLimit = "1gb 0 0".parse().unwrap();
        assert_eq!((l.hard, l.soft), (1 << 30, 0));
        assert!("64mb 60".parse::<super::super::CobLimit>().is_err());
        assert!("1x 2 3".parse::<super::super::CobLimit>().is_err());
    }
}
