//! Prometheus text exposition of a run's sessions (`--metrics`, `GET /metrics`).
//!
//! Names follow Prometheus conventions (`repl_sniff_` prefix, `_total` counters, base units
//! `_bytes` and `_seconds`). Labels are bounded: `command` takes at most
//! [`crate::report::timing::MAX_NAMES`] values per session plus `OTHER`; per-link gauges exist only
//! for live links, labelled by the replica's host and listening port (never its ephemeral
//! source port, which changes with every reconnect).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::analyzer::event::{Role, WarningKind};
use crate::analyzer::input::Timestamp;
use crate::report::fold::CaptureStats;
use crate::report::fold::{MigrationOutcome, SyncPhase, SyncType};
use crate::report::history::{History, ReplicaHistory};
use crate::report::monitor::Snapshot;
use crate::report::timing::Hist;
use crate::report::SessionReport;

#[derive(Default)]
struct Totals {
    syncs: BTreeMap<&'static str, u64>,
    commands: BTreeMap<String, (u64, u64)>,
    latency: BTreeMap<String, Hist>,
    heartbeats: BTreeMap<&'static str, Hist>,
    rdb_bytes: u64,
    rdb_seconds: f64,
    rdb_transfers: u64,
    desyncs: u64,
    warnings: BTreeMap<&'static str, u64>,
    migrations: BTreeMap<&'static str, u64>,
    migrated_keys: u64,
    migrated_bytes: [u64; 2],
    migration_paused_seconds: f64,
    migration_seconds: f64,
    /// Compressed streams: frames, their wire bytes, the stream bytes they carried.
    compressed: [u64; 3],
}

fn add_hist(map: &mut BTreeMap<String, Hist>, key: &str, h: &Hist) {
    map.entry(key.to_string())
        .or_insert_with(Hist::micros)
        .add(h);
}

