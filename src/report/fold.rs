//! The final report: a fold over events, per session, serialized as the `--report-json` file
//! and rendered as the summary printed at exit.
//!
//! The JSON shape is a public interface (README "Report schema"): fields are added, never
//! renamed or removed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analyzer::event::{Event, EventKind, Framing, Role, SyncKind};
use crate::analyzer::input::{Direction, Timestamp};
use crate::report::timing::{Overall, Timing};

/// Most handshake requests and errors listed per session.
pub const MAX_LISTED: usize = 64;

/// Everything repl-sniff saw in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always `"repl-sniff"`.
    pub tool: &'static str,
    /// The version of repl-sniff that wrote it.
    pub version: &'static str,
    /// One entry per TCP connection, in the order they were opened.
    pub sessions: Vec<SessionReport>,
    /// Accepted connections closed because the upstream could not be reached.
    pub upstream_connect_failures: u64,
    /// Ended sessions left out because the report keeps only the most recent ones.
    pub sessions_dropped: u64,
    /// Timing over all the sessions above (per-session histograms added together).
    pub overall: Overall,
}

impl Report {
    /// A report over the given sessions.
    pub fn new(mut sessions: Vec<SessionReport>, upstream_connect_failures: u64) -> Report {
        sessions.sort_by_key(|s| s.id);
        let overall = Overall::of(sessions.iter().map(|s| &s.timing));
        Report {
            tool: "repl-sniff",
            version: env!("CARGO_PKG_VERSION"),
            sessions,
            upstream_connect_failures,
            sessions_dropped: 0,
            overall,
        }
    }

    /// The human-readable summary printed at exit.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "repl-sniff summary: {} session(s)",
            self.sessions.len()
        );
        if self.upstream_connect_failures > 0 {
            let _ = writeln!(
                out,
                "  {} connection(s) closed because the upstream was unreachable",
                self.upstream_connect_failures
            );
        }
        for s in &self.sessions {
            out.push_str(&s.summary());
        }
        out
    }
}

/// What happened on one connection.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// Session id (order of acceptance).
    pub id: u64,
    /// `"replication"` (sent PSYNC), `"sync"` (legacy SYNC, e.g. redis-cli --replica/--rdb)
    /// or `"client"` (anything else): the session's [`Role`], as its events said.
    pub kind: Role,
    /// The connecting side's address.
    pub replica: String,
    /// The upstream's address.
    pub upstream: String,
    /// When the connection was accepted.
    pub started_at: Timestamp,
    /// When it ended (null while live).
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The replica's handshake.
    pub handshake: HandshakeReport,
    /// The master's sync decision.
    pub sync: SyncReport,
    /// The RDB transfer, if there was one.
    pub rdb: Option<RdbReport>,
    /// Replication offsets.
    pub offsets: OffsetsReport,
    /// The replication stream.
    pub stream: StreamReport,
    /// Per command name (upper case): stream commands of a replication/sync session, or the
    /// commands a client sent.
    pub commands: BTreeMap<String, CommandCount>,
    /// `REPLCONF ACK`s received from the replica.
    pub acks: u64,
    /// Bare `\n` keep-alives per direction.
    pub keepalives: KeepAlives,
    /// Bytes forwarded per direction.
    pub bytes: ByteCounts,
    /// Null, or why the analysis lost track (the first desync, with direction and offset).
    pub desync: Option<String>,
    /// Every desync, in detail.
    pub desyncs: Vec<DesyncReport>,
    /// Returns true if and only if the capture began after the connection did (replay only).
    pub joined_late: bool,
    /// Ack latency, heartbeat intervals, lag, throughput and warnings (README "Timing").
    pub timing: Timing,
}

/// The replica's handshake as seen on the wire.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HandshakeReport {
    /// Each handshake command, with `AUTH` passwords redacted (the first 64).
    pub requests: Vec<String>,
    /// `REPLCONF listening-port`.
    pub listening_port: Option<u16>,
    /// `REPLCONF ip-address`.
    pub ip_address: Option<String>,
    /// Every `capa` announced.
    pub capa: Vec<String>,
    /// Returns true if and only if the replica sent `AUTH`.
    pub auth: bool,
    /// The `AUTH` username, for the two-argument form (never the password).
    pub auth_user: Option<String>,
    /// Error answers from the master during the handshake (the first 64).
    pub errors: Vec<String>,
}

