//! The analyzer of one TCP connection: a sans-IO state machine fed `(direction, timestamp,
//! bytes)` and producing [`Event`]s.
//!
//! It holds no socket and reads no clock. Drivers (the proxy, tests, replays) call
//! [`Session::feed`] with chunks in the order they were seen — a request before the reply it
//! caused — then drain [`Session::poll_event`] until it returns `None`, and finally call
//! [`Session::finish`]. Chunk boundaries never change the events.
//!
//! The replica's direction is always a command stream (handshake, `REPLCONF ACK`, or a plain
//! client's commands). The master's direction goes through phases chosen by what the replica
//! asked for:
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

use std::collections::VecDeque;

use crate::analyzer::event::{Event, EventKind, Framing, SyncKind};
use crate::analyzer::input::{Chunk, Direction, Input, InputKind, Skipped, Timestamp};
use crate::protocol::handshake::{self, Line, LineReader, Reply, ID_LEN};
use crate::protocol::resp::{self, Command, Item, Name};

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: resp::Limits::default(),
            max_reply_line: 4096,
            max_pending: 1024,
            rdb_top: 10,
        }
    }
}

/// What the connecting side turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Nothing decisive seen yet (only `PING`/`AUTH`/`REPLCONF`).
    Undetermined,
    /// A plain client: it sent a command that is not part of a replication handshake.
    Client,
    /// A replica that sent `PSYNC`.
    Replication,
    /// A legacy `SYNC` (old replicas, `redis-cli --replica`/`--rdb`).
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Psync,
    Sync,
    Other(Name),
}

#[derive(Debug)]
enum Phase {
    /// Single-line answers to handshake requests.
    Replies,
    /// After `+FULLRESYNC` or `SYNC`: keep-alives, then the RDB framing line.
    AwaitPayload { legacy: bool },
    /// A disk-based RDB with `remaining` bytes to go.
    RdbDisk { remaining: u64 },
    /// A diskless RDB, ended by `mark`; `tail` keeps the last bytes in case the mark is split.
    RdbEof {
        mark: [u8; ID_LEN],
        tail: Vec<u8>,
        seen: u64,
    },
    /// The replication stream.
    Stream,
    /// Joined mid-connection: looking for the first command boundary of the stream.
    Resync { finder: resp::BoundaryFinder },
    /// A plain client's replies: forwarded, not parsed.
    Opaque,
    /// Analysis stopped after a desync; stream bytes are still counted.
    Lost,
}

#[derive(Debug)]
struct Stream {
    parser: resp::Parser,
    started: bool,
    /// Offset of the byte just before the first stream byte, when known.
    base: Option<u64>,
    bytes: u64,
    db: Option<u32>,
    in_multi: bool,
}

impl Stream {
    fn offset_end(&self) -> Option<u64> {
        // The base is at most `MAX_OFFSET`, so this cannot saturate on any real link.
        self.base.map(|b| b.saturating_add(self.bytes))
    }
}

#[derive(Debug)]
struct RdbTransfer {
    framing: Framing,
    started: Timestamp,
    bytes: u64,
    contents: Box<crate::protocol::rdb::Parser>,
}

/// The analyzer of one connection.
#[derive(Debug)]
pub struct Session {
    id: u64,
    cfg: Config,
    events: VecDeque<Event>,
    /// Bytes seen so far in each direction (indexed by [`Direction::index`]).
    seen: [u64; 2],
    role: Role,
    requests: resp::Parser,
    /// Position in the replica's direction of the first byte the request parser was fed.
    requests_origin: u64,
    requests_lost: bool,
    /// Joined mid-connection: looking for the replica's first command boundary (`None` once
    /// found, or from the start).
    requests_resync: Option<resp::BoundaryFinder>,
    /// `AUTH` argument byte ranges (absolute positions in the replica's direction) found by
    /// the last [`Session::feed`]; cleared by the next one, so it holds at most one chunk's.
    secrets: Vec<(u64, u64)>,
    pending: VecDeque<Pending>,
    psync_offset: Option<u64>,
    psync_replid: Option<String>,
    phase: Phase,
    lines: LineReader,
    stream: Stream,
    rdb: Option<RdbTransfer>,
    ended: bool,
}

