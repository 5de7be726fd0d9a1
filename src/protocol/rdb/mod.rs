//! Streaming RDB analysis: fed chunks as they arrive (a full sync in flight, or a file), it
//! counts keys, expires, types, elements and sizes per database, collects AUX fields,
//! functions and module types, keeps the biggest keys, and verifies the CRC-64 — without
//! ever holding a whole value. Format per `protocol.md` §9 and, for RDB 13 and 14,
//! `protocol-next.md` N1–N4 (`REDIS` versions 1–14, `VALKEY` 80).
//!
//! - [`summary`]: what an analysis learns (plain data, serialized into the report).
//! - `ops`: the format as tables — opcodes, value types and their bodies as interpreter ops.
//! - `parser`: the interpreter that runs those ops over the input, and the key census.
//! - `lzf`: the prefix-only LZF decoder that reads a compressed container's header.
//! - [`version`]: the header, and the version a Valkey master writes to each replica.
//!
//! Text rendering lives in `render::rdb`, apart from the model.

mod census;
mod lzf;
mod ops;
mod parser;
pub mod summary;
pub mod version;

pub use parser::{Parser, MAX_VERSION};
pub use summary::{
    key_hash, BigKey, Checksum, DbStats, Error, ErrorKind, Place, Summary, TypeStats,
};
pub use version::Header;

/// Analyses a whole RDB held in memory (tests, small files).
pub fn analyse(bytes: &[u8], top_n: usize) -> Summary {
    let mut p = Parser::new(top_n);
    p.feed(bytes);
    p.finish()
}
