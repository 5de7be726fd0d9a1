//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! drawn from the JSON report, so that a saved `report.json` and a live run give the same
//! page. An overview of every session first, then per replication session: the sync timeline,
//! throughput and lag over time, heartbeat intervals against `repl-timeout`, ack latency per
//! command, the RDB's contents, and warnings and desyncs on the time axis.
//!
//! Each chart is an element with `data-chart` (its name) and `data-points` (how many values
//! it drew), so a browser test can check that the page shows the report's data.

mod sections;
mod svg;

use std::fmt::Write;

use serde_json::Value;

use sections::*;
use svg::*;

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

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

pub(super) fn or_dash(v: &Value) -> String {
    text(v).map_or_else(|| "–".to_string(), |s| esc(&s))
}

/// `ts` (seconds since the epoch) as `2026-12-07 10:12:03` (UTC).
pub(super) fn utc(ts: f64) -> String {
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
    compression(h, &s["compression"]);
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
