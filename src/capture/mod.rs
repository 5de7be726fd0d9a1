//! The offline drivers: reading pcap/pcapng captures ([`pcap`]), reassembling their TCP
//! streams into the analyzer's inputs ([`tcp`]), replaying them into a monitor ([`replay`]),
//! writing what the proxy forwarded as pcapng ([`record`]), and reading RDB dumps ([`dump`]).

pub mod dump;
pub mod pcap;
pub mod record;
pub mod replay;
pub mod sniff;
pub mod socket;
pub mod tcp;

pub use pcap::{decode, Error, Frame, Reader, Segment};
