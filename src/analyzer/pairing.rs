//! Pairs the two connections of a two-connection full sync (Redis 8's RDB channel, Valkey's
//! dual channel) and says when the main connection can have its offsets.
//!
//! A sans-IO matcher fed every session's events, like the fold. Two connections pair when
//! they name the same client id (each session says so with an [`EventKind::Channel`] event),
//! one as `main` and one as `rdb`, to the same upstream from the same replica host. Either may
//! come first. Two replicas syncing at once name different ids; `redis-cli --rdb` names none,
//! so it is never paired.

use std::collections::{HashMap, HashSet};

use crate::analyzer::event::{Channel, Event, EventKind, SyncKind};

/// What the links should do about a pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// `rdb` is the RDB connection of `main`'s sync: from now on it reports into `main`.
    Paired {
        /// The main connection's session.
        main: u64,
        /// The RDB connection's session.
        rdb: u64,
    },
    /// The RDB connection said where the main connection's stream starts (Redis 8:
    /// `+FULLRESYNC <replid> <offset>` on the RDB connection).
    Anchor {
        /// The main connection's session.
        main: u64,
        /// The master's replication id.
        replid: Option<String>,
        /// The snapshot's offset: the main stream starts at the next byte.
        offset: u64,
    },
    /// The RDB connection ended before it said where the stream starts.
    Unpaired {
        /// The main connection's session.
        main: u64,
        /// Why, for people.
        why: String,
    },
}

#[derive(Debug, Clone)]
struct Peer {
    /// The replica's host (its address without the port: the two connections have
    /// different ports).
    host: String,
    upstream: String,
}

/// Matches connections by the client ids they announce.
#[derive(Debug, Default)]
pub struct Matcher {
    peers: HashMap<u64, Peer>,
    /// Announcements waiting for their partner: (upstream, host, client id) → session.
    waiting: HashMap<(String, String, u64), (u64, Channel)>,
    /// Paired RDB connection → main connection.
    main_of: HashMap<u64, u64>,
    /// Paired main connection → RDB connection.
    rdb_of: HashMap<u64, u64>,
    /// RDB connections' `+FULLRESYNC` seen before they paired.
    anchors: HashMap<u64, (Option<String>, u64)>,
    /// Main connections whose anchor was given.
    anchored: HashSet<u64>,
}

impl Matcher {
    /// Looks at one event; returns what it makes happen (nothing, or one or two things, in
    /// order).
    pub fn observe(&mut self, e: &Event) -> Vec<Pairing> {
        let first = self.step(e);
        let mut out: Vec<Pairing> = first.into_iter().collect();
        if let Some(Pairing::Paired { main, .. }) = out.first() {
            // An RDB connection that gave its anchor before it paired.
            out.extend(self.pending_anchor(*main));
        }
        out
    }

    fn step(&mut self, e: &Event) -> Option<Pairing> {
        let s = e.session;
        match &e.kind {
            EventKind::SessionStart { replica, upstream } => {
                let host = host_of(replica).to_string();
                let upstream = upstream.clone();
                self.peers.insert(s, Peer { host, upstream });
                None
            }
            EventKind::Channel { channel, link } => self.announce(s, *channel, *link),
            EventKind::SyncStart {
                sync: SyncKind::Full,
                replid,
                offset: Some(offset),
            } => {
                let anchor = (replid.clone(), *offset);
                match self.main_of.get(&s) {
                    Some(&main) => self.anchor(main, anchor),
                    None => {
                        self.anchors.insert(s, anchor);
                        None
                    }
                }
            }
            EventKind::SessionEnd { .. } => self.ended(s),
            _ => None,
        }
    }

    /// The main connection a paired RDB connection reports into.
    pub fn main_of(&self, rdb: u64) -> Option<u64> {
        self.main_of.get(&rdb).copied()
    }

    /// The other connection of `session`'s pair, if it is paired.
    pub fn partner(&self, session: u64) -> Option<u64> {
        (self.main_of.get(&session))
            .or_else(|| self.rdb_of.get(&session))
            .copied()
    }

    /// Forgets a session that has ended (and whose partner has, if it was paired).
    pub fn forget(&mut self, session: u64) {
        if let Some(main) = self.main_of.remove(&session) {
            self.rdb_of.remove(&main);
            self.anchored.remove(&main);
        }
        if let Some(rdb) = self.rdb_of.remove(&session) {
            self.main_of.remove(&rdb);
        }
        self.anchored.remove(&session);
        self.anchors.remove(&session);
    }

    fn announce(&mut self, s: u64, channel: Channel, link: u64) -> Option<Pairing> {
        let peer = self.peers.get(&s)?;
        let key = (peer.upstream.clone(), peer.host.clone(), link);
        match self.waiting.get(&key) {
            Some(&(other, theirs)) if other != s && theirs != channel => {
                self.waiting.remove(&key);
                let (main, rdb) = match channel {
                    Channel::Main => (s, other),
                    Channel::Rdb => (other, s),
                };
                self.main_of.insert(rdb, main);
                self.rdb_of.insert(main, rdb);
                Some(Pairing::Paired { main, rdb })
            }
            _ => {
                self.waiting.insert(key, (s, channel));
                None
            }
        }
    }

    fn pending_anchor(&mut self, main: u64) -> Option<Pairing> {
        let rdb = *self.rdb_of.get(&main)?;
        let anchor = self.anchors.remove(&rdb)?;
        self.anchor(main, anchor)
    }

    fn anchor(&mut self, main: u64, (replid, offset): (Option<String>, u64)) -> Option<Pairing> {
        self.anchored.insert(main);
        Some(Pairing::Anchor {
            main,
            replid,
            offset,
        })
    }

    fn ended(&mut self, s: u64) -> Option<Pairing> {
        self.peers.remove(&s);
        self.waiting.retain(|_, (w, _)| *w != s);
        self.anchors.remove(&s);
        let main = *self.main_of.get(&s)?;
        if self.anchored.contains(&main) {
            return None;
        }
        let why = format!("its RDB connection (session {s}) ended before it gave the offsets");
        Some(Pairing::Unpaired { main, why })
    }
}

/// The host part of `host:port` (or `[v6]:port`).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}
