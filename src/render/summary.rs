//! The text summary printed at exit (and pinned by the `summary.txt` goldens).

use std::fmt::Write as _;

use crate::analyzer::event::{Role, SlotRange};
use crate::protocol::rdb::Checksum;
use crate::report::fold::{MigrationOutcome, MigrationReport, SyncPhase, SyncType, Timeline};
use crate::report::history::human;
use crate::report::timing::{BacklogAdvice, Hist};
use crate::report::{Report, SessionReport};

/// The human-readable summary printed at exit.
pub fn report(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "repl-sniff summary: {} session(s)", r.sessions.len());
    if r.upstream_connect_failures > 0 {
        let _ = writeln!(
            out,
            "  {} connection(s) closed because the upstream was unreachable",
            r.upstream_connect_failures
        );
    }
    let (mut bus_links, mut bus_bytes) = (0, 0);
    for s in &r.sessions {
        if s.kind == Role::ClusterBus {
            // Counted together: a cluster has one per pair of nodes and direction.
            bus_links += 1;
            bus_bytes += s.bytes.to_master + s.bytes.to_replica;
            continue;
        }
        out.push_str(&session(s));
    }
    if bus_links > 0 {
        let _ = writeln!(
            out,
            "cluster bus: {bus_links} link(s) between cluster nodes, {} (their binary protocol: \
             counted, not analysed)",
            human(bus_bytes)
        );
    }
    for h in &r.replicas {
        let _ = writeln!(
            out,
            "replica {}: {} link(s), {} full and {} partial sync(s), {} error(s), {}{}",
            h.replica,
            h.links,
            h.full_syncs,
            h.partial_syncs,
            h.errors,
            human(h.bytes),
            if h.dropped_full_syncs > 0 {
                format!(
                    "; {} full sync(s) dropped before the replica was online",
                    h.dropped_full_syncs
                )
            } else {
                String::new()
            }
        );
    }
    out
}

