//! The per-session sections of the page below its overview: the slot migration, the
//! ledger and backlog advice, the sync timeline, a compressed stream's cost, heartbeats, ACK
//! latency, the RDB, and the events on the time axis.

use std::fmt::Write;

use serde_json::Value;

use super::svg::*;
use super::*;
/// A Valkey slot migration's link: what moved, and where its time went.
pub(super) fn migration(h: &mut String, s: &Value) {
    let m = &s["migration"];
    let slots: Vec<String> = (m["slots"].as_array().into_iter().flatten())
        .map(|r| format!("{}-{}", or_dash(&r[0]), or_dash(&r[1])))
        .collect();
    let _ = write!(
        h,
        "<h2 id=\"s{}\">Session {}: slot migration {} from node {} to {}</h2>\
         <p class=\"note\">Connected from {} at {} UTC; ended: {}.</p>\
         <table data-chart=\"migration\" data-points=\"1\"><tr><th>slots</th><th>outcome</th>\
         <th>keys</th><th>snapshot</th><th>writes after</th><th>pause</th><th>failover</th>\
         <th>duration</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{} commands, {}</td>\
         <td>{} commands, {}</td><td>{} ms</td><td>{} ms</td><td>{} ms</td></tr></table>",
        or_dash(&s["id"]),
        or_dash(&s["id"]),
        or_dash(&m["job"]),
        or_dash(&m["source_node"]),
        or_dash(&m["target"]),
        or_dash(&s["replica"]),
        utc(num(&s["started_at"])),
        or_dash(&s["end_reason"]),
        esc(&slots.join(", ")),
        or_dash(&m["outcome"]),
        or_dash(&m["snapshot"]["keys"]),
        or_dash(&m["snapshot"]["commands"]),
        size(num(&m["snapshot"]["bytes"])),
        or_dash(&m["stream"]["commands"]),
        size(num(&m["stream"]["bytes"])),
        m["pause_ms"]
            .as_f64()
            .map_or("–".into(), |v| format!("{v:.1}")),
        m["failover_ms"]
            .as_f64()
            .map_or("–".into(), |v| format!("{v:.1}")),
        m["duration_ms"]
            .as_f64()
            .map_or("–".into(), |v| format!("{v:.0}")),
    );
    // Its steps on one bar: the snapshot, the slots' writes until the target asked for the
    // pause, the source pausing, the failover.
    let (Some(snapshot), Some(total)) = (m["snapshot_ms"].as_f64(), m["duration_ms"].as_f64())
    else {
        return;
    };
    let mut shown = vec![("snapshot", snapshot, "#66c2a5")];
    if let (Some(asked), Some(pause), Some(failover)) = (
        m["pause_requested_at"].as_f64(),
        m["pause_ms"].as_f64(),
        m["failover_ms"].as_f64(),
    ) {
        let writes = (asked - num(&m["started_at"])) * 1000.0 - snapshot;
        shown.push(("slots' writes", writes.max(0.0), "#8da0cb"));
        shown.push(("pausing", pause, "#fc8d62"));
        shown.push(("failover", (failover - pause).max(0.0), "#e78ac3"));
    } else {
        shown.push(("after the snapshot", (total - snapshot).max(0.0), "#8da0cb"));
    }
    h.push_str("<h3>Migration timeline</h3>");
    segments(h, "migration_timeline", &shown);
}

/// What the offset counted, and the backlog the stream calls for.
pub(super) fn ledger_and_backlog(h: &mut String, s: &Value) {
    let l = &s["stream"]["ledger"];
    if l.is_object() && num(&s["stream"]["bytes"]) > 0.0 {
        let _ = write!(
            h,
            "<p data-chart=\"ledger\" data-points=\"5\">Offset ledger: data {} B, PING {} B, \
             GETACK {} B, SELECT {} B, MULTI/EXEC {} B.</p>",
            or_dash(&l["data"]),
            or_dash(&l["ping"]),
            or_dash(&l["getack"]),
            or_dash(&l["select"]),
            or_dash(&l["multi_exec"])
        );
    }
    let b = &s["timing"]["backlog"];
    if b.is_object() {
        let advice = if b["lower_bound"] == true {
            format!(
                "the stream lasted {} s and wrote {}; a {} s disconnect needs at least \
                 repl-backlog-size {}, more if the writes go on",
                or_dash(&b["based_on_s"]),
                size(num(&b["window_bytes"])),
                or_dash(&b["survive_s"]),
                size(num(&b["advised_bytes"]))
            )
        } else {
            format!(
                "the busiest {} s wrote {}; to survive such a disconnect with a partial \
                 resync, repl-backlog-size {}",
                or_dash(&b["survive_s"]),
                size(num(&b["window_bytes"])),
                size(num(&b["advised_bytes"]))
            )
        };
        let _ = write!(
            h,
            "<p data-chart=\"backlog\" data-points=\"1\">Backlog: {advice}.</p>"
        );
    }
}

