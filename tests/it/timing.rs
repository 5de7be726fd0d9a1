//! Timing against real servers: heartbeat intervals, ack latency under WAIT, lag of a stopped
//! replica, the Prometheus endpoint, the report schema.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    assert_two_connections_where_expected, assert_valid_report, free_port, http_get, python,
    wait_for_quiescence, wait_until, Server, Sniffer, Version,
};

on_every_version!(
    heartbeat_intervals_match_the_configured_period,
    wait_driven_ack_latency_is_the_round_trip,
);

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn attach(v: Version, master: &Server, sniffer_args: &[&str]) -> (Sniffer, Server) {
    let sniffer = Sniffer::start(master.port, sniffer_args);
    let replica = sniffer.replica(v, &[]);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    (sniffer, replica)
}

fn heartbeat_intervals_match_the_configured_period(v: Version) {
    let master = Server::start(v, "master", &["--repl-ping-replica-period", "1"]);
    let (sniffer, replica) = attach(v, &master, &["--interval", "1"]);
    let mut late = crate::support::Lateness::default();
    late.sleep(Duration::from_millis(6500), Duration::from_millis(100));
    let out = sniffer.stop();
    drop(replica);
    let s = out.sessions_of_kind("replication")[0];
    let hb = &s["timing"]["heartbeats"];
    for which in ["master_ping_interval_us", "replica_ack_interval_us"] {
        let h = &hb[which];
        assert!(u(&h["count"]) >= 4, "{which}: {h}");
        crate::support::assert_period(h, Duration::from_secs(1), late, which);
    }
    // Status lines came every second with the session's offsets.
    let statuses = out.events.iter().filter(|e| e["event"] == "status").count();
    assert!(statuses >= 4, "{statuses} status events");
    assert_valid_report(&out.report_path);
}

fn wait_driven_ack_latency_is_the_round_trip(v: Version) {
    let master = Server::start(v, "master", &[]);
    let (sniffer, replica) = attach(v, &master, &[]);
    let trips = crate::support::acked_writes(&mut master.client(), "k", 200);
    let end = wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    assert_two_connections_where_expected(v, s);
    let t = &s["timing"];
    let set = &t["commands"]["SET"]["ack_latency_us"];
    assert_eq!(u(&set["count"]), 200, "every SET was acknowledged");
    // The GETACK's answer, not the 1 s periodic ACK: within the client's own round trips.
    crate::support::assert_within_round_trips(set, &trips, "SET ack latency");
    assert_eq!(u(&t["unacked_commands"]), 0);
    assert!(u(&t["acked_commands"]) >= 400, "SETs and GETACKs");
    assert!(out.stderr.contains("of") && out.stderr.contains("commands acknowledged"));
    // At quiescence nothing is outstanding.
    assert_eq!(u(&t["lag_bytes"]), 0);
    assert_eq!(u(&s["offsets"]["acked"]), end);
    assert_valid_report(&out.report_path);
}

