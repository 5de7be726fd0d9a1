//! What of the cluster protocol the analysis recognises: a cluster bus link by its header
//! (and the node it names), and atomic slot migration's `CLUSTER SYNCSLOTS` commands
//! (protocol-next.md N6).

use crate::protocol::resp::Command;

/// How every cluster bus message begins (Redis and Valkey, `cluster.h`'s `clusterMsg` and
/// its light form alike).
pub const BUS_SIGNATURE: &[u8] = b"RCmb";

/// Whether `held` then `more` could still be the start of a cluster bus message.
pub fn is_bus_prefix(held: &[u8], more: &[u8]) -> bool {
    held.iter()
        .chain(more)
        .zip(BUS_SIGNATURE)
        .all(|(b, s)| b == s)
}

/// The sender's node id and announced data port in a full cluster bus message header
/// (`clusterMsg`: `sig[4] totlen:u32 ver:u16 port:u16 type:u16 count:u16 currentEpoch:u64
/// configEpoch:u64 offset:u64 sender[40] …`, big-endian), when `bytes` begins with one.
pub fn bus_sender(bytes: &[u8]) -> Option<(String, u16)> {
    let port = u16::from_be_bytes(bytes.get(10..12)?.try_into().ok()?);
    let name = bytes.get(40..80)?;
    name.iter()
        .all(u8::is_ascii_hexdigit)
        .then(|| (String::from_utf8_lossy(name).into_owned(), port))
}

/// `CLUSTER SYNCSLOTS [sub]`: is `cmd` that (with that subcommand, if one is given)?
pub fn is_syncslots(cmd: &Command, sub: Option<&str>) -> bool {
    cmd.name().is("CLUSTER")
        && cmd.arg(1).is_some_and(|a| a.eq_ignore_case("SYNCSLOTS"))
        && sub.is_none_or(|sub| cmd.arg(2).is_some_and(|a| a.eq_ignore_case(sub)))
}
