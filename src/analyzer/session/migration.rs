//! Valkey 9's atomic slot migration as one link (`protocol-2026-12.md` P2): the *source* node
//! connects to the *target* and pushes. Its direction (the connecting side's) carries
//! `CLUSTER SYNCSLOTS ESTABLISH SOURCE <id> NAME <job> SLOTSRANGE <start> <end> …`, then the
//! slots' snapshot as ordinary commands, `SNAPSHOT-EOF`, the slots' writes since, `PAUSED` and
//! `FAILOVER-GRANTED`; the target answers `ESTABLISH` with `+OK` (the only reply), then sends
//! commands of its own (`REQUEST-PAUSE`, `REQUEST-FAILOVER`, `ACK` health checks).
//!
//! The target forwards `ESTABLISH`, the imported commands and `FINISH STATE … NAME <job>` to
//! its replicas as ordinary stream bytes; [`forwarded`] reads those in a replica's stream.

use super::master::MasterPhase;
use super::{Role, Session};
use crate::analyzer::event::{EventKind, MigrationStep, SlotRange};
use crate::analyzer::input::Timestamp;
use crate::protocol::cluster::is_syncslots;
use crate::protocol::handshake::Reply;
use crate::protocol::resp::Command;

/// The source's side of a migration link, once it sent `ESTABLISH`.
#[derive(Debug, Default)]
pub(super) struct Push {
    /// `SNAPSHOT-EOF` went by: what follows are the slots' writes.
    snapshot_done: bool,
    /// A hash of the key the last command named: the snapshot writes each key's commands
    /// together, so a change of key is a key moved (memory stays one hash).
    last_key: Option<u64>,
}

/// What `CLUSTER SYNCSLOTS ESTABLISH …` says: `(job, source, slots, ranges named)`.
fn establish(cmd: &Command) -> Option<(String, String, Vec<SlotRange>, u64)> {
    let (mut job, mut source) = (None, None);
    let mut slots = Vec::new();
    let mut i = 3;
    while let Some(word) = cmd.arg(i) {
        let value = cmd.arg(i + 1).and_then(|a| a.as_str().map(str::to_string));
        if word.eq_ignore_case("SOURCE") {
            source = value;
        } else if word.eq_ignore_case("NAME") {
            job = value;
        } else if word.eq_ignore_case("SLOTSRANGE") {
            i += 1;
            while let (Some(a), Some(b)) = (cmd.arg(i), cmd.arg(i + 1)) {
                let slot = |a: crate::protocol::resp::Arg<'_>| {
                    a.as_i64().and_then(|v| u16::try_from(v).ok())
                };
                let (Some(a), Some(b)) = (slot(a), slot(b)) else {
                    break;
                };
                slots.push([a, b]);
                i += 2;
            }
            continue;
        }
        i += 2;
    }
    // Captured or not, every argument after SLOTSRANGE is half a range.
    let ranges = match (0..cmd.argc() as usize)
        .find(|&i| cmd.arg(i).is_some_and(|a| a.eq_ignore_case("SLOTSRANGE")))
    {
        Some(at) => (cmd.argc() - at as u64 - 1) / 2,
        None => slots.len() as u64,
    };
    Some((job?, source?, slots, ranges))
}

/// The `MigrationStart` an `ESTABLISH` says (`offset`: where it ends in a replica's stream).
fn migration_start(cmd: &Command, offset: Option<u64>) -> Option<EventKind> {
    let (job, source, slots, ranges) = establish(cmd)?;
    Some(EventKind::MigrationStart {
        job,
        source,
        slots,
        ranges,
        offset,
    })
}