/// A few human-readable lines about this session.
pub fn session(s: &SessionReport) -> String {
    let mut o = String::new();
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let _ = writeln!(
        o,
        "session {} [{}] {} -> {}{}",
        s.id,
        s.kind.as_str(),
        s.replica,
        s.upstream,
        s.end_reason
            .as_ref()
            .map_or(String::new(), |r| format!(" (ended: {r})"))
    );
    if let Some(t) = s.tls.as_ref().filter(|t| !t.analysed) {
        let version = t.version.map_or("version unknown", |v| v.as_str());
        let sni = t
            .sni
            .as_deref()
            .map_or(String::new(), |n| format!(", SNI {n}"));
        let _ = writeln!(
            o,
            "  TLS ({version}{sni}): encrypted, not analysed; {} B to master, {} B to replica",
            s.bytes.to_master, s.bytes.to_replica
        );
    }
    if let Some(m) = &s.migration {
        o.push_str(&migration(m, s.end_reason.as_deref()));
    } else if s.kind != Role::Client {
        let _ = write!(o, "  sync: {}", s.sync.kind.as_str());
        if let Some(mode) = s.sync.mode {
            let _ = write!(o, " via {}", mode.as_str());
        }
        if let Some(id) = &s.sync.replid {
            let _ = write!(o, ", replid {id}");
        }
        if let Some(off) = s.sync.offset {
            let _ = write!(o, ", offset {off}");
        }
        if let Some(r) = &s.sync.rejected {
            let _ = write!(o, ", refused: {r}");
        }
        // Asked for, never answered: a sync attempt, and where it stood when the link ended.
        if let (SyncType::None, Some(t), Some(end)) = (s.sync.kind, &s.timeline, s.ended_at) {
            let asked = s.sync.requested.as_deref().unwrap_or("?");
            let after = t.marks.psync.map_or(0.0, |p| end.since(p).as_secs_f64());
            let _ = write!(
                o,
                " (a sync attempt: PSYNC {asked} unanswered; the link ended {after:.1} s after \
                 it {}, {} keep-alive(s) from the master)",
                t.phase.describe(),
                t.bgsave_keepalives
            );
        }
        o.push('\n');
        if let Some(why) = &s.sync.reason {
            let _ = writeln!(o, "  why: {}", why.message);
        }
        if !s.channels.is_empty() {
            let list: Vec<String> = s
                .channels
                .iter()
                .map(|c| {
                    let end = c.end_reason.as_deref().unwrap_or("open");
                    let bytes = c.bytes.to_master + c.bytes.to_replica;
                    let (role, id, replica) = (c.role.as_str(), c.session, &c.replica);
                    format!("{role} {replica} (session {id}, {bytes} B, {end})")
                })
                .collect();
            let unpaired = if s.channels.len() < 2 {
                "; its other connection never paired"
            } else {
                ""
            };
            let _ = writeln!(o, "  connections: {}{unpaired}", list.join(", "));
        }
        if let Some(rdb) = &s.rdb {
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
        if let Some(note) = unhonoured_rdb_request(s) {
            let _ = writeln!(o, "  note: {note}");
        }
        let lag = match (s.offsets.end, s.offsets.acked) {
            (Some(e), Some(a)) => format!(" (lag {} bytes)", e.saturating_sub(a)),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  offsets: start {} end {} acked {}{lag}; {} stream bytes, {} commands, {} ACKs",
            opt(s.offsets.start),
            opt(s.offsets.end),
            opt(s.offsets.acked),
            s.stream.bytes,
            s.stream.commands,
            s.acks
        );
        if let Some(line) = ledger(s) {
            o.push_str(&line);
        }
        if let Some(c) = &s.compression {
            o.push_str(&compression(c));
        }
        if let Some(t) = &s.timeline {
            o.push_str(&timeline(t, s.ended_at.is_some()));
        }
        if let Some(b) = &s.timing.backlog {
            o.push_str(&backlog(b));
        }
        for m in &s.migrations_forwarded {
            let offsets = match (m.established_offset, m.finish_offset) {
                (Some(a), Some(b)) => format!("offsets {a}..{b}"),
                (Some(a), None) => format!("from offset {a}"),
                _ => "offsets ?".to_string(),
            };
            let state = m.state.as_deref().unwrap_or("not finished in this stream");
            let why = m
                .message
                .as_ref()
                .map_or(String::new(), |w| format!(" ({w})"));
            let _ = writeln!(
                o,
                "  slot migration {} (slots {} from node {}) in this stream: {offsets}, {state}{why}",
                m.job,
                slot_ranges(&m.slots, m.ranges),
                m.source_node
            );
        }
    }
    if !s.commands.is_empty() {
        let mut top: Vec<_> = s.commands.iter().collect();
        top.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        let shown: Vec<String> = top
            .iter()
            .take(12)
            .map(|(n, c)| format!("{n} {}", c.count))
            .collect();
        let more = if top.len() > 12 { ", …" } else { "" };
        let _ = writeln!(o, "  commands: {}{more}", shown.join(", "));
    }
    if s.kind != Role::Client && s.migration.is_none() {
        o.push_str(&timing_tables(s));
    }
    if let Some(d) = &s.desync {
        let _ = writeln!(o, "  DESYNC: {d}");
        let resumed = s.desyncs.iter().filter(|d| d.resumed.is_some()).count();
        if resumed > 0 {
            let listed = s.desyncs.len();
            let all = if s.desync_count > listed as u64 {
                format!(" ({} in all)", s.desync_count)
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "  resumed after {resumed} of {listed} desync(s){all} at the next command; \
                 commands in the bytes missed are not counted, offsets stay exact"
            );
        }
    }
    o
}

/// Slot ranges as people write them: `0-1000, 5000`, and how many more were not captured.
pub fn slot_ranges(slots: &[SlotRange], named: u64) -> String {
    let mut list: Vec<String> = slots
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let more = named.saturating_sub(slots.len() as u64);
    if more > 0 {
        list.push(format!("{more} more range(s)"));
    }
    list.join(", ")
}

/// A Valkey slot migration seen on its link (`ended`: why the link ended): what moved, and how
/// long writes waited.
fn migration(m: &MigrationReport, ended: Option<&str>) -> String {
    let mut o = String::new();
    let took = m
        .duration_ms
        .map_or(String::new(), |d| format!(" in {d:.0} ms"));
    let outcome = match m.outcome {
        MigrationOutcome::InProgress => "in progress".to_string(),
        MigrationOutcome::Finished => format!("finished{took}"),
        MigrationOutcome::Refused => format!(
            "refused by the target: {}",
            m.refused.as_deref().unwrap_or("?")
        ),
        MigrationOutcome::LinkLost => {
            // The connecting side is the source: its close is a cancel or a failure there.
            let who = match ended {
                Some("replica closed the connection") => {
                    " (the source closed it: cancelled or failed there, see its CLUSTER \
                     GETSLOTMIGRATIONS)"
                }
                Some("master closed the connection") => " (the target closed it)",
                _ => "",
            };
            format!(
                "the link ended{took} before the failover was granted{who}; last step: {}",
                m.step.map_or("none", |s| s.describe())
            )
        }
    };
    let target = match (&m.target_state, &m.target_message) {
        (Some(state), Some(why)) => format!("; the target told its replicas: {state} ({why})"),
        (Some(state), None) => format!("; the target told its replicas: {state}"),
        _ => String::new(),
    };
    let _ = writeln!(
        o,
        "  slot migration {} from node {} to {}{}: slots {}; {outcome}{target}",
        m.job,
        m.source_node,
        m.target_node
            .as_ref()
            .map_or(String::new(), |n| format!("node {n} at ")),
        m.target,
        slot_ranges(&m.slots, m.ranges)
    );
    let snap = &m.snapshot;
    let _ = writeln!(
        o,
        "  snapshot: {} keys in {} commands ({}){}; then {} commands ({}) of the slots' writes",
        snap.keys,
        snap.commands,
        human(snap.bytes),
        m.snapshot_ms
            .map_or(" (not finished)".to_string(), |d| format!(" in {d:.0} ms")),
        m.stream.commands,
        human(m.stream.bytes)
    );
    if m.pause_requested_at.is_some() {
        let ms = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1} ms"));
        let _ = writeln!(
            o,
            "  pause: the source paused writes {} after REQUEST-PAUSE; failover granted after {}",
            ms(m.pause_ms),
            ms(m.failover_ms)
        );
    }
    o
}

