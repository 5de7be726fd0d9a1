//! repl-sniff makes Redis/Valkey replication visible: a transparent TCP man-in-the-middle
//! between a replica and its master that forwards every byte unchanged and, passively, parses
//! the handshake, the sync decision, the RDB transfer, the replication stream with exact
//! offsets, and the replica's ACKs.
//!
//! # Layout
//!
//! - [`chunk`]: the input of all analysis — bytes, a direction, a timestamp.
//! - [`resp`]: streaming, bounded RESP/inline command parser.
//! - [`handshake`]: the master's single-line answers and how handshake commands are shown.
//! - [`session`]: the sans-IO state machine of one connection (the analyzer).
//! - [`event`]: what the analyzer emits (one line of text, one JSON object each).
//! - [`report`]: the final per-session report, a fold over events.
//! - [`rdb`]: streaming RDB analysis (keys, types, sizes, CRC-64), in flight or from a file.
//! - [`timing`]: ack latency, heartbeat intervals, lag and warnings (part of the fold).
//! - [`monitor`]: all sessions of a run, and the sinks their events go to.
//! - [`proxy`]: the live TCP proxy (and the `/metrics` HTTP endpoint).
//! - [`metrics`]: Prometheus text exposition.
//! - [`capture`]: reading pcap/pcapng files and decoding TCP segments.
//! - [`tcp`]: TCP stream reassembly for captures (sans-IO).
//! - [`replay`]: captures through reassembly into the same [`Monitor`] the proxy drives.
//! - [`record`]: writing what the proxy forwarded as pcapng.
//!
//! # Invariants
//!
//! - Only [`proxy`] performs network IO or reads the clock; the analyzer is fed timestamps.
//!   File IO happens only in [`capture`] and [`record`].
//! - Forwarding never waits on analysis (see [`proxy`]).
//! - No length read from the wire is used to allocate; every buffer has a stated bound.
//! - Malformed input is an event ([`EventKind::Desync`]), never a panic or an error return.
//!
//! # Driving the analyzer
//!
//! ```
//! use repl_sniff::{Chunk, Config, Direction, Session, Timestamp};
//!
//! let mut s = Session::new(1, Timestamp(0), "127.0.0.1:50000", "127.0.0.1:6379", Config::default());
//! s.feed(Chunk { dir: Direction::ReplicaToMaster, at: Timestamp(1), bytes: b"*1\r\n$4\r\nPING\r\n" });
//! s.feed(Chunk { dir: Direction::MasterToReplica, at: Timestamp(2), bytes: b"+PONG\r\n" });
//! s.finish(Timestamp(3), "done");
//! while let Some(event) = s.poll_event() {
//!     println!("{event}");
//! }
//! ```

pub mod capture;
pub mod chunk;
pub mod event;
pub mod handshake;
pub mod metrics;
pub mod monitor;
pub mod proxy;
pub mod rdb;
pub mod record;
pub mod replay;
pub mod report;
pub mod resp;
pub mod session;
pub mod tcp;
pub mod timing;

pub use chunk::{Chunk, Direction, Input, InputKind, Skipped, Timestamp};
pub use event::{Event, EventKind, Framing, SyncKind};
pub use monitor::{Monitor, Sink};
pub use report::{Report, SessionReport};
pub use session::{Config, Role, Session};
