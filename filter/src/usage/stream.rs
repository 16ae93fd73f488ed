//! Usage of streamed responses, counted event by event as the bytes pass through.

use serde_json::Value;

use super::estimate::TextTally;
use super::{for_each_generated_text, reported_usage, resolve, ReportedUsage, TokenUsage};
use crate::sse::{NdjsonLine, SseBlock};

/// How a streamed response is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// `text/event-stream`: OpenAI-compatible servers.
    Sse,
    /// `application/x-ndjson`: Ollama's native API.
    Ndjson,
}

impl StreamFormat {
    /// The framing a response `content-type` announces, `None` for a non-streamed body.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if mime.eq_ignore_ascii_case("text/event-stream") {
            Some(Self::Sse)
        } else if [
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
        ]
        .iter()
        .any(|m| mime.eq_ignore_ascii_case(m))
        {
            Some(Self::Ndjson)
        } else {
            None
        }
    }
}

/// Whether an event goes on to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventVerdict {
    Forward,
    /// The usage-only chunk the gateway asked for and the client did not.
    Drop,
}

/// Accumulates what a stream reports: the upstream's last usage object, and the generated
/// text for an estimate when that never comes (servers that ignore `include_usage`, a stream
/// cut short, a client that went away).
#[derive(Debug, Clone, Default)]
pub struct StreamUsage {
    reported: Option<ReportedUsage>,
    generated: TextTally,
    text_chunks: u64,
    unparsed_bytes: u64,
    hide_usage_chunk: bool,
    completed: bool,
    upstream_error: bool,
}

/// Rough bytes per token for stream bytes that could not be parsed (an oversized record): the
/// generated text is in there somewhere, plus JSON framing, so this errs high.
const UNPARSED_BYTES_PER_TOKEN: u64 = 4;

impl StreamUsage {
    /// `hide_usage_chunk`: from `IncludeUsage::hide_usage_chunk` of the request rewrite.
    pub fn new(hide_usage_chunk: bool) -> Self {
        Self {
            hide_usage_chunk,
            ..Self::default()
        }
    }

    /// Takes in one SSE block and says whether the client gets it.
    pub fn observe_sse(&mut self, block: &SseBlock) -> EventVerdict {
        let Some(data) = block.data() else {
            return EventVerdict::Forward;
        };
        if block.is_done() {
            self.completed = true;
            return EventVerdict::Forward;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(chunk) if self.observe_json(&chunk) && self.hide_usage_chunk => EventVerdict::Drop,
            _ => EventVerdict::Forward,
        }
    }

    /// Takes in one NDJSON line (Ollama); such streams always carry their counts, so nothing is
    /// ever dropped.
    pub fn observe_ndjson(&mut self, line: &NdjsonLine) {
        if let Ok(object) = serde_json::from_slice::<Value>(line.json()) {
            self.observe_json(&object);
            if object.get("done").and_then(Value::as_bool) == Some(true) {
                self.completed = true;
            }
        }
    }

    /// Bytes passed through without parsing (after a parse error), counted as if they were
    /// all text.
    pub fn observe_unparsed(&mut self, bytes: usize) {
        self.unparsed_bytes = self.unparsed_bytes.saturating_add(bytes as u64);
    }

    /// Records usage, text and errors of a chunk; true when it is a usage-only chunk
    /// (`choices: []` with a `usage` object, as `include_usage` produces).
    fn observe_json(&mut self, chunk: &Value) -> bool {
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            self.upstream_error = true;
        }
        let usage = reported_usage(chunk);
        if usage.is_some() {
            self.reported = usage;
        }
        let mut has_text = false;
        let generated = &mut self.generated;
        for_each_generated_text(chunk, &mut |text| {
            generated.push(text);
            has_text = true;
        });
        self.text_chunks += u64::from(has_text);
        usage.is_some()
            && chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
    }

    /// The upstream ended the stream properly (`[DONE]`, or Ollama's `done: true`).
    pub fn completed(&self) -> bool {
        self.completed
    }

    /// The stream carried an error object (the upstream failed mid-stream).
    pub fn upstream_error(&self) -> bool {
        self.upstream_error
    }

    /// True once the upstream's own counts arrived.
    pub fn usage_reported(&self) -> bool {
        self.reported.is_some()
    }

    /// The counts so far: the upstream's, or where it reported nothing an estimate from the
    /// text received. Every chunk with text carries at least one token (servers stream whole
    /// tokens), so the completion estimate is never below the number of such chunks.
    pub fn usage(&self, prompt_estimate: u64) -> TokenUsage {
        let unparsed = self.unparsed_bytes.div_ceil(UNPARSED_BYTES_PER_TOKEN);
        let completion_estimate = self.generated.estimate().max(self.text_chunks) + unparsed;
        resolve(self.reported, prompt_estimate, completion_estimate)
    }
}
