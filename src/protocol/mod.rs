//! The wire formats, parsed as streams with bounded memory: RESP commands, the master's reply
//! lines, and RDB files; and the recognisers of links repl-sniff forwards but does not parse
//! (TLS, the cluster bus) and of slot migration's commands. Nothing here knows about sessions
//! or time; every parser is fed bytes as they come and never allocates from a length read off
//! the wire.

pub mod cluster;
pub mod compression;
pub mod handshake;
pub mod rdb;
pub mod resp;
pub mod tls;
