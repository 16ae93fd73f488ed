//! The parts of a request body that admission needs: the requested model, the completion
//! limit the client set (capped by the route), an estimate of the prompt's tokens, and where the `model` value sits
//! so an alias can be replaced without re-serializing (and so reformatting) the rest.

mod cap;
mod shape;

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;

use crate::usage::estimate_prompt_tokens;

/// Why a body cannot be admitted; each maps to a 400. Shape errors follow OpenAI's codes:
/// `invalid_type` when a field has the wrong JSON type, `invalid_value` when its type is right
/// but its value is not allowed (an empty list, a negative count); `param` names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request has no body; it must be a JSON object with a \"model\"")]
    Missing,
    #[error("the request body is not valid JSON")]
    NotJson,
    #[error("the request body must be a JSON object")]
    NotObject,
    #[error("the request body names no \"model\"")]
    MissingModel,
    #[error("\"model\" must be a non-empty string")]
    InvalidModel,
    /// Servers disagree on which of two keys wins; refusing keeps the allowlist check and
    /// the upstream looking at the same name.
    #[error("the request body names \"model\" more than once")]
    DuplicateModel,
    #[error("\"stream\" must be a boolean")]
    StreamNotBoolean,
    #[error("\"messages\" must be a list of messages")]
    MessagesNotList,
    #[error("\"messages\" must not be empty")]
    MessagesEmpty,
    /// The index of the message.
    #[error("\"messages[{0}]\" must be an object with a \"role\"")]
    MessageNotObject(usize),
    /// The index of the message.
    #[error("\"messages[{0}].content\" must be a string or a list of content parts (null only for an assistant message)")]
    ContentInvalid(usize),
    /// The field (`max_tokens` or `max_completion_tokens`).
    #[error("\"{0}\" must be an integer")]
    LimitNotInteger(&'static str),
    /// The field (`max_tokens` or `max_completion_tokens`).
    #[error("\"{0}\" must not be negative")]
    LimitNegative(&'static str),
    #[error("\"input\" must be a string, a list of strings, a list of integers or a list of lists of integers")]
    InputInvalid,
}

impl BodyError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_body",
            Self::NotJson => "invalid_json",
            Self::NotObject => "invalid_body",
            Self::MissingModel => "missing_model",
            Self::InvalidModel => "invalid_model",
            Self::DuplicateModel => "duplicate_model",
            Self::StreamNotBoolean
            | Self::MessagesNotList
            | Self::MessageNotObject(_)
            | Self::ContentInvalid(_)
            | Self::LimitNotInteger(_)
            | Self::InputInvalid => "invalid_type",
            Self::MessagesEmpty | Self::LimitNegative(_) => "invalid_value",
        }
    }

    /// The request field at fault (the error's `param`), when there is one.
    pub fn param(self) -> Option<Cow<'static, str>> {
        let field = match self {
            Self::Missing | Self::NotJson | Self::NotObject => return None,
            Self::MissingModel | Self::InvalidModel | Self::DuplicateModel => "model",
            Self::StreamNotBoolean => "stream",
            Self::MessagesNotList | Self::MessagesEmpty => "messages",
            Self::MessageNotObject(index) => return Some(format!("messages[{index}]").into()),
            Self::ContentInvalid(index) => {
                return Some(format!("messages[{index}].content").into())
            }
            Self::LimitNotInteger(field) | Self::LimitNegative(field) => field,
            Self::InputInvalid => "input",
        };
        Some(Cow::Borrowed(field))
    }
}

/// A parsed generation/embedding request, as far as admission cares, holding the parsed body
/// so the exchange edits the same value instead of parsing the bytes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRequest {
    pub model: String,
    /// Byte range of the `model` value (quotes included) in the body.
    model_span: Range<usize>,
    /// `max_tokens`, `max_completion_tokens` or Ollama's `options.num_predict`, when set to a
    /// bound (Ollama's negative "unlimited" values are no bound).
    pub max_tokens: Option<u64>,
    pub prompt_tokens: u64,
    /// The whole body (a JSON object).
    value: Value,
}

