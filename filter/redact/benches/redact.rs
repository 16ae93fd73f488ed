//! Throughput of `Redactor::redact` on mixed prompts (prose, code, names and PII values) of
//! 1 KB, 16 KB and 1 MB, single-threaded; of `StreamRedactor` on a 16 KB answer fed in
//! small chunks, as the filter redacts a streamed response; and of `redact_request_body` on a
//! mixed 16 KB chat request (messages, tool definitions, tool calls, unknown fields) with the
//! full scope and with message text only, so the cost of the wider scope shows.

#![cfg(test)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use modelgate_redact::{redact_request_body, Phase, PlaceholderMap, Redactor, StreamRedactor};
use serde_json::{json, Value};

const PARAGRAPHS: &[&str] = &[
    "Can you summarise the attached incident report? The outage started on Monday at 10:30 UTC when the load balancer in us-east-1 stopped passing health checks, version 2.14.3 of the ingress was rolled back after forty minutes. ",
    "Hi team, please draft a polite reply to Priya Raman (priya.raman@example.com) explaining that her refund of $120.50 for order #55123 will arrive within five business days. ",
    "Here is the stack trace from the worker: thread 'main' panicked at src/lib.rs:42:9, called `Option::unwrap()` on a `None` value. What is the most likely cause and how do I fix it without changing the public API? ",
    "Translate to French: The quarterly review meeting is moved to Thursday afternoon; bring the updated roadmap, the hiring plan and the budget spreadsheet for the platform team. ",
    "My card 4111 1111 1111 1111 was charged twice, call me at (415) 555-2671 or write to the billing desk. The server at 192.168.10.24 keeps timing out. ",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); } // explain why this allocates and how to avoid it ",
    "Dear Dr. Okonkwo, thank you for reviewing the draft. Mark the comments you disagree with and we will discuss them with Will Smith next week. ",
    "Explain the difference between TCP and UDP, with examples of protocols that use each one, and when a developer should prefer one over the other in a web application. ",
];

fn prompt(size: usize) -> String {
    let mut text = String::with_capacity(size + 512);
    let mut state: u32 = 12345;
    while text.len() < size {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        text.push_str(PARAGRAPHS[(state >> 16) as usize % PARAGRAPHS.len()]);
    }
    let mut end = size;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn bench(c: &mut Criterion) {
    let redactor = Redactor::from_json(r#"{"entities": {"PERSON": "reversible"}}"#).unwrap();
    let mut group = c.benchmark_group("redact");
    for (label, size) in [("1KB", 1024), ("16KB", 16 * 1024), ("1MB", 1024 * 1024)] {
        let text = prompt(size);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &text, |b, text| {
            b.iter(|| redactor.redact(text, Phase::Request, &mut PlaceholderMap::new()))
        });
    }
    group.finish();
}

/// Bytes per pushed delta: about one token (as llama.cpp and OpenAI stream), and a few
/// tokens (one TCP read of SSE events).
const STREAM_CHUNKS: [usize; 2] = [4, 64];

fn bench_stream(c: &mut Criterion) {
    // Streams are redacted in the response phase, so the policy must cover it.
    let redactor =
        Redactor::from_json(r#"{"direction": "both", "entities": {"PERSON": "reversible"}}"#)
            .unwrap();
    let text = prompt(16 * 1024);
    let mut group = c.benchmark_group("redact_stream");
    group.throughput(Throughput::Bytes(text.len() as u64));
    for size in STREAM_CHUNKS {
        let chunks = split(&text, size);
        group.bench_with_input(
            BenchmarkId::new("16KB", format!("{size}B_chunks")),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let mut map = PlaceholderMap::new();
                    let mut stream = StreamRedactor::new(Phase::Response);
                    let mut sent = 0;
                    for chunk in chunks {
                        sent += stream.push(&redactor, chunk, &mut map).len();
                    }
                    sent + stream.finish(&redactor, &mut map).len()
                })
            },
        );
    }
    group.finish();
}

/// `text` in pieces of `size` bytes (longer where a character would be cut).
fn split(text: &str, size: usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// A chat request of about `size` bytes: turns of prose with PII, an assistant tool call per
/// turn (JSON arguments), a tool result, and tool definitions with schema descriptions.
fn mixed_request(size: usize) -> Vec<u8> {
    let tools = json!([{"type": "function", "function": {
        "name": "send_mail",
        "description": "Send a mail on behalf of the user, e.g. to priya.raman@example.com",
        "parameters": {"type": "object", "required": ["to", "body"], "properties": {
            "to": {"type": "string", "format": "email", "description": "Recipient address"},
            "body": {"type": "string", "description": "Plain text body, signed by Will Smith"},
            "priority": {"type": "string", "enum": ["low", "normal", "high"]}
        }}
    }}]);
    let mut messages: Vec<Value> = vec![json!({"role": "system", "content": PARAGRAPHS[3]})];
    let mut body = json!({"model": "llama3", "messages": [], "tools": tools,
                          "metadata": {"ticket": "INC-5512", "owner": "ops@example.com"}});
    let mut turn = 0;
    while body.to_string().len() < size {
        let text = prompt(600 + 97 * (turn % 5));
        messages.push(json!({"role": "user", "name": "priya", "content": text}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": format!("call_{turn}"), "type": "function", "function": {"name": "send_mail",
            "arguments": json!({"to": "priya.raman@example.com", "body": PARAGRAPHS[turn % PARAGRAPHS.len()], "priority": "normal"}).to_string()}}]}));
        messages.push(
            json!({"role": "tool", "tool_call_id": format!("call_{turn}"),
                             "content": "queued: id 55123, card 4111 1111 1111 1111 on file"}),
        );
        body["messages"] = Value::Array(messages.clone());
        turn += 1;
    }
    body.to_string().into_bytes()
}

fn bench_body(c: &mut Criterion) {
    let body = mixed_request(16 * 1024);
    let mut group = c.benchmark_group("redact_body");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for scope in ["full", "messages"] {
        let redactor = Redactor::from_json(&format!(
            r#"{{"scope": "{scope}", "entities": {{"PERSON": "reversible"}}}}"#
        ))
        .unwrap();
        group.bench_with_input(
            BenchmarkId::new("16KB_chat", format!("scope_{scope}")),
            &body,
            |b, body| b.iter(|| redact_request_body(&redactor, body, &mut PlaceholderMap::new())),
        );
    }
    group.finish();
}

criterion_group!(benches, bench, bench_stream, bench_body);
criterion_main!(benches);
