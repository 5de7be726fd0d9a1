//! The analyzer of one TCP connection: a sans-IO state machine fed `(direction, timestamp,
//! bytes)` and producing [`Event`]s.
//!
//! It holds no socket and reads no clock. Drivers (the proxy, tests, replays) call
//! [`Session::feed`] with chunks in the order they were seen — a request before the reply it
//! caused — then drain [`Session::poll_event`] until it returns `None`, and finally call
//! [`Session::finish`]. Chunk boundaries never change the events.
//!
//! Each direction owns its state (`ReplicaSide`, `MasterSide`), and its phase is moved by
//! one function: the replica's (`ReplicaPhase`, `replica.rs`, `Session::enter_replica`) is a
//! command stream, found and then lost at most once; the master's (`MasterPhase`, `master/`,
//! `Session::enter_master`) goes through phases chosen by what the replica asked for. What
//! both consult, the handshake so far, is `handshake.rs`'s:
//!
//! ```text
//! Replies ──PSYNC→+FULLRESYNC──> AwaitPayload ──$len──> RdbDisk ──┐
//!    │                               │ └──$EOF:mark──> RdbEof ────┴──> Stream
//!    ├──PSYNC→+CONTINUE / +RDBCHANNELSYNC────────────────────────────> Stream
//!    ├──SYNC──> AwaitPayload (legacy, offsets unknown)
//!    └──a non-replication command──> Opaque (a client: replies are not parsed)
//! any phase ──bytes that break the protocol──> Lost (bytes counted, never parsed again)
//! ```
//!
//! Offsets follow `protocol.md` §11: stream byte *k* after a full sync at offset `OFF` has
//! offset `OFF + k`; after `+CONTINUE` the first byte has the `PSYNC` offset. RDB bytes,
//! framing, keep-alives and reply lines are outside the offset space.

mod anchor;
mod encrypted;
mod handshake;
mod master;
mod migration;
mod replica;

use std::collections::VecDeque;

pub use crate::analyzer::event::Role;
use crate::analyzer::event::{Event, EventKind};
use crate::analyzer::input::{Chunk, Direction, Input, InputKind, Sides, Skipped, Timestamp};
use crate::protocol::cluster::{bus_sender, is_bus_prefix, BUS_SIGNATURE};
use crate::protocol::compression::MagicFinder;
use crate::protocol::handshake::LineReader;
use crate::protocol::resp;
use crate::protocol::tls::is_tls_prefix;
use anchor::Anchor;
pub use anchor::MAX_HELD_EVENTS;
use handshake::{Handshake, Pending};
use master::{MasterPhase, RdbTransfer, Stream};

/// The largest replication offset: the servers keep offsets as signed 64-bit numbers, so a
/// larger one is a protocol anomaly, and offset arithmetic below it cannot overflow.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// Bounds of one session's analysis.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// RESP parser bounds.
    pub limits: resp::Limits,
    /// Longest reply line from the master before the stream (the replica reads at most 256).
    pub max_reply_line: usize,
    /// Most handshake requests remembered while waiting for their replies.
    pub max_pending: usize,
    /// How many of the biggest keys an RDB analysis keeps.
    pub rdb_top: usize,
    /// Returns true if and only if key names may appear in events and reports
    /// (`--show-keys`); otherwise each is a short hash of it.
    pub show_keys: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: resp::Limits::default(),
            max_reply_line: 4096,
            max_pending: 1024,
            rdb_top: 10,
            show_keys: false,
        }
    }
}

/// Where the replica's direction is.
#[derive(Debug)]
enum ReplicaPhase {
    /// Looking for a command boundary: joined mid-connection, or `after_gap`, past bytes the
    /// analysis did not see.
    Resync {
        finder: resp::BoundaryFinder,
        after_gap: bool,
    },
    /// Parsing commands.
    Commands,
    /// Lost after bytes that are not commands, or missing ones: only counted.
    Lost,
}

