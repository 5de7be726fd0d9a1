//! What an RDB says of itself before its keys (its header and the server that wrote it), and
//! which RDB version a Valkey master writes to a replica: Valkey 9 chooses it per replica from
//! the `REPLCONF version` the replica announced (`protocol-2026-12.md` P1, from Valkey 9.1.0's
//! `rdbSaveRio` and `RDB_VERSION_MAP`).

use serde::Serialize;

/// The first `VALKEY` RDB version (Valkey 9.0); `REDIS` versions run 1 to 14.
pub const FIRST_VALKEY: u32 = 80;

/// An RDB's header and the server that wrote it, known once its leading AUX fields are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    /// `REDIS` or `VALKEY`.
    pub magic: String,
    /// The version after the magic.
    pub version: u32,
    /// The writing server from the AUX fields: `valkey 9.1.2` (`valkey-ver`) or `redis
    /// 7.0.15` (`redis-ver`).
    pub written_by: Option<String>,
}

impl Header {
    /// The nine header bytes as the file has them: `REDIS0011`, `VALKEY080`.
    pub fn as_written(&self) -> String {
        let digits = 9usize.saturating_sub(self.magic.len());
        format!("{}{:0digits$}", self.magic, self.version)
    }

    /// The writer's Valkey version, `(major, minor)`, when a Valkey wrote it.
    pub fn valkey_writer(&self) -> Option<(u32, u32)> {
        major_minor(self.written_by.as_deref()?.strip_prefix("valkey ")?)
    }
}

/// `"9.1.2"` → `(9, 1)`.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// The RDB version a Valkey 9 master writes on a diskless sync to a replica that announced
/// `REPLCONF version <announced>` (`None`: it announced none): the highest of 11 (7.2 and
/// later, and no version), 80 (9.0) and 81 (9.2) that the replica's version reaches.
pub fn valkey_version_for(announced: Option<&str>) -> u32 {
    match announced.and_then(major_minor) {
        Some(v) if v >= (9, 2) => 81,
        Some(v) if v >= (9, 0) => FIRST_VALKEY,
        _ => 11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valkey_9_master_writes_what_the_announced_version_reads() {
        assert_eq!(valkey_version_for(None), 11);
        assert_eq!(valkey_version_for(Some("8.1.8")), 11);
        assert_eq!(valkey_version_for(Some("7.2.4")), 11);
        assert_eq!(valkey_version_for(Some("9.0.0")), 80);
        assert_eq!(valkey_version_for(Some("9.1.2")), 80);
        assert_eq!(valkey_version_for(Some("9.2.0")), 81);
        assert_eq!(valkey_version_for(Some("10.0")), 81);
        assert_eq!(valkey_version_for(Some("nonsense")), 11);
    }

    #[test]
    fn the_header_is_shown_as_the_file_has_it() {
        let h = |magic: &str, version, by: Option<&str>| Header {
            magic: magic.into(),
            version,
            written_by: by.map(str::to_string),
        };
        assert_eq!(h("REDIS", 11, None).as_written(), "REDIS0011");
        assert_eq!(h("VALKEY", 80, None).as_written(), "VALKEY080");
        assert_eq!(
            h("VALKEY", 80, Some("valkey 9.1.2")).valkey_writer(),
            Some((9, 1))
        );
        assert_eq!(h("REDIS", 11, Some("redis 7.2.4")).valkey_writer(), None);
    }
}
