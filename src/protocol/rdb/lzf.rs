//! The prefix-only LZF decoder: a compressed container's element count is in its first
//! bytes, so only those are ever decompressed, whatever the string's size.

#[derive(Debug, Clone, Default)]
pub(super) struct LzfPrefix {
    pub(super) out: Vec<u8>,
    want: usize,
    literal: usize,
    ctrl: Option<u8>,
    long_len: Option<usize>,
}

impl LzfPrefix {
    pub(super) fn new(want: usize) -> LzfPrefix {
        LzfPrefix {
            want,
            ..LzfPrefix::default()
        }
    }

    /// Decodes until `want` bytes exist, never more, whatever the input's split. On data that
    /// is not LZF (a back-reference before the start), returns the index of the byte that
    /// completed the bad reference.
    pub(super) fn feed(&mut self, input: &[u8]) -> Result<(), usize> {
        let mut i = 0;
        while i < input.len() && self.out.len() < self.want {
            let room = self.want - self.out.len();
            if self.literal > 0 {
                let take = self.literal.min(input.len() - i).min(room);
                self.out.extend_from_slice(&input[i..i + take]);
                self.literal -= take;
                i += take;
                continue;
            }
            let b = input[i];
            i += 1;
            match self.ctrl {
                None if b < 32 => self.literal = b as usize + 1,
                None => {
                    self.ctrl = Some(b);
                    self.long_len = (b >> 5 != 7).then_some((b >> 5) as usize);
                }
                Some(_) if self.long_len.is_none() => self.long_len = Some(7 + b as usize),
                Some(c) => {
                    let len = self.long_len.unwrap_or(0) + 2;
                    let back = (((c & 0x1f) as usize) << 8) + b as usize + 1;
                    if back > self.out.len() {
                        return Err(i - 1);
                    }
                    for _ in 0..len.min(room) {
                        let byte = self.out[self.out.len() - back];
                        self.out.push(byte);
                    }
                    self.ctrl = None;
                    self.long_len = None;
                }
            }
        }
        Ok(())
    }
}