/// The master's sync decision.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// `"full"`, `"partial"` or `"none"`.
    #[serde(rename = "type")]
    pub kind: SyncType,
    /// How it was asked for and delivered: `"psync"`, `"sync"` (legacy) or `"rdb_channel"`.
    pub mode: Option<SyncMode>,
    /// The master's replication id.
    pub replid: Option<String>,
    /// The `+FULLRESYNC` offset, or the `PSYNC` offset for a partial sync.
    pub offset: Option<u64>,
    /// The replica's `PSYNC` arguments.
    pub requested: Option<String>,
    /// The master's refusal, if it refused.
    pub rejected: Option<String>,
    /// When the master answered.
    pub at: Option<Timestamp>,
}

/// What the master gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncType {
    /// An RDB, then the stream.
    Full,
    /// The stream from the replica's offset (`+CONTINUE`).
    Partial,
    /// No sync (a client, a refusal, a handshake cut short).
    None,
}

impl SyncType {
    /// The name used in the report and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncType::Full => "full",
            SyncType::Partial => "partial",
            SyncType::None => "none",
        }
    }
}

/// How a sync was asked for and delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// `PSYNC`, the RDB (if any) on the same connection.
    Psync,
    /// Legacy `SYNC`.
    Sync,
    /// `PSYNC` answered `+RDBCHANNELSYNC`: the RDB comes on another connection (Redis 8).
    RdbChannel,
}

impl SyncMode {
    /// The name used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Psync => "psync",
            SyncMode::Sync => "sync",
            SyncMode::RdbChannel => "rdb_channel",
        }
    }
}

/// An RDB transfer.
#[derive(Debug, Clone, Serialize)]
pub struct RdbReport {
    /// `"disk"` or `"diskless"`.
    pub framing: Framing,
    /// RDB payload bytes (framing and EOF marks excluded).
    pub bytes: u64,
    /// The announced length (disk framing).
    pub declared_bytes: Option<u64>,
    /// When the framing line arrived.
    pub started_at: Timestamp,
    /// From the framing line to the last byte, when complete.
    pub duration_ms: Option<f64>,
    /// Returns true if and only if the whole payload was seen.
    pub complete: bool,
    /// What the RDB contains, parsed as it streamed by.
    pub contents: Option<crate::protocol::rdb::Summary>,
}

/// Replication offsets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OffsetsReport {
    /// Offset of the first stream byte.
    pub start: Option<u64>,
    /// Offset of the last stream byte forwarded.
    pub end: Option<u64>,
    /// The last `REPLCONF ACK` offset.
    pub acked: Option<u64>,
    /// The last `FACK` offset (Redis ≥ 7.2 replicas with AOF).
    pub fsynced: Option<u64>,
}

/// The replication stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    /// Bytes that count in the offset.
    pub bytes: u64,
    /// Commands parsed.
    pub commands: u64,
    /// `MULTI`…`EXEC` blocks.
    pub transactions: u64,
    /// Master `PING`s.
    pub pings: u64,
    /// `REPLCONF GETACK`s.
    pub getacks: u64,
    /// The database selected last.
    pub db: Option<u32>,
}

/// Count and wire bytes of one command name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommandCount {
    /// How many.
    pub count: u64,
    /// Their total size on the wire.
    pub bytes: u64,
}

/// Keep-alive counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeepAlives {
    /// Sent by the master (before `+FULLRESYNC` and while a disk BGSAVE runs).
    pub master_to_replica: u64,
    /// Sent by the replica (while it flushes or loads).
    pub replica_to_master: u64,
}

/// Bytes per direction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ByteCounts {
    /// Sent by the replica.
    pub to_master: u64,
    /// Sent by the master.
    pub to_replica: u64,
}