/// A full sync's steps, on one line: each phase from one marker on the wire to the next.
fn timeline(t: &Timeline, ended: bool) -> String {
    let ms = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0} ms"));
    let mut line = format!("  full sync: handshake {:.0} ms", t.handshake_ms);
    let _ = write!(
        line,
        ", master preparing the RDB {} ({} keep-alives)",
        ms(t.bgsave_wait_ms),
        t.bgsave_keepalives
    );
    let _ = write!(line, ", transfer {}", ms(t.transfer_ms));
    let _ = write!(
        line,
        ", load {} ({} keep-alives)",
        ms(t.load_ms),
        t.load_keepalives
    );
    if let Some(b) = t.buffered_bytes {
        let _ = write!(
            line,
            ", catch-up of {} buffered in {}",
            human(b),
            ms(t.catch_up_ms)
        );
    }
    match (t.phase, t.duration_ms) {
        (SyncPhase::Online, Some(total)) => {
            let _ = write!(line, "; {total:.0} ms in all");
        }
        (phase, _) if ended => {
            let _ = write!(line, "; the link ended {}", phase.describe());
        }
        (phase, _) => {
            let _ = write!(line, "; now {}", phase.as_str().replace('_', "-"));
        }
    }
    line.push('\n');
    line
}

/// The backlog advice: measured over the busiest window, or a lower bound from a shorter
/// stream.
pub fn backlog(b: &BacklogAdvice) -> String {
    if b.lower_bound {
        format!(
            "  backlog: the stream lasted {} s and wrote {} ({}/s on average); a {} s \
             disconnect needs at least that: repl-backlog-size >= {}, more if the writes go on\n",
            b.based_on_s,
            human(b.window_bytes),
            human(b.mean_bytes_per_s as u64),
            b.survive_s,
            human(b.advised_bytes)
        )
    } else {
        format!(
            "  backlog: stream {}/s on average; the busiest {} s wrote {}; to survive a {} s \
             disconnect with a partial resync, repl-backlog-size >= {}\n",
            human(b.mean_bytes_per_s as u64),
            b.survive_s,
            human(b.window_bytes),
            b.survive_s,
            human(b.advised_bytes)
        )
    }
}

/// A compressed stream's line: its codec and level, and what it cost on the wire.
fn compression(c: &crate::report::model::CompressionReport) -> String {
    let ratio = c.ratio.map_or("?".to_string(), |r| format!("{r:.1}"));
    format!(
        "  compression: {} level {}: {} frames ({} empty), {} B on the wire for {} stream B ({ratio}x); \
         largest frame {} B carrying {} stream B; frames {} ms apart on average, {} at most\n",
        c.codec,
        c.level.map_or("?".to_string(), |l| l.to_string()),
        c.frames,
        c.empty_frames,
        c.wire_bytes,
        c.stream_bytes,
        c.largest_frame_bytes,
        c.largest_frame_stream_bytes,
        c.frame_interval_ms_mean
            .map_or("?".into(), |m| format!("{m:.0}")),
        c.frame_interval_ms_max
            .map_or("?".into(), |m| format!("{m:.0}")),
    )
}

