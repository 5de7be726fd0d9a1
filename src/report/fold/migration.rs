//! A slot migration's events folded into the session's `migration` report.

use crate::analyzer::event::{Event, EventKind, MigrationStep};
use crate::report::fold::*;

impl SessionReport {
    /// A Valkey slot migration's events: on its link, or forwarded in a replica's stream.
    pub(super) fn fold_migration(&mut self, e: &Event) {
        match &e.kind {
            EventKind::MigrationStart {
                job,
                source,
                slots,
                ranges,
                offset: Some(offset),
            } if self.migrations_forwarded.len() < MAX_LISTED => {
                self.migrations_forwarded.push(ForwardedMigration {
                    job: job.clone(),
                    source_node: source.clone(),
                    slots: slots.clone(),
                    ranges: *ranges,
                    established_offset: Some(*offset),
                    finish_offset: None,
                    state: None,
                    message: None,
                });
            }
            EventKind::MigrationStart {
                job,
                source,
                slots,
                ranges,
                offset: None,
            } => {
                self.migration = Some(MigrationReport {
                    job: job.clone(),
                    source_node: source.clone(),
                    target: self.upstream.clone(),
                    target_node: None,
                    slots: slots.clone(),
                    ranges: *ranges,
                    started_at: e.ts,
                    snapshot: MigrationPart::default(),
                    snapshot_ms: None,
                    stream: MigrationPart::default(),
                    pause_requested_at: None,
                    pause_ms: None,
                    failover_ms: None,
                    duration_ms: None,
                    outcome: MigrationOutcome::InProgress,
                    refused: None,
                    step: None,
                    target_state: None,
                    target_message: None,
                });
            }
            EventKind::MigrationFinish {
                job,
                state,
                message,
                offset,
            } => {
                let known = self.migrations_forwarded.iter_mut().rev();
                if let Some(m) = known.into_iter().find(|m| &m.job == job) {
                    m.finish_offset = *offset;
                    m.state = Some(state.clone());
                    m.message.clone_from(message);
                }
            }
            EventKind::MigrationRefused { reply } => {
                if let Some(m) = &mut self.migration {
                    m.refused = Some(reply.clone());
                    m.outcome = MigrationOutcome::Refused;
                    m.duration_ms = Some(ms(m.started_at, e.ts));
                }
            }
            EventKind::Migration { step } => {
                let Some(m) = &mut self.migration else { return };
                m.step = Some(*step);
                match step {
                    MigrationStep::SnapshotEnd => m.snapshot_ms = Some(ms(m.started_at, e.ts)),
                    MigrationStep::PauseRequested => m.pause_requested_at = Some(e.ts),
                    MigrationStep::Paused => {
                        m.pause_ms = m.pause_requested_at.map(|p| ms(p, e.ts));
                    }
                    MigrationStep::FailoverGranted => {
                        m.failover_ms = m.pause_requested_at.map(|p| ms(p, e.ts));
                        m.duration_ms = Some(ms(m.started_at, e.ts));
                        m.outcome = MigrationOutcome::Finished;
                    }
                    MigrationStep::Accepted | MigrationStep::FailoverRequested => {}
                }
            }
            EventKind::MigratedCommand { bytes, new_key, .. } => {
                let Some(m) = &mut self.migration else { return };
                let part = if m.snapshot_ms.is_some() {
                    &mut m.stream
                } else {
                    &mut m.snapshot
                };
                part.commands += 1;
                part.bytes += bytes;
                part.keys += u64::from(*new_key);
            }
            _ => {}
        }
    }
}
