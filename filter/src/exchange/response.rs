//! Non-streamed answers: usage read from a bounded copy while the body passes, answers
//! rewritten whole (placeholders restored, PII removed), upstream errors put in OpenAI shape.

use modelgate_redact::{
    process_response_body, process_response_value, EntityType, Phase, PlaceholderMap,
};
use serde_json::{json, Value};

use super::stream::TextRewrite;
use crate::usage::{usage_from_response, TokenUsage};

/// Bytes of a passing body kept whole to read its usage; past this only its head and tail are
/// kept, where servers put `usage` (before or after an embeddings `data` array).
const WHOLE_BYTES: usize = 1 << 20;
const EDGE_BYTES: usize = 64 * 1024;

/// A copy of a body that passes through unchanged, enough to read its usage.
#[derive(Debug, Default)]
pub(super) struct UsageScan {
    whole: Vec<u8>,
    /// Set once the body outgrew `WHOLE_BYTES`: its first and (rolling) last bytes.
    edges: Option<(Vec<u8>, Vec<u8>)>,
}

impl UsageScan {
    pub(super) fn push(&mut self, chunk: &[u8]) {
        if let Some((_, tail)) = &mut self.edges {
            tail.extend_from_slice(chunk);
            if tail.len() > 2 * EDGE_BYTES {
                tail.drain(..tail.len() - EDGE_BYTES);
            }
            return;
        }
        if self.whole.len() + chunk.len() <= WHOLE_BYTES {
            self.whole.extend_from_slice(chunk);
            return;
        }
        let mut whole = std::mem::take(&mut self.whole);
        whole.extend_from_slice(chunk);
        let head = whole[..EDGE_BYTES].to_vec();
        whole.drain(..whole.len() - EDGE_BYTES);
        self.edges = Some((head, whole));
    }

    /// The body's usage; missing counts estimated (`prompt_estimate` for the prompt).
    pub(super) fn usage(&self, prompt_estimate: u64) -> TokenUsage {
        let Some((head, tail)) = &self.edges else {
            return usage_or_estimate(&self.whole, prompt_estimate);
        };
        let mut found = serde_json::Map::new();
        for key in ["usage", "prompt_eval_count", "eval_count"] {
            if let Some(value) = [head, tail]
                .iter()
                .find_map(|part| value_after_key(part, key))
            {
                found.insert(key.to_owned(), value);
            }
        }
        let synthetic = Value::Object(found).to_string();
        usage_or_estimate(synthetic.as_bytes(), prompt_estimate)
    }
}

/// The usage of a whole answer body; a body that is not JSON has only the prompt estimate.
pub(super) fn usage_or_estimate(body: &[u8], prompt_estimate: u64) -> TokenUsage {
    usage_from_response(body, prompt_estimate).unwrap_or(TokenUsage {
        prompt_tokens: prompt_estimate,
        completion_tokens: 0,
        estimated: prompt_estimate > 0,
    })
}

/// The JSON value after the first `"key":` in a fragment of a JSON document.
fn value_after_key(fragment: &[u8], key: &str) -> Option<Value> {
    let needle = format!("\"{key}\"");
    let at = fragment
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let rest = fragment[at + needle.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?;
    serde_json::Deserializer::from_slice(rest)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// A rewritten answer body and the entity types removed from it.
#[derive(Debug, Default)]
pub(super) struct AnswerRewrite {
    pub(super) body: Option<Vec<u8>>,
    pub(super) found: Vec<EntityType>,
}

/// Removes the PII the team's policy covers in answers, then restores the request's
/// placeholders. A body that is not JSON is treated as plain text.
pub(super) fn rewrite_answer(text: &TextRewrite, body: &[u8]) -> AnswerRewrite {
    let map = text.map();
    let Some(redactor) = text.redactor() else {
        return restore_only(map, body);
    };
    match process_response_body(redactor, body, map) {
        Ok(rewritten) => AnswerRewrite {
            body: rewritten.body,
            found: rewritten
                .entities
                .into_iter()
                .map(|e| e.entity_type)
                .collect(),
        },
        Err(_) => {
            let original = String::from_utf8_lossy(body);
            let redaction = redactor.redact(&original, Phase::Response, &mut PlaceholderMap::new());
            let restored = map.restore(&redaction.text).into_owned();
            AnswerRewrite {
                body: (restored.as_bytes() != body).then(|| restored.into_bytes()),
                found: redaction
                    .entities
                    .into_iter()
                    .map(|e| e.entity_type)
                    .collect(),
            }
        }
    }
}

/// Placeholders restored in every generated text field (or the whole text when not JSON).
/// Tool-call arguments are restored as parsed JSON, so a restored value is escaped as needed.
fn restore_only(map: &PlaceholderMap, body: &[u8]) -> AnswerRewrite {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let restored = map.restore(&text);
        return AnswerRewrite {
            body: (restored.as_bytes() != body).then(|| restored.into_owned().into_bytes()),
            found: Vec::new(),
        };
    };
    let changed = process_response_value(None, &mut value, map, &mut Vec::new());
    AnswerRewrite {
        body: changed.then(|| value.to_string().into_bytes()),
        found: Vec::new(),
    }
}

/// An upstream error body in OpenAI's shape (`{"error":{"message","type","param","code"}}`):
/// `None` when it already is; otherwise the upstream's message (Ollama's `{"error":"…"}`,
/// FastAPI's `detail`, or the text itself) wrapped.
pub(super) fn openai_error(status: u32, body: &[u8]) -> Option<Vec<u8>> {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")) {
        if error.get("message").is_some_and(Value::is_string) {
            return None;
        }
    }
    let from_json = parsed.as_ref().and_then(|v| {
        ["error", "detail", "message"]
            .iter()
            .find_map(|key| v.get(*key)?.as_str().map(str::to_owned))
    });
    let detail = from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(MAX_DETAIL_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        }
    });
    let message = if detail.is_empty() {
        format!("The upstream model server answered HTTP {status}.")
    } else {
        format!("The upstream model server answered HTTP {status}: {detail}")
    };
    let kind = if status < 500 {
        "invalid_request_error"
    } else {
        "server_error"
    };
    Some(
        json!({"error": {"message": message, "type": kind, "param": null, "code": "upstream_error"}})
            .to_string()
            .into_bytes(),
    )
}

/// How much of a non-JSON upstream error text the client gets.
const MAX_DETAIL_CHARS: usize = 300;
