//! What an RDB analysis learns: plain data, serialized into the report as is.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Why an RDB could not be analysed to its end: what, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset} of the RDB)")]
pub struct Error {
    /// Byte offset into the RDB payload.
    pub offset: u64,
    /// What was wrong or expected.
    pub kind: ErrorKind,
}

impl Serialize for Error {
    /// `{"offset": …, "message": "…"}`: the report's shape since the first release.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Error", 2)?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("message", &self.kind.to_string())?;
        st.end()
    }
}

/// Where in the format an RDB that stopped early stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The magic and version.
    Header,
    /// Between keys (no EOF opcode yet).
    KeyList,
    /// The trailing CRC-64.
    Checksum,
    /// A string.
    String,
    /// A length.
    Length,
    /// Any other part of a value.
    Value,
}

/// What was wrong with an RDB. Small and `Copy`: the offset says where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The input ended before the RDB did.
    #[error("truncated: the RDB ends in the middle of {}", match .0 {
        Place::Header => "the header",
        Place::KeyList => "the key list (no EOF opcode yet)",
        Place::Checksum => "the checksum",
        Place::String => "a string",
        Place::Length => "a length",
        Place::Value => "a value",
    })]
    Truncated(Place),
    /// Bytes of the RDB were never seen (a lost segment, or the analysis fell behind).
    #[error("{bytes} bytes {}", if *.behind { "were not analysed (analysis fell behind)" } else { "are missing from the capture" })]
    Missing {
        /// How many.
        bytes: u64,
        /// The analysis fell behind (else the capture lost them).
        behind: bool,
    },
    /// The stored CRC-64 is not the one computed.
    #[error("checksum mismatch: stored {stored:016x}, computed {computed:016x}")]
    ChecksumMismatch {
        /// In the file.
        stored: u64,
        /// Over the bytes.
        computed: u64,
    },
    /// The payload is in Valkey's compression envelope (`VCS`/`VKCS`), which repl-sniff
    /// recognises but does not decode.
    #[error("compressed by Valkey ({0} in its VCS envelope): repl-sniff recognises it but does not decode it")]
    ValkeyCompressed(crate::protocol::compression::Codec),
    /// The first bytes are not `REDIS` or `VALKEY`.
    #[error("not an RDB: it starts with \"{}\" instead of REDIS or VALKEY", crate::protocol::handshake::printable(.0, 9))]
    NotAnRdb([u8; 9]),
    /// The version after the magic is not a number.
    #[error("bad RDB version \"{}\"", crate::protocol::handshake::printable(&.digits[..*.len as usize], 4))]
    BadVersion {
        /// The digits as found.
        digits: [u8; 4],
        /// How many of them.
        len: u8,
    },
    /// A version this analyzer does not know.
    #[error(
        "RDB version {0} is not supported (this analyzer knows versions 1 to 14 and VALKEY 80)"
    )]
    UnsupportedVersion(u32),
    /// An ARRAY (type 28) that breaks its layout: no elements, a flag above 1, an unknown tag.
    #[error("ARRAY value (type 28) is corrupt (or a pre-release build wrote GCRA as type 28)")]
    BadArray,
    /// A length byte with an unknown encoding.
    #[error("unknown length encoding 0x{0:02x}")]
    LengthEncoding(u8),
    /// A string encoding where a plain length belongs.
    #[error("expected a length, found string encoding {0}")]
    EncodingNotLength(u8),
    /// A string with an unknown special encoding.
    #[error("unknown string encoding {0}")]
    StringEncoding(u8),
    /// An LZF back-reference before the start of the output.
    #[error("LZF-compressed string is corrupt")]
    Lzf,
    /// Redis 7.0-rc's function opcode.
    #[error("pre-release (7.0-rc) function format is not supported")]
    PreReleaseFunctions,
    /// A byte that is neither a known opcode nor a known value type.
    #[error("unknown value type or opcode 0x{0:02x}")]
    UnknownType(u8),
    /// A module value's opcode that is not one of the five.
    #[error("unknown module value opcode {0}")]
    ModuleOpcode(u64),
    /// A listpack, ziplist, intset or zipmap shorter than its header.
    #[error("container blob too short for its header")]
    ShortContainer,
    /// A bug in this analyzer: its op stack ran dry.
    #[error("internal: empty op stack")]
    EmptyStack,
}

