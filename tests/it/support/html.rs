//! The HTML report in a real browser: Chromium headless, and the checks every page passes.

use super::*;

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
        let phases = PHASES
            .iter()
            .filter(|p| s["timeline"][**p].is_number())
            .count() as u64;
        if phases > 0 {
            let (at, points, marks) = chart(&dom, pos, "timeline").expect("timeline");
            assert_eq!(points, phases, "{name} session {id}: timeline");
            assert!(marks as u64 >= phases);
            pos = at;
        }
        if s["compression"].is_object() {
            // The wire's bytes beside the stream's.
            let (at, points, marks) = chart(&dom, pos, "compression").expect("compression");
            assert_eq!((points, marks), (2, 2), "{name} session {id}: compression");
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