/// WAIT makes the master send GETACKs, and the replica answers each at once: those answers
/// are not heartbeats. The periodic ACK interval stays the replica's 1 s period.
#[test]
fn acks_answering_getack_are_not_heartbeats() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-ping-replica-period", "1"]);
    let (sniffer, replica) = attach(v, &master, &[]);
    let mut c = master.client();
    let started = std::time::Instant::now();
    let mut trips = Vec::new();
    let mut i = 0;
    let mut late = crate::support::Lateness::default();
    while started.elapsed() < Duration::from_millis(4500) {
        trips.extend(crate::support::acked_writes(&mut c, &format!("k{i}-"), 1));
        late.sleep(Duration::from_millis(20), Duration::from_millis(20));
        i += 1;
    }
    wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    let hb = &s["timing"]["heartbeats"];
    let periodic = &hb["replica_ack_interval_us"];
    crate::support::assert_period(periodic, Duration::from_secs(1), late, "periodic ACK");
    assert!(u(&hb["solicited_acks"]) >= 100, "{hb}");
    // Both inside the client's own SET -> WAIT round trips, however busy the machine.
    let getack = &hb["getack_round_trip_us"];
    crate::support::assert_within_round_trips(getack, &trips, "GETACK round trip");
    let set = &s["timing"]["commands"]["SET"]["ack_latency_us"];
    crate::support::assert_within_round_trips(set, &trips, "SET ack latency");
    assert!(
        out.stderr.contains("replica ACK (periodic)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_stopped_replica_shows_growing_lag_and_a_warning() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let (sniffer, replica) = attach(v, &master, &["--lag-warn", "2000", "--interval", "1"]);
    let mut c = master.client();
    c.cmd(&["SET", "before", "1"]);
    c.cmd(&["WAIT", "1", "5000"]);
    let kill = |sig: &str| crate::support::process::signal(replica.pid(), sig);
    kill("-STOP");
    let value = "x".repeat(100);
    for i in 0..40 {
        c.cmd(&["SET", &format!("stopped:{i}"), &value]);
        std::thread::sleep(Duration::from_millis(75));
    }
    kill("-CONT");
    c.cmd(&["WAIT", "1", "5000"]);
    let end = wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    let t = &s["timing"];
    assert!(u(&t["max_lag_bytes"]) > 4000, "{}", t["max_lag_bytes"]);
    assert!(
        t["max_lag_ms"].as_f64().unwrap() > 2000.0,
        "{}",
        t["max_lag_ms"]
    );
    let lag_warnings = t["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "lag")
        .count();
    assert_eq!(lag_warnings, 1, "{}", t["warnings"]);
    assert!(out.stderr.contains("WARNING (lag): replica lags"));
    // The status lines saw it grow, then recover.
    let lags: Vec<u64> = out
        .events
        .iter()
        .filter(|e| e["event"] == "status" && e["rdb"].is_null())
        .map(|e| u(&e["lag_bytes"]))
        .collect();
    let peak = lags
        .iter()
        .position(|&l| l == *lags.iter().max().unwrap())
        .unwrap();
    assert!(
        peak >= 1 && lags[peak - 1] < lags[peak],
        "not growing: {lags:?}"
    );
    assert_eq!(u(&t["lag_bytes"]), 0, "recovered");
    assert_eq!(u(&s["offsets"]["acked"]), end);
    assert_valid_report(&out.report_path);
}

/// The endpoint speaks HTTP as scrapers and curl expect: two requests on one connection
/// (keep-alive), HEAD with the length and no body, 405 for other methods, 404 elsewhere.
#[test]
fn metrics_endpoint_keeps_alive_and_answers_head_and_other_methods() {
    use std::io::BufRead;

    let master = Server::start(Version::V7, "master", &[]);
    let port = free_port();
    let sniffer = Sniffer::start(master.port, &["--metrics", &port.to_string()]);
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    // Reads one response: status line, headers, and Content-Length bytes unless `head`.
    let mut response = |head: bool| -> (String, String, usize) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let (mut headers, mut len) = (String::new(), 0);
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            headers.push_str(&line);
        }
        let mut body = vec![0u8; if head { 0 } else { len }];
        r.read_exact(&mut body).unwrap();
        (status, headers, len)
    };
    for method in ["GET", "GET", "HEAD"] {
        write!(w, "{method} /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, headers, len) = response(method == "HEAD");
        assert!(status.starts_with("HTTP/1.1 200"), "{method}: {status}");
        assert!(headers.contains("text/plain; version=0.0.4"), "{headers}");
        assert!(len > 100, "{method}: content-length {len}");
    }
    write!(
        w,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let (status, headers, _) = response(false);
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
    assert!(
        headers.to_ascii_lowercase().contains("allow: get, head"),
        "{headers}"
    );
    write!(w, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(response(false).0.starts_with("HTTP/1.1 404"));
    sniffer.stop();
}

#[test]
fn metrics_endpoint_parses_with_the_prometheus_parser() {
    let v = Version::V7;
    let master = Server::start(v, "master", &[]);
    let metrics_port = free_port();
    let (sniffer, replica) = attach(v, &master, &["--metrics", &metrics_port.to_string()]);
    let mut c = master.client();
    for i in 0..20 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    c.cmd(&["WAIT", "1", "5000"]);
    let end = wait_for_quiescence(&master, &replica);
    std::thread::sleep(Duration::from_millis(1500)); // metrics are rendered every second
    let (head, body) = http_get(metrics_port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"));
    let (head404, _) = http_get(metrics_port, "/");
    assert!(head404.starts_with("HTTP/1.1 404"));
    let _ = sniffer.stop();

    // Parse with the reference Python parser; get {name: [[labels, value], …]} back.
    let path = std::env::temp_dir().join(format!("repl-sniff-metrics-{}.txt", std::process::id()));
    std::fs::write(&path, &body).unwrap();
    let script = "import json,sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out={}\n\
        for fam in text_string_to_metric_families(open(sys.argv[1]).read()):\n\
        \x20   for s in fam.samples:\n\
        \x20       out.setdefault(s.name,[]).append([s.labels,s.value])\n\
        print(json.dumps(out))";
    let parsed = Command::new(python())
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let samples: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        samples[name]
            .as_array()
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
            .iter()
            .find(|s| label.is_none_or(|(k, v)| s[0][k] == v))
            .unwrap_or_else(|| panic!("no {name} {label:?}"))[1]
            .as_f64()
            .unwrap()
    };
    assert_eq!(value("repl_sniff_syncs_total", Some(("type", "full"))), 1.0);
    assert_eq!(
        value("repl_sniff_sessions", Some(("kind", "replication"))),
        1.0
    );
    assert_eq!(value("repl_sniff_stream_offset_bytes", None), end as f64);
    assert_eq!(value("repl_sniff_ack_offset_bytes", None), end as f64);
    assert_eq!(value("repl_sniff_lag_bytes", None), 0.0);
    assert_eq!(
        value("repl_sniff_commands_total", Some(("command", "SET"))),
        20.0
    );
    assert_eq!(
        value(
            "repl_sniff_ack_latency_seconds_count",
            Some(("command", "SET"))
        ),
        20.0
    );
    assert!(
        value(
            "repl_sniff_heartbeat_interval_seconds_count",
            Some(("kind", "replica_ack"))
        ) >= 1.0
    );
    assert!(value("repl_sniff_rdb_bytes_total", None) > 0.0);

    // Every metric the shipped Grafana dashboard queries exists.
    let dashboard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/repl-sniff.grafana.json"),
    )
    .unwrap();
    let dash: Value = serde_json::from_str(&dashboard).unwrap();
    let mut used = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("repl_sniff_") {
                    used += 1;
                    assert!(
                        samples.get(word).is_some(),
                        "dashboard uses {word}, not served"
                    );
                }
            }
        }
    }
    assert!(used >= 12);
}

#[test]
fn full_disk_captures_show_the_ten_second_ping_period() {
    for version in ["redis-6.0.9", "redis-7.0.15"] {
        let pcap = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/captures")
            .join(version)
            .join("full-disk.pcap");
        let report = serde_json::to_value(crate::support::fixtures::replay_file(&pcap)).unwrap();
        let ping = &report["sessions"][0]["timing"]["heartbeats"]["master_ping_interval_us"];
        let p50 = u(&ping["p50"]);
        assert!(u(&ping["count"]) >= 1, "{version}");
        assert!(
            (9_500_000..=10_500_000).contains(&p50),
            "{version}: PING p50 {p50} µs"
        );
    }
}

#[test]
fn every_golden_report_matches_the_documented_schema() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
    let mut reports = Vec::new();
    let mut dirs = vec![golden.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".report.json") {
                reports.push(path);
            }
        }
    }
    // One per shipped capture: a golden missing its report is caught by the golden test.
    assert_eq!(reports.len(), crate::support::fixtures::captures().len());
    for report in reports {
        assert_valid_report(&report);
    }
}
