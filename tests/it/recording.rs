//! `--record`: a live session written as pcapng replays to the same report, hides AUTH
//! arguments, and is read by tshark as valid TCP whose bytes are the forwarded bytes.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{load_dataset, write_workload};
use crate::support::{wait_for_quiescence, wait_until, Client, Link, Server, Sniffer, Version};

const PASSWORD: &str = "rec0rd-me-n0t";

fn replay_report(recording: &Path) -> Value {
    let report = recording.with_extension("replay.json");
    let arg = OsStr::new;
    crate::support::repl_sniff_ok(&[
        arg("replay"),
        recording.as_os_str(),
        arg("--format"),
        arg("json"),
        arg("--report-json"),
        report.as_os_str(),
    ]);
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

/// Everything about a session that a capture can carry (the close reason cannot).
fn comparable(mut session: Value) -> Value {
    session["end_reason"] = Value::Null;
    for c in session["channels"].as_array_mut().unwrap() {
        c["end_reason"] = Value::Null;
    }
    session
}

/// `tshark -z follow,tcp,raw,N`: the bytes each side sent on TCP stream `n`.
fn tshark_follow(recording: &Path, n: usize) -> (Vec<u8>, Vec<u8>) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(recording)
        .args(["-q", "-z", &format!("follow,tcp,raw,{n}")])
        .output()
        .expect("tshark (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (mut client, mut server) = (Vec::new(), Vec::new());
    let body = text.split("Node 1: ").nth(1).expect("a follow header");
    for line in body.lines().skip(1) {
        if line.starts_with("====") {
            break;
        }
        let (to, hex) = match line.strip_prefix('\t') {
            Some(hex) => (&mut server, hex),
            None => (&mut client, line),
        };
        let hex = hex.trim();
        for i in (0..hex.len()).step_by(2) {
            to.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
        }
    }
    (client, server)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn recording_replays_to_the_live_report_and_tshark_sees_the_forwarded_bytes() {
    let v = Version::V7;
    let master = Server::start(
        v,
        "master",
        &["--requirepass", PASSWORD, "--repl-diskless-sync", "no"],
    );
    load_dataset(&mut master.client());
    let recording = master.dir.join("live.pcapng");
    let Link(master, sniffer, replica) = Link::of(v)
        .on(master)
        .sniffer(&["--record", recording.to_str().unwrap()])
        .replica(&["--masterauth", PASSWORD])
        .up();
    let master_rdb = std::fs::read(master.dir.join("dump.rdb")).unwrap();
    write_workload(&mut master.client());
    wait_for_quiescence(&master, &replica);

    // A client through the proxy, whose exact bytes we know.
    let mut sent = Vec::new();
    let mut c = Client::connect(sniffer.port);
    for args in [
        vec!["AUTH", PASSWORD],
        vec!["SET", "via-proxy", "1"],
        vec!["GET", "via-proxy"],
    ] {
        sent.extend(format!("*{}\r\n", args.len()).bytes());
        for a in &args {
            sent.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
        }
        c.cmd(&args);
    }
    drop(c);
    wait_until("client session end", Duration::from_secs(10), || {
        sniffer.stderr().contains("[2] session end")
    });
    let live = sniffer.stop();
    drop(replica);

    // 1. Replaying the recording gives the live report.
    let replayed = replay_report(&recording);
    let live_sessions = live.report["sessions"].as_array().unwrap();
    let replayed_sessions = replayed["sessions"].as_array().unwrap();
    assert_eq!(live_sessions.len(), 2);
    assert_eq!(replayed_sessions.len(), live_sessions.len());
    for (l, r) in live_sessions.iter().zip(replayed_sessions) {
        assert_eq!(comparable(r.clone()), comparable(l.clone()));
    }

    // 2. The password is masked, length kept.
    let bytes = std::fs::read(&recording).unwrap();
    assert!(
        find(&bytes, PASSWORD.as_bytes()).is_none(),
        "password in the recording"
    );
    let stars = "*".repeat(PASSWORD.len());
    let masked = format!("$4\r\nAUTH\r\n${}\r\n{stars}\r\n", PASSWORD.len());
    assert!(find(&bytes, masked.as_bytes()).is_some());

    // 3. tshark reads it without complaint, as two TCP flows.
    let check = Command::new("tshark")
        .arg("-r")
        .arg(&recording)
        .args([
            "-Y",
            "tcp.analysis.flags || _ws.malformed || _ws.expert.severity == error",
        ])
        .output()
        .expect("tshark (scripts/test installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout),
        "",
        "tshark found problems"
    );

    // 4. Follow TCP stream: the replication flow carries the master's dump.rdb byte for byte,
    //    and the client flow exactly what the client sent (password masked).
    let (to_master, to_replica) = tshark_follow(&recording, 0);
    let session = &live_sessions[0];
    assert_eq!(
        to_master.len() as u64,
        session["bytes"]["to_master"].as_u64().unwrap()
    );
    assert_eq!(
        to_replica.len() as u64,
        session["bytes"]["to_replica"].as_u64().unwrap()
    );
    let header = format!("${}\r\n", master_rdb.len());
    let at = find(&to_replica, header.as_bytes()).unwrap() + header.len();
    assert_eq!(&to_replica[at..at + master_rdb.len()], &master_rdb[..]);

    let (client_sent, _) = tshark_follow(&recording, 1);
    let expected = String::from_utf8(sent).unwrap().replace(PASSWORD, &stars);
    assert_eq!(String::from_utf8(client_sent).unwrap(), expected);
}

/// A two-connection full sync (Redis 8.2.3's RDB channel, Valkey 9.1.2's dual channel),
/// recorded, replays to the same paired report.
mod a_recorded_two_connection_sync_replays_to_the_same_paired_report {
    use crate::support::Version;

    #[test]
    fn redis_8_2() {
        super::recorded_two_connection_sync(Version::V8);
    }

    #[test]
    fn valkey_9_1() {
        super::recorded_two_connection_sync(Version::Valkey9);
    }
}

fn recorded_two_connection_sync(v: Version) {
    let master = Server::start(v, "master", &["--repl-diskless-sync-delay", "0"]);
    load_dataset(&mut master.client());
    let recording = master.dir.join("live.pcapng");
    let Link(master, sniffer, replica) = Link::of(v)
        .on(master)
        .sniffer(&["--record", recording.to_str().unwrap()])
        .up();
    write_workload(&mut master.client());
    let end = wait_for_quiescence(&master, &replica);
    let live = sniffer.stop();
    drop(replica);

    let live_sessions = live.report["sessions"].as_array().unwrap();
    assert_eq!(live_sessions.len(), 1, "{}", live.report_text);
    let s = &live_sessions[0];
    crate::support::assert_two_connections_where_expected(v, s);
    assert_eq!(s["offsets"]["end"].as_u64(), Some(end));
    assert_eq!(s["rdb"]["contents"]["checksum"], "ok");

    let replayed = replay_report(&recording);
    let replayed_sessions = replayed["sessions"].as_array().unwrap();
    assert_eq!(replayed_sessions.len(), 1);
    assert_eq!(
        comparable(replayed_sessions[0].clone()),
        comparable(s.clone())
    );
}

#[test]
fn a_recording_stopped_by_sigint_mid_transfer_stays_valid() {
    let v = Version::V7;
    // A diskless transfer slowed to ~2 ms per key, so that SIGINT lands inside it.
    let master = Server::start(
        v,
        "master",
        &[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-key-save-delay",
            "2000",
        ],
    );
    master
        .client()
        .cmd(&["DEBUG", "POPULATE", "2000", "key", "100"]);
    let recording = master.dir.join("cut.pcapng");
    let sniffer = Sniffer::start(master.port, &["--record", recording.to_str().unwrap()]);
    let replica = sniffer.replica(v, &[]);
    wait_until("the RDB transfer to start", Duration::from_secs(20), || {
        sniffer.stderr().contains("RDB transfer start")
    });
    std::thread::sleep(Duration::from_millis(800));
    let live = sniffer.stop_with("-INT");
    drop(replica);
    let s = &live.report["sessions"][0];
    assert_eq!(s["rdb"]["complete"], false, "stopped mid-transfer");
    assert!(s["rdb"]["bytes"].as_u64().unwrap() > 0);

    let check = Command::new("tshark")
        .arg("-r")
        .arg(&recording)
        .args(["-Y", "_ws.malformed || _ws.expert.severity == error"])
        .output()
        .expect("tshark");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout), "");
    let replayed = replay_report(&recording);
    assert_eq!(
        comparable(replayed["sessions"][0].clone()),
        comparable(s.clone())
    );
}
