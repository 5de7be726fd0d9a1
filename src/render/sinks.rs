//! Sinks: where events go as they happen — the log, text lines, JSON lines, a progress bar.

use std::io::Write;

use crate::analyzer::event::{Event, EventKind};
use crate::report::monitor::Sink;
use crate::report::SessionReport;

/// Logs events through `tracing`: state changes at INFO, desyncs at WARN, per-command traffic
/// at DEBUG (stream) and TRACE (clients, keep-alives).
#[derive(Debug, Default)]
pub struct LogSink {
    /// Leave RDB progress status lines to a progress bar drawn elsewhere.
    pub without_rdb_progress: bool,
}

impl Sink for LogSink {
    fn event(&mut self, e: &Event) {
        match &e.kind {
            EventKind::Status { rdb: Some(_), .. } if self.without_rdb_progress => {}
            EventKind::Desync { .. }
            | EventKind::SyncRejected { .. }
            | EventKind::Warning { .. } => tracing::warn!("{e}"),
            EventKind::ClientCommand { .. } | EventKind::KeepAlive { .. } => tracing::trace!("{e}"),
            k if k.is_routine() => tracing::debug!("{e}"),
            _ => tracing::info!("{e}"),
        }
    }
}

/// Writes each event as one readable line (`replay`'s default output), prefixed by the time.
#[derive(Debug)]
pub struct TextLines<W: Write + Send> {
    out: W,
    failed: bool,
    verbosity: u8,
}

impl<W: Write + Send> TextLines<W> {
    /// Writes every event to `out`.
    pub fn new(out: W) -> Self {
        TextLines {
            out,
            failed: false,
            verbosity: u8::MAX,
        }
    }

    /// Writes only what the live log shows at the same `-v` count: notable events at 0, the
    /// stream's commands and the ACKs too at 1, client commands and keep-alives at 2.
    pub fn verbosity(mut self, verbose: u8) -> Self {
        self.verbosity = verbose;
        self
    }

    fn shows(&self, kind: &EventKind) -> bool {
        let needs = match kind {
            EventKind::ClientCommand { .. } | EventKind::KeepAlive { .. } => 2,
            k if k.is_routine() => 1,
            _ => 0,
        };
        self.verbosity >= needs
    }
}

impl<W: Write + Send> Sink for TextLines<W> {
    fn event(&mut self, e: &Event) {
        if self.failed || !self.shows(&e.kind) {
            return;
        }
        if writeln!(self.out, "{} {e}", e.ts.time_of_day()).is_err() {
            self.failed = true;
        }
    }

    fn session_done(&mut self, _report: &SessionReport) {
        let _ = self.out.flush();
    }
}

/// Writes each event as one JSON object per line.
#[derive(Debug)]
pub struct JsonLines<W: Write + Send> {
    out: W,
    failed: bool,
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out` (e.g. a locked, buffered stdout).
    pub fn new(out: W) -> Self {
        JsonLines { out, failed: false }
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn event(&mut self, e: &Event) {
        if self.failed {
            return;
        }
        let ok = serde_json::to_writer(&mut self.out, e).is_ok()
            && self.out.write_all(b"\n").is_ok()
            && (e.kind.is_routine() || self.out.flush().is_ok());
        if !ok {
            // A closed pipe (`| head`) must not stop the analysis, let alone the forwarding.
            self.failed = true;
            tracing::warn!("JSON event output failed; no more events will be written");
        }
    }

    fn session_done(&mut self, _report: &SessionReport) {
        let _ = self.out.flush();
    }
}
