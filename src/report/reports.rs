//! The reports of a run: one [`SessionReport`] per connection, folded from what the
//! [`Links`] say, with each session's timing tracker and each replica's history across its
//! links.
//!
//! A fold, and only that: [`Reports::observe`] takes one thing the links said, folds it, and
//! **returns** the events it derives (the tracker's warnings, why a sync happened, the
//! diagnosis of a loop, the RDB-version trap, status lines) already folded in, for the pipe
//! to hand on. It never calls out and is never called back. The inputs it needs besides
//! events come through [`Reports::input`] (when the master's bytes arrived, a relay's stall)
//! and [`Reports::tick`] (time went by, and where each RDB transfer stands).

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::analyzer::event::{Event, EventKind};
use crate::analyzer::input::{Direction, Input, InputKind, Timestamp};
use crate::analyzer::links::{Linked, Links};
use crate::report::history::{History, ReplicaHistory};
use crate::report::status;
use crate::report::timing::{self, Tracker, Warning};
use crate::report::versions::{self, RdbSeen};
use crate::report::{Report, SessionReport, Settings};

/// How many ended sessions the report keeps; older ones are dropped (and counted), so a
/// proxy that serves clients for months keeps a bounded report.
pub const MAX_ENDED_SESSIONS: usize = 10_000;

/// Most cluster nodes remembered.
const MAX_NODES: usize = 10_000;

/// An open session's report and what folds into it.
#[derive(Debug)]
struct Live {
    report: SessionReport,
    tracker: Tracker,
    last_status: Timestamp,
}

/// What one observation derived.
#[derive(Debug, Default)]
pub struct Folded {
    /// Events derived, in order, already folded: the pipe hands them on after the one observed.
    pub derived: Vec<Event>,
    /// The session whose last event this was: its report is final.
    pub ended: Option<u64>,
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

/// Every report of a run.
#[derive(Debug)]
pub struct Reports {
    timing: timing::Config,
    status_every: Option<std::time::Duration>,
    /// The latest time an input or a tick said.
    now: Timestamp,
    live: BTreeMap<u64, Live>,
    done: VecDeque<SessionReport>,
    dropped: u64,
    connect_failures: u64,
    /// Paired RDB connection → its main connection, whose report it folds into.
    main_of: HashMap<u64, u64>,
    /// Each replica's earlier links.
    history: History,
    /// Cluster nodes seen on their bus: `host:data port` → node id (at most [`MAX_NODES`]),
    /// which names a slot migration's target.
    nodes: HashMap<String, String>,
}

impl Reports {
    /// Reports whose timing folds use `timing`'s thresholds, with a status event for every
    /// replication session each `status_every` (each second while a sync waits or transfers).
    pub fn new(timing: timing::Config, status_every: Option<std::time::Duration>) -> Reports {
        Reports {
            timing,
            status_every,
            now: Timestamp(0),
            live: BTreeMap::new(),
            done: VecDeque::new(),
            dropped: 0,
            connect_failures: 0,
            main_of: HashMap::new(),
            history: History::default(),
            nodes: HashMap::new(),
        }
    }