/// The analyzer of one connection.
#[derive(Debug)]
pub struct Session {
    id: u64,
    cfg: Config,
    events: VecDeque<Event>,
    /// Bytes seen so far in each direction.
    seen: Sides<u64>,
    /// The first bytes of a direction while they could still begin a TLS record (one or two
    /// bytes of `16 03`): held until the third says, so that TLS is recognised however the
    /// first bytes are split.
    tls_held: Sides<Vec<u8>>,
    role: Role,
    /// The replica's direction.
    replica: ReplicaSide,
    /// The master's direction.
    master: MasterSide,
    /// What the handshake has said so far, which both directions consult.
    handshake: Handshake,
    anchor: Anchor,
    /// Joined mid-connection: how the stream's offsets are being worked out.
    late: Option<LateAnchor>,
    /// A Valkey slot migration's source pushing to this connection's upstream.
    push: Option<migration::Push>,
    /// A TLS link: only counted, its hellos read.
    tls: Option<Box<encrypted::Encrypted>>,
    ended: bool,
}

/// What the replica's direction holds: its command parser, where that parser started, its
/// phase, and the secrets the last chunk completed.
#[derive(Debug)]
struct ReplicaSide {
    requests: resp::Parser,
    /// Position in the replica's direction of the first byte the request parser was fed.
    origin: u64,
    phase: ReplicaPhase,
    /// `AUTH` argument byte ranges (absolute positions in the replica's direction) found by
    /// the last [`Session::feed`]; cleared by the next one, so it holds at most one chunk's.
    secrets: Vec<(u64, u64)>,
}

/// What the master's direction holds: its phase, the reply-line reader, the stream and its
/// offsets, and the RDB transfer under way.
#[derive(Debug)]
struct MasterSide {
    phase: MasterPhase,
    lines: LineReader,
    stream: Stream,
    rdb: Option<RdbTransfer>,
    /// The stream's decoder, once a compressed stream has begun.
    compressed: Option<Box<master::Compressed>>,
}

/// A joined-late stream's offsets, from `REPLCONF GETACK`s and the ACKs that answer them:
/// the answer is the offset just before its GETACK. Two answers that agree anchor the
/// stream (a periodic ACK crossing a GETACK cannot mislead twice the same way).
#[derive(Debug, Default)]
struct LateAnchor {
    /// Stream bytes before the last GETACK not yet answered.
    getack_at: Option<u64>,
    /// The base the last answer gave.
    candidate: Option<u64>,
}

impl Session {
    /// Starts the analysis of connection `id` from `replica` to `upstream`, opened at `at`.
    pub fn new(id: u64, at: Timestamp, replica: &str, upstream: &str, cfg: Config) -> Session {
        let mut s = Session {
            id,
            cfg,
            events: VecDeque::new(),
            seen: Sides::default(),
            tls_held: Sides::default(),
            role: Role::Undetermined,
            replica: ReplicaSide {
                requests: resp::Parser::new(cfg.limits),
                origin: 0,
                phase: ReplicaPhase::Commands,
                secrets: Vec::new(),
            },
            master: MasterSide {
                phase: MasterPhase::Replies,
                lines: LineReader::default(),
                stream: Stream {
                    parser: resp::Parser::for_master_stream(cfg.limits),
                    started: false,
                    base: None,
                    bytes: 0,
                    outside: 0,
                    db: None,
                    in_multi: false,
                },
                rdb: None,
                compressed: None,
            },
            handshake: Handshake::default(),
            anchor: Anchor::NotNeeded,
            late: None,
            push: None,
            tls: None,
            ended: false,
        };
        s.emit(
            at,
            EventKind::SessionStart {
                replica: replica.to_string(),
                upstream: upstream.to_string(),
            },
        );
        s
    }

    /// Like [`Session::new`], for a connection that began before the capture did: both
    /// directions start at the first command boundary found, and offsets stay unknown.
    pub fn joined_late(
        id: u64,
        at: Timestamp,
        replica: &str,
        upstream: &str,
        cfg: Config,
    ) -> Session {
        let mut s = Session::new(id, at, replica, upstream, cfg);
        s.enter_replica(ReplicaPhase::Resync {
            finder: resp::BoundaryFinder::default(),
            after_gap: false,
        });
        s.late = Some(LateAnchor::default());
        s.enter_master(MasterPhase::Resync {
            finder: resp::BoundaryFinder::default(),
            after_gap: false,
            magic: Some(MagicFinder::default()),
        });
        s
    }

