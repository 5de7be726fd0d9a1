//! Reading capture files: pcap (µs and ns) and pcapng, through the `pcap-file` crate, and
//! decoding each frame's link, IP and TCP headers through `etherparse`.
//!
//! Link types: Ethernet, Linux loopback/BSD null and loop, Linux cooked (SLL and SLL2), raw
//! IP (IPv4 and IPv6). Frames that are not TCP over IP are counted and skipped.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::rc::Rc;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use crate::analyzer::input::Timestamp;

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is neither pcap nor pcapng.
    #[error("{path} is not a pcap or pcapng capture (it starts with {magic})")]
    NotACapture {
        /// The file.
        path: String,
        /// Its first bytes, in hex.
        magic: String,
    },
    /// The file ends or breaks in the middle of a record.
    #[error("{path}: capture is damaged after packet {packets}: {reason}")]
    Damaged {
        /// The file.
        path: String,
        /// Packets read before the damage.
        packets: u64,
        /// What the reader said.
        reason: String,
    },
}

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// When it was captured.
    pub ts: Timestamp,
    /// Its link type.
    pub link: DataLink,
    /// The frame, link header included.
    pub data: Vec<u8>,
}

/// A TCP segment decoded from a frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (or of the SYN/FIN).
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The payload, as captured.
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire after `payload` but not in the capture (a snap
    /// length, `tcpdump -s 200`, cut the packet short): a gap of known length.
    pub cut: u64,
}

/// A file that counts what was read from it (for progress).
struct Counting {
    file: File,
    read: Rc<Cell<u64>>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// Reads every frame of a pcap or pcapng file, in file order.
pub struct Reader {
    path: String,
    inner: Inner,
    packets: u64,
    read: Rc<Cell<u64>>,
    len: u64,
}

enum Inner {
    Pcap(PcapReader<BufReader<Counting>>),
    PcapNg {
        reader: Box<PcapNgReader<BufReader<Counting>>>,
        /// Per interface: link type and the divisor from the crate's "nanoseconds" to real ns.
        interfaces: Vec<(DataLink, u64, u64)>,
    },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

impl Reader {
    /// Opens `path`, telling pcap from pcapng by the magic number.
    pub fn open(path: &Path) -> Result<Reader, Error> {
        let name = path.display().to_string();
        let io = |source| Error::Io {
            path: name.clone(),
            source,
        };
        let mut magic = [0u8; 4];
        let mut f = File::open(path).map_err(io)?;
        let n = f.read(&mut magic).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let read = Rc::new(Cell::new(0));
        let f = BufReader::with_capacity(
            256 * 1024,
            Counting {
                file: File::open(path).map_err(io)?,
                read: Rc::clone(&read),
            },
        );
        let damaged = |e: pcap_file::PcapError| Error::Damaged {
            path: name.clone(),
            packets: 0,
            reason: e.to_string(),
        };
        let inner = match &magic[..n] {
            [0x0a, 0x0d, 0x0d, 0x0a] => Inner::PcapNg {
                reader: Box::new(PcapNgReader::new(f).map_err(damaged)?),
                interfaces: Vec::new(),
            },
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d] => Inner::Pcap(PcapReader::new(f).map_err(damaged)?),
            other => {
                let magic = other.iter().map(|b| format!("{b:02x}")).collect::<String>();
                return Err(Error::NotACapture {
                    path: name,
                    magic: if magic.is_empty() {
                        "nothing: it is empty".into()
                    } else {
                        format!("0x{magic}")
                    },
                });
            }
        };
        Ok(Reader {
            path: name,
            inner,
            packets: 0,
            read,
            len,
        })
    }

    /// Bytes of the file read so far, and its size.
    pub fn progress(&self) -> (u64, u64) {
        (self.read.get(), self.len)
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.packets
    }

