//! TCP stream reassembly for captures: segments in capture order in, the analysis' [`Input`]s
//! out (open, data, gap, close), so that replay feeds the analyzer exactly what the endpoints'
//! sockets delivered.
//!
//! Handles out-of-order segments, retransmissions and overlaps (the first copy of a byte
//! wins), sequence wrap-around, connections whose SYN is not in the capture (they start where
//! the capture does and are marked `mid_stream`), and missing segments: once a direction has
//! more than `max_out_of_order` bytes waiting behind a hole, or at FIN/RST/end of capture, the
//! hole is reported as a gap of known length and reassembly goes on after it. Memory is
//! bounded by that limit per direction.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use crate::capture::Segment;
use bytes::Bytes;

use crate::analyzer::input::{Direction, Input, InputKind, Skipped, Timestamp};

/// Reassembly bounds.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Most bytes held behind a hole per direction before the hole is declared a gap.
    pub max_out_of_order: usize,
    /// A port known to be the server's (helps orient connections whose SYN was not captured).
    pub server_port: Option<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_out_of_order: 16 << 20,
            server_port: None,
        }
    }
}

/// Cut packets remembered per direction ahead of what was delivered.
const MAX_CUTS: usize = 65_536;

#[derive(Debug, Default)]
struct Half {
    started: bool,
    /// Sequence number of stream position 0.
    base: u32,
    /// Stream position of the next byte to deliver.
    delivered: u64,
    /// Segments beyond a hole, by stream position.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Bytes a snap length cut off (stream position, length): gaps of known length.
    cuts: BTreeMap<u64, u64>,
    pending_bytes: usize,
    /// Stream position of the FIN, once seen.
    fin_at: Option<u64>,
}

impl Half {
    /// Stream position of `seq`, in the window around what was delivered.
    fn position(&self, seq: u32) -> u64 {
        let next_seq = self.base.wrapping_add(self.delivered as u32);
        let delta = seq.wrapping_sub(next_seq) as i32 as i64;
        (self.delivered as i64 + delta).max(0) as u64
    }

    fn done(&self) -> bool {
        self.fin_at.is_some_and(|f| self.delivered >= f)
    }
}

#[derive(Debug)]
struct Conn {
    id: u64,
    client: SocketAddr,
    halves: [Half; 2],
}