impl Totals {
    fn add(&mut self, s: &SessionReport) {
        if s.kind != Role::Client && s.sync.kind != SyncType::None {
            *self.syncs.entry(s.sync.kind.as_str()).or_default() += 1;
        }
        for (name, c) in &s.commands {
            let e = self.commands.entry(name.clone()).or_default();
            e.0 += c.count;
            e.1 += c.bytes;
        }
        for (name, t) in &s.timing.commands {
            add_hist(&mut self.latency, name, &t.ack_latency_us);
        }
        let hb = &s.timing.heartbeats;
        for (kind, h) in [
            ("master_ping", &hb.master_ping_interval_us),
            ("replica_ack", &hb.replica_ack_interval_us),
            ("master_keepalive", &hb.master_keepalive_interval_us),
            ("replica_keepalive", &hb.replica_keepalive_interval_us),
        ] {
            self.heartbeats
                .entry(kind)
                .or_insert_with(Hist::micros)
                .add(h);
        }
        if let Some(rdb) = &s.rdb {
            self.rdb_bytes += rdb.bytes;
            if rdb.complete {
                self.rdb_transfers += 1;
                self.rdb_seconds += rdb.duration_ms.unwrap_or(0.0) / 1000.0;
            }
        }
        if let Some(m) = &s.migration {
            *self.migrations.entry(m.outcome.as_str()).or_default() += 1;
            self.migrated_keys += m.snapshot.keys;
            self.migrated_bytes[0] += m.snapshot.bytes;
            self.migrated_bytes[1] += m.stream.bytes;
            self.migration_paused_seconds += m.failover_ms.unwrap_or(0.0) / 1000.0;
            self.migration_seconds += m.duration_ms.unwrap_or(0.0) / 1000.0;
        }
        if let Some(c) = &s.compression {
            self.compressed[0] += c.frames;
            self.compressed[1] += c.wire_bytes;
            self.compressed[2] += c.stream_bytes;
        }
        self.desyncs += s.desync_count;
        for (kind, n) in &s.timing.warnings_by_kind {
            *self.warnings.entry(kind.as_str()).or_default() += n;
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram_seconds(out: &mut String, name: &str, labels: &str, h: &Hist) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le_us, count) in h.cumulative() {
        let le = le_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        h.count()
    );
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum() / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
}

/// A per-session gauge: name, help, and how to read it from a session's report as of the
/// snapshot's time.
type Gauge = (
    &'static str,
    &'static str,
    fn(&SessionReport, Timestamp) -> Option<f64>,
);

/// Gauges of each live replication session.
const GAUGES: [Gauge; 7] = [
    (
        "repl_sniff_stream_offset_bytes",
        "Replication offset of the last stream byte forwarded.",
        |s, _| s.offsets.end.map(|v| v as f64),
    ),
    (
        "repl_sniff_ack_offset_bytes",
        "Last offset the replica acknowledged (REPLCONF ACK).",
        |s, _| s.offsets.acked.map(|v| v as f64),
    ),
    (
        "repl_sniff_lag_bytes",
        "Forwarded minus acknowledged offset.",
        |s, _| Some(s.timing.lag_bytes as f64),
    ),
    (
        "repl_sniff_lag_seconds",
        "Age of the oldest forwarded byte not yet acknowledged.",
        |s, now| Some(s.timing.lag_ms_at(now) / 1000.0),
    ),
    (
        "repl_sniff_max_lag_bytes",
        "Largest lag seen in this session.",
        |s, _| Some(s.timing.max_lag_bytes as f64),
    ),
    (
        "repl_sniff_rdb_transfer_bytes",
        "RDB payload bytes of the link's transfer so far (it moves during the transfer).",
        |s, _| s.rdb.as_ref().map(|r| r.bytes as f64),
    ),
    (
        "repl_sniff_rdb_transfer_size_bytes",
        "The RDB's announced length (disk-based transfers; a diskless one says it at its end).",
        |s, _| {
            s.rdb
                .as_ref()
                .and_then(|r| r.declared_bytes)
                .map(|v| v as f64)
        },
    ),
];

/// Renders every metric.
pub fn render(run: &Snapshot<'_>) -> String {
    let mut totals = Totals::default();
    for s in run.ended.iter().chain(&run.live) {
        totals.add(s);
    }
    let mut out = String::new();
    sessions(&mut out, run);
    counter(
        &mut out,
        "repl_sniff_upstream_connect_failures_total",
        "Accepted connections closed because the upstream was unreachable.",
        run.upstream_connect_failures,
    );
    header(
        &mut out,
        "repl_sniff_syncs_total",
        "counter",
        "Syncs granted by the master, by type.",
    );
    for t in [SyncType::Full, SyncType::Partial] {
        let t = t.as_str();
        let n = totals.syncs.get(t).copied().unwrap_or(0);
        let _ = writeln!(out, "repl_sniff_syncs_total{{type=\"{t}\"}} {n}");
    }
    gauges(&mut out, &run.live, run.now);
    commands(&mut out, &totals);
    histograms(&mut out, &totals);
    counter(
        &mut out,
        "repl_sniff_rdb_bytes_total",
        "RDB payload bytes transferred (transfers under way included, as they go).",
        totals.rdb_bytes,
    );
    counter(
        &mut out,
        "repl_sniff_rdb_transfers_total",
        "Complete RDB transfers.",
        totals.rdb_transfers,
    );
    counter(
        &mut out,
        "repl_sniff_rdb_transfer_seconds_total",
        "Time spent in complete RDB transfers.",
        totals.rdb_seconds,
    );
    counter(
        &mut out,
        "repl_sniff_desyncs_total",
        "Times the analysis of a direction lost track (bytes still forwarded).",
        totals.desyncs,
    );
    header(
        &mut out,
        "repl_sniff_warnings_total",
        "counter",
        "Warnings raised, by kind.",
    );
    for kind in [
        WarningKind::Lag,
        WarningKind::MasterSilent,
        WarningKind::AckBackwards,
        WarningKind::AckAhead,
        WarningKind::Unpaired,
        WarningKind::FullSyncLoop,
        WarningKind::CobLimit,
        WarningKind::Rdb,
        WarningKind::RdbVersion,
        WarningKind::WireFormat,
        WarningKind::AuthFailed,
    ] {
        let kind = kind.as_str();
        let n = totals.warnings.get(kind).copied().unwrap_or(0);
        let _ = writeln!(out, "repl_sniff_warnings_total{{kind=\"{kind}\"}} {n}");
    }
    migrations(&mut out, &totals);
    compression(&mut out, &totals);
    replicas(&mut out, &run.replicas);
    out
}

/// Compressed streams (Redis `repl-compression`): what they cost on the wire. The ratio is
/// `rate(stream) / rate(wire)`.
fn compression(out: &mut String, totals: &Totals) {
    let [frames, wire, stream] = totals.compressed;
    let about = [
        ("frames", "Compressed stream frames seen whole.", frames),
        ("wire_bytes", "Bytes on the wire of those frames.", wire),
        (
            "stream_bytes",
            "Stream bytes those frames carried (what offsets count).",
            stream,
        ),
    ];
    for (what, help, n) in about {
        counter(out, &format!("repl_sniff_compressed_{what}_total"), help, n);
    }
}

/// Valkey slot migrations seen on their links (the source pushing to the target).
fn migrations(out: &mut String, totals: &Totals) {
    header(
        out,
        "repl_sniff_slot_migrations_total",
        "counter",
        "Valkey slot migrations by how they ended (in_progress: the link is still open).",
    );
    for outcome in [
        MigrationOutcome::Finished,
        MigrationOutcome::LinkLost,
        MigrationOutcome::Refused,
        MigrationOutcome::InProgress,
    ] {
        let o = outcome.as_str();
        let n = totals.migrations.get(o).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "repl_sniff_slot_migrations_total{{outcome=\"{o}\"}} {n}"
        );
    }
    counter(
        out,
        "repl_sniff_slot_migration_keys_total",
        "Keys moved by slot migrations' snapshots.",
        totals.migrated_keys,
    );
    header(
        out,
        "repl_sniff_slot_migration_bytes_total",
        "counter",
        "Bytes slot migrations pushed: the snapshot, and the slots' writes after it.",
    );
    for (part, n) in ["snapshot", "stream"].iter().zip(totals.migrated_bytes) {
        let _ = writeln!(
            out,
            "repl_sniff_slot_migration_bytes_total{{part=\"{part}\"}} {n}"
        );
    }
    counter(
        out,
        "repl_sniff_slot_migration_paused_seconds_total",
        "Time writes to migrating slots waited (REQUEST-PAUSE to FAILOVER-GRANTED).",
        totals.migration_paused_seconds,
    );
    counter(
        out,
        "repl_sniff_slot_migration_seconds_total",
        "Time slot migrations took (ESTABLISH to FAILOVER-GRANTED, or to the link's end).",
        totals.migration_seconds,
    );
}

