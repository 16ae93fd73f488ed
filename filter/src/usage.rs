//! Token usage of a response: what the upstream reported, or an estimate from the text that
//! was actually sent and received when it reported nothing.
//!
//! Covers OpenAI-compatible servers (vLLM, llama.cpp, TGI, SGLang: a `usage` object in the
//! body or, for streams, in a final chunk requested with `stream_options.include_usage`) and
//! Ollama's native API (`prompt_eval_count`/`eval_count`, in the final `done: true` object of a
//! stream). Pure functions over `serde_json::Value`; no proxy-wasm types.

mod estimate;
#[cfg(test)]
mod estimator_eval;
mod reported;
mod stream;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use estimate::estimate_text_tokens;
pub use stream::{EventVerdict, StreamFormat, StreamUsage};

/// Token counts for one request, as recorded for spend, TPM limits and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// True when any part of the counts comes from the estimator rather than the upstream.
    pub estimated: bool,
}

impl TokenUsage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Counts as the upstream reported them; any of them may be absent (Ollama omits
/// `prompt_eval_count` when the prompt was cached; embeddings have no completion).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportedUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The body is not JSON. serde_json's message names a position, never the content.
    #[error("response body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// What `request_stream_usage` did to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeUsage {
    /// Not a stream, or the client asked for usage itself: the client sees every chunk.
    Unchanged,
    /// The gateway asked for the usage chunk: hide it from the client.
    Injected,
}

impl IncludeUsage {
    pub fn hide_usage_chunk(self) -> bool {
        self == Self::Injected
    }
}

/// Asks an OpenAI-compatible upstream for a final usage chunk in a streamed
/// `/v1/chat/completions` or `/v1/completions` request by setting
/// `stream_options.include_usage: true`, keeping any other `stream_options` the client sent.
///
/// Works on the parsed body because the filter parses a request once and serializes it once
/// after every rewrite (redaction edits it too). A `stream_options` that is not an object is left
/// alone, so the upstream rejects it as it would have without the gateway.
pub fn request_stream_usage(request: &mut Value) -> IncludeUsage {
    let Some(request) = request.as_object_mut() else {
        return IncludeUsage::Unchanged;
    };
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return IncludeUsage::Unchanged;
    }
    let options = request
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if options.is_null() {
        *options = Value::Object(Map::new());
    }
    let Some(options) = options.as_object_mut() else {
        return IncludeUsage::Unchanged;
    };
    if options.get("include_usage").and_then(Value::as_bool) == Some(true) {
        return IncludeUsage::Unchanged;
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    IncludeUsage::Injected
}

/// The usage an upstream reported in a response body or stream chunk, if any: an
/// OpenAI-style `usage` object (`input_tokens`/`output_tokens` accepted too) or Ollama's
/// `prompt_eval_count`/`eval_count`.
pub fn reported_usage(response: &Value) -> Option<ReportedUsage> {
    let count = |object: &Value, names: &[&str]| names.iter().find_map(|n| object.get(n)?.as_u64());
    if let Some(usage) = response.get("usage").filter(|u| u.is_object()) {
        let reported = ReportedUsage {
            prompt_tokens: count(usage, &["prompt_tokens", "input_tokens"]),
            completion_tokens: count(usage, &["completion_tokens", "output_tokens"]),
            total_tokens: count(usage, &["total_tokens"]),
        };
        return (reported != ReportedUsage::default()).then_some(reported);
    }
    let reported = ReportedUsage {
        prompt_tokens: count(response, &["prompt_eval_count"]),
        completion_tokens: count(response, &["eval_count"]),
        total_tokens: None,
    };
    (reported != ReportedUsage::default()).then_some(reported)
}

/// Usage of a non-streamed response: the reported counts, with any missing part estimated
/// (`prompt_estimate` from `estimate_prompt_tokens` on the request; the completion from the
/// generated text in the body).
pub fn usage_from_response(body: &[u8], prompt_estimate: u64) -> Result<TokenUsage, UsageError> {
    if let reported::Scanned::Object(Some(reported)) = reported::scan(body)? {
        let completion_known = reported.completion_tokens.is_some()
            || (reported.total_tokens.is_some() && reported.prompt_tokens.is_some());
        if completion_known {
            // The generated text would only feed an estimate `resolve` does not use.
            return Ok(resolve(Some(reported), prompt_estimate, 0));
        }
    }
    let response: Value = serde_json::from_slice(body)?;
    Ok(usage_of_value(&response, prompt_estimate))
}

/// [`usage_from_response`] on a parsed body, estimating from the generated text.
fn usage_of_value(response: &Value, prompt_estimate: u64) -> TokenUsage {
    let mut generated = estimate::TextTally::default();
    for_each_generated_text(response, &mut |text| generated.push(text));
    resolve(
        reported_usage(response),
        prompt_estimate,
        generated.estimate(),
    )
}

/// Fills in what the upstream did not report. A missing count is derived from the total when
/// possible, else estimated; an estimate of zero (no text at all, as for embeddings) is exact.
fn resolve(
    reported: Option<ReportedUsage>,
    prompt_estimate: u64,
    completion_estimate: u64,
) -> TokenUsage {
    let reported = reported.unwrap_or_default();
    let from_total = |other: Option<u64>| Some(reported.total_tokens?.saturating_sub(other?));
    let mut estimated = false;
    let mut pick = |value: Option<u64>, derived: Option<u64>, estimate: u64| {
        value.or(derived).unwrap_or_else(|| {
            estimated |= estimate > 0;
            estimate
        })
    };
    let prompt_tokens = pick(
        reported.prompt_tokens,
        from_total(reported.completion_tokens),
        prompt_estimate,
    );
    let completion_tokens = pick(
        reported.completion_tokens,
        from_total(reported.prompt_tokens),
        completion_estimate,
    );
    TokenUsage {
        prompt_tokens,
        completion_tokens,
        estimated,
    }
}

