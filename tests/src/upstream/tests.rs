use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Behaviour, Upstream, REPLY};
use crate::api::{send, ApiResponse, Gateway};

const REPLY_WORDS: usize = 5; // "Hello from the stand-in upstream."

fn client(upstream: &Upstream) -> Gateway {
    Gateway::new(upstream.url())
}

/// `data:` payloads of an SSE body, without the final `[DONE]`.
fn sse_events(response: &ApiResponse) -> Vec<Value> {
    let text = response.text();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "stream not terminated: {text}"
    );
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).expect("event is JSON"))
        .collect()
}

#[tokio::test]
async fn chat_completion_answers_and_counts_words_as_tokens() {
    let upstream = Upstream::start();
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "three more words"}]},
    ]});
    let response = send(
        client(&upstream)
            .request(http::Method::POST, "/v1/chat/completions")
            .header("x-test", "recorded")
            .body(body.to_string()),
    )
    .await;
    response.assert_success();
    let answer = response.json();
    assert_eq!(answer["choices"][0]["message"]["content"], REPLY);
    assert_eq!(answer["usage"]["prompt_tokens"], 5);
    assert_eq!(answer["usage"]["completion_tokens"], REPLY_WORDS);
    assert_eq!(answer["model"], "m");

    let recorded = upstream.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].header("x-test"), Some("recorded"));
    assert_eq!(recorded[0].json(), body);
}

#[tokio::test]
async fn chat_stream_sends_usage_only_when_asked() {
    let upstream = Upstream::start();
    let client = client(&upstream);
    let mut body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi there"}]});

    let plain = sse_events(&client.post_json("/v1/chat/completions", None, &body).await);
    let text: String = plain
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    assert!(plain.iter().all(|e| e.get("usage").is_none()));

    body["stream_options"] = json!({"include_usage": true});
    let with_usage = sse_events(&client.post_json("/v1/chat/completions", None, &body).await);
    assert_eq!(with_usage.len(), plain.len() + 1);
    let last = with_usage.last().expect("events");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 2);
    assert_eq!(last["usage"]["completion_tokens"], REPLY_WORDS);
}

#[tokio::test]
async fn completions_embeddings_and_model_lists() {
    let upstream = Upstream::start();
    let client = client(&upstream);
    let completion = client
        .post_json(
            "/v1/completions",
            None,
            &json!({"model": "m", "prompt": "one two"}),
        )
        .await
        .json();
    assert_eq!(completion["choices"][0]["text"], REPLY);
    assert_eq!(completion["usage"]["prompt_tokens"], 2);

    let embeddings = client
        .post_json(
            "/v1/embeddings",
            None,
            &json!({"model": "m", "input": ["a b", "c"]}),
        )
        .await
        .json();
    assert_eq!(embeddings["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(embeddings["usage"]["prompt_tokens"], 3);

    let models = send(client.request(http::Method::GET, "/v1/models"))
        .await
        .json();
    assert_eq!(models["object"], "list");
    let tags = send(client.request(http::Method::GET, "/api/tags"))
        .await
        .json();
    assert!(tags["models"].as_array().is_some_and(|m| !m.is_empty()));

    let unknown = send(client.request(http::Method::GET, "/nope")).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn ollama_streams_ndjson_unless_told_not_to() {
    let upstream = Upstream::start();
    let client = client(&upstream);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello you"}]});

    let streamed = client.post_json("/api/chat", None, &body).await;
    assert_eq!(
        streamed.header("content-type"),
        Some("application/x-ndjson")
    );
    let lines: Vec<Value> = streamed
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("NDJSON line"))
        .collect();
    let text: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(text, REPLY);
    let last = lines.last().expect("lines");
    assert_eq!(last["done"], true);
    assert_eq!(last["prompt_eval_count"], 2);
    assert_eq!(last["eval_count"], REPLY_WORDS);

    let whole = client
        .post_json(
            "/api/generate",
            None,
            &json!({"model": "m", "prompt": "x", "stream": false}),
        )
        .await
        .json();
    assert_eq!(whole["response"], REPLY);
    assert_eq!(whole["done"], true);
    assert_eq!(whole["prompt_eval_count"], 1);
}

#[tokio::test]
async fn can_fail_be_slow_and_cut_streams() {
    let upstream = Upstream::start();
    let client = client(&upstream);
    let chat =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]});

    upstream.set_behaviour(Behaviour {
        fail_status: Some(500),
        ..Behaviour::default()
    });
    let failed = client.post_json("/v1/chat/completions", None, &chat).await;
    failed.assert_error(500, "upstream_failure");

    let delay = Duration::from_millis(300);
    upstream.set_behaviour(Behaviour {
        delay,
        ..Behaviour::default()
    });
    let start = Instant::now();
    client
        .post_json("/v1/chat/completions", None, &chat)
        .await
        .assert_success();
    assert!(start.elapsed() >= delay);

    upstream.set_behaviour(Behaviour {
        cut_stream_after: Some(2),
        ..Behaviour::default()
    });
    let response = client
        .request(http::Method::POST, "/v1/chat/completions")
        .body(chat.to_string())
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "a cut stream is an error for the client"
    );
}

#[tokio::test]
async fn can_refuse_bodies_without_a_length() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let upstream = Upstream::start();
    upstream.set_behaviour(Behaviour {
        require_content_length: true,
        ..Behaviour::default()
    });
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    client(&upstream)
        .post_json("/v1/chat/completions", None, &chat)
        .await
        .assert_success();

    let body = chat.to_string();
    let mut connection = tokio::net::TcpStream::connect(upstream.addr())
        .await
        .expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: upstream\r\nconnection: close\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    connection
        .write_all(request.as_bytes())
        .await
        .expect("write");
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    assert!(answer.contains("length_required"), "{answer}");
    let last = upstream.requests().pop().expect("recorded");
    assert_eq!(last.header("transfer-encoding"), Some("chunked"));
    assert_eq!(last.body, body.as_bytes(), "still recorded whole");
}