/// Per replica (host and listening port), over its links: the indicators replication
/// dashboards track.
fn replicas(out: &mut String, replicas: &[ReplicaHistory]) {
    type Counter = (&'static str, &'static str, fn(&ReplicaHistory) -> u64);
    const COUNTERS: [Counter; 5] = [
        (
            "repl_sniff_replica_reconnects_total",
            "Links of a replica after its first.",
            |r| r.reconnects,
        ),
        (
            "repl_sniff_replica_full_syncs_total",
            "Full syncs of a replica.",
            |r| r.full_syncs,
        ),
        (
            "repl_sniff_replica_partial_syncs_total",
            "Partial syncs of a replica.",
            |r| r.partial_syncs,
        ),
        (
            "repl_sniff_replica_errors_total",
            "Handshake errors, refusals and desyncs of a replica.",
            |r| r.errors,
        ),
        (
            "repl_sniff_replica_dropped_full_syncs_total",
            "Full syncs of a replica whose link ended before it was online.",
            |r| r.dropped_full_syncs,
        ),
    ];
    for (name, help, get) in COUNTERS {
        header(out, name, "counter", help);
        for r in replicas {
            let _ = writeln!(
                out,
                "{name}{{replica=\"{}\"}} {}",
                escape(&r.replica),
                get(r)
            );
        }
    }
}

