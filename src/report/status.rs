//! The periodic status of a replication session: offsets, lag, rates, and where a full sync
//! stands (its phase, and the RDB transfer's progress while one is under way).

use std::time::Duration;

use crate::analyzer::event::{EventKind, RdbProgress, Role, SyncPhase};
use crate::analyzer::input::Timestamp;
use crate::analyzer::session::Session;
use crate::report::timing::Tracker;
use crate::report::SessionReport;

/// The status event due at `now` for a session last said at `last`, if one is: each `every`,
/// and each second while its RDB is transferred or its sync waits on the master or the
/// replica (a wait says nothing on the wire for seconds). `session` is the live analysis,
/// for the transfer's progress.
pub fn due(
    report: &SessionReport,
    tracker: &Tracker,
    session: Option<&Session>,
    last: Timestamp,
    now: Timestamp,
    every: Option<Duration>,
) -> Option<EventKind> {
    let every = every?;
    if report.kind == Role::Client {
        return None;
    }
    let rdb = session.and_then(|s| transfer(s, now));
    let phase = (report.timeline.as_ref())
        .filter(|t| t.phase != SyncPhase::Online)
        .map(|t| (t.phase, t.phase_since().map(|s| now.since(s).as_secs_f64())));
    let waiting = matches!(
        phase,
        Some((
            SyncPhase::Preparing | SyncPhase::Transfer | SyncPhase::Loading,
            _
        ))
    );
    // Ticks come about once a second; allow for their jitter.
    let since = now.since(last) + Duration::from_millis(200);
    let every_second = rdb.is_some() || waiting;
    let due = since >= every || (every_second && since >= Duration::from_secs(1));
    if !due {
        return None;
    }
    let (offset, acked) = tracker.offsets();
    let (lag_bytes, lag_ms) = tracker.lag_at(now);
    let secs = every.as_secs().max(1);
    let (commands_per_s, bytes_per_s) = report.timing.rate(now, secs);
    Some(EventKind::Status {
        offset,
        acked,
        lag_bytes,
        lag_ms,
        commands_per_s,
        bytes_per_s,
        rdb,
        phase: phase.map(|p| p.0),
        phase_s: phase.and_then(|p| p.1),
    })
}

/// Where `session`'s RDB transfer stands at `now`, while one is under way.
fn transfer(session: &Session, now: Timestamp) -> Option<Box<RdbProgress>> {
    let (bytes, total, started) = session.rdb_progress()?;
    let secs = now.since(started).as_secs_f64();
    let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
    let eta = total
        .filter(|_| rate > 0.0)
        .map(|t| t.saturating_sub(bytes) as f64 / rate);
    let (keys, keys_announced) = session.rdb_keys().unwrap_or((0, None));
    Some(Box::new(RdbProgress {
        bytes,
        total,
        bytes_per_s: rate,
        eta_s: eta,
        keys,
        keys_announced,
    }))
}
