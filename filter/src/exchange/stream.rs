//! A streamed answer on its way to the client, event by event: counted (the upstream's usage
//! or an estimate), the usage chunk the gateway asked for hidden, and, when the team's policy
//! calls for it, placeholders restored and PII removed from the generated text.
//!
//! Bytes pass through as they arrive. An event is rewritten only when its text changes; each
//! text field of each choice (content, reasoning, refusal, tool-call arguments) goes through a
//! bounded hold-back window ([`rewriter`]), so a placeholder or a value split across events or
//! TCP chunks is still handled, and the held text comes out with the choice's last event (the one with
//! `finish_reason`, Ollama's `done`), before the usage chunk or `[DONE]`, or in an event of
//! its own when the stream ends without those.

mod rewriter;

use std::rc::Rc;

use modelgate_redact::{EntityType, PlaceholderMap, Redactor};
use serde_json::{json, Value};

use crate::sse::{NdjsonLine, NdjsonParser, SseBlock, SseParser};
use crate::usage::{EventVerdict, StreamFormat, StreamUsage};
use rewriter::Rewriter;

/// What the answer's text goes through.
#[derive(Debug)]
pub struct TextRewrite {
    /// The team's policy for answers (response direction), if it has one.
    redactor: Option<Rc<Redactor>>,
    /// The request's reversible values, put back into the answer.
    map: PlaceholderMap,
}

impl TextRewrite {
    /// `None` when there is nothing to do: the stream then passes through untouched.
    pub fn new(redactor: Option<Rc<Redactor>>, map: PlaceholderMap) -> Option<Self> {
        (redactor.is_some() || !map.is_empty()).then_some(Self { redactor, map })
    }

    pub fn redacts(&self) -> bool {
        self.redactor.is_some()
    }

    pub fn redactor(&self) -> Option<&Redactor> {
        self.redactor.as_deref()
    }

    pub fn map(&self) -> &PlaceholderMap {
        &self.map
    }
}

#[derive(Debug)]
pub struct ResponseStream {
    framing: Framing,
    usage: StreamUsage,
    rewrite: Option<Rewriter>,
    state: State,
}

#[derive(Debug)]
enum Framing {
    Sse(SseParser),
    Ndjson(NdjsonParser),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Parsing,
    /// A record outgrew the parser's bound: the rest passes through unparsed.
    Raw,
    /// Same, but the text had to be checked for PII: the rest is withheld (fail closed).
    Withheld,
}

impl ResponseStream {
    pub fn new(
        format: StreamFormat,
        hide_usage_chunk: bool,
        rewrite: Option<TextRewrite>,
        max_record_bytes: usize,
    ) -> Self {
        let framing = match format {
            StreamFormat::Sse => Framing::Sse(SseParser::new(max_record_bytes)),
            StreamFormat::Ndjson => Framing::Ndjson(NdjsonParser::new(max_record_bytes)),
        };
        Self {
            framing,
            usage: StreamUsage::new(hide_usage_chunk),
            rewrite: rewrite.map(Rewriter::new),
            state: State::Parsing,
        }
    }

