//! Inline commands split into words the way Redis's `sdssplitargs` splits them.

/// The words of an inline command line, split where Redis's `sdssplitargs` splits them: at
/// white space, except inside `"…"` (with backslash escapes) or `'…'`. Each word is the byte
/// range it occupies in the line, quotes included: what was on the wire, not the unescaped
/// value. An unbalanced quote makes the rest of the line one word (Redis rejects such a line,
/// but its bytes still crossed the link).
#[derive(Debug)]
pub(super) struct InlineWords<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> InlineWords<'a> {
    pub(super) fn new(line: &'a [u8]) -> Self {
        InlineWords { line, pos: 0 }
    }
}

/// White space as C's `isspace` sees it (what `sdssplitargs` splits at).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

impl Iterator for InlineWords<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let line = self.line;
        while self.pos < line.len() && is_space(line[self.pos]) {
            self.pos += 1;
        }
        if self.pos == line.len() {
            return None;
        }
        let start = self.pos;
        let mut quote = None;
        while self.pos < line.len() {
            let c = line[self.pos];
            match quote {
                None if is_space(c) => break,
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None => {}
                Some(_) if c == b'\\' => self.pos += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
            }
            self.pos += 1;
        }
        self.pos = self.pos.min(line.len());
        Some((start, self.pos))
    }
}
