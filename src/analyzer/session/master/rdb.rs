//! The RDB transfer on the master's direction: its bytes fed to the streaming RDB analysis,
//! the diskless transfer's `$EOF:<mark>` end, and what a transfer cut short said.

use super::MasterPhase;
use crate::analyzer::event::{EventKind, Framing};
use crate::analyzer::input::{Direction, Timestamp};
use crate::analyzer::session::{Role, Session};
use crate::protocol::handshake::ID_LEN;

/// An RDB transfer under way.
#[derive(Debug)]
pub(in crate::analyzer::session) struct RdbTransfer {
    pub(in crate::analyzer::session) framing: Framing,
    pub(in crate::analyzer::session) started: Timestamp,
    pub(in crate::analyzer::session) bytes: u64,
    pub(in crate::analyzer::session) contents: Box<crate::protocol::rdb::Parser>,
    /// The header was said (`RdbHeader`).
    pub(in crate::analyzer::session) header_said: bool,
}

/// The RDB's summary as events carry it: key names hidden unless asked for.
pub(in crate::analyzer::session) fn rdb_summary(
    parser: &mut crate::protocol::rdb::Parser,
    show_keys: bool,
) -> Box<crate::protocol::rdb::Summary> {
    let mut summary = parser.finish();
    if !show_keys {
        summary.hide_keys();
    }
    Box::new(summary)
}

impl Session {
    /// Says the RDB's header once its leading AUX fields went by: which version the master
    /// chose for this replica matters before the transfer ends (or fails).
    pub(in crate::analyzer::session) fn say_rdb_header(&mut self, at: Timestamp) {
        let Some(rdb) = self.master.rdb.as_mut().filter(|r| !r.header_said) else {
            return;
        };
        if let Some(header) = rdb.contents.header() {
            rdb.header_said = true;
            self.emit(at, EventKind::RdbHeader { header });
        }
    }

    /// Looks for the end mark of a diskless RDB; consumes up to and including it.
    ///
    /// The RDB parser is fed only bytes known to be RDB: the last `ID_LEN - 1` bytes seen are
    /// held back in `tail` until the next bytes show they do not begin the mark, so that what
    /// follows the mark (the stream) never reaches it, however the input was split.
    pub(in crate::analyzer::session) fn scan_eof_mark(
        &mut self,
        at: Timestamp,
        rest: &[u8],
    ) -> usize {
        let MasterPhase::RdbEof { mark, tail, seen } = &mut self.master.phase else {
            return 0;
        };
        let contents = self.master.rdb.as_mut().map(|r| &mut r.contents);
        // A mark split across chunks: search the held tail joined with the new head.
        let head = &rest[..rest.len().min(ID_LEN - 1)];
        let mut joint = [0u8; 2 * ID_LEN];
        joint[..tail.len()].copy_from_slice(tail);
        joint[tail.len()..tail.len() + head.len()].copy_from_slice(head);
        let joint = &joint[..tail.len() + head.len()];
        let found = match memchr::memmem::find(joint, mark) {
            Some(i) if i < tail.len() => Some((i, 0)),
            _ => memchr::memmem::find(rest, mark).map(|j| (tail.len(), j)),
        };
        let Some((from_tail, from_rest)) = found else {
            // No mark yet: everything but the last ID_LEN - 1 bytes is RDB.
            *seen += rest.len() as u64;
            let keep = ID_LEN - 1;
            let total = tail.len() + rest.len();
            let release = total.saturating_sub(keep);
            let from_tail = release.min(tail.len());
            let from_rest = release - from_tail;
            // Where the mark should have begun, once the RDB ended and 40 bytes followed. It
            // is counted from the RDB's end, not from where the chunk ends, so that it does
            // not depend on how the input was split.
            let mut overdue = None;
            if let Some(c) = contents {
                c.feed(&tail[..from_tail]);
                c.feed(&rest[..from_rest]);
                if c.is_complete() && *seen >= c.position() + ID_LEN as u64 {
                    let payload_at =
                        self.seen[Direction::MasterToReplica] + rest.len() as u64 - *seen;
                    overdue = Some(payload_at + c.position());
                }
            }
            tail.drain(..from_tail);
            tail.extend_from_slice(&rest[from_rest..]);
            if let Some(mark_at) = overdue {
                self.mark_missing(at, mark_at);
            }
            return rest.len();
        };
        // The mark ends `end` bytes into `rest`, and begins `rdb_bytes` into the payload.
        let end = from_rest + ID_LEN - (tail.len() - from_tail);
        let rdb_bytes = (*seen + end as u64).saturating_sub(ID_LEN as u64);
        let mut early_end = None;
        if let Some(c) = contents {
            c.feed(&tail[..from_tail]);
            c.feed(&rest[..from_rest]);
            // The RDB ended before the mark began: the 40 bytes after its end were not the
            // mark, as a split input would have shown before this mark arrived.
            if c.is_complete() && c.position() < rdb_bytes {
                early_end = Some(c.position());
            }
        }
        if let Some(rdb_end) = early_end {
            let payload_at = self.seen[Direction::MasterToReplica] - *seen;
            self.mark_missing(at, payload_at + rdb_end);
            return rest.len();
        }
        if let Some(rdb) = &mut self.master.rdb {
            rdb.bytes = rdb_bytes;
        }
        self.rdb_done(at);
        end
    }

