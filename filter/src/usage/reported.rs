//! The reported usage of a whole response body, read without building the body as a
//! [`Value`]: answers are mostly text the counts do not need, and building it (a map and a
//! string per field) cost more than the rest of a response's handling.
//!
//! Every part of the body still goes through serde_json's `deserialize_any`, so what this
//! accepts is exactly what parsing a `Value` accepts (UTF-8, escapes, numbers, the nesting
//! limit); only the three top-level fields [`reported_usage`] reads are built.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{reported_usage, ReportedUsage};

/// What a body's top level yields.
pub(super) enum Scanned {
    /// A JSON object: its reported usage, if any.
    Object(Option<ReportedUsage>),
    /// Valid JSON, but not an object.
    NotObject,
}

/// Scans `body`; `Err` exactly when `serde_json::from_slice::<Value>(body)` fails.
pub(super) fn scan(body: &[u8]) -> Result<Scanned, serde_json::Error> {
    let top: TopLevel = serde_json::from_slice(body)?;
    Ok(match top.0 {
        Some(fields) => Scanned::Object(reported_usage(&Value::Object(fields))),
        None => Scanned::NotObject,
    })
}

/// The usage fields of a top-level object (`None`: not an object).
struct TopLevel(Option<Map<String, Value>>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                // Like `Value`, a repeated key keeps its last value.
                Key::Wanted(name) => {
                    fields.insert(name.to_owned(), map.next_value::<Value>()?);
                }
                Key::Other => map.next_value_seed(Skip)?,
            }
        }
        Ok(TopLevel(Some(fields)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(TopLevel(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel(None))
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel(None))
    }
}

/// A top-level key: one of the fields [`reported_usage`] reads, or any other.
enum Key {
    Wanted(&'static str),
    Other,
}

const WANTED: [&str; 3] = ["usage", "prompt_eval_count", "eval_count"];

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(WANTED
                    .iter()
                    .find(|wanted| **wanted == key)
                    .map_or(Key::Other, |wanted| Key::Wanted(wanted)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, parsed and validated as `Value` would be, then dropped: `deserialize_any`
/// with a visitor that keeps nothing (unlike `serde::de::IgnoredAny`, for which serde_json
/// skips strings without checking them and has no nesting limit).
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are read as strings (checked like `Value`'s); values are skipped the same way.
        while map.next_key::<KeyCheck>()?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// An object key, decoded (so checked) and dropped.
struct KeyCheck;

impl<'de> Deserialize<'de> for KeyCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(SkipVisitor).map(|()| KeyCheck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{usage_from_response, usage_of_value, TokenUsage};

    /// What `usage_from_response` computed before this reader: the whole body as a `Value`.
    fn through_value(body: &[u8], prompt_estimate: u64) -> Option<TokenUsage> {
        let response: Value = serde_json::from_slice(body).ok()?;
        Some(usage_of_value(&response, prompt_estimate))
    }

    #[test]
    fn accepts_exactly_what_a_value_parse_accepts() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep_inside = format!(r#"{{"usage": {{"prompt_tokens": 1}}, "x": {deep}}}"#);
        let bodies: Vec<Vec<u8>> = vec![
            br#"{"usage": {"prompt_tokens": 1, "completion_tokens": 2}}"#.to_vec(),
            b"{\"x\": \"\xff\", \"usage\": {\"completion_tokens\": 2}}".to_vec(),
            br#"{"x": "\ud800", "usage": {"completion_tokens": 2}}"#.to_vec(),
            br#"{"x": "\q", "usage": {"completion_tokens": 2}}"#.to_vec(),
            br#"{"x": 1e400, "usage": {"completion_tokens": 2}}"#.to_vec(),
            b"{\"x\": \"a\x01b\", \"usage\": {\"completion_tokens\": 2}}".to_vec(),
            br#"{"usage": {"completion_tokens": 2}} trailing"#.to_vec(),
            br#"{"usage": {"completion_tokens": 2},}"#.to_vec(),
            deep_inside.into_bytes(),
            deep.into_bytes(),
            br#"[1, "two", {"usage": 3}]"#.to_vec(),
            b"\"text\"".to_vec(),
            b"".to_vec(),
        ];
        for body in bodies {
            assert_eq!(
                scan(&body).is_ok(),
                serde_json::from_slice::<Value>(&body).is_ok(),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn counts_match_a_value_parse() {
        let recorded: [&[u8]; 6] = [
            include_bytes!("../../tests/fixtures/streams/llama-chat-a.json"),
            include_bytes!("../../tests/fixtures/streams/llama-chat-b.json"),
            include_bytes!("../../tests/fixtures/streams/llama-completion.json"),
            include_bytes!("../../tests/fixtures/streams/llama-embeddings.json"),
            include_bytes!("../../tests/fixtures/streams/ollama-generate.json"),
            br#"{"choices": [{"message": {"content": "four words of text"}}]}"#,
        ];
        let variants: [&[u8]; 10] = [
            br#"{"usage": {"prompt_tokens": 9}, "choices": [{"text": "some generated words"}]}"#,
            br#"{"usage": {"total_tokens": 30, "prompt_tokens": 9}, "choices": [{"text": "x"}]}"#,
            br#"{"usage": {"total_tokens": 30}, "choices": [{"text": "generated"}]}"#,
            br#"{"usage": {"input_tokens": 4, "output_tokens": 5}}"#,
            br#"{"usage": {"completion_tokens": 1}, "usage": {"completion_tokens": 7}}"#,
            br#"{"us\u0061ge": {"prompt_tokens": 3, "completion_tokens": 4}}"#,
            br#"{"usage": null, "eval_count": 12, "response": "hello there"}"#,
            br#"{"usage": 5, "prompt_eval_count": 2, "eval_count": 3}"#,
            br#"{"usage": {"completion_tokens": -1, "prompt_tokens": 2.5}, "response": "abc"}"#,
            br#"[{"usage": {"prompt_tokens": 1, "completion_tokens": 2}}]"#,
        ];
        for body in recorded.iter().chain(&variants) {
            for prompt_estimate in [0, 17] {
                assert_eq!(
                    usage_from_response(body, prompt_estimate).ok(),
                    through_value(body, prompt_estimate),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}
