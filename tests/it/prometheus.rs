//! A real Prometheus (Debian's `prometheus`, installed by scripts/test) scrapes a live
//! repl-sniff during a real full sync with writes; then every PromQL expression of the shipped
//! Grafana dashboard is evaluated through Prometheus' HTTP API and must return data, and
//! `promtool check metrics` must pass on the exposition.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    free_port, paced_acked_writes, temp_dir, wait_for_quiescence, wait_until, Server, Sniffer,
    Version,
};

/// `GET path` on a loopback port; the body (the request closes the connection). Anything but
/// 200 fails the test.
fn get(port: u16, path: &str) -> String {
    try_get(port, path).unwrap_or_else(|head| panic!("GET {path}: {head}"))
}

/// `GET path`: the body of a 200, or the response's head.
fn try_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.to_string());
    }
    // Prometheus answers chunked; our queries are small enough for one chunk or plain.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        Ok(out)
    } else {
        Ok(body.to_string())
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` in the dashboard, with the `$instance` variable matching everything.
fn dashboard_queries() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/repl-sniff.grafana.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![&dashboard];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.replace("$instance", ".*"));
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}

struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let dir = temp_dir("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: repl-sniff\n    static_configs:\n\
                 \x20     - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("prometheus (scripts/test installs Debian's package)");
        // Prometheus answers 503 on /-/ready until it has started.
        wait_until("prometheus ready", Duration::from_secs(30), || {
            try_get(port, "/-/ready").is_ok_and(|body| body.contains("Ready"))
        });
        Prometheus { child, port }
    }

    /// The result vector of an instant query.
    fn query(&self, q: &str) -> Vec<Value> {
        let body = get(self.port, &format!("/api/v1/query?query={}", url_encode(q)));
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "{q}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_and_every_dashboard_query_returns_data() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-ping-replica-period", "1"]);
    let metrics = free_port();
    let sniffer = Sniffer::start(master.port, &["--metrics", &metrics.to_string()]);
    let prometheus = Prometheus::start(metrics);
    wait_until("the first scrape", Duration::from_secs(30), || {
        !prometheus.query("up{job=\"repl-sniff\"} == 1").is_empty()
    });
    // The sync happens while Prometheus watches: counters rise between two scrapes.
    let replica = sniffer.replica(v, &[]);
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    paced_acked_writes(&master, 80, Duration::from_millis(50));
    wait_for_quiescence(&master, &replica);
    std::thread::sleep(Duration::from_secs(3));

    // The check can fail: a series nobody exports has no data.
    assert!(prometheus.query("repl_sniff_no_such_metric").is_empty());
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    let empty: Vec<&String> = queries
        .iter()
        .filter(|q| prometheus.query(q).is_empty())
        .collect();
    assert!(
        empty.is_empty(),
        "dashboard queries without data: {empty:#?}"
    );

    // promtool, on the exposition as served.
    let exposition = get(metrics, "/metrics");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(prometheus);
    sniffer.stop();
}
