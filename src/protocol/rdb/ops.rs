//! The RDB format as tables: which ops read each opcode's and each value type's body.
//!
//! The interpreter (`parser`) runs these ops on a stack: read a length and do something
//! with it, read a string for some purpose, skip fixed bytes, repeat a body. Supporting a
//! new value type means a row here, not code in the interpreter.

/// Longest key prefix kept for the biggest-keys list.
pub(super) const KEY_CAPTURE: usize = 128;
/// Longest AUX value kept.
pub(super) const AUX_CAPTURE: usize = 256;
/// Bytes of a container blob needed to read its element count.
const HEADER_CAPTURE: usize = 10;

/// A length field: a number, or (where a string is expected) a special string encoding:
/// 0/1/2 = an 8/16/32-bit integer, 3 = LZF.
#[derive(Debug, Clone, Copy)]
pub(super) enum Length {
    Value(u64),
    Encoded(u8),
}

/// What a string read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Skip,
    Key,
    AuxKey,
    AuxValue,
    Function,
    /// A container blob whose element count is in its header.
    Container(Container),
    /// A quicklist 2 node: plain (one element) or packed (a listpack).
    QuicklistNode,
    /// A string value (one element).
    StringValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Container {
    Ziplist { per: u64 },
    Listpack { per: u64 },
    Intset,
    Zipmap,
}

impl Purpose {
    /// How many leading (decompressed) bytes of the string matter; 0 if none.
    pub(super) fn keep(self) -> usize {
        match self {
            Purpose::Key => KEY_CAPTURE,
            Purpose::AuxKey | Purpose::AuxValue | Purpose::Function => AUX_CAPTURE,
            Purpose::Container(_) => HEADER_CAPTURE,
            Purpose::Skip | Purpose::QuicklistNode | Purpose::StringValue => 0,
        }
    }
}

/// What to do with a length once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    Discard,
    SelectDb,
    ResizeKeys,
    ResizeExpires,
    /// Count that many elements and repeat `body` for each.
    Elements(&'static [Op]),
    /// Repeat `body` this many times.
    Repeat(&'static [Op]),
    /// Repeat `body` this many times, counting stream groups.
    Groups(&'static [Op]),
    /// Repeat `body` this many times, counting stream consumers.
    Consumers(&'static [Op]),
    StreamLength,
    QuicklistContainer,
    ModuleId,
    ModuleOpcode,
    LzfCompressed(Purpose),
    LzfUncompressed(Purpose),
    /// A value that is one element, stored as a length (GCRA's arrival time).
    OneElement,
    /// An ARRAY's element count: counted, and kept until its insert-index flag is read.
    ArrayCount,
    /// An ARRAY's insert-index flag (0, or 1 when an index follows), then its elements.
    ArrayFlag,
    /// An ARRAY element's tag: which value follows.
    ArrayTag,
}

/// One step of the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Magic,
    TopLevel,
    Len(Then),
    Str(Purpose),
    /// Skip exactly this many bytes (at most 16).
    Skip(u8),
    /// An 8-byte expire in ms, or (`false`) a 4-byte one in seconds.
    Expire(bool),
    /// Legacy text double: 1 length byte (253..255 = NaN/±inf) then that many bytes.
    LegacyDouble,
    EndKey,
    Checksum,
    /// A repetition in progress.
    Repeat {
        left: u64,
        body: &'static [Op],
    },
    /// Streaming `left` bytes of a string body, keeping the first `Purpose::keep` of them.
    Body {
        left: u64,
        purpose: Purpose,
        int: bool,
    },
    /// Feeding `left` LZF-compressed bytes to the prefix decoder.
    Lzf {
        left: u64,
        purpose: Purpose,
    },
    Done,
}

pub(super) use Op::*;

const ONE_STR: &[Op] = &[Str(Purpose::Skip)];
const TWO_STR: &[Op] = &[Str(Purpose::Skip), Str(Purpose::Skip)];
const ZSET_LEGACY: &[Op] = &[Str(Purpose::Skip), LegacyDouble];
const ZSET_BINARY: &[Op] = &[Str(Purpose::Skip), Skip(8)];
const HASH_TTL: &[Op] = &[Len(Then::Discard), Str(Purpose::Skip), Str(Purpose::Skip)];
const VALKEY_HASH2: &[Op] = &[Str(Purpose::Skip), Str(Purpose::Skip), Skip(8)];
const QUICKLIST: &[Op] = &[Str(Purpose::Container(Container::Ziplist { per: 1 }))];
const QUICKLIST2: &[Op] = &[Len(Then::QuicklistContainer), Str(Purpose::QuicklistNode)];
const STREAM_LP: &[Op] = &[Str(Purpose::Skip), Str(Purpose::Skip)];
const ID16: &[Op] = &[Skip(16)];
const PEL: &[Op] = &[Skip(16), Skip(8), Len(Then::Discard)];
const CONSUMER_V1: &[Op] = &[Str(Purpose::Skip), Skip(8), Len(Then::Repeat(ID16))];
const CONSUMER_V3: &[Op] = &[
    Str(Purpose::Skip),
    Skip(8),
    Skip(8),
    Len(Then::Repeat(ID16)),
];
const GROUP_V1: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V1)),
];
const GROUP_V2: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V1)),
];
const GROUP_V5: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V3)),
    Len(Then::Repeat(ID16)),
];
const GROUP_V3: &[Op] = &[
    Str(Purpose::Skip),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PEL)),
    Len(Then::Consumers(CONSUMER_V3)),
];
const SLOT_RANGE: &[Op] = &[Len(Then::Discard), Len(Then::Discard)];
const KEY_META_CLASS: &[Op] = &[Skip(4), Len(Then::ModuleOpcode)];

