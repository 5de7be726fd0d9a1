//! A TLS link: nothing in it can be read but the two hellos, so the session counts its bytes,
//! takes the version and the server name from the hellos, and says once what the link is,
//! instead of calling the bytes broken.

use super::Session;
use crate::analyzer::event::EventKind;
use crate::analyzer::input::{Direction, Sides, Timestamp};
use crate::protocol::tls::{is_tls_record, parse_hello, record_len, MAX_RECORD};

/// What a TLS link's session keeps: the first record of each direction, until the
/// [`EventKind::Encrypted`] event is out.
#[derive(Debug, Default)]
pub(super) struct Encrypted {
    first: Sides<Vec<u8>>,
    told: bool,
}

impl Encrypted {
    /// Adds to `dir`'s first record what it lacks of `bytes`; whether that record is complete.
    fn gather(&mut self, dir: Direction, bytes: &[u8]) -> bool {
        let first = &mut self.first[dir];
        let room = MAX_RECORD.saturating_sub(first.len());
        first.extend_from_slice(&bytes[..bytes.len().min(room)]);
        match record_len(first) {
            Some(n) if first.len() >= n.min(MAX_RECORD) => {
                first.truncate(n);
                true
            }
            _ => first.len() >= MAX_RECORD,
        }
    }
}

impl Session {
    /// Whether `bytes`, the first of `dir`, open a TLS link: a TLS handshake record, with
    /// nothing seen the other way yet.
    pub(super) fn opens_tls(&self, dir: Direction, bytes: &[u8]) -> bool {
        let other = match dir {
            Direction::ReplicaToMaster => Direction::MasterToReplica,
            Direction::MasterToReplica => Direction::ReplicaToMaster,
        };
        self.seen[dir] == 0 && self.seen[other] == 0 && is_tls_record(bytes)
    }

    /// Counts a TLS link's bytes; once the master's hello is in, says what the link is.
    pub(super) fn feed_encrypted(&mut self, dir: Direction, at: Timestamp, bytes: &[u8]) {
        self.seen[dir] += bytes.len() as u64;
        let Some(tls) = self.tls.as_mut().filter(|t| !t.told) else {
            return;
        };
        if tls.gather(dir, bytes) && dir == Direction::MasterToReplica {
            self.tell_encrypted(at);
        }
    }

    /// Emits the link's [`EventKind::Encrypted`], once, from the hellos seen (at the end of a
    /// connection that never got the master's).
    pub(super) fn tell_encrypted(&mut self, at: Timestamp) {
        let Some(tls) = self.tls.as_mut().filter(|t| !t.told) else {
            return;
        };
        tls.told = true;
        let first = std::mem::take(&mut tls.first);
        let client = parse_hello(&first[Direction::ReplicaToMaster]).unwrap_or_default();
        let server = parse_hello(&first[Direction::MasterToReplica]).unwrap_or_default();
        let kind = EventKind::Encrypted {
            version: server.version.or(client.version),
            sni: client.sni,
        };
        self.emit(at, kind);
    }
}
