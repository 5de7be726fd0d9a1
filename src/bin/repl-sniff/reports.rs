//! The report files a run writes (`--report-json`, `--html`): atomically, at the end, each
//! `--report-interval`, and on `SIGHUP`.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::OutputArgs;

/// Fails early, before any work, if a report file cannot be written: writes the (empty)
/// report of a run that has not begun, so the file is valid from the start.
pub(crate) fn check_report_path(output: &OutputArgs, report: &repl_sniff::Report) -> Result<()> {
    write_report(output, report)
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed over it: a reader
/// (or a crash) never finds half a report.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The report as JSON, with its text summary beside the data (`summary`), so that
/// `repl-sniff report` can print it later.
pub(crate) fn report_value(report: &repl_sniff::Report) -> Result<serde_json::Value> {
    let mut json = serde_json::to_value(report)?;
    let text = repl_sniff::render::summary::report(report);
    json["summary"] = serde_json::Value::String(text);
    Ok(json)
}

pub(crate) fn write_report(output: &OutputArgs, report: &repl_sniff::Report) -> Result<()> {
    if output.report_json.is_none() && output.report_html.is_none() {
        return Ok(());
    }
    let report = &report_value(report)?;
    if let Some(path) = &output.report_json {
        let json = serde_json::to_vec_pretty(report)?;
        write_atomically(path, &json)
            .with_context(|| format!("cannot write the report file {}", path.display()))?;
    }
    if let Some(path) = &output.report_html {
        // Drawn from the JSON, as `repl-sniff report` draws a saved one: the same page.
        let page = repl_sniff::render::html::page(report);
        write_atomically(path, page.as_bytes())
            .with_context(|| format!("cannot write the HTML report {}", path.display()))?;
    }
    Ok(())
}

/// Rewrites a live run's reports every `--report-interval` and when SIGHUP asks, so they
/// survive a crash, a `kill -9` or a dropped terminal.
pub(crate) struct ReportWriter {
    output: OutputArgs,
    every: Option<Duration>,
    last: Instant,
    hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReportWriter {
    pub(crate) fn new(
        output: &OutputArgs,
        hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        ReportWriter {
            output: output.clone(),
            every: (output.report_interval > 0)
                .then(|| Duration::from_secs(output.report_interval)),
            last: Instant::now(),
            hup,
        }
    }

    /// Writes the reports if an interval has passed or SIGHUP came since the last write.
    pub(crate) fn tick(&mut self, report: impl FnOnce() -> repl_sniff::Report) {
        if self.output.report_json.is_none() && self.output.report_html.is_none() {
            return;
        }
        let hup = self.hup.swap(false, std::sync::atomic::Ordering::Relaxed);
        let due = self.every.is_some_and(|e| self.last.elapsed() >= e);
        if !hup && !due {
            return;
        }
        self.last = Instant::now();
        match write_report(&self.output, &report()) {
            Ok(()) if hup => tracing::info!("SIGHUP: reports written; still running"),
            Ok(()) => {}
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
}

/// Turns SIGHUP (a closed terminal, `kill -HUP`) into a request to write the reports, instead
/// of the default, which ends the process and with it the replica's link.
pub(crate) fn on_sighup(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
            Err(e) => tracing::warn!("cannot handle SIGHUP: {e}"),
        }
    }
}