    /// One body chunk in; the bytes to send to the client now out.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        match self.state {
            State::Parsing => {}
            State::Raw => {
                self.usage.observe_unparsed(chunk.len());
                return chunk.to_vec();
            }
            State::Withheld => {
                self.usage.observe_unparsed(chunk.len());
                return Vec::new();
            }
        }
        match &mut self.framing {
            Framing::Sse(parser) => parser.push(chunk),
            Framing::Ndjson(parser) => parser.push(chunk),
        }
        let mut out = Vec::with_capacity(chunk.len());
        self.drain(&mut out);
        out
    }

    /// The end of the upstream body: what is still held back, counted and sent.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.state != State::Parsing {
            return out;
        }
        match &mut self.framing {
            Framing::Sse(parser) => parser.finish(),
            Framing::Ndjson(parser) => parser.finish(),
        }
        self.drain(&mut out);
        if let Some(rewriter) = &mut self.rewrite {
            rewriter.flush_all(&mut out);
        }
        out
    }

    pub fn usage(&self) -> &StreamUsage {
        &self.usage
    }

    /// Entity types removed from the answer so far, with counts.
    pub fn found(&self) -> Vec<(EntityType, u32)> {
        self.rewrite
            .as_ref()
            .map(Rewriter::found)
            .unwrap_or_default()
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        loop {
            let held = match &mut self.framing {
                Framing::Sse(parser) => match parser.next_block() {
                    Ok(Some(block)) => {
                        self.on_event(block, out);
                        continue;
                    }
                    Ok(None) => return,
                    Err(_) => parser.take_buffered(),
                },
                Framing::Ndjson(parser) => match parser.next_line() {
                    Ok(Some(line)) => {
                        self.on_line(&line, out);
                        continue;
                    }
                    Ok(None) => return,
                    Err(_) => parser.take_buffered(),
                },
            };
            self.on_unparsable(held, out);
            return;
        }
    }

    fn on_event(&mut self, block: SseBlock, out: &mut Vec<u8>) {
        let verdict = self.usage.observe_sse(&block);
        let Some(rewriter) = &mut self.rewrite else {
            if verdict == EventVerdict::Forward {
                out.extend_from_slice(block.raw());
            }
            return;
        };
        if block.is_done() {
            rewriter.flush_all(out);
            out.extend_from_slice(block.raw());
            return;
        }
        // Comments and keep-alives may come between any two events, even in the middle of a
        // split value: they pass without touching the windows.
        let chunk = block
            .data()
            .and_then(|data| serde_json::from_str::<Value>(data).ok());
        let Some(mut chunk) = chunk else {
            out.extend_from_slice(block.raw());
            return;
        };
        let has_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if verdict == EventVerdict::Drop || !has_choices {
            // The usage chunk (shown or not), an error object: after everything generated.
            rewriter.flush_all(out);
            if verdict == EventVerdict::Forward {
                out.extend_from_slice(block.raw());
            }
            return;
        }
        if rewriter.rewrite_choices(&mut chunk) {
            out.extend_from_slice(&block.with_data(&chunk.to_string()));
        } else {
            out.extend_from_slice(block.raw());
        }
        rewriter.last_event = Some((Some(block), chunk));
    }

    fn on_line(&mut self, line: &NdjsonLine, out: &mut Vec<u8>) {
        self.usage.observe_ndjson(line);
        let Some(rewriter) = &mut self.rewrite else {
            out.extend_from_slice(line.raw());
            return;
        };
        let object = (!line.is_blank())
            .then(|| serde_json::from_slice::<Value>(line.json()).ok())
            .flatten()
            .filter(Value::is_object);
        let Some(mut object) = object else {
            out.extend_from_slice(line.raw());
            return;
        };
        if rewriter.rewrite_ollama(&mut object) {
            out.extend_from_slice(object.to_string().as_bytes());
            if line.raw().ends_with(b"\n") {
                out.push(b'\n');
            }
        } else {
            out.extend_from_slice(line.raw());
        }
        rewriter.last_event = Some((None, object));
    }

    /// A record outgrew the parser's bound (no LLM server sends such records). Counting goes
    /// on by bytes; text that must be checked for PII cannot be, so the client gets an error
    /// in place of the rest.
    fn on_unparsable(&mut self, held: Vec<u8>, out: &mut Vec<u8>) {
        self.usage.observe_unparsed(held.len());
        match &mut self.rewrite {
            Some(rewriter) if rewriter.text.redacts() => {
                log::warn!("response stream record too large to check for PII; rest withheld");
                out.extend_from_slice(&withheld_notice(&self.framing));
                self.state = State::Withheld;
            }
            rewriter => {
                if let Some(rewriter) = rewriter {
                    rewriter.flush_all(out);
                }
                out.extend_from_slice(&held);
                self.state = State::Raw;
            }
        }
    }
}

/// The error a client gets in place of a stream the filter could not check.
fn withheld_notice(framing: &Framing) -> Vec<u8> {
    let message = "The rest of this answer was withheld: it could not be checked against the team's redaction policy.";
    match framing {
        Framing::Sse(_) => format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "server_error", "code": "response_unprocessable"}})
        )
        .into_bytes(),
        Framing::Ndjson(_) => format!("{}\n", json!({"error": message})).into_bytes(),
    }
}