/// The reassembler of every TCP connection in a capture.
#[derive(Debug, Default)]
pub struct Reassembler {
    cfg: Config,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    /// Flows that ended; their stray retransmissions are ignored until a new SYN.
    ended: HashSet<(SocketAddr, SocketAddr)>,
    next_id: u64,
    out: VecDeque<Input>,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Reassembler {
    /// A reassembler with the given bounds.
    pub fn new(cfg: Config) -> Reassembler {
        Reassembler {
            cfg,
            ..Reassembler::default()
        }
    }

    /// Returns the next input produced by earlier calls.
    pub fn poll(&mut self) -> Option<Input> {
        self.out.pop_front()
    }

    /// Takes one captured segment.
    pub fn push(&mut self, at: Timestamp, seg: &Segment<'_>) {
        let k = key(seg.src, seg.dst);
        let fresh_syn = seg.syn && !seg.ack;
        if fresh_syn {
            if let Some(old) = self.conns.remove(&k) {
                self.close(old, at, "connection reused");
            }
            self.ended.remove(&k);
        }
        if !self.conns.contains_key(&k) {
            let boring = seg.payload.is_empty() && !seg.syn;
            if self.ended.contains(&k) || boring {
                return;
            }
            let (client, server, mid_stream) = if seg.syn {
                // A SYN comes from the client, a SYN-ACK from the server.
                if seg.ack {
                    (seg.dst, seg.src, false)
                } else {
                    (seg.src, seg.dst, false)
                }
            } else {
                let src_is_server = match self.cfg.server_port {
                    Some(p) if seg.src.port() == p => true,
                    Some(p) if seg.dst.port() == p => false,
                    _ => seg.src.port() < seg.dst.port(),
                };
                if src_is_server {
                    (seg.dst, seg.src, true)
                } else {
                    (seg.src, seg.dst, true)
                }
            };
            self.next_id += 1;
            let id = self.next_id;
            self.out.push_back(Input {
                conn: id,
                at,
                kind: InputKind::Open {
                    replica: client.to_string(),
                    upstream: server.to_string(),
                    joined_late: mid_stream,
                },
            });
            self.conns.insert(
                k,
                Conn {
                    id,
                    client,
                    halves: [Half::default(), Half::default()],
                },
            );
        }
        let Some(conn) = self.conns.get_mut(&k) else {
            return;
        };
        let dir = if seg.src == conn.client {
            Direction::ReplicaToMaster
        } else {
            Direction::MasterToReplica
        };
        let id = conn.id;
        let half = &mut conn.halves[dir.index()];
        if seg.syn && !half.started {
            half.started = true;
            half.base = seg.seq.wrapping_add(1);
        } else if !half.started {
            half.started = true;
            half.base = seg.seq;
        }
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if !seg.payload.is_empty() || seg.cut > 0 {
            let pos = half.position(data_seq);
            let seg_data = (seg.payload, seg.cut);
            Self::accept(&mut self.out, self.cfg, id, dir, at, half, pos, seg_data);
        }
        if seg.fin {
            let len = seg.payload.len() as u64 + seg.cut;
            half.fin_at = Some(half.position(data_seq) + len);
        }
        let conn_done = conn.halves.iter().all(Half::done);
        if seg.rst || conn_done {
            if let Some(conn) = self.conns.remove(&k) {
                self.ended.insert(k);
                let why = if seg.rst { "reset" } else { "closed" };
                self.close(conn, at, why);
            }
        }
    }

    /// Ends every open connection (the capture is over).
    pub fn finish(&mut self, at: Timestamp) {
        let mut conns: Vec<Conn> = self.conns.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.id);
        for c in conns {
            self.close(c, at, "end of capture");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        out: &mut VecDeque<Input>,
        cfg: Config,
        id: u64,
        dir: Direction,
        at: Timestamp,
        half: &mut Half,
        pos: u64,
        (payload, cut): (&[u8], u64),
    ) {
        let end = pos + payload.len() as u64 + cut;
        if end <= half.delivered {
            return; // a retransmission of what was delivered
        }
        // Bounded like the out-of-order buffer: past the limit a cut is found as a hole.
        if cut > 0 && half.cuts.len() < MAX_CUTS {
            half.cuts.insert(pos + payload.len() as u64, cut);
        }
        if pos > half.delivered {
            if !payload.is_empty() && !half.pending.contains_key(&pos) {
                half.pending_bytes += payload.len();
                half.pending.insert(pos, payload.to_vec());
            }
            if half.pending_bytes > cfg.max_out_of_order {
                Self::skip_hole(out, id, dir, at, half);
            }
            return;
        }
        let skip = ((half.delivered - pos) as usize).min(payload.len());
        let fresh = &payload[skip..];
        if !fresh.is_empty() {
            half.delivered += fresh.len() as u64;
            let bytes = Bytes::copy_from_slice(fresh);
            out.push_back(Input {
                conn: id,
                at,
                kind: InputKind::Data { dir, bytes },
            });
        }
        Self::drain(out, id, dir, at, half);
    }

    /// Delivers pending segments that became contiguous, and the bytes a snap length cut
    /// off as gaps as the stream reaches them.
    fn drain(out: &mut VecDeque<Input>, id: u64, dir: Direction, at: Timestamp, half: &mut Half) {
        loop {
            if let Some((&start, &len)) = half.cuts.first_key_value() {
                if start <= half.delivered {
                    half.cuts.pop_first();
                    let missing = (start + len).saturating_sub(half.delivered);
                    if missing > 0 {
                        let why = Skipped::NotCaptured;
                        let len = missing;
                        out.push_back(Input {
                            conn: id,
                            at,
                            kind: InputKind::Gap { dir, len, why },
                        });
                        half.delivered += missing;
                    }
                    continue;
                }
            }
            let Some((&pos, _)) = half.pending.first_key_value() else {
                return;
            };
            if pos > half.delivered {
                return;
            }
            let (_, bytes) = half.pending.pop_first().unwrap_or_default();
            half.pending_bytes -= bytes.len();
            let end = pos + bytes.len() as u64;
            if end > half.delivered {
                let fresh = (half.delivered - pos) as usize;
                half.delivered = end;
                // The pending segment is handed on, not copied.
                let bytes = Bytes::from(bytes).slice(fresh..);
                out.push_back(Input {
                    conn: id,
                    at,
                    kind: InputKind::Data { dir, bytes },
                });
            }
        }
    }

    /// Gives up on the hole before the first pending segment.
    fn skip_hole(
        out: &mut VecDeque<Input>,
        id: u64,
        dir: Direction,
        at: Timestamp,
        half: &mut Half,
    ) {
        if let Some((&pos, _)) = half.pending.first_key_value() {
            if pos > half.delivered {
                let len = pos - half.delivered;
                let why = Skipped::NotCaptured;
                out.push_back(Input {
                    conn: id,
                    at,
                    kind: InputKind::Gap { dir, len, why },
                });
                half.delivered = pos;
            }
            Self::drain(out, id, dir, at, half);
        }
    }

    fn close(&mut self, mut conn: Conn, at: Timestamp, reason: &'static str) {
        for dir in [Direction::ReplicaToMaster, Direction::MasterToReplica] {
            let half = &mut conn.halves[dir.index()];
            while !half.pending.is_empty() {
                Self::skip_hole(&mut self.out, conn.id, dir, at, half);
            }
        }
        self.out.push_back(Input {
            conn: conn.id,
            at,
            kind: InputKind::Close {
                reason: reason.to_string(),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg<'a>(src: u16, dst: u16, seq: u32, flags: &str, payload: &'a [u8]) -> Segment<'a> {
        let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
        Segment {
            src: addr(src),
            dst: addr(dst),
            seq,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            payload,
            cut: 0,
        }
    }

    fn run(cfg: Config, segs: &[Segment<'_>]) -> Vec<Input> {
        let mut r = Reassembler::new(cfg);
        for (i, s) in segs.iter().enumerate() {
            r.push(Timestamp(i as u64), s);
        }
        r.finish(Timestamp(99));
        std::iter::from_fn(|| r.poll()).collect()
    }

    fn stream(out: &[Input], want: Direction) -> (Vec<u8>, u64) {
        let mut bytes = Vec::new();
        let mut gaps = 0;
        for o in out {
            match &o.kind {
                InputKind::Data { dir, bytes: b } if *dir == want => bytes.extend_from_slice(b),
                InputKind::Gap { dir, len, .. } if *dir == want => gaps += len,
                _ => {}
            }
        }
        (bytes, gaps)
    }

    fn joined_late(open: &Input) -> bool {
        match &open.kind {
            InputKind::Open { joined_late, .. } => *joined_late,
            other => panic!("not an open: {other:?}"),
        }
    }

    #[test]
    fn reorders_and_drops_retransmissions_and_overlaps() {
        let isn = u32::MAX - 3; // wraps around inside the stream
        let out = run(
            Config::default(),
            &[
                seg(5000, 6379, isn, "S", b""),
                seg(6379, 5000, 77, "SA", b""),
                seg(5000, 6379, isn.wrapping_add(6), "A", b"world"),
                seg(5000, 6379, isn.wrapping_add(1), "A", b"hello"),
                seg(5000, 6379, isn.wrapping_add(1), "A", b"hello"),
                seg(5000, 6379, isn.wrapping_add(4), "A", b"lowor"),
                seg(6379, 5000, 78, "A", b"+OK\r\n"),
                seg(5000, 6379, isn.wrapping_add(11), "FA", b"!"),
                seg(6379, 5000, 83, "FA", b""),
            ],
        );
        assert_eq!(
            stream(&out, Direction::ReplicaToMaster),
            (b"helloworld!".to_vec(), 0)
        );
        assert_eq!(
            stream(&out, Direction::MasterToReplica),
            (b"+OK\r\n".to_vec(), 0)
        );
        assert_eq!(
            out.last().map(|i| &i.kind),
            Some(&InputKind::Close {
                reason: "closed".into()
            })
        );
        assert!(!joined_late(&out[0]));
    }

    #[test]
    fn a_missing_segment_becomes_a_gap_of_its_length() {
        let out = run(
            Config {
                max_out_of_order: 8,
                server_port: None,
            },
            &[
                seg(40000, 6379, 10, "A", b"abc"),
                seg(40000, 6379, 17, "A", b"hijk"),
                seg(40000, 6379, 21, "A", b"lmnop"),
            ],
        );
        assert_eq!(
            stream(&out, Direction::ReplicaToMaster),
            (b"abchijklmnop".to_vec(), 4)
        );
        assert!(joined_late(&out[0]));
    }

    #[test]
    fn a_capture_without_the_syn_is_oriented_by_port() {
        let out = run(
            Config::default(),
            &[seg(6379, 40000, 1, "A", b"*1\r\n$4\r\nping\r\n")],
        );
        let InputKind::Open { upstream, .. } = &out[0].kind else {
            panic!()
        };
        assert_eq!(upstream, "127.0.0.1:6379");
        assert_eq!(stream(&out, Direction::MasterToReplica).0.len(), 14);
    }
}
