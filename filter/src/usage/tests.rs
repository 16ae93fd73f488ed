use serde_json::json;

use super::*;
use crate::sse::DEFAULT_MAX_RECORD_BYTES;

const OLLAMA_CHAT_STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/streams/ollama-chat-stream.ndjson");
const OLLAMA_GENERATE: &[u8] = include_bytes!("../../tests/fixtures/streams/ollama-generate.json");

fn metered(format: StreamFormat, hide: bool, chunks: &[&[u8]]) -> (Vec<u8>, MeteredStream) {
    let mut stream = MeteredStream::new(format, hide, DEFAULT_MAX_RECORD_BYTES);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(stream.push(chunk));
    }
    out.extend(stream.finish());
    (out, stream)
}

#[test]
fn openai_usage_is_read_from_a_body() {
    let body = br#"{"choices":[{"message":{"content":"Hi"}}],
        "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
    let usage = usage_from_response(body, 999).unwrap();
    assert_eq!(
        usage,
        TokenUsage {
            prompt_tokens: 12,
            completion_tokens: 3,
            estimated: false
        }
    );
    assert_eq!(usage.total_tokens(), 15);
}

#[test]
fn ollama_counts_are_read_from_a_body() {
    let usage = usage_from_response(OLLAMA_GENERATE, 999).unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (26, 10));
    assert!(!usage.estimated);
}

#[test]
fn embeddings_have_no_completion_and_that_is_exact() {
    let openai = br#"{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let ollama = br#"{"embeddings":[[0.1]],"prompt_eval_count":6}"#;
    for (body, prompt) in [(&openai[..], 8), (ollama, 6)] {
        let usage = usage_from_response(body, 999).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (prompt, 0));
        assert!(!usage.estimated);
    }
}

#[test]
fn a_missing_count_is_derived_from_the_total_before_estimating() {
    let body =
        br#"{"choices":[{"text":"a b c"}],"usage":{"completion_tokens":3,"total_tokens":10}}"#;
    let usage = usage_from_response(body, 999).unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 3));
    assert!(!usage.estimated);
}

#[test]
fn a_cached_ollama_prompt_without_count_is_estimated() {
    let body = br#"{"message":{"role":"assistant","content":"Sure."},"done":true,"eval_count":3}"#;
    let usage = usage_from_response(body, 20).unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (20, 3));
    assert!(usage.estimated);
}

