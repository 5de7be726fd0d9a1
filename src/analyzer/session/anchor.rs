//! The main connection of a Redis 8 RDB-channel sync learns its offsets from the other
//! connection's `+FULLRESYNC`. The two sockets are not ordered, so stream bytes can be seen
//! first: until the anchor comes, this connection's events are held back (bounded), then
//! released with exact offsets. Forwarding never waits; only the events do.

use std::collections::VecDeque;

use super::Session;
use crate::analyzer::event::{Event, EventKind, SyncKind, WarningKind};
use crate::analyzer::input::Timestamp;

/// Most events held back while waiting for the anchor; past it they are released with
/// offsets unknown (a later anchor still gives exact offsets to what follows).
pub const MAX_HELD_EVENTS: usize = 65_536;

/// Where the main connection's offsets stand.
#[derive(Debug, Default)]
pub(super) enum Anchor {
    /// Offsets come from this connection's own replies (or are not known at all).
    #[default]
    NotNeeded,
    /// Waiting for the other connection: events held back since `since`. Each held event
    /// comes with, for stream commands, the stream bytes up to its end.
    Holding {
        since: Timestamp,
        events: VecDeque<(Event, Option<u64>)>,
    },
    /// Held events were let go without offsets; an anchor can still come.
    Released,
    /// The offsets are known.
    Anchored,
}

impl Session {
    /// From now on, hold events back until [`Session::anchor`] (or a give-up).
    pub(super) fn hold_until_anchored(&mut self, at: Timestamp) {
        self.anchor = Anchor::Holding {
            since: at,
            events: VecDeque::new(),
        };
    }

    /// Holds `e` back while waiting for the anchor (else it goes out as usual).
    pub(super) fn hold(&mut self, e: Event) {
        let Anchor::Holding { events, .. } = &mut self.anchor else {
            return self.events.push_back(e);
        };
        let end = matches!(e.kind, EventKind::Command { .. }).then_some(self.master.stream.bytes);
        events.push_back((e, end));
        if events.len() >= MAX_HELD_EVENTS {
            let why = format!(
                "{MAX_HELD_EVENTS} events waited for the RDB connection's offsets; shown without them"
            );
            let at = events.back().map_or(Timestamp(0), |(e, _)| e.ts);
            self.release_unanchored(at, why);
        }
    }

    /// Since when this connection's events are held back waiting for the other connection's
    /// offsets, if they are.
    pub fn awaiting_anchor_since(&self) -> Option<Timestamp> {
        match &self.anchor {
            Anchor::Holding { since, .. } => Some(*since),
            _ => None,
        }
    }

    /// The other connection of this Redis 8 RDB-channel sync said `+FULLRESYNC <replid>
    /// <offset>`: the stream here starts at `offset + 1`. Held events are released with
    /// their offsets. Ignored unless this connection is waiting for it.
    pub fn anchor(&mut self, at: Timestamp, replid: Option<String>, offset: u64) {
        let held = match std::mem::replace(&mut self.anchor, Anchor::Anchored) {
            Anchor::Holding { events, .. } => events,
            Anchor::Released => VecDeque::new(),
            other => {
                self.anchor = other;
                return;
            }
        };
        self.master.stream.base = Some(offset);
        // Said as of the first held event: the anchor holds from there on.
        let ts = held.front().map_or(at, |(e, _)| e.ts);
        let sync = SyncKind::RdbChannel;
        let offset = Some(offset);
        self.emit(
            ts,
            EventKind::SyncStart {
                sync,
                replid,
                offset,
            },
        );
        for (mut e, end_bytes) in held {
            if let (
                EventKind::Command {
                    start, end, bytes, ..
                },
                Some(b),
            ) = (&mut e.kind, end_bytes)
            {
                let e_end = self.master.stream.base.map(|base| base.saturating_add(b));
                *end = e_end;
                *start = e_end.map(|x| x.saturating_add(1).saturating_sub(*bytes));
            }
            self.events.push_back(e);
        }
    }

    /// The other connection will not give the offsets (it ended first, or never came):
    /// held events are released without them.
    pub fn unpaired(&mut self, at: Timestamp, why: String) {
        if matches!(self.anchor, Anchor::Holding { .. }) {
            self.release_unanchored(at, why);
        }
    }

    fn release_unanchored(&mut self, at: Timestamp, why: String) {
        if let Anchor::Holding { events, .. } =
            std::mem::replace(&mut self.anchor, Anchor::Released)
        {
            self.events.extend(events.into_iter().map(|(e, _)| e));
            let kind = WarningKind::Unpaired;
            self.emit(at, EventKind::Warning { kind, message: why });
        }
    }
}
