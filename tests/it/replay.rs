//! Replaying real captures: what repl-sniff reports must equal what the servers said at the
//! end of each capture (`<name>.truth.json`), for every capture in `fixtures/captures/*/`;
//! and what it prints for every fixture is pinned in `fixtures/golden/`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::fixtures::{self, manifest, replay_file};

fn report_json(path: &Path) -> Value {
    serde_json::to_value(replay_file(path)).unwrap()
}

fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        v => v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

fn slave0_offset(truth: &Value) -> u64 {
    let slave0 = truth["master"]["info_replication"]["slave0"]
        .as_str()
        .unwrap();
    slave0
        .split(',')
        .find_map(|kv| kv.strip_prefix("offset="))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn every_capture_matches_its_truth() {
    for dir in fixtures::subdirs(&manifest().join("fixtures/captures")) {
        let mut pcaps: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
            .collect();
        pcaps.sort();
        assert!(!pcaps.is_empty(), "no captures in {}", dir.display());
        for pcap in pcaps {
            check_against_truth(&pcap);
        }
    }
}

/// A capture of a TLS link: one session per connection the master received, each named TLS
/// (version from its hellos, not analysed) with no desync, and what the replica's hello asked
/// for as its server name; the link's bytes all counted.
fn encrypted_connections_are_named_and_counted(name: &str, report: &Value, truth: &Value) {
    let sessions = report["sessions"].as_array().unwrap();
    assert_eq!(
        sessions.len() as u64,
        num(&truth["master"]["info_stats"]["total_connections_received"]),
        "{name}: one session per connection the master received"
    );
    for s in sessions {
        assert_eq!(s["tls"]["analysed"], false, "{name}: {s:#}");
        assert_eq!(s["tls"]["version"], "TLS 1.3", "{name}: {s:#}");
        assert_eq!(s["desync_count"], 0, "{name}: {s:#}");
        assert!(num(&s["bytes"]["to_master"]) > 0, "{name}: {s:#}");
        assert!(num(&s["bytes"]["to_replica"]) > 0, "{name}: {s:#}");
    }
    let snis: Vec<&Value> = sessions.iter().map(|s| &s["tls"]["sni"]).collect();
    assert_eq!(
        snis.iter().filter(|n| **n == "master.example").count(),
        1,
        "{name}: the client started with --sni: {snis:?}"
    );
}

/// A two-connection full sync, paired: both connections listed, the RDB complete with a good
/// checksum, its key counts as announced in its RESIZEDB hints, the stream's offsets known.
fn two_connection_sync(name: &str, s: &Value) {
    let channels = s["channels"].as_array().unwrap();
    let roles: Vec<&str> = channels
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["main", "rdb"], "{name}: channels");
    assert_eq!(
        channels[0]["link"], channels[1]["link"],
        "{name}: one client id"
    );
    assert_eq!(s["sync"]["type"], "full", "{name}");
    assert!(
        s["offsets"]["start"].is_u64(),
        "{name}: stream offsets known"
    );
    let contents = &s["rdb"]["contents"];
    assert_eq!(s["rdb"]["complete"], true, "{name}");
    assert_eq!(contents["checksum"], "ok", "{name}");
    let dbs = contents["dbs"].as_object().unwrap();
    assert!(!dbs.is_empty(), "{name}: keys");
    for (db, d) in dbs {
        assert_eq!(
            d["resize_hint"][0], d["keys"],
            "{name}: db{db} keys vs RESIZEDB"
        );
        assert_eq!(
            d["resize_hint"][1], d["expires"],
            "{name}: db{db} expires vs RESIZEDB"
        );
    }
}