    /// The session an [`InputKind::Open`] starts (joined late if it says so); `None` for any
    /// other input.
    pub fn opened_by(input: &Input, cfg: Config) -> Option<Session> {
        let InputKind::Open {
            replica,
            upstream,
            joined_late,
        } = &input.kind
        else {
            return None;
        };
        let (id, at) = (input.conn, input.at);
        Some(if *joined_late {
            Session::joined_late(id, at, replica, upstream, cfg)
        } else {
            Session::new(id, at, replica, upstream, cfg)
        })
    }

    /// The `AUTH` argument ranges completed by the last [`Session::feed`], as absolute byte
    /// positions in the replica's direction (for masking in recordings). A range may begin
    /// before that chunk: an `AUTH` split across reads is reported when it completes.
    pub fn secret_ranges(&self) -> &[(u64, u64)] {
        &self.replica.secrets
    }

    /// Where the command the replica's direction ends inside began, if that command could
    /// still turn out to carry a secret (its name is not known yet, or it is `AUTH`).
    pub fn pending_secret_from(&self) -> Option<u64> {
        if !matches!(self.replica.phase, ReplicaPhase::Commands) {
            return None;
        }
        let start = self.replica.requests.command_start()?;
        self.replica
            .requests
            .partial_name()
            .is_none_or(|n| n.is("AUTH"))
            .then_some(self.replica.origin + start)
    }

    /// The RDB transfer under way, if any: bytes received, announced length, start time.
    pub fn rdb_progress(&self) -> Option<(u64, Option<u64>, Timestamp)> {
        let rdb = self.master.rdb.as_ref()?;
        match &self.master.phase {
            MasterPhase::RdbDisk { remaining } => {
                Some((rdb.bytes, Some(rdb.bytes + remaining), rdb.started))
            }
            MasterPhase::RdbEof { seen, .. } => Some((*seen, None, rdb.started)),
            _ => None,
        }
    }

    /// Keys the RDB under way has given so far, and those its `RESIZEDB` hints announce.
    pub fn rdb_keys(&self) -> Option<(u64, Option<u64>)> {
        Some(self.master.rdb.as_ref()?.contents.keys_so_far())
    }

    /// Bytes fed so far in direction `dir` (analysed or skipped).
    pub fn bytes_seen(&self, dir: Direction) -> u64 {
        self.seen[dir]
    }

    /// The session id given at creation.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What the connecting side has turned out to be so far.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Offset of the last stream byte seen, when offsets are known.
    pub fn offset_end(&self) -> Option<u64> {
        if self.master.stream.started {
            self.master.stream.offset_end()
        } else {
            None
        }
    }

    /// Consumes bytes seen on the link. Never fails: input that breaks the protocol becomes an
    /// [`EventKind::Desync`] and the rest of that direction is only counted.
    pub fn feed(&mut self, chunk: Chunk<'_>) {
        self.replica.secrets.clear();
        if self.ended || chunk.bytes.is_empty() {
            return;
        }
        let d = chunk.dir;
        if self.seen[d] == 0 {
            let held = &mut self.tls_held[d];
            let so_far = held.len() + chunk.bytes.len();
            if (so_far < 3 && is_tls_prefix(held, chunk.bytes))
                || (so_far < BUS_SIGNATURE.len() && is_bus_prefix(held, chunk.bytes))
            {
                held.extend_from_slice(chunk.bytes);
                return;
            }
            if !held.is_empty() {
                let mut first = std::mem::take(held);
                first.extend_from_slice(chunk.bytes);
                return self.feed_dir(chunk.dir, chunk.at, &first);
            }
        }
        self.feed_dir(chunk.dir, chunk.at, chunk.bytes);
    }

    fn feed_dir(&mut self, dir: Direction, at: Timestamp, bytes: &[u8]) {
        let d = dir;
        if self.tls.is_none() && self.role == Role::Undetermined && self.opens_tls(dir, bytes) {
            self.tls = Some(Box::default());
        }
        if self.tls.is_some() {
            return self.feed_encrypted(dir, at, bytes);
        }
        if self.seen[d] == 0 && bytes.starts_with(BUS_SIGNATURE) && self.role == Role::Undetermined
        {
            self.set_role(at, Role::ClusterBus);
            self.enter_master(MasterPhase::Opaque);
        }
        if self.role == Role::ClusterBus {
            if self.seen[d] == 0 {
                if let Some((node, port)) = bus_sender(bytes) {
                    self.emit(at, EventKind::ClusterNode { dir, node, port });
                }
            }
            self.seen[d] += bytes.len() as u64;
            return;
        }
        match dir {
            Direction::ReplicaToMaster => self.feed_requests(at, bytes),
            Direction::MasterToReplica => self.feed_master(at, bytes),
        }
    }

