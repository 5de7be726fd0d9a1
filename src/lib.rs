//! repl-sniff makes Redis/Valkey replication visible: a transparent TCP man-in-the-middle
//! between a replica and its master that forwards every byte unchanged and, passively, parses
//! the handshake, the sync decision, the RDB transfer, the replication stream with exact
//! offsets, and the replica's ACKs.
//!
//! # Layout
//!
//! The layers, each using only the ones above it:
//!
//! - [`protocol`]: the wire formats as streaming, bounded parsers — RESP commands
//!   ([`protocol::resp`]), the master's reply lines ([`protocol::handshake`]), RDB files
//!   ([`protocol::rdb`]: format tables, interpreter, key census, model).
//! - [`analyzer`]: the sans-IO core — the one input vocabulary ([`Input`], [`Chunk`]), the
//!   state machine of one connection ([`Session`]: one phase per direction, each moved in one
//!   place), the [`Event`]s it emits, and the connections of a run
//!   ([`analyzer::links::Links`]: sessions, and the pairing of two-connection syncs).
//! - [`report`]: what the events amount to, as plain data — the per-session report fold, its
//!   timing (model and tracker), every report of a run ([`report::reports::Reports`]), and
//!   the [`Monitor`], the pipe from inputs to sinks.
//! - [`render`]: text and metrics from that data — event lines, the exit summary, RDB tables,
//!   Prometheus, and the sinks that write events out. A new output is a new file here.
//! - Drivers: [`capture`] (pcap/pcapng reading, live capture, TCP reassembly, replay and
//!   `sniff`, pcapng recording, RDB dumps) and [`live`] (the proxy, its `/metrics` endpoint,
//!   the active `check`). The binary (`src/bin/repl-sniff/`) parses arguments and wires these.
//!
//! # The pipe
//!
//! ```text
//! Input ──> Links ──Linked──> Reports ──event + what it derived──> Sinks
//! ```
//!
//! One way only: [`Monitor::handle`] gives an input to the links, hands each thing they say
//! to the reports, and each event with what the reports derived from it (returned, already
//! folded) to the sinks. No stage calls back into the pipe or into an earlier stage.
//!
//! # Invariants
//!
//! - Only the drivers ([`live`], [`capture`]) perform IO or read the clock; the analyzer is fed
//!   timestamps.
//!   File IO and packet capture happen only in [`capture`]; terminal output only in
//!   [`render::sinks`] and the binary. The only `unsafe` is in system calls: the packet socket's
//!   ([`capture::socket`]) and the analysis thread's scheduler slice ([`live::sched`]), each
//!   with its reason.
//! - Forwarding never waits on analysis (see [`live::proxy`]).
//! - No length read from the wire is used to allocate; every buffer has a stated bound.
//! - Malformed input is an event ([`EventKind::Desync`]), never a panic or an error return;
//!   chunk boundaries never change the events.
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

#![deny(unsafe_code)]

pub mod analyzer;
pub mod capture;
pub mod live;
pub mod protocol;
pub mod render;
pub mod report;

pub use analyzer::event::{Event, EventKind, Framing, SyncKind};
pub use analyzer::input::{Chunk, Direction, Input, InputKind, Skipped, Timestamp};
pub use analyzer::session::{Config, Role, Session};
pub use report::monitor::{Monitor, Sink};
pub use report::{Report, SessionReport};
