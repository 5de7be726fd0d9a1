//! The connections of a run: every live [`Session`], the pairing of two-connection syncs, and
//! the deadline of an RDB connection that never gives its offsets.
//!
//! Sans-IO like one session, and driven the same way: [`Links::handle`] with each [`Input`],
//! [`Links::tick`] as time goes by, then [`Links::poll`] until it returns `None`. What comes
//! out is every session's events in the order they happened, and, right after the event that
//! made two connections one sync, a [`Linked::Paired`]. Pairing acts back on sessions only
//! here (a main connection's offsets come from its RDB connection's `+FULLRESYNC`): nothing
//! downstream of `poll` calls in again.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::analyzer::event::Event;
use crate::analyzer::input::{Chunk, Direction, Input, InputKind, Timestamp};
use crate::analyzer::pairing::{Matcher, Pairing};
use crate::analyzer::session::{Config, Session};

/// What the links say, in the order it happened.
#[derive(Debug, Clone)]
pub enum Linked {
    /// An event of one connection.
    Event(Event),
    /// `rdb` turned out to be the RDB connection of `main`'s sync (said right after the event
    /// that showed it): what it reports from now on belongs to `main`'s report.
    Paired {
        /// The main connection's session.
        main: u64,
        /// The RDB connection's session.
        rdb: u64,
        /// When.
        at: Timestamp,
    },
}

/// Where `AUTH` arguments lie in the bytes of one input of the replica's direction, for a
/// recording that must not show them (positions count that direction's bytes from the
/// connection's start). Empty for every other input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Secrets<'a> {
    /// Where the input's bytes begin.
    pub pos: u64,
    /// The `AUTH` arguments these bytes completed (a range may begin before `pos`, in bytes a
    /// recording held back).
    pub ranges: &'a [(u64, u64)],
    /// Where the command these bytes end inside began, if it may still turn out to carry a
    /// secret.
    pub hold: Option<u64>,
}

/// Every live connection of a run.
#[derive(Debug)]
pub struct Links {
    cfg: Config,
    /// How long a main connection waits for its RDB connection's offsets (the replica's own
    /// `repl-timeout`).
    repl_timeout: Duration,
    sessions: BTreeMap<u64, Session>,
    pairing: Matcher,
    /// Sessions with events still to say, the one saying them on top (a main connection
    /// given its offsets goes above its RDB connection, as it happened).
    draining: Vec<u64>,
    /// What is said right after the event just said (a pairing it made).
    next: Option<Linked>,
}

impl Links {
    /// Links whose sessions use `cfg`; a main connection whose RDB connection has not given
    /// the offsets within `repl_timeout` goes on without them.
    pub fn new(cfg: Config, repl_timeout: Duration) -> Links {
        Links {
            cfg,
            repl_timeout,
            sessions: BTreeMap::new(),
            pairing: Matcher::default(),
            draining: Vec::new(),
            next: None,
        }
    }

