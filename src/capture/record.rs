//! Recording what the proxy forwarded as pcapng, so that Wireshark's "Follow TCP stream" shows
//! exactly the forwarded bytes and `repl-sniff replay` reproduces the live analysis.
//!
//! Each session becomes one synthetic TCP flow between the replica's and the upstream's
//! addresses, with valid Ethernet/IP/TCP headers and checksums (built by `etherparse`): a
//! three-way handshake, data segments of at most [`MAX_SEGMENT`] bytes with consistent
//! sequence and acknowledgement numbers, and FINs at the end. Bytes the analysis skipped
//! (it fell behind) are not in the recording: the sequence numbers jump over them, which
//! Wireshark shows as "previous segment not captured" and replay as a gap.
//!
//! `AUTH` arguments are replaced by `*` of the same length unless secrets are kept: the
//! replica's bytes are held back while a command that may be `AUTH` is incomplete (at most
//! [`MAX_HELD`] bytes), so that a password split across reads is masked too. An unfinished
//! `AUTH` longer than that is masked whole, framing included, as far as it has come.
//!
//! The recorder runs on the analysis thread, never on the forwarding path, and a failing disk
//! stops the recording, not the proxy.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

use crate::analyzer::input::{Direction, Input, InputKind, Timestamp};
use crate::report::monitor::{Secrets, Tap};

/// Largest TCP payload per recorded segment.
pub const MAX_SEGMENT: usize = 32 * 1024;
/// Most bytes of the replica's direction held back for masking.
pub const MAX_HELD: usize = 64 * 1024;

const SNAPLEN: u32 = 262_144;

#[derive(Debug)]
struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number, per direction (indexed by `Direction::index`).
    next: [u32; 2],
    /// Replica bytes held back, starting at byte `held_pos` of that direction.
    held: Vec<u8>,
    held_pos: u64,
    /// Where the command the held bytes end inside began, as of the last replica bytes.
    hold: Option<u64>,
    secrets: Vec<(u64, u64)>,
}

/// Writes sessions to a pcapng file.
pub struct Recorder {
    path: String,
    out: Option<PcapNgWriter<BufWriter<File>>>,
    flows: HashMap<u64, Flow>,
    mask_secrets: bool,
    last_flush: std::time::Instant,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .finish()
    }
}

impl Recorder {
    /// Creates (truncates) `path` and writes the pcapng headers.
    pub fn create(path: &Path, mask_secrets: bool) -> std::io::Result<Recorder> {
        let file = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        let mut w = PcapNgWriter::new(file).map_err(std::io::Error::other)?;
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: SNAPLEN,
            // Timestamps in nanoseconds, as pcap-file writes them.
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        };
        w.write_pcapng_block(idb).map_err(std::io::Error::other)?;
        w.get_mut().flush()?;
        Ok(Recorder {
            path: path.display().to_string(),
            out: Some(w),
            flows: HashMap::new(),
            mask_secrets,
            last_flush: std::time::Instant::now(),
        })
    }

    fn write(&mut self, at: Timestamp, frame: Vec<u8>) {
        let Some(w) = &mut self.out else { return };
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(at.0),
            original_len: frame.len() as u32,
            data: frame.into(),
            options: vec![],
        };
        if let Err(e) = w.write_pcapng_block(epb) {
            tracing::error!("recording to {} failed ({e}); recording stopped", self.path);
            self.out = None;
        }
    }

    fn flush(&mut self) {
        self.last_flush = std::time::Instant::now();
        if let Some(w) = &mut self.out {
            if let Err(e) = w.get_mut().flush() {
                tracing::error!("recording to {} failed ({e}); recording stopped", self.path);
                self.out = None;
            }
        }
    }

    /// Writes `bytes` of flow `id` in direction `dir` as data segments.
    fn segments(&mut self, id: u64, dir: Direction, at: Timestamp, bytes: &[u8]) {
        for piece in bytes.chunks(MAX_SEGMENT) {
            let Some(flow) = self.flows.get_mut(&id) else {
                return;
            };
            let (src, dst) = endpoints(flow, dir);
            let seq = flow.next[dir.index()];
            let ack = flow.next[1 - dir.index()];
            flow.next[dir.index()] = seq.wrapping_add(piece.len() as u32);
            let frame = tcp_frame(src, dst, seq, Some(ack), Flags::PSH, piece);
            self.write(at, frame);
        }
    }

    fn release_held(&mut self, id: u64, at: Timestamp) {
        let Some(flow) = self.flows.get_mut(&id) else {
            return;
        };
        let held = std::mem::take(&mut flow.held);
        flow.held_pos += held.len() as u64;
        let end = flow.held_pos;
        flow.secrets.retain(|&(_, b)| b > end);
        self.segments(id, Direction::ReplicaToMaster, at, &held);
    }
}

