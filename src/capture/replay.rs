//! Replaying captures: frames are decoded, their TCP connections reassembled, and the byte
//! streams fed to the same [`Monitor`] (and so the same analyzer) the live proxy drives. All
//! timing comes from the capture, so replaying a file twice gives the same output.
//!
//! Replication connections are recognised by what they say (`PSYNC`/`SYNC`), not by port;
//! `port` only narrows which segments are looked at.

use std::path::Path;

use serde::Serialize;

use crate::analyzer::input::Timestamp;
use crate::capture::tcp::{self, Reassembler};
use crate::capture::{self, Reader};
use crate::report::monitor::Monitor;

/// What to replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Only TCP segments from or to this port.
    pub port: Option<u16>,
    /// Reassembly bounds.
    pub tcp: tcp::Config,
}

/// What the replay went through.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Frames read.
    pub frames: u64,
    /// TCP segments analysed.
    pub tcp_segments: u64,
    /// Frames that are not TCP over IP (skipped).
    pub other_frames: u64,
    /// TCP segments left out by the port filter.
    pub filtered: u64,
    /// Problems that did not stop the replay (a damaged file end, …).
    pub warnings: Vec<String>,
    /// TCP segments the capture's snap length cut short.
    pub cut_segments: u64,
    /// Payload bytes those cuts left out (gaps in the analysis).
    pub cut_bytes: u64,
}

/// Progress of a replay, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The file being read.
    pub file: &'a Path,
    /// Bytes of it read.
    pub read: u64,
    /// Its size.
    pub len: u64,
    /// Frames read from it.
    pub frames: u64,
}

/// Replays `files` in order, as one capture, into `monitor`. `progress` is called every few
/// thousand frames and at the end of each file.
///
/// A file that cannot be opened, or is not a capture, is an error; a file that is damaged
/// part-way (truncated by a killed tcpdump, say) is replayed up to the damage, with a warning.
pub fn replay(
    files: &[impl AsRef<Path>],
    opts: &Options,
    monitor: &mut Monitor,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Stats, capture::Error> {
    let mut tcp_cfg = opts.tcp;
    tcp_cfg.server_port = tcp_cfg.server_port.or(opts.port);
    let mut reassembler = Reassembler::new(tcp_cfg);
    let mut stats = Stats::default();
    let mut last = Timestamp(0);
    let readers: Vec<Reader> = files
        .iter()
        .map(|f| Reader::open(f.as_ref()))
        .collect::<Result<_, _>>()?;
    for (mut reader, file) in readers.into_iter().zip(files) {
        let file = file.as_ref();
        while let Some(frame) = reader.next_frame() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    stats.warnings.push(e.to_string());
                    break;
                }
            };
            stats.frames += 1;
            last = last.max(frame.ts);
            let Some(seg) = capture::decode(&frame) else {
                stats.other_frames += 1;
                continue;
            };
            if let Some(p) = opts.port {
                if seg.src.port() != p && seg.dst.port() != p {
                    stats.filtered += 1;
                    continue;
                }
            }
            stats.tcp_segments += 1;
            if seg.cut > 0 {
                stats.cut_segments += 1;
                stats.cut_bytes += seg.cut;
            }
            reassembler.push(frame.ts, &seg);
            drain(&mut reassembler, monitor);
            monitor.tick(frame.ts);
            if stats.frames % 4096 == 0 {
                report_progress(&reader, file, progress);
            }
        }
        report_progress(&reader, file, progress);
    }
    reassembler.finish(last);
    drain(&mut reassembler, monitor);
    Ok(stats)
}

fn report_progress(reader: &Reader, file: &Path, progress: &mut dyn FnMut(Progress<'_>)) {
    let (read, len) = reader.progress();
    progress(Progress {
        file,
        read,
        len,
        frames: reader.frames(),
    });
}

/// Hands every input the reassembly has ready to `monitor` (replay and `sniff` alike).
pub(super) fn drain(reassembler: &mut Reassembler, monitor: &mut Monitor) {
    while let Some(input) = reassembler.poll() {
        monitor.handle(&input);
    }
}
