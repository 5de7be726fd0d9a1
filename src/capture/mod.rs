//! The offline driver: reading pcap/pcapng captures ([`pcap`]), reassembling their TCP streams
//! into the analyzer's inputs ([`tcp`]), replaying them into a monitor ([`replay`]), and
//! writing what the proxy forwarded as pcapng ([`record`]).

pub mod pcap;
pub mod record;
pub mod replay;
pub mod tcp;

pub use pcap::{decode, Error, Frame, Reader, Segment};
