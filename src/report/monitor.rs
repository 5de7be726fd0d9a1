//! One run's analysis as a one-way pipe:
//!
//! ```text
//! Input ──> Links ──Linked──> Reports ──event + what it derived──> Sinks
//!   └──────────(secrets found)──────────> Tap
//! ```
//!
//! [`Links`] (the analyzer) turns inputs into every connection's events and pairings;
//! [`Reports`] folds each and returns what it derives; the sinks get both, in order. Nothing
//! downstream calls back up: this file is the only place the stages meet, and a new driver
//! (feeding [`Monitor::handle`]) or a new output (a [`Sink`]) plugs in here.
//!
//! A `Monitor` is driven synchronously by exactly one owner — the proxy's analysis thread, a
//! replay loop, a test — so it needs no locks. It performs no IO of its own.

use std::time::Duration;

use crate::analyzer::event::Event;
use crate::analyzer::input::{Input, InputKind, Timestamp};
use crate::analyzer::links::{Linked, Links};
use crate::analyzer::session::Config;
use crate::report::reports::Reports;
pub use crate::report::reports::{Snapshot, MAX_ENDED_SESSIONS};
pub use crate::report::sink::{Secrets, Sink, Tap};
use crate::report::{timing, Report, SessionReport};

/// All sessions of a run, and where their events go.
pub struct Monitor {
    links: Links,
    reports: Reports,
    sinks: Vec<Box<dyn Sink>>,
    tap: Option<Box<dyn Tap>>,
    cfg: Config,
    timing: timing::Config,
    status_every: Option<Duration>,
    last_tick: Timestamp,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("live", &self.links.ids().len())
            .field("done", &self.reports.ended_reports().count())
            .finish()
    }
}

impl Monitor {
    /// A monitor whose sessions use `cfg` and whose events go to `sinks`.
    pub fn new(cfg: Config, sinks: Vec<Box<dyn Sink>>) -> Monitor {
        let timing = timing::Config::default();
        Monitor {
            links: Links::new(cfg, timing.repl_timeout),
            reports: Reports::new(timing, None),
            sinks,
            tap: None,
            cfg,
            timing,
            status_every: None,
            last_tick: Timestamp(0),
        }
    }

    /// Uses `timing`'s warning thresholds in the reports' timing folds (before any input).
    pub fn with_timing(mut self, timing: timing::Config) -> Monitor {
        self.timing = timing;
        self.links = Links::new(self.cfg, timing.repl_timeout);
        self.reports = Reports::new(timing, self.status_every);
        self
    }

    /// Also emits a status event for every replication session each `every` (and each second
    /// while an RDB is transferred), as time advances through [`Monitor::tick`] (before any
    /// input).
    pub fn with_status_every(mut self, every: Duration) -> Monitor {
        self.status_every = Some(every);
        self.reports = Reports::new(self.timing, self.status_every);
        self
    }

    /// Also hands every input to `tap`, right after the analysis saw it.
    pub fn with_tap(mut self, tap: Box<dyn Tap>) -> Monitor {
        self.tap = Some(tap);
        self
    }

    /// Analyses one input: the one entry point for what happens on connections.
    pub fn handle(&mut self, input: &Input) {
        let secrets = self.links.handle(input);
        if let Some(tap) = &mut self.tap {
            // Secrets are found by the analysis, so the tap sees each input after it.
            tap.input(input, &secrets);
        }
        let said = self.reports.input(input);
        emit(&mut self.sinks, &said);
        self.flush();
    }

    /// Time has advanced to `now` (the proxy's clock, or a capture's timestamps): raises
    /// silence warnings and status events, and gives up on RDB connections that never came.
    /// Cheap to call often (replay calls it per frame): works at most twice a second.
    pub fn tick(&mut self, now: Timestamp) {
        self.reports.clock(now);
        if now.since(self.last_tick) < Duration::from_millis(500) {
            return;
        }
        self.last_tick = now;
        self.links.tick(now);
        self.flush();
        let said = self.reports.tick(now, &self.links);
        emit(&mut self.sinks, &said);
    }

    /// Hands everything the links have said to the reports, and each event with what it
    /// derived to the sinks.
    fn flush(&mut self) {
        while let Some(linked) = self.links.poll() {
            let folded = self.reports.observe(&linked);
            if let Linked::Event(e) = &linked {
                emit(&mut self.sinks, std::slice::from_ref(e));
            }
            emit(&mut self.sinks, &folded.derived);
            if let Some(report) = folded.ended.and_then(|id| self.reports.report_of(id)) {
                for sink in &mut self.sinks {
                    sink.session_done(report);
                }
            }
        }
    }

    /// An accepted connection was closed because the upstream could not be reached.
    pub fn connect_failed(&mut self) {
        self.reports.connect_failed();
    }

    /// Ends every live session (the run is stopping).
    pub fn close_all(&mut self, at: Timestamp, reason: &str) {
        for conn in self.links.ids() {
            let reason = reason.to_string();
            let kind = InputKind::Close { reason };
            self.handle(&Input { conn, at, kind });
        }
    }

    /// Every session's report as it stands, live ones apart.
    pub fn snapshot(&self) -> Snapshot<'_> {
        self.reports.snapshot()
    }

    /// Reports of the sessions still open (a paired RDB connection is in its main
    /// connection's).
    pub fn live_reports(&self) -> impl Iterator<Item = &SessionReport> {
        self.reports.live_reports()
    }

    /// Reports of ended sessions still kept.
    pub fn ended_reports(&self) -> impl Iterator<Item = &SessionReport> {
        self.reports.ended_reports()
    }

    /// Accepted connections closed because the upstream was unreachable.
    pub fn connect_failures(&self) -> u64 {
        self.reports.connect_failures()
    }

    /// The report so far: ended sessions, then live ones as they stand.
    pub fn report(&self) -> Report {
        self.reports.report()
    }
}

fn emit(sinks: &mut [Box<dyn Sink>], events: &[Event]) {
    for e in events {
        for sink in sinks.iter_mut() {
            sink.event(e);
        }
    }
}