    /// A diskless RDB ended whole, but what followed it was not its end mark (which should
    /// have begun at byte `mark_at` of the direction): the RDB is reported, then the link is
    /// given up.
    pub(in crate::analyzer::session) fn mark_missing(&mut self, at: Timestamp, mark_at: u64) {
        if let Some(bytes) = self.master.rdb.as_ref().map(|r| r.contents.position()) {
            self.rdb_aborted(at, bytes, None);
        }
        let msg = "the diskless RDB ended, but the 40 bytes after it are not the EOF mark it \
                   announced"
            .to_string();
        self.lose_master(at, mark_at, msg);
    }

    /// The transfer ended after `bytes` of the RDB (`declared` announced): says so, with what
    /// the RDB held so far.
    pub(in crate::analyzer::session) fn rdb_aborted(
        &mut self,
        at: Timestamp,
        bytes: u64,
        declared: Option<u64>,
    ) {
        // A diskless RDB's last bytes were held back in case they began the end mark; none
        // came, so they are the RDB's.
        if let (MasterPhase::RdbEof { tail, .. }, Some(rdb)) =
            (&mut self.master.phase, &mut self.master.rdb)
        {
            rdb.contents.feed(tail);
            tail.clear();
        }
        self.say_rdb_header(at);
        let Some(rdb) = &mut self.master.rdb else {
            return;
        };
        let framing = rdb.framing;
        let contents = rdb_summary(&mut rdb.contents, self.cfg.show_keys);
        let aborted = EventKind::RdbAborted {
            framing,
            bytes,
            declared,
        };
        self.emit(at, aborted);
        self.emit(at, EventKind::RdbContents { contents });
    }

    pub(in crate::analyzer::session) fn rdb_done(&mut self, at: Timestamp) {
        self.say_rdb_header(at);
        if let Some(rdb) = &mut self.master.rdb {
            let kind = EventKind::RdbEnd {
                framing: rdb.framing,
                bytes: rdb.bytes,
                duration_us: at.since(rdb.started).as_micros() as u64,
            };
            let contents = rdb_summary(&mut rdb.contents, self.cfg.show_keys);
            self.emit(at, kind);
            self.emit(at, EventKind::RdbContents { contents });
        }
        if self.role == Role::Sync && self.master.stream.base.is_some() {
            // Valkey's RDB connection announced an offset, but no stream follows on it.
            self.master.stream.base = None;
        }
        self.enter_master(MasterPhase::Stream);
    }
}