impl Session {
    /// Starts the analysis of connection `id` from `replica` to `upstream`, opened at `at`.
    pub fn new(id: u64, at: Timestamp, replica: &str, upstream: &str, cfg: Config) -> Session {
        let mut s = Session {
            id,
            cfg,
            events: VecDeque::new(),
            seen: [0, 0],
            role: Role::Undetermined,
            requests: resp::Parser::new(cfg.limits),
            requests_origin: 0,
            requests_lost: false,
            requests_resync: None,
            secrets: Vec::new(),
            pending: VecDeque::new(),
            psync_offset: None,
            psync_replid: None,
            phase: Phase::Replies,
            lines: LineReader::default(),
            stream: Stream {
                parser: resp::Parser::for_master_stream(cfg.limits),
                started: false,
                base: None,
                bytes: 0,
                db: None,
                in_multi: false,
            },
            rdb: None,
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
        s.requests_resync = Some(resp::BoundaryFinder::default());
        s.phase = Phase::Resync {
            finder: resp::BoundaryFinder::default(),
        };
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
        &self.secrets
    }

    /// Where the command the replica's direction ends inside began, if that command could
    /// still turn out to carry a secret (its name is not known yet, or it is `AUTH`).
    pub fn pending_secret_from(&self) -> Option<u64> {
        if self.requests_lost || self.requests_resync.is_some() {
            return None;
        }
        let start = self.requests.command_start()?;
        self.requests
            .partial_name()
            .is_none_or(|n| n.is("AUTH"))
            .then_some(self.requests_origin + start)
    }

    /// The RDB transfer under way, if any: bytes received, announced length, start time.
    pub fn rdb_progress(&self) -> Option<(u64, Option<u64>, Timestamp)> {
        let rdb = self.rdb.as_ref()?;
        match &self.phase {
            Phase::RdbDisk { remaining } => {
                Some((rdb.bytes, Some(rdb.bytes + remaining), rdb.started))
            }
            Phase::RdbEof { seen, .. } => Some((*seen, None, rdb.started)),
            _ => None,
        }
    }

    /// Bytes fed so far in direction `dir` (analysed or skipped).
    pub fn bytes_seen(&self, dir: Direction) -> u64 {
        self.seen[dir.index()]
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
        if self.stream.started {
            self.stream.offset_end()
        } else {
            None
        }
    }

    /// Consumes bytes seen on the link. Never fails: input that breaks the protocol becomes an
    /// [`EventKind::Desync`] and the rest of that direction is only counted.
    pub fn feed(&mut self, chunk: Chunk<'_>) {
        self.secrets.clear();
        if self.ended || chunk.bytes.is_empty() {
            return;
        }
        match chunk.dir {
            Direction::ReplicaToMaster => self.feed_requests(chunk.at, chunk.bytes),
            Direction::MasterToReplica => self.feed_master(chunk.at, chunk.bytes),
        }
    }

    /// Accounts for `len` bytes that were forwarded but not seen by the analysis (it fell
    /// behind, or a capture lost them). Offsets stay exact where the framing allows it.
    pub fn skip(&mut self, dir: Direction, at: Timestamp, len: u64, why: Skipped) {
        if self.ended || len == 0 {
            return;
        }
        let reason = match why {
            Skipped::Behind => format!("{len} bytes were not analysed (analysis fell behind)"),
            Skipped::NotCaptured => format!("{len} bytes are missing from the capture"),
        };
        if dir == Direction::MasterToReplica {
            if let Some(rdb) = &mut self.rdb {
                rdb.contents.abandon(len, why == Skipped::Behind);
            }
        }
        match dir {
            Direction::ReplicaToMaster => {
                if !self.requests_lost {
                    self.desync(dir, at, self.seen[0], None, reason);
                    self.requests_lost = true;
                }
                self.seen[0] += len;
            }
            Direction::MasterToReplica => {
                match &mut self.phase {
                    Phase::RdbDisk { remaining } if len <= *remaining => {
                        // The framing says exactly where the RDB ends: nothing is lost.
                        *remaining -= len;
                        if let Some(rdb) = &mut self.rdb {
                            rdb.bytes += len;
                        }
                        if *remaining == 0 {
                            self.rdb_done(at);
                        }
                    }
                    Phase::RdbDisk { remaining } => {
                        let rdb_part = *remaining;
                        if let Some(rdb) = &mut self.rdb {
                            rdb.bytes += rdb_part;
                        }
                        self.rdb_done(at);
                        self.stream.bytes += len - rdb_part;
                        self.desync(dir, at, self.seen[1], self.stream.offset_end(), reason);
                    }
                    Phase::Stream => {
                        self.stream.bytes += len;
                        self.desync(dir, at, self.seen[1], self.stream.offset_end(), reason);
                    }
                    Phase::Opaque | Phase::Lost => {
                        if self.stream.started {
                            self.stream.bytes += len;
                        }
                    }
                    Phase::Replies
                    | Phase::AwaitPayload { .. }
                    | Phase::RdbEof { .. }
                    | Phase::Resync { .. } => {
                        self.desync(dir, at, self.seen[1], None, reason);
                        self.phase = Phase::Lost;
                    }
                }
                self.seen[1] += len;
            }
        }
    }

    /// Signals that the connection ended at `at`; emits the closing event.
    pub fn finish(&mut self, at: Timestamp, reason: &str) {
        if self.ended {
            return;
        }
        let received = match &self.phase {
            Phase::RdbDisk { .. } => self.rdb.as_ref().map(|r| r.bytes),
            Phase::RdbEof { seen, .. } => Some(*seen),
            _ => None,
        };
        if let (Some(bytes), Some(rdb)) = (received, &mut self.rdb) {
            let framing = rdb.framing;
            let contents = Box::new(rdb.contents.finish());
            self.emit(at, EventKind::RdbAborted { framing, bytes });
            self.emit(at, EventKind::RdbContents { contents });
        }
        let offset_end = self.offset_end();
        self.emit(
            at,
            EventKind::SessionEnd {
                reason: reason.to_string(),
                bytes_to_master: self.seen[0],
                bytes_to_replica: self.seen[1],
                stream_bytes: self.stream.bytes,
                offset_end,
            },
        );
        self.ended = true;
    }

    /// Returns the next event produced by earlier calls, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn emit(&mut self, at: Timestamp, kind: EventKind) {
        self.events.push_back(Event {
            session: self.id,
            ts: at,
            kind,
        });
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

    // ----- replica -> master ---------------------------------------------------------------

    fn feed_requests(&mut self, at: Timestamp, bytes: &[u8]) {
        let mut from = 0;
        if let Some(finder) = &mut self.requests_resync {
            let Some(found) = finder.find(bytes) else {
                self.seen[0] += bytes.len() as u64;
                return;
            };
            self.requests_resync = None;
            let (dir, skipped) = (Direction::ReplicaToMaster, found.skipped);
            self.emit(at, EventKind::JoinedLate { dir, skipped });
            self.requests_origin = skipped;
            self.parse_requests(at, found.header(), skipped);
            from = found.resume;
        }
        self.parse_requests(at, &bytes[from..], self.seen[0] + from as u64);
        self.seen[0] += bytes.len() as u64;
    }

    /// Parses the replica's commands in `bytes`, which begin at byte `pos` of its direction.
    fn parse_requests(&mut self, at: Timestamp, bytes: &[u8], pos: u64) {
        let mut done = 0;
        while !self.requests_lost && done < bytes.len() {
            let (n, r) = self.requests.advance(&bytes[done..]);
            done += n;
            match r {
                Ok(None) if n == 0 => break,
                Ok(None) => {}
                Ok(Some(Item::KeepAlive)) => self.emit(
                    at,
                    EventKind::KeepAlive {
                        dir: Direction::ReplicaToMaster,
                    },
                ),
                Ok(Some(Item::Command(cmd))) => {
                    let end = pos + done as u64;
                    let start = end - cmd.wire_len();
                    let ranges = handshake::auth_argument_ranges(&cmd);
                    self.secrets
                        .extend(ranges.iter().map(|&(a, b)| (start + a, start + b)));
                    self.on_request(at, &cmd);
                }
                Err(f) => {
                    let msg = format!("replica sent bytes that are not a command: {}", f.error);
                    let position = self.requests_origin + f.at;
                    self.desync(Direction::ReplicaToMaster, at, position, None, msg);
                    self.requests_lost = true;
                }
            }
        }
    }

    fn on_request(&mut self, at: Timestamp, cmd: &Command) {
        let name = cmd.name();
        let bytes = cmd.wire_len();
        if self.role == Role::Client {
            return self.emit(at, EventKind::ClientCommand { name, bytes });
        }
        let is_ack = name.is("REPLCONF") && cmd.arg(1).is_some_and(|a| a.eq_ignore_case("ACK"));
        if is_ack {
            if let Some(offset) = cmd.arg(2).and_then(|a| a.as_i64()) {
                let fack = match (cmd.arg(3), cmd.arg(4)) {
                    (Some(k), Some(v)) if k.eq_ignore_case("FACK") => {
                        v.as_i64().and_then(|v| u64::try_from(v).ok())
                    }
                    _ => None,
                };
                let offset = u64::try_from(offset).unwrap_or(0);
                return self.emit(at, EventKind::Ack { offset, fack });
            }
        }
        let pending = match name.as_str() {
            "PING" | "AUTH" | "REPLCONF" => Pending::Other(name),
            "PSYNC" => {
                self.role = Role::Replication;
                self.psync_replid = cmd.arg(1).and_then(|a| a.as_str().map(str::to_string));
                self.psync_offset = cmd
                    .arg(2)
                    .and_then(|a| a.as_i64())
                    .and_then(|o| u64::try_from(o).ok());
                Pending::Psync
            }
            "SYNC" => {
                if self.role == Role::Undetermined {
                    self.role = Role::Sync;
                }
                Pending::Sync
            }
            _ if self.role == Role::Undetermined => return self.become_client(at, name, bytes),
            _ => {
                // A replica sending something unexpected after its handshake: show it, but
                // never its arguments (they could be anything, secrets included).
                return self.emit(at, EventKind::Request { name, args: vec![] });
            }
        };
        if self.pending.len() >= self.cfg.max_pending {
            return self.become_client(at, name, bytes);
        }
        self.pending.push_back(pending);
        let args = handshake::shown_args(cmd);
        self.emit(at, EventKind::Request { name, args });
    }

    fn become_client(&mut self, at: Timestamp, name: Name, bytes: u64) {
        self.role = Role::Client;
        self.pending.clear();
        if !matches!(self.phase, Phase::Lost) {
            self.phase = Phase::Opaque;
        }
        self.emit(at, EventKind::ClientCommand { name, bytes });
    }

    // ----- master -> replica ---------------------------------------------------------------

    fn feed_master(&mut self, at: Timestamp, bytes: &[u8]) {
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            let used = match &mut self.phase {
                Phase::Replies => {
                    if self.pending.front() == Some(&Pending::Sync) {
                        // SYNC has no reply line: its payload starts right away.
                        self.pending.pop_front();
                        self.phase = Phase::AwaitPayload { legacy: true };
                        continue;
                    }
                    self.master_line(at, rest)
                }
                Phase::AwaitPayload { .. } => self.master_line(at, rest),
                Phase::RdbDisk { remaining } => {
                    let take = (*remaining).min(rest.len() as u64);
                    *remaining -= take;
                    let finished = *remaining == 0;
                    if let Some(rdb) = &mut self.rdb {
                        rdb.bytes += take;
                        rdb.contents.feed(&rest[..take as usize]);
                    }
                    if finished {
                        self.rdb_done(at);
                    }
                    take as usize
                }
                Phase::RdbEof { .. } => self.scan_eof_mark(at, rest),
                Phase::Resync { finder } => match finder.find(rest) {
                    Some(found) => {
                        let (dir, skipped) = (Direction::MasterToReplica, found.skipped);
                        self.emit(at, EventKind::JoinedLate { dir, skipped });
                        self.start_stream();
                        let header = found.header();
                        // The header may have begun in earlier chunks: count back from where it ends.
                        let header_at = self.seen[1] + found.resume as u64 - header.len() as u64;
                        self.stream_bytes(at, header, header_at);
                        found.resume
                    }
                    None => rest.len(),
                },
                Phase::Stream => self.stream_bytes(at, rest, self.seen[1]),
                Phase::Opaque | Phase::Lost => {
                    if self.stream.started {
                        self.stream.bytes += rest.len() as u64;
                    }
                    rest.len()
                }
            };
            done += used;
            self.seen[1] += used as u64;
        }
    }

