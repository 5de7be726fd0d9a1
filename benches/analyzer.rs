//! Analyzer throughput, no network: a replication stream shaped like `redis-benchmark -t set`
//! (SET key:<n> with a 3-byte value), a stream of 1 MB values, and a disk-framed RDB, each fed
//! in 64 KiB chunks as the proxy would. Run: `cargo bench --bench analyzer`.
//!
//! Goals (README "Performance"): ≥ 5 M commands/s on the command stream (redis-benchmark
//! pushes ~500 k SET/s), ≥ 1 GB/s through an RDB transfer (loopback carries ~720 MB/s).

use std::time::Instant;

use bytes::Bytes;
use repl_sniff::{Chunk, Config, Direction, Input, InputKind, Session, Timestamp};

const CHUNK: usize = 64 * 1024;

/// Feeds `bytes` in direction `dir`, dropping the events.
fn feed(s: &mut Session, dir: Direction, bytes: &[u8]) {
    s.feed(Chunk {
        dir,
        at: Timestamp(1),
        bytes,
    });
    while s.poll_event().is_some() {}
}

/// A session whose master has answered `+FULLRESYNC` and announced an RDB of `rdb_len` bytes;
/// with `compressed`, after agreeing to `REPLCONF compression 3` (the stream is zstd).
fn session_after_fullresync(rdb_len: usize, compressed: bool) -> Session {
    let mut s = Session::new(1, Timestamp(0), "r", "m", Config::default());
    let (r2m, m2r) = (Direction::ReplicaToMaster, Direction::MasterToReplica);
    if compressed {
        let request = b"*3\r\n$8\r\nREPLCONF\r\n$11\r\ncompression\r\n$1\r\n3\r\n";
        feed(&mut s, r2m, request);
        feed(&mut s, m2r, b"+OK\r\n");
    }
    feed(&mut s, r2m, b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n");
    let head = format!("+FULLRESYNC 3942fbd58f44ed5ba7b5962efa141dd34e423bbc 0\r\n${rdb_len}\r\n");
    feed(&mut s, m2r, head.as_bytes());
    s
}

/// Feeds `data` in chunks, draining events as a sink would; returns (seconds, events).
fn drive(s: &mut Session, data: &[u8]) -> (f64, u64) {
    let mut events = 0u64;
    let mut rdb_checksum = None;
    let t = Instant::now();
    for chunk in data.chunks(CHUNK) {
        s.feed(Chunk {
            dir: Direction::MasterToReplica,
            at: Timestamp(2),
            bytes: chunk,
        });
        while let Some(e) = s.poll_event() {
            events += 1;
            if let repl_sniff::EventKind::RdbContents { contents } = &e.kind {
                rdb_checksum = Some(contents.checksum);
            }
            std::hint::black_box(&e);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if let Some(checksum) = rdb_checksum {
        assert_eq!(
            checksum,
            repl_sniff::protocol::rdb::Checksum::Ok,
            "the benchmark RDB must parse"
        );
    }
    (secs, events)
}

fn main() {
    // 1. Small SETs, as redis-benchmark writes them.
    let n = 5_000_000u64;
    let mut stream = Vec::with_capacity(n as usize * 45);
    for i in 0..n {
        let key = format!("key:{:012}", i % 100_000);
        stream.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxxx\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    let mut s = session_after_fullresync(0, false);
    let (secs, events) = drive(&mut s, &stream);
    assert_eq!(events, n);
    println!(
        "stream of small SETs: {n} commands, {:.0} MB in {secs:.3} s = {:.2} M commands/s, {:.0} MB/s",
        stream.len() as f64 / 1e6,
        n as f64 / secs / 1e6,
        stream.len() as f64 / secs / 1e6
    );

    // 1b. The same through the Monitor: report fold included, events to no sink.
    let mut m = repl_sniff::Monitor::new(Config::default(), vec![]);
    let at = Timestamp(1);
    let input = |kind| Input { conn: 1, at, kind };
    let data = |dir, bytes: &[u8]| {
        input(InputKind::Data {
            dir,
            bytes: Bytes::copy_from_slice(bytes),
        })
    };
    let m2r = Direction::MasterToReplica;
    m.handle(&input(InputKind::Open {
        replica: "r".into(),
        upstream: "m".into(),
        joined_late: false,
    }));
    let psync = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n";
    m.handle(&data(Direction::ReplicaToMaster, psync));
    let head = b"+FULLRESYNC 3942fbd58f44ed5ba7b5962efa141dd34e423bbc 0\r\n$0\r\n";
    m.handle(&data(m2r, head));
    // The proxy hands over refcounted slices of what it read: no copy per chunk.
    let shared = Bytes::copy_from_slice(&stream);
    let inputs: Vec<Input> = (0..stream.len())
        .step_by(CHUNK)
        .map(|i| {
            input(InputKind::Data {
                dir: m2r,
                bytes: shared.slice(i..(i + CHUNK).min(stream.len())),
            })
        })
        .collect();
    let t = Instant::now();
    for i in &inputs {
        m.handle(i);
    }
    let secs = t.elapsed().as_secs_f64();
    let counted = m.report().sessions[0].stream.commands;
    assert_eq!(counted, n);
    println!(
        "  same, through Monitor and report: {:.2} M commands/s",
        n as f64 / secs / 1e6
    );

    // 1c. The same stream zstd-compressed as Redis sends it with `repl-compression 3`: a
    //     frame per flush (here one per 64 KiB of stream), decoded in flight.
    let mut s = session_after_fullresync(0, true);
    let compressed: Vec<u8> = stream
        .chunks(CHUNK)
        .flat_map(|flush| zstd::stream::encode_all(flush, 3).unwrap())
        .collect();
    let (secs, events) = drive(&mut s, &compressed);
    assert!(events >= n, "every command decoded: {events}");
    println!(
        "  same, zstd-compressed ({:.1} MB on the wire, {:.1}x): {:.2} M commands/s, {:.0} MB/s of stream",
        compressed.len() as f64 / 1e6,
        stream.len() as f64 / compressed.len() as f64,
        n as f64 / secs / 1e6,
        stream.len() as f64 / secs / 1e6
    );

    // 2. Big values: 1 MB SETs (bodies are counted, not copied).
    let value = vec![b'v'; 1 << 20];
    let mut big = Vec::new();
    for i in 0..512 {
        big.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$6\r\nbig{:03}\r\n${}\r\n",
                i,
                value.len()
            )
            .as_bytes(),
        );
        big.extend_from_slice(&value);
        big.extend_from_slice(b"\r\n");
    }
    let mut s = session_after_fullresync(0, false);
    let (secs, _) = drive(&mut s, &big);
    println!(
        "stream of 1 MB SETs: {:.0} MB in {:.1} µs = {:.0} GB/s (bodies are counted, not read)",
        big.len() as f64 / 1e6,
        secs * 1e6,
        big.len() as f64 / secs / 1e9
    );

    // 3. A disk-framed RDB transfer of a valid 1 GB RDB (1 M strings of 1000 bytes): the
    //    in-flight RDB analysis (parse + CRC-64) is what costs here.
    let rdb = valid_rdb(1_000_000, 1000);
    let mut s = session_after_fullresync(rdb.len(), false);
    let (secs, _) = drive(&mut s, &rdb);
    println!(
        "RDB transfer with in-flight analysis: {:.0} MB in {secs:.3} s = {:.0} MB/s",
        rdb.len() as f64 / 1e6,
        rdb.len() as f64 / secs / 1e6
    );
}

/// An RDB of `keys` strings of `size` bytes, with a valid checksum.
fn valid_rdb(keys: u32, size: usize) -> Vec<u8> {
    let mut b = b"REDIS0010\xfe\x00".to_vec();
    b.extend_from_slice(&[0xfb, 0x81]);
    b.extend_from_slice(&(keys as u64).to_be_bytes());
    b.push(0);
    let value: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..keys {
        let key = format!("key:{i:010}");
        b.push(0);
        b.push(key.len() as u8);
        b.extend_from_slice(key.as_bytes());
        b.extend_from_slice(&[0x40 | (size >> 8) as u8, size as u8]);
        b.extend_from_slice(&value);
    }
    b.push(0xff);
    let crc = crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS).checksum(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}
