//! The file's outer grammar: its magic (`REDIS`/`VALKEY` and the version) and the opcodes
//! between keys (`SELECTDB`, `RESIZEDB`, `AUX`, expiry, `EOF`, …).

use super::*;

impl Parser {
    pub(super) fn magic(&mut self, b: &[u8]) -> Result<(), ErrorKind> {
        let (valkey, digits) = if b.starts_with(b"REDIS") {
            (false, &b[5..9])
        } else if b.starts_with(b"VALKEY") {
            (true, &b[6..9])
        } else if let Some(codec) = crate::protocol::compression::valkey_envelope(b) {
            return Err(ErrorKind::ValkeyCompressed(codec));
        } else {
            let mut start = [0u8; 9];
            start.copy_from_slice(&b[..9]);
            return Err(ErrorKind::NotAnRdb(start));
        };
        let version: u32 = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| {
                let mut found = [0u8; 4];
                found[..digits.len()].copy_from_slice(digits);
                ErrorKind::BadVersion {
                    digits: found,
                    len: digits.len() as u8,
                }
            })?;
        self.valkey = valkey;
        self.version = version;
        self.summary.magic = Some(if valkey { "VALKEY" } else { "REDIS" }.into());
        self.summary.version = Some(version);
        if version == 0 || (!valkey && version > MAX_VERSION) {
            return Err(ErrorKind::UnsupportedVersion(version));
        }
        Ok(())
    }

    pub(super) fn top_level(&mut self, t: u8) -> Result<(), ErrorKind> {
        self.past_aux |= t != 0xFA;
        match t {
            0xFF => {
                self.crc_end = Some(self.pos + 1);
                if self.version >= 5 {
                    self.stack.push(Checksum);
                } else {
                    self.summary.checksum = summary::Checksum::Absent;
                    self.summary.complete = true;
                }
            }
            0xF6 => return Err(ErrorKind::PreReleaseFunctions),
            _ => {
                if t == 0xF3 && self.valkey {
                    self.summary.slot_imports += 1;
                } else if t == 0xF3 {
                    // KEY_META: module metadata of the next key (Valkey's 0xF3 is SLOT_IMPORT).
                    self.summary.key_meta += 1;
                }
                // The opcode's ops (or the key and value) run first, then the next item.
                self.stack.push(TopLevel);
                if let Some(ops) = opcode_ops(t, self.valkey) {
                    self.push_body(ops);
                    return Ok(());
                }
                let Some((encoding, kind)) = encoding(t, self.valkey) else {
                    return Err(ErrorKind::UnknownType(t));
                };
                let expires = std::mem::take(&mut self.pending_expire);
                self.census.begin(kind, encoding, self.pos, expires);
                self.stack.push(EndKey);
                self.push_body(value_ops(t));
                self.stack.push(Str(Purpose::Key));
            }
        }
        Ok(())
    }
}
