//! Streamed answers through the real Envoy and filter, counted the way the upstream counted
//! them: the usage chunk the gateway asked for stays hidden from clients that did not ask,
//! counts are exact when the upstream reports them and estimated (and marked) when it does
//! not, and streams that break, fail or are abandoned end for the client and are recorded so.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use modelgate_e2e::exchange::{
    chat_answer, chat_events, request_id, sha256_hex, Script, ScriptedStack, TeamSettings,
    INPUT_COST_PER_MTOK, OUTPUT_COST_PER_MTOK, SCRIPTED_MODEL,
};
use serde_json::{json, Value};

fn chat(stream: bool, include_usage: Option<bool>) -> Value {
    let mut body = json!({
        "model": SCRIPTED_MODEL,
        "messages": [{"role": "user", "content": "Tell me a short story."}],
        "max_tokens": 32,
        "stream": stream,
    });
    if let Some(include) = include_usage {
        body["stream_options"] = json!({"include_usage": include});
    }
    body
}

/// What the client got: status, request id, body.
struct Answer {
    status: u16,
    request_id: String,
    body: Vec<u8>,
}

async fn post(stack: &ScriptedStack, key: &str, path: &str, body: &Value) -> Answer {
    let response = stack.send_json(key, path, body).await;
    let status = response.status().as_u16();
    let request_id = request_id(&response);
    // A cut stream ends the body with an error: the client got what came before it.
    let mut body = Vec::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
    }
    Answer {
        status,
        request_id,
        body,
    }
}

fn assert_exact(record: &Value, prompt: u64, completion: u64) {
    assert_eq!(record["tokens_in"], prompt, "{record}");
    assert_eq!(record["tokens_out"], completion, "{record}");
    assert_eq!(record["tokens_estimated"], false, "{record}");
    let spend =
        (prompt as f64 * INPUT_COST_PER_MTOK + completion as f64 * OUTPUT_COST_PER_MTOK) / 1e6;
    let recorded = record["spend"].as_f64().unwrap();
    assert!(
        (recorded - spend).abs() < 1e-12,
        "spend {recorded} != {spend}: {record}"
    );
}

#[tokio::test]
async fn a_client_that_did_not_ask_for_usage_sees_no_usage_chunk_yet_is_counted_exactly() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("stream-team", TeamSettings::default()).await;
    let pieces = ["Once", " upon", " a", " time."];
    let upstream_events = chat_events(&pieces, Some((17, 4)));
    stack.upstream.script(Script::sse(upstream_events.clone()));

    let answer = post(&stack, &key, "/v1/chat/completions", &chat(true, None)).await;
    assert_eq!(answer.status, 200);
    let expected: String = chat_events(&pieces, None).concat();
    assert_eq!(
        String::from_utf8(answer.body).unwrap(),
        expected,
        "exactly what it would have seen"
    );

    let sent = stack.upstream.requests().last().unwrap().clone();
    assert_eq!(
        sent.json()["stream_options"]["include_usage"],
        true,
        "the gateway asked"
    );
    let record = stack.record(&answer.request_id).await;
    assert_exact(&record, 17, 4);
    assert_eq!(record["status"], "success", "{record}");
    assert_eq!(record["stream"], true);
    assert!(record["ttft_ms"].as_u64().unwrap() > 0, "{record}");
    assert_eq!(
        record["prompt_sha256"],
        sha256_hex(&sent.body),
        "hash of what the upstream received"
    );
    assert_eq!(
        record["response_sha256"],
        sha256_hex(upstream_events.concat().as_bytes())
    );
}

#[tokio::test]
async fn a_client_that_asked_for_usage_gets_the_stream_as_the_upstream_sent_it() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("usage-team", TeamSettings::default()).await;
    let upstream_events = chat_events(&["Hi", "!"], Some((9, 2)));
    stack.upstream.script(Script::sse(upstream_events.clone()));

    let body = chat(true, Some(true));
    let answer = post(&stack, &key, "/v1/chat/completions", &body).await;
    assert_eq!(answer.body, upstream_events.concat().into_bytes());
    let sent = stack.upstream.requests().last().unwrap().clone();
    assert_eq!(sent.json(), body, "nothing to change in the request");
    assert_exact(&stack.record(&answer.request_id).await, 9, 2);
}

#[tokio::test]
async fn an_upstream_that_reports_no_usage_is_estimated_and_marked() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("estimate-team", TeamSettings::default()).await;
    stack.upstream.script(Script::sse(chat_events(
        &["The", " end", " of", " it."],
        None,
    )));
    let answer = post(&stack, &key, "/v1/chat/completions", &chat(true, None)).await;
    assert_eq!(answer.status, 200);
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["tokens_estimated"], true, "{record}");
    assert!(record["tokens_in"].as_u64().unwrap() > 0, "{record}");
    assert!(record["tokens_out"].as_u64().unwrap() >= 4, "{record}");
    assert_eq!(record["status"], "success");

    stack
        .upstream
        .script(Script::json(200, &chat_answer("Fine, thanks.", None)));
    let answer = post(&stack, &key, "/v1/chat/completions", &chat(false, None)).await;
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["tokens_estimated"], true, "{record}");
    assert!(record["tokens_out"].as_u64().unwrap() > 0, "{record}");
}