/// The full sync's phases as one bar.
pub(super) fn timeline(h: &mut String, s: &Value) {
    let t = &s["timeline"];
    let phases = [
        ("handshake", &t["handshake_ms"], "#8da0cb"),
        ("master preparing", &t["bgsave_wait_ms"], "#fc8d62"),
        ("RDB transfer", &t["transfer_ms"], "#66c2a5"),
        ("load", &t["load_ms"], "#e78ac3"),
        ("catch-up", &t["catch_up_ms"], "#a6d854"),
    ];
    let shown: Vec<(&str, f64, &str)> = phases
        .iter()
        .filter_map(|(n, v, c)| v.as_f64().map(|ms| (*n, ms, *c)))
        .collect();
    if shown.is_empty() {
        return;
    }
    h.push_str("<h3>Sync timeline</h3>");
    segments(h, "timeline", &shown);
}

pub(super) fn heartbeats(h: &mut String, hb: &Value, repl_timeout_s: Option<f64>) {
    h.push_str("<h3>Heartbeat intervals (p50, p99, max) against repl-timeout</h3>");
    let mut rows = Vec::new();
    for (key, name) in [
        ("master_ping_interval_us", "master PING"),
        ("replica_ack_interval_us", "replica ACK"),
        ("master_keepalive_interval_us", "master keep-alive"),
        ("replica_keepalive_interval_us", "replica keep-alive"),
    ] {
        let v = &hb[key];
        if num(&v["count"]) == 0.0 {
            continue;
        }
        for q in ["p50", "p99", "max"] {
            rows.push((format!("{name} {q}"), num(&v[q]) / 1e6));
        }
    }
    let limit = match repl_timeout_s {
        Some(t) => (t, format!("repl-timeout ({} s)", human(t))),
        None => (60.0, "repl-timeout (default 60 s)".to_string()),
    };
    hbars(h, "heartbeats", &rows, "s", Some((limit.0, &limit.1)));
}

pub(super) fn ack_latency(h: &mut String, commands: &Value) {
    h.push_str("<h3>Ack latency per command (p50 and p99, ms)</h3>");
    let mut rows = Vec::new();
    if let Some(m) = commands.as_object() {
        for (name, c) in m {
            let a = &c["ack_latency_us"];
            if num(&a["count"]) == 0.0 {
                continue;
            }
            rows.push((format!("{name} p50"), num(&a["p50"]) / 1e3));
            rows.push((format!("{name} p99"), num(&a["p99"]) / 1e3));
        }
    }
    hbars(h, "ack_latency", &rows, "ms", None);
}

pub(super) fn rdb(h: &mut String, rdb: &Value) {
    let c = &rdb["contents"];
    if c.is_null() {
        return;
    }
    let _ = write!(
        h,
        "<h3>RDB: {} bytes, version {}, checksum {}</h3>",
        or_dash(&rdb["bytes"]),
        or_dash(&c["version"]),
        or_dash(&c["checksum"])
    );
    let types: Vec<(String, f64)> = c["types"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), num(&v["keys"])))
                .collect()
        })
        .unwrap_or_default();
    hbars(h, "rdb_types", &types, "keys", None);
    if let Some(dbs) = c["dbs"].as_object().filter(|d| !d.is_empty()) {
        h.push_str("<table data-chart=\"rdb_dbs\" data-points=\"");
        let _ = write!(
            h,
            "{}\"><tr><th>db</th><th>keys</th><th>expires</th></tr>",
            dbs.len()
        );
        for (db, v) in dbs {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(db),
                or_dash(&v["keys"]),
                or_dash(&v["expires"])
            );
        }
        h.push_str("</table>");
    }
    if let Some(big) = c["biggest"].as_array().filter(|b| !b.is_empty()) {
        h.push_str("<h3>Biggest keys</h3><table data-chart=\"rdb_biggest\" data-points=\"");
        let _ = write!(
            h,
            "{}\"><tr><th>key</th><th>type</th><th>bytes</th><th>elements</th></tr>",
            big.len()
        );
        for k in big {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                or_dash(&k["key"]),
                or_dash(&k["type"]),
                or_dash(&k["bytes"]),
                or_dash(&k["elements"])
            );
        }
        h.push_str("</table>");
    }
}

