//! Text rendering of events: the one line per event of the live log and `replay`.

use std::fmt;

use crate::analyzer::event::{Event, EventKind, Framing, Role, SyncKind, SyncPhase};

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.session)?;
        match &self.kind {
            EventKind::SessionStart { replica, upstream } => {
                write!(f, "session start {replica} -> {upstream}")
            }
            EventKind::Role { role } => match role {
                Role::Replication => write!(f, "role: replica (replication stream analysed)"),
                Role::Sync => write!(
                    f,
                    "role: SYNC (RDB analysed, offsets from a paired main connection if any)"
                ),
                Role::Client => write!(f, "role: plain client (commands counted, replies not parsed)"),
                Role::Undetermined => write!(f, "role: undetermined"),
                Role::SlotMigration => write!(
                    f,
                    "role: atomic slot migration link between cluster nodes (not a replica)"
                ),
                Role::ClusterBus => write!(
                    f,
                    "role: cluster bus link (the nodes' binary protocol: counted, not analysed)"
                ),
            },
            EventKind::Request { name, args } => {
                write!(f, "R->M {name}")?;
                args.iter().try_for_each(|a| write!(f, " {a}"))
            }
            EventKind::Reply { to, reply } => match to {
                Some(to) => write!(f, "M->R {reply} (to {to})"),
                None => write!(f, "M->R {reply}"),
            },
            EventKind::KeepAlive { dir } => write!(f, "{} keep-alive \\n", dir.arrow()),
            EventKind::Compression { codec, level } => match level {
                Some(level) => write!(
                    f,
                    "compressed stream: {codec} level {level} (offsets count decompressed bytes)"
                ),
                None => write!(
                    f,
                    "compressed stream: {codec} frames on the wire, level unknown (the capture \
                     began after the handshake); offsets count decompressed bytes"
                ),
            },
            EventKind::CompressedFrame {
                wire_bytes,
                stream_bytes,
            } => write!(
                f,
                "M->R compressed frame: {wire_bytes} B carrying {stream_bytes} stream B"
            ),
            EventKind::Channel { channel, link } => write!(
                f,
                "{} connection of a two-connection sync (client id {link})",
                channel.as_str()
            ),
            EventKind::SyncStart {
                sync,
                replid,
                offset,
            } => match sync {
                SyncKind::RdbChannel | SyncKind::DualChannel if offset.is_some() => write!(
                    f,
                    "full sync over two connections: replid {} offset {}; stream starts at {}",
                    opt(replid),
                    opt(offset),
                    offset.map_or("?".into(), |o| o.saturating_add(1).to_string())
                ),
                SyncKind::SlotStream => write!(
                    f,
                    "slot migration stream: the migrating slots' commands, offsets counted from 0"
                ),
                SyncKind::SlotSnapshot => write!(
                    f,
                    "slot migration snapshot: the slots' keys as commands, up to SNAPSHOT-EOF"
                ),
                SyncKind::DualChannel => write!(
                    f,
                    "dual-channel sync: the RDB comes on another connection, then this one asks for the stream"
                ),
                SyncKind::Full => write!(
                    f,
                    "full resync: replid {} offset {}; stream starts at {}",
                    opt(replid),
                    opt(offset),
                    offset.map_or("?".into(), |o| o.saturating_add(1).to_string())
                ),
                SyncKind::Partial => write!(
                    f,
                    "partial resync (CONTINUE): replid {}; stream continues at offset {}",
                    opt(replid),
                    opt(offset)
                ),
                SyncKind::Sync => write!(f, "SYNC: RDB follows, with no offsets of its own"),
                SyncKind::RdbChannel => write!(
                    f,
                    "RDB channel sync: the RDB comes on another connection, stream offsets unknown here"
                ),
            },
            EventKind::Why { message, .. } => write!(f, "why: {message}"),
            EventKind::Anchored { offset } => write!(
                f,
                "stream anchored by two GETACK answers: the last byte seen is at offset {offset}; exact offsets from here"
            ),
            EventKind::SyncRejected { reply } => write!(f, "sync refused by master: {reply}"),
            EventKind::RdbStart {
                framing,
                declared_bytes,
            } => match declared_bytes {
                Some(n) => write!(f, "RDB transfer start ({framing:?}, {n} bytes)"),
                None => write!(f, "RDB transfer start ({framing:?}, length unknown)"),
            },
            EventKind::RdbEnd {
                framing,
                bytes,
                duration_us,
            } => {
                let secs = *duration_us as f64 / 1e6;
                if secs > 0.0 {
                    write!(
                        f,
                        "RDB transfer done ({framing:?}): {bytes} bytes in {secs:.3} s ({})",
                        rate(*bytes as f64 / secs)
                    )
                } else {
                    write!(f, "RDB transfer done ({framing:?}): {bytes} bytes, all in one read")
                }
            }
            EventKind::RdbHeader { header } => {
                write!(f, "RDB header {}", header.as_written())?;
                match &header.written_by {
                    Some(by) => write!(f, ", written by {by}"),
                    None => Ok(()),
                }
            }
            EventKind::RdbContents { contents } => write!(f, "RDB contents: {contents}"),
            EventKind::RdbAborted {
                framing: _,
                bytes,
                declared: Some(declared),
            } => write!(
                f,
                "RDB transfer aborted at byte {bytes} of {declared} (disk): the connection ended"
            ),
            EventKind::RdbAborted { framing, bytes, .. } => {
                let how = match framing {
                    Framing::Disk => "disk",
                    Framing::Diskless => "diskless",
                };
                write!(
                    f,
                    "RDB transfer aborted at byte {bytes} ({how}): no end mark before the \
                     connection ended"
                )
            }
            EventKind::Command {
                start,
                end,
                name,
                sub,
                db,
                in_multi,
                bytes,
            } => {
                write!(f, "M->R {name}")?;
                if let Some(sub) = sub {
                    write!(f, " {sub}")?;
                }
                write!(f, " offset {}..{} ({bytes} B)", opt(start), opt(end))?;
                if let Some(db) = db {
                    write!(f, " db {db}")?;
                }
                if *in_multi {
                    write!(f, " in MULTI")?;
                }
                Ok(())
            }
            EventKind::ClientCommand { name, bytes } => write!(f, "client {name} ({bytes} B)"),
            EventKind::MigrationStart {
                job,
                source,
                slots,
                ranges,
                offset,
            } => {
                let place = match offset {
                    Some(o) => format!(" (forwarded in the stream at offset {o})"),
                    None => String::new(),
                };
                write!(
                    f,
                    "slot migration {job} from node {source}: slots {}{place}",
                    crate::render::summary::slot_ranges(slots, *ranges)
                )
            }
            EventKind::Migration { step } => write!(f, "slot migration: {}", step.describe()),
            EventKind::ClusterNode { node, port, .. } => {
                write!(f, "cluster bus: node {node} (data port {port})")
            }
            EventKind::MigrationRefused { reply } => {
                write!(f, "slot migration refused by the target: {reply}")
            }
            EventKind::MigrationFinish {
                job,
                state,
                message,
                offset,
            } => {
                write!(f, "slot migration {job} finished: {state}")?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                match offset {
                    Some(o) => write!(f, " (in the stream at offset {o})"),
                    None => Ok(()),
                }
            }
            EventKind::MigratedCommand { name, bytes, .. } => {
                write!(f, "migrated {name} ({bytes} B)")
            }
            EventKind::Ack { offset, fack } => match fack {
                Some(fack) => write!(f, "R->M ACK {offset} FACK {fack}"),
                None => write!(f, "R->M ACK {offset}"),
            },
            EventKind::Desync {
                dir,
                position,
                offset,
                reason,
            } => {
                write!(
                    f,
                    "DESYNC {}: {reason} (byte {position} of that direction",
                    dir.arrow()
                )?;
                match offset {
                    Some(o) => write!(f, ", replication offset {o}); bytes still forwarded"),
                    None => write!(f, "); bytes still forwarded"),
                }
            }
            EventKind::Encrypted { version, sni } => {
                let version = version.map_or("version unknown", |v| v.as_str());
                let sni = sni.as_deref().map_or("no SNI".to_string(), |s| format!("SNI {s}"));
                write!(
                    f,
                    "TLS: encrypted, not analysed ({version}, {sni}); a capture of TLS cannot be \
                     decrypted, its bytes are counted"
                )
            }
            EventKind::JoinedLate { dir, skipped } => write!(
                f,
                "{} joined mid-connection: analysis starts after {skipped} bytes, offsets unknown",
                dir.arrow()
            ),
            EventKind::Resumed {
                dir,
                position,
                offset,
                passed,
            } => {
                write!(
                    f,
                    "RESUMED {}: analysis goes on at the next command, byte {position}",
                    dir.arrow()
                )?;
                if let Some(o) = offset {
                    write!(f, ", replication offset {o}")?;
                }
                write!(f, " ({passed} bytes passed over after the gap)")
            }
            EventKind::Warning { kind, message } => write!(f, "WARNING ({kind}): {message}"),
            EventKind::Status {
                offset,
                acked,
                lag_bytes,
                lag_ms,
                commands_per_s,
                bytes_per_s,
                rdb,
                phase,
                phase_s,
            } => match rdb {
                Some(p) => {
                    write!(f, "RDB ")?;
                    if let Some(total) = p.total.filter(|t| *t > 0) {
                        let done = (p.bytes as f64 / total as f64).min(1.0);
                        let filled = (done * 20.0) as usize;
                        write!(
                            f,
                            "[{}{}] {:3.0}% {:.1}/{:.1} MB",
                            "#".repeat(filled),
                            ".".repeat(20 - filled),
                            done * 100.0,
                            p.bytes as f64 / 1e6,
                            total as f64 / 1e6
                        )?;
                    } else {
                        write!(f, "{:.1} MB (diskless: the length comes with the end mark", p.bytes as f64 / 1e6)?;
                        match p.keys_announced.filter(|a| *a > 0) {
                            Some(all) => write!(
                                f,
                                "; {} of {all} keys, {:.0}%)",
                                p.keys,
                                (p.keys as f64 / all as f64 * 100.0).min(100.0)
                            )?,
                            None => write!(f, "; {} keys so far)", p.keys)?,
                        }
                    }
                    write!(f, " at {}", rate(p.bytes_per_s))?;
                    match p.eta_s {
                        Some(eta) => write!(f, ", ETA {eta:.1} s"),
                        None => Ok(()),
                    }
                }
                None => {
                    if let Some(phase) = phase {
                        let what = match phase {
                            SyncPhase::Preparing => "the master prepares the RDB",
                            SyncPhase::Loading => "the replica loads the RDB",
                            SyncPhase::CatchUp => "the replica catches up",
                            other => other.as_str(),
                        };
                        write!(f, "full sync: {what}")?;
                        if let Some(s) = phase_s {
                            write!(f, " for {s:.1} s")?;
                        }
                        write!(f, "; ")?;
                    }
                    write!(
                        f,
                        "status: offset {} acked {} lag {lag_bytes} B / {lag_ms:.0} ms, {commands_per_s:.0} cmd/s, {}",
                        opt(offset),
                        opt(acked),
                        rate(*bytes_per_s)
                    )
                }
            },
            EventKind::SessionEnd {
                reason,
                bytes_to_master,
                bytes_to_replica,
                stream_bytes,
                offset_end,
            } => write!(
                f,
                "session end ({reason}): {bytes_to_master} B to master, {bytes_to_replica} B to replica, {stream_bytes} stream B, end offset {}",
                opt(offset_end)
            ),
        }
    }
}

/// A byte rate with a unit that keeps a few significant digits.
fn rate(bytes_per_s: f64) -> String {
    if bytes_per_s >= 1e6 {
        format!("{:.1} MB/s", bytes_per_s / 1e6)
    } else {
        format!("{:.1} kB/s", bytes_per_s / 1e3)
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "?".to_string(), |v| v.to_string())
}
