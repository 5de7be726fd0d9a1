//! Prometheus text exposition of a [`Monitor`]'s state (`--metrics`, `GET /metrics`).
//!
//! Names follow Prometheus conventions (`repl_sniff_` prefix, `_total` counters, base units
//! `_bytes` and `_seconds`). Labels are bounded: `command` takes at most
//! [`crate::report::timing::MAX_NAMES`] values per session plus `OTHER`; per-session gauges exist only
//! for live sessions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::analyzer::event::Role;
use crate::report::fold::SyncType;
use crate::report::monitor::Monitor;
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
        self.desyncs += s.desyncs.len() as u64;
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

/// A per-session gauge: name, help, and how to read it from a session's report.
type Gauge = (
    &'static str,
    &'static str,
    fn(&SessionReport) -> Option<f64>,
);

/// Renders every metric.
pub fn render(monitor: &Monitor) -> String {
    let mut totals = Totals::default();
    let mut by_kind: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    let live: Vec<&SessionReport> = monitor.live_reports().collect();
    for s in monitor.ended_reports() {
        totals.add(s);
        *by_kind.entry((s.kind.as_str(), "ended")).or_default() += 1;
    }
    for s in &live {
        totals.add(s);
        *by_kind.entry((s.kind.as_str(), "live")).or_default() += 1;
    }
    let mut out = String::new();

    header(
        &mut out,
        "repl_sniff_sessions",
        "gauge",
        "Sessions by kind and state (ended ones are those still in the report).",
    );
    for kind in ["replication", "sync", "client"] {
        for state in ["live", "ended"] {
            let n = by_kind.get(&(kind, state)).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "repl_sniff_sessions{{kind=\"{kind}\",state=\"{state}\"}} {n}"
            );
        }
    }
    header(
        &mut out,
        "repl_sniff_upstream_connect_failures_total",
        "counter",
        "Accepted connections closed because the upstream was unreachable.",
    );
    let _ = writeln!(
        out,
        "repl_sniff_upstream_connect_failures_total {}",
        monitor.connect_failures()
    );

    header(
        &mut out,
        "repl_sniff_syncs_total",
        "counter",
        "Syncs granted by the master, by type.",
    );
    for t in ["full", "partial"] {
        let _ = writeln!(
            out,
            "repl_sniff_syncs_total{{type=\"{t}\"}} {}",
            totals.syncs.get(t).copied().unwrap_or(0)
        );
    }

    let gauges: [Gauge; 5] = [
        (
            "repl_sniff_stream_offset_bytes",
            "Replication offset of the last stream byte forwarded.",
            |s| s.offsets.end.map(|v| v as f64),
        ),
        (
            "repl_sniff_ack_offset_bytes",
            "Last offset the replica acknowledged (REPLCONF ACK).",
            |s| s.offsets.acked.map(|v| v as f64),
        ),
        (
            "repl_sniff_lag_bytes",
            "Forwarded minus acknowledged offset.",
            |s| Some(s.timing.lag_bytes as f64),
        ),
        (
            "repl_sniff_lag_seconds",
            "Age of the oldest forwarded byte not yet acknowledged.",
            |s| Some(s.timing.lag_ms / 1000.0),
        ),
        (
            "repl_sniff_max_lag_bytes",
            "Largest lag seen in this session.",
            |s| Some(s.timing.max_lag_bytes as f64),
        ),
    ];
    for (name, help, get) in gauges {
        header(&mut out, name, "gauge", help);
        for s in live.iter().filter(|s| s.kind != Role::Client) {
            if let Some(v) = get(s) {
                let labels = format!("session=\"{}\",replica=\"{}\"", s.id, escape(&s.replica));
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }

    header(
        &mut out,
        "repl_sniff_commands_total",
        "counter",
        "Commands by name: the replication stream, or what clients sent.",
    );
    for (name, (count, _)) in &totals.commands {
        let _ = writeln!(
            out,
            "repl_sniff_commands_total{{command=\"{}\"}} {count}",
            escape(name)
        );
    }
    header(
        &mut out,
        "repl_sniff_command_bytes_total",
        "counter",
        "Bytes of commands by name.",
    );
    for (name, (_, bytes)) in &totals.commands {
        let _ = writeln!(
            out,
            "repl_sniff_command_bytes_total{{command=\"{}\"}} {bytes}",
            escape(name)
        );
    }

    header(
        &mut out,
        "repl_sniff_ack_latency_seconds",
        "histogram",
        "From forwarding a stream command to the first REPLCONF ACK covering it.",
    );
    for (name, h) in &totals.latency {
        histogram_seconds(
            &mut out,
            "repl_sniff_ack_latency_seconds",
            &format!("command=\"{}\"", escape(name)),
            h,
        );
    }
    header(
        &mut out,
        "repl_sniff_heartbeat_interval_seconds",
        "histogram",
        "Intervals between master PINGs, replica ACKs and keep-alives.",
    );
    for (kind, h) in &totals.heartbeats {
        histogram_seconds(
            &mut out,
            "repl_sniff_heartbeat_interval_seconds",
            &format!("kind=\"{kind}\""),
            h,
        );
    }

    header(
        &mut out,
        "repl_sniff_rdb_bytes_total",
        "counter",
        "RDB payload bytes transferred.",
    );
    let _ = writeln!(out, "repl_sniff_rdb_bytes_total {}", totals.rdb_bytes);
    header(
        &mut out,
        "repl_sniff_rdb_transfers_total",
        "counter",
        "Complete RDB transfers.",
    );
    let _ = writeln!(
        out,
        "repl_sniff_rdb_transfers_total {}",
        totals.rdb_transfers
    );
    header(
        &mut out,
        "repl_sniff_rdb_transfer_seconds_total",
        "counter",
        "Time spent in complete RDB transfers.",
    );
    let _ = writeln!(
        out,
        "repl_sniff_rdb_transfer_seconds_total {}",
        totals.rdb_seconds
    );
    header(
        &mut out,
        "repl_sniff_desyncs_total",
        "counter",
        "Times the analysis of a direction lost track (bytes still forwarded).",
    );
    let _ = writeln!(out, "repl_sniff_desyncs_total {}", totals.desyncs);
    header(
        &mut out,
        "repl_sniff_warnings_total",
        "counter",
        "Warnings raised, by kind.",
    );
    for kind in ["lag", "master_silent", "ack_backwards", "ack_ahead"] {
        let _ = writeln!(
            out,
            "repl_sniff_warnings_total{{kind=\"{kind}\"}} {}",
            totals.warnings.get(kind).copied().unwrap_or(0)
        );
    }
    out
}
