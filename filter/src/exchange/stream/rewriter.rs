//! The text of a streamed answer, field by field: every generated text of every choice
//! (content, reasoning, refusal, tool-call argument deltas; completions' `text`; Ollama's
//! `message.content`/`thinking`, `response`) goes through its own bounded hold-back window, so a
//! placeholder or a value split across events comes out whole. Restored values inside tool-call
//! arguments are JSON-escaped (the arguments are JSON source text).

use std::collections::BTreeMap;

use modelgate_redact::{
    process_response_value, EntityType, FieldKind, Phase, PlaceholderMap, StreamRedactor,
    StreamRestorer,
};
use serde_json::{json, Map, Value};

use super::TextRewrite;
use crate::sse::SseBlock;

/// Per-field hold-back state and what was found.
#[derive(Debug)]
pub(super) struct Rewriter {
    pub(super) text: TextRewrite,
    /// Response redaction uses no placeholders, but the engine takes a map.
    scratch: PlaceholderMap,
    /// Open windows by choice index and field.
    slots: BTreeMap<(u64, TextPath), Slot>,
    pub(super) found: Vec<(EntityType, u32)>,
    /// The last data event and its JSON, the shape for events the rewriter adds itself.
    pub(super) last_event: Option<(Option<SseBlock>, Value)>,
}

#[derive(Debug)]
struct Slot {
    redact: Option<StreamRedactor>,
    restore: StreamRestorer,
}

/// Where a piece of streamed text sits in its holder (an OpenAI choice, or an Ollama line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TextPath {
    /// `holder[parent][key]`, or `holder[key]` without a parent.
    Field {
        parent: Option<&'static str>,
        key: &'static str,
    },
    /// `holder.delta.tool_calls[i].function.arguments`, where the call's `index` is `i`.
    ToolArguments(u64),
}

/// Text fields of an OpenAI chat delta.
const DELTA_FIELDS: [&str; 4] = ["content", "reasoning_content", "reasoning", "refusal"];
/// Text fields of an Ollama chat or generate line.
const OLLAMA_FIELDS: [TextPath; 4] = [
    TextPath::field(Some("message"), "content"),
    TextPath::field(Some("message"), "thinking"),
    TextPath::field(None, "response"),
    TextPath::field(None, "thinking"),
];

impl Rewriter {
    pub(super) fn new(text: TextRewrite) -> Self {
        Self {
            text,
            scratch: PlaceholderMap::new(),
            slots: BTreeMap::new(),
            found: Vec::new(),
            last_event: None,
        }
    }

    /// Entity types removed so far, open windows included.
    pub(super) fn found(&self) -> Vec<(EntityType, u32)> {
        let mut found = self.found.clone();
        for slot in self.slots.values() {
            if let Some(redact) = &slot.redact {
                found.extend(redact.counts());
            }
        }
        found
    }

