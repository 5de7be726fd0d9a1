//! The RDB transfer's events folded into the session's `rdb` report.

use crate::analyzer::event::{Event, EventKind};
use crate::report::fold::*;

impl SessionReport {
    /// The RDB transfer's events: this connection's, or its RDB connection's.
    pub(super) fn fold_rdb(&mut self, e: &Event) {
        match &e.kind {
            EventKind::RdbStart {
                framing,
                declared_bytes,
            } => {
                if let Some(t) = &mut self.timeline {
                    t.marks.rdb_start = Some(e.ts);
                    t.settle();
                }
                self.rdb = Some(RdbReport {
                    framing: *framing,
                    bytes: 0,
                    declared_bytes: *declared_bytes,
                    started_at: e.ts,
                    duration_ms: None,
                    complete: false,
                    header: None,
                    contents: None,
                });
            }
            EventKind::RdbEnd {
                bytes, duration_us, ..
            } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.bytes = *bytes;
                    rdb.duration_ms = Some(*duration_us as f64 / 1000.0);
                    rdb.complete = true;
                }
                if let Some(t) = &mut self.timeline {
                    t.marks.rdb_end = Some(e.ts);
                    if self.sync.mode == Some(SyncMode::Sync) {
                        // A legacy SYNC client never ACKs: the sync ends with its RDB.
                        t.marks.loaded = Some(e.ts);
                        t.marks.caught_up = Some(e.ts);
                    }
                    t.settle();
                }
            }
            EventKind::RdbHeader { header } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.header = Some(header.clone());
                }
            }
            EventKind::RdbContents { contents } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.contents = Some((**contents).clone());
                }
            }
            EventKind::RdbAborted { bytes, .. } => {
                if let Some(rdb) = &mut self.rdb {
                    rdb.bytes = *bytes;
                }
            }
            // A transfer under way: the report (and the metrics read from it) move with it.
            EventKind::Status {
                rdb: Some(progress),
                ..
            } => {
                if let Some(rdb) = self.rdb.as_mut().filter(|r| !r.complete) {
                    rdb.bytes = rdb.bytes.max(progress.bytes);
                }
            }
            _ => {}
        }
    }
}
