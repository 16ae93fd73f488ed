//! A route's output cap (`ModelRoute.max_output_tokens`): the completion limit a request
//! goes upstream with. A request that sets no limit gets the cap; one that asks for more is
//! lowered to it; a smaller limit passes unchanged (as LiteLLM's per-deployment `max_tokens`
//! behaves for a client that asks for less).

use serde_json::{Map, Value};

use super::ModelRequest;
use crate::endpoint::Endpoint;

/// The OpenAI-compatible limit fields; `max_completion_tokens` is the newer name of
/// `max_tokens` for chat. A request with neither gets `max_tokens`, which every
/// OpenAI-compatible server reads.
const OPENAI_LIMITS: [&str; 2] = ["max_tokens", "max_completion_tokens"];

impl ModelRequest {
    /// Applies `cap` (0 = none) to the limit fields `endpoint` reads and makes it the limit
    /// admission reserves. True when the body changed, so it must be sent rewritten.
    pub fn cap_output(&mut self, endpoint: Endpoint, cap: u64) -> bool {
        if cap == 0 || !endpoint.generates_text() {
            return false;
        }
        let Some(body) = self.value.as_object_mut() else {
            return false;
        };
        let changed = match endpoint {
            Endpoint::OllamaChat | Endpoint::OllamaGenerate => cap_ollama(body, cap),
            _ => cap_openai(body, cap),
        };
        self.max_tokens = Some(self.max_tokens.map_or(cap, |asked| asked.min(cap)));
        changed
    }
}

fn cap_openai(body: &mut Map<String, Value>, cap: u64) -> bool {
    let mut changed = false;
    let mut set_any = false;
    for field in OPENAI_LIMITS {
        // `check_shape` already refused negative and non-integer limits; `null` means unset.
        if let Some(asked) = body.get(field).and_then(Value::as_u64) {
            set_any = true;
            if asked > cap {
                body.insert(field.to_owned(), Value::from(cap));
                changed = true;
            }
        }
    }
    if !set_any {
        body.insert("max_tokens".to_owned(), Value::from(cap));
        changed = true;
    }
    changed
}

/// Ollama's `options.num_predict`, where a negative value means "until the context is full".
fn cap_ollama(body: &mut Map<String, Value>, cap: u64) -> bool {
    let options = body
        .entry("options")
        .or_insert_with(|| Value::Object(Map::new()));
    if options.is_null() {
        *options = Value::Object(Map::new());
    }
    // Options of another type are the upstream's to refuse; the filter does not guess.
    let Some(options) = options.as_object_mut() else {
        return false;
    };
    match options.get("num_predict").and_then(Value::as_u64) {
        Some(asked) if asked <= cap => false,
        _ => {
            options.insert("num_predict".to_owned(), Value::from(cap));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The body sent upstream and the limit admission reserves, after a cap of 128.
    fn capped(endpoint: Endpoint, body: Value) -> (bool, Value, Option<u64>) {
        let mut request = ModelRequest::parse(body.to_string().as_bytes()).unwrap();
        let changed = request.cap_output(endpoint, 128);
        let limit = request.max_tokens;
        (changed, request.into_value("m"), limit)
    }

    #[test]
    fn a_chat_request_without_a_limit_gets_the_cap() {
        let (changed, body, limit) = capped(
            Endpoint::ChatCompletions,
            json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]}),
        );
        assert!(changed);
        assert_eq!(body["max_tokens"], 128);
        assert_eq!(body.get("max_completion_tokens"), None);
        assert_eq!(limit, Some(128), "admission reserves the cap");
        let (_, body, _) = capped(
            Endpoint::Completions,
            json!({"model": "m", "prompt": "Hi", "max_tokens": null}),
        );
        assert_eq!(body["max_tokens"], 128, "null is unset");
    }

    #[test]
    fn a_larger_limit_is_lowered_in_the_field_the_client_used() {
        let (changed, body, limit) = capped(
            Endpoint::ChatCompletions,
            json!({"model": "m", "messages": [], "max_completion_tokens": 4096}),
        );
        assert!(changed);
        assert_eq!(body["max_completion_tokens"], 128);
        assert_eq!(body.get("max_tokens"), None, "no second limit field added");
        assert_eq!(limit, Some(128));
        let (_, body, _) = capped(
            Endpoint::ChatCompletions,
            json!({"model": "m", "messages": [], "max_tokens": 500, "max_completion_tokens": 64}),
        );
        assert_eq!(
            (&body["max_tokens"], &body["max_completion_tokens"]),
            (&json!(128), &json!(64))
        );
    }

    #[test]
    fn a_smaller_limit_passes_unchanged() {
        let (changed, body, limit) = capped(
            Endpoint::ChatCompletions,
            json!({"model": "m", "messages": [], "max_tokens": 16}),
        );
        assert!(!changed, "the body is forwarded as the client sent it");
        assert_eq!(body["max_tokens"], 16);
        assert_eq!(limit, Some(16));
    }

    #[test]
    fn ollama_gets_num_predict() {
        let (changed, body, limit) = capped(
            Endpoint::OllamaChat,
            json!({"model": "m", "messages": [], "options": {"temperature": 0}}),
        );
        assert!(changed);
        assert_eq!(
            body["options"],
            json!({"temperature": 0, "num_predict": 128})
        );
        assert_eq!(limit, Some(128));
        let (_, body, _) = capped(
            Endpoint::OllamaGenerate,
            json!({"model": "m", "prompt": "x"}),
        );
        assert_eq!(body["options"], json!({"num_predict": 128}));
        let (_, body, _) = capped(
            Endpoint::OllamaGenerate,
            json!({"model": "m", "prompt": "x", "options": {"num_predict": -1}}),
        );
        assert_eq!(body["options"]["num_predict"], 128, "unlimited is capped");
        let (changed, body, _) = capped(
            Endpoint::OllamaChat,
            json!({"model": "m", "messages": [], "options": {"num_predict": 32}}),
        );
        assert!(!changed);
        assert_eq!(body["options"]["num_predict"], 32);
    }

    #[test]
    fn no_cap_and_embeddings_change_nothing() {
        let body = json!({"model": "m", "input": "x"});
        let mut request = ModelRequest::parse(body.to_string().as_bytes()).unwrap();
        assert!(!request.cap_output(Endpoint::Embeddings, 128));
        assert_eq!(request.max_tokens, None);
        let mut request = ModelRequest::parse(br#"{"model": "m", "messages": []}"#).unwrap();
        assert!(!request.cap_output(Endpoint::ChatCompletions, 0));
        assert_eq!(
            request.into_value("m"),
            json!({"model": "m", "messages": []})
        );
    }
}
