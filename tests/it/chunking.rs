//! Chunk boundaries never change what the analyzer says: every shipped capture, and the byte
//! streams of live sessions (disk and diskless full syncs, a partial resync) recorded through
//! the in-process proxy, are fed again whole, byte by byte, at random split points, and
//! coalesced.

use std::time::Duration;

use repl_sniff::monitor::Record;
use repl_sniff::tcp::Output;
use repl_sniff::{Chunk, Config, Event, EventKind, Session};

use crate::fixtures;
use crate::splits::{assert_same, Split};

use crate::proxy::{load_dataset, write_workload};
use crate::support::{wait_for_quiescence, wait_until, InProcessProxy, Server, Version};

/// Feeds session `id`'s records to a fresh analyzer, each data record cut by `split`.
fn refeed(records: &[Record], id: u64, split: &mut dyn FnMut(&[u8]) -> Vec<usize>) -> Vec<Event> {
    let mut session = None;
    let mut out = Vec::new();
    for r in records {
        match r {
            Record::Open {
                id: rid,
                at,
                replica,
                upstream,
            } if *rid == id => {
                session = Some(Session::new(id, *at, replica, upstream, Config::default()));
            }
            Record::Data {
                id: rid,
                dir,
                at,
                bytes,
            } if *rid == id => {
                let s = session.as_mut().unwrap();
                let mut start = 0;
                let mut cuts = split(bytes);
                cuts.push(bytes.len());
                for end in cuts {
                    s.feed(Chunk {
                        dir: *dir,
                        at: *at,
                        bytes: &bytes[start..end],
                    });
                    start = end;
                }
            }
            Record::Close {
                id: rid,
                at,
                reason,
            } if *rid == id => {
                session.as_mut().unwrap().finish(*at, reason);
            }
            _ => continue,
        }
        let s = session.as_mut().unwrap();
        while let Some(e) = s.poll_event() {
            out.push(e);
        }
    }
    out
}

/// Merges consecutive records of the same session and direction into one.
fn coalesce(records: &[Record]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in records {
        if let (
            Some(Record::Data {
                id: pid,
                dir: pdir,
                at: pat,
                bytes: pbytes,
            }),
            Record::Data { id, dir, at, bytes },
        ) = (out.last_mut(), r)
        {
            if pid == id && pdir == dir {
                pbytes.extend_from_slice(bytes);
                *pat = *at;
                continue;
            }
        }
        out.push(r.clone());
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
    let (live, records) = proxy.stop();

    let ids: std::collections::BTreeSet<u64> = live.iter().map(|e| e.session).collect();
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

    let coalesced = coalesce(&records);
    assert!(coalesced.len() < records.len());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for id in ids {
        let live: Vec<Event> = live.iter().filter(|e| e.session == id).cloned().collect();
        let whole = refeed(&records, id, &mut |_| vec![]);
        assert_same(&whole, &live, &format!("session {id} whole"));
        let bytewise = refeed(&records, id, &mut |b| (1..b.len()).collect());
        assert_same(&bytewise, &live, &format!("session {id} byte by byte"));
        for _ in 0..3 {
            let random = refeed(&records, id, &mut |b| {
                let mut cuts = Vec::new();
                let mut at = 0;
                loop {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    at += 1 + (seed % 97) as usize;
                    if at >= b.len() {
                        return cuts;
                    }
                    cuts.push(at);
                }
            });
            assert_same(&random, &live, &format!("session {id} random chunks"));
        }
        // Coalescing changes when things were seen, never what was seen.
        let merged = kinds(&refeed(&coalesced, id, &mut |_| vec![]));
        assert_same(&merged, &kinds(&live), &format!("session {id} coalesced"));
    }
}

/// Feeds one connection of a reassembled capture to a fresh analyzer, each data chunk cut by
/// `split`; returns its events.
fn capture_session(inputs: &[Output], id: u64, split: Split) -> Vec<Event> {
    let mut session: Option<Session> = None;
    let mut state = 0;
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Output::Open {
                id: i,
                at,
                client,
                server,
                mid_stream,
            } if *i == id => {
                let (c, s, cfg) = (client.to_string(), server.to_string(), Config::default());
                session = Some(if *mid_stream {
                    Session::joined_late(id, *at, &c, &s, cfg)
                } else {
                    Session::new(id, *at, &c, &s, cfg)
                });
            }
            Output::Data {
                id: i,
                dir,
                at,
                bytes,
            } if *i == id => {
                let s = session.as_mut().unwrap();
                for piece in split.pieces(bytes, &mut state) {
                    s.feed(Chunk {
                        dir: *dir,
                        at: *at,
                        bytes: piece,
                    });
                }
            }
            Output::Gap {
                id: i,
                dir,
                at,
                len,
            } if *i == id => {
                let s = session.as_mut().unwrap();
                s.skip(*dir, *at, *len, repl_sniff::Skipped::NotCaptured);
            }
            Output::Close { id: i, at, reason } if *i == id => {
                session.as_mut().unwrap().finish(*at, reason);
            }
            _ => continue,
        }
        let s = session.as_mut().unwrap();
        out.extend(std::iter::from_fn(|| s.poll_event()));
    }
    out
}

#[test]
fn every_fixture_gives_the_same_events_at_every_split() {
    for capture in fixtures::captures() {
        let inputs = fixtures::reassembled(&capture);
        let ids: std::collections::BTreeSet<u64> = inputs
            .iter()
            .filter_map(|o| match o {
                Output::Open { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert!(!ids.is_empty(), "{}", fixtures::name(&capture));
        for id in ids {
            let whole = capture_session(&inputs, id, Split::Whole);
            for split in Split::ALL {
                let got = capture_session(&inputs, id, split);
                let what = format!("{} session {id} {split:?}", fixtures::name(&capture));
                assert_same(&got, &whole, &what);
            }
        }
    }
}