    /// The run's clock has reached `now` (the latest input or tick).
    pub fn clock(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    /// What an input says to the reports directly: when the master's bytes arrived (silence
    /// and lag), or that a relay stalled. Returns the warnings that raises, folded.
    pub fn input(&mut self, input: &Input) -> Vec<Event> {
        let (id, at) = (input.conn, input.at);
        self.now = self.now.max(at);
        let Some(live) = self.live.get_mut(&id) else {
            return Vec::new();
        };
        match &input.kind {
            InputKind::Data {
                dir: Direction::MasterToReplica,
                ..
            } => {
                live.tracker.master_bytes(at);
                Vec::new()
            }
            InputKind::Stalled {
                dir,
                since,
                pending,
            } => {
                let warnings =
                    (live.tracker).stalled(&mut live.report.timing, at, *dir, *since, *pending);
                self.said(id, at, warnings.into_iter().map(EventKind::from))
            }
            _ => Vec::new(),
        }
    }

    /// Folds one thing the links said; returns what it derives.
    pub fn observe(&mut self, linked: &Linked) -> Folded {
        match linked {
            Linked::Event(e) => self.event(e),
            Linked::Paired { main, rdb, at } => Folded {
                derived: self.paired(*main, *rdb, *at),
                ended: None,
            },
        }
    }

    /// Time has advanced to `now`: silence warnings and status events, from the reports and
    /// from where each session's RDB transfer stands in `links`.
    pub fn tick(&mut self, now: Timestamp, links: &Links) -> Vec<Event> {
        self.now = self.now.max(now);
        let mut out = Vec::new();
        let ids: Vec<u64> = self.live.keys().copied().collect();
        for id in ids {
            let Some(live) = self.live.get_mut(&id) else {
                continue;
            };
            let mut said: Vec<EventKind> = (live.tracker)
                .tick(&mut live.report.timing, now)
                .into_iter()
                .map(EventKind::from)
                .collect();
            let session = links.session(id);
            let status = status::due(
                &live.report,
                &live.tracker,
                session,
                live.last_status,
                now,
                self.status_every,
            );
            if let Some(status) = status {
                live.last_status = now;
                said.push(status);
            }
            out.extend(self.said(id, now, said));
        }
        out
    }

    /// Events the reports say as session `id`'s own, each folded like the session's (its
    /// tracker counts a warning with the others), with the warnings folding them raises.
    fn said(
        &mut self,
        id: u64,
        at: Timestamp,
        kinds: impl IntoIterator<Item = EventKind>,
    ) -> Vec<Event> {
        let main = self.main_of.get(&id).copied();
        let mut out = Vec::new();
        for kind in kinds {
            let e = Event {
                session: id,
                ts: at,
                kind,
            };
            let warnings = self.fold_one(&e, main);
            out.push(e);
            out.extend(warnings);
        }
        out
    }

    /// Folds `e` into its report (`main`'s, for a paired RDB connection's); returns the
    /// warnings the tracker raises on it (already counted by the tracker).
    fn fold_one(&mut self, e: &Event, main: Option<u64>) -> Vec<Event> {
        let Some(live) = self.live.get_mut(&e.session) else {
            return Vec::new();
        };
        let warnings = live.tracker.observe(&mut live.report.timing, e.ts, &e.kind);
        match main {
            None => live.report.fold(e),
            Some(main) => {
                if let Some(report) = self.report_mut(main) {
                    report.fold_partner(e);
                }
            }
        }
        (warnings.into_iter())
            .map(|w| Event {
                session: e.session,
                ts: e.ts,
                kind: w.into(),
            })
            .collect()
    }

    fn event(&mut self, e: &Event) -> Folded {
        if let EventKind::SessionStart { .. } = e.kind {
            let live = Live {
                report: SessionReport::new(e.session, e.ts),
                tracker: Tracker::new(self.timing),
                last_status: e.ts,
            };
            self.live.insert(e.session, live);
        }
        // Stream commands, ACKs and keep-alives are per-connection traffic: the main
        // connection's report ignores its partner's, and skipping the lookups keeps the
        // per-command cost where it was.
        let routine = e.kind.is_routine();
        let main = if routine {
            None
        } else {
            self.main_of.get(&e.session).copied()
        };
        let mut derived = self.fold_one(e, main);
        if routine {
            return Folded {
                derived,
                ended: None,
            };
        }
        let (mut why, mut diagnosis, mut trap) = (None, None, None);
        if let Some(report) = self.live.get(&e.session).map(|l| &l.report) {
            match (main, &e.kind) {
                (None, EventKind::SyncStart { .. }) => {
                    // Why first: it reads the last link before the loop count takes it.
                    why = self.history.why(report, e.ts);
                    diagnosis = self.history.sync_started(report);
                }
                (None, EventKind::SessionEnd { .. }) => self.history.ended(report, e.ts),
                (Some(main), EventKind::RdbHeader { header }) => {
                    trap = self.rdb_version_trap(main, e.session, RdbSeen::Header(header));
                }
                (Some(main), EventKind::SessionEnd { .. }) => {
                    trap = self.rdb_cut_short(main, e.session)
                }
                _ => {}
            }
        }
        match &e.kind {
            EventKind::MigrationFinish {
                job,
                state,
                message,
                ..
            } => self.migration_finished(job, state, message.as_deref()),
            EventKind::ClusterNode { dir, node, port } => {
                self.node_seen(e.session, *dir, node, *port)
            }
            _ => {}
        }
        if let Some((main, w)) = trap {
            // The main connection's: its sync is the one that will fail.
            derived.extend(self.said(main, e.ts, [w.into()]));
        }
        if let Some(w) = diagnosis {
            derived.extend(self.said(e.session, e.ts, [w.into()]));
        }
        if let Some(w) = why {
            let said = (self.live.get(&e.session)).and_then(|l| l.report.sync.reason.as_ref());
            if said.is_none_or(|r| r.code != w.reason || r.gap_bytes != w.gap_bytes) {
                let kind = EventKind::Why {
                    reason: w.reason,
                    gap_bytes: w.gap_bytes,
                    message: w.message,
                };
                derived.extend(self.said(e.session, e.ts, [kind]));
            }
        }
        let ended = matches!(e.kind, EventKind::SessionEnd { .. }).then(|| self.end(e.session));
        Folded {
            derived,
            ended: ended.flatten(),
        }
    }

    /// Session `id` has said its last: its report moves to the ended ones (a paired RDB
    /// connection's is in its main connection's). Returns whose report holds it.
    fn end(&mut self, id: u64) -> Option<u64> {
        let live = self.live.remove(&id)?;
        if let Some(&main) = self.main_of.get(&id) {
            return Some(main);
        }
        if self.done.len() == MAX_ENDED_SESSIONS {
            if let Some(old) = self.done.pop_front() {
                self.main_of.remove(&old.id);
                for c in &old.channels {
                    self.main_of.remove(&c.session);
                }
            }
            self.dropped += 1;
        }
        self.done.push_back(live.report);
        Some(id)
    }

    fn paired(&mut self, main: u64, rdb: u64, at: Timestamp) -> Vec<Event> {
        self.main_of.insert(rdb, main);
        let Some(mut partner) = self.report_mut(rdb).cloned() else {
            return Vec::new();
        };
        // An RDB connection that showed its RDB's header, or ended, before it paired.
        let header = partner.rdb.as_ref().and_then(|r| r.header.clone());
        let mut trap = header.and_then(|h| self.rdb_version_trap(main, rdb, RdbSeen::Header(&h)));
        let whole = partner.rdb.as_ref().is_some_and(|r| r.complete);
        if trap.is_none() && partner.end_reason.is_some() && !whole {
            trap = self.rdb_version_trap(main, rdb, RdbSeen::CutShort);
        }
        // It ended before it paired: from now on it is listed in its main's report.
        self.done.retain(|r| r.id != rdb);
        if let Some(report) = self.report_mut(main) {
            report.absorb(&mut partner);
        }
        match trap {
            Some((main, w)) => self.said(main, at, [w.into()]),
            None => Vec::new(),
        }
    }

    /// The report of session `id`, live or ended.
    fn report_mut(&mut self, id: u64) -> Option<&mut SessionReport> {
        match self.live.get_mut(&id) {
            Some(live) => Some(&mut live.report),
            None => self.done.iter_mut().find(|r| r.id == id),
        }
    }

    /// The report that holds session `id`'s: its own, or, for a paired RDB connection, its
    /// main connection's.
    pub fn report_of(&self, id: u64) -> Option<&SessionReport> {
        let id = self.main_of.get(&id).copied().unwrap_or(id);
        let live = self.live.get(&id).map(|l| &l.report);
        live.or_else(|| self.done.iter().find(|r| r.id == id))
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

    /// An accepted connection was closed because the upstream could not be reached.
    pub fn connect_failed(&mut self) {
        self.connect_failures += 1;
    }

    /// Accepted connections closed because the upstream was unreachable.
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures
    }

    /// Reports of the sessions still open (a paired RDB connection is in its main
    /// connection's).
    pub fn live_reports(&self) -> impl Iterator<Item = &SessionReport> {
        (self.live.iter())
            .filter(|(id, _)| !self.main_of.contains_key(id))
            .map(|(_, l)| &l.report)
    }

    /// Reports of ended sessions still kept.
    pub fn ended_reports(&self) -> impl Iterator<Item = &SessionReport> {
        self.done.iter()
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
}
