//! Incremental parsing of streamed responses: server-sent events (OpenAI-compatible servers)
//! and newline-delimited JSON (Ollama), with a bounded carry-over buffer.
//!
//! Both parsers take body chunks as they arrive from the upstream and hand back complete
//! records together with their exact raw bytes, so a caller forwards every record unchanged
//! (or drops or rewrites one) and holds back only the incomplete tail. Concatenating the raw
//! bytes of every record yields the input byte for byte.
//!
//! ```
//! use modelgate_filter::sse::SseParser;
//!
//! let mut parser = SseParser::new(1 << 20);
//! let mut data = Vec::new();
//! for chunk in [&b"data: {\"a\""[..], b":1}\r\n\r\n: ping\n\ndata: [DONE]\n\n"] {
//!     parser.push(chunk);
//!     while let Some(block) = parser.next_block().unwrap() {
//!         data.extend(block.data().map(str::to_owned));
//!     }
//! }
//! assert_eq!(data, ["{\"a\":1}", "[DONE]"]);
//! ```

mod lines;
mod ndjson;
#[cfg(test)]
mod tests;

use lines::LineBuffer;
pub use ndjson::{NdjsonLine, NdjsonParser};

/// A bound on one event (SSE) or line (NDJSON) held while it is incomplete. LLM servers send
/// one token or a final usage object per record, a few hundred bytes; a megabyte is far beyond
/// any legitimate record and still small next to an Envoy worker's memory.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// The stream could not be parsed further. The bytes held back are not lost: take them with
/// `take_buffered` and pass the rest of the stream through unparsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("server-sent event exceeds {limit} bytes")]
    EventTooLarge { limit: usize },
    #[error("NDJSON line exceeds {limit} bytes")]
    LineTooLong { limit: usize },
}

/// Incremental SSE parser (the WHATWG event-stream grammar).
#[derive(Debug)]
pub struct SseParser {
    lines: LineBuffer,
    fields: Fields,
    max_event_bytes: usize,
    seen_first_line: bool,
    failed: bool,
}

/// The bytes from one blank line (or the stream start) through the next blank line inclusive:
/// an event when it carries data, otherwise comments, keep-alives or stray blank lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseBlock {
    raw: Vec<u8>,
    fields: Fields,
    terminated: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields {
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            lines: LineBuffer::default(),
            fields: Fields::default(),
            max_event_bytes,
            seen_first_line: false,
            failed: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.lines.push(chunk);
    }

    /// Marks the end of the stream: `next_block` then also returns an unterminated last block.
    pub fn finish(&mut self) {
        self.lines.finish();
    }

    /// The next complete block, `Ok(None)` when more bytes are needed. At the end of the stream
    /// (after `finish`) a tail without its closing blank line comes back with
    /// `is_terminated() == false`: a browser would not dispatch it, but its bytes were still
    /// received and its tokens generated.
    pub fn next_block(&mut self) -> Result<Option<SseBlock>, SseError> {
        let too_large = SseError::EventTooLarge {
            limit: self.max_event_bytes,
        };
        if self.failed {
            return Err(too_large);
        }
        loop {
            let Some(line) = self.lines.next_line() else {
                if self.lines.is_finished() && self.lines.pending() > 0 {
                    let raw = self.lines.take_all();
                    return Ok(Some(self.block(raw, false)));
                }
                if self.lines.pending() > self.max_event_bytes {
                    self.failed = true;
                    return Err(too_large);
                }
                return Ok(None);
            };
            let mut content = line.content;
            if !self.seen_first_line {
                self.seen_first_line = true;
                if self.lines.bytes(content.clone()).starts_with(BOM) {
                    content.start += BOM.len();
                }
            }
            if content.is_empty() {
                let raw = self.lines.take_through(line.end);
                return Ok(Some(self.block(raw, true)));
            }
            self.fields.apply(self.lines.bytes(content));
        }
    }

    /// Every byte received and not yet returned in a block, for passing through unparsed.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.fields = Fields::default();
        self.lines.take_all()
    }

    fn block(&mut self, raw: Vec<u8>, terminated: bool) -> SseBlock {
        SseBlock {
            raw,
            fields: std::mem::take(&mut self.fields),
            terminated,
        }
    }
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_BYTES)
    }
}

impl Fields {
    fn apply(&mut self, line: &[u8]) {
        if line.starts_with(b":") {
            return;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            },
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            // `retry` and unknown fields do not matter to a proxy; their bytes pass through.
            _ => {}
        }
    }
}

impl SseBlock {
    /// The exact bytes of this block as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The event's data (`data:` lines joined by `\n`); `None` when the block dispatches no
    /// event (comments, keep-alives, an empty data buffer).
    pub fn data(&self) -> Option<&str> {
        self.fields.data.as_deref().filter(|d| !d.is_empty())
    }

    /// The `event:` field; `None` means the default type, `message`.
    pub fn event_type(&self) -> Option<&str> {
        self.fields.event.as_deref()
    }

    pub fn id(&self) -> Option<&str> {
        self.fields.id.as_deref()
    }

    /// The OpenAI end-of-stream sentinel `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data().is_some_and(|d| d.trim() == "[DONE]")
    }

    /// False only for a tail cut off by the end of the stream before its blank line.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// This event re-serialized with new data, keeping its `event`/`id` fields and its line
    /// endings (comments inside the block are dropped).
    pub fn with_data(&self, data: &str) -> Vec<u8> {
        let eol = self.line_ending();
        let mut out = Vec::with_capacity(data.len() + 16);
        for (name, value) in [("event", self.event_type()), ("id", self.id())] {
            if let Some(value) = value {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(eol);
            }
        }
        for line in split_lines(data) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        out
    }

    fn line_ending(&self) -> &'static [u8] {
        match self.raw.iter().position(|b| *b == b'\r' || *b == b'\n') {
            Some(i) if self.raw[i] == b'\n' => b"\n",
            Some(i) if self.raw.get(i + 1) == Some(&b'\n') => b"\r\n",
            Some(_) => b"\r",
            None => b"\n",
        }
    }
}

/// Splits on `\r\n`, `\r` or `\n`, the SSE line terminators, keeping empty lines.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            Some(i) => {
                let skip = if current[i..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[i + skip..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}
