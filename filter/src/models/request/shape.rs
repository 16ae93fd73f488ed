//! The request shape the filter relies on for its own work (stream handling, limit
//! reservation, redaction of every message), checked before anything goes upstream so a
//! malformed request gets a 400 naming its field instead of the upstream's own answer.

use serde_json::{Map, Value};

use super::{BodyError, ModelRequest};
use crate::endpoint::Endpoint;

/// Completion limits every API spells as a non-negative integer.
const LIMIT_FIELDS: [&str; 2] = ["max_tokens", "max_completion_tokens"];

impl ModelRequest {
    /// Checks the fields of `endpoint`'s body that the filter reads. Absent and `null`
    /// optional fields are fine: the APIs treat them as unset.
    pub fn check_shape(&self, endpoint: Endpoint) -> Result<(), BodyError> {
        let Some(body) = self.value.as_object() else {
            return Err(BodyError::NotObject);
        };
        if present(body, "stream").is_some_and(|stream| !stream.is_boolean()) {
            return Err(BodyError::StreamNotBoolean);
        }
        for field in LIMIT_FIELDS {
            check_limit(body, field)?;
        }
        match endpoint {
            // Ollama loads a model when asked to chat with no messages: empty is allowed there.
            Endpoint::ChatCompletions => check_messages(body, false),
            Endpoint::OllamaChat => check_messages(body, true),
            Endpoint::Embeddings | Endpoint::OllamaEmbed => check_input(body),
            _ => Ok(()),
        }
    }
}

/// The field's value, unless it is absent or `null`.
fn present<'a>(body: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    body.get(field).filter(|value| !value.is_null())
}

fn check_limit(body: &Map<String, Value>, field: &'static str) -> Result<(), BodyError> {
    let Some(limit) = present(body, field) else {
        return Ok(());
    };
    match limit {
        Value::Number(n) if n.is_u64() => Ok(()),
        Value::Number(n) if n.is_i64() => Err(BodyError::LimitNegative(field)),
        _ => Err(BodyError::LimitNotInteger(field)),
    }
}

fn check_messages(body: &Map<String, Value>, empty_allowed: bool) -> Result<(), BodyError> {
    let Some(messages) = present(body, "messages") else {
        return Ok(());
    };
    let messages = messages.as_array().ok_or(BodyError::MessagesNotList)?;
    if messages.is_empty() && !empty_allowed {
        return Err(BodyError::MessagesEmpty);
    }
    for (index, message) in messages.iter().enumerate() {
        let message = message
            .as_object()
            .ok_or(BodyError::MessageNotObject(index))?;
        let content_ok = match message.get("content") {
            None | Some(Value::String(_)) => true,
            Some(Value::Array(parts)) => parts.iter().all(Value::is_object),
            // An assistant message that only calls tools has no text.
            Some(Value::Null) => message.get("role").and_then(Value::as_str) == Some("assistant"),
            Some(_) => false,
        };
        if !content_ok {
            return Err(BodyError::ContentInvalid(index));
        }
    }
    Ok(())
}