    fn master_line(&mut self, at: Timestamp, rest: &[u8]) -> usize {
        match self.lines.next_line(rest, self.cfg.max_reply_line) {
            Line::Partial => rest.len(),
            Line::TooLong { carried } => {
                let msg = format!(
                    "master sent a line longer than {} bytes before the stream",
                    self.cfg.max_reply_line
                );
                self.lose_master(at, self.seen[1] - carried as u64, msg);
                0
            }
            Line::Complete {
                line,
                used,
                carried,
            } => {
                self.on_master_line(at, &line, self.seen[1] - carried as u64);
                used
            }
        }
    }

    /// Stops the analysis of the master's direction: what broke it begins at `position`.
    fn lose_master(&mut self, at: Timestamp, position: u64, reason: String) {
        let offset = self
            .stream
            .started
            .then(|| self.stream.offset_end())
            .flatten();
        self.desync(Direction::MasterToReplica, at, position, offset, reason);
        self.phase = Phase::Lost;
    }

    /// One reply line from the master, which began at byte `line_at` of its direction.
    fn on_master_line(&mut self, at: Timestamp, line: &[u8], line_at: u64) {
        let reply = handshake::parse_reply(line);
        if reply == Reply::KeepAlive {
            let dir = Direction::MasterToReplica;
            return self.emit(at, EventKind::KeepAlive { dir });
        }
        let shown = handshake::printable(line, 200);
        if let Phase::AwaitPayload { legacy } = self.phase {
            return self.on_payload_line(at, reply, shown, legacy, line_at);
        }
        match self.pending.pop_front() {
            Some(Pending::Psync) => {
                let to = Some(Name::new(b"PSYNC"));
                self.emit(
                    at,
                    EventKind::Reply {
                        to,
                        reply: shown.clone(),
                    },
                );
                self.on_psync_reply(at, reply, shown, line_at);
            }
            Some(Pending::Other(name)) if matches!(line[0], b'+' | b'-') => {
                self.emit(
                    at,
                    EventKind::Reply {
                        to: Some(name),
                        reply: shown,
                    },
                );
            }
            None if matches!(line[0], b'+' | b'-') => {
                self.emit(
                    at,
                    EventKind::Reply {
                        to: None,
                        reply: shown,
                    },
                );
            }
            _ if self.role == Role::Undetermined => {
                // Not a handshake answer (e.g. `PING hello` gets a bulk reply): a client.
                self.role = Role::Client;
                self.pending.clear();
                self.phase = Phase::Opaque;
            }
            _ => {
                let msg = format!("unexpected answer from master during the handshake: {shown}");
                self.lose_master(at, line_at, msg);
            }
        }
    }