/// 64-bit FNV-1a: the same key, the same hash.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Session {
    /// `cmd` from the connecting side: returns true if it was a migration's (`ESTABLISH`, or
    /// anything after it).
    pub(super) fn on_pushed(&mut self, at: Timestamp, cmd: &Command) -> bool {
        if self.push.is_none() {
            if !is_syncslots(cmd, Some("ESTABLISH")) || self.role == Role::Client {
                return false;
            }
            let Some(start) = migration_start(cmd, None) else {
                return false;
            };
            self.push = Some(Push::default());
            self.set_role(at, Role::SlotMigration);
            self.emit(at, start);
            // Its answer is the one reply on the link.
            self.handshake
                .pending
                .push_back(super::Pending::Other(cmd.name()));
            return true;
        }
        let step = match () {
            _ if is_syncslots(cmd, Some("SNAPSHOT-EOF")) => Some(MigrationStep::SnapshotEnd),
            _ if is_syncslots(cmd, Some("PAUSED")) => Some(MigrationStep::Paused),
            _ if is_syncslots(cmd, Some("FAILOVER-GRANTED")) => {
                Some(MigrationStep::FailoverGranted)
            }
            // Health checks (`ACK`) and what else the protocol adds: not the slots' data.
            _ if is_syncslots(cmd, None) => None,
            _ => {
                let push = self.push.as_mut().expect("pushing");
                let name = cmd.name();
                let key = match name.as_bytes() {
                    b"SELECT" | b"MULTI" | b"EXEC" | b"PING" => None,
                    _ => cmd.arg(1).map(|k| hash(k.bytes)),
                };
                let new_key = !push.snapshot_done && key.is_some() && key != push.last_key;
                if key.is_some() {
                    push.last_key = key;
                }
                let bytes = cmd.wire_len();
                self.emit(
                    at,
                    EventKind::MigratedCommand {
                        name,
                        bytes,
                        new_key,
                    },
                );
                return true;
            }
        };
        if let Some(step) = step {
            if step == MigrationStep::SnapshotEnd {
                if let Some(push) = &mut self.push {
                    push.snapshot_done = true;
                }
            }
            self.emit(at, EventKind::Migration { step });
        }
        true
    }

    /// The target's answer to `ESTABLISH`: `+OK`, and its own commands follow.
    pub(super) fn on_establish_reply(&mut self, at: Timestamp, reply: &Reply<'_>, shown: &str) {
        if matches!(reply, Reply::Error(_)) {
            let reply = shown.to_string();
            self.emit(at, EventKind::MigrationRefused { reply });
            return;
        }
        let step = MigrationStep::Accepted;
        self.emit(at, EventKind::Migration { step });
        // No offsets: the target's commands to the source are not a replication stream.
        self.master.stream.base = None;
        self.enter_master(MasterPhase::Stream);
    }

    /// A command from the target on a migration link: returns true if it was the migration's.
    pub(super) fn on_target_command(&mut self, at: Timestamp, cmd: &Command) -> bool {
        if self.push.is_none() || !is_syncslots(cmd, None) {
            return false;
        }
        let step = if is_syncslots(cmd, Some("REQUEST-PAUSE")) {
            Some(MigrationStep::PauseRequested)
        } else if is_syncslots(cmd, Some("REQUEST-FAILOVER")) {
            Some(MigrationStep::FailoverRequested)
        } else {
            None
        };
        if let Some(step) = step {
            self.emit(at, EventKind::Migration { step });
        }
        true
    }

    /// A migration's commands in a replica's stream (`end`: the command's last byte's offset):
    /// says which migration they belong to.
    pub(super) fn forwarded(&mut self, at: Timestamp, cmd: &Command, end: Option<u64>) {
        if is_syncslots(cmd, Some("ESTABLISH")) {
            if let Some(start) = migration_start(cmd, end) {
                self.emit(at, start);
            }
        } else if is_syncslots(cmd, Some("FINISH")) {
            let (mut state, mut job, mut message) = (None, None, None);
            let mut i = 3;
            while let Some(word) = cmd.arg(i) {
                let value = cmd.arg(i + 1).and_then(|a| a.as_str().map(str::to_string));
                if word.eq_ignore_case("STATE") {
                    state = value.map(|v| v.to_ascii_lowercase());
                } else if word.eq_ignore_case("NAME") {
                    job = value;
                } else if word.eq_ignore_case("MESSAGE") {
                    message = value.filter(|m| !m.is_empty());
                }
                i += 2;
            }
            if let (Some(job), Some(state)) = (job, state) {
                let offset = end;
                let finish = EventKind::MigrationFinish {
                    job,
                    state,
                    message,
                    offset,
                };
                self.emit(at, finish);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::{Item, Limits, Parser};

    fn command(args: &[&str]) -> Box<Command> {
        let mut wire = format!("*{}\r\n", args.len());
        for a in args {
            wire.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let mut p = Parser::new(Limits::default());
        match p.advance(wire.as_bytes()).1 {
            Ok(Some(Item::Command(c))) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn establish_names_the_job_the_source_and_the_ranges() {
        let id = "e85fdc2a321f5f6b034d54721559039fabe22bb4";
        let job = "ab7fe35fa5d20c44f8ba45aad4553dc28c7453c1";
        let mut args = vec![
            "CLUSTER",
            "SYNCSLOTS",
            "ESTABLISH",
            "SOURCE",
            id,
            "NAME",
            job,
        ];
        args.extend(["SLOTSRANGE", "0", "1000", "5000", "5001"]);
        let (j, s, slots, ranges) = establish(&command(&args)).unwrap();
        assert_eq!((j.as_str(), s.as_str()), (job, id));
        assert_eq!((slots, ranges), (vec![[0, 1000], [5000, 5001]], 2));
        // Six ranges: four fit in the captured arguments, all six are counted.
        for r in ["1", "1", "2", "2", "3", "3", "4", "4"] {
            args.push(r);
        }
        let (_, _, slots, ranges) = establish(&command(&args)).unwrap();
        assert_eq!((slots.len(), ranges), (4, 6));
    }
}
