//! Text rendering of an RDB analysis: the one-line form used in event logs, and the tables of
//! `repl-sniff rdb`.

use std::fmt::Write as _;

use crate::protocol::rdb::Summary;

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: u64 = self.dbs.values().map(|d| d.keys).sum();
        let dbs: Vec<String> = self
            .dbs
            .iter()
            .map(|(n, d)| format!("db{n} {}", d.keys))
            .collect();
        // The header as the file has it: nine bytes, so `REDIS0011` but `VALKEY080`.
        let header = crate::protocol::rdb::Header {
            magic: self.magic.clone().unwrap_or_else(|| "?".into()),
            version: self.version.unwrap_or(0),
            written_by: None,
        };
        write!(
            f,
            "{}: {keys} keys ({}), checksum {}",
            header.as_written(),
            dbs.join(", "),
            self.checksum
        )?;
        if let Some(e) = &self.error {
            write!(f, "; analysis stopped: {e}")?;
        }
        Ok(())
    }
}

/// The text report of `repl-sniff rdb`: header, AUX fields, per-db and per-type tables,
/// encodings, and the biggest keys.
pub fn tables(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "RDB {} version {}: {} bytes, checksum {}{}",
        s.magic.as_deref().unwrap_or("?"),
        s.version.map_or("?".into(), |v| v.to_string()),
        s.bytes,
        s.checksum,
        if s.complete { "" } else { " (incomplete)" }
    );
    if let Some(e) = &s.error {
        let _ = writeln!(o, "ERROR: {e}");
    }
    if !s.aux.is_empty() {
        let _ = writeln!(o, "\nAUX fields:");
        for (k, v) in &s.aux {
            let _ = writeln!(o, "  {k:<16} {v}");
        }
    }
    let _ = writeln!(
        o,
        "\n  {:>4} {:>12} {:>12} {:>18}",
        "db", "keys", "expires", "RESIZEDB hint"
    );
    for (n, d) in &s.dbs {
        let hint = d
            .resize_hint
            .map_or("-".into(), |(k, e)| format!("{k}/{e}"));
        let _ = writeln!(o, "  {n:>4} {:>12} {:>12} {hint:>18}", d.keys, d.expires);
    }
    let _ = writeln!(
        o,
        "\n  {:<8} {:>12} {:>14} {:>16}",
        "type", "keys", "elements", "bytes"
    );
    for (t, stats) in &s.types {
        let _ = writeln!(
            o,
            "  {t:<8} {:>12} {:>14} {:>16}",
            stats.keys, stats.elements, stats.bytes
        );
    }
    if !s.encodings.is_empty() {
        let enc: Vec<String> = s
            .encodings
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect();
        let _ = writeln!(o, "\nencodings: {}", enc.join(", "));
    }
    if s.stream_groups > 0 {
        let _ = writeln!(
            o,
            "streams: {} consumer group(s), {} consumer(s)",
            s.stream_groups, s.stream_consumers
        );
    }
    if !s.functions.is_empty() {
        let _ = writeln!(o, "function libraries: {}", s.functions.join(", "));
    }
    if !s.modules.is_empty() {
        let _ = writeln!(o, "module types: {}", s.modules.join(", "));
    }
    if !s.biggest.is_empty() {
        let _ = writeln!(
            o,
            "\nbiggest keys:\n  {:>12} {:>4} {:<18} {:>10}  key",
            "bytes", "db", "encoding", "elements"
        );
        for k in &s.biggest {
            let _ = writeln!(
                o,
                "  {:>12} {:>4} {:<18} {:>10}  {}",
                k.bytes, k.db, k.encoding, k.elements, k.key
            );
        }
    }
    o
}
