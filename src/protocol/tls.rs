//! Recognises a TLS link by its first bytes: repl-sniff forwards TLS but cannot read it, so a
//! session says so instead of calling the bytes broken.

/// Whether `held` then `more` are the first bytes of a TLS record (`16 03 0x`), so far.
pub fn is_tls_prefix(held: &[u8], more: &[u8]) -> bool {
    const START: [u8; 2] = [0x16, 0x03];
    held.iter()
        .chain(more)
        .take(2)
        .zip(START)
        .all(|(b, s)| *b == s)
}

/// A TLS record header (handshake, TLS 1.0 to 1.3): what a `tls-replication` link starts with.
pub fn is_tls_record(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0x16 && bytes[1] == 0x03 && bytes[2] <= 0x04
}