fn endpoints(flow: &Flow, dir: Direction) -> (SocketAddr, SocketAddr) {
    match dir {
        Direction::ReplicaToMaster => (flow.client, flow.server),
        Direction::MasterToReplica => (flow.server, flow.client),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Flags(u8);

impl Flags {
    const SYN: Flags = Flags(1);
    const PSH: Flags = Flags(2);
    const FIN: Flags = Flags(4);
}

fn mac(addr: &SocketAddr) -> [u8; 6] {
    // Locally administered, distinct per endpoint: the port's bytes.
    let p = addr.port().to_be_bytes();
    [0x02, 0, 0, 0, p[0], p[1]]
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(mac(&src), mac(&dst));
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (s, d) => eth.ipv6(v6(s).octets(), v6(d).octets(), 64),
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, 65535);
    if flags == Flags::SYN {
        tcp = tcp.syn();
    }
    if flags == Flags::PSH {
        tcp = tcp.psh();
    }
    if flags == Flags::FIN {
        tcp = tcp.fin();
    }
    if let Some(ack) = ack {
        tcp = tcp.ack(ack);
    }
    let mut out = Vec::with_capacity(tcp.size(payload.len()));
    // Writing to a Vec only fails for payloads too large for IP, which MAX_SEGMENT rules out.
    let _ = tcp.write(&mut out, payload);
    out
}

fn parse_addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Tap for Recorder {
    fn input(&mut self, input: &Input, secrets: &Secrets<'_>) {
        let (id, at) = (input.conn, input.at);
        match &input.kind {
            InputKind::Open {
                replica, upstream, ..
            } => self.open(id, at, replica, upstream),
            InputKind::Data { dir, bytes } => self.data(id, *dir, at, bytes, secrets),
            InputKind::Gap { dir, len, .. } => self.skip(id, *dir, at, *len),
            InputKind::Close { .. } => self.close(id, at),
            // A relay's observation, not bytes on the wire: a capture has no place for it.
            InputKind::Stalled { .. } => {}
        }
        // If repl-sniff is killed (SIGKILL, a crash), what was flushed is a readable capture:
        // blocks are flushed with the first input a second after the last flush (a replication
        // link is never quiet for long: the master PINGs, the replica ACKs every second).
        if self.last_flush.elapsed() >= Duration::from_secs(1) {
            self.flush();
        }
    }
}

impl Recorder {
    fn open(&mut self, id: u64, at: Timestamp, replica: &str, upstream: &str) {
        let (client, server) = (parse_addr(replica), parse_addr(upstream));
        // Fixed initial sequence numbers keep recordings reproducible.
        let (isn_c, isn_s) = (0x1000_0000u32.wrapping_add(id as u32), 0x2000_0000u32);
        self.write(at, tcp_frame(client, server, isn_c, None, Flags::SYN, &[]));
        let (c1, s1) = (isn_c.wrapping_add(1), isn_s.wrapping_add(1));
        let syn_ack = tcp_frame(server, client, isn_s, Some(c1), Flags::SYN, &[]);
        self.write(at, syn_ack);
        let ack = tcp_frame(client, server, c1, Some(s1), Flags(0), &[]);
        self.write(at, ack);
        self.flows.insert(
            id,
            Flow {
                client,
                server,
                next: [c1, s1],
                held: Vec::new(),
                held_pos: 0,
                hold: None,
                secrets: Vec::new(),
            },
        );
    }

    fn data(&mut self, id: u64, dir: Direction, at: Timestamp, bytes: &[u8], s: &Secrets<'_>) {
        if dir == Direction::MasterToReplica {
            return self.segments(id, dir, at, bytes);
        }
        let (pos, secrets, hold) = (s.pos, s.ranges, s.hold);
        let mask = self.mask_secrets;
        let Some(flow) = self.flows.get_mut(&id) else {
            return;
        };
        if flow.held.is_empty() {
            flow.held_pos = pos;
        }
        flow.held.extend_from_slice(bytes);
        flow.secrets.extend_from_slice(secrets);
        flow.hold = hold;
        let overflow = flow.held.len() > MAX_HELD;
        // Held bytes must go before the command that may be `AUTH` is complete: mask all of it
        // seen so far (framing too) rather than risk showing a password.
        let unfinished = hold.filter(|_| overflow).map(|from| (from, u64::MAX));
        if mask {
            let (start, end) = (flow.held_pos, flow.held_pos + flow.held.len() as u64);
            for &(a, b) in flow.secrets.iter().chain(&unfinished) {
                let (a, b) = (a.max(start), b.min(end));
                if a < b {
                    flow.held[(a - start) as usize..(b - start) as usize].fill(b'*');
                }
            }
        }
        if hold.is_none() || overflow {
            self.release_held(id, at);
        }
    }

    fn skip(&mut self, id: u64, dir: Direction, at: Timestamp, len: u64) {
        if dir == Direction::ReplicaToMaster {
            // The command held back may have been an `AUTH` the gap cut: it never completes,
            // so mask what there is of it before letting it go.
            if let Some(flow) = self.flows.get_mut(&id) {
                let start = flow.held_pos;
                if let Some(from) = flow.hold.take().filter(|_| self.mask_secrets) {
                    let from = from.saturating_sub(start).min(flow.held.len() as u64);
                    flow.held[from as usize..].fill(b'*');
                }
            }
            self.release_held(id, at);
        }
        if let Some(flow) = self.flows.get_mut(&id) {
            let i = dir.index();
            flow.next[i] = flow.next[i].wrapping_add(len as u32);
        }
    }

    fn close(&mut self, id: u64, at: Timestamp) {
        self.release_held(id, at);
        let Some(flow) = self.flows.remove(&id) else {
            return;
        };
        let [c, s] = flow.next;
        let (c1, s1) = (c.wrapping_add(1), s.wrapping_add(1));
        let fin_c = tcp_frame(flow.client, flow.server, c, Some(s), Flags::FIN, &[]);
        let fin_s = tcp_frame(flow.server, flow.client, s, Some(c1), Flags::FIN, &[]);
        let last = tcp_frame(flow.client, flow.server, c1, Some(s1), Flags(0), &[]);
        self.write(at, fin_c);
        self.write(at, fin_s);
        self.write(at, last);
        self.flush();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}