#[tokio::test]
async fn non_streamed_and_embedding_answers_are_counted_exactly() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("plain-team", TeamSettings::default()).await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("Hello.", Some((11, 3)))));
    let answer = post(&stack, &key, "/v1/chat/completions", &chat(false, None)).await;
    assert_eq!(answer.status, 200);
    let record = stack.record(&answer.request_id).await;
    assert_exact(&record, 11, 3);
    assert_eq!(record["stream"], false);

    let embeddings = json!({"object": "list", "model": SCRIPTED_MODEL,
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
        "usage": {"prompt_tokens": 6, "total_tokens": 6}});
    stack.upstream.script(Script::json(200, &embeddings));
    let body = json!({"model": SCRIPTED_MODEL, "input": "embed these words please"});
    let answer = post(&stack, &key, "/v1/embeddings", &body).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&answer.body).unwrap(),
        embeddings
    );
    assert_exact(&stack.record(&answer.request_id).await, 6, 0);
}

#[tokio::test]
async fn ollama_streams_are_counted_from_their_last_line() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("ollama-team", TeamSettings::default()).await;
    let line = |content: &str| json!({"model": SCRIPTED_MODEL, "message": {"role": "assistant", "content": content}, "done": false});
    let mut last = line("");
    last["done"] = json!(true);
    last["prompt_eval_count"] = json!(13);
    last["eval_count"] = json!(2);
    stack
        .upstream
        .script(Script::ndjson(vec![line("Hi"), line(" there"), last]));
    let body = json!({"model": SCRIPTED_MODEL, "messages": [{"role": "user", "content": "hello"}]});
    let answer = post(&stack, &key, "/api/chat", &body).await;
    assert_eq!(String::from_utf8(answer.body).unwrap().lines().count(), 3);
    let sent = stack.upstream.last_json();
    assert!(
        sent.get("stream_options").is_none(),
        "Ollama needs no include_usage: {sent}"
    );
    let record = stack.record(&answer.request_id).await;
    assert_exact(&record, 13, 2);
    assert_eq!(record["stream"], true);
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_for_the_client_and_is_recorded_errored() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("cut-team", TeamSettings::default()).await;
    let events = chat_events(&["One", " two", " three", " four"], Some((5, 4)));
    stack
        .upstream
        .script(Script::sse(events[..3].to_vec()).cut());
    let started = Instant::now();
    let answer = post(&stack, &key, "/v1/chat/completions", &chat(true, None)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the client does not hang"
    );
    assert_eq!(answer.status, 200);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("One") && !text.contains("[DONE]"), "{text}");
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["status"], "errored", "{record}");
    assert!(
        record["tokens_out"].as_u64().unwrap() >= 2,
        "tokens so far: {record}"
    );
    assert_eq!(record["tokens_estimated"], true);
}

#[tokio::test]
async fn an_error_in_the_middle_of_a_stream_reaches_the_client_and_the_record() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("midfail-team", TeamSettings::default()).await;
    let mut events = chat_events(&["Partial"], None)[..2].to_vec();
    events.push(format!(
        "data: {}\n\n",
        json!({"error": {"message": "CUDA error: out of memory", "type": "server_error", "code": 500}})
    ));
    events.push("data: [DONE]\n\n".to_string());
    stack.upstream.script(Script::sse(events));
    let answer = post(&stack, &key, "/v1/chat/completions", &chat(true, None)).await;
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("out of memory"), "{text}");
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["status"], "errored", "{record}");
    assert_eq!(record["reason"], "upstream_stream_error", "{record}");
}

#[tokio::test]
async fn upstream_errors_come_back_in_openai_shape_and_are_recorded() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("error-team", TeamSettings::default()).await;
    stack.upstream.script(Script {
        status: 500,
        content_type: "text/plain".to_string(),
        chunks: vec!["model crashed".into()],
        chunk_delay: Duration::ZERO,
        cut: false,
    });
    let answer = post(&stack, &key, "/v1/chat/completions", &chat(true, None)).await;
    assert_eq!(answer.status, 500);
    let error: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(error["error"]["code"], "upstream_error", "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model crashed"));
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["status"], "errored", "{record}");
    assert_eq!(record["http_status"], 500);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_recorded_cancelled_with_tokens_so_far() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("cancel-team", TeamSettings::default()).await;
    let pieces: Vec<String> = (0..40).map(|i| format!(" word{i}")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    stack
        .upstream
        .script(Script::sse(chat_events(&pieces, Some((7, 40)))).delay(Duration::from_millis(100)));
    let mut response = stack
        .gateway()
        .request(http::Method::POST, "/v1/chat/completions")
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(chat(true, None).to_string())
        .send()
        .await
        .expect("send");
    let request_id = response.headers()["x-modelgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut seen = String::new();
    while !seen.contains("word3") {
        let chunk = response.chunk().await.expect("read").expect("more");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let record = stack.record(&request_id).await;
    assert_eq!(record["status"], "cancelled", "{record}");
    let out = record["tokens_out"].as_u64().unwrap();
    assert!(
        (4..40).contains(&out),
        "tokens so far, not the whole answer: {record}"
    );
    assert!(record["tokens_in"].as_u64().unwrap() > 0);
}