    fn on_psync_reply(&mut self, at: Timestamp, reply: Reply<'_>, shown: String, line_at: u64) {
        match reply {
            Reply::FullResync { offset, .. } if offset > MAX_OFFSET => {
                let msg = format!(
                    "+FULLRESYNC offset {offset} is beyond the largest replication offset \
                     ({MAX_OFFSET}: the servers keep offsets as signed 64-bit numbers)"
                );
                self.lose_master(at, line_at, msg);
            }
            Reply::FullResync { replid, offset } => {
                self.emit(
                    at,
                    EventKind::SyncStart {
                        sync: SyncKind::Full,
                        replid: Some(replid.to_ascii_lowercase()),
                        offset: Some(offset),
                    },
                );
                self.stream.base = Some(offset);
                self.phase = Phase::AwaitPayload { legacy: false };
            }
            Reply::Continue { replid } => {
                let replid = replid.map(str::to_string).or(self.psync_replid.clone());
                let offset = self.psync_offset;
                self.emit(
                    at,
                    EventKind::SyncStart {
                        sync: SyncKind::Partial,
                        replid: replid.map(|r| r.to_ascii_lowercase()),
                        offset,
                    },
                );
                self.stream.base = offset.map(|o| o.saturating_sub(1));
                self.start_stream();
            }
            Reply::RdbChannelSync { .. } => {
                self.emit(
                    at,
                    EventKind::SyncStart {
                        sync: SyncKind::RdbChannel,
                        replid: None,
                        offset: None,
                    },
                );
                self.stream.base = None;
                self.start_stream();
            }
            // Valkey: the main link PSYNCs again once the RDB connection has its snapshot.
            Reply::DualChannelSync => {}
            _ => self.emit(at, EventKind::SyncRejected { reply: shown }),
        }
    }