    /// The next frame, `None` at the end, or the damage that stops the reading.
    pub fn next_frame(&mut self) -> Option<Result<Frame, Error>> {
        let packets = self.packets;
        let damaged = |path: &str, e: pcap_file::PcapError| Error::Damaged {
            path: path.to_string(),
            packets,
            reason: match e {
                pcap_file::PcapError::IncompleteBuffer => "the file ends inside a packet".into(),
                pcap_file::PcapError::IoError(io)
                    if io.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    "the file ends inside a packet".into()
                }
                pcap_file::PcapError::IoError(io) => format!("read error: {io}"),
                e => e.to_string(),
            },
        };
        let frame = match &mut self.inner {
            Inner::Pcap(r) => {
                let (link, nanos) = (r.header().datalink, r.header().ts_resolution);
                // Raw records: pcap-file's checked ones refuse a packet longer on the wire
                // than the snap length, which is what every packet a snap length cut is.
                match r.next_raw_packet()? {
                    Ok(p) => {
                        let frac = match nanos {
                            pcap_file::TsResolution::NanoSecond => u64::from(p.ts_frac) / 1000,
                            pcap_file::TsResolution::MicroSecond => u64::from(p.ts_frac),
                        };
                        Frame {
                            ts: Timestamp(u64::from(p.ts_sec) * 1_000_000 + frac),
                            link,
                            data: p.data.into_owned(),
                        }
                    }
                    Err(e) => return Some(Err(damaged(&self.path, e))),
                }
            }
            Inner::PcapNg { reader, interfaces } => loop {
                let block = match reader.next_block()? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(damaged(&self.path, e))),
                };
                match block {
                    Block::SectionHeader(_) => interfaces.clear(),
                    Block::InterfaceDescription(idb) => {
                        interfaces.push(interface(idb.linktype, &idb.options));
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(&(link, mul, div)) = interfaces.get(epb.interface_id as usize)
                        else {
                            continue;
                        };
                        // pcap-file reads the raw timestamp as nanoseconds; apply if_tsresol.
                        let units = epb.timestamp.as_nanos();
                        let micros = units * mul as u128 / div as u128;
                        break Frame {
                            ts: Timestamp(micros as u64),
                            link,
                            data: epb.data.into_owned(),
                        };
                    }
                    Block::SimplePacket(spb) => {
                        let Some(&(link, ..)) = interfaces.first() else {
                            continue;
                        };
                        break Frame {
                            ts: Timestamp(0),
                            link,
                            data: spb.data.into_owned(),
                        };
                    }
                    _ => continue,
                }
            },
        };
        self.packets += 1;
        Some(Ok(frame))
    }
}

/// Link type and the factor (mul/div) from raw timestamp units to microseconds.
fn interface(link: DataLink, options: &[InterfaceDescriptionOption<'_>]) -> (DataLink, u64, u64) {
    let resol = options.iter().find_map(|o| match o {
        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
        _ => None,
    });
    let (mul, div) = match resol {
        // Default: microseconds.
        None => (1, 1),
        // Base 2: 2^-n seconds.
        Some(r) if r & 0x80 != 0 => (1_000_000, 1u64 << (r & 0x7f).min(63)),
        Some(r) if r <= 6 => (10u64.pow(6 - r as u32), 1),
        Some(r) => (1, 10u64.pow((r as u32 - 6).min(19))),
    };
    (link, mul, div)
}

/// Decodes a TCP segment out of a frame; `None` for anything that is not TCP over IP.
pub fn decode(frame: &Frame) -> Option<Segment<'_>> {
    decode_whole(frame).or_else(|| decode_cut(frame))
}

/// A frame the capture cut short (its snap length): the headers are whole, the payload is
/// not; what the IP header says was on the wire beyond it is the segment's `cut`.
fn decode_cut(frame: &Frame) -> Option<Segment<'_>> {
    use etherparse::{LaxNetSlice, LaxSlicedPacket};
    let data = &frame.data[..];
    let sliced = match frame.link {
        DataLink::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok()?,
        DataLink::LINUX_SLL => LaxSlicedPacket::from_ip(data.get(16..)?).ok()?,
        DataLink::LINUX_SLL2 => LaxSlicedPacket::from_ip(data.get(20..)?).ok()?,
        DataLink::NULL | DataLink::LOOP => LaxSlicedPacket::from_ip(data.get(4..)?).ok()?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LaxSlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else {
        return None;
    };
    let (src_ip, dst_ip, wire): (IpAddr, IpAddr, u64) = match sliced.net? {
        LaxNetSlice::Ipv4(ip) => {
            let h = ip.header();
            let wire = u64::from(h.total_len()).saturating_sub(u64::from(h.ihl()) * 4);
            (h.source_addr().into(), h.destination_addr().into(), wire)
        }
        LaxNetSlice::Ipv6(ip) => {
            let h = ip.header();
            let wire = u64::from(h.payload_length());
            (h.source_addr().into(), h.destination_addr().into(), wire)
        }
        LaxNetSlice::Arp(_) => return None,
    };
    let header = tcp.slice().len() - tcp.payload().len();
    let on_wire = wire.saturating_sub(header as u64);
    let cut = on_wire.saturating_sub(tcp.payload().len() as u64);
    Some(segment(src_ip, dst_ip, &tcp, cut))
}