impl ModelRequest {
    pub fn parse(body: &[u8]) -> Result<Self, BodyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BodyError::Missing);
        }
        let value: Value = serde_json::from_slice(body).map_err(|_| BodyError::NotJson)?;
        let object = value.as_object().ok_or(BodyError::NotObject)?;
        let spans = top_level_spans(body, "model").ok_or(BodyError::NotJson)?;
        let model_span = match spans.as_slice() {
            [] => return Err(BodyError::MissingModel),
            [span] => span.clone(),
            _ => return Err(BodyError::DuplicateModel),
        };
        let model = match object.get("model") {
            Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
            _ => return Err(BodyError::InvalidModel),
        };
        let bound = |value: Option<&Value>| value.and_then(Value::as_u64);
        let max_tokens = bound(object.get("max_tokens"))
            .or_else(|| bound(object.get("max_completion_tokens")))
            .or_else(|| bound(value.pointer("/options/num_predict")));
        let prompt_tokens = estimate_prompt_tokens(&value);
        Ok(Self {
            model,
            model_span,
            max_tokens,
            prompt_tokens,
            value,
        })
    }

    /// The parsed body as sent upstream under `model`: the value that parsing
    /// [`ModelRequest::with_model`]'s bytes would give.
    pub fn into_value(mut self, model: &str) -> Value {
        if model != self.model {
            if let Some(slot) = self.value.get_mut("model") {
                *slot = Value::String(model.to_owned());
            }
        }
        self.value
    }

    /// `body` with only the `model` value replaced by `name`.
    pub fn with_model(&self, body: &[u8], name: &str) -> Vec<u8> {
        let quoted = serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""));
        let (Some(before), Some(after)) = (
            body.get(..self.model_span.start),
            body.get(self.model_span.end..),
        ) else {
            return body.to_vec();
        };
        let mut out = Vec::with_capacity(body.len() + quoted.len());
        out.extend_from_slice(before);
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(after);
        out
    }
}

/// Byte ranges of the values of every top-level `key` in a JSON object (valid JSON expected;
/// `None` if the scan does not find the shape it expects).
fn top_level_spans(body: &[u8], key: &str) -> Option<Vec<Range<usize>>> {
    let mut scan = Scanner {
        bytes: body,
        pos: 0,
    };
    let mut spans = Vec::new();
    scan.skip_ws();
    scan.expect(b'{')?;
    scan.skip_ws();
    if scan.peek() == Some(b'}') {
        return Some(spans);
    }
    loop {
        scan.skip_ws();
        let key_start = scan.pos;
        scan.skip_string()?;
        let raw_key = body.get(key_start..scan.pos)?;
        scan.skip_ws();
        scan.expect(b':')?;
        scan.skip_ws();
        let value_start = scan.pos;
        scan.skip_value()?;
        if key_is(raw_key, key) {
            spans.push(value_start..scan.pos);
        }
        scan.skip_ws();
        match scan.next()? {
            b',' => continue,
            b'}' => return Some(spans),
            _ => return None,
        }
    }
}