/// The CRC-64 check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// The stored value matches.
    Ok,
    /// It does not.
    Mismatch,
    /// Stored as 0 (`rdbchecksum no`) or an RDB older than version 5.
    Absent,
    /// The analysis did not get that far.
    #[default]
    NotReached,
}

impl Checksum {
    /// The name used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Checksum::Ok => "ok",
            Checksum::Mismatch => "mismatch",
            Checksum::Absent => "absent",
            Checksum::NotReached => "not_reached",
        }
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-database counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DbStats {
    /// Keys.
    pub keys: u64,
    /// Keys with an expire.
    pub expires: u64,
    /// The `RESIZEDB` hint: keys and expires the saver announced.
    pub resize_hint: Option<(u64, u64)>,
}

/// Per-type counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeStats {
    /// Keys of this type.
    pub keys: u64,
    /// Elements (1 per string; list items, set members, hash fields, zset members, stream
    /// entries).
    pub elements: u64,
    /// Serialized bytes (key and value as stored in the RDB).
    pub bytes: u64,
}

impl Summary {
    /// Replaces each key name by a stable short hash of it (`#` and 8 hex digits), so a
    /// report can be shared without the keys' names and still tell the same key apart.
    pub fn hide_keys(&mut self) {
        for k in &mut self.biggest {
            k.key = key_hash(k.key.as_bytes());
        }
    }
}

/// `#` and the first 8 hex digits of the key's FNV-1a hash: the same key always reads the
/// same, and the name cannot be read back from it.
pub fn key_hash(name: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("#{:08x}", h >> 32)
}

/// One of the biggest keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BigKey {
    /// Serialized bytes.
    pub bytes: u64,
    /// The database.
    pub db: u64,
    /// The key, non-printable bytes escaped, long names shortened; a short hash of it
    /// (`#1a2b3c4d`) unless key names were asked for (`--show-keys`).
    pub key: String,
    /// The type (`string`, `hash`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The encoding as stored (`hash_listpack`, …).
    pub encoding: &'static str,
    /// Elements.
    pub elements: u64,
}

/// Everything learnt from one RDB.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `REDIS` or `VALKEY`.
    pub magic: Option<String>,
    /// The RDB version.
    pub version: Option<u32>,
    /// AUX fields (values shown printable).
    pub aux: BTreeMap<String, String>,
    /// Per database number.
    pub dbs: BTreeMap<u64, DbStats>,
    /// Per type (`string`, `list`, `set`, `zset`, `hash`, `stream`, `module`, `array`,
    /// `gcra`).
    pub types: BTreeMap<&'static str, TypeStats>,
    /// Keys per stored encoding.
    pub encodings: BTreeMap<&'static str, u64>,
    /// Consumer groups and consumers over all streams.
    pub stream_groups: u64,
    /// Consumers over all stream groups.
    pub stream_consumers: u64,
    /// Keys with module metadata (the KEY_META opcode, RDB 13 and later).
    pub key_meta: u64,
    /// Unfinished slot imports the file records (Valkey 9's SLOT_IMPORT opcode, 0xF3 in a
    /// `VALKEY` file): each names a migration job and its slot ranges.
    pub slot_imports: u64,
    /// Listpacks, ziplists and zipmaps whose header does not carry their element count
    /// (65535 or more elements); their elements are not in `types.*.elements`.
    pub uncounted_containers: u64,
    /// The biggest keys by serialized size, biggest first.
    pub biggest: Vec<BigKey>,
    /// Function libraries (`#!lua name=…`).
    pub functions: Vec<String>,
    /// Module types present (values and module AUX).
    pub modules: Vec<String>,
    /// Whether the stored CRC-64 matched.
    pub checksum: Checksum,
    /// Bytes analysed.
    pub bytes: u64,
    /// Returns true if and only if the parser reached the end of the RDB.
    pub complete: bool,
    /// Why the analysis stopped early, if it did.
    pub error: Option<Error>,
}
