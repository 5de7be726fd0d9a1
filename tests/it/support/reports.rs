//! What the tests check in a report whatever the scenario: its sync timeline adds up.

use super::*;

/// A full sync's phases in its `timeline`, in order.
pub const PHASES: [&str; 5] = [
    "handshake_ms",
    "bgsave_wait_ms",
    "transfer_ms",
    "load_ms",
    "catch_up_ms",
];

/// The phases of a full sync as the report gives them: none negative, each from one marker
/// to the next, so they add up to the sync's duration; that duration is within the time the
/// test itself saw the replica take (from starting it to finding it caught up).
pub fn assert_phases_add_up(t: &Value, seen: Duration) -> f64 {
    let phase = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {t}"));
    let phases = PHASES.map(phase);
    assert!(phases.iter().all(|p| *p >= 0.0), "{t}");
    let total = phase("duration_ms");
    let sum: f64 = phases.iter().sum();
    assert!(
        (sum - total).abs() < 0.01,
        "phases add up to {sum}, not {total}: {t}"
    );
    assert!(
        total <= seen.as_secs_f64() * 1000.0,
        "the sync took {total} ms by the report, the test saw {seen:?}: {t}"
    );
    assert_eq!(t["phase"], "online", "{t}");
    total
}
