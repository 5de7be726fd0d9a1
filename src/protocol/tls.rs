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

/// The largest TLS record (2^14 bytes of payload, plus its 5-byte header, plus the 2^11 bytes
/// a TLS 1.2 record may add): the most a session gathers of a hello, whatever the header says.
pub const MAX_RECORD: usize = 5 + (1 << 14) + (1 << 11);

/// A TLS protocol version, as the hellos name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum TlsVersion {
    /// TLS 1.0 (`03 01`).
    #[serde(rename = "TLS 1.0")]
    Tls10,
    /// TLS 1.1 (`03 02`).
    #[serde(rename = "TLS 1.1")]
    Tls11,
    /// TLS 1.2 (`03 03`).
    #[serde(rename = "TLS 1.2")]
    Tls12,
    /// TLS 1.3 (`03 04`, only ever in the `supported_versions` extension).
    #[serde(rename = "TLS 1.3")]
    Tls13,
}

impl TlsVersion {
    fn from_wire(v: u16) -> Option<TlsVersion> {
        match v {
            0x0301 => Some(TlsVersion::Tls10),
            0x0302 => Some(TlsVersion::Tls11),
            0x0303 => Some(TlsVersion::Tls12),
            0x0304 => Some(TlsVersion::Tls13),
            _ => None,
        }
    }

    /// How people write it: `TLS 1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLS 1.0",
            TlsVersion::Tls11 => "TLS 1.1",
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        }
    }
}

/// What a hello (the first handshake message of either side) says in the clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// A ClientHello: the highest version offered. A ServerHello: the version chosen.
    pub version: Option<TlsVersion>,
    /// The server name the client asked for (ClientHello only; Redis replicas send one only
    /// when `replicaof` names a host, not an address).
    pub sni: Option<String>,
}

/// The length of the TLS record `bytes` begins with, header included, once the header is in.
pub fn record_len(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= 5).then(|| 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]])))
}

/// Reads the ClientHello or ServerHello in the first TLS record `record` (header included; a
/// record cut short gives what its bytes hold). `None` when it is no hello.
pub fn parse_hello(record: &[u8]) -> Option<Hello> {
    let mut r = Reader(record);
    if r.u8()? != 0x16 {
        return None;
    }
    r.take(4)?; // record version and length
    let kind = r.u8()?;
    if kind != 1 && kind != 2 {
        return None;
    }
    r.take(3)?; // handshake length
    let legacy = r.u16()?;
    r.take(32)?; // random
    let session_id = usize::from(r.u8()?);
    r.take(session_id)?;
    let client = kind == 1;
    let mut hello = Hello {
        version: TlsVersion::from_wire(legacy),
        sni: None,
    };
    if client {
        let suites = usize::from(r.u16()?);
        r.take(suites)?;
        let methods = usize::from(r.u8()?);
        r.take(methods)?;
    } else {
        r.take(3)?; // the chosen suite and compression method
    }
    // Extensions (absent in the oldest hellos).
    let Some(len) = r.u16() else {
        return Some(hello);
    };
    let mut exts = Reader(r.take(usize::from(len)).unwrap_or(r.0));
    while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
        let Some(data) = exts.take(usize::from(len)) else {
            break;
        };
        let mut d = Reader(data);
        match kind {
            // server_name: a list of (type, name); type 0 is a host name.
            0 if client => {
                d.take(2);
                if d.u8() == Some(0) {
                    let n = d.u16().map(usize::from);
                    hello.sni = n
                        .and_then(|n| d.take(n))
                        .map(|name| String::from_utf8_lossy(name).into_owned());
                }
            }
            // supported_versions: the client's list, or the server's choice.
            43 if client => {
                let n = d.u8().map(usize::from).unwrap_or(0);
                let list = d.take(n).unwrap_or_default();
                let best = list
                    .chunks_exact(2)
                    .filter_map(|v| TlsVersion::from_wire(u16::from_be_bytes([v[0], v[1]])))
                    .max();
                hello.version = best.or(hello.version);
            }
            43 => hello.version = d.u16().and_then(TlsVersion::from_wire).or(hello.version),
            _ => {}
        }
    }
    Some(hello)
}

/// A cursor over bytes that says `None` rather than read past their end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, &self.0[n..]);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello offering TLS 1.3 and 1.2 (GREASE first, as browsers send) for "m.example".
    fn hello() -> Vec<u8> {
        let mut exts = vec![0, 0, 0, 14, 0, 12, 0, 0, 9];
        exts.extend(b"m.example");
        exts.extend([0, 43, 0, 7, 6, 0x0a, 0x0a, 3, 4, 3, 3]);
        let mut body = vec![3, 3];
        body.extend([1; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn a_client_hello_gives_the_highest_version_offered_and_the_server_name() {
        let got = parse_hello(&hello()).unwrap();
        assert_eq!(got.version, Some(TlsVersion::Tls13));
        assert_eq!(got.sni.as_deref(), Some("m.example"));
        assert_eq!(record_len(&hello()), Some(hello().len()));
    }

    #[test]
    fn a_hello_cut_anywhere_gives_what_its_bytes_hold_and_never_panics() {
        let full = hello();
        for cut in 0..full.len() {
            let got = parse_hello(&full[..cut]);
            assert!(cut >= 6 || got.is_none(), "{cut}");
            if let Some(h) = got {
                assert!(h.sni.is_none() || h.sni.as_deref() == Some("m.example"));
            }
        }
    }
}