#[test]
fn without_usage_the_text_is_estimated_and_marked() {
    let body = json!({"choices": [{"message": {"content": "Hello there, how are you today?",
        "tool_calls": [{"function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]}}]});
    let usage = usage_from_response(body.to_string().as_bytes(), 11).unwrap();
    assert!(usage.estimated);
    assert_eq!(usage.prompt_tokens, 11);
    assert!(usage.completion_tokens >= 8, "{usage:?}");
}

#[test]
fn a_body_that_is_not_json_is_an_error() {
    assert!(matches!(
        usage_from_response(b"<html>502</html>", 1),
        Err(UsageError::NotJson(_))
    ));
}

#[test]
fn include_usage_is_added_only_to_streams_whose_client_did_not_ask() {
    let cases = [
        (json!({"stream": false}), IncludeUsage::Unchanged, None),
        (json!({"messages": []}), IncludeUsage::Unchanged, None),
        (
            json!({"stream": true}),
            IncludeUsage::Injected,
            Some(json!({"include_usage": true})),
        ),
        (
            json!({"stream": true, "stream_options": null}),
            IncludeUsage::Injected,
            Some(json!({"include_usage": true})),
        ),
        (
            json!({"stream": true, "stream_options": {"include_usage": true}}),
            IncludeUsage::Unchanged,
            Some(json!({"include_usage": true})),
        ),
        (
            json!({"stream": true, "stream_options": {"include_usage": false, "x": 1}}),
            IncludeUsage::Injected,
            Some(json!({"include_usage": true, "x": 1})),
        ),
        (
            json!({"stream": true, "stream_options": "bogus"}),
            IncludeUsage::Unchanged,
            Some(json!("bogus")),
        ),
    ];
    for (mut request, verdict, options) in cases {
        let before = request.clone();
        assert_eq!(request_stream_usage(&mut request), verdict, "{before}");
        assert_eq!(request.get("stream_options").cloned(), options, "{before}");
        assert_eq!(
            verdict.hide_usage_chunk(),
            verdict == IncludeUsage::Injected
        );
    }
}

#[test]
fn the_estimator_is_never_zero_for_non_empty_text() {
    assert_eq!(estimate_text_tokens(""), 0);
    let alphabet = [
        "a", " ", "\n", "\t", "1", ".", "é", "中", "🚀", "\u{0}", "\r\n", "  ", "Word", "x1",
    ];
    // Every string of up to three pieces of every character class.
    for a in alphabet {
        for b in alphabet {
            for c in alphabet {
                for text in [a.to_owned(), format!("{a}{b}"), format!("{a}{b}{c}")] {
                    assert!(estimate_text_tokens(&text) >= 1, "{text:?}");
                }
            }
        }
    }
}

#[test]
fn the_estimator_grows_with_the_text() {
    let one = estimate_text_tokens("The quick brown fox jumps over the lazy dog. ");
    let ten = estimate_text_tokens(&"The quick brown fox jumps over the lazy dog. ".repeat(10));
    assert!(ten >= 9 * one && ten <= 11 * one, "{one} vs {ten}");
}

#[test]
fn prompt_estimates_cover_every_request_shape() {
    let ids = json!({"prompt": [1, 2, 3, 4]});
    assert_eq!(estimate_prompt_tokens(&ids), 4, "token ids count exactly");
    let batched = json!({"input": [[1, 2], [3]]});
    assert_eq!(estimate_prompt_tokens(&batched), 3);
    let shapes = [
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
        json!({"prompt": "hi"}),
        json!({"prompt": ["hi", "there"]}),
        json!({"input": "hi"}),
        json!({"model": "m", "system": "be brief", "prompt": ""}),
    ];
    for request in &shapes {
        assert!(estimate_prompt_tokens(request) >= 1, "{request}");
    }
    let with_tools = json!({"messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]});
    assert!(estimate_prompt_tokens(&with_tools) > estimate_prompt_tokens(&shapes[0]));
}

#[test]
fn ollama_ndjson_streams_are_counted_from_the_final_object_at_every_split() {
    let (out, whole) = metered(StreamFormat::Ndjson, false, &[OLLAMA_CHAT_STREAM]);
    assert_eq!(out, OLLAMA_CHAT_STREAM);
    let usage = whole.usage().usage(999);
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (26, 5));
    assert!(!usage.estimated && whole.usage().completed());
    for cut in 0..=OLLAMA_CHAT_STREAM.len() {
        let (a, b) = OLLAMA_CHAT_STREAM.split_at(cut);
        let (out, split) = metered(StreamFormat::Ndjson, false, &[a, b]);
        assert_eq!(out, OLLAMA_CHAT_STREAM, "cut at {cut}");
        assert_eq!(split.usage().usage(999), usage, "cut at {cut}");
    }
}

#[test]
fn an_ollama_stream_cut_before_done_is_estimated_from_its_text() {
    let cut = OLLAMA_CHAT_STREAM.len() / 2;
    let (_, stream) = metered(StreamFormat::Ndjson, false, &[&OLLAMA_CHAT_STREAM[..cut]]);
    let usage = stream.usage().usage(30);
    assert!(usage.estimated && !stream.usage().completed());
    assert_eq!(usage.prompt_tokens, 30);
    assert!(usage.completion_tokens >= 2, "{usage:?}");
}

#[test]
fn content_types_select_the_framing() {
    assert_eq!(
        StreamFormat::from_content_type("text/event-stream; charset=utf-8"),
        Some(StreamFormat::Sse)
    );
    assert_eq!(
        StreamFormat::from_content_type("application/x-ndjson"),
        Some(StreamFormat::Ndjson)
    );
    assert_eq!(StreamFormat::from_content_type("application/json"), None);
}

#[test]
fn an_oversized_record_switches_to_pass_through_without_losing_bytes() {
    let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: 0123456789012345678901234567890123456789012345678901234567890123456789\n\ndata: [DONE]\n\n";
    let mut metered = MeteredStream::new(StreamFormat::Sse, true, 48);
    let mut out = Vec::new();
    for chunk in stream.chunks(7) {
        out.extend(metered.push(chunk));
    }
    out.extend(metered.finish());
    assert_eq!(out, stream);
    assert!(metered.parse_error().is_some());
    let usage = metered.usage().usage(5);
    assert!(usage.estimated && usage.completion_tokens >= 2, "{usage:?}");
}

#[test]
fn an_error_event_mid_stream_is_noticed() {
    let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\",\"code\":500}}\n\n";
    let (out, metered) = metered(StreamFormat::Sse, true, &[stream]);
    assert_eq!(out, stream);
    assert!(metered.usage().upstream_error() && !metered.usage().completed());
    assert!(!metered.usage().usage_reported());
}
