//! Progress on a terminal, drawn by indicatif: one bar per RDB transfer in flight (several
//! replicas syncing at once get one bar each), and a bar for reading a file (`replay`, `rdb`).
//!
//! Every bar belongs to one [`MultiProgress`]; log lines must go through [`Progress::suspend`]
//! (the binary's log writer does) so that a line is printed above the bars, not over them.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::analyzer::event::{Event, EventKind};
use crate::report::monitor::Sink;

/// The terminal's bars. Cheap to clone: clones draw on the same terminal lines.
#[derive(Debug, Clone)]
pub struct Progress {
    multi: MultiProgress,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Bars on stderr, redrawn at most 10 times a second.
    pub fn new() -> Progress {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
        }
    }

    /// Runs `f` (which prints) with the bars cleared, then redraws them.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// A bar for reading `len` bytes of `what`.
    pub fn file(&self, what: &str, len: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(bytes_style(
            "{prefix} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {msg}",
        ));
        bar.set_prefix(what.to_string());
        bar
    }

    /// A sink that keeps one bar per session whose RDB is in flight.
    pub fn transfers(&self) -> TransferBars {
        TransferBars {
            progress: self.clone(),
            bars: HashMap::new(),
        }
    }
}

fn bytes_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One bar per RDB transfer in flight, fed by the status events (every second during a
/// transfer); a bar goes when its transfer ends.
#[derive(Debug)]
pub struct TransferBars {
    progress: Progress,
    bars: HashMap<u64, ProgressBar>,
}

impl TransferBars {
    /// Bars being shown (one per transfer in flight).
    pub fn shown(&self) -> usize {
        self.bars.len()
    }
}

impl Sink for TransferBars {
    fn event(&mut self, e: &Event) {
        match &e.kind {
            EventKind::Status { rdb: Some(p), .. } => {
                let bar = self.bars.entry(e.session).or_insert_with(|| {
                    let bar = match p.total {
                        Some(total) => {
                            let bar = ProgressBar::new(total);
                            bar.set_style(bytes_style(
                                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                            ));
                            bar
                        }
                        None => {
                            // Diskless: the length is known only at its end mark; the keys
                            // read against those the RDB's RESIZEDB hints announce stand in.
                            let bar = ProgressBar::new_spinner();
                            bar.set_style(bytes_style(
                                "{prefix} {spinner} {bytes} {bytes_per_sec} (diskless) {msg}",
                            ));
                            bar.enable_steady_tick(Duration::from_millis(200));
                            bar
                        }
                    };
                    bar.set_prefix(format!("[{}] RDB", e.session));
                    self.progress.multi.add(bar)
                });
                bar.set_position(p.bytes);
                if p.total.is_none() {
                    bar.set_message(match p.keys_announced.filter(|a| *a > 0) {
                        Some(all) => format!("{} of {all} keys", p.keys),
                        None => format!("{} keys", p.keys),
                    });
                }
            }
            EventKind::RdbEnd { .. }
            | EventKind::RdbAborted { .. }
            | EventKind::SessionEnd { .. } => {
                if let Some(bar) = self.bars.remove(&e.session) {
                    bar.finish_and_clear();
                    self.progress.multi.remove(&bar);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::event::{Framing, RdbProgress};
    use crate::analyzer::input::Timestamp;

    fn status(session: u64, bytes: u64, total: Option<u64>) -> Event {
        let rdb = Some(Box::new(RdbProgress {
            bytes,
            total,
            bytes_per_s: 1e6,
            eta_s: None,
            keys: 0,
            keys_announced: None,
        }));
        let kind = EventKind::Status {
            offset: None,
            acked: None,
            lag_bytes: 0,
            lag_ms: 0.0,
            commands_per_s: 0.0,
            bytes_per_s: 0.0,
            rdb,
            phase: None,
            phase_s: None,
        };
        Event {
            session,
            ts: Timestamp(0),
            kind,
        }
    }

    /// Two replicas syncing at once get a bar each; each bar goes with its transfer.
    #[test]
    fn one_bar_per_transfer_in_flight() {
        let progress = Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        };
        let mut bars = progress.transfers();
        bars.event(&status(1, 10, Some(100)));
        bars.event(&status(2, 10, None));
        bars.event(&status(1, 50, Some(100)));
        assert_eq!(bars.shown(), 2);
        assert_eq!(bars.bars[&1].position(), 50);
        let end = EventKind::RdbAborted {
            framing: Framing::Disk,
            bytes: 50,
            declared: Some(100),
        };
        bars.event(&Event {
            session: 1,
            ts: Timestamp(0),
            kind: end,
        });
        assert_eq!(bars.shown(), 1);
    }
}
