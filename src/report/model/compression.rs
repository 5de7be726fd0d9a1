//! A compressed stream's figures in a session's report.

use serde::Serialize;

/// A compressed stream (Redis `repl-compression`): what it cost on the wire. Offsets and
/// ACKs count the decompressed bytes, like an uncompressed link's.
#[derive(Debug, Clone, Serialize)]
pub struct CompressionReport {
    /// The codec.
    pub codec: crate::protocol::compression::Codec,
    /// The level both sides use (from the handshake; null when the capture began after it).
    pub level: Option<u32>,
    /// Compressed frames seen whole (the master flushes one at a time).
    pub frames: u64,
    /// Of those, frames that carried no stream bytes (the development build sends one each
    /// ~200 ms while the stream is idle: their bytes count on the wire, and in the ratio).
    pub empty_frames: u64,
    /// Their bytes on the wire.
    pub wire_bytes: u64,
    /// The stream bytes they carried.
    pub stream_bytes: u64,
    /// `stream_bytes / wire_bytes` (null before the first frame).
    pub ratio: Option<f64>,
    /// The largest frame on the wire, in bytes.
    pub largest_frame_bytes: u64,
    /// The stream bytes of the largest frame by content: what the master held back for one flush.
    pub largest_frame_stream_bytes: u64,
    /// The mean time between two frames' arrivals, in ms (null before the second frame).
    /// Under steady writes the master flushes every `repl-compression-max-latency` (100 ms
    /// by default): a command waits in its buffer for up to about this long.
    pub frame_interval_ms_mean: Option<f64>,
    /// The longest time between two frames' arrivals, in ms.
    pub frame_interval_ms_max: Option<f64>,
    /// When the first and the last frame arrived.
    #[serde(skip)]
    pub frames_seen: Option<(
        crate::analyzer::input::Timestamp,
        crate::analyzer::input::Timestamp,
    )>,
}
