//! Which fields of an answer (a whole body or one stream chunk) are generated text: message
//! content and parts, reasoning, refusals and tool-call arguments of every choice, completions'
//! `text`, Ollama's `message` and `response`/`thinking`.

use serde_json::Value;

use super::request::{walk, Ctx};
use crate::scope::FieldKind;

/// Calls `f` on every generated text of an answer, with its kind. Messages are read with the
/// request's rules (one home for which message fields are text), so ids and roles stay.
pub fn for_each_response_text(body: &mut Value, f: &mut dyn FnMut(FieldKind, &mut String)) {
    let Value::Object(obj) = body else {
        return;
    };
    if let Some(Value::Array(choices)) = obj.get_mut("choices") {
        for choice in choices {
            let Value::Object(c) = choice else { continue };
            for key in ["message", "delta"] {
                if let Some(m) = c.get_mut(key) {
                    walk(m, Ctx::Message, f);
                }
            }
            if let Some(Value::String(s)) = c.get_mut("text") {
                f(FieldKind::Messages, s);
            }
        }
    }
    if let Some(m) = obj.get_mut("message") {
        walk(m, Ctx::Message, f);
    }
    for key in ["response", "thinking"] {
        if let Some(Value::String(s)) = obj.get_mut(key) {
            f(FieldKind::Messages, s);
        }
    }
}