/// Calls `f` with every piece of generated text in a response body or stream chunk: OpenAI
/// `choices[].message|delta` (content, reasoning, refusal, tool calls) and `choices[].text`,
/// Ollama `message`, `response` and `thinking`.
fn for_each_generated_text(response: &Value, f: &mut impl FnMut(&str)) {
    let choices = response.get("choices").and_then(Value::as_array);
    for choice in choices.into_iter().flatten() {
        visit_strings(choice.get("text"), f);
        for key in ["message", "delta"] {
            if let Some(message) = choice.get(key) {
                visit_message(message, f);
            }
        }
    }
    if let Some(message) = response.get("message") {
        visit_message(message, f);
    }
    visit_strings(response.get("response"), f);
    visit_strings(response.get("thinking"), f);
}

fn visit_message(message: &Value, f: &mut impl FnMut(&str)) {
    for key in [
        "content",
        "reasoning_content",
        "reasoning",
        "thinking",
        "refusal",
    ] {
        visit_strings(message.get(key), f);
    }
    let calls = message.get("tool_calls").and_then(Value::as_array);
    for function in calls
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("function"))
    {
        visit_function(function, f);
    }
    if let Some(function) = message.get("function_call") {
        visit_function(function, f);
    }
}

fn visit_function(function: &Value, f: &mut impl FnMut(&str)) {
    visit_strings(function.get("name"), f);
    match function.get("arguments") {
        // Ollama sends arguments as an object; the model generated its JSON text.
        Some(arguments @ (Value::Object(_) | Value::Array(_))) => f(&arguments.to_string()),
        arguments => visit_strings(arguments, f),
    }
}

/// A string, or the `text` of content parts (`[{"type":"text","text":…}]`), or a list of
/// strings; other values carry no text.
fn visit_strings(value: Option<&Value>, f: &mut impl FnMut(&str)) {
    match value {
        Some(Value::String(text)) if !text.is_empty() => f(text),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(_) => visit_strings(Some(item), f),
                    Value::Object(part) => visit_strings(part.get("text"), f),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Chat templates wrap every message in role markers (`<|im_start|>user\n…<|im_end|>\n` and
/// the like) and open the assistant turn for the reply; many (SmolLM2, Qwen2.5, Llama 3.1+)
/// also insert a default system prompt of a few dozen tokens when the conversation has none.
/// Fitted on the calibration half of the evaluation (see `estimate`): ChatML's nominal count
/// is 5 per message and 3 for the reply.
const TEMPLATE_TOKENS_PER_MESSAGE: f64 = 5.5;
const TEMPLATE_TOKENS_PER_REQUEST: f64 = 3.0;
const DEFAULT_SYSTEM_PROMPT_TOKENS: f64 = 21.5;

/// Estimated prompt tokens of a request body (OpenAI chat/completions/embeddings, Ollama
/// chat/generate/embed): message texts plus template overhead, `prompt`, `input`, `system`
/// and tool definitions. Token-id arrays (`prompt: [1, 2, 3]`) count exactly. Never zero when
/// the request carries any prompt text. Used for TPM admission and when the upstream reports
/// no prompt count.
pub fn estimate_prompt_tokens(request: &Value) -> u64 {
    let mut tokens = 0u64;
    let mut add_text = |text: &str| tokens += estimate_text_tokens(text);
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for message in messages {
            visit_message(message, &mut add_text);
            visit_strings(message.get("name"), &mut add_text);
        }
    }
    for key in ["prompt", "input"] {
        visit_strings(request.get(key), &mut add_text);
    }
    visit_strings(request.get("system"), &mut add_text);
    for key in ["tools", "functions"] {
        if let Some(tools) = request.get(key).filter(|t| !t.is_null()) {
            add_text(&tools.to_string());
        }
    }
    let exact_ids: u64 = ["prompt", "input"]
        .iter()
        .filter_map(|key| request.get(*key))
        .map(count_token_ids)
        .sum();
    tokens + exact_ids + chat_template_tokens(request)
}

fn chat_template_tokens(request: &Value) -> u64 {
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    let Some(first) = messages.first() else {
        return 0;
    };
    let has_system = matches!(
        first.get("role").and_then(Value::as_str),
        Some("system" | "developer")
    );
    let default_system = if has_system {
        0.0
    } else {
        DEFAULT_SYSTEM_PROMPT_TOKENS
    };
    let tokens = messages.len() as f64 * TEMPLATE_TOKENS_PER_MESSAGE
        + TEMPLATE_TOKENS_PER_REQUEST
        + default_system;
    // Small non-negative values: the conversion is exact.
    tokens.round() as u64
}

/// Token ids given directly: `[1, 2, 3]` or `[[1, 2], [3]]`.
fn count_token_ids(value: &Value) -> u64 {
    let Some(items) = value.as_array() else {
        return 0;
    };
    items
        .iter()
        .map(|item| match item {
            Value::Number(_) => 1,
            Value::Array(inner) => inner.iter().filter(|v| v.is_number()).count() as u64,
            _ => 0,
        })
        .sum()
}
