use serde_json::json;

use super::*;
use crate::sse::{NdjsonParser, SseError, SseParser, DEFAULT_MAX_RECORD_BYTES};

const OLLAMA_CHAT_STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/streams/ollama-chat-stream.ndjson");
const OLLAMA_GENERATE: &[u8] = include_bytes!("../../tests/fixtures/streams/ollama-generate.json");

fn metered(format: StreamFormat, hide: bool, chunks: &[&[u8]]) -> (Vec<u8>, Metered) {
    let mut stream = Metered::new(format, hide, DEFAULT_MAX_RECORD_BYTES);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(stream.push(chunk));
    }
    out.extend(stream.finish());
    (out, stream)
}

/// Drives a parser and a `StreamUsage` the way the filter's response stream does, without
/// its rewriting: the bytes a client gets, and the counts.
struct Metered {
    framing: Framing,
    usage: StreamUsage,
    parse_error: Option<SseError>,
}

#[derive(Debug)]
enum Framing {
    Sse(SseParser),
    Ndjson(NdjsonParser),
}

impl Metered {
    fn new(format: StreamFormat, hide_usage_chunk: bool, max_record_bytes: usize) -> Self {
        let framing = match format {
            StreamFormat::Sse => Framing::Sse(SseParser::new(max_record_bytes)),
            StreamFormat::Ndjson => Framing::Ndjson(NdjsonParser::new(max_record_bytes)),
        };
        Self {
            framing,
            usage: StreamUsage::new(hide_usage_chunk),
            parse_error: None,
        }
    }

