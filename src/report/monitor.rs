//! The analysis side of a run: every live [`Session`], the reports folded from their events,
//! and the sinks the events go to.
//!
//! A `Monitor` is driven synchronously by exactly one owner — the proxy's analysis thread, a
//! replay loop, a test — through [`Monitor::handle`] (what happened on a connection) and
//! [`Monitor::tick`] (time went by), so it needs no locks. It performs no IO of its own; sinks
//! decide where events go.

use std::collections::BTreeMap;

use crate::analyzer::event::{Event, EventKind};
use crate::analyzer::event::{Role, SyncPhase};
use crate::analyzer::input::{Chunk, Direction, Input, InputKind, Skipped, Timestamp};
use crate::analyzer::pairing::{Matcher, Pairing};
use crate::analyzer::session::{Config, Session};
use crate::report::history::{History, ReplicaHistory};
use crate::report::timing::{Tracker, Warning};
use crate::report::versions::{self, RdbSeen};
use crate::report::{Report, SessionReport, Settings};

/// Where events go.
pub trait Sink: Send {
    /// Called for every event, in order.
    fn event(&mut self, e: &Event);
    /// Called once when a session has ended, with its final report.
    fn session_done(&mut self, _report: &SessionReport) {}
}

/// Where `AUTH` arguments lie in the replica's direction, for a [`Tap`] that must not show
/// them (positions count that direction's bytes from the connection's start).
#[derive(Debug, Clone, Copy, Default)]
pub struct Secrets<'a> {
    /// Where the input's bytes begin.
    pub pos: u64,
    /// The `AUTH` arguments these bytes completed (a range may begin before `pos`, in bytes a
    /// tap held back).
    pub ranges: &'a [(u64, u64)],
    /// Where the command these bytes end inside began, if it may still turn out to carry a
    /// secret.
    pub hold: Option<u64>,
}

/// Sees every input, right after the analysis did (recordings).
pub trait Tap: Send {
    /// One input; `secrets` is empty except for the replica's bytes.
    fn input(&mut self, input: &Input, secrets: &Secrets<'_>);
}

#[derive(Debug)]
struct Live {
    session: Session,
    report: SessionReport,
    tracker: Tracker,
    last_status: Timestamp,
}

/// The sessions of a run as they stand, for renderers that need live ones apart.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Sessions still open.
    pub live: Vec<&'a SessionReport>,
    /// Ended sessions still kept.
    pub ended: Vec<&'a SessionReport>,
    /// Accepted connections closed because the upstream was unreachable.
    pub upstream_connect_failures: u64,
    /// Each replica's history across its links, live ones included.
    pub replicas: Vec<ReplicaHistory>,
    /// The run's clock when it was taken (the latest input or tick).
    pub now: Timestamp,
}

/// How many ended sessions the report keeps; older ones are dropped (and counted), so a
/// proxy that serves clients for months keeps a bounded report.
pub const MAX_ENDED_SESSIONS: usize = 10_000;

/// All sessions of a run.
pub struct Monitor {
    cfg: Config,
    timing: crate::report::timing::Config,
    status_every: Option<std::time::Duration>,
    last_tick: Timestamp,
    /// The latest time an input or a tick said.
    now: Timestamp,
    live: BTreeMap<u64, Live>,
    done: std::collections::VecDeque<SessionReport>,
    dropped: u64,
    connect_failures: u64,
    sinks: Vec<Box<dyn Sink>>,
    tap: Option<Box<dyn Tap>>,
    /// The two connections of two-connection syncs.
    pairing: Matcher,
    /// Each replica's earlier links.
    history: History,
    /// Cluster nodes seen on their bus: `host:data port` → node id (at most
    /// [`MAX_NODES`]), which names a slot migration's target.
    nodes: std::collections::HashMap<String, String>,
}

/// Most cluster nodes remembered.
const MAX_NODES: usize = 10_000;

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("live", &self.live.len())
            .field("done", &self.done.len())
            .finish()
    }
}

impl Monitor {
    /// A monitor whose sessions use `cfg` and whose events go to `sinks`.
    pub fn new(cfg: Config, sinks: Vec<Box<dyn Sink>>) -> Monitor {
        Monitor {
            cfg,
            timing: crate::report::timing::Config::default(),
            status_every: None,
            last_tick: Timestamp(0),
            now: Timestamp(0),
            live: BTreeMap::new(),
            done: std::collections::VecDeque::new(),
            dropped: 0,
            connect_failures: 0,
            sinks,
            tap: None,
            pairing: Matcher::default(),
            history: History::default(),
            nodes: std::collections::HashMap::new(),
        }
    }