    fn on_payload_line(
        &mut self,
        at: Timestamp,
        reply: Reply<'_>,
        shown: String,
        legacy: bool,
        line_at: u64,
    ) {
        let (framing, declared) = match reply {
            Reply::BulkLen(n) => (Framing::Disk, Some(n)),
            Reply::EofMark(_) => (Framing::Diskless, None),
            Reply::EndOffset { .. } => {
                // Valkey's dual-channel RDB connection: an announcement before `$EOF:`.
                let to = Some(Name::new(b"SYNC"));
                return self.emit(at, EventKind::Reply { to, reply: shown });
            }
            Reply::Error(_) => {
                self.emit(at, EventKind::SyncRejected { reply: shown });
                self.phase = Phase::Replies;
                return;
            }
            _ => {
                let msg = format!("expected the RDB ($<len> or $EOF:<mark>), got {shown}");
                return self.lose_master(at, line_at, msg);
            }
        };
        if legacy {
            self.emit(
                at,
                EventKind::SyncStart {
                    sync: SyncKind::Sync,
                    replid: None,
                    offset: None,
                },
            );
        }
        self.emit(
            at,
            EventKind::RdbStart {
                framing,
                declared_bytes: declared,
            },
        );
        self.rdb = Some(RdbTransfer {
            framing,
            started: at,
            bytes: 0,
            contents: Box::new(crate::protocol::rdb::Parser::new(self.cfg.rdb_top)),
        });
        self.phase = match reply {
            Reply::EofMark(m) => {
                let mut mark = [0; ID_LEN];
                mark.copy_from_slice(m);
                Phase::RdbEof {
                    mark,
                    tail: Vec::with_capacity(ID_LEN),
                    seen: 0,
                }
            }
            _ => Phase::RdbDisk {
                remaining: declared.unwrap_or(0),
            },
        };
        if declared == Some(0) {
            self.rdb_done(at);
        }
    }