/// The offset ledger, when the stream carried anything but data.
fn ledger(s: &SessionReport) -> Option<String> {
    let l = &s.stream.ledger;
    let overhead = l.ping + l.getack + l.select + l.multi_exec;
    (overhead > 0).then(|| {
        format!(
            "  offset ledger: data {} B, PING {} B, GETACK {} B, SELECT {} B, MULTI/EXEC {} B\n",
            l.data, l.ping, l.getack, l.select, l.multi_exec
        )
    })
}

/// The ack-latency and heartbeat tables of the summary.
fn timing_tables(s: &SessionReport) -> String {
    let t = &s.timing;
    let mut o = String::new();
    // A histogram with no sample shows "–", not a latency of 0. The extremes are exact; a
    // percentile is good to 3 significant digits, and printed so.
    let ms = |h: &Hist, q: Option<f64>| {
        if h.count() == 0 {
            return "–".to_string();
        }
        match q {
            Some(q) if h.min() != h.max() => sig3(h.quantile(q) as f64 / 1000.0),
            _ => format!("{:.1}", h.max() as f64 / 1000.0),
        }
    };
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
            std::cmp::Reverse(s.commands.get(*name).map_or(0, |c| c.count))
        });
        for (name, c) in rows {
            let (count, bytes) = s.commands.get(name).map_or((0, 0), |c| (c.count, c.bytes));
            let h = &c.ack_latency_us;
            let _ = writeln!(
                o,
                "    {:<16} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                count,
                bytes,
                ms(h, Some(0.5)),
                ms(h, Some(0.9)),
                ms(h, Some(0.99)),
                ms(h, Some(0.999)),
                ms(h, None)
            );
        }
    }
    let hb = &t.heartbeats;
    let rows = [
        ("master PING", &hb.master_ping_interval_us),
        ("replica ACK (periodic)", &hb.replica_ack_interval_us),
        ("GETACK -> its ACK", &hb.getack_round_trip_us),
        ("keep-alive M->R", &hb.master_keepalive_interval_us),
        ("keep-alive R->M", &hb.replica_keepalive_interval_us),
    ];
    if hb.buffered_pings > 0 {
        let _ = writeln!(
            o,
            "  {} master PING(s) came while the replica loaded its RDB: buffered, so not counted \
             as heartbeats",
            hb.buffered_pings
        );
    }
    if rows.iter().any(|(_, h)| h.count() > 0) {
        let _ = writeln!(
            o,
            "  heartbeat intervals (ms): {:>9} {:>9} {:>9} {:>9}   GETACKs: {}",
            "count", "p50", "p99", "max", hb.getacks
        );
        for (what, h) in rows.iter().filter(|(_, h)| h.count() > 0) {
            let _ = writeln!(
                o,
                "    {:<22} {:>9} {:>9} {:>9} {:>9}",
                what,
                h.count(),
                ms(h, Some(0.5)),
                ms(h, Some(0.99)),
                ms(h, None)
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

/// A percentile in ms as precisely as the histogram holds it (3 significant digits), and
/// never rounded past a whole millisecond, so it cannot print above the exact maximum.
fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A replica that asked for an RDB without checksum (`REPLCONF rdb-no-checksum 1`, Redis 8.8)
/// and got one with it: an older master, or a disk-based sync, which ignores the request.
/// Information, not a fault. (Compression cannot be judged the same way: compressed quicklist
/// nodes stay LZF even with `rdb-no-compress`.)
fn unhonoured_rdb_request(s: &SessionReport) -> Option<&'static str> {
    let contents = s.rdb.as_ref()?.contents.as_ref()?;
    let asked = s
        .handshake
        .options
        .get("rdb-no-checksum")
        .is_some_and(|v| v == "1");
    (asked && contents.checksum == Checksum::Ok).then_some(
        "the replica asked for rdb-no-checksum but the RDB has a checksum (an older master, or a disk-based sync)",
    )
}