fn check_against_truth(pcap: &Path) {
    let name = pcap.display().to_string();
    let truth: Value =
        serde_json::from_slice(&std::fs::read(pcap.with_extension("truth.json")).unwrap()).unwrap();
    let report = report_json(pcap);
    let sessions = report["sessions"].as_array().unwrap();
    let of_kind = |k: &'static str| sessions.iter().filter(move |s| s["kind"] == k);
    let stats = &truth["master"]["info_stats"];
    let repl = &truth["master"]["info_replication"];
    if truth["scenario"] == "tls-replication" {
        return encrypted_connections_are_named_and_counted(&name, &report, &truth);
    }

    // A two-connection sync is one session. Valkey's master counts its main connection's
    // `PSYNC <replid> <ENDOFF+1>` → `+CONTINUE` as a partial sync as well (it goes through
    // masterTryPartialResynchronization()), so the truth has one partial more per such sync.
    let fulls = sessions
        .iter()
        .filter(|s| s["sync"]["type"] == "full")
        .count() as u64;
    let partials = sessions
        .iter()
        .filter(|s| s["sync"]["type"] == "partial" || s["sync"]["mode"] == "dual_channel")
        .count() as u64;
    assert_eq!(fulls, num(&stats["sync_full"]), "{name}: full syncs");
    assert_eq!(
        partials,
        num(&stats["sync_partial_ok"]),
        "{name}: partial syncs"
    );

    let last = of_kind("replication")
        .next_back()
        .unwrap_or_else(|| panic!("{name}: no replication session"));
    assert_eq!(
        num(&last["offsets"]["end"]),
        num(&repl["master_repl_offset"]),
        "{name}: offsets.end vs master_repl_offset"
    );
    assert_eq!(
        num(&last["offsets"]["acked"]),
        slave0_offset(&truth),
        "{name}: offsets.acked vs slave0"
    );
    assert_eq!(
        last["sync"]["replid"], repl["master_replid"],
        "{name}: replid"
    );
    for s in sessions
        .iter()
        .filter(|s| !s["channels"].as_array().unwrap().is_empty())
    {
        two_connection_sync(&name, s);
    }
    for s in of_kind("replication").chain(of_kind("sync")) {
        assert_eq!(s["desync"], Value::Null, "{name}: session {}", s["id"]);
        // The offset ledger accounts for every stream byte.
        let ledger: u64 = s["stream"]["ledger"]
            .as_object()
            .unwrap()
            .values()
            .map(num)
            .sum();
        assert_eq!(
            ledger,
            num(&s["stream"]["bytes"]),
            "{name}: ledger of session {}",
            s["id"]
        );
    }

    let scenario = truth["scenario"].as_str().unwrap();
    let reasons: Vec<&Value> = of_kind("replication")
        .map(|s| &s["sync"]["reason"]["code"])
        .collect();
    match scenario {
        "backlog-overflow" => {
            assert_eq!(reasons, ["first_sync", "offset_outside_backlog"], "{name}")
        }
        "partial" => assert_eq!(
            reasons,
            ["first_sync", "partial_granted", "partial_granted"],
            "{name}"
        ),
        _ => {}
    }
    match scenario {
        "mixed-clients" => {
            assert_eq!(of_kind("replication").count(), 1, "{name}");
            assert!(
                of_kind("client").count() >= 2,
                "{name}: the harness's clients"
            );
            for c in of_kind("client") {
                assert_eq!(c["sync"]["type"], "none", "{name}");
                assert!(
                    c["commands"].as_object().is_some_and(|m| !m.is_empty()),
                    "{name}"
                );
            }
        }
        "cli-sync" => {
            let syncs: Vec<&Value> = of_kind("sync").collect();
            assert_eq!(syncs.len(), 2, "{name}: redis-cli --replica and --rdb");
            for s in syncs {
                assert_eq!(s["rdb"]["complete"], true, "{name}");
            }
        }
        _ => assert_eq!(of_kind("client").count(), 0, "{name}: no clients expected"),
    }
}

#[test]
fn replay_is_deterministic() {
    let pcap = manifest().join("fixtures/captures/redis-7.0.15/partial.pcap");
    let a = serde_json::to_string(&replay_file(&pcap)).unwrap();
    let b = serde_json::to_string(&replay_file(&pcap)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn recorded_fixtures_match_what_the_master_said() {
    let dir = manifest().join("fixtures/recorded");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pcapng") {
            continue;
        }
        let name = path.display().to_string();
        let truth: Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("truth.json")).unwrap())
                .unwrap();
        let report = report_json(&path);
        let sessions = report["sessions"].as_array().unwrap();
        let count = |t: &str| sessions.iter().filter(|s| s["sync"]["type"] == t).count() as u64;
        assert_eq!(count("full"), num(&truth["sync_full"]), "{name}");
        assert_eq!(count("partial"), num(&truth["sync_partial_ok"]), "{name}");
        let last = sessions.last().unwrap();
        assert_eq!(
            num(&last["offsets"]["end"]),
            num(&truth["master_repl_offset"]),
            "{name}"
        );
        assert_eq!(
            num(&last["offsets"]["acked"]),
            num(&truth["slave0_offset"]),
            "{name}"
        );
        assert_eq!(last["sync"]["replid"], truth["master_replid"], "{name}");
        // The partial sync continues exactly where the full one's stream ended.
        let first_end = num(&sessions[0]["offsets"]["end"]);
        assert_eq!(num(&last["sync"]["offset"]), first_end + 1, "{name}");
        assert_eq!(sessions[0]["handshake"]["auth"], true, "{name}");
        checked += 1;
    }
    assert!(checked > 0, "no recordings in {}", dir.display());
}

