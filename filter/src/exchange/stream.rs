//! A streamed answer on its way to the client, event by event: counted (the upstream's usage
//! or an estimate), the usage chunk the gateway asked for hidden, and, when the team's policy
//! calls for it, placeholders restored and PII removed from the generated text.
//!
//! Bytes pass through as they arrive. An event is rewritten only when its text changes; the
//! text of each choice goes through a bounded hold-back window (`StreamRedactor`,
//! `StreamRestorer`), so a placeholder or a value split across events or TCP chunks is still
//! handled, and the held text comes out with the choice's last event (the one with
//! `finish_reason`, Ollama's `done`), before the usage chunk or `[DONE]`, or in an event of
//! its own when the stream ends without those.

use std::collections::BTreeMap;
use std::rc::Rc;

use modelgate_redact::{
    EntityType, Phase, PlaceholderMap, Redactor, StreamRedactor, StreamRestorer,
};
use serde_json::{json, Map, Value};

use crate::sse::{NdjsonLine, NdjsonParser, SseBlock, SseParser};
use crate::usage::{EventVerdict, StreamFormat, StreamUsage};

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

/// Per-choice hold-back state and what was found.
#[derive(Debug)]
struct Rewriter {
    text: TextRewrite,
    /// Response redaction uses no placeholders, but the engine takes a map.
    scratch: PlaceholderMap,
    slots: BTreeMap<u64, Slot>,
    found: Vec<(EntityType, u32)>,
    /// The last data event and its JSON, the shape for events the rewriter adds itself.
    last_event: Option<(Option<SseBlock>, Value)>,
}

#[derive(Debug)]
struct Slot {
    site: Site,
    redact: Option<StreamRedactor>,
    restore: StreamRestorer,
}

/// Where a choice's text sits in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// OpenAI chat: `choices[].delta.content`.
    Delta,
    /// OpenAI completions: `choices[].text`.
    Text,
    /// Ollama chat: `message.content`.
    Message,
    /// Ollama generate: `response`.
    Response,
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
            rewrite: rewrite.map(|text| Rewriter {
                text,
                scratch: PlaceholderMap::new(),
                slots: BTreeMap::new(),
                found: Vec::new(),
                last_event: None,
            }),
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
        let Some(rewriter) = &self.rewrite else {
            return Vec::new();
        };
        let mut found = rewriter.found.clone();
        for slot in rewriter.slots.values() {
            if let Some(redact) = &slot.redact {
                found.extend(redact.counts());
            }
        }
        found
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

