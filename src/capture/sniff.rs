//! `repl-sniff sniff`: the replay pipeline on a live interface. Packets from a
//! [`PacketSocket`] are decoded, their TCP connections reassembled, and the byte streams fed
//! to the same [`Monitor`] as the proxy and replay: nothing about the analysis is new, and
//! nothing is in the replication path.
//!
//! Connections already open when the capture starts are joined as replay joins them: from
//! the first command boundary, offsets unknown until a new sync (or a `REPLCONF GETACK` and
//! the ACK that answers it) anchors them. Lost packets are gaps, as in replay; the kernel's
//! own drops are counted.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pcap_file::DataLink;

use crate::capture::replay::drain;
use crate::capture::socket::{wall_clock, PacketSocket, SNAPLEN};
use crate::capture::tcp::{self, Reassembler};
use crate::capture::{decode, Frame};
use crate::report::fold::CaptureStats;
use crate::report::monitor::Monitor;

/// Captures into `monitor` until `stop` is set; `every_second` is called about once a
/// second with the monitor and the counters (status, metrics).
pub fn sniff(
    sock: &mut PacketSocket,
    tcp_cfg: tcp::Config,
    monitor: &mut Monitor,
    stop: &AtomicBool,
    every_second: &mut dyn FnMut(&Monitor, &CaptureStats),
) -> io::Result<CaptureStats> {
    let mut reassembler = Reassembler::new(tcp_cfg);
    let mut stats = CaptureStats::default();
    let mut buf = vec![0u8; SNAPLEN];
    let mut last_second = Instant::now();
    let mut reported_drops = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = match sock.next(&mut buf, Duration::from_millis(200))? {
            Some((len, ts)) => {
                let frame = Frame {
                    ts,
                    link: DataLink::RAW,
                    data: buf[..len].to_vec(),
                };
                if let Some(seg) = decode(&frame) {
                    stats.tcp_segments += 1;
                    reassembler.push(ts, &seg);
                    drain(&mut reassembler, monitor);
                }
                ts
            }
            None => wall_clock(),
        };
        monitor.tick(now);
        if last_second.elapsed() >= Duration::from_secs(1) {
            last_second = Instant::now();
            (stats.packets, stats.kernel_drops) = sock.counters();
            if stats.kernel_drops > reported_drops {
                tracing::warn!(
                    "the kernel dropped {} packets the capture could not keep up with (their \
                     bytes are gaps in the analysis; forwarding is not affected)",
                    stats.kernel_drops - reported_drops
                );
                reported_drops = stats.kernel_drops;
            }
            every_second(monitor, &stats);
        }
    }
    (stats.packets, stats.kernel_drops) = sock.counters();
    reassembler.finish(wall_clock());
    drain(&mut reassembler, monitor);
    Ok(stats)
}