/// Pretty JSON with every array of two numbers (histogram buckets) on one line, so that
/// golden files stay short enough to review.
fn compact_pairs(pretty: &str) -> String {
    let lines: Vec<&str> = pretty.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    let number = |l: &str| {
        let t = l.trim().trim_end_matches(',');
        !t.is_empty() && t.parse::<f64>().is_ok()
    };
    while i < lines.len() {
        let l = lines[i];
        if l.trim_end().ends_with('[')
            && i + 3 < lines.len()
            && number(lines[i + 1])
            && number(lines[i + 2])
        {
            let close = lines[i + 3].trim();
            if close == "]" || close == "]," {
                let a = lines[i + 1].trim().trim_end_matches(',');
                let b = lines[i + 2].trim();
                out.push(format!("{}{a}, {b}{}", l.trim_end(), close));
                i += 4;
                continue;
            }
        }
        out.push(l.to_string());
        i += 1;
    }
    out.join("\n")
}

/// Compares `got` with the golden file (or rewrites it under `UPDATE_GOLDEN=1`); returns the
/// golden's name when they differ.
fn check_golden(golden: &Path, got: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, got).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(golden).unwrap_or_default();
    (got != want).then(|| fixtures::name(golden))
}

/// The golden file of `capture` with the given suffix.
fn golden_of(capture: &Path, suffix: &str) -> PathBuf {
    let golden = manifest()
        .join("fixtures/golden")
        .join(fixtures::name(capture));
    golden.with_extension(suffix)
}

/// Every fixture's report, event transcript (`replay --format json`, one event a line) and
/// text summary are pinned in fixtures/golden; `UPDATE_GOLDEN=1` rewrites them (review the
/// diff like code). Adding a capture means adding its goldens, nothing else.
#[test]
fn golden_reports_transcripts_and_summaries_of_every_fixture() {
    let mut mismatches = Vec::new();
    for capture in fixtures::captures() {
        let report = serde_json::to_string_pretty(&replay_file(&capture)).unwrap();
        let golden = golden_of(&capture, "report.json");
        mismatches.extend(check_golden(&golden, &(compact_pairs(&report) + "\n")));

        let out = crate::support::repl_sniff_ok(&[
            OsStr::new("replay"),
            capture.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("json"),
        ]);
        let events = String::from_utf8(out.stdout).unwrap();
        let summary = String::from_utf8(out.stderr).unwrap();
        assert!(events.lines().count() > 2, "{}", fixtures::name(&capture));
        mismatches.extend(check_golden(&golden_of(&capture, "events.jsonl"), &events));
        mismatches.extend(check_golden(&golden_of(&capture, "summary.txt"), &summary));
    }
    assert!(
        mismatches.is_empty(),
        "output differs from the goldens {mismatches:?}; if the change is intended, rerun \
         with UPDATE_GOLDEN=1 and review the diff"
    );
}

