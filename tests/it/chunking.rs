//! Chunk boundaries never change what the analyzer says: every shipped capture, and the byte
//! streams of live sessions (disk and diskless full syncs, a partial resync) recorded through
//! the in-process proxy, are fed again whole, byte by byte, at random split points, and
//! coalesced.

use std::time::Duration;

use repl_sniff::analyzer::event::WarningKind;
use repl_sniff::{Chunk, Config, Event, EventKind, Input, InputKind, Session};

use crate::support::fixtures;
use crate::support::splits::{assert_same, Split};

use crate::support::{load_dataset, write_workload};
use crate::support::{wait_for_quiescence, wait_until, InProcessProxy, Server, Version};

/// Feeds connection `id`'s inputs to a fresh analyzer, each data input cut by `split`;
/// returns its events.
fn refeed(inputs: &[Input], id: u64, split: Split) -> Vec<Event> {
    let mut session: Option<Session> = None;
    let mut state = 0;
    let mut out = Vec::new();
    for input in inputs.iter().filter(|i| i.conn == id) {
        let at = input.at;
        match &input.kind {
            InputKind::Open { .. } => session = Session::opened_by(input, Config::default()),
            InputKind::Data { dir, bytes } => {
                let s = session.as_mut().unwrap();
                for piece in split.pieces(bytes, &mut state) {
                    s.feed(Chunk {
                        dir: *dir,
                        at,
                        bytes: piece,
                    });
                }
            }
            InputKind::Gap { dir, len, why } => {
                session.as_mut().unwrap().skip(*dir, at, *len, *why);
            }
            InputKind::Close { reason } => session.as_mut().unwrap().finish(at, reason),
            // The relay's timing news: the session's bytes are what is compared here.
            InputKind::Stalled { .. } => {}
        }
        let s = session.as_mut().unwrap();
        out.extend(std::iter::from_fn(|| s.poll_event()));
    }
    out
}

/// The connections opened in `inputs`.
fn connections(inputs: &[Input]) -> std::collections::BTreeSet<u64> {
    inputs
        .iter()
        .filter(|i| matches!(i.kind, InputKind::Open { .. }))
        .map(|i| i.conn)
        .collect()
}

/// Merges consecutive data inputs of the same connection and direction into one.
fn coalesce(inputs: &[Input]) -> Vec<Input> {
    let mut out: Vec<Input> = Vec::new();
    for input in inputs {
        if let (Some(prev), InputKind::Data { dir, bytes }) = (out.last_mut(), &input.kind) {
            if let InputKind::Data {
                dir: pdir,
                bytes: pbytes,
            } = &mut prev.kind
            {
                if prev.conn == input.conn && pdir == dir {
                    *pbytes = [&pbytes[..], &bytes[..]].concat().into();
                    prev.at = input.at;
                    continue;
                }
            }
        }
        out.push(input.clone());
    }
    out
}

/// What was seen, without when: timestamps and durations derived from them are dropped.
fn kinds(events: &[Event]) -> Vec<EventKind> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::RdbEnd { framing, bytes, .. } => EventKind::RdbEnd {
                framing: *framing,
                bytes: *bytes,
                duration_us: 0,
            },
            k => k.clone(),
        })
        .collect()
}

#[test]
fn split_invariance_of_live_disk_diskless_and_partial_sessions() {
    let v = Version::V7;
    let master = Server::start(v, "master", &["--repl-diskless-sync", "no"]);
    load_dataset(&mut master.client());
    let proxy = InProcessProxy::start(master.port, 64 << 20, vec![]);
    let via_proxy = ["--replicaof", "127.0.0.1", &proxy.port.to_string()];

    let disk_replica = Server::start(v, "replica-disk", &via_proxy);
    wait_until("disk sync", Duration::from_secs(30), || {
        disk_replica.link_up()
    });
    write_workload(&mut master.client());
    wait_for_quiescence(&master, &disk_replica);

    master
        .client()
        .cmd(&["CONFIG", "SET", "repl-diskless-sync", "yes"]);
    master
        .client()
        .cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
    let diskless_replica = Server::start(v, "replica-diskless", &via_proxy);
    wait_until("diskless sync", Duration::from_secs(30), || {
        diskless_replica.link_up()
    });
    disk_replica
        .client()
        .cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    wait_until("partial resync", Duration::from_secs(30), || {
        master.info_u64("stats", "sync_partial_ok") == 1 && disk_replica.link_up()
    });
    master.client().cmd(&["SET", "last", "1"]);
    master.client().cmd(&["WAIT", "2", "5000"]);
    let (live, inputs) = proxy.stop();

    let ids = connections(&inputs);
    assert_eq!(ids.len(), 3, "three sessions: disk, diskless, partial");
    let syncs: Vec<String> = live
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RdbStart { framing, .. } => Some(format!("{framing:?}")),
            EventKind::SyncStart { sync, .. } => Some(format!("{sync:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(syncs, ["Full", "Disk", "Full", "Diskless", "Partial"]);

    let coalesced = coalesce(&inputs);
    assert!(coalesced.len() < inputs.len());
    for id in ids {
        // What the session said; the monitor adds its own (why, status lines, and the lag
        // warnings of its timing: a 2 MB SET in the catch-up is lag before the first ACK).
        let said = |e: &&Event| {
            !matches!(
                e.kind,
                EventKind::Why { .. }
                    | EventKind::Status { .. }
                    | EventKind::Warning {
                        kind: WarningKind::Lag,
                        ..
                    }
            )
        };
        let live: Vec<Event> = live
            .iter()
            .filter(|e| e.session == id)
            .filter(said)
            .cloned()
            .collect();
        for split in Split::ALL {
            let got = refeed(&inputs, id, split);
            assert_same(&got, &live, &format!("session {id} {split:?}"));
        }
        // Coalescing changes when things were seen, never what was seen.
        let merged = kinds(&refeed(&coalesced, id, Split::Whole));
        assert_same(&merged, &kinds(&live), &format!("session {id} coalesced"));
    }
}

#[test]
fn every_fixture_gives_the_same_events_at_every_split() {
    for capture in fixtures::captures() {
        let inputs = fixtures::reassembled(&capture);
        let ids = connections(&inputs);
        assert!(!ids.is_empty(), "{}", fixtures::name(&capture));
        for id in ids {
            let whole = refeed(&inputs, id, Split::Whole);
            for split in Split::ALL {
                let got = refeed(&inputs, id, split);
                let what = format!("{} session {id} {split:?}", fixtures::name(&capture));
                assert_same(&got, &whole, &what);
            }
        }
    }
}