/// Whether a quoted JSON key (escapes included) spells `key`.
fn key_is(raw: &[u8], key: &str) -> bool {
    if raw.contains(&b'\\') {
        serde_json::from_slice::<String>(raw).is_ok_and(|decoded| decoded == key)
    } else {
        raw.get(1..raw.len().saturating_sub(1)) == Some(key.as_bytes())
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// From an opening quote to just past its closing quote.
    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            match self.next()? {
                b'\\' => {
                    self.next()?;
                }
                b'"' => return Some(()),
                _ => {}
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ModelRequest, BodyError> {
        ModelRequest::parse(body.as_bytes())
    }

    #[test]
    fn reads_model_limit_and_prompt() {
        let request = parse(
            r#"{"model": "llama3.1-8b", "max_tokens": 16,
                "messages": [{"role": "user", "content": "Say hello to everyone in the room"}]}"#,
        )
        .unwrap();
        assert_eq!(request.model, "llama3.1-8b");
        assert_eq!(request.max_tokens, Some(16));
        assert!(request.prompt_tokens > 7, "{}", request.prompt_tokens);

        let ollama = parse(r#"{"model": "m", "prompt": "hi", "options": {"num_predict": 64}}"#);
        assert_eq!(ollama.unwrap().max_tokens, Some(64));
        let unlimited = parse(r#"{"model": "m", "options": {"num_predict": -1}}"#);
        assert_eq!(unlimited.unwrap().max_tokens, None);
        let newer = parse(r#"{"model": "m", "max_completion_tokens": 5}"#);
        assert_eq!(newer.unwrap().max_tokens, Some(5));
    }

    #[test]
    fn refuses_bodies_it_cannot_check_with_distinct_codes() {
        let cases = [
            ("", BodyError::Missing),
            ("  \n", BodyError::Missing),
            ("{\"model\": ", BodyError::NotJson),
            ("model=llama", BodyError::NotJson),
            ("[{\"model\": \"m\"}]", BodyError::NotObject),
            ("\"m\"", BodyError::NotObject),
            ("{}", BodyError::MissingModel),
            (
                "{\"messages\": [{\"model\": \"m\"}]}",
                BodyError::MissingModel,
            ),
            ("{\"model\": 5}", BodyError::InvalidModel),
            ("{\"model\": null}", BodyError::InvalidModel),
            ("{\"model\": \" \"}", BodyError::InvalidModel),
            (
                "{\"model\": \"allowed\", \"model\": \"forbidden\"}",
                BodyError::DuplicateModel,
            ),
            (
                "{\"model\": \"allowed\", \"mod\\u0065l\": \"forbidden\"}",
                BodyError::DuplicateModel,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(parse(body), Err(expected), "{body:?}");
        }
        let codes: std::collections::HashSet<_> =
            cases.iter().map(|(_, error)| error.code()).collect();
        assert_eq!(codes.len(), 6);
    }

    #[test]
    fn rewrites_only_the_model_value() {
        let body =
            br#"{ "stream" : true, "x": {"model": "inner", "s": "a\"}b"}, "model" :"llama3.1-8b" ,
  "n": 1.0e+2, "big": 123456789012345678901234567890, "messages": [] }"#;
        let request = ModelRequest::parse(body).unwrap();
        let rewritten = request.with_model(body, "llama3.1:8b");
        let expected = String::from_utf8_lossy(body)
            .replace(r#""model" :"llama3.1-8b""#, r#""model" :"llama3.1:8b""#);
        assert_eq!(String::from_utf8(rewritten).unwrap(), expected);
    }

    /// The exchange edits the value admission parsed; it must be what the upstream would
    /// parse from the rewritten bytes (escaped keys, nested `model`s and odd numbers included).
    #[test]
    fn the_value_matches_the_rewritten_bytes() {
        let bodies: [&[u8]; 3] = [
            br#"{ "stream" : true, "x": {"model": "inner"}, "model" :"a" , "n": 1.0e+2, "messages": [] }"#,
            br#"{"mod\u0065l": "a", "z": [1, {"model": 2}]}"#,
            br#"{"model": "a", "messages": [{"role": "user", "content": "hi"}]}"#,
        ];
        for body in bodies {
            for name in ["a", "we\"ird:name"] {
                let request = ModelRequest::parse(body).unwrap();
                let rewritten = request.with_model(body, name);
                let expected: Value = serde_json::from_slice(&rewritten).unwrap();
                assert_eq!(request.into_value(name), expected, "{name} in {body:?}");
            }
        }
    }

    #[test]
    fn rewritten_names_are_json_escaped() {
        let body = br#"{"model":"a"}"#;
        let request = ModelRequest::parse(body).unwrap();
        assert_eq!(
            request.with_model(body, "we\"ird\\name"),
            br#"{"model":"we\"ird\\name"}"#
        );
    }

    #[test]
    fn finds_escaped_keys_and_values_with_escapes() {
        let body = br#"{"mod\u0065l": "a\"b", "z": [1, {"model": 2}]}"#;
        let request = ModelRequest::parse(body).unwrap();
        assert_eq!(request.model, "a\"b");
        assert_eq!(
            request.with_model(body, "c"),
            br#"{"mod\u0065l": "c", "z": [1, {"model": 2}]}"#
        );
    }

    #[test]
    fn the_scanner_never_panics_on_truncated_input() {
        let body = br#"{"a": [1, "x\"", {"b": null}], "model": "m", "c": true}"#;
        for end in 0..body.len() {
            let _ = top_level_spans(&body[..end], "model");
        }
        assert_eq!(top_level_spans(body, "model").unwrap().len(), 1);
        assert_eq!(top_level_spans(b"{}", "model"), Some(vec![]));
        assert_eq!(top_level_spans(b"{\"a\" 1}", "model"), None);
    }
}