/// Rewrites a capture keeping only the packets `keep` accepts (by index and TCP payload).
fn edited_capture(from: &Path, to: &Path, keep: impl Fn(usize, &[u8]) -> bool) {
    let mut reader = pcap_file::pcap::PcapReader::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut writer = pcap_file::pcap::PcapWriter::with_header(
        std::fs::File::create(to).unwrap(),
        reader.header(),
    )
    .unwrap();
    let link = reader.header().datalink;
    let mut i = 0;
    while let Some(p) = reader.next_packet() {
        let p = p.unwrap();
        let frame = repl_sniff::capture::Frame {
            ts: repl_sniff::Timestamp(0),
            link,
            data: p.data.to_vec(),
        };
        let payload =
            repl_sniff::capture::decode(&frame).map_or(Vec::new(), |s| s.payload.to_vec());
        if keep(i, &payload) {
            writer.write_packet(&p).unwrap();
        }
        i += 1;
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("repl-sniff-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_capture_that_starts_mid_connection_is_analysed_from_the_next_command() {
    let full = manifest().join("fixtures/captures/redis-7.0.15/full-disk.pcap");
    let late = scratch("late.pcap");
    // Drop the handshake and the start of the RDB transfer.
    edited_capture(&full, &late, |i, _| i >= 12);
    let report = report_json(&late);
    let s = &report["sessions"][0];
    assert_eq!(s["joined_late"], true);
    assert_eq!(s["kind"], "replication", "recognised by its ACKs");
    assert_eq!(
        s["offsets"]["end"],
        Value::Null,
        "offsets are unknown, not guessed"
    );
    assert_eq!(num(&s["offsets"]["acked"]), 8542);
    assert!(num(&s["commands"]["SET"]["count"]) > 50);
}

/// A segment missing from a capture (tcpdump dropped it) costs the commands in it, not the
/// rest of the session: the desync says where the missing bytes begin, the analysis goes on at
/// the next command after them, and offsets stay exact throughout.
#[test]
fn a_lost_stream_segment_desyncs_where_it_begins_and_the_analysis_resumes_after_it() {
    let full = manifest().join("fixtures/captures/redis-7.0.15/full-disk.pcap");
    let lossy = scratch("lossy.pcap");
    // The first stream segment after the RDB: 8450 bytes starting with SELECT, offsets 1-8450.
    edited_capture(&full, &lossy, |_, payload| {
        !payload.starts_with(b"*2\r\n$6\r\nSELECT")
    });
    let report = report_json(&lossy);
    let s = &report["sessions"][0];
    let desync = &s["desyncs"][0];
    assert_eq!(desync["direction"], "master_to_replica");
    assert_eq!(num(&desync["offset"]), 1, "{desync}");
    assert!(desync["reason"]
        .as_str()
        .unwrap()
        .contains("8450 bytes are missing"));
    // The segment after it begins with a command: nothing more is passed over.
    let resumed = &desync["resumed"];
    assert_eq!(num(&resumed["offset"]), 8451, "{desync}");
    assert_eq!(num(&resumed["passed"]), 0, "{desync}");
    assert_eq!(
        num(&resumed["position"]) - num(&desync["position"]),
        8450,
        "{desync}"
    );
    // Counted after the gap, with their offsets: GETACK (37 B), DEL (27 B), two PINGs (14 B).
    let ledger = &s["stream"]["ledger"];
    assert_eq!(
        [
            ledger["getack"].clone(),
            ledger["data"].clone(),
            ledger["ping"].clone()
        ],
        [37, 27, 28]
    );
    assert_eq!(num(&s["commands"]["DEL"]["count"]), 1);
    // Byte counting goes on across the gap: the end offset is still the master's.
    assert_eq!(num(&s["offsets"]["end"]), 8542);
    assert_eq!(num(&s["offsets"]["acked"]), 8542);
    // The summary and the HTML page say it went on.
    let html = scratch("lossy.html");
    let out = crate::support::repl_sniff_ok(&[
        OsStr::new("replay"),
        lossy.as_os_str(),
        OsStr::new("--report-html"),
        html.as_os_str(),
    ]);
    let text = String::from_utf8([out.stdout, out.stderr].concat()).unwrap();
    assert!(text.contains("resumed after 1 of 1 desync(s)"), "{text}");
    assert!(text.contains("RESUMED M->R"), "{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("the analysis went on at the next command after 1 of 1 listed)"));
}

/// `src` rewritten as `tcpdump -s <snap>` would have written it: each packet's saved bytes cut
/// at `snap`, its length on the wire kept (a little-endian pcap, as the fixtures are).
fn snapped(src: &Path, snap: u32) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "a little-endian pcap");
    let le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
    let mut out = bytes[..24].to_vec();
    out[16..20].copy_from_slice(&snap.to_le_bytes());
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = le(&bytes[at + 8..at + 12]) as usize;
        let keep = incl.min(snap as usize);
        out.extend_from_slice(&bytes[at..at + 8]);
        out.extend_from_slice(&(keep as u32).to_le_bytes());
        out.extend_from_slice(&bytes[at + 12..at + 16]);
        out.extend_from_slice(&bytes[at + 16..at + 16 + keep]);
        at += 16 + incl;
    }
    let to = scratch(&format!("snap-{snap}.pcap"));
    std::fs::write(&to, out).unwrap();
    to
}

/// A capture taken with a snap length (`tcpdump -s 200`, to save space) is not damaged: each
/// packet it cut short is a gap of the bytes it left out, the analysis goes on at the next
/// command after each, and the offsets stay the master's.
#[test]
fn a_capture_cut_by_a_snap_length_is_analysed_with_a_gap_per_cut_packet() {
    let full = manifest().join("fixtures/captures/redis-7.0.15/full-disk.pcap");
    let cut = snapped(&full, 200);
    let (whole, short) = (report_json(&full), report_json(&cut));
    let (w, s) = (&whole["sessions"][0], &short["sessions"][0]);
    assert_eq!(s["offsets"]["end"], w["offsets"]["end"], "{}", s["offsets"]);
    assert_eq!(s["offsets"]["acked"], w["offsets"]["acked"]);
    assert_eq!(s["sync"]["replid"], w["sync"]["replid"]);
    assert!(
        num(&s["desync_count"]) > 0,
        "the cut RDB and stream are gaps"
    );
    for d in s["desyncs"].as_array().unwrap() {
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason.contains("missing"),
            "a gap, not a protocol error: {d}"
        );
    }
    // The small stream commands came whole: the analysis counted them after the gaps.
    let commands = num(&s["stream"]["commands"]);
    assert!(
        commands > 0 && commands <= num(&w["stream"]["commands"]),
        "{commands}"
    );
    assert_eq!(num(&s["acks"]), num(&w["acks"]));
    let out = crate::support::repl_sniff_ok(&[OsStr::new("replay"), cut.as_os_str()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("damaged"), "{err}");
    assert!(
        err.contains("cut short by the capture's snap length"),
        "{err}"
    );
}