    /// Analyses one input; returns where its bytes hold secrets (for a recording).
    pub fn handle(&mut self, input: &Input) -> Secrets<'_> {
        let (id, at) = (input.conn, input.at);
        // Where a replica's bytes begin in its direction, for the secrets found in them.
        let mut pos = None;
        match &input.kind {
            InputKind::Open { .. } => {
                if let Some(session) = Session::opened_by(input, self.cfg) {
                    self.sessions.insert(id, session);
                }
            }
            InputKind::Data { dir, bytes } => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    pos = (*dir == Direction::ReplicaToMaster).then(|| s.bytes_seen(*dir));
                    s.feed(Chunk {
                        dir: *dir,
                        at,
                        bytes,
                    });
                }
            }
            InputKind::Gap { dir, len, why } => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.skip(*dir, at, *len, *why);
                }
            }
            InputKind::Stalled { .. } => {}
            InputKind::Close { reason } => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.finish(at, reason);
                }
            }
        }
        self.draining.push(id);
        match (pos, self.sessions.get(&id)) {
            (Some(pos), Some(s)) => Secrets {
                pos,
                ranges: s.secret_ranges(),
                hold: s.pending_secret_from(),
            },
            _ => Secrets::default(),
        }
    }

    /// Time has advanced to `now`: a main connection whose RDB connection has not given the
    /// offsets within `repl-timeout` goes on without them, as the replica itself gives up.
    pub fn tick(&mut self, now: Timestamp) {
        let late: Vec<u64> = (self.sessions.iter())
            .filter(|(_, s)| {
                (s.awaiting_anchor_since()).is_some_and(|t| now.since(t) > self.repl_timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let why = format!(
                "no RDB connection gave the offsets within repl-timeout ({} s)",
                self.repl_timeout.as_secs()
            );
            if let Some(s) = self.sessions.get_mut(&id) {
                s.unpaired(now, why);
            }
            self.draining.push(id);
        }
    }

    /// The next thing the links say, oldest first. Events are taken from their session as
    /// they are asked for, so an event is moved once, from its session to the caller.
    pub fn poll(&mut self) -> Option<Linked> {
        if self.next.is_some() {
            return self.next.take();
        }
        while let Some(&top) = self.draining.last() {
            let Some(session) = self.sessions.get_mut(&top) else {
                self.draining.pop();
                continue;
            };
            let Some(e) = session.poll_event() else {
                let ended = session.has_ended();
                self.draining.pop();
                if ended {
                    self.close(top);
                }
                continue;
            };
            // Stream commands, ACKs and keep-alives never pair; skipping them keeps the
            // per-command cost where it was.
            if !e.kind.is_routine() {
                self.pair(&e);
            }
            return Some(Linked::Event(e));
        }
        None
    }

    /// The live session `id`.
    pub fn session(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// The live sessions' ids, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.sessions.keys().copied().collect()
    }

    /// What pairing makes of `e`: a pairing is said right after it; a main connection given
    /// its offsets, or told it will not get them, says what that changes next.
    fn pair(&mut self, e: &Event) {
        for action in self.pairing.observe(e) {
            match action {
                Pairing::Paired { main, rdb } => {
                    self.next = Some(Linked::Paired {
                        main,
                        rdb,
                        at: e.ts,
                    });
                }
                Pairing::Anchor {
                    main,
                    replid,
                    offset,
                } => {
                    if let Some(s) = self.sessions.get_mut(&main) {
                        s.anchor(e.ts, replid, offset);
                        self.draining.push(main);
                    }
                }
                Pairing::Unpaired { main, why } => {
                    if let Some(s) = self.sessions.get_mut(&main) {
                        s.unpaired(e.ts, why);
                        self.draining.push(main);
                    }
                }
            }
        }
    }

    /// Session `id` has ended and said its last: it goes, and its pairing with it once its
    /// partner has gone too (so a proxy that serves clients for months keeps bounded state).
    fn close(&mut self, id: u64) {
        self.sessions.remove(&id);
        match self.pairing.partner(id) {
            Some(p) if self.sessions.contains_key(&p) => {}
            Some(p) => {
                self.pairing.forget(id);
                self.pairing.forget(p);
            }
            None => self.pairing.forget(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::analyzer::event::{EventKind, SyncKind};

    const M: Direction = Direction::MasterToReplica;
    const R: Direction = Direction::ReplicaToMaster;
    const REPLID: &str = "95835e068611862944db211d287d8824a71041a2";

    fn resp(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }

    /// Feeds `(conn, dir, bytes)` steps (a connection opens with its first); returns all
    /// that was said, in order.
    fn said(steps: &[(u64, Direction, Vec<u8>)]) -> Vec<Linked> {
        let mut links = Links::new(Config::default(), Duration::from_secs(60));
        let mut out = Vec::new();
        let mut opened = std::collections::BTreeSet::new();
        for (i, (conn, dir, bytes)) in steps.iter().enumerate() {
            let at = Timestamp(1000 * (i as u64 + 1));
            if opened.insert(*conn) {
                let kind = InputKind::Open {
                    replica: format!("127.0.0.1:{}", 40000 + conn),
                    upstream: "127.0.0.1:6379".into(),
                    joined_late: false,
                };
                links.handle(&Input {
                    conn: *conn,
                    at,
                    kind,
                });
                out.extend(std::iter::from_fn(|| links.poll()));
            }
            let bytes = Bytes::from(bytes.clone());
            let kind = InputKind::Data { dir: *dir, bytes };
            links.handle(&Input {
                conn: *conn,
                at,
                kind,
            });
            out.extend(std::iter::from_fn(|| links.poll()));
        }
        out
    }

    #[test]
    fn a_pairing_is_said_after_its_event_and_the_held_stream_after_the_offsets_it_waited_for() {
        let set = resp(&["SET", "k", "v"]);
        let rdb_conn = resp(&["REPLCONF", "rdb-channel", "1", "main-ch-client-id", "7"]);
        let out = said(&[
            (1, R, resp(&["PSYNC", "?", "-1"])),
            (1, M, b"+RDBCHANNELSYNC 7\r\n".to_vec()),
            // The stream comes before the RDB connection says where it starts: held.
            (1, M, set.clone()),
            (2, R, rdb_conn),
            (2, M, b"+OK\r\n".to_vec()),
            (2, R, resp(&["PSYNC", "?", "-1"])),
            (2, M, format!("+FULLRESYNC {REPLID} 100\r\n").into_bytes()),
        ]);
        let paired = out
            .iter()
            .position(|l| {
                matches!(
                    l,
                    Linked::Paired {
                        main: 1,
                        rdb: 2,
                        ..
                    }
                )
            })
            .expect("paired");
        assert!(
            matches!(&out[paired - 1], Linked::Event(e) if e.session == 2 && matches!(e.kind, EventKind::Channel { .. })),
            "right after the RDB connection's announcement: {:?}",
            out[paired - 1]
        );
        let event = |l: &Linked| match l {
            Linked::Event(e) => Some((e.session, e.kind.clone())),
            Linked::Paired { .. } => None,
        };
        let kinds: Vec<(u64, EventKind)> = out.iter().filter_map(event).collect();
        let fullresync = kinds.iter().position(|(s, k)| {
            *s == 2
                && matches!(
                    k,
                    EventKind::SyncStart {
                        sync: SyncKind::Full,
                        ..
                    }
                )
        });
        let command = kinds
            .iter()
            .position(|(s, k)| *s == 1 && matches!(k, EventKind::Command { .. }));
        assert!(fullresync.unwrap() < command.unwrap(), "{kinds:?}");
        let end = kinds.iter().find_map(|(_, k)| match k {
            EventKind::Command { end, .. } => Some(*end),
            _ => None,
        });
        assert_eq!(
            end,
            Some(Some(100 + set.len() as u64)),
            "exact, from the anchor"
        );
    }

    #[test]
    fn a_closed_session_goes_once_its_last_event_is_said() {
        let mut links = Links::new(Config::default(), Duration::from_secs(60));
        let (conn, at) = (1, Timestamp(1));
        let kind = InputKind::Open {
            replica: "127.0.0.1:40001".into(),
            upstream: "127.0.0.1:6379".into(),
            joined_late: false,
        };
        links.handle(&Input { conn, at, kind });
        let kind = InputKind::Close {
            reason: "end".into(),
        };
        links.handle(&Input { conn, at, kind });
        assert!(
            links.session(1).is_some(),
            "its events are still to be said"
        );
        let said: Vec<Linked> = std::iter::from_fn(|| links.poll()).collect();
        assert!(matches!(
            said.last(),
            Some(Linked::Event(e)) if matches!(e.kind, EventKind::SessionEnd { .. })
        ));
        assert!(links.session(1).is_none() && links.ids().is_empty());
    }
}
