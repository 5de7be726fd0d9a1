//! The text of `repl-sniff check`.

use std::fmt::Write as _;

use crate::report::check::{CheckConfig, CheckReport};
use crate::report::timing::Hist;

/// What `check` prints: both servers' state, what was verified, and the two latencies.
pub fn report(cfg: &CheckConfig, r: &CheckReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "master  {}: role {}, replid {}, offset {}, {} replica(s)",
        cfg.master,
        r.master.role,
        r.master.replid,
        r.master.offset,
        r.master.replicas.unwrap_or(0)
    );
    let _ = writeln!(
        o,
        "replica {}: role {}, link {}, offset {} ({} bytes behind after the check)",
        cfg.replica,
        r.replica.role,
        r.replica.link.as_deref().unwrap_or("?"),
        r.replica.offset,
        r.lag_bytes
    );
    let _ = writeln!(
        o,
        "{} key(s) written on the master: {} verified on the replica, {} mismatched, {} missing",
        cfg.keys,
        r.verified,
        r.mismatches.len(),
        r.missing.len()
    );
    for (key, want, got) in r.mismatches.iter().take(10) {
        let _ = writeln!(
            o,
            "  MISMATCH {key}: wrote {want:?}, the replica serves {got:?}"
        );
    }
    for key in r.missing.iter().take(10) {
        let _ = writeln!(
            o,
            "  MISSING {key}: not on the replica within {:?}",
            cfg.timeout
        );
    }
    latency(&mut o, "visible on the replica after", &r.visible_us);
    latency(&mut o, "WAIT 1 round trip", &r.wait_us);
    if r.wait_unacked > 0 {
        let _ = writeln!(
            o,
            "{} WAIT 1 call(s) timed out unacknowledged",
            r.wait_unacked
        );
    }
    o
}

fn latency(o: &mut String, what: &str, h: &Hist) {
    if h.count() == 0 {
        let _ = writeln!(o, "{what}: no sample");
        return;
    }
    let ms = |q: f64| h.quantile(q) as f64 / 1000.0;
    let _ = writeln!(
        o,
        "{what} (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  ({} samples)",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0,
        h.count()
    );
    let _ = writeln!(o, "  {:>10}  {:>8}", "<= ms", "keys");
    let mut last = 0;
    for (le, cumulative) in h.cumulative() {
        if cumulative > last {
            let _ = writeln!(
                o,
                "  {:>10.1}  {:>8}",
                le as f64 / 1000.0,
                cumulative - last
            );
            last = cumulative;
        }
        if last == h.count() {
            break;
        }
    }
}
