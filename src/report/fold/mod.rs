//! The fold: each session's events folded into its [`SessionReport`] (the model lives in
//! [`model`](super::model), its text in `render::summary`).

mod migration;
mod partner;
mod rdb;

use std::collections::BTreeMap;

use crate::analyzer::event::{Event, EventKind, Role, SyncKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::report::timing::Timing;

pub use crate::report::model::*;

/// How close before a replica's ACK a read of stream may be forwarded and still have crossed
/// that ACK on the wire (a one-way trip on a LAN is well under it).
const CROSSING: std::time::Duration = std::time::Duration::from_millis(1);

/// Most handshake requests and errors listed per session.
pub const MAX_LISTED: usize = 64;

/// Most distinct command names counted per session; the rest are counted as `OTHER`, and the
/// first one past the cap raises an `analysis_limit` warning (the tracker's, which sees the
/// same events). A real stream has a few dozen names; only garbage or an attack has more.
pub const MAX_COMMAND_NAMES: usize = 256;

/// Milliseconds from `from` to `to`.
fn ms(from: Timestamp, to: Timestamp) -> f64 {
    to.since(from).as_secs_f64() * 1000.0
}

impl Timeline {
    /// The timeline of a sync requested at `psync` on a connection opened at `start`.
    fn begun(start: Timestamp, psync: Timestamp) -> Timeline {
        let mut t = Timeline::default();
        t.marks.start = Some(start);
        t.marks.psync = Some(psync);
        t.settle();
        t
    }

    /// When the current phase began (the marker that opened it).
    pub fn phase_since(&self) -> Option<Timestamp> {
        let m = &self.marks;
        match self.phase {
            SyncPhase::Handshake => m.start,
            SyncPhase::Preparing => m.psync,
            SyncPhase::Transfer => m.rdb_start,
            SyncPhase::Loading => m.rdb_end,
            SyncPhase::CatchUp => m.loaded,
            SyncPhase::Online => m.caught_up,
        }
    }

    /// Derives the phases and the current one from the markers: each phase is the time
    /// between two consecutive markers.
    fn settle(&mut self) {
        let m = self.marks;
        let ms = |from: Option<Timestamp>, to: Option<Timestamp>| {
            Some(to?.since(from?).as_secs_f64() * 1000.0)
        };
        self.handshake_ms = ms(m.start, m.psync).unwrap_or(0.0);
        self.bgsave_wait_ms = ms(m.psync, m.rdb_start);
        self.transfer_ms = ms(m.rdb_start, m.rdb_end);
        self.load_ms = ms(m.rdb_end, m.loaded);
        self.catch_up_ms = ms(m.loaded, m.caught_up);
        self.duration_ms = ms(m.start, m.caught_up);
        self.phase = if m.caught_up.is_some() {
            SyncPhase::Online
        } else if m.loaded.is_some() {
            SyncPhase::CatchUp
        } else if m.rdb_end.is_some() {
            SyncPhase::Loading
        } else if m.rdb_start.is_some() {
            SyncPhase::Transfer
        } else if m.psync.is_some() {
            SyncPhase::Preparing
        } else {
            SyncPhase::Handshake
        };
    }
}

impl SessionReport {
    /// An empty report for a session that has just started.
    pub fn new(id: u64, started_at: Timestamp) -> SessionReport {
        SessionReport {
            id,
            kind: Role::Client,
            replica: String::new(),
            upstream: String::new(),
            started_at,
            ended_at: None,
            end_reason: None,
            handshake: HandshakeReport::default(),
            sync: SyncReport {
                kind: SyncType::None,
                mode: None,
                replid: None,
                offset: None,
                requested: None,
                reason: None,
                rejected: None,
                at: None,
            },
            rdb: None,
            offsets: OffsetsReport::default(),
            stream: StreamReport::default(),
            commands: BTreeMap::new(),
            acks: 0,
            keepalives: KeepAlives::default(),
            bytes: ByteCounts::default(),
            desync: None,
            desyncs: Vec::new(),
            desync_count: 0,
            joined_late: false,
            timing: Timing::new(),
            timeline: None,
            channels: Vec::new(),
            migration: None,
            migrations_forwarded: Vec::new(),
            compression: None,
            tls: None,
        }
    }

    /// Folds one event of this session into the report (all but `timing`, which its
    /// [`Tracker`](crate::report::timing::Tracker) keeps).
    pub fn fold(&mut self, e: &Event) {
        match &e.kind {
            EventKind::SessionStart { replica, upstream } => {
                self.replica.clone_from(replica);
                self.upstream.clone_from(upstream);
                self.started_at = e.ts;
            }
            // Pairing is the monitor's (it knows both connections); this one's part is noted.
            EventKind::Compression { codec, level } => {
                self.compression = Some(CompressionReport {
                    codec: *codec,
                    level: *level,
                    frames: 0,
                    empty_frames: 0,
                    wire_bytes: 0,
                    stream_bytes: 0,
                    ratio: None,
                    largest_frame_bytes: 0,
                    largest_frame_stream_bytes: 0,
                    frame_interval_ms_mean: None,
                    frame_interval_ms_max: None,
                    frames_seen: None,
                });
            }
            EventKind::CompressedFrame {
                wire_bytes,
                stream_bytes,
            } => {
                if let Some(c) = &mut self.compression {
                    c.frames += 1;
                    c.empty_frames += u64::from(*stream_bytes == 0);
                    c.wire_bytes += wire_bytes;
                    c.stream_bytes += stream_bytes;
                    c.ratio =
                        (c.wire_bytes > 0).then(|| c.stream_bytes as f64 / c.wire_bytes as f64);
                    c.largest_frame_bytes = c.largest_frame_bytes.max(*wire_bytes);
                    c.largest_frame_stream_bytes = c.largest_frame_stream_bytes.max(*stream_bytes);
                    if let Some((first, last)) = c.frames_seen {
                        let gap = ms(last, e.ts);
                        c.frame_interval_ms_max =
                            Some(c.frame_interval_ms_max.unwrap_or(0.0).max(gap));
                        c.frame_interval_ms_mean = Some(ms(first, e.ts) / (c.frames - 1) as f64);
                    }
                    let first = c.frames_seen.map_or(e.ts, |(first, _)| first);
                    c.frames_seen = Some((first, e.ts));
                }
            }
            EventKind::Channel { channel, link } => {
                if self.channels.iter().all(|c| c.session != self.id) {
                    self.channels.push(ChannelReport {
                        role: *channel,
                        session: self.id,
                        link: *link,
                        replica: self.replica.clone(),
                        upstream: self.upstream.clone(),
                        started_at: self.started_at,
                        ended_at: None,
                        end_reason: None,
                        bytes: ByteCounts::default(),
                    });
                }
            }
            EventKind::Role { role } => {
                if *role != Role::Undetermined {
                    self.kind = *role;
                }
            }
            EventKind::Request { name, args } => {
                if matches!(name.as_bytes(), b"PSYNC" | b"SYNC") && self.timeline.is_none() {
                    // The sync request ends the handshake; what the answer makes of it is
                    // seen later (a partial resync has no timeline).
                    self.timeline = Some(Timeline::begun(self.started_at, e.ts));
                }
                self.observe_request(name.as_str(), args)
            }
            EventKind::Reply { reply, .. } => {
                if reply.starts_with('-') && self.handshake.errors.len() < MAX_LISTED {
                    self.handshake.errors.push(reply.clone());
                }
            }
            EventKind::KeepAlive { dir } => {
                match dir {
                    Direction::MasterToReplica => self.keepalives.master_to_replica += 1,
                    Direction::ReplicaToMaster => self.keepalives.replica_to_master += 1,
                }
                self.timeline_keepalive(*dir);
            }
            EventKind::SyncStart {
                sync,
                replid,
                offset,
            } => {
                let (kind, mode, start) = match sync {
                    SyncKind::Full => (
                        SyncType::Full,
                        SyncMode::Psync,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::Partial => (SyncType::Partial, SyncMode::Psync, *offset),
                    SyncKind::Sync => (SyncType::Full, SyncMode::Sync, None),
                    SyncKind::RdbChannel => (
                        SyncType::Full,
                        SyncMode::RdbChannel,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::DualChannel => (
                        SyncType::Full,
                        SyncMode::DualChannel,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::SlotStream => (
                        SyncType::Slots,
                        SyncMode::SlotStream,
                        offset.map(|o| o.saturating_add(1)),
                    ),
                    SyncKind::SlotSnapshot => (SyncType::Slots, SyncMode::SlotSnapshot, None),
                };
                // A two-connection sync is said twice (answered, then anchored): it was
                // answered at the first.
                if self.sync.mode != Some(mode) || self.sync.at.is_none() {
                    self.sync.at = Some(e.ts);
                }
                match kind {
                    // No PSYNC seen (a capture that began after it): the answer is the best
                    // marker there is.
                    SyncType::Full if self.timeline.is_none() => {
                        self.timeline = Some(Timeline::begun(self.started_at, e.ts));
                    }
                    SyncType::Full => {}
                    _ => self.timeline = None,
                }
                self.sync.kind = kind;
                self.sync.mode = Some(mode);
                self.sync.replid.clone_from(replid);
                self.sync.offset = *offset;
                self.sync.rejected = None;
                self.offsets.start = start;
                if *sync == SyncKind::Partial {
                    self.offsets.end = offset.map(|o| o.saturating_sub(1));
                }
            }
            EventKind::Why {
                reason,
                gap_bytes,
                message,
            } => {
                self.sync.reason = Some(ReasonReport {
                    code: *reason,
                    gap_bytes: *gap_bytes,
                    message: message.clone(),
                });
            }
            EventKind::SyncRejected { reply } => {
                self.sync.rejected = Some(reply.clone());
                self.timeline = None;
            }
            EventKind::RdbEnd { .. } => {
                self.fold_rdb(e);
                if self.offsets.start.is_some() {
                    self.offsets.end = self.offsets.start.map(|s| s.saturating_sub(1));
                }
            }
            EventKind::RdbStart { .. }
            | EventKind::RdbHeader { .. }
            | EventKind::RdbContents { .. }
            | EventKind::RdbAborted { .. }
            | EventKind::Status { rdb: Some(_), .. } => self.fold_rdb(e),
            EventKind::Command {
                end,
                name,
                sub,
                db,
                bytes,
                ..
            } => {
                self.count(name.as_str(), *bytes);
                self.stream.commands += 1;
                self.stream.db = *db;
                let ledger = &mut self.stream.ledger;
                match name.as_bytes() {
                    b"PING" => {
                        self.stream.pings += 1;
                        ledger.ping += bytes;
                    }
                    b"EXEC" => {
                        self.stream.transactions += 1;
                        ledger.multi_exec += bytes;
                    }
                    b"MULTI" => ledger.multi_exec += bytes,
                    b"SELECT" => ledger.select += bytes,
                    b"REPLCONF" if sub.is_some_and(|s| s.is("GETACK")) => {
                        self.stream.getacks += 1;
                        ledger.getack += bytes;
                    }
                    _ => ledger.data += bytes,
                }
                if let Some(t) = self
                    .timeline
                    .as_mut()
                    .filter(|t| t.phase == SyncPhase::Loading)
                {
                    // Commands of one read share its timestamp.
                    if t.marks.last_read.is_none_or(|(read, _)| read != e.ts) {
                        t.marks.last_read = Some((e.ts, self.offsets.end));
                    }
                }
                if end.is_some() {
                    self.offsets.end = *end;
                }
            }
            EventKind::ClientCommand { name, bytes } => self.count(name.as_str(), *bytes),
            EventKind::MigratedCommand { name, bytes, .. } => {
                self.count(name.as_str(), *bytes);
                self.fold_migration(e);
            }
            // The monitor's: it names nodes across sessions.
            EventKind::ClusterNode { .. } => {}
            EventKind::MigrationStart { .. }
            | EventKind::Migration { .. }
            | EventKind::MigrationRefused { .. }
            | EventKind::MigrationFinish { .. } => self.fold_migration(e),
            EventKind::Ack { offset, fack } => {
                self.acks += 1;
                self.offsets.acked = Some(*offset);
                if fack.is_some() {
                    self.offsets.fsynced = *fack;
                }
                self.timeline_ack(e.ts, *offset);
            }
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            } => self.add_desync(e.session, *dir, *position, *offset, reason.clone()),
            EventKind::JoinedLate { .. } => self.joined_late = true,
            EventKind::Encrypted { version, sni } => {
                self.tls = Some(TlsReport {
                    analysed: false,
                    version: *version,
                    sni: sni.clone(),
                });
            }
            EventKind::Resumed { .. } => self.resumed(e),
            EventKind::Anchored { offset } => {
                // Joined late, the stream starts where the anchor says; anchored again after a
                // compressed stream's loss, it started where its handshake said.
                let l = &self.stream.ledger;
                let seen = l.data + l.ping + l.getack + l.select + l.multi_exec;
                let start = offset.saturating_add(1).saturating_sub(seen);
                self.offsets.start = self.offsets.start.or(Some(start));
                self.offsets.end = Some(*offset);
            }
            EventKind::Warning { .. } | EventKind::Status { .. } => {}
            EventKind::SessionEnd {
                reason,
                bytes_to_master,
                bytes_to_replica,
                stream_bytes,
                offset_end,
            } => {
                self.ended_at = Some(e.ts);
                self.end_reason = Some(reason.clone());
                self.bytes.to_master = *bytes_to_master;
                self.bytes.to_replica = *bytes_to_replica;
                self.stream.bytes = *stream_bytes;
                self.offsets.end = *offset_end;
                self.channel_ended(e);
                if let Some(m) = &mut self.migration {
                    m.outcome = match m.outcome {
                        MigrationOutcome::InProgress => MigrationOutcome::LinkLost,
                        done => done,
                    };
                    if m.duration_ms.is_none() {
                        m.duration_ms = Some(ms(m.started_at, e.ts));
                    }
                }
            }
        }
    }

    /// A keep-alive: the master's while it prepares the RDB, the replica's while it loads.
    fn timeline_keepalive(&mut self, dir: Direction) {
        let Some(t) = &mut self.timeline else { return };
        match (dir, t.phase) {
            (Direction::MasterToReplica, SyncPhase::Preparing) => t.bgsave_keepalives += 1,
            (Direction::ReplicaToMaster, SyncPhase::Loading) => t.load_keepalives += 1,
            _ => {}
        }
    }

    /// An ACK after the RDB: the first ends the load and measures what was buffered; the one
    /// that reaches what was forwarded by then ends the catch-up.
    fn timeline_ack(&mut self, at: Timestamp, offset: u64) {
        let Some(t) = &mut self.timeline else { return };
        if t.phase == SyncPhase::Loading {
            t.marks.loaded = Some(at);
            // A read forwarded just before the ACK crossed it on the wire: the replica had
            // not seen it, and it is the live stream, not what the master buffered.
            t.marks.target = match t.marks.last_read {
                Some((read, before)) if at.since(read) < CROSSING => before,
                _ => self.offsets.end,
            };
            if let (Some(start), Some(end)) = (self.offsets.start, t.marks.target) {
                t.buffered_bytes = Some(end.saturating_add(1).saturating_sub(start));
            }
        }
        let reached = t.marks.target.is_none_or(|target| offset >= target);
        if t.phase >= SyncPhase::Loading && t.marks.caught_up.is_none() && reached {
            t.marks.caught_up = Some(at);
        }
        t.settle();
    }

    /// The analysis of a direction of `e`'s connection went on: every gap on it since it last
    /// did (one after another while it looked for a command) ends here. A desync that stopped
    /// the analysis is never followed by this.
    fn resumed(&mut self, e: &Event) {
        let EventKind::Resumed {
            dir,
            position,
            offset,
            passed,
        } = &e.kind
        else {
            return;
        };
        let ours = |d: &DesyncReport| d.session == e.session && d.direction == *dir;
        let open = self.desyncs.iter_mut().rev();
        for d in open.take_while(|d| !ours(d) || d.resumed.is_none()) {
            if ours(d) {
                d.resumed = Some(ResumedReport {
                    position: *position,
                    offset: *offset,
                    passed: *passed,
                });
            }
        }
    }

    fn add_desync(
        &mut self,
        session: u64,
        direction: Direction,
        position: u64,
        offset: Option<u64>,
        reason: String,
    ) {
        if self.desync.is_none() {
            let at = offset.map_or(format!("byte {position}"), |o| format!("offset {o}"));
            self.desync = Some(format!("{} at {at}: {reason}", direction.as_str()));
        }
        self.desync_count += 1;
        if self.desyncs.len() < MAX_LISTED {
            self.desyncs.push(DesyncReport {
                session,
                direction,
                position,
                offset,
                reason,
                resumed: None,
            });
        }
    }

    fn observe_request(&mut self, name: &str, args: &[String]) {
        // A health-check client that only PINGs stays "in the handshake" forever: bounded.
        if self.handshake.requests.len() < MAX_LISTED {
            let mut line = name.to_string();
            for a in args {
                line.push(' ');
                line.push_str(a);
            }
            self.handshake.requests.push(line);
        }
        match name {
            "AUTH" => {
                self.handshake.auth = true;
                if args.len() == 2 {
                    self.handshake.auth_user = Some(args[0].clone());
                }
            }
            // A dual-channel main connection's second PSYNC only fetches the stream.
            "PSYNC" if self.sync.mode != Some(SyncMode::DualChannel) => {
                self.sync.requested = Some(args.join(" "));
            }
            "REPLCONF" => {
                for pair in args.chunks(2) {
                    let [key, value] = pair else { continue };
                    match key.to_ascii_lowercase().as_str() {
                        "listening-port" => self.handshake.listening_port = value.parse().ok(),
                        "ip-address" => self.handshake.ip_address = Some(value.clone()),
                        "capa" => self.handshake.capa.push(value.clone()),
                        other => {
                            if self.handshake.options.len() < MAX_LISTED {
                                let value = value.clone();
                                self.handshake.options.insert(other.to_string(), value);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn count(&mut self, name: &str, bytes: u64) {
        // A lookup before the insert: no allocation per command once a name is known.
        if let Some(c) = self.commands.get_mut(name) {
            c.count += 1;
            c.bytes += bytes;
        } else {
            let name = if self.commands.len() < MAX_COMMAND_NAMES {
                name
            } else {
                "OTHER"
            };
            let c = self.commands.entry(name.to_string()).or_default();
            c.count += 1;
            c.bytes += bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(session: u64, kind: EventKind) -> Event {
        let ts = Timestamp(1);
        Event { session, ts, kind }
    }

    fn gap(position: u64) -> EventKind {
        EventKind::Desync {
            dir: Direction::MasterToReplica,
            position,
            offset: None,
            reason: "bytes were not analysed".into(),
        }
    }

    /// A two-connection sync's report lists both connections' desyncs: the main connection's
    /// resumption ends its own gaps, never the RDB connection's.
    #[test]
    fn a_resumption_ends_the_gaps_of_its_own_connection_only() {
        let mut report = SessionReport::new(1, Timestamp(0));
        report.fold(&event(1, gap(10)));
        report.fold_partner(&event(2, gap(20)));
        report.fold(&event(1, gap(30)));
        let resumed = EventKind::Resumed {
            dir: Direction::MasterToReplica,
            position: 40,
            offset: None,
            passed: 5,
        };
        report.fold(&event(1, resumed));

        let ended: Vec<(u64, bool)> = (report.desyncs.iter())
            .map(|d| (d.position, d.resumed.is_some()))
            .collect();
        assert_eq!(ended, [(10, true), (20, false), (30, true)]);
        assert_eq!(report.desync_count, 3);
    }
}