    /// Looks for the end mark of a diskless RDB; consumes up to and including it.
    ///
    /// The RDB parser is fed only bytes known to be RDB: the last `ID_LEN - 1` bytes seen are
    /// held back in `tail` until the next bytes show they do not begin the mark, so that what
    /// follows the mark (the stream) never reaches it, however the input was split.
    fn scan_eof_mark(&mut self, at: Timestamp, rest: &[u8]) -> usize {
        let Phase::RdbEof { mark, tail, seen } = &mut self.phase else {
            return 0;
        };
        let contents = self.rdb.as_mut().map(|r| &mut r.contents);
        // A mark split across chunks: search the held tail joined with the new head.
        let head = &rest[..rest.len().min(ID_LEN - 1)];
        let mut joint = [0u8; 2 * ID_LEN];
        joint[..tail.len()].copy_from_slice(tail);
        joint[tail.len()..tail.len() + head.len()].copy_from_slice(head);
        let joint = &joint[..tail.len() + head.len()];
        let found = match memchr::memmem::find(joint, mark) {
            Some(i) if i < tail.len() => Some((i, 0)),
            _ => memchr::memmem::find(rest, mark).map(|j| (tail.len(), j)),
        };
        let Some((from_tail, from_rest)) = found else {
            // No mark yet: everything but the last ID_LEN - 1 bytes is RDB.
            *seen += rest.len() as u64;
            let keep = ID_LEN - 1;
            let total = tail.len() + rest.len();
            let release = total.saturating_sub(keep);
            let from_tail = release.min(tail.len());
            let from_rest = release - from_tail;
            if let Some(c) = contents {
                c.feed(&tail[..from_tail]);
                c.feed(&rest[..from_rest]);
            }
            tail.drain(..from_tail);
            tail.extend_from_slice(&rest[from_rest..]);
            return rest.len();
        };
        if let Some(c) = contents {
            c.feed(&tail[..from_tail]);
            c.feed(&rest[..from_rest]);
        }
        // The mark ends `end` bytes into `rest`.
        let end = from_rest + ID_LEN - (tail.len() - from_tail);
        let rdb_bytes = (*seen + end as u64).saturating_sub(ID_LEN as u64);
        if let Some(rdb) = &mut self.rdb {
            rdb.bytes = rdb_bytes;
        }
        self.rdb_done(at);
        end
    }