/// Logical types, in a fixed order (an index into per-type counters).
pub(super) const TYPES: [&str; 9] = [
    "string", "list", "set", "zset", "hash", "stream", "module", "array", "gcra",
];

/// The stored encoding of a value type byte, and its logical type.
pub(super) fn encoding(t: u8, valkey: bool) -> Option<(&'static str, usize)> {
    Some(match t {
        0 => ("string", 0),
        1 => ("list", 1),
        2 => ("set", 2),
        3 => ("zset", 3),
        4 => ("hash", 4),
        5 => ("zset_2", 3),
        7 => ("module_2", 6),
        9 => ("hash_zipmap", 4),
        10 => ("list_ziplist", 1),
        11 => ("set_intset", 2),
        12 => ("zset_ziplist", 3),
        13 => ("hash_ziplist", 4),
        14 => ("list_quicklist", 1),
        15 => ("stream_listpacks", 5),
        16 => ("hash_listpack", 4),
        17 => ("zset_listpack", 3),
        18 => ("list_quicklist_2", 1),
        19 => ("stream_listpacks_2", 5),
        20 => ("set_listpack", 2),
        21 => ("stream_listpacks_3", 5),
        22 if valkey => ("hash_2", 4),
        24 if !valkey => ("hash_metadata", 4),
        25 if !valkey => ("hash_listpack_ex", 4),
        // RDB 13 and 14 (protocol-next.md N3); the reader does not gate them by version.
        26 if !valkey => ("stream_listpacks_4", 5),
        27 if !valkey => ("stream_listpacks_5", 5),
        28 if !valkey => ("array", 7),
        // Only in builds with ENABLE_GCRA (no release): a rate limiter's arrival time.
        29 if !valkey => ("gcra", 8),
        _ => return None,
    })
}

pub(super) fn module_name(id: u64) -> String {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9)
        .map(|i| CHARS[((id >> (10 + 6 * (8 - i))) & 63) as usize] as char)
        .collect()
}

/// The ops that read the value of type `t` (after its key).
pub(super) fn value_ops(t: u8) -> &'static [Op] {
    match t {
        0 => &[Str(Purpose::StringValue)],
        1 | 2 => &[Len(Then::Elements(ONE_STR))],
        3 => &[Len(Then::Elements(ZSET_LEGACY))],
        4 => &[Len(Then::Elements(TWO_STR))],
        5 => &[Len(Then::Elements(ZSET_BINARY))],
        7 => &[Len(Then::ModuleId), Len(Then::ModuleOpcode)],
        9 => &[Str(Purpose::Container(Container::Zipmap))],
        10 => &[Str(Purpose::Container(Container::Ziplist { per: 1 }))],
        11 => &[Str(Purpose::Container(Container::Intset))],
        12 | 13 => &[Str(Purpose::Container(Container::Ziplist { per: 2 }))],
        14 => &[Len(Then::Repeat(QUICKLIST))],
        15 => STREAM_V1,
        19 => STREAM_V2,
        21 => STREAM_V3,
        26 => STREAM_V4,
        27 => STREAM_V5,
        28 => &[Len(Then::ArrayCount), Len(Then::ArrayFlag)],
        29 => &[Len(Then::OneElement)],
        16 | 17 => &[Str(Purpose::Container(Container::Listpack { per: 2 }))],
        18 => &[Len(Then::Repeat(QUICKLIST2))],
        20 => &[Str(Purpose::Container(Container::Listpack { per: 1 }))],
        22 => &[Len(Then::Elements(VALKEY_HASH2))],
        24 => &[Skip(8), Len(Then::Elements(HASH_TTL))],
        25 => &[
            Skip(8),
            Str(Purpose::Container(Container::Listpack { per: 3 })),
        ],
        _ => &[],
    }
}