/// A counter without labels.
fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Sessions by kind and state.
fn sessions(out: &mut String, run: &Snapshot<'_>) {
    let mut by_kind: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    for (list, state) in [(&run.ended, "ended"), (&run.live, "live")] {
        for s in list.iter() {
            *by_kind.entry((s.kind.as_str(), state)).or_default() += 1;
        }
    }
    header(
        out,
        "repl_sniff_sessions",
        "gauge",
        "Sessions by kind and state (ended ones are those still in the report).",
    );
    for kind in [
        Role::Replication,
        Role::Sync,
        Role::SlotMigration,
        Role::ClusterBus,
        Role::Client,
    ] {
        let kind = kind.as_str();
        for state in ["live", "ended"] {
            let n = by_kind.get(&(kind, state)).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "repl_sniff_sessions{{kind=\"{kind}\",state=\"{state}\"}} {n}"
            );
        }
    }
}

/// Per-link gauges of the live replication links, labelled by the replica alone (its host and
/// listening port, which a reconnect keeps): one series per replica, however often it
/// reconnects. Should one replica have two live links, the newer one is shown.
fn gauges(out: &mut String, live: &[&SessionReport], now: Timestamp) {
    let mut links: BTreeMap<String, &SessionReport> = BTreeMap::new();
    for s in live.iter().filter(|s| s.kind != Role::Client) {
        links.insert(History::key(s), s);
    }
    for (name, help, get) in GAUGES {
        header(out, name, "gauge", help);
        for (replica, s) in &links {
            if let Some(v) = get(s, now) {
                let _ = writeln!(out, "{name}{{replica=\"{}\"}} {v}", escape(replica));
            }
        }
    }
    let name = "repl_sniff_sync_phase";
    let help = "1 for the phase the replica's sync is in (handshake, preparing, transfer, \
                loading, catch_up, online), 0 for the others.";
    header(out, name, "gauge", help);
    for (replica, s) in &links {
        let now = match (&s.timeline, s.sync.kind) {
            (Some(t), _) => t.phase,
            (None, SyncType::None) => SyncPhase::Handshake,
            (None, _) => SyncPhase::Online,
        };
        for phase in SyncPhase::ALL {
            let v = u8::from(phase == now);
            let (replica, phase) = (escape(replica), phase.as_str());
            let _ = writeln!(out, "{name}{{replica=\"{replica}\",phase=\"{phase}\"}} {v}");
        }
    }
}

/// Command counts and bytes by name.
fn commands(out: &mut String, totals: &Totals) {
    header(
        out,
        "repl_sniff_commands_total",
        "counter",
        "Commands by name: the replication stream, or what clients sent.",
    );
    for (name, (count, _)) in &totals.commands {
        let name = escape(name);
        let _ = writeln!(
            out,
            "repl_sniff_commands_total{{command=\"{name}\"}} {count}"
        );
    }
    header(
        out,
        "repl_sniff_command_bytes_total",
        "counter",
        "Bytes of commands by name.",
    );
    for (name, (_, bytes)) in &totals.commands {
        let name = escape(name);
        let _ = writeln!(
            out,
            "repl_sniff_command_bytes_total{{command=\"{name}\"}} {bytes}"
        );
    }
}

/// Ack latency by command and heartbeat intervals by kind.
fn histograms(out: &mut String, totals: &Totals) {
    let name = "repl_sniff_ack_latency_seconds";
    let help = "From forwarding a stream command to the first REPLCONF ACK covering it.";
    header(out, name, "histogram", help);
    for (command, h) in &totals.latency {
        histogram_seconds(out, name, &format!("command=\"{}\"", escape(command)), h);
    }
    let name = "repl_sniff_heartbeat_interval_seconds";
    let help = "Intervals between master PINGs, replica ACKs and keep-alives.";
    header(out, name, "histogram", help);
    for (kind, h) in &totals.heartbeats {
        histogram_seconds(out, name, &format!("kind=\"{kind}\""), h);
    }
}

/// `sniff`'s capture counters, appended to the rest.
pub fn capture(stats: &CaptureStats) -> String {
    let mut out = String::new();
    counter(
        &mut out,
        "repl_sniff_capture_packets_total",
        "Packets the live capture's filter let through.",
        stats.packets,
    );
    counter(
        &mut out,
        "repl_sniff_capture_kernel_drops_total",
        "Packets the kernel dropped because the capture fell behind (gaps in the analysis).",
        stats.kernel_drops,
    );
    out
}
