//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! drawn from the JSON report, so that a saved `report.json` and a live run give the same
//! page. An overview of every session first, then per replication session: the sync timeline,
//! throughput and lag over time, heartbeat intervals against `repl-timeout`, ack latency per
//! command, the RDB's contents, and warnings and desyncs on the time axis.
//!
//! Each chart is an element with `data-chart` (its name) and `data-points` (how many values
//! it drew), so a browser test can check that the page shows the report's data.

use std::fmt::Write;

use serde_json::Value;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 140.0;
const LEFT: f64 = 70.0;

/// The page for a report (the JSON of [`Report`](crate::Report)).
pub fn page(report: &Value) -> String {
    let mut h = String::new();
    let sessions = report["sessions"].as_array().cloned().unwrap_or_default();
    let replication: Vec<&Value> = sessions
        .iter()
        .filter(|s| matches!(text(&s["kind"]).as_deref(), Some("replication" | "sync")))
        .collect();
    let start = sessions
        .iter()
        .filter_map(|s| s["started_at"].as_f64())
        .reduce(f64::min);
    let mut masters: Vec<String> = replication
        .iter()
        .filter_map(|s| text(&s["upstream"]))
        .collect();
    masters.dedup();
    let title = match start {
        Some(t) => format!(
            "Replication of {} — {} UTC",
            if masters.is_empty() {
                "–".to_string()
            } else {
                masters.join(", ")
            },
            utc(t)
        ),
        None => "Replication report (no session)".to_string(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    run(&mut h, report, &sessions, &replication, start);
    overview(&mut h, &sessions);
    replicas(&mut h, &report["replicas"]);
    // Reports written before `settings` existed were measured against the default 60 s.
    let timeout = report["settings"]["repl_timeout_s"].as_f64();
    for s in &sessions {
        if matches!(text(&s["kind"]).as_deref(), Some("replication" | "sync")) {
            session(&mut h, s, timeout);
        } else if !s["migration"].is_null() {
            migration(&mut h, s);
        }
    }
    h.push_str("</body></html>\n");
    h
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:800px;\
color:#222}h1{font-size:1.4em}h2{font-size:1.15em;border-top:1px solid #ccc;padding-top:.8em;\
margin-top:2em}h3{font-size:1em;margin:1.2em 0 .3em}table{border-collapse:collapse;\
font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}\
td:first-child,th:first-child{text-align:left}svg{display:block;margin:.3em 0}\
.note{color:#666;font-size:12px}.bad{color:#b00}text{font-size:11px;fill:#444}\
@media print{h2{break-before:page}}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn or_dash(v: &Value) -> String {
    text(v).map_or_else(|| "–".to_string(), |s| esc(&s))
}

/// `ts` (seconds since the epoch) as `2026-12-07 10:12:03` (UTC).
fn utc(ts: f64) -> String {
    let secs = ts.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The replica a session served, as the servers name it: its host and listening port (the
/// connection's source port changes with every reconnect).
fn identity(s: &Value) -> String {
    let replica = text(&s["replica"]).unwrap_or_default();
    let host = replica
        .rsplit_once(':')
        .map_or(replica.as_str(), |(h, _)| h);
    match s["handshake"]["listening_port"].as_u64() {
        Some(port) => format!("{host}:{port}"),
        None => replica.clone(),
    }
}

/// The server that wrote the session's RDB, from its AUX fields.
fn master_version(s: &Value) -> Option<String> {
    let aux = &s["rdb"]["contents"]["aux"];
    text(&aux["valkey-ver"])
        .map(|v| format!("Valkey {v}"))
        .or_else(|| text(&aux["redis-ver"]).map(|v| format!("Redis {v}")))
}

/// When the run began and ended, who took part, on which versions.
fn run(
    h: &mut String,
    report: &Value,
    sessions: &[Value],
    replication: &[&Value],
    start: Option<f64>,
) {
    let Some(start) = start else { return };
    let end = sessions
        .iter()
        .map(|s| s["ended_at"].as_f64().unwrap_or(start))
        .fold(start, f64::max);
    let mut versions: Vec<String> = replication
        .iter()
        .filter_map(|s| master_version(s))
        .collect();
    versions.sort();
    versions.dedup();
    let mut replicas: Vec<String> = replication.iter().map(|s| identity(s)).collect();
    replicas.sort();
    replicas.dedup();
    let mut replids: Vec<String> = replication
        .iter()
        .filter_map(|s| text(&s["sync"]["replid"]))
        .collect();
    replids.dedup();
    let _ = write!(
        h,
        "<p data-chart=\"run\" data-points=\"{}\">From {} to {} UTC ({:.1} s), \
         by repl-sniff {}.<br>Master: {}{}.<br>Replicas: {}.<br>Replication ids: {}.</p>",
        replication.len(),
        utc(start),
        utc(end),
        end - start,
        esc(&text(&report["version"]).unwrap_or_default()),
        esc(&replication
            .first()
            .and_then(|s| text(&s["upstream"]))
            .unwrap_or("–".into())),
        if versions.is_empty() {
            String::new()
        } else {
            format!(" ({})", esc(&versions.join(", ")))
        },
        if replicas.is_empty() {
            "–".to_string()
        } else {
            esc(&replicas.join(", "))
        },
        if replids.is_empty() {
            "–".to_string()
        } else {
            esc(&replids.join(", "))
        },
    );
}

/// Each replica across its links (reconnects, syncs, errors).
fn replicas(h: &mut String, replicas: &Value) {
    let Some(list) = replicas.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    let _ = write!(
        h,
        "<h2>Replicas</h2><table data-chart=\"replicas\" data-points=\"{}\"><tr><th>replica</th>\
         <th>links</th><th>reconnects</th><th>full syncs</th><th>partial syncs</th>\
         <th>full syncs dropped</th><th>errors</th><th>bytes</th></tr>",
        list.len()
    );
    for r in list {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            or_dash(&r["replica"]),
            or_dash(&r["links"]),
            or_dash(&r["reconnects"]),
            or_dash(&r["full_syncs"]),
            or_dash(&r["partial_syncs"]),
            or_dash(&r["dropped_full_syncs"]),
            or_dash(&r["errors"]),
            human(num(&r["bytes"])),
        );
    }
    h.push_str("</table>\n");
}

fn overview(h: &mut String, sessions: &[Value]) {
    h.push_str("<h2>Sessions</h2><table data-chart=\"overview\" data-points=\"");
    let _ = write!(h, "{}\">", sessions.len());
    h.push_str(
        "<tr><th>#</th><th>kind</th><th>replica</th><th>sync</th><th>why</th>\
         <th>RDB bytes</th><th>offset end</th><th>acked</th><th>warnings</th></tr>",
    );
    for s in sessions {
        let warnings: u64 = s["timing"]["warnings_by_kind"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let _ = write!(
            h,
            "<tr><td><a href=\"#s{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            or_dash(&s["kind"]),
            esc(&identity(s)),
            or_dash(&s["sync"]["type"]),
            or_dash(&s["sync"]["reason"]["code"]),
            or_dash(&s["rdb"]["bytes"]),
            or_dash(&s["offsets"]["end"]),
            or_dash(&s["offsets"]["acked"]),
            warnings,
            id = or_dash(&s["id"]),
        );
    }
    h.push_str("</table>\n");
}

fn session(h: &mut String, s: &Value, repl_timeout_s: Option<f64>) {
    let id = or_dash(&s["id"]);
    let mode = match text(&s["sync"]["mode"]).as_deref() {
        Some("rdb_channel") => " over two connections (Redis RDB channel)",
        Some("dual_channel") => " over two connections (Valkey dual channel)",
        Some("sync") => " (legacy SYNC)",
        _ => "",
    };
    let _ = write!(
        h,
        "<h2 id=\"s{id}\">Session {id}: replica {} → master {}</h2>\
         <p class=\"note\">Connected from {} at {} UTC{}{}{}.</p><p>{} sync{mode}{}{}; ended: {}</p>",
        esc(&identity(s)),
        or_dash(&s["upstream"]),
        or_dash(&s["replica"]),
        utc(num(&s["started_at"])),
        text(&s["sync"]["replid"]).map(|r| format!("; replid {}", esc(&r))).unwrap_or_default(),
        master_version(s).map(|v| format!("; master {}", esc(&v))).unwrap_or_default(),
        text(&s["handshake"]["options"]["version"])
            .map(|v| format!("; replica announces version {}", esc(&v)))
            .unwrap_or_default(),
        or_dash(&s["sync"]["type"]),
        text(&s["sync"]["reason"]["message"])
            .map(|m| format!(" — {}", esc(&m)))
            .unwrap_or_default(),
        text(&s["desync"])
            .map(|d| format!(
                " — <span class=\"bad\">desync: {}</span>{}",
                esc(&d),
                resumed(s)
            ))
            .unwrap_or_default(),
        or_dash(&s["end_reason"]),
    );
    timeline(h, s);
    ledger_and_backlog(h, s);
    let rates = s["timing"]["rates"].as_array().cloned().unwrap_or_default();
    let t0 = rates.first().map_or(0.0, |r| num(&r["t"]));
    let series = |field: &str| -> Vec<(f64, f64)> {
        rates
            .iter()
            .map(|r| (num(&r["t"]) - t0, num(&r[field])))
            .collect()
    };
    h.push_str("<h3>Throughput (stream commands per second)</h3>");
    bars_over_time(h, "throughput", &series("commands"), "cmd/s");
    h.push_str("<h3>Lag (bytes forwarded, not yet acknowledged; worst per second)</h3>");
    line_over_time(h, "lag_bytes", &series("lag_bytes"), "bytes");
    h.push_str("<h3>Lag (age of the oldest unacknowledged byte, ms)</h3>");
    line_over_time(h, "lag_ms", &series("lag_ms"), "ms");
    heartbeats(h, &s["timing"]["heartbeats"], repl_timeout_s);
    ack_latency(h, &s["timing"]["commands"]);
    rdb(h, &s["rdb"]);
    events(h, s);
}

/// A Valkey slot migration's link: what moved, and where its time went.
fn migration(h: &mut String, s: &Value) {
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
fn ledger_and_backlog(h: &mut String, s: &Value) {
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
fn timeline(h: &mut String, s: &Value) {
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

/// Phases one after another on one bar, each as wide as its share, with a legend.
fn segments(h: &mut String, chart: &str, shown: &[(&str, f64, &str)]) {
    let total: f64 = shown.iter().map(|p| p.1).sum::<f64>().max(0.001);
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"60\" \
         viewBox=\"0 0 {WIDTH} 60\" role=\"img\">",
        shown.len()
    );
    let mut x = 0.0;
    for (name, ms, color) in shown {
        let w = (ms / total * WIDTH).max(1.0);
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"4\" width=\"{w:.1}\" height=\"24\" fill=\"{color}\" \
             data-ms=\"{ms:.3}\"><title>{name}: {ms:.1} ms</title></rect>"
        );
        x += w;
    }
    let mut lx = 0.0;
    for (name, ms, color) in shown {
        let label = format!("{name} {ms:.0} ms");
        let _ = write!(
            h,
            "<rect x=\"{lx:.0}\" y=\"40\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{:.0}\" y=\"49\">{label}</text>",
            lx + 14.0
        );
        // About 6.5 px a character at the page's 11 px: each label gets its own room.
        lx += 30.0 + label.len() as f64 * 6.5;
    }
    h.push_str("</svg>");
}

fn axis(h: &mut String, max: f64, unit: &str, span: f64) {
    let _ = write!(
        h,
        "<line x1=\"{LEFT}\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>\
         <text x=\"0\" y=\"12\">{max:.0} {unit}</text><text x=\"0\" y=\"{HEIGHT}\">0</text>\
         <text x=\"{:.0}\" y=\"{:.0}\">{span:.0} s</text>",
        WIDTH - 40.0,
        HEIGHT + 14.0
    );
}

/// An empty chart says what it would have shown.
fn empty(h: &mut String, chart: &str) {
    let what = match chart {
        "throughput" | "lag_bytes" | "lag_ms" => "No stream command on this link.",
        "heartbeats" => "No heartbeat interval yet (two of a kind are needed).",
        "ack_latency" => "No command acknowledged.",
        "rdb_types" => "The RDB holds no key.",
        "events" => "No warning and no desync.",
        _ => "Nothing to show.",
    };
    let _ = write!(
        h,
        "<p class=\"note\" data-chart=\"{chart}\" data-points=\"0\">{what}</p>"
    );
}

fn bars_over_time(h: &mut String, chart: &str, points: &[(f64, f64)], unit: &str) {
    if points.is_empty() {
        return empty(h, chart);
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let span = points.last().map_or(1.0, |p| p.0).max(1.0);
    let w = ((WIDTH - LEFT) / (span + 1.0)).max(1.0);
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\" role=\"img\">",
        points.len(),
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    for (t, v) in points {
        let bh = v / max * (HEIGHT - 10.0);
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4c78a8\">\
             <title>+{t:.0} s: {v:.0} {unit}</title></rect>",
            LEFT + t / (span + 1.0) * (WIDTH - LEFT),
            HEIGHT - bh,
            w * 0.9
        );
    }
    axis(h, max, unit, span);
    h.push_str("</svg>");
}

fn line_over_time(h: &mut String, chart: &str, points: &[(f64, f64)], unit: &str) {
    if points.is_empty() {
        return empty(h, chart);
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let span = points.last().map_or(1.0, |p| p.0).max(1.0);
    let coords: Vec<String> = points
        .iter()
        .map(|(t, v)| {
            format!(
                "{:.1},{:.1}",
                LEFT + t / span * (WIDTH - LEFT - 10.0),
                HEIGHT - v / max * (HEIGHT - 10.0)
            )
        })
        .collect();
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\" role=\"img\">",
        points.len(),
        HEIGHT + 20.0,
        HEIGHT + 20.0,
    );
    // One line per run of consecutive seconds: where no second was measured, the line
    // breaks instead of drawing a ramp that never happened.
    let mut from = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > 1.0 {
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"#e45756\" stroke-width=\"1.5\" points=\"{}\"/>",
                coords[from..i].join(" ")
            );
            from = i;
        }
    }
    // Dots as well: a series of one second is a point, not a line.
    for c in coords.iter().take(120) {
        let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(
            h,
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"2\" fill=\"#e45756\"/>"
        );
    }
    axis(h, max, unit, span);
    h.push_str("</svg>");
}

/// Horizontal bars, one per labelled value, with an optional reference line.
fn hbars(
    h: &mut String,
    chart: &str,
    rows: &[(String, f64)],
    unit: &str,
    mark: Option<(f64, &str)>,
) {
    if rows.is_empty() {
        return empty(h, chart);
    }
    let max = rows
        .iter()
        .map(|r| r.1)
        .chain(mark.map(|m| m.0))
        .fold(0.0, f64::max)
        .max(1.0);
    let height = rows.len() as f64 * 18.0 + 16.0;
    let left = 200.0;
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">",
        rows.len()
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = i as f64 * 18.0;
        let w = v / max * (WIDTH - left - 90.0);
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.0}\">{}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{w:.1}\" \
             height=\"14\" fill=\"#72b7b2\"/><text x=\"{:.0}\" y=\"{:.0}\">{} {unit}</text>",
            y + 11.0,
            esc(label),
            left + w + 4.0,
            y + 11.0,
            human(*v)
        );
    }
    if let Some((at, name)) = mark {
        let x = left + at / max * (WIDTH - left - 90.0);
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{height}\" stroke=\"#b00\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{height}\" text-anchor=\"end\" \
             class=\"bad\">{}</text>",
            x - 3.0,
            esc(name)
        );
    }
    h.push_str("</svg>");
}