    /// Analyses what a direction held back while it could have been TLS (the connection
    /// ended, or bytes went missing, before the third byte came).
    fn release_held(&mut self, dir: Direction, at: Timestamp) {
        let held = std::mem::take(&mut self.tls_held[dir]);
        if !held.is_empty() {
            self.feed_dir(dir, at, &held);
        }
    }

    /// Accounts for `len` bytes that were forwarded but not seen by the analysis (it fell
    /// behind, or a capture lost them). Offsets stay exact where the framing allows it.
    pub fn skip(&mut self, dir: Direction, at: Timestamp, len: u64, why: Skipped) {
        if self.ended || len == 0 {
            return;
        }
        self.release_held(dir, at);
        if self.role == Role::ClusterBus || self.tls.is_some() {
            self.seen[dir] += len;
            return;
        }
        let reason = match why {
            Skipped::Behind => format!("{len} bytes were not analysed (analysis fell behind)"),
            Skipped::NotCaptured => format!("{len} bytes are missing from the capture"),
        };
        match dir {
            Direction::ReplicaToMaster => self.skip_requests(at, len, reason),
            Direction::MasterToReplica => {
                if let Some(rdb) = &mut self.master.rdb {
                    rdb.contents.abandon(len, why == Skipped::Behind);
                }
                self.skip_master(at, len, reason);
            }
        }
    }

    /// Signals that the connection ended at `at`; emits the closing event.
    pub fn finish(&mut self, at: Timestamp, reason: &str) {
        if self.ended {
            return;
        }
        self.release_held(Direction::ReplicaToMaster, at);
        self.release_held(Direction::MasterToReplica, at);
        self.tell_encrypted(at);
        let why = "the connection ended before the RDB connection gave the offsets".to_string();
        self.unpaired(at, why);
        if let Some((bytes, declared, _)) = self.rdb_progress() {
            self.rdb_aborted(at, bytes, declared);
        }
        let offset_end = self.offset_end();
        self.emit(
            at,
            EventKind::SessionEnd {
                reason: reason.to_string(),
                bytes_to_master: self.seen[Direction::ReplicaToMaster],
                bytes_to_replica: self.seen[Direction::MasterToReplica],
                stream_bytes: self.master.stream.bytes,
                offset_end,
            },
        );
        self.ended = true;
    }

    /// Whether the connection has ended ([`Session::finish`]).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Returns the next event produced by earlier calls, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What the connecting side turned out to be: the one place the role changes, and says so.
    fn set_role(&mut self, at: Timestamp, role: Role) {
        if self.role != role {
            self.role = role;
            self.emit(at, EventKind::Role { role });
        }
    }

    fn emit(&mut self, at: Timestamp, kind: EventKind) {
        let e = Event {
            session: self.id,
            ts: at,
            kind,
        };
        if matches!(self.anchor, Anchor::Holding { .. }) {
            self.hold(e);
        } else {
            self.events.push_back(e);
        }
    }