const STREAM_V1: &[Op] = &[
    Len(Then::Repeat(STREAM_LP)),
    Len(Then::StreamLength),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Groups(GROUP_V1)),
];
/// Streams 2 and 3 add first-id, max-deleted-id and entries-added (7 lengths in all).
const STREAM_V2: &[Op] = &[
    Len(Then::Repeat(STREAM_LP)),
    Len(Then::StreamLength),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Groups(GROUP_V2)),
];
/// Stream 4 (RDB 13) is stream 3 plus the IDMP trailer after the last group; stream 5 (RDB 14)
/// adds a NACK zone after each group's consumers.
const STREAM_V4: &[Op] = &[
    Len(Then::Repeat(STREAM_LP)),
    Len(Then::StreamLength),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Groups(GROUP_V3)),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PRODUCER)),
    Len(Then::Discard),
    Len(Then::Discard),
];
const STREAM_V5: &[Op] = &[
    Len(Then::Repeat(STREAM_LP)),
    Len(Then::StreamLength),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Groups(GROUP_V5)),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Repeat(PRODUCER)),
    Len(Then::Discard),
    Len(Then::Discard),
];
/// An IDMP producer: its id, then its idempotency ids (each a string and a length-encoded
/// stream id).
const PRODUCER: &[Op] = &[Str(Purpose::Skip), Len(Then::Repeat(IID))];
const IID: &[Op] = &[Str(Purpose::Skip), Len(Then::Discard), Len(Then::Discard)];
/// An ARRAY element: its index, then its tag.
pub(super) const ARRAY_ELEMENT: &[Op] = &[Len(Then::Discard), Len(Then::ArrayTag)];

/// What follows an ARRAY element's tag: 0 an RDB string, 1 a signed 64-bit integer, 2 a
/// double, 3 a short RDB string.
pub(super) fn array_value_ops(tag: u64) -> Option<&'static [Op]> {
    Some(match tag {
        0 | 3 => &[Str(Purpose::Skip)],
        1 | 2 => &[Skip(8)],
        _ => return None,
    })
}

const STREAM_V3: &[Op] = &[
    Len(Then::Repeat(STREAM_LP)),
    Len(Then::StreamLength),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Discard),
    Len(Then::Groups(GROUP_V3)),
];

/// The ops that follow a module value opcode (`protocol.md` §9: 1/2 = integer, 3 = float,
/// 4 = double, 5 = string; 0 ends the value).
pub(super) fn module_value_ops(opcode: u64) -> Option<&'static [Op]> {
    Some(match opcode {
        0 => &[],
        1 | 2 => &[Len(Then::Discard), Len(Then::ModuleOpcode)],
        3 => &[Skip(4), Len(Then::ModuleOpcode)],
        4 => &[Skip(8), Len(Then::ModuleOpcode)],
        5 => &[Str(Purpose::Skip), Len(Then::ModuleOpcode)],
        _ => return None,
    })
}

impl Container {
    /// The element count in a container's header (its first bytes); `None` when the header
    /// says "unknown" (65535 or more elements) or is too short to say.
    pub(super) fn count(self, header: &[u8]) -> Option<u64> {
        let u16_at = |i: usize| {
            header
                .get(i..i + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
        };
        match self {
            Container::Ziplist { per } => u16_at(8).filter(|n| *n != 0xFFFF).map(|n| n / per),
            Container::Listpack { per } => u16_at(4).filter(|n| *n != 0xFFFF).map(|n| n / per),
            Container::Intset => header
                .get(4..8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
            Container::Zipmap => header.first().filter(|n| **n < 254).map(|n| *n as u64),
        }
    }
}

/// The ops that read the body of top-level opcode `t`, for the opcodes that only read
/// (`EOF` and the 7.0-rc function opcode are the parser's business); `None` for a value type.
pub(super) fn opcode_ops(t: u8, valkey: bool) -> Option<&'static [Op]> {
    Some(match t {
        0xFE => &[Len(Then::SelectDb)],
        0xFD => &[Expire(false)],
        0xFC => &[Expire(true)],
        0xFB => &[Len(Then::ResizeKeys), Len(Then::ResizeExpires)],
        0xFA => &[Str(Purpose::AuxKey), Str(Purpose::AuxValue)],
        0xF9 => &[Skip(1)],
        0xF8 => &[Len(Then::Discard)],
        0xF7 => &[
            Len(Then::ModuleId),
            Len(Then::Discard),
            Len(Then::Discard),
            Len(Then::ModuleOpcode),
        ],
        0xF5 => &[Str(Purpose::Function)],
        0xF4 => &[Len(Then::Discard), Len(Then::Discard), Len(Then::Discard)],
        0xF3 if valkey => &[Str(Purpose::Skip), Len(Then::Repeat(SLOT_RANGE))],
        0xF3 => &[Len(Then::Repeat(KEY_META_CLASS))],
        _ => return None,
    })
}
