//! What the monitor remembers of each replica across its connections, for the life of the
//! process: why each sync happened, reconnects, full and partial syncs, errors, bytes, and
//! full-sync loops. A replica is its host and the port it listens on (`REPLCONF
//! listening-port`): a reconnect comes from a new source port.

use std::collections::BTreeMap;

use crate::analyzer::event::{Role, SyncReason, WarningKind};
use crate::analyzer::input::Timestamp;
pub use crate::report::model::ReplicaHistory;
use crate::report::model::{SyncMode, SyncType};
use crate::report::timing::Warning;
use crate::report::SessionReport;

/// Most replicas remembered; past it the least recently seen is forgotten.
pub const MAX_REPLICAS: usize = 10_000;

/// One replica as remembered: its counts (what the report shows) and its last link.
#[derive(Debug, Clone)]
struct Replica {
    counts: ReplicaHistory,
    last: Option<LastLink>,
    seen: Timestamp,
}

#[derive(Debug, Clone)]
struct LastLink {
    end: Option<u64>,
    ended_at: Timestamp,
    /// A full sync that ended before the replica's first ACK (not by the end of the run):
    /// dropped, if the next link needs a full sync again.
    unfinished_full: Option<(u64, u64)>,
    /// Its RDB was in an older version than the replica announced (the RDB-version trap).
    rdb_version_trap: bool,
    /// The session whose full sync counted this link's as dropped. A two-connection sync
    /// starts twice (the master's answer, then its offsets): the second start must read the
    /// same reason, and not count the drop again.
    dropped_by: Option<u64>,
}

/// Every replica's history.
#[derive(Debug, Default)]
pub struct History {
    replicas: BTreeMap<String, Replica>,
}

/// Why a sync happened, with its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    /// The reason.
    pub reason: SyncReason,
    /// The backlog a full sync would have needed, or the gap a partial one filled.
    pub gap_bytes: Option<u64>,
    /// In a sentence.
    pub message: String,
}

/// The `repl-backlog-size` to suggest for `bytes`: a quarter more, rounded up to a MiB.
pub fn backlog_for(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    bytes.saturating_add(bytes / 4).div_ceil(MIB).max(1) * MIB
}

/// `bytes` for people (`1.5 MB`, `512 kB`, `80 B`).
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} kB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

impl History {
    /// The replica `s` comes from.
    pub fn key(s: &SessionReport) -> String {
        let host = s
            .replica
            .rsplit_once(':')
            .map_or(s.replica.as_str(), |(h, _)| h);
        match s.handshake.listening_port {
            Some(port) => format!("{host}:{port}"),
            None => format!("{host}:?"),
        }
    }

