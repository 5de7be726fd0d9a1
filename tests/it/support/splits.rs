//! Feeding the same bytes in different pieces: whole, byte by byte, and at random split
//! points. The analyzer promises that the pieces never change what it says.

use repl_sniff::{Chunk, Config, Direction, Event, Session, Timestamp};

/// How a step's bytes are cut into chunks.
#[derive(Debug, Clone, Copy)]
pub enum Split {
    /// One chunk per step.
    Whole,
    /// One chunk per byte.
    Bytewise,
    /// Chunks of 1 to 97 bytes, drawn from the seed.
    Random(u64),
}

impl Split {
    /// Every way the property is checked: whole, byte by byte, and three random cuttings.
    pub const ALL: [Split; 5] = [
        Split::Whole,
        Split::Bytewise,
        Split::Random(0x2545_f491_4f6c_dd1d),
        Split::Random(0x9e37_79b9_7f4a_7c15),
        Split::Random(7),
    ];

    /// The cut points inside `len` bytes (not 0, not `len`). Random cuts continue the
    /// sequence across calls through `state`.
    pub fn cuts(self, len: usize, state: &mut u64) -> Vec<usize> {
        match self {
            Split::Whole => vec![],
            Split::Bytewise => (1..len).collect(),
            Split::Random(seed) => {
                if *state == 0 {
                    *state = seed | 1;
                }
                let mut cuts = Vec::new();
                let mut at = 0;
                loop {
                    *state ^= *state << 13;
                    *state ^= *state >> 7;
                    *state ^= *state << 17;
                    at += 1 + (*state % 97) as usize;
                    if at >= len {
                        return cuts;
                    }
                    cuts.push(at);
                }
            }
        }
    }

    /// `bytes` cut into pieces.
    pub fn pieces<'a>(self, bytes: &'a [u8], state: &mut u64) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut start = 0;
        for end in self
            .cuts(bytes.len(), state)
            .into_iter()
            .chain([bytes.len()])
        {
            out.push(&bytes[start..end]);
            start = end;
        }
        out
    }
}

/// Feeds `steps` to a new session (joined late if `late`), each step's bytes cut by `split`
/// and seen at its own timestamp; returns every event, the closing one included.
pub fn session_events(steps: &[(Direction, &[u8])], split: Split, late: bool) -> Vec<Event> {
    let (id, t0, cfg) = (1, Timestamp(1_000_000), Config::default());
    let mut s = if late {
        Session::joined_late(id, t0, "127.0.0.1:50000", "127.0.0.1:6379", cfg)
    } else {
        Session::new(id, t0, "127.0.0.1:50000", "127.0.0.1:6379", cfg)
    };
    let mut state = 0;
    let mut out = Vec::new();
    for (i, (dir, bytes)) in steps.iter().enumerate() {
        let at = Timestamp(t0.0 + 1000 * (i as u64 + 1));
        for piece in split.pieces(bytes, &mut state) {
            s.feed(Chunk {
                dir: *dir,
                at,
                bytes: piece,
            });
            out.extend(std::iter::from_fn(|| s.poll_event()));
        }
    }
    s.finish(Timestamp(t0.0 + 1_000_000), "end");
    out.extend(std::iter::from_fn(|| s.poll_event()));
    out
}

/// Asserts that every split of `steps` gives the events of the whole feed; returns those.
pub fn same_events_at_every_split(steps: &[(Direction, &[u8])], late: bool) -> Vec<Event> {
    let whole = session_events(steps, Split::Whole, late);
    for split in Split::ALL {
        let got = session_events(steps, split, late);
        assert_same(&got, &whole, &format!("{split:?}"));
    }
    whole
}

/// Asserts equality, reporting the first difference rather than both whole transcripts.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: event {i} differs:\n got  {:?}\n want {:?}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: number of events");
}
