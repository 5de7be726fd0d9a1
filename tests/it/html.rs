//! The HTML report in a real browser (Debian's `chromium`, headless, installed by
//! scripts/test): the shipped captures and a live full sync with writes. The page must load
//! with no console message, fetch nothing, and draw every chart from the report's data, as
//! the DOM the browser built shows; a screenshot of each is kept under
//! `target/tmp/html-report/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    paced_acked_writes, temp_dir, wait_for_quiescence, wait_until, Server, Sniffer, Version,
};

pub fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    let profile = temp_dir("chromium");
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (scripts/test installs Debian's package)")
}

/// The DOM element with `data-chart="{chart}"` that follows `from`: its `data-points` and
/// how many marks (`<rect`, `<circle`, `<tr`) it holds.
fn chart(dom: &str, from: usize, chart: &str) -> Option<(usize, u64, usize)> {
    let at = from + dom[from..].find(&format!("data-chart=\"{chart}\""))?;
    let rest = &dom[at..];
    let points: u64 = rest
        .split("data-points=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()?;
    let end = ["</svg>", "</table>", "</p>"]
        .iter()
        .filter_map(|t| rest.find(t))
        .min()
        .unwrap_or(rest.len());
    let body = &rest[..end];
    let marks = ["<rect", "<circle", "<tr"]
        .iter()
        .map(|m| body.matches(m).count())
        .max()
        .unwrap_or(0);
    Some((at, points, marks))
}

/// Opens `html` (drawn from `report`) in Chromium and checks it against the report.
pub fn check_page(name: &str, report: &Value, html: &Path) {
    let page = std::fs::read_to_string(html).unwrap();
    for fetch in ["src=", "href=\"http", "url(", "<script", "@import"] {
        assert!(
            !page.contains(fetch),
            "{name}: the page would fetch or run {fetch}"
        );
    }
    let out = chromium(&["--dump-dom"], html);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {log}");
    assert!(!log.contains("CONSOLE"), "{name}: console messages: {log}");
    assert!(dom.contains("data-chart=\"overview\""), "{name}: {dom}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let out = chromium(&[&arg, "--window-size=900,2400", "--hide-scrollbars"], html);
    assert!(out.status.success());
    let png = std::fs::metadata(&shot).map_or(0, |m| m.len());
    assert!(png > 10_000, "{name}: screenshot of {png} bytes");

    // Every replication session's charts, in order, each drawn from the report's numbers.
    let mut pos = 0;
    let sessions = report["sessions"].as_array().unwrap();
    let shown: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["kind"] == "replication" || s["kind"] == "sync")
        .collect();
    assert!(!shown.is_empty(), "{name}: no replication session");
    for s in shown {
        let id = &s["id"];
        let timing = &s["timing"];
        let rates = timing["rates"].as_array().map_or(0, Vec::len) as u64;
        let phases = [
            "handshake_ms",
            "bgsave_wait_ms",
            "transfer_ms",
            "load_ms",
            "catch_up_ms",
        ]
        .iter()
        .filter(|p| s["timeline"][**p].is_number())
        .count() as u64;
        if phases > 0 {
            let (at, points, marks) = chart(&dom, pos, "timeline").expect("timeline");
            assert_eq!(points, phases, "{name} session {id}: timeline");
            assert!(marks as u64 >= phases);
            pos = at;
        }
        for (c, want) in [
            ("throughput", rates),
            ("lag_bytes", rates),
            ("lag_ms", rates),
        ] {
            let (at, points, marks) =
                chart(&dom, pos, c).unwrap_or_else(|| panic!("{name} session {id}: no {c}"));
            assert_eq!(points, want, "{name} session {id}: {c}");
            if c == "throughput" {
                assert!(
                    marks as u64 >= want,
                    "{name} session {id}: {c} drew {marks}"
                );
            }
            pos = at;
        }
        let hists = timing["heartbeats"].as_object().map_or(0, |m| {
            m.values().filter(|h| h["count"].as_u64() > Some(0)).count()
        }) as u64;
        let (at, points, _) = chart(&dom, pos, "heartbeats").expect("heartbeats");
        // p50, p99 and max of each heartbeat kind (the GETACK round trip is not one).
        assert!(points <= 3 * hists, "{name} session {id}: heartbeats");
        pos = at;
        let acked = timing["commands"].as_object().map_or(0, |m| {
            m.values()
                .filter(|c| c["ack_latency_us"]["count"].as_u64() > Some(0))
                .count()
        }) as u64;
        let (at, points, _) = chart(&dom, pos, "ack_latency").expect("ack_latency");
        assert_eq!(points, 2 * acked, "{name} session {id}: ack latency");
        pos = at;
        if let Some(types) = s["rdb"]["contents"]["types"].as_object() {
            let (at, points, marks) = chart(&dom, pos, "rdb_types").expect("rdb_types");
            assert_eq!(points, types.len() as u64, "{name} session {id}: RDB types");
            assert_eq!(marks, types.len());
            pos = at;
        }
        let warnings = timing["warnings"].as_array().map_or(0, Vec::len) as u64
            + u64::from(!s["desync"].is_null());
        let (at, points, _) = chart(&dom, pos, "events").expect("events");
        assert_eq!(points, warnings, "{name} session {id}: events");
        pos = at;
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/captures")
        .join(rel)
}

#[test]
fn the_html_report_of_the_shipped_captures_draws_their_data_in_a_browser() {
    use crate::support::repl_sniff_ok;
    let arg = std::ffi::OsStr::new;
    for capture in [
        "redis-7.0.15/full-disk.pcap",
        "redis-7.0.15/partial.pcap",
        "redis-6.0.9/backlog-overflow.pcap",
        "redis-8.0.3/rdb-channel.pcap",
        "valkey-8.0.1/dual-channel.pcap",
    ] {
        let dir = temp_dir("html");
        let (json, html) = (dir.join("report.json"), dir.join("report.html"));
        repl_sniff_ok(&[
            arg("replay"),
            fixture(capture).as_os_str(),
            arg("-q"),
            arg("--report-json"),
            json.as_os_str(),
            arg("--report-html"),
            html.as_os_str(),
        ]);
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let name = capture.replace(['/', '.'], "-");
        check_page(&name, &report, &html);
        // `repl-sniff report` draws the same page from the saved JSON.
        let again = dir.join("again.html");
        repl_sniff_ok(&[
            arg("report"),
            json.as_os_str(),
            arg("--html"),
            again.as_os_str(),
        ]);
        assert_eq!(
            std::fs::read_to_string(&html).unwrap(),
            std::fs::read_to_string(&again).unwrap()
        );
    }
}

#[test]
fn the_html_report_of_a_live_full_sync_with_writes_draws_its_data_in_a_browser() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-ping-replica-period", "1"]);
    master
        .client()
        .cmd(&["DEBUG", "POPULATE", "2000", "key", "100"]);
    let dir = temp_dir("html-live");
    let html = dir.join("live.html");
    let sniffer = Sniffer::start(master.port, &["--report-html", html.to_str().unwrap()]);
    let replica_port = crate::support::free_port();
    let replica = Server::start_on(
        v,
        replica_port,
        "replica",
        &["--replicaof", "127.0.0.1", &sniffer.port.to_string()],
    );
    wait_until("link up", Duration::from_secs(30), || replica.link_up());
    paced_acked_writes(&master, 60, Duration::from_millis(40));
    wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    check_page("live-full-sync", &out.report, &html);
    let s = out.sessions_of_kind("replication")[0];
    assert!(s["timing"]["rates"].as_array().unwrap().len() >= 2);

    // A page to share: when (the date, in UTC, as the browser shows it), who (the replica
    // by the port it listens on, not its connection's source port), which history (the
    // replid) and which server.
    let out_dom = chromium(&["--dump-dom"], &html);
    let dom = String::from_utf8_lossy(&out_dom.stdout);
    let today = {
        let d = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .unwrap();
        String::from_utf8(d.stdout).unwrap().trim().to_string()
    };
    let replid = master.info("replication")["master_replid"].clone();
    let version = format!("Redis {}", master.info("server")["redis_version"]);
    for (what, want) in [
        ("the date", today.as_str()),
        (
            "the replica's listening port",
            &format!("127.0.0.1:{replica_port}"),
        ),
        ("the replid", &replid),
        ("the master's version", &version),
    ] {
        assert!(dom.contains(want), "the page lacks {what} ({want})");
    }
    // DEBUG POPULATE's keys are "key:<n>": none is named without --show-keys.
    assert!(!dom.contains("key:"), "a key name is on the page");
    assert!(
        !out.all_output().contains("key:"),
        "a key name is in the output"
    );
}