    /// Reports a desync at byte `position` of direction `dir`.
    fn desync(
        &mut self,
        dir: Direction,
        at: Timestamp,
        position: u64,
        offset: Option<u64>,
        reason: String,
    ) {
        self.emit(
            at,
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::event::{Framing, SyncKind};
    use crate::protocol::resp::Name;

    const M: Direction = Direction::MasterToReplica;
    const R: Direction = Direction::ReplicaToMaster;
    const ID: &str = "3942fbd58f44ed5ba7b5962efa141dd34e423bbc";

    /// Feeds `(direction, bytes)` steps at increasing timestamps; returns the event kinds.
    fn run(steps: &[(Direction, &[u8])]) -> Vec<EventKind> {
        let mut s = Session::new(1, Timestamp(0), "r", "m", Config::default());
        for (i, (dir, bytes)) in steps.iter().enumerate() {
            let at = Timestamp(i as u64 + 1);
            s.feed(Chunk {
                dir: *dir,
                at,
                bytes,
            });
        }
        s.finish(Timestamp(1000), "end");
        std::iter::from_fn(|| s.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    #[test]
    fn a_cluster_bus_link_is_recognised_by_its_header_however_split_and_never_desyncs() {
        // A bus PING: signature, total length, version, port 7000, type, count, three
        // epochs and offsets, the sender's name, then binary.
        let mut ping = b"RCmb".to_vec();
        ping.extend_from_slice(&[0, 0, 0x08, 0x70, 0, 1, 0x1b, 0x58, 0, 0, 0, 0]);
        ping.extend_from_slice(&[0; 24]);
        ping.extend_from_slice(ID.as_bytes());
        ping.extend((0..=255u8).cycle().take(2000));
        for split in [1, 2, 3, 4, 100] {
            let (a, b) = ping.split_at(split);
            let events = run(&[(R, a), (R, b), (M, &ping), (R, &ping[..50])]);
            let role = find(&events, |e| matches!(e, EventKind::Role { .. }));
            assert_eq!(
                role,
                &EventKind::Role {
                    role: Role::ClusterBus
                },
                "split {split}"
            );
            assert!(
                !events.iter().any(|e| matches!(e, EventKind::Desync { .. })),
                "split {split}: {events:?}"
            );
            // Its sender is named from a direction's first message when that came whole.
            let (node, port) = (ID.to_string(), 7000);
            let named = EventKind::ClusterNode { dir: M, node, port };
            assert!(events.contains(&named), "split {split}: {events:?}");
        }
        // A RESP client whose first bytes merely begin like it stays a client.
        let events = run(&[(R, b"RC"), (R, b"\r\n")]);
        assert!(!events.contains(&EventKind::Role {
            role: Role::ClusterBus
        }));
    }

    fn find(events: &[EventKind], pred: impl Fn(&EventKind) -> bool) -> &EventKind {
        events.iter().find(|e| pred(e)).expect("event not found")
    }

    fn end_of(events: &[EventKind]) -> (u64, Option<u64>) {
        match events.last() {
            Some(EventKind::SessionEnd {
                stream_bytes,
                offset_end,
                ..
            }) => (*stream_bytes, *offset_end),
            other => panic!("no session end: {other:?}"),
        }
    }

    #[test]
    fn keepalives_before_and_glued_to_fullresync_are_not_offsets() {
        // 7.0.15 diskless-delay-keepalive / slow-disk-keepalive: bare \n while the master
        // waits, one glued to the +FULLRESYNC line, more before `$<len>`.
        let full = format!("\n+FULLRESYNC {ID} 56\r\n\n\n$3\r\nRDB*1\r\n$4\r\nping\r\n");
        let ev = run(&[
            (R, b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"),
            (M, b"\n"),
            (M, full.as_bytes()),
            (R, b"\n"),
        ]);
        let keepalives = ev
            .iter()
            .filter(|e| matches!(e, EventKind::KeepAlive { .. }))
            .count();
        assert_eq!(keepalives, 5);
        assert_eq!(
            find(&ev, |e| matches!(e, EventKind::Command { .. })),
            &EventKind::Command {
                start: Some(57),
                end: Some(70),
                name: Name::new(b"PING"),
                sub: None,
                db: None,
                in_multi: false,
                bytes: 14
            }
        );
        assert_eq!(end_of(&ev), (14, Some(70)));
    }

    #[test]
    fn diskless_rdb_ends_at_its_mark_and_the_stream_follows() {
        let mark = "5806cca6e294561a8ea62ddbf10716c53218d234";
        let payload = format!("$EOF:{mark}\r\nREDIS0010...\x7f12345678{mark}*1\r\n$4\r\nping\r\n");
        let ev = run(&[
            (R, b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"),
            (M, format!("+FULLRESYNC {ID} 28\r\n").as_bytes()),
            (M, payload.as_bytes()),
        ]);
        let rdb = find(&ev, |e| matches!(e, EventKind::RdbEnd { .. }));
        assert!(matches!(
            rdb,
            EventKind::RdbEnd {
                framing: Framing::Diskless,
                bytes: 21,
                ..
            }
        ));
        assert_eq!(end_of(&ev), (14, Some(42)));
    }

    #[test]
    fn auth_passwords_are_redacted_and_usernames_kept() {
        // 6.0.9 auth-pass and 7.0.15 auth-acl.
        let ev = run(&[
            (R, b"*1\r\n$4\r\nPING\r\n"),
            (M, b"-NOAUTH Authentication required.\r\n"),
            (R, b"*2\r\n$4\r\nAUTH\r\n$11\r\ns3cret-pass\r\n"),
            (R, b"*3\r\n$4\r\nAUTH\r\n$4\r\nrepl\r\n$9\r\nrepl-pass\r\n"),
        ]);
        let auths: Vec<&Vec<String>> = ev
            .iter()
            .filter_map(|e| match e {
                EventKind::Request { name, args } if name.is("AUTH") => Some(args),
                _ => None,
            })
            .collect();
        assert_eq!(auths, [&vec!["<redacted>"], &vec!["repl", "<redacted>"]]);
        assert!(!format!("{ev:?}").contains("pass\""));
    }

    #[test]
    fn pipelined_handshake_replies_are_matched_in_order() {
        // 6.2+ / Valkey: the whole burst, then the replies in one segment.
        let ev = run(&[
            (R, b"*1\r\n$4\r\nPING\r\n"),
            (M, b"+PONG\r\n"),
            (R, b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n*3\r\n$8\r\nREPLCONF\r\n$7\r\nversion\r\n$5\r\n8.0.1\r\n"),
            (M, b"+OK\r\n-ERR Unrecognized REPLCONF option: version\r\n"),
        ]);
        let replies: Vec<String> = ev
            .iter()
            .filter_map(|e| match e {
                EventKind::Reply {
                    to: Some(to),
                    reply,
                } => Some(format!("{to} {reply}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            replies,
            [
                "PING +PONG",
                "REPLCONF +OK",
                "REPLCONF -ERR Unrecognized REPLCONF option: version"
            ]
        );
    }

    #[test]
    fn continue_resumes_at_the_psync_offset() {
        // 7.0.15 partial: PSYNC <id> 605 -> +CONTINUE <id>, backlog bytes from 605.
        let psync = format!("*3\r\n$5\r\nPSYNC\r\n$40\r\n{ID}\r\n$3\r\n605\r\n");
        let ev = run(&[
            (R, psync.as_bytes()),
            (
                M,
                format!("+CONTINUE {ID}\r\n*1\r\n$4\r\nping\r\n").as_bytes(),
            ),
            (
                R,
                b"*5\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\n618\r\n$4\r\nFACK\r\n$3\r\n618\r\n",
            ),
        ]);
        assert_eq!(
            find(&ev, |e| matches!(e, EventKind::SyncStart { .. })),
            &EventKind::SyncStart {
                sync: SyncKind::Partial,
                replid: Some(ID.into()),
                offset: Some(605)
            }
        );
        assert_eq!(
            find(&ev, |e| matches!(e, EventKind::Ack { .. })),
            &EventKind::Ack {
                offset: 618,
                fack: Some(618)
            }
        );
        assert_eq!(end_of(&ev), (14, Some(618)));
    }

    #[test]
    fn refusals_are_reported_not_desyncs() {
        let ev = run(&[
            (R, b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"),
            (
                M,
                b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n",
            ),
        ]);
        assert!(ev.iter().any(
            |e| matches!(e, EventKind::SyncRejected { reply } if reply.starts_with("-NOMASTERLINK"))
        ));
        assert!(!ev.iter().any(|e| matches!(e, EventKind::Desync { .. })));
    }

    #[test]
    fn a_broken_stream_desyncs_once_with_its_offset_and_keeps_counting() {
        let ev = run(&[
            (R, b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"),
            (
                M,
                format!("+FULLRESYNC {ID} 100\r\n$0\r\n*1\r\n$4\r\nping\r\n").as_bytes(),
            ),
            (M, b"+garbage\r\n"),
            (M, b"*1\r\n$4\r\nping\r\n"),
        ]);
        let desyncs: Vec<&EventKind> = ev
            .iter()
            .filter(|e| matches!(e, EventKind::Desync { .. }))
            .collect();
        assert_eq!(desyncs.len(), 1);
        assert!(matches!(
            desyncs[0],
            EventKind::Desync {
                dir: Direction::MasterToReplica,
                offset: Some(115),
                ..
            }
        ));
        // Every byte still counts: 14 + 10 + 14.
        assert_eq!(end_of(&ev), (38, Some(138)));
    }

    const PING: &[u8] = b"*1\r\n$4\r\nping\r\n"; // 14 bytes

    fn psync_101() -> String {
        format!("*3\r\n$5\r\nPSYNC\r\n$40\r\n{ID}\r\n$3\r\n101\r\n")
    }

    /// `PSYNC <ID> 101` answered `+CONTINUE`: the next stream byte has offset 101.
    fn continued_at_101() -> Session {
        let mut s = Session::new(1, Timestamp(0), "r", "m", Config::default());
        feed(&mut s, R, psync_101().as_bytes());
        feed(&mut s, M, format!("+CONTINUE {ID}\r\n").as_bytes());
        s
    }

    fn feed(s: &mut Session, dir: Direction, bytes: &[u8]) {
        let at = Timestamp(1);
        s.feed(Chunk { dir, at, bytes });
    }

    /// Missing bytes (the analysis fell behind, a capture dropped a segment) cost the commands
    /// they touch, not the rest of the session: the desync is where the command they cut began;
    /// the analysis goes on at the next command; offsets stay exact across the gap.
    #[test]
    fn bytes_missed_mid_command_cost_that_command_and_the_analysis_resumes_after_it() {
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"; // 27 bytes
        let mut s = continued_at_101();
        feed(&mut s, M, PING); // offsets 101..=114
        feed(&mut s, M, &set[..10]); // the SET begins at 115
        s.skip(M, Timestamp(2), 10, Skipped::Behind);
        feed(&mut s, M, &set[20..]); // 7 bytes passed over
        feed(&mut s, M, PING); // 142..=155
        feed(
            &mut s,
            R,
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\n155\r\n",
        );
        s.finish(Timestamp(3), "end");
        let ev: Vec<EventKind> = std::iter::from_fn(|| s.poll_event())
            .map(|e| e.kind)
            .collect();

        let at_ping_end = (format!("+CONTINUE {ID}\r\n").len() + PING.len()) as u64;
        assert!(matches!(
            find(&ev, |e| matches!(e, EventKind::Desync { .. })),
            EventKind::Desync { dir: M, position, offset: Some(115), .. } if *position == at_ping_end
        ));
        assert_eq!(
            find(&ev, |e| matches!(e, EventKind::Resumed { .. })),
            &EventKind::Resumed {
                dir: M,
                position: at_ping_end + 27,
                offset: Some(142),
                passed: 7
            }
        );
        let commands: Vec<(Option<u64>, Option<u64>)> = ev
            .iter()
            .filter_map(|e| match e {
                EventKind::Command { start, end, .. } => Some((*start, *end)),
                _ => None,
            })
            .collect();
        assert_eq!(commands, [(Some(101), Some(114)), (Some(142), Some(155))]);
        assert!(ev
            .iter()
            .any(|e| matches!(e, EventKind::Ack { offset: 155, .. })));
        assert_eq!(end_of(&ev), (55, Some(155)));
    }

    /// Gaps one after another, before a command boundary was found, are each said; the report
    /// shows all of them resumed where the analysis went on, and counts every desync while it
    /// lists the first 64.
    #[test]
    fn back_to_back_gaps_are_each_a_desync_and_all_resume_at_the_next_command() {
        use crate::report::fold::MAX_LISTED;
        use crate::report::model::SessionReport;

        let mut s = continued_at_101();
        feed(&mut s, M, PING); // 101..=114
        s.skip(M, Timestamp(2), 5, Skipped::Behind); // 115..=119
        feed(&mut s, M, b"xx"); // 120..=121, passed over
        s.skip(M, Timestamp(2), 3, Skipped::Behind); // 122..=124
        feed(&mut s, M, PING); // 125..=138
        for _ in 0..MAX_LISTED {
            s.skip(M, Timestamp(3), 1, Skipped::Behind);
            feed(&mut s, M, PING);
        }
        s.finish(Timestamp(4), "end");
        let mut report = SessionReport::new(1, Timestamp(0));
        while let Some(e) = s.poll_event() {
            report.fold(&e);
        }

        assert_eq!(report.desync_count, 2 + MAX_LISTED as u64);
        assert_eq!(report.desyncs.len(), MAX_LISTED);
        let offsets: Vec<Option<u64>> = report.desyncs.iter().map(|d| d.offset).collect();
        assert_eq!(offsets[..3], [Some(115), Some(122), Some(139)]);
        let resumed: Vec<(Option<u64>, u64)> = report.desyncs[..3]
            .iter()
            .map(|d| d.resumed.as_ref().map(|r| (r.offset, r.passed)).unwrap())
            .collect();
        assert_eq!(resumed, [(Some(125), 0), (Some(125), 0), (Some(140), 0)]);
        assert!(report.desyncs.iter().all(|d| d.resumed.is_some()));
        assert_eq!(report.commands["PING"].count, 2 + MAX_LISTED as u64);
    }

    /// The same on the replica's side: its ACKs are parsed again after the gap.
    #[test]
    fn bytes_missed_in_the_replicas_direction_cost_one_ack() {
        let ack = |o: &str| {
            format!(
                "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{o}\r\n",
                o.len()
            )
        };
        let mut s = continued_at_101();
        feed(&mut s, M, PING);
        feed(&mut s, R, ack("110").as_bytes());
        let second = ack("112");
        feed(&mut s, R, &second.as_bytes()[..5]);
        s.skip(R, Timestamp(2), 5, Skipped::NotCaptured);
        feed(&mut s, R, &second.as_bytes()[10..]);
        feed(&mut s, R, ack("114").as_bytes());
        s.finish(Timestamp(3), "end");
        let ev: Vec<EventKind> = std::iter::from_fn(|| s.poll_event())
            .map(|e| e.kind)
            .collect();

        let acks: Vec<u64> = ev
            .iter()
            .filter_map(|e| match e {
                EventKind::Ack { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(acks, [110, 114]);
        let second_at = (psync_101().len() + ack("110").len()) as u64;
        assert!(matches!(
            find(&ev, |e| matches!(e, EventKind::Desync { .. })),
            EventKind::Desync { dir: R, position, offset: None, .. } if *position == second_at
        ));
        assert!(matches!(
            find(&ev, |e| matches!(e, EventKind::Resumed { .. })),
            EventKind::Resumed { dir: R, position, passed, offset: None }
                if *position == second_at + second.len() as u64
                    && *passed == second.len() as u64 - 10
        ));
    }

    #[test]
    fn a_client_is_never_mistaken_for_replication() {
        let ev = run(&[
            (R, b"*1\r\n$4\r\nPING\r\n"),
            (M, b"+PONG\r\n"),
            (R, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            (M, b"$11\r\n+FULLRESYNC\r\n"),
            (R, b"PSYNC-LOOKING INLINE\r\n"),
        ]);
        assert!(!ev
            .iter()
            .any(|e| matches!(e, EventKind::SyncStart { .. } | EventKind::Desync { .. })));
        let clients = ev
            .iter()
            .filter(|e| matches!(e, EventKind::ClientCommand { .. }))
            .count();
        assert_eq!(clients, 2);
    }

    #[test]
    fn random_bytes_in_both_directions_never_panic() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const WORDS: &[&[u8]] = &[
            b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n",
            b"SYNC\r\n",
            b"+FULLRESYNC 3942fbd58f44ed5ba7b5962efa141dd34e423bbc 5\r\n",
            b"+CONTINUE\r\n",
            b"$10\r\n",
            b"$EOF:5806cca6e294561a8ea62ddbf10716c53218d234\r\n",
            b"5806cca6e294561a8ea62ddbf10716c53218d234",
            b"*1\r\n$4\r\nping\r\n",
            b"\n",
            b"\r\n",
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
            b"-ERR x\r\n",
            b"$-1\r\n",
            b"\xff\x00garbage",
        ];
        for _ in 0..3000 {
            let mut s = Session::new(1, Timestamp(0), "r", "m", Config::default());
            for _ in 0..(next() % 12) {
                let dir = if next() % 2 == 0 { R } else { M };
                let mut bytes = WORDS[(next() % WORDS.len() as u64) as usize].to_vec();
                if next() % 4 == 0 {
                    let cut = (next() % (bytes.len() as u64 + 1)) as usize;
                    bytes.truncate(cut);
                }
                s.feed(Chunk {
                    dir,
                    at: Timestamp(1),
                    bytes: &bytes,
                });
                if next() % 8 == 0 {
                    s.skip(dir, Timestamp(1), next() % 50, Skipped::NotCaptured);
                }
            }
            s.finish(Timestamp(2), "end");
            while s.poll_event().is_some() {}
        }
    }
}