/// One desync.
#[derive(Debug, Clone, Serialize)]
pub struct DesyncReport {
    /// Which direction.
    pub direction: Direction,
    /// Byte position in that direction.
    pub position: u64,
    /// Replication offset, when in the stream.
    pub offset: Option<u64>,
    /// What was wrong.
    pub reason: String,
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
            joined_late: false,
            timing: Timing::new(),
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
            EventKind::Role { role } => {
                if *role != Role::Undetermined {
                    self.kind = *role;
                }
            }
            EventKind::Request { name, args } => self.observe_request(name.as_str(), args),
            EventKind::Reply { reply, .. } => {
                if reply.starts_with('-') && self.handshake.errors.len() < MAX_LISTED {
                    self.handshake.errors.push(reply.clone());
                }
            }
            EventKind::KeepAlive { dir } => match dir {
                Direction::MasterToReplica => self.keepalives.master_to_replica += 1,
                Direction::ReplicaToMaster => self.keepalives.replica_to_master += 1,
            },
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
                    SyncKind::RdbChannel => (SyncType::Full, SyncMode::RdbChannel, None),
                };
                self.sync.kind = kind;
                self.sync.mode = Some(mode);
                self.sync.replid.clone_from(replid);
                self.sync.offset = *offset;
                self.sync.at = Some(e.ts);
                self.sync.rejected = None;
                self.offsets.start = start;
                if *sync == SyncKind::Partial {
                    self.offsets.end = offset.map(|o| o.saturating_sub(1));
                }
            }
            EventKind::SyncRejected { reply } => {
                self.sync.rejected = Some(reply.clone());
            }
            EventKind::RdbStart {
                framing,
                declared_bytes,
            } => {
                self.rdb = Some(RdbReport {
                    framing: *framing,
                    bytes: 0,
                    declared_bytes: *declared_bytes,
                    started_at: e.ts,
                    duration_ms: None,
                    complete: false,
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
                if self.offsets.start.is_some() {
                    self.offsets.end = self.offsets.start.map(|s| s.saturating_sub(1));
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
                match name.as_str() {
                    "PING" => self.stream.pings += 1,
                    "EXEC" => self.stream.transactions += 1,
                    "REPLCONF" if sub.is_some_and(|s| s.is("GETACK")) => self.stream.getacks += 1,
                    _ => {}
                }
                if end.is_some() {
                    self.offsets.end = *end;
                }
            }
            EventKind::ClientCommand { name, bytes } => self.count(name.as_str(), *bytes),
            EventKind::Ack { offset, fack } => {
                self.acks += 1;
                self.offsets.acked = Some(*offset);
                if fack.is_some() {
                    self.offsets.fsynced = *fack;
                }
            }
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            } => {
                if self.desync.is_none() {
                    let at = offset.map_or(format!("byte {position}"), |o| format!("offset {o}"));
                    self.desync = Some(format!("{} at {at}: {reason}", dir.as_str()));
                }
                self.desyncs.push(DesyncReport {
                    direction: *dir,
                    position: *position,
                    offset: *offset,
                    reason: reason.clone(),
                });
            }
            EventKind::JoinedLate { .. } => self.joined_late = true,
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
            }
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
            "PSYNC" => {
                self.sync.requested = Some(args.join(" "));
            }
            "REPLCONF" => {
                for pair in args.chunks(2) {
                    let [key, value] = pair else { continue };
                    match key.to_ascii_lowercase().as_str() {
                        "listening-port" => self.handshake.listening_port = value.parse().ok(),
                        "ip-address" => self.handshake.ip_address = Some(value.clone()),
                        "capa" => self.handshake.capa.push(value.clone()),
                        _ => {}
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
            let c = self.commands.entry(name.to_string()).or_default();
            c.count += 1;
            c.bytes += bytes;
        }
    }

    /// A few human-readable lines about this session.
    pub fn summary(&self) -> String {
        let mut o = String::new();
        let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let _ = writeln!(
            o,
            "session {} [{}] {} -> {}{}",
            self.id,
            self.kind.as_str(),
            self.replica,
            self.upstream,
            self.end_reason
                .as_ref()
                .map_or(String::new(), |r| format!(" (ended: {r})"))
        );
        if self.kind != Role::Client {
            let _ = write!(o, "  sync: {}", self.sync.kind.as_str());
            if let Some(mode) = self.sync.mode {
                let _ = write!(o, " via {}", mode.as_str());
            }
            if let Some(id) = &self.sync.replid {
                let _ = write!(o, ", replid {id}");
            }
            if let Some(off) = self.sync.offset {
                let _ = write!(o, ", offset {off}");
            }
            if let Some(r) = &self.sync.rejected {
                let _ = write!(o, ", refused: {r}");
            }
            o.push('\n');
            if let Some(rdb) = &self.rdb {
                let _ = writeln!(
                    o,
                    "  rdb: {:?}, {} bytes{}{}",
                    rdb.framing,
                    rdb.bytes,
                    rdb.duration_ms
                        .map_or(String::new(), |d| format!(" in {d:.1} ms")),
                    if rdb.complete { "" } else { " (incomplete)" }
                );
            }
            let lag = match (self.offsets.end, self.offsets.acked) {
                (Some(e), Some(a)) => format!(" (lag {} bytes)", e.saturating_sub(a)),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "  offsets: start {} end {} acked {}{lag}; {} stream bytes, {} commands, {} ACKs",
                opt(self.offsets.start),
                opt(self.offsets.end),
                opt(self.offsets.acked),
                self.stream.bytes,
                self.stream.commands,
                self.acks
            );
        }
        if !self.commands.is_empty() {
            let mut top: Vec<_> = self.commands.iter().collect();
            top.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
            let shown: Vec<String> = top
                .iter()
                .take(12)
                .map(|(n, c)| format!("{n} {}", c.count))
                .collect();
            let more = if top.len() > 12 { ", …" } else { "" };
            let _ = writeln!(o, "  commands: {}{more}", shown.join(", "));
        }
        if self.kind != Role::Client {
            o.push_str(&self.timing_tables());
        }
        if let Some(d) = &self.desync {
            let _ = writeln!(o, "  DESYNC: {d}");
        }
        o
    }

    /// The ack-latency and heartbeat tables of the summary.
    fn timing_tables(&self) -> String {
        let t = &self.timing;
        let mut o = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        if !t.commands.is_empty() {
            let _ = writeln!(
                o,
                "  ack latency (ms): {} of {} commands acknowledged{}",
                t.acked_commands,
                t.acked_commands + t.unacked_commands,
                if t.heartbeats.getacks == 0 {
                    "; no GETACK seen, so latencies include the replica's 1 s ACK period"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                o,
                "    {:<16} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "command", "count", "bytes", "p50", "p90", "p99", "p99.9", "max"
            );
            let mut rows: Vec<_> = t.commands.iter().collect();
            rows.sort_by_key(|(name, _)| {
                std::cmp::Reverse(self.commands.get(*name).map_or(0, |c| c.count))
            });
            for (name, c) in rows {
                let (count, bytes) = self
                    .commands
                    .get(name)
                    .map_or((0, 0), |c| (c.count, c.bytes));
                let h = &c.ack_latency_us;
                let _ = writeln!(
                    o,
                    "    {:<16} {:>9} {:>12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    name,
                    count,
                    bytes,
                    ms(h.quantile(0.5)),
                    ms(h.quantile(0.9)),
                    ms(h.quantile(0.99)),
                    ms(h.quantile(0.999)),
                    ms(h.max())
                );
            }
        }
        let hb = &t.heartbeats;
        let rows = [
            ("master PING", &hb.master_ping_interval_us),
            ("replica ACK", &hb.replica_ack_interval_us),
            ("keep-alive M->R", &hb.master_keepalive_interval_us),
            ("keep-alive R->M", &hb.replica_keepalive_interval_us),
        ];
        if rows.iter().any(|(_, h)| h.count() > 0) {
            let _ = writeln!(
                o,
                "  heartbeat intervals (ms): {:>9} {:>9} {:>9} {:>9}   GETACKs: {}",
                "count", "p50", "p99", "max", hb.getacks
            );
            for (what, h) in rows.iter().filter(|(_, h)| h.count() > 0) {
                let _ = writeln!(
                    o,
                    "    {:<22} {:>9} {:>9.1} {:>9.1} {:>9.1}",
                    what,
                    h.count(),
                    ms(h.quantile(0.5)),
                    ms(h.quantile(0.99)),
                    ms(h.max())
                );
            }
        }
        let _ = writeln!(
            o,
            "  lag: now {} B / {:.0} ms, max {} B / {:.0} ms; {} warning(s)",
            t.lag_bytes,
            t.lag_ms,
            t.max_lag_bytes,
            t.max_lag_ms,
            t.warnings.len()
        );
        o
    }
}
