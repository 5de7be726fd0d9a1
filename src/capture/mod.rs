//! The packet and file drivers: reading pcap/pcapng captures ([`pcap`]) or a live interface
//! ([`socket`]), reassembling their TCP streams into the analyzer's inputs ([`tcp`]), feeding
//! them to a monitor ([`replay`] for files, [`sniff`] live), writing what the proxy forwarded
//! as pcapng ([`record`]), and reading RDB dumps ([`dump`]).

pub mod dump;
pub mod pcap;
pub mod record;
pub mod replay;
pub mod sniff;
#[allow(unsafe_code)] // system calls of the packet socket, each with its SAFETY reason
pub mod socket;
pub mod tcp;

pub use pcap::{decode, Error, Frame, Reader, Segment};
