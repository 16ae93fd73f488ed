//! Newline-delimited JSON streams (Ollama's `/api/chat` and `/api/generate` with `stream`).

use super::lines::LineBuffer;
use super::SseError;

/// Incremental NDJSON splitter with the same carry-over and bound as the SSE parser.
#[derive(Debug)]
pub struct NdjsonParser {
    lines: LineBuffer,
    max_line_bytes: usize,
    failed: bool,
}

/// One line of the stream with its exact raw bytes (terminator included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdjsonLine {
    raw: Vec<u8>,
    content_len: usize,
}

impl NdjsonParser {
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            lines: LineBuffer::default(),
            max_line_bytes,
            failed: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.lines.push(chunk);
    }

    /// Marks the end of the stream: a last line without newline is then returned too.
    pub fn finish(&mut self) {
        self.lines.finish();
    }

    /// The next complete line (blank ones included, so their bytes pass through), or `Ok(None)`
    /// when more bytes are needed.
    pub fn next_line(&mut self) -> Result<Option<NdjsonLine>, SseError> {
        let too_long = SseError::LineTooLong {
            limit: self.max_line_bytes,
        };
        if self.failed {
            return Err(too_long);
        }
        match self.lines.next_line() {
            Some(line) => Ok(Some(NdjsonLine {
                content_len: line.content.len(),
                raw: self.lines.take_through(line.end),
            })),
            None if self.lines.pending() > self.max_line_bytes => {
                self.failed = true;
                Err(too_long)
            }
            None => Ok(None),
        }
    }

    /// Every byte received and not yet returned in a line, for passing through unparsed.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.lines.take_all()
    }
}

impl Default for NdjsonParser {
    fn default() -> Self {
        Self::new(super::DEFAULT_MAX_RECORD_BYTES)
    }
}

impl NdjsonLine {
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The line without its terminator and surrounding whitespace: the JSON text, or empty.
    pub fn json(&self) -> &[u8] {
        self.raw[..self.content_len].trim_ascii()
    }

    pub fn is_blank(&self) -> bool {
        self.json().is_empty()
    }
}