    /// Uses `timing`'s warning thresholds in the reports' timing folds.
    pub fn with_timing(mut self, timing: crate::report::timing::Config) -> Monitor {
        self.timing = timing;
        self
    }

    /// Also emits a status event for every replication session each `every` (and each second
    /// while an RDB is transferred), as time advances through [`Monitor::tick`].
    pub fn with_status_every(mut self, every: std::time::Duration) -> Monitor {
        self.status_every = Some(every);
        self
    }

    /// Also hands every input to `tap`, right after the analysis saw it.
    pub fn with_tap(mut self, tap: Box<dyn Tap>) -> Monitor {
        self.tap = Some(tap);
        self
    }

    /// Analyses one input: the one entry point for what happens on connections.
    pub fn handle(&mut self, input: &Input) {
        let (id, at) = (input.conn, input.at);
        self.now = self.now.max(at);
        match &input.kind {
            InputKind::Open { .. } => {
                if let Some(session) = Session::opened_by(input, self.cfg) {
                    self.start(id, at, session);
                }
            }
            InputKind::Data { dir, bytes } => {
                let chunk = Chunk {
                    dir: *dir,
                    at,
                    bytes,
                };
                // The tap needs what the analysis found in these bytes: it is called there.
                return self.data(input, chunk);
            }
            InputKind::Gap { dir, len, why } => self.skip(id, *dir, at, *len, *why),
            InputKind::Stalled {
                dir,
                since,
                pending,
            } => self.stalled(id, at, *dir, *since, *pending),
            InputKind::Close { reason } => self.close(id, at, reason),
        }
        if let Some(tap) = &mut self.tap {
            tap.input(input, &Secrets::default());
        }
    }

    fn start(&mut self, id: u64, at: Timestamp, session: Session) {
        let live = Live {
            session,
            report: SessionReport::new(id, at),
            tracker: Tracker::new(self.timing),
            last_status: at,
        };
        self.live.insert(id, live);
        self.drain(id);
    }

    fn data(&mut self, input: &Input, chunk: Chunk<'_>) {
        let id = input.conn;
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        let pos = live.session.bytes_seen(chunk.dir);
        live.session.feed(chunk);
        if chunk.dir == Direction::MasterToReplica {
            live.tracker.master_bytes(chunk.at);
        }
        if let Some(tap) = &mut self.tap {
            // Secrets are found by the analysis, so the tap sees each chunk after it.
            let secrets = Secrets {
                pos,
                ranges: live.session.secret_ranges(),
                hold: live.session.pending_secret_from(),
            };
            tap.input(input, &secrets);
        }
        self.drain(id);
    }

