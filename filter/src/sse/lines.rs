//! Carry-over buffer that splits a byte stream into lines, shared by the SSE and NDJSON parsers.

use std::ops::Range;

/// One complete line: `content` excludes the terminator, `end` is just past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) content: Range<usize>,
    pub(crate) end: usize,
}

/// Bytes received but not yet handed back to the caller.
///
/// `mark` is where the unhanded bytes start (the first line of the record being assembled),
/// `pos` where the next unread line starts and `scanned` how far past `pos` is known to hold no
/// terminator, so a long line arriving in many small chunks is scanned once, not once per chunk.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    mark: usize,
    pos: usize,
    scanned: usize,
    eof: bool,
}

impl LineBuffer {
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.mark > 0 {
            // Compact once per chunk rather than once per record.
            self.buf.drain(..self.mark);
            self.pos -= self.mark;
            self.scanned -= self.mark;
            self.mark = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// After this, a trailing `\r` and a last line without terminator count as complete lines.
    pub(crate) fn finish(&mut self) {
        self.eof = true;
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.eof
    }

    /// The next complete line, or `None` until more bytes arrive. `\r\n`, `\r` and `\n` all end
    /// a line; a `\r` at the very end of the buffer waits for the next byte, since it may be the
    /// first half of `\r\n` split across chunks.
    pub(crate) fn next_line(&mut self) -> Option<Line> {
        let from = self.scanned.max(self.pos);
        let found = self.buf[from..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .map(|i| from + i);
        let (term, end) = match found {
            Some(term) if self.buf[term] == b'\n' => (term, term + 1),
            Some(term) => match self.buf.get(term + 1) {
                Some(b'\n') => (term, term + 2),
                Some(_) => (term, term + 1),
                None if self.eof => (term, term + 1),
                None => {
                    self.scanned = term;
                    return None;
                }
            },
            None if self.eof && self.pos < self.buf.len() => (self.buf.len(), self.buf.len()),
            None => {
                self.scanned = self.buf.len();
                return None;
            }
        };
        let line = Line {
            content: self.pos..term,
            end,
        };
        self.pos = end;
        self.scanned = end;
        Some(line)
    }

    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Hands out the bytes from the mark through `end` (a line's end) and moves the mark there.
    pub(crate) fn take_through(&mut self, end: usize) -> Vec<u8> {
        let taken = self.buf[self.mark..end].to_vec();
        self.mark = end;
        taken
    }

    /// Hands out every byte not yet handed out, complete lines or not.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let taken = self.buf[self.mark..].to_vec();
        self.buf.clear();
        self.mark = 0;
        self.pos = 0;
        self.scanned = 0;
        taken
    }

    /// Bytes held since the mark: the size of the record being assembled.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.mark
    }
}
