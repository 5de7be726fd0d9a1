//! The HTML report in a real browser (Debian's `chromium`, headless, installed by
//! scripts/test): the shipped captures and a live full sync with writes. The page must load
//! with no console message, fetch nothing, and draw every chart from the report's data, as
//! the DOM the browser built shows; a screenshot of each is kept under
//! `target/tmp/html-report/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    check_page, chromium, paced_acked_writes, temp_dir, wait_for_quiescence, wait_until, Server,
    Sniffer, Version,
};

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
        "redis-zstd-2026-06/full-disk.pcap",
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