impl Rewriter {
    /// Rewrites the text of every choice of an OpenAI chunk; true when anything changed.
    fn rewrite_choices(&mut self, chunk: &mut Value) -> bool {
        let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
            return false;
        };
        let mut changed = false;
        for (position, choice) in choices.iter_mut().enumerate() {
            let Some(choice) = choice.as_object_mut() else {
                continue;
            };
            let index = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let site = if choice.contains_key("delta") || !choice.contains_key("text") {
                Site::Delta
            } else {
                Site::Text
            };
            let last = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            changed |= self.rewrite_site(choice, index, site, last);
        }
        changed
    }

    /// Rewrites an Ollama chat or generate line.
    fn rewrite_ollama(&mut self, object: &mut Value) -> bool {
        let last = object.get("done").and_then(Value::as_bool) == Some(true);
        let Some(object) = object.as_object_mut() else {
            return false;
        };
        let site = if object.contains_key("message") {
            Site::Message
        } else if object.contains_key("response") {
            Site::Response
        } else {
            return false;
        };
        self.rewrite_site(object, 0, site, last)
    }

    fn rewrite_site(
        &mut self,
        holder: &mut Map<String, Value>,
        index: u64,
        site: Site,
        last: bool,
    ) -> bool {
        let original = site.text(holder).map(str::to_owned);
        let text = self.pass(index, site, original.as_deref().unwrap_or(""), last);
        let unchanged = match &original {
            Some(original) => *original == text,
            None => text.is_empty(),
        };
        if !unchanged {
            site.set_text(holder, text);
        }
        !unchanged
    }

    /// Feeds a choice's delta through its window; `last` empties the window.
    fn pass(&mut self, index: u64, site: Site, delta: &str, last: bool) -> String {
        let text = &self.text;
        let slot = self.slots.entry(index).or_insert_with(|| Slot {
            site,
            redact: text.redacts().then(|| StreamRedactor::new(Phase::Response)),
            restore: StreamRestorer::new(),
        });
        let redacted = match (&mut slot.redact, text.redactor()) {
            (Some(redact), Some(redactor)) => redact.push(redactor, delta, &mut self.scratch),
            _ => delta.to_owned(),
        };
        let mut out = slot.restore.push(&redacted, &text.map);
        if last {
            if let Some(slot) = self.slots.remove(&index) {
                out.push_str(&self.close(slot));
            }
        }
        out
    }

    /// Empties a slot's window and keeps what its redactor found.
    fn close(&mut self, mut slot: Slot) -> String {
        let tail = match (&mut slot.redact, self.text.redactor()) {
            (Some(redact), Some(redactor)) => {
                let tail = redact.finish(redactor, &mut self.scratch);
                self.found.extend(redact.counts());
                tail
            }
            _ => String::new(),
        };
        let mut out = slot.restore.push(&tail, &self.text.map);
        out.push_str(&slot.restore.finish(&self.text.map));
        out
    }

    /// Sends what every open window still holds, in events of their own shaped like the
    /// last one seen.
    fn flush_all(&mut self, out: &mut Vec<u8>) {
        let slots = std::mem::take(&mut self.slots);
        for (index, slot) in slots {
            let site = slot.site;
            let text = self.close(slot);
            if text.is_empty() {
                continue;
            }
            let Some((block, template)) = &self.last_event else {
                continue;
            };
            let mut event = template.clone();
            let Some(object) = event.as_object_mut() else {
                continue;
            };
            object.remove("usage");
            match site {
                Site::Delta | Site::Text => {
                    let mut choice = Map::new();
                    choice.insert("index".to_owned(), json!(index));
                    site.set_text(&mut choice, text);
                    choice.insert("finish_reason".to_owned(), Value::Null);
                    object.insert(
                        "choices".to_owned(),
                        Value::Array(vec![Value::Object(choice)]),
                    );
                }
                Site::Message | Site::Response => {
                    site.set_text(object, text);
                    object.insert("done".to_owned(), Value::Bool(false));
                }
            }
            match block {
                Some(block) => out.extend_from_slice(&block.with_data(&event.to_string())),
                None => {
                    out.extend_from_slice(event.to_string().as_bytes());
                    out.push(b'\n');
                }
            }
        }
    }
}

impl Site {
    fn text(self, holder: &Map<String, Value>) -> Option<&str> {
        match self {
            Self::Delta => holder.get("delta")?.get("content")?.as_str(),
            Self::Message => holder.get("message")?.get("content")?.as_str(),
            Self::Text => holder.get("text")?.as_str(),
            Self::Response => holder.get("response")?.as_str(),
        }
    }

    fn set_text(self, holder: &mut Map<String, Value>, text: String) {
        let (parent, field) = match self {
            Self::Delta => ("delta", "content"),
            Self::Message => ("message", "content"),
            Self::Text => {
                holder.insert("text".to_owned(), Value::String(text));
                return;
            }
            Self::Response => {
                holder.insert("response".to_owned(), Value::String(text));
                return;
            }
        };
        let parent = holder
            .entry(parent)
            .or_insert_with(|| Value::Object(Map::new()));
        if !parent.is_object() {
            *parent = Value::Object(Map::new());
        }
        if let Some(parent) = parent.as_object_mut() {
            parent.insert(field.to_owned(), Value::String(text));
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
