//! Redaction of JSON request and response bodies: only content fields change, everything else
//! (other fields, key order, non-text parts) is kept as it was.

use serde_json::Value;
use thiserror::Error;

use crate::entity::{Entity, EntityType};
use crate::placeholder::PlaceholderMap;
use crate::policy::Phase;
use crate::redactor::{count_types, verdict, Redactor, Verdict};

#[derive(Debug, Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("body is not a JSON object")]
    NotObject,
}

/// The result for a whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyRedaction {
    /// The rewritten body, or `None` when nothing changed (send the original bytes).
    pub body: Option<Vec<u8>>,
    /// Entities per content field, in field order; offsets are characters into that field.
    pub entities: Vec<Entity>,
    pub verdict: Verdict,
}

impl BodyRedaction {
    pub fn counts(&self) -> Vec<(EntityType, u32)> {
        count_types(&self.entities)
    }
}

/// Calls `f` on every content string of a request body: OpenAI `messages[].content` (a string
/// or `text` parts), `prompt` (string or array), `input` (string, array of strings, or
/// message objects), Ollama `messages`/`prompt`/`system`.
pub fn for_each_request_text(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(obj) = body else {
        return;
    };
    if let Some(Value::Array(messages)) = obj.get_mut("messages") {
        messages.iter_mut().for_each(|m| message_content(m, f));
    }
    for key in ["prompt", "input", "system", "instructions"] {
        match obj.get_mut(key) {
            Some(Value::String(s)) => f(s),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => f(s),
                        Value::Object(_) => message_content(item, f),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// Calls `f` on every content string of a response body or stream chunk: OpenAI
/// `choices[].message.content`, `choices[].delta.content`, `choices[].text`, Ollama
/// `message.content` and `response`.
pub fn for_each_response_text(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(obj) = body else {
        return;
    };
    if let Some(Value::Array(choices)) = obj.get_mut("choices") {
        for choice in choices {
            let Value::Object(c) = choice else { continue };
            for key in ["message", "delta"] {
                if let Some(m) = c.get_mut(key) {
                    message_content(m, f);
                }
            }
            if let Some(Value::String(s)) = c.get_mut("text") {
                f(s);
            }
        }
    }
    if let Some(m) = obj.get_mut("message") {
        message_content(m, f);
    }
    if let Some(Value::String(s)) = obj.get_mut("response") {
        f(s);
    }
}

fn message_content(message: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(m) = message else { return };
    match m.get_mut("content") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(parts)) => {
            for part in parts {
                match part {
                    Value::String(s) => f(s),
                    Value::Object(p) => {
                        let is_text = matches!(
                            p.get("type").and_then(Value::as_str),
                            Some("text" | "input_text" | "output_text") | None
                        );
                        if is_text {
                            if let Some(Value::String(s)) = p.get_mut("text") {
                                f(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Redacts a request body's content fields (pre-call).
pub fn redact_request_body(
    redactor: &Redactor,
    body: &[u8],
    map: &mut PlaceholderMap,
) -> Result<BodyRedaction, BodyError> {
    rewrite(
        body,
        &mut |value, f| for_each_request_text(value, f),
        &mut |s: &str, entities, blocked| {
            let r = redactor.redact(s, Phase::Request, map);
            entities.extend(r.entities);
            if let Verdict::Block { entity_types } = r.verdict {
                blocked.extend(entity_types);
            }
            r.text
        },
    )
}

/// Processes a non-streamed answer (post-call): removes values the policy covers in responses,
/// then puts reversible placeholders back.
pub fn process_response_body(
    redactor: &Redactor,
    body: &[u8],
    map: &PlaceholderMap,
) -> Result<BodyRedaction, BodyError> {
    let mut scratch = PlaceholderMap::new();
    rewrite(
        body,
        &mut |value, f| for_each_response_text(value, f),
        &mut |s: &str, entities, _| {
            let r = redactor.redact(s, Phase::Response, &mut scratch);
            entities.extend(r.entities);
            map.restore(&r.text).into_owned()
        },
    )
}

type Visit<'a> = dyn FnMut(&mut Value, &mut dyn FnMut(&mut String)) + 'a;
type Transform<'a> = dyn FnMut(&str, &mut Vec<Entity>, &mut Vec<EntityType>) -> String + 'a;

fn rewrite(
    body: &[u8],
    visit: &mut Visit<'_>,
    transform: &mut Transform<'_>,
) -> Result<BodyRedaction, BodyError> {
    let mut value: Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Err(BodyError::NotObject);
    }
    let mut entities = Vec::new();
    let mut blocked = Vec::new();
    let mut changed = false;
    visit(&mut value, &mut |s: &mut String| {
        let new = transform(s, &mut entities, &mut blocked);
        if new != *s {
            *s = new;
            changed = true;
        }
    });
    let body = if changed {
        Some(serde_json::to_vec(&value)?)
    } else {
        None
    };
    Ok(BodyRedaction {
        body,
        entities,
        verdict: verdict(blocked),
    })
}