fn check_input(body: &Map<String, Value>) -> Result<(), BodyError> {
    let Some(input) = present(body, "input") else {
        return Ok(());
    };
    let token_ids = |value: &Value| {
        value
            .as_array()
            .is_some_and(|ids| ids.iter().all(Value::is_u64))
    };
    let valid = match input {
        Value::String(_) => true,
        Value::Array(items) => {
            items.iter().all(Value::is_string)
                || items.iter().all(Value::is_u64)
                || items.iter().all(token_ids)
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(BodyError::InputInvalid)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(endpoint: Endpoint, body: Value) -> Result<(), BodyError> {
        ModelRequest::parse(body.to_string().as_bytes())
            .unwrap()
            .check_shape(endpoint)
    }

    fn chat(extra: Value) -> Value {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (field, value) in extra.as_object().unwrap() {
            body[field] = value.clone();
        }
        body
    }

    #[test]
    fn well_formed_requests_pass() {
        let cases = [
            (Endpoint::ChatCompletions, chat(json!({}))),
            (
                Endpoint::ChatCompletions,
                chat(
                    json!({"stream": true, "max_tokens": 0, "max_completion_tokens": null,
                            "stream_options": {"include_usage": true}}),
                ),
            ),
            (
                Endpoint::ChatCompletions,
                chat(json!({"stream": null, "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": null,
                     "tool_calls": [{"id": "c", "type": "function",
                                     "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c", "content": "42"},
                ]})),
            ),
            (Endpoint::OllamaChat, json!({"model": "m", "messages": []})),
            (
                Endpoint::Completions,
                json!({"model": "m", "prompt": ["a", "b"]}),
            ),
            (Endpoint::Embeddings, json!({"model": "m", "input": "text"})),
            (
                Endpoint::Embeddings,
                json!({"model": "m", "input": ["a", "b"]}),
            ),
            (
                Endpoint::Embeddings,
                json!({"model": "m", "input": [1, 2, 3]}),
            ),
            (
                Endpoint::Embeddings,
                json!({"model": "m", "input": [[1, 2], [3]]}),
            ),
            (Endpoint::OllamaEmbed, json!({"model": "m", "input": ["a"]})),
        ];
        for (endpoint, body) in cases {
            assert_eq!(check(endpoint, body.clone()), Ok(()), "{endpoint:?} {body}");
        }
    }

    #[test]
    fn malformed_requests_name_their_field() {
        let cases = [
            (chat(json!({"stream": "yes"})), "stream", "invalid_type"),
            (chat(json!({"messages": []})), "messages", "invalid_value"),
            (chat(json!({"messages": "hi"})), "messages", "invalid_type"),
            (
                chat(json!({"messages": [{"role": "user", "content": "a"}, "hi"]})),
                "messages[1]",
                "invalid_type",
            ),
            (
                chat(json!({"messages": [{"role": "user", "content": 42}]})),
                "messages[0].content",
                "invalid_type",
            ),
            (
                chat(json!({"messages": [{"role": "user", "content": null}]})),
                "messages[0].content",
                "invalid_type",
            ),
            (
                chat(json!({"messages": [{"role": "user", "content": ["hi"]}]})),
                "messages[0].content",
                "invalid_type",
            ),
            (
                chat(json!({"max_tokens": -1})),
                "max_tokens",
                "invalid_value",
            ),
            (
                chat(json!({"max_tokens": "16"})),
                "max_tokens",
                "invalid_type",
            ),
            (
                chat(json!({"max_completion_tokens": 1.5})),
                "max_completion_tokens",
                "invalid_type",
            ),
        ];
        for (body, param, code) in cases {
            let err = check(Endpoint::ChatCompletions, body.clone()).unwrap_err();
            assert_eq!(err.param().as_deref(), Some(param), "{body}");
            assert_eq!(err.code(), code, "{body}");
        }
        for input in [
            json!({"x": 1}),
            json!(5),
            json!([1, "a"]),
            json!([[1], ["a"]]),
        ] {
            let body = json!({"model": "m", "input": input});
            for endpoint in [Endpoint::Embeddings, Endpoint::OllamaEmbed] {
                let err = check(endpoint, body.clone()).unwrap_err();
                assert_eq!(err, BodyError::InputInvalid, "{body}");
                assert_eq!(err.param().as_deref(), Some("input"));
            }
        }
    }

    #[test]
    fn fields_of_other_apis_are_left_alone() {
        // `input` of the Responses-style and `messages` of a completion are not this
        // endpoint's fields: the upstream judges them.
        assert_eq!(
            check(
                Endpoint::Completions,
                json!({"model": "m", "input": {"x": 1}, "messages": "hi"})
            ),
            Ok(())
        );
        assert_eq!(
            check(Endpoint::OllamaGenerate, json!({"model": "m", "input": 5})),
            Ok(())
        );
    }
}