    /// Rewrites the text of every choice of an OpenAI chunk; true when anything changed.
    pub(super) fn rewrite_choices(&mut self, chunk: &mut Value) -> bool {
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
            let completions = !choice.contains_key("delta") && choice.contains_key("text");
            let mut paths = Vec::new();
            if completions {
                paths.push(TextPath::field(None, "text"));
            } else {
                paths.extend(DELTA_FIELDS.map(|key| TextPath::field(Some("delta"), key)));
                paths.extend(tool_call_indexes(choice).map(TextPath::ToolArguments));
            }
            for path in paths {
                changed |= self.rewrite_path(choice, index, path);
            }
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                changed |= self.close_choice(choice, index);
            }
        }
        changed
    }

    /// Rewrites an Ollama chat or generate line.
    pub(super) fn rewrite_ollama(&mut self, object: &mut Value) -> bool {
        let last = object.get("done").and_then(Value::as_bool) == Some(true);
        let Some(line) = object.as_object_mut() else {
            return false;
        };
        let mut changed = false;
        for path in OLLAMA_FIELDS {
            changed |= self.rewrite_path(line, 0, path);
        }
        changed |= self.rewrite_ollama_tool_calls(line);
        if last {
            changed |= self.close_choice(line, 0);
        }
        changed
    }

    /// Ollama sends each tool call whole (arguments as an object) in one line: no window.
    fn rewrite_ollama_tool_calls(&mut self, line: &mut Map<String, Value>) -> bool {
        let Some(message) = line.get_mut("message").and_then(Value::as_object_mut) else {
            return false;
        };
        let Some(calls) = message.remove("tool_calls") else {
            return false;
        };
        let mut holder = json!({"message": {"tool_calls": calls}});
        let mut masked = Vec::new();
        let changed = process_response_value(
            self.text.redactor(),
            &mut holder,
            self.text.map(),
            &mut masked,
        );
        self.found
            .extend(masked.into_iter().map(|e| (e.entity_type, 1)));
        if let Some(calls) = holder
            .get_mut("message")
            .and_then(|m| m.get_mut("tool_calls"))
            .map(Value::take)
        {
            message.insert("tool_calls".to_owned(), calls);
        }
        changed
    }

    /// Feeds the text at `path` (if the event has it) through its window.
    fn rewrite_path(
        &mut self,
        holder: &mut Map<String, Value>,
        index: u64,
        path: TextPath,
    ) -> bool {
        let Some(original) = path.text(holder) else {
            return false;
        };
        let original = original.to_owned();
        let text = &self.text;
        let slot = self
            .slots
            .entry((index, path))
            .or_insert_with(|| new_slot(text, path));
        let redacted = match (&mut slot.redact, self.text.redactor()) {
            (Some(redact), Some(redactor)) => redact.push(redactor, &original, &mut self.scratch),
            _ => original.clone(),
        };
        let text = slot.restore.push(&redacted, text.map());
        if text == original {
            return false;
        }
        path.set_text(holder, text);
        true
    }

    /// The choice's last event: what its windows still hold goes into this event.
    fn close_choice(&mut self, holder: &mut Map<String, Value>, index: u64) -> bool {
        let open: Vec<(u64, TextPath)> = self
            .slots
            .range((index, TextPath::MIN)..)
            .take_while(|((i, _), _)| *i == index)
            .map(|(key, _)| *key)
            .collect();
        let mut changed = false;
        for key in open {
            let Some(slot) = self.slots.remove(&key) else {
                continue;
            };
            let tail = self.close(slot);
            if tail.is_empty() {
                continue;
            }
            let mut text = key.1.text(holder).unwrap_or("").to_owned();
            text.push_str(&tail);
            key.1.set_text(holder, text);
            changed = true;
        }
        changed
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
        let mut out = slot.restore.push(&tail, self.text.map());
        out.push_str(&slot.restore.finish(self.text.map()));
        out
    }

    /// Sends what every open window still holds, in events of their own shaped like the
    /// last one seen.
    pub(super) fn flush_all(&mut self, out: &mut Vec<u8>) {
        let slots = std::mem::take(&mut self.slots);
        for ((index, path), slot) in slots {
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
            match block {
                Some(block) => {
                    let mut choice = Map::new();
                    choice.insert("index".to_owned(), json!(index));
                    path.set_text(&mut choice, text);
                    choice.insert("finish_reason".to_owned(), Value::Null);
                    object.insert(
                        "choices".to_owned(),
                        Value::Array(vec![Value::Object(choice)]),
                    );
                    out.extend_from_slice(&block.with_data(&event.to_string()));
                }
                None => {
                    // Only this window's text: the template's own text fields are emptied.
                    for other in OLLAMA_FIELDS {
                        if other.text(object).is_some() {
                            other.set_text(object, String::new());
                        }
                    }
                    if let Some(message) = object.get_mut("message").and_then(Value::as_object_mut)
                    {
                        message.remove("tool_calls");
                    }
                    path.set_text(object, text);
                    object.insert("done".to_owned(), Value::Bool(false));
                    out.extend_from_slice(event.to_string().as_bytes());
                    out.push(b'\n');
                }
            }
        }
    }
}

