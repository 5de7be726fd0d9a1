//! Workloads and the measures they take of themselves: acknowledged writes with their round
//! trips, and how late this machine runs timers, against which figures are asserted.

use super::*;

/// Writes `n` keys on `master`, each acknowledged by one replica (`WAIT 1 1000`) and followed
/// by `pause`: a stream that spans several seconds, for reports drawn per second.
pub fn paced_acked_writes(master: &Server, n: usize, pause: Duration) {
    let mut c = master.client();
    for i in 0..n {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
        c.cmd(&["WAIT", "1", "1000"]);
        std::thread::sleep(pause);
    }
}

/// `SET <prefix><i> v` then `WAIT 1 0`, `n` times on `c`; returns each pair's round trip as
/// the client saw it, from sending the SET to the WAIT's answer. A SET's ack latency as any
/// observer between them measures it lies inside that round trip.
pub fn acked_writes(c: &mut Client, prefix: &str, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let sent = Instant::now();
            c.cmd(&["SET", &format!("{prefix}{i}"), "v"]);
            c.cmd(&["WAIT", "1", "0"]);
            sent.elapsed()
        })
        .collect()
}

/// Asserts that the report's histogram `h` (µs) is within the client's own `trips`: every
/// sample lies inside one of them, so its median and maximum can be no larger (with the
/// histogram's 0.1 % precision). Holds however busy the machine is.
pub fn assert_within_round_trips(h: &Value, trips: &[Duration], what: &str) {
    let mut us: Vec<u64> = trips.iter().map(|t| t.as_micros() as u64).collect();
    us.sort_unstable();
    let median = us[us.len().div_ceil(2) - 1];
    let max = us[us.len() - 1];
    let slack = |v: u64| v + v / 100 + 10;
    let (p50, hmax) = (h["p50"].as_u64().unwrap(), h["max"].as_u64().unwrap());
    assert!(
        p50 <= slack(median),
        "{what}: p50 {p50} µs, but the client's median round trip was {median} µs: {h}"
    );
    assert!(
        hmax <= slack(max),
        "{what}: max {hmax} µs, but the client's longest round trip was {max} µs: {h}"
    );
}

/// How late this machine runs things, measured by sleeping: a scheduler-bound delay that the
/// servers' timers and repl-sniff's reads suffer too. Busy machines show large ones.
#[derive(Debug, Default, Clone, Copy)]
pub struct Lateness(pub Duration);

impl Lateness {
    /// Sleeps `total` in `step`s, remembering the worst overshoot of one.
    pub fn sleep(&mut self, total: Duration, step: Duration) {
        let end = Instant::now() + total;
        while Instant::now() < end {
            let t = Instant::now();
            std::thread::sleep(step);
            self.0 = self.0.max(t.elapsed().saturating_sub(step));
        }
    }
}

/// Asserts that a heartbeat histogram's median `h["p50"]` (µs) is the sender's `period`: the
/// servers' timers tick every 100 ms (hz 10), and on a busy machine both the sender's timer
/// and repl-sniff's read of it can run late by what the test measured the machine doing.
pub fn assert_period(h: &Value, period: Duration, late: Lateness, what: &str) {
    let p50 = Duration::from_micros(h["p50"].as_u64().unwrap());
    let slack = Duration::from_millis(100) + late.0;
    let off = p50.abs_diff(period);
    assert!(
        off <= slack,
        "{what}: p50 {p50:?}, {off:?} from the {period:?} period, more than a timer tick and \
         the {:?} this machine ran late: {h}",
        late.0
    );
}

/// A dataset of several types in db 0 and db 3, with one value over 1 MB.
pub fn load_dataset(c: &mut Client) {
    for i in 0..200 {
        c.cmd(&["SET", &format!("str:{i}"), &format!("value-{i}")]);
    }
    c.cmd(&["RPUSH", "list", "a", "b", "c", "d"]);
    c.cmd(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
    c.cmd(&["SADD", "set", "1", "2", "3", "x"]);
    c.cmd(&["ZADD", "zset", "1", "a", "2", "b"]);
    c.cmd(&["SET", "ttl", "v", "EX", "1000"]);
    let big = vec![b'B'; 1_500_000];
    c.cmd_bytes(&[b"SET", b"big:preload", &big]);
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["SET", "db3:k", "v"]);
    c.cmd(&["SELECT", "0"]);
}

/// How many of each verbatim-propagated write the workload sends.
pub struct Workload {
    pub lpush: u64,
    pub hset: u64,
    pub sadd: u64,
    pub zadd: u64,
    pub incr: u64,
}

/// Writes of many kinds: plain writes, MULTI/EXEC, EVAL, SELECT, a value over 1 MB, WAIT.
pub fn write_workload(c: &mut Client) -> Workload {
    for i in 0..50 {
        c.cmd(&["SET", &format!("w:{i}"), &format!("v{i}")]);
    }
    for i in 0..10 {
        c.cmd(&["LPUSH", "wlist", &i.to_string()]);
        c.cmd(&["HSET", "whash", &format!("f{i}"), "v"]);
        c.cmd(&["SADD", "wset", &i.to_string()]);
        c.cmd(&["ZADD", "wzset", &i.to_string(), &format!("m{i}")]);
        c.cmd(&["INCR", "counter"]);
    }
    for i in 0..3 {
        c.cmd(&["MULTI"]);
        c.cmd(&["SET", &format!("tx:{i}"), "a"]);
        c.cmd(&["INCR", "txcounter"]);
        c.cmd(&["EXEC"]);
    }
    c.cmd(&[
        "EVAL",
        "redis.call('set', KEYS[1], 'a'); redis.call('set', KEYS[2], 'b'); return 1",
        "2",
        "ev:1",
        "ev:2",
    ]);
    c.cmd(&["EXPIRE", "w:0", "1000"]);
    c.cmd(&["DEL", "w:1", "w:2"]);
    c.cmd(&["SELECT", "5"]);
    for i in 0..5 {
        c.cmd(&["SET", &format!("db5:{i}"), "x"]);
    }
    c.cmd(&["SELECT", "0"]);
    let big = vec![b'Z'; 2_000_000];
    c.cmd_bytes(&[b"SET", b"big:live", &big]);
    c.cmd(&["SET", "after-big", "1"]);
    let acked = c.cmd(&["WAIT", "1", "5000"]);
    assert_eq!(
        acked,
        crate::support::Reply::Int(1),
        "WAIT saw no replica ack"
    );
    Workload {
        lpush: 10,
        hset: 10,
        sadd: 10,
        zadd: 10,
        incr: 10 + 3,
    }
}