/// The segment `tcp` carries between the two addresses, `cut` bytes of its payload missing.
fn segment<'a>(
    src_ip: IpAddr,
    dst_ip: IpAddr,
    tcp: &etherparse::TcpSlice<'a>,
    cut: u64,
) -> Segment<'a> {
    Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        cut,
    }
}

fn decode_whole(frame: &Frame) -> Option<Segment<'_>> {
    let data = &frame.data[..];
    let sliced = match frame.link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data).ok()?,
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok()?,
        // SLL2 (20-byte header) and BSD null/loop (4-byte family) are followed by IP.
        DataLink::LINUX_SLL2 => SlicedPacket::from_ip(data.get(20..)?).ok()?,
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(data.get(4..)?).ok()?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Arp(_) => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else {
        return None;
    };
    Some(segment(src_ip, dst_ip, &tcp, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IP/TCP packet with the given addresses, built by etherparse.
    fn ip_tcp(v6: bool) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ip(if v6 {
            etherparse::IpHeaders::Ipv6(
                etherparse::Ipv6Header {
                    source: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    destination: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    hop_limit: 64,
                    ..Default::default()
                },
                Default::default(),
            )
        } else {
            etherparse::IpHeaders::Ipv4(
                etherparse::Ipv4Header::new(
                    0,
                    64,
                    etherparse::IpNumber::TCP,
                    [127, 0, 0, 1],
                    [127, 0, 0, 2],
                )
                .unwrap(),
                Default::default(),
            )
        })
        .tcp(40000, 6379, 7, 1000)
        .ack(1);
        let mut out = Vec::new();
        b.write(&mut out, b"PING\r\n").unwrap();
        out
    }

    fn frame(link: DataLink, header: &[u8], v6: bool) -> Frame {
        let mut data = header.to_vec();
        data.extend(ip_tcp(v6));
        Frame {
            ts: Timestamp(0),
            link,
            data,
        }
    }

    #[test]
    fn tcp_is_found_behind_every_supported_link_layer() {
        let ethernet = [[0u8; 12].as_slice(), &[0x08, 0x00]].concat();
        let ethernet6 = [[0u8; 12].as_slice(), &[0x86, 0xdd]].concat();
        // Packet type 0 (to us), ARPHRD_ETHER, 6-byte address, padding, EtherType IPv4.
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        sll.extend([0x08, 0x00]);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0u8; 18]);
        let cases = [
            (DataLink::ETHERNET, ethernet, false),
            (DataLink::ETHERNET, ethernet6, true),
            (DataLink::LINUX_SLL, sll, false),
            (DataLink::LINUX_SLL2, sll2, false),
            (DataLink::NULL, vec![2, 0, 0, 0], false),
            (DataLink::LOOP, vec![0, 0, 0, 2], false),
            (DataLink::RAW, vec![], false),
            (DataLink::RAW, vec![], true),
            (DataLink::IPV6, vec![], true),
        ];
        for (link, header, v6) in cases {
            let f = frame(link, &header, v6);
            let seg = decode(&f).unwrap_or_else(|| panic!("{link:?} v6={v6}"));
            assert_eq!((seg.src.port(), seg.dst.port(), seg.seq), (40000, 6379, 7));
            assert_eq!(seg.payload, b"PING\r\n");
            assert_eq!(seg.src.is_ipv6(), v6);
        }
    }

    #[test]
    fn pcapng_timestamp_resolutions_are_honoured() {
        let micros = |r: Option<u8>| {
            let opts: Vec<_> = r
                .map(InterfaceDescriptionOption::IfTsResol)
                .into_iter()
                .collect();
            let (_, mul, div) = interface(DataLink::ETHERNET, &opts);
            // The crate hands over raw units as "nanoseconds"; one raw unit is:
            1_000_000u128 * mul as u128 / div as u128
        };
        assert_eq!(micros(None), 1_000_000); // default: 1 unit = 1 µs
        assert_eq!(micros(Some(9)), 1_000); // 1 unit = 1 ns
        assert_eq!(micros(Some(3)), 1_000_000_000); // 1 unit = 1 ms
    }
}