/// A window for the text at `path`: redacted when the policy masks answers in that kind of
/// text, always restored.
fn new_slot(text: &TextRewrite, path: TextPath) -> Slot {
    Slot {
        redact: text
            .redactor()
            .is_some_and(|r| r.scope().covers(path.kind()))
            .then(|| StreamRedactor::new(Phase::Response)),
        restore: match path {
            TextPath::ToolArguments(_) => StreamRestorer::in_json(),
            TextPath::Field { .. } => StreamRestorer::new(),
        },
    }
}

/// The `index` of every tool call in a chat delta that carries argument text.
fn tool_call_indexes(choice: &Map<String, Value>) -> impl Iterator<Item = u64> + '_ {
    choice
        .get("delta")
        .and_then(|d| d.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, call)| {
            call.pointer("/function/arguments")
                .is_some_and(Value::is_string)
        })
        .map(|(position, call)| {
            call.get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64)
        })
}

impl TextPath {
    /// The smallest path, for ranges over one choice's slots.
    const MIN: TextPath = TextPath::Field {
        parent: None,
        key: "",
    };

    const fn field(parent: Option<&'static str>, key: &'static str) -> Self {
        TextPath::Field { parent, key }
    }

    /// Which scope kind covers this text.
    fn kind(self) -> FieldKind {
        match self {
            TextPath::Field { .. } => FieldKind::Messages,
            TextPath::ToolArguments(_) => FieldKind::ToolCalls,
        }
    }

    fn text(self, holder: &Map<String, Value>) -> Option<&str> {
        match self {
            TextPath::Field { parent: None, key } => holder.get(key)?.as_str(),
            TextPath::Field {
                parent: Some(parent),
                key,
            } => holder.get(parent)?.get(key)?.as_str(),
            TextPath::ToolArguments(i) => tool_call(holder, i)?
                .pointer("/function/arguments")?
                .as_str(),
        }
    }

    fn set_text(self, holder: &mut Map<String, Value>, text: String) {
        match self {
            TextPath::Field { parent: None, key } => {
                holder.insert(key.to_owned(), Value::String(text));
            }
            TextPath::Field {
                parent: Some(parent),
                key,
            } => {
                if let Some(parent) = object_at(holder, parent) {
                    parent.insert(key.to_owned(), Value::String(text));
                }
            }
            TextPath::ToolArguments(i) => {
                let Some(delta) = object_at(holder, "delta") else {
                    return;
                };
                let calls = delta
                    .entry("tool_calls")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !calls.is_array() {
                    *calls = Value::Array(Vec::new());
                }
                let Some(calls) = calls.as_array_mut() else {
                    return;
                };
                let at = calls
                    .iter()
                    .position(|c| c.get("index").and_then(Value::as_u64) == Some(i));
                let call = match at {
                    Some(at) => &mut calls[at],
                    None => {
                        calls.push(json!({"index": i}));
                        let last = calls.len() - 1;
                        &mut calls[last]
                    }
                };
                let Some(call) = call.as_object_mut() else {
                    return;
                };
                if let Some(function) = object_at(call, "function") {
                    function.insert("arguments".to_owned(), Value::String(text));
                }
            }
        }
    }
}

/// The tool call with `index` `i` in a chat delta.
fn tool_call(holder: &Map<String, Value>, i: u64) -> Option<&Value> {
    let calls = holder.get("delta")?.get("tool_calls")?.as_array()?;
    calls.iter().enumerate().find_map(|(position, call)| {
        let index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        (index == i).then_some(call)
    })
}

/// `holder[key]` as an object, made one if it is missing or not an object.
fn object_at<'a>(
    holder: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let value = holder
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut()
}