    /// One body chunk in; the bytes to send to the client now out.
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.parse_error.is_some() {
            self.usage.observe_unparsed(chunk.len());
            return chunk.to_vec();
        }
        match &mut self.framing {
            Framing::Sse(parser) => parser.push(chunk),
            Framing::Ndjson(parser) => parser.push(chunk),
        }
        self.drain()
    }

    /// The end of the upstream body: whatever is still held back, counted and sent.
    fn finish(&mut self) -> Vec<u8> {
        if self.parse_error.is_some() {
            return Vec::new();
        }
        match &mut self.framing {
            Framing::Sse(parser) => parser.finish(),
            Framing::Ndjson(parser) => parser.finish(),
        }
        self.drain()
    }

    fn usage(&self) -> &StreamUsage {
        &self.usage
    }

    /// Why parsing stopped, if it did (counts are then partly estimated).
    fn parse_error(&self) -> Option<&SseError> {
        self.parse_error.as_ref()
    }

    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let result = match &mut self.framing {
            Framing::Sse(parser) => loop {
                match parser.next_block() {
                    Ok(Some(block)) => {
                        if self.usage.observe_sse(&block) == EventVerdict::Forward {
                            out.extend_from_slice(block.raw());
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(error) => break Err((error, parser.take_buffered())),
                }
            },
            Framing::Ndjson(parser) => loop {
                match parser.next_line() {
                    Ok(Some(line)) => {
                        self.usage.observe_ndjson(&line);
                        out.extend_from_slice(line.raw());
                    }
                    Ok(None) => break Ok(()),
                    Err(error) => break Err((error, parser.take_buffered())),
                }
            },
        };
        if let Err((error, held)) = result {
            self.usage.observe_unparsed(held.len());
            out.extend_from_slice(&held);
            self.parse_error = Some(error);
        }
        out
    }
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
    let mut metered = Metered::new(StreamFormat::Sse, true, 48);
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

/// Real llama-server streams: (name, bytes) of those recorded with `include_usage`.
const USAGE_STREAMS: [(&str, &[u8]); 4] = [
    (
        "chat-a",
        include_bytes!("../../tests/fixtures/streams/llama-chat-a-stream-usage.sse"),
    ),
    (
        "chat-b",
        include_bytes!("../../tests/fixtures/streams/llama-chat-b-stream-usage.sse"),
    ),
    (
        "chat-c",
        include_bytes!("../../tests/fixtures/streams/llama-chat-c-stream-usage.sse"),
    ),
    (
        "completion",
        include_bytes!("../../tests/fixtures/streams/llama-completion-stream-usage.sse"),
    ),
];
const PLAIN_STREAM_A: &[u8] =
    include_bytes!("../../tests/fixtures/streams/llama-chat-a-stream-plain.sse");
const CHAT_A: &[u8] = include_bytes!("../../tests/fixtures/streams/llama-chat-a.json");
const EMBEDDINGS: &[u8] = include_bytes!("../../tests/fixtures/streams/llama-embeddings.json");
const REQUESTS: &str = include_str!("../../tests/fixtures/streams/requests.json");

/// The server's own numbers in a recorded stream, read independently of the code under test.
fn usage_in(stream: &[u8]) -> (u64, u64) {
    let text = std::str::from_utf8(stream).unwrap();
    let usage = text
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .find_map(|chunk| chunk.get("usage").filter(|u| u.is_object()).cloned())
        .unwrap();
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

/// The stream without its usage-only events (cut out by hand), and how many there were.
fn without_usage_events(stream: &[u8]) -> (Vec<u8>, usize) {
    let text = std::str::from_utf8(stream).unwrap();
    let events: Vec<&str> = text.split_inclusive("\n\n").collect();
    let usage_only = |e: &str| e.contains("\"usage\":{") && e.contains("\"choices\":[]");
    let kept = events.iter().filter(|e| !usage_only(e));
    let hidden = events.iter().filter(|e| usage_only(e)).count();
    (kept.flat_map(|e| e.bytes()).collect(), hidden)
}

fn prompt_estimate(fixture: &str) -> u64 {
    let requests: serde_json::Value = serde_json::from_str(REQUESTS).unwrap();
    estimate_prompt_tokens(&requests[fixture]["body"])
}

#[test]
fn real_streams_count_exactly_what_the_server_reported_at_every_split() {
    for (index, (name, stream)) in USAGE_STREAMS.into_iter().enumerate() {
        let expected = usage_in(stream);
        for hide in [false, true] {
            let (out, whole) = metered(StreamFormat::Sse, hide, &[stream]);
            let usage = whole.usage().usage(1);
            assert_eq!(
                (usage.prompt_tokens, usage.completion_tokens),
                expected,
                "{name}"
            );
            assert!(!usage.estimated && whole.usage().completed(), "{name}");
            // Every byte position of one stream (the SSE tests do every position of others);
            // a prime stride through the rest keeps the debug-build test short.
            let stride = if index == 1 && hide { 1 } else { 13 };
            for cut in (0..=stream.len()).step_by(stride) {
                let (a, b) = stream.split_at(cut);
                let (split_out, split) = metered(StreamFormat::Sse, hide, &[a, b]);
                assert_eq!(split_out, out, "{name}: cut at {cut}");
                assert_eq!(split.usage().usage(1), usage, "{name}: cut at {cut}");
            }
        }
    }
}

#[test]
fn the_injected_usage_chunk_is_hidden_and_every_other_byte_kept() {
    for (name, stream) in USAGE_STREAMS {
        let (shown, _) = metered(StreamFormat::Sse, false, &[stream]);
        assert_eq!(shown, stream, "{name}: a client that asked sees everything");
        let (hidden, _) = metered(StreamFormat::Sse, true, &[stream]);
        let (expected, usage_only_events) = without_usage_events(stream);
        assert_eq!(hidden, expected, "{name}");
        // llama.cpp's /v1/completions always puts usage in its last chunk, next to the
        // finish reason: the client sees that chunk with or without the gateway.
        let expected_events = if name == "completion" { 0 } else { 1 };
        assert_eq!(usage_only_events, expected_events, "{name}");
    }
}

#[test]
fn crlf_and_keep_alives_in_a_real_stream_change_nothing_but_bytes() {
    let (name, stream) = USAGE_STREAMS[1];
    let text = std::str::from_utf8(stream).unwrap();
    let crlf = text.replace('\n', "\r\n");
    let with_comments = text.replace("\n\n", "\n\n: keep-alive\n\n");
    for variant in [crlf.as_bytes(), with_comments.as_bytes()] {
        let (out, metered_variant) = metered(StreamFormat::Sse, false, &[variant]);
        assert_eq!(out, variant, "{name}");
        let usage = metered_variant.usage().usage(1);
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            usage_in(stream)
        );
        let bytes: Vec<&[u8]> = variant.chunks(5).collect();
        let (chunked_out, chunked) = metered(StreamFormat::Sse, true, &bytes);
        assert_eq!(chunked.usage().usage(1), usage);
        assert!(chunked_out.len() < variant.len(), "usage event hidden");
    }
}

#[test]
fn a_stream_without_usage_is_estimated_from_its_text() {
    let (real_prompt, real_completion) = usage_in(USAGE_STREAMS[0].1);
    let (out, plain) = metered(StreamFormat::Sse, false, &[PLAIN_STREAM_A]);
    assert_eq!(out, PLAIN_STREAM_A);
    let usage = plain
        .usage()
        .usage(prompt_estimate("llama-chat-a-stream-plain.sse"));
    assert!(usage.estimated && plain.usage().completed());
    let close = |estimate: u64, real: u64| estimate.abs_diff(real) as f64 <= 0.35 * real as f64;
    assert!(
        close(usage.completion_tokens, real_completion),
        "{usage:?} vs {real_completion}"
    );
    assert!(
        close(usage.prompt_tokens, real_prompt),
        "{usage:?} vs {real_prompt}"
    );
}

#[test]
fn a_client_that_leaves_mid_stream_is_charged_for_what_was_streamed() {
    let (_, full) = usage_in(USAGE_STREAMS[2].1);
    let stream = USAGE_STREAMS[2].1;
    let half = &stream[..stream.len() / 2];
    let mut metered = Metered::new(StreamFormat::Sse, true, DEFAULT_MAX_RECORD_BYTES);
    metered.push(half);
    let usage = metered
        .usage()
        .usage(prompt_estimate("llama-chat-c-stream-usage.sse"));
    assert!(usage.estimated && !metered.usage().completed());
    assert!(
        usage.completion_tokens > 0 && usage.completion_tokens < full,
        "{usage:?}"
    );
}

#[test]
fn real_non_streamed_bodies_carry_the_servers_counts() {
    let usage = usage_from_response(CHAT_A, 1).unwrap();
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens),
        usage_in(USAGE_STREAMS[0].1),
        "same request, same counts streamed or not"
    );
    assert!(!usage.estimated);
    let embeddings = usage_from_response(EMBEDDINGS, 1).unwrap();
    assert!(embeddings.prompt_tokens > 0 && embeddings.completion_tokens == 0);
    assert!(!embeddings.estimated);
}

/// Event data with the fields that differ between any two runs (ids, clock) removed, and
/// llama.cpp's non-standard `timings`, which it attaches to whichever chunk is last: the usage
/// chunk when there is one, else the finish chunk (so a hidden usage chunk takes it along).
fn comparable_events(stream: &[u8]) -> Vec<serde_json::Value> {
    let mut parser = crate::sse::SseParser::default();
    parser.push(stream);
    parser.finish();
    let mut events = Vec::new();
    while let Some(block) = parser.next_block().unwrap() {
        let Some(data) = block.data() else { continue };
        let mut value: serde_json::Value =
            serde_json::from_str(data).unwrap_or_else(|_| json!(data));
        if let Some(object) = value.as_object_mut() {
            for volatile in ["id", "created", "timings"] {
                object.remove(volatile);
            }
        }
        events.push(value);
    }
    events
}

#[test]
fn a_client_that_did_not_ask_sees_what_it_would_have_seen_without_the_gateway() {
    let (hidden, _) = metered(StreamFormat::Sse, true, &[USAGE_STREAMS[0].1]);
    assert_eq!(
        comparable_events(&hidden),
        comparable_events(PLAIN_STREAM_A)
    );
}
