//! The binary as a user meets it: the README's replay command, help, and bad input.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use repl_sniff::capture::replay;
use repl_sniff::{Config, Monitor};

fn repl_sniff(args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    crate::support::repl_sniff(&args)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("repl-sniff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn readme_replay_shows_the_full_sync_the_stream_and_acks() {
    let path = fixture("captures/redis-7.0.15/full-disk.pcap");
    let out = repl_sniff(&["replay", "-v", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "R->M PSYNC ? -1",
        "full resync: replid 403b08aa50ec43bb050e0150a338a7d9dc1a37b4 offset 0",
        "RDB transfer done (Disk): 231542 bytes",
        "M->R SET offset 24..61 (38 B) db 0",
        "M->R REPLCONF GETACK",
        "R->M ACK 8542",
        "offsets: start 1 end 8542 acked 8542 (lag 0 bytes)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

/// Without -v, replay shows what the live log shows: the notable events and the summary,
/// not every command (-v adds those, as --help says).
#[test]
fn replay_shows_every_command_only_with_v() {
    let path = fixture("captures/redis-7.0.15/full-disk.pcap");
    let out = repl_sniff(&["replay", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("full resync: replid"), "{stdout}");
    assert!(stdout.contains("offsets: start 1 end 8542"), "{stdout}");
    assert!(!stdout.contains("M->R SET offset"), "{stdout}");
    assert!(!stdout.contains("R->M ACK"), "{stdout}");
    // -q: no event lines, and still the summary: it is the run's answer.
    let out = repl_sniff(&["replay", "-q", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("full resync: replid"), "{stdout}");
    assert!(stdout.contains("offsets: start 1 end 8542"), "{stdout}");
}

/// A bare `repl-sniff` is someone finding their way: the help, with every subcommand.
#[test]
fn a_bare_invocation_lists_the_subcommands() {
    let out = repl_sniff(&[]);
    assert_eq!(out.status.code(), Some(2));
    let help = text(&out.stdout);
    for sub in ["replay", "sniff", "rdb", "check", "report", "completions"] {
        assert!(help.contains(sub), "{sub} missing from:\n{help}");
    }
}

/// `repl-sniff completions bash | head` closes the pipe early: not a panic, exit 0.
#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_repl-sniff"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything was written
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"));
}

/// A capture that cannot be read at all is an error (exit 1), said once; so is a missing
/// file, whose cause is said once too.
#[test]
fn an_unreadable_capture_exits_1_and_says_why_once() {
    let bytes = std::fs::read(fixture("captures/redis-7.0.15/full-disk.pcap")).unwrap();
    let cut = scratch("cut-at-packet-0.pcap");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let out = repl_sniff(&["replay", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("damaged after packet 0").count(), 1, "{err}");
    let out = repl_sniff(&["replay", "/no/such/capture.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn help_teaches_with_examples() {
    let out = repl_sniff(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("REPLICAOF 127.0.0.1 7000"));
    assert!(help.contains("repl-sniff replay"));
    let out = repl_sniff(&["replay", "--help"]);
    assert!(text(&out.stdout).contains("--port"));
    let out = repl_sniff(&["--listen", "7000"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--upstream"));
}

#[test]
fn garbage_empty_and_missing_files_are_clear_errors() {
    let garbage = scratch("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all").unwrap();
    let empty = scratch("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    for (file, says) in [
        (
            garbage.to_str().unwrap(),
            "is not a pcap or pcapng capture (it starts with 0x74686973)",
        ),
        (empty.to_str().unwrap(), "nothing: it is empty"),
        ("/nonexistent/cap.pcap", "cannot read /nonexistent/cap.pcap"),
    ] {
        let out = repl_sniff(&["replay", file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_truncated_capture_is_replayed_up_to_the_damage_with_a_warning() {
    let whole = std::fs::read(fixture("captures/redis-7.0.15/full-disk.pcap")).unwrap();
    let cut = scratch("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = repl_sniff(&["replay", "-q", cut.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the file ends inside a packet"), "{stderr}");
    assert!(text(&out.stdout).contains("rdb: Disk"));
}

#[test]
fn every_prefix_of_a_capture_replays_without_panic() {
    for rel in [
        "captures/redis-7.0.15/partial.pcap",
        "captures/redis-6.0.9/diskless.pcap",
    ] {
        let whole = std::fs::read(fixture(rel)).unwrap();
        let path = scratch("prefix.pcap");
        for i in 0..64 {
            let len = whole.len() * i / 64 + i * 7 % 13;
            std::fs::write(&path, &whole[..len.min(whole.len())]).unwrap();
            let mut monitor = Monitor::new(Config::default(), vec![]);
            // Errors (too short for a header) are fine; panics are not.
            let _ = replay::replay(
                &[&path],
                &replay::Options::default(),
                &mut monitor,
                &mut |_| {},
            );
            let _ = monitor.report();
        }
    }
}

#[test]
fn traffic_that_is_not_tcp_is_skipped_with_a_note() {
    // A capture of UDP datagrams, built with the same crates the tool uses.
    let path = scratch("udp.pcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
    for i in 0..3u32 {
        let b = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(5353, 5353);
        let mut frame = Vec::new();
        b.write(&mut frame, b"not redis").unwrap();
        let ts = std::time::Duration::from_secs(1_700_000_000 + i as u64);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(
            ts,
            frame.len() as u32,
            &frame,
        ))
        .unwrap();
    }
    drop(w);
    let out = repl_sniff(&["replay", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("no TCP segments in 3 frame(s)"));
    assert!(text(&out.stdout).contains("0 session(s)"));
}

/// `--help`, the shell completions and the man pages come from one clap definition: every
/// long option that `--help` shows, for the proxy and each subcommand, is in the command's
/// man page and in the bash and zsh completions.
#[test]
fn help_completions_and_man_pages_agree() {
    use crate::support::{repl_sniff_ok, temp_dir};
    let arg = std::ffi::OsStr::new;
    let dir = temp_dir("man");
    repl_sniff_ok(&[arg("man"), dir.as_os_str()]);
    let completions = |shell: &str| {
        let out = repl_sniff_ok(&[arg("completions"), arg(shell)]);
        String::from_utf8(out.stdout).unwrap()
    };
    let (bash, zsh) = (completions("bash"), completions("zsh"));
    let options = |help: &str| -> Vec<String> {
        let mut v: Vec<String> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 3 && w.as_bytes()[2].is_ascii_lowercase())
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for sub in ["", "replay", "rdb", "check", "sniff", "report"] {
        let mut args = vec![];
        if !sub.is_empty() {
            args.push(arg(sub));
        }
        args.push(arg("--help"));
        let help = String::from_utf8(repl_sniff_ok(&args).stdout).unwrap();
        let page = if sub.is_empty() {
            "repl-sniff.1".to_string()
        } else {
            format!("repl-sniff-{sub}.1")
        };
        // roff escapes the dashes of options (`\-\-port`).
        let man = std::fs::read_to_string(dir.join(&page))
            .unwrap()
            .replace("\\-", "-");
        let listed = options(&help);
        assert!(listed.len() >= 2, "{sub}: {listed:?}");
        for option in listed {
            // Options named only in the examples text (e.g. `redis-cli --rdb`) are not ours.
            if help.contains(&format!("redis-cli {option}")) {
                continue;
            }
            assert!(man.contains(&option), "{option} of `{sub}` not in {page}");
            assert!(
                bash.contains(&option),
                "{option} of `{sub}` not in the bash completions"
            );
            assert!(
                zsh.contains(&option),
                "{option} of `{sub}` not in the zsh completions"
            );
        }
    }
}

/// `repl-sniff report REPORT.json` prints the run's text summary, as the run printed it.
#[test]
fn a_saved_report_prints_its_text_summary() {
    let path = fixture("captures/redis-7.0.15/full-disk.pcap");
    let json = scratch("summary-report.json");
    let run = repl_sniff(&[
        "replay",
        "-q",
        path.to_str().unwrap(),
        "--report-json",
        json.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let later = repl_sniff(&["report", json.to_str().unwrap()]);
    assert!(later.status.success(), "{}", text(&later.stderr));
    assert_eq!(text(&later.stdout), text(&run.stdout));
    assert!(text(&later.stdout).contains("full sync: handshake"));
}