    /// Time has advanced to `now` (the proxy's clock, or a capture's timestamps): raises
    /// silence warnings and status events, and gives up on RDB connections that never came. Cheap to call often (replay calls it per frame):
    /// works at most twice a second.
    pub fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        if now.since(self.last_tick) < std::time::Duration::from_millis(500) {
            return;
        }
        self.last_tick = now;
        let ids: Vec<u64> = self.live.keys().copied().collect();
        for id in ids {
            let Some(live) = self.live.get_mut(&id) else {
                continue;
            };
            // The replica itself gives up on its RDB connection after repl-timeout.
            let timeout = self.timing.repl_timeout;
            if let Some(since) = live.session.awaiting_anchor_since() {
                if now.since(since) > timeout {
                    let why = format!(
                        "no RDB connection gave the offsets within repl-timeout ({} s)",
                        timeout.as_secs()
                    );
                    live.session.unpaired(now, why);
                    self.drain(id);
                }
            }
            let Some(live) = self.live.get_mut(&id) else {
                continue;
            };
            let mut extra: Vec<EventKind> = live
                .tracker
                .tick(&mut live.report.timing, now)
                .into_iter()
                .map(EventKind::from)
                .collect();
            if let Some(status) = Self::status(live, now, self.status_every) {
                live.last_status = now;
                extra.push(status);
            }
            for kind in extra {
                self.deliver(&Event {
                    session: id,
                    ts: now,
                    kind,
                });
            }
        }
    }

    fn status(
        live: &Live,
        now: Timestamp,
        every: Option<std::time::Duration>,
    ) -> Option<EventKind> {
        let every = every?;
        if live.report.kind == Role::Client {
            return None;
        }
        let rdb = live.session.rdb_progress().map(|(bytes, total, started)| {
            let secs = now.since(started).as_secs_f64();
            let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
            let eta = total
                .filter(|_| rate > 0.0)
                .map(|t| t.saturating_sub(bytes) as f64 / rate);
            let (keys, keys_announced) = live.session.rdb_keys().unwrap_or((0, None));
            crate::analyzer::event::RdbProgress {
                bytes,
                total,
                bytes_per_s: rate,
                eta_s: eta,
                keys,
                keys_announced,
            }
        });
        // The full sync under way, if one is: a wait for the RDB or its load says nothing on
        // the wire for seconds, so the status line says where it stands.
        let phase = (live.report.timeline.as_ref())
            .filter(|t| t.phase != SyncPhase::Online)
            .map(|t| (t.phase, t.phase_since().map(|s| now.since(s).as_secs_f64())));
        let waiting = matches!(
            phase,
            Some((
                SyncPhase::Preparing | SyncPhase::Transfer | SyncPhase::Loading,
                _
            ))
        );
        // Ticks come about once a second; allow for their jitter.
        let since = now.since(live.last_status) + std::time::Duration::from_millis(200);
        let every_second = rdb.is_some() || waiting;
        let due = since >= every || (every_second && since >= std::time::Duration::from_secs(1));
        if !due {
            return None;
        }
        let (offset, acked) = live.tracker.offsets();
        let (lag_bytes, lag_ms) = live.tracker.lag_at(now);
        let secs = every.as_secs().max(1);
        let (commands_per_s, bytes_per_s) = live.report.timing.rate(now, secs);
        Some(EventKind::Status {
            offset,
            acked,
            lag_bytes,
            lag_ms,
            commands_per_s,
            bytes_per_s,
            rdb,
            phase: phase.map(|p| p.0),
            phase_s: phase.and_then(|p| p.1),
        })
    }

    fn skip(&mut self, id: u64, dir: Direction, at: Timestamp, len: u64, why: Skipped) {
        if let Some(live) = self.live.get_mut(&id) {
            live.session.skip(dir, at, len, why);
            self.drain(id);
        }
    }

    fn stalled(&mut self, id: u64, at: Timestamp, dir: Direction, since: Timestamp, pending: u64) {
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        let warnings = live
            .tracker
            .stalled(&mut live.report.timing, at, dir, since, pending);
        for w in warnings {
            self.deliver(&Event {
                session: id,
                ts: at,
                kind: w.into(),
            });
        }
    }

    fn close(&mut self, id: u64, at: Timestamp, reason: &str) {
        if let Some(live) = self.live.get_mut(&id) {
            live.session.finish(at, reason);
            self.drain(id);
        }
        if let Some(live) = self.live.remove(&id) {
            for sink in &mut self.sinks {
                sink.session_done(&live.report);
            }
            // A paired RDB connection is reported in its main connection's report.
            if self.pairing.main_of(id).is_none() {
                self.keep_ended(live.report);
            }
        }
    }

    fn keep_ended(&mut self, report: SessionReport) {
        if self.done.len() == MAX_ENDED_SESSIONS {
            if let Some(old) = self.done.pop_front() {
                self.pairing.forget(old.id);
                for c in &old.channels {
                    self.pairing.forget(c.session);
                }
            }
            self.dropped += 1;
        }
        self.done.push_back(report);
    }

    /// An accepted connection was closed because the upstream could not be reached.
    pub fn connect_failed(&mut self) {
        self.connect_failures += 1;
    }

    /// Ends every live session (the run is stopping).
    pub fn close_all(&mut self, at: Timestamp, reason: &str) {
        let ids: Vec<u64> = self.live.keys().copied().collect();
        for conn in ids {
            let reason = reason.to_string();
            let kind = InputKind::Close { reason };
            self.handle(&Input { conn, at, kind });
        }
    }

    /// Every session's report as it stands, live ones apart.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            live: self.live_reports().collect(),
            ended: self.ended_reports().collect(),
            upstream_connect_failures: self.connect_failures,
            replicas: self.history.replicas_with(self.live_reports()),
            now: self.now,
        }
    }

    /// Reports of the sessions still open (a paired RDB connection is in its main
    /// connection's).
    pub fn live_reports(&self) -> impl Iterator<Item = &SessionReport> {
        self.live
            .iter()
            .filter(|(id, _)| self.pairing.main_of(**id).is_none())
            .map(|(_, l)| &l.report)
    }

    /// Reports of ended sessions still kept.
    pub fn ended_reports(&self) -> impl Iterator<Item = &SessionReport> {
        self.done.iter()
    }

    /// Accepted connections closed because the upstream was unreachable.
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures
    }

    /// The report so far: ended sessions, then live ones as they stand.
    pub fn report(&self) -> Report {
        let mut sessions: Vec<SessionReport> = self.done.iter().cloned().collect();
        sessions.extend(self.live_reports().cloned());
        for s in &mut sessions {
            let until = s.ended_at.unwrap_or(self.now);
            s.timing.backlog = s.timing.backlog_advice(self.timing.survive, until);
            if let Some(m) = &mut s.migration {
                m.target_node = self.nodes.get(&m.target).cloned();
            }
        }
        let mut report = Report::new(sessions, self.connect_failures);
        report.sessions_dropped = self.dropped;
        report.replicas = self.history.replicas_with(self.live_reports());
        report.settings = Some(Settings {
            repl_timeout_s: self.timing.repl_timeout.as_secs_f64(),
            lag_warn_bytes: self.timing.lag_warn_bytes,
            backlog_survive_s: self.timing.survive.as_secs_f64(),
        });
        report
    }

    fn drain(&mut self, id: u64) {
        loop {
            let Some(live) = self.live.get_mut(&id) else {
                return;
            };
            let Some(e) = live.session.poll_event() else {
                return;
            };
            self.deliver(&e);
        }
    }

    /// The report of session `id`, live or ended.
    fn report_mut(&mut self, id: u64) -> Option<&mut SessionReport> {
        match self.live.get_mut(&id) {
            Some(live) => Some(&mut live.report),
            None => self.done.iter_mut().find(|r| r.id == id),
        }
    }

    /// Folds an event into its session's report (a paired RDB connection's into its main
    /// connection's), hands it and any warning it raises to the sinks, then does what it
    /// means for pairing.
    fn deliver(&mut self, e: &Event) {
        // Stream commands, ACKs and keep-alives are per-connection traffic: they never pair,
        // and the main connection's report ignores its partner's. Skipping the lookups keeps
        // the per-command cost where it was.
        let routine = e.kind.is_routine();
        let main = if routine {
            None
        } else {
            self.pairing.main_of(e.session)
        };
        let Some(live) = self.live.get_mut(&e.session) else {
            return;
        };
        let warnings = live.tracker.observe(&mut live.report.timing, e.ts, &e.kind);
        let mut why = None;
        let mut diagnosis = None;
        let mut trap = None;
        match main {
            None => {
                live.report.fold(e);
                match &e.kind {
                    EventKind::SyncStart { .. } => {
                        // Why first: it reads the last link before the loop count takes it.
                        why = self.history.why(&live.report, e.ts);
                        diagnosis = self.history.sync_started(&live.report);
                    }
                    EventKind::SessionEnd { .. } => self.history.ended(&live.report, e.ts),
                    _ => {}
                }
            }
            Some(main) => {
                if let Some(report) = self.report_mut(main) {
                    report.fold_partner(e);
                }
                trap = match &e.kind {
                    EventKind::RdbHeader { header } => {
                        self.rdb_version_trap(main, e.session, RdbSeen::Header(header))
                    }
                    EventKind::SessionEnd { .. } => self.rdb_cut_short(main, e.session),
                    _ => None,
                };
            }
        }
        if let EventKind::MigrationFinish {
            job,
            state,
            message,
            ..
        } = &e.kind
        {
            self.migration_finished(job, state, message.as_deref());
        }
        if let EventKind::ClusterNode { dir, node, port } = &e.kind {
            self.node_seen(e.session, *dir, node, *port);
        }
        for sink in &mut self.sinks {
            sink.event(e);
        }
        for w in warnings {
            let warning = Event {
                session: e.session,
                ts: e.ts,
                kind: w.into(),
            };
            for sink in &mut self.sinks {
                sink.event(&warning);
            }
        }
        if !routine {
            for action in self.pairing.observe(e) {
                self.pair(action, e.ts);
            }
        }
        if let Some((main, w)) = trap {
            // The main connection's: its sync is the one that will fail.
            self.deliver(&Event {
                session: main,
                ts: e.ts,
                kind: w.into(),
            });
        }
        if let Some(w) = diagnosis {
            // Said as the session's own: its tracker counts it with the others.
            self.deliver(&Event {
                session: e.session,
                ts: e.ts,
                kind: w.into(),
            });
        }
        if let Some(w) = why {
            let said = self
                .live
                .get(&e.session)
                .and_then(|l| l.report.sync.reason.as_ref());
            if said.is_none_or(|r| r.code != w.reason || r.gap_bytes != w.gap_bytes) {
                let kind = EventKind::Why {
                    reason: w.reason,
                    gap_bytes: w.gap_bytes,
                    message: w.message,
                };
                self.deliver(&Event {
                    session: e.session,
                    ts: e.ts,
                    kind,
                });
            }
        }
    }

    /// A cluster bus message from `dir`'s side of session `id` named its sender: that side's
    /// host with the data port it announced is that node.
    fn node_seen(&mut self, id: u64, dir: Direction, node: &str, port: u16) {
        let Some(r) = self.live.get(&id).map(|l| &l.report) else {
            return;
        };
        let addr = match dir {
            Direction::ReplicaToMaster => &r.replica,
            Direction::MasterToReplica => &r.upstream,
        };
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let key = format!("{host}:{port}");
        if self.nodes.len() < MAX_NODES || self.nodes.contains_key(&key) {
            self.nodes.insert(key, node.to_string());
        }
    }

    /// A replica's stream said how migration `job` ended (`FINISH`): its link's report, if the
    /// link was seen, takes the target's word.
    fn migration_finished(&mut self, job: &str, state: &str, message: Option<&str>) {
        let live = self.live.values_mut().map(|l| &mut l.report);
        for r in live.chain(self.done.iter_mut()) {
            if let Some(m) = r.migration.as_mut().filter(|m| m.job == job) {
                m.target_state = Some(state.to_string());
                m.target_message = message.map(str::to_string);
            }
        }
    }

    /// The RDB-version trap's warning for `main`, from what its RDB connection `rdb` showed.
    fn rdb_version_trap(&self, main: u64, rdb: u64, seen: RdbSeen<'_>) -> Option<(u64, Warning)> {
        let report = |id| {
            let live = self.live.get(&id).map(|l| &l.report);
            live.or_else(|| self.done.iter().find(|r| r.id == id))
        };
        let w = versions::rdb_version_trap(seen, report(main)?, report(rdb)?)?;
        Some((main, w))
    }

    /// The trap's warning if `main`'s RDB connection `rdb` ended before its RDB was whole.
    fn rdb_cut_short(&self, main: u64, rdb: u64) -> Option<(u64, Warning)> {
        let main_report = self.live.get(&main).map(|l| &l.report)?;
        if main_report.rdb.as_ref().is_some_and(|r| r.complete) {
            return None;
        }
        self.rdb_version_trap(main, rdb, RdbSeen::CutShort)
    }

    fn pair(&mut self, action: Pairing, at: Timestamp) {
        match action {
            Pairing::Paired { main, rdb } => {
                let Some(mut partner) = self.report_mut(rdb).cloned() else {
                    return;
                };
                // An RDB connection that showed its RDB's header, or ended, before it paired.
                let header = partner.rdb.as_ref().and_then(|r| r.header.clone());
                let mut trap =
                    header.and_then(|h| self.rdb_version_trap(main, rdb, RdbSeen::Header(&h)));
                let whole = partner.rdb.as_ref().is_some_and(|r| r.complete);
                if trap.is_none() && partner.end_reason.is_some() && !whole {
                    trap = self.rdb_version_trap(main, rdb, RdbSeen::CutShort);
                }
                // It ended before it paired: from now on it is listed in its main's report.
                self.done.retain(|r| r.id != rdb);
                if let Some(report) = self.report_mut(main) {
                    report.absorb(&mut partner);
                }
                if let Some((main, w)) = trap {
                    self.deliver(&Event {
                        session: main,
                        ts: at,
                        kind: w.into(),
                    });
                }
            }
            Pairing::Anchor {
                main,
                replid,
                offset,
            } => {
                if let Some(live) = self.live.get_mut(&main) {
                    live.session.anchor(at, replid, offset);
                    self.drain(main);
                }
            }
            Pairing::Unpaired { main, why } => {
                if let Some(live) = self.live.get_mut(&main) {
                    live.session.unpaired(at, why);
                    self.drain(main);
                }
            }
        }
    }
}