    /// Every replica's history, with the `live` links counted as they stand (their sync, bytes
    /// and errors so far): what the report and the metrics show, so the per-replica counters
    /// agree with the sessions at any moment. In name order.
    pub fn replicas_with<'a>(
        &self,
        live: impl IntoIterator<Item = &'a SessionReport>,
    ) -> Vec<ReplicaHistory> {
        let mut all = self.replicas.clone();
        for s in live {
            if s.kind != Role::Replication || s.sync.mode.is_none() {
                continue;
            }
            let key = Self::key(s);
            all.entry(key.clone())
                .or_insert_with(|| Replica::new(key, s.started_at))
                .count(s);
        }
        all.into_values().map(|r| r.counts).collect()
    }

    /// Why the sync `s` just started happened; `None` while it cannot be said yet (a
    /// two-connection sync's offsets still to come) or for what is not a replica's sync.
    pub fn why(&self, s: &SessionReport, at: Timestamp) -> Option<Why> {
        let why = |reason, gap_bytes, message: String| {
            Some(Why {
                reason,
                gap_bytes,
                message,
            })
        };
        match s.sync.mode? {
            SyncMode::Sync => {
                let message = "legacy SYNC: a tool (redis-cli --replica/--rdb) or a very old \
                               replica; an RDB with no offsets"
                    .to_string();
                return why(SyncReason::Tool, None, message);
            }
            SyncMode::SlotStream | SyncMode::SlotSnapshot => return None,
            _ => {}
        }
        let Some(requested) = &s.sync.requested else {
            let message = "no PSYNC seen (the capture began after it)".to_string();
            return why(SyncReason::Unknown, None, message);
        };
        let mut args = requested.split_whitespace();
        let (id, off) = (args.next()?, args.next()?.parse::<i64>().ok()?);
        let history = self.replicas.get(&Self::key(s));
        let last = history.and_then(|h| h.last.as_ref());
        let ago = |l: &LastLink| at.since(l.ended_at).as_secs_f64();
        if id == "?" {
            return match last {
                Some(l)
                    if l.unfinished_full.is_some() && l.dropped_by.is_none_or(|by| by == s.id) =>
                {
                    // This sync drops the last one: `sync_started` counts it right after (or
                    // did, at this sync's first start).
                    let counted = u64::from(l.dropped_by.is_some());
                    let dropped = history.map_or(0, |h| h.counts.dropped_full_syncs) + 1 - counted;
                    let (reason, what) = if dropped >= 2 {
                        let what = format!("a full-sync loop: {dropped} full syncs dropped so far");
                        (SyncReason::FullSyncLoop, what)
                    } else {
                        (SyncReason::FullSyncRestarted, "it starts over".to_string())
                    };
                    let message = format!(
                        "the replica's last full sync ended {:.1} s ago before it was online: \
                         {what} (PSYNC ? -1)",
                        ago(l)
                    );
                    why(reason, None, message)
                }
                Some(l) => {
                    let message = format!(
                        "the replica asked for a full sync (PSYNC ? -1) although its link \
                         {:.1} s ago reached offset {}: it restarted without its replication \
                         state, or was reset",
                        ago(l),
                        l.end.map_or("?".into(), |e| e.to_string())
                    );
                    why(SyncReason::ReplicaRestarted, None, message)
                }
                None => {
                    let message =
                        "first sync: the replica has no replication state yet (PSYNC ? -1)"
                            .to_string();
                    why(SyncReason::FirstSync, None, message)
                }
            };
        }
        let off = u64::try_from(off).unwrap_or(0);
        let replid = s.sync.replid.as_deref()?;
        if s.sync.kind == SyncType::Partial {
            if !replid.eq_ignore_ascii_case(id) {
                let message = format!(
                    "failover: the master has a new replid {replid} (it was promoted) and \
                     continued the replica's history from offset {off}"
                );
                return why(SyncReason::Failover, None, message);
            }
            let Some(l) = last else {
                let message = format!("partial resync granted at offset {off}");
                return why(SyncReason::PartialGranted, None, message);
            };
            // What the master had sent on the last link that the replica had not applied.
            let gap = l.end.map(|e| e.saturating_add(1).saturating_sub(off));
            let message = format!(
                "partial resync granted at offset {off}, {:.1} s after the last link ended; \
                 the backlog resent at least {} bytes",
                ago(l),
                gap.unwrap_or(0)
            );
            return why(SyncReason::PartialGranted, gap, message);
        }
        // A full sync although the replica asked to continue: which test failed.
        let master = s.sync.offset?;
        if !replid.eq_ignore_ascii_case(id) {
            let message = format!(
                "replid mismatch: the replica asked to continue {id} at offset {off}, but the \
                 master's replid is {replid}: the master restarted without persistence, or \
                 was replaced"
            );
            return why(SyncReason::ReplidMismatch, None, message);
        }
        if off > master.saturating_add(1) {
            let gap = off - master - 1;
            let message = format!(
                "the replica is {gap} bytes ahead of the master (it asked for offset {off}, \
                 the master is at {master}): the master lost writes (restarted from an older \
                 RDB, or a lagging replica was promoted)"
            );
            return why(SyncReason::ReplicaAhead, Some(gap), message);
        }
        let gap = master.saturating_add(1) - off;
        let message = format!(
            "offset outside the backlog: the replica asked for offset {off}, the master is at \
             {master}, {gap} bytes ({}) further than its backlog reaches; a repl-backlog-size \
             of {} would have allowed a partial resync",
            human(gap),
            human(backlog_for(gap))
        );
        why(SyncReason::OffsetOutsideBacklog, Some(gap), message)
    }

    /// Session `s` ended: its replica's history takes it in.
    pub fn ended(&mut self, s: &SessionReport, at: Timestamp) {
        if s.kind != Role::Replication || s.sync.mode.is_none() {
            return;
        }
        if self.replicas.len() >= MAX_REPLICAS && !self.replicas.contains_key(&Self::key(s)) {
            let oldest = self
                .replicas
                .iter()
                .min_by_key(|(_, h)| h.seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.replicas.remove(&k);
            }
        }
        let key = Self::key(s);
        let h = self
            .replicas
            .entry(key.clone())
            .or_insert_with(|| Replica::new(key, at));
        h.count(s);
        h.seen = at;
        let full = s.sync.kind == SyncType::Full;
        // Ended before it was online; the run's own end does not count.
        let ours = matches!(
            s.end_reason.as_deref(),
            Some("proxy shutdown" | "end of capture" | "end")
        );
        let rdb = s.rdb.as_ref().map_or(0, |r| r.bytes);
        h.last = Some(LastLink {
            end: s.offsets.end,
            ended_at: at,
            unfinished_full: (full && !ours && s.acks == 0).then_some((rdb, s.stream.bytes)),
            rdb_version_trap: s
                .timing
                .warnings_by_kind
                .contains_key(&WarningKind::RdbVersion),
            dropped_by: None,
        });
    }

    /// Session `s` started a sync. If its replica's last link was a full sync that ended before
    /// the replica was online and this one is full again, that sync was dropped; the second
    /// time (and every time after), a full-sync loop is diagnosed.
    pub fn sync_started(&mut self, s: &SessionReport) -> Option<Warning> {
        if s.sync.kind != SyncType::Full || s.kind != Role::Replication {
            return None;
        }
        let h = self.replicas.get_mut(&Self::key(s))?;
        let last = h.last.as_mut()?;
        let (rdb, stream) = last.unfinished_full?;
        if last.dropped_by.is_some() {
            return None;
        }
        last.dropped_by = Some(s.id);
        let trap = last.rdb_version_trap;
        h.counts.dropped_full_syncs += 1;
        (h.counts.dropped_full_syncs >= 2).then(|| {
            let likely = if trap {
                "the RDB-version trap (valkey #4103, the rdb_version warning): the master \
                 cannot save this dataset in the RDB version the replica's RDB connection gets"
            } else {
                "likely client-output-buffer-limit replica overflowing while the master \
                 buffers writes, or repl-timeout during a long load"
            };
            let message = format!(
                "full-sync loop: {} lost its link {} times before it was online, and needed a \
                 full sync again (the last after {} of RDB and {} of stream); {likely}",
                h.counts.replica,
                h.counts.dropped_full_syncs,
                human(rdb),
                human(stream)
            );
            Warning {
                kind: WarningKind::FullSyncLoop,
                message,
            }
        })
    }
}

impl Replica {
    fn new(replica: String, seen: Timestamp) -> Replica {
        let counts = ReplicaHistory {
            replica,
            links: 0,
            reconnects: 0,
            full_syncs: 0,
            partial_syncs: 0,
            errors: 0,
            bytes: 0,
            dropped_full_syncs: 0,
        };
        Replica {
            counts,
            last: None,
            seen,
        }
    }

    /// Counts the link `s`: its sync, errors and bytes.
    fn count(&mut self, s: &SessionReport) {
        let c = &mut self.counts;
        c.links += 1;
        c.reconnects = c.links - 1;
        match s.sync.kind {
            SyncType::Full => c.full_syncs += 1,
            SyncType::Partial => c.partial_syncs += 1,
            _ => {}
        }
        // A session's desyncs count once: with skips, a busy link can have hundreds.
        c.errors += s.handshake.errors.len() as u64 + u64::from(s.desync_count > 0);
        c.errors += u64::from(s.sync.rejected.is_some());
        c.bytes += s.bytes.to_master + s.bytes.to_replica;
        let partner = s.channels.iter().filter(|c| c.session != s.id);
        c.bytes += partner
            .map(|c| c.bytes.to_master + c.bytes.to_replica)
            .sum::<u64>();
    }
}