    fn rdb_done(&mut self, at: Timestamp) {
        if let Some(rdb) = &mut self.rdb {
            let kind = EventKind::RdbEnd {
                framing: rdb.framing,
                bytes: rdb.bytes,
                duration_us: at.since(rdb.started).as_micros() as u64,
            };
            let contents = Box::new(rdb.contents.finish());
            self.emit(at, kind);
            self.emit(at, EventKind::RdbContents { contents });
        }
        if self.role == Role::Sync && self.stream.base.is_some() {
            // Valkey's RDB connection announced an offset, but no stream follows on it.
            self.stream.base = None;
        }
        self.start_stream();
    }

    fn start_stream(&mut self) {
        self.phase = Phase::Stream;
        self.stream.started = true;
    }

    /// Parses stream bytes that begin at byte `pos` of the master's direction.
    fn stream_bytes(&mut self, at: Timestamp, rest: &[u8], pos: u64) -> usize {
        let consumed = self.stream.parser.consumed();
        let (origin, stream_origin) = (pos - consumed, self.stream.bytes - consumed);
        let (n, r) = self.stream.parser.advance(rest);
        self.stream.bytes += n as u64;
        match r {
            Ok(None) => {}
            Ok(Some(Item::KeepAlive)) => self.emit(
                at,
                EventKind::KeepAlive {
                    dir: Direction::MasterToReplica,
                },
            ),
            Ok(Some(Item::Command(cmd))) => self.on_stream_command(at, &cmd),
            Err(f) => {
                let msg = format!("master stream is not RESP: {}", f.error);
                // The offset of the byte the broken element starts at.
                let offset = (self.stream.base)
                    .map(|b| b.saturating_add(stream_origin + f.at).saturating_add(1));
                self.desync(Direction::MasterToReplica, at, origin + f.at, offset, msg);
                self.phase = Phase::Lost;
            }
        }
        n
    }

    fn on_stream_command(&mut self, at: Timestamp, cmd: &Command) {
        let name = cmd.name();
        let end = self.stream.offset_end();
        let start = end.map(|e| e.saturating_add(1).saturating_sub(cmd.wire_len()));
        let mut sub = None;
        let mut in_multi = self.stream.in_multi;
        match name.as_str() {
            "SELECT" => {
                if let Some(db) = cmd.arg(1).and_then(|a| a.as_i64()) {
                    self.stream.db = u32::try_from(db).ok();
                }
            }
            "MULTI" => {
                self.stream.in_multi = true;
                in_multi = true;
            }
            "EXEC" | "DISCARD" => self.stream.in_multi = false,
            "REPLCONF" => sub = cmd.arg(1).map(|a| Name::new(a.bytes)),
            _ => {}
        }
        let kind = EventKind::Command {
            start,
            end,
            name,
            sub,
            db: self.stream.db,
            in_multi,
            bytes: cmd.wire_len(),
        };
        self.emit(at, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