/// Bytes for people, as the summary writes them (`1.5 MB`, `512 kB`, `80 B`).
fn size(v: f64) -> String {
    crate::report::history::human(v.max(0.0) as u64)
}

fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn heartbeats(h: &mut String, hb: &Value, repl_timeout_s: Option<f64>) {
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

fn ack_latency(h: &mut String, commands: &Value) {
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

fn rdb(h: &mut String, rdb: &Value) {
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

/// How many of the session's desyncs the analysis went on after (bytes it missed), if any.
fn resumed(s: &Value) -> String {
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
fn events(h: &mut String, s: &Value) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_escapes_what_the_wire_said_and_fetches_nothing() {
        let report = serde_json::json!({
            "version": "0.1.0",
            "sessions": [{
                "id": 1, "kind": "replication", "replica": "<script>x</script>",
                "upstream": "127.0.0.1:6379", "started_at": 10.0, "ended_at": 20.0,
                "sync": {"type": "full"}, "timeline": {"handshake_ms": 1.0, "transfer_ms": 5.0},
                "timing": {"rates": [{"t": 10, "commands": 5, "lag_bytes": 3, "lag_ms": 1.0},
                                     {"t": 11, "commands": 7, "lag_bytes": 0, "lag_ms": 0.0}],
                           "warnings": [{"at": 12.0, "kind": "lag", "message": "a & b"}]},
                "desync": null
            }]
        });
        let page = page(&report);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("data-chart=\"throughput\" data-points=\"2\""));
        assert!(page.contains("data-chart=\"timeline\" data-points=\"2\""));
        assert!(page.contains("data-chart=\"events\" data-points=\"1\""));
        for fetch in ["src=", "href=\"http", "url("] {
            assert!(!page.contains(fetch), "{fetch}");
        }
    }

    /// The heartbeat chart's limit is the `--repl-timeout` the run used; a report written
    /// before the report said so is drawn against the default.
    #[test]
    fn heartbeats_are_drawn_against_the_runs_repl_timeout() {
        let with = |settings: serde_json::Value| {
            page(&serde_json::json!({
                "settings": settings,
                "sessions": [{
                    "id": 1, "kind": "replication", "started_at": 10.0,
                    "timing": {"heartbeats": {"replica_ack_interval_us":
                        {"count": 3, "p50": 1_000_000, "p99": 1_100_000, "max": 1_200_000}}}
                }]
            }))
        };
        let page = with(serde_json::json!({"repl_timeout_s": 7.0}));
        assert!(page.contains("repl-timeout (7 s)"), "{page}");
        assert!(page.contains("data-chart=\"heartbeats\" data-points=\"3\""));
        let old = with(serde_json::Value::Null);
        assert!(old.contains("repl-timeout (default 60 s)"), "{old}");
    }

    /// A page to share: when (UTC), who (the replica by its listening port), which history
    /// and which server; the mode, ledger, backlog and per-replica roll-up; a lag line that
    /// breaks over seconds with no stream instead of drawing a ramp.
    #[test]
    fn a_page_says_when_who_and_what_and_breaks_lines_over_missing_seconds() {
        let report = serde_json::json!({
            "version": "0.1.0",
            "replicas": [{"replica": "127.0.0.1:6380", "links": 2, "reconnects": 1,
                          "full_syncs": 1, "partial_syncs": 1, "dropped_full_syncs": 0,
                          "errors": 0, "bytes": 1000}],
            "sessions": [{
                "id": 1, "kind": "replication", "replica": "127.0.0.1:51690",
                "upstream": "127.0.0.1:6379", "started_at": 1_796_640_000.5,
                "ended_at": 1_796_640_027.0,
                "handshake": {"listening_port": 6380},
                "sync": {"type": "full", "mode": "rdb_channel", "replid": "403b08aa"},
                "rdb": {"bytes": 10, "contents": {"aux": {"redis-ver": "8.2.3"}}},
                "stream": {"bytes": 100, "ledger": {"data": 80, "ping": 14, "getack": 0,
                                                     "select": 6, "multi_exec": 0}},
                "timing": {
                    "rates": [{"t": 10, "lag_bytes": 1}, {"t": 11, "lag_bytes": 2},
                              {"t": 20, "lag_bytes": 3}],
                    "backlog": {"lower_bound": true, "based_on_s": 27, "window_bytes": 100,
                                "survive_s": 60, "advised_bytes": 1_048_576}
                }
            }]
        });
        let page = page(&report);
        for want in [
            "2026-12-07",
            "UTC",
            "replica 127.0.0.1:6380",
            "Connected from 127.0.0.1:51690",
            "403b08aa",
            "Redis 8.2.3",
            "over two connections (Redis RDB channel)",
            "Offset ledger: data 80 B",
            "repl-backlog-size 1.0 MB",
            "data-chart=\"replicas\" data-points=\"1\"",
        ] {
            assert!(page.contains(want), "{want} missing");
        }
        // Two runs of seconds (10-11, then 20): two lines in each lag chart, not one.
        let chart = &page[page.find("data-chart=\"lag_bytes\"").unwrap()..];
        let chart = &chart[..chart.find("</svg>").unwrap()];
        assert_eq!(chart.matches("<polyline").count(), 2, "{chart}");
    }
}
