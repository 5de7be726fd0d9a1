//! The connections of a run: every live [`Session`], the pairing of two-connection syncs, and
//! the deadline of an RDB connection that never gives its offsets.
//!
//! Sans-IO like one session, and driven the same way: [`Links::handle`] with each [`Input`],
//! [`Links::tick`] as time goes by, then [`Links::poll`] until it returns `None`. What comes
//! out is every session's events in the order they happened, and, right after the event that
//! made two connections one sync, a [`Linked::Paired`]. Pairing acts back on sessions only
//! here (a main connection's offsets come from its RDB connection's `+FULLRESYNC`): nothing
//! downstream of `poll` calls in again.

use std::collections::{BTreeMap, VecDeque};
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
    out: VecDeque<Linked>,
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
            out: VecDeque::new(),
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
        self.drain(id);
        if let InputKind::Close { .. } = input.kind {
            self.close(id);
        }
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
            self.drain(id);
        }
    }

    /// The next thing the links say, oldest first.
    pub fn poll(&mut self) -> Option<Linked> {
        self.out.pop_front()
    }

    /// The live session `id`.
    pub fn session(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// The live sessions' ids, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.sessions.keys().copied().collect()
    }

    /// Moves session `id`'s events to the output, each followed by what pairing makes of it.
    /// A main connection given its offsets, or told it will not get them, says what that
    /// changes before the rest of its RDB connection's events (depth first, as it happened).
    fn drain(&mut self, id: u64) {
        let mut stack = vec![id];
        while let Some(&top) = stack.last() {
            let Some(e) = self.sessions.get_mut(&top).and_then(Session::poll_event) else {
                stack.pop();
                continue;
            };
            // Stream commands, ACKs and keep-alives never pair; skipping them keeps the
            // per-command cost where it was.
            let actions = if e.kind.is_routine() {
                Vec::new()
            } else {
                self.pairing.observe(&e)
            };
            let at = e.ts;
            self.out.push_back(Linked::Event(e));
            for action in actions {
                match action {
                    Pairing::Paired { main, rdb } => {
                        self.out.push_back(Linked::Paired { main, rdb, at });
                    }
                    Pairing::Anchor {
                        main,
                        replid,
                        offset,
                    } => {
                        if let Some(s) = self.sessions.get_mut(&main) {
                            s.anchor(at, replid, offset);
                            stack.push(main);
                        }
                    }
                    Pairing::Unpaired { main, why } => {
                        if let Some(s) = self.sessions.get_mut(&main) {
                            s.unpaired(at, why);
                            stack.push(main);
                        }
                    }
                }
            }
        }
    }

    /// Session `id` has ended: it goes, and its pairing with it once its partner has gone too
    /// (so a proxy that serves clients for months keeps bounded state).
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
