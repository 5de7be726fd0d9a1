//! A two-connection sync's RDB connection folded into its main connection's report: what
//! it had before it paired, and what it says after.

use crate::analyzer::event::{Event, EventKind};
use crate::report::fold::*;

impl SessionReport {
    /// Takes in the RDB connection `rdb` that pairs with this main connection: its channel
    /// entry, and its RDB if it began already. Its later events come through
    /// [`SessionReport::fold_partner`].
    pub fn absorb(&mut self, rdb: &mut SessionReport) {
        self.channels.append(&mut rdb.channels);
        if self.rdb.is_none() {
            self.rdb = rdb.rdb.take();
        }
        self.handshake.errors.append(&mut rdb.handshake.errors);
        self.desyncs.append(&mut rdb.desyncs);
        if self.desync.is_none() {
            self.desync = rdb.desync.take();
        }
    }

    /// Folds an event of this session's paired RDB connection: its RDB, its errors, and how
    /// its connection ended. The rest (its handshake, its role) is its own business.
    pub fn fold_partner(&mut self, e: &Event) {
        match &e.kind {
            EventKind::RdbStart { .. }
            | EventKind::RdbEnd { .. }
            | EventKind::RdbHeader { .. }
            | EventKind::RdbContents { .. }
            | EventKind::RdbAborted { .. }
            | EventKind::Status { rdb: Some(_), .. } => self.fold_rdb(e),
            EventKind::Reply { reply, .. } | EventKind::SyncRejected { reply }
                if reply.starts_with('-') && self.handshake.errors.len() < MAX_LISTED =>
            {
                self.handshake.errors.push(reply.clone());
            }
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            } => {
                let reason = format!("RDB connection (session {}): {reason}", e.session);
                self.add_desync(e.session, *dir, *position, *offset, reason);
            }
            EventKind::Resumed { .. } => self.resumed(e),
            EventKind::SessionEnd { .. } => self.channel_ended(e),
            _ => {}
        }
    }

    /// A connection of a two-connection sync ended: its entry says when, why, and its bytes.
    pub(super) fn channel_ended(&mut self, e: &Event) {
        let EventKind::SessionEnd {
            reason,
            bytes_to_master,
            bytes_to_replica,
            ..
        } = &e.kind
        else {
            return;
        };
        if let Some(c) = self.channels.iter_mut().find(|c| c.session == e.session) {
            c.ended_at = Some(e.ts);
            c.end_reason = Some(reason.clone());
            c.bytes.to_master = *bytes_to_master;
            c.bytes.to_replica = *bytes_to_replica;
        }
    }
}