/// A compressed stream: its bytes on the wire beside the stream they carried, and what the
/// frames say of the flush delay (their sizes and spacing; a command's own wait is not seen).
pub(super) fn compression(h: &mut String, c: &Value) {
    if !c.is_object() {
        return;
    }
    let level = text(&c["level"])
        .unwrap_or_else(|| "unknown (the capture began after the handshake)".into());
    let ratio = c["ratio"]
        .as_f64()
        .map_or("–".into(), |r| format!("{r:.1}×"));
    let _ = write!(
        h,
        "<h3>Compression: {} level {}, ratio {ratio}</h3>",
        or_dash(&c["codec"]),
        esc(&level)
    );
    let rows = [
        ("on the wire".to_string(), num(&c["wire_bytes"])),
        ("stream carried".to_string(), num(&c["stream_bytes"])),
    ];
    hbars(h, "compression", &rows, "bytes", None);
    let ms = |v: &Value| v.as_f64().map_or("–".into(), |m| format!("{m:.0} ms"));
    let _ = write!(
        h,
        "<p class=\"note\">{} frames ({} empty); the largest {} on the wire, carrying {} of \
         stream; frames {} apart on average, {} at most: a command waits in the master's buffer \
         for up to about that long before its frame is sent.</p>",
        or_dash(&c["frames"]),
        or_dash(&c["empty_frames"]),
        size(num(&c["largest_frame_bytes"])),
        size(num(&c["largest_frame_stream_bytes"])),
        ms(&c["frame_interval_ms_mean"]),
        ms(&c["frame_interval_ms_max"]),
    );
}

/// How many of the session's desyncs the analysis went on after (bytes it missed), if any.
pub(super) fn resumed(s: &Value) -> String {
    let desyncs = s["desyncs"].as_array().map_or(&[][..], |d| d.as_slice());
    let resumed = desyncs.iter().filter(|d| d["resumed"].is_object()).count();
    if resumed == 0 {
        return String::new();
    }
    let all = s["desync_count"].as_u64().unwrap_or(0);
    let all = if all > desyncs.len() as u64 {
        format!(", {all} in all")
    } else {
        String::new()
    };
    format!(
        " (the analysis went on at the next command after {resumed} of {} listed{all})",
        desyncs.len()
    )
}

/// Warnings and the desync on the session's time axis.
pub(super) fn events(h: &mut String, s: &Value) {
    h.push_str("<h3>Warnings and desyncs</h3>");
    let start = num(&s["started_at"]);
    let end = s["ended_at"].as_f64().unwrap_or(start).max(start + 1.0);
    let mut marks: Vec<(f64, String, &str)> = s["timing"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|w| {
                    let label = format!(
                        "{}: {}",
                        text(&w["kind"]).unwrap_or_default(),
                        text(&w["message"]).unwrap_or_default()
                    );
                    (num(&w["at"]), label, "#f58518")
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(d) = text(&s["desync"]) {
        marks.push((end, format!("desync: {d}"), "#b00"));
    }
    if marks.is_empty() {
        return empty(h, "events");
    }
    let _ = write!(
        h,
        "<svg data-chart=\"events\" data-points=\"{}\" width=\"{WIDTH}\" height=\"50\" \
         viewBox=\"0 0 {WIDTH} 50\" role=\"img\"><line x1=\"0\" y1=\"25\" x2=\"{WIDTH}\" \
         y2=\"25\" stroke=\"#999\"/>",
        marks.len()
    );
    for (at, label, color) in &marks {
        let x = ((at - start) / (end - start)).clamp(0.0, 1.0) * (WIDTH - 10.0) + 5.0;
        let _ = write!(
            h,
            "<circle cx=\"{x:.1}\" cy=\"25\" r=\"5\" fill=\"{color}\"><title>+{:.1} s {}</title>\
             </circle>",
            at - start,
            esc(label)
        );
    }
    let _ = write!(
        h,
        "<text x=\"0\" y=\"48\">start</text><text x=\"{:.0}\" y=\"48\">+{:.0} s</text></svg>",
        WIDTH - 50.0,
        end - start
    );
    h.push_str("<ul class=\"note\">");
    for (at, label, _) in marks.iter().take(20) {
        let _ = write!(h, "<li>+{:.1} s {}</li>", at - start, esc(label));
    }
    h.push_str("</ul>");
}
