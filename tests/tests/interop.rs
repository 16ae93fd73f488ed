//! What third-party clients and servers meet at the gateway, through the real Envoy and filter:
//! a body the filter rewrites goes upstream with its own `Content-Length` (servers that refuse
//! chunked bodies answer), malformed requests get a 400 naming the field before anything goes
//! upstream, Envoy's own replies come in the same JSON error shape as the filter's, and a
//! route's output cap reaches the upstream as `max_tokens`.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use modelgate_e2e::api::{chat_body, MODEL};
use modelgate_e2e::process::run_to_success;
use modelgate_e2e::{artifacts, Behaviour, EnvoyConfig, RecordedRequest, Stack};
use modelgate_proto::v1::{CreateTeamRequest, UpdateModelRequest};
use serde_json::{json, Value};

const MASKING: &str = r#"{"default_action": "mask"}"#;
const EMAIL: &str = "priya.raman@example.com";

/// A team with this redaction policy (`""`: none) and a key of it that Envoy accepts.
async fn key(stack: &Stack, alias: &str, redaction_policy_json: &str) -> String {
    let key = stack
        .control_plane
        .create_team_key(CreateTeamRequest {
            alias: alias.to_string(),
            models: vec!["*".to_string()],
            redaction_policy_json: redaction_policy_json.to_string(),
            ..CreateTeamRequest::default()
        })
        .await;
    stack.gateway().wait_for_status(&key, 200).await;
    key
}

fn streamed() -> Value {
    let mut body = chat_body("Say hello");
    body["stream"] = json!(true);
    body
}

fn with_pii() -> Value {
    chat_body(&format!("Write to {EMAIL} about the invoice."))
}

/// The upstream got a body of exactly the announced length, not a chunked one.
fn assert_sent_with_its_length(request: &RecordedRequest) {
    assert_eq!(
        request.header("content-length"),
        Some(request.body.len().to_string().as_str()),
        "content-length of {:?}",
        request.headers
    );
    assert_eq!(
        request.header("transfer-encoding"),
        None,
        "chunked upstream"
    );
}

#[tokio::test]
async fn rewritten_bodies_go_upstream_with_their_own_length() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = key(&stack, "masking-team", MASKING).await;
    let gateway = stack.gateway();

    for strict in [false, true] {
        stack.upstream.set_behaviour(Behaviour {
            require_content_length: strict,
            ..Behaviour::default()
        });
        let answer = gateway
            .post_json("/v1/chat/completions", Some(&key), &streamed())
            .await;
        answer.assert_success();
        assert!(answer.text().contains("data: [DONE]"), "{}", answer.text());
        let sent = stack.upstream.requests().pop().unwrap();
        assert_eq!(
            sent.json()["stream_options"]["include_usage"],
            true,
            "the gateway asked for usage, so the body was rewritten"
        );
        assert_sent_with_its_length(&sent);

        let answer = gateway
            .post_json("/v1/chat/completions", Some(&key), &with_pii())
            .await;
        answer.assert_success();
        let sent = stack.upstream.requests().pop().unwrap();
        let text = String::from_utf8_lossy(&sent.body).into_owned();
        assert!(
            !text.contains(EMAIL) && text.contains("<EMAIL_ADDRESS>"),
            "{text}"
        );
        assert_sent_with_its_length(&sent);
    }
}

#[tokio::test]
async fn an_unchanged_body_goes_upstream_as_the_client_sent_it() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = key(&stack, "plain-team", "").await;
    let raw = format!(
        "{{ \"model\" : \"{MODEL}\",\n  \"messages\": [{{\"role\":\"user\",\"content\":\"hi\"}}] }}"
    );
    let answer = modelgate_e2e::api::send(
        stack
            .gateway()
            .request(http::Method::POST, "/v1/chat/completions")
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(raw.clone()),
    )
    .await;
    answer.assert_success();
    let sent = stack.upstream.requests().pop().unwrap();
    assert_eq!(sent.body, raw.as_bytes(), "byte for byte");
    assert_sent_with_its_length(&sent);
}

#[tokio::test]
async fn the_routes_output_cap_reaches_the_upstream_as_max_tokens() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    stack
        .control_plane
        .admin()
        .await
        .update_model(UpdateModelRequest {
            name: MODEL.to_string(),
            max_output_tokens: Some(128),
            ..UpdateModelRequest::default()
        })
        .await
        .expect("UpdateModel");
    // Envoy accepts the key only from a snapshot at least as new as the cap.
    let key = key(&stack, "capped-team", "").await;

    let mut unlimited = chat_body("Hello");
    unlimited.as_object_mut().unwrap().remove("max_tokens");
    let sent = sent_upstream(&stack, &key, &unlimited).await;
    assert_eq!(sent["max_tokens"], 128, "none sent: the cap");
    let mut greedy = chat_body("Hello");
    greedy.as_object_mut().unwrap().remove("max_tokens");
    greedy["max_completion_tokens"] = json!(4096);
    let sent = sent_upstream(&stack, &key, &greedy).await;
    assert_eq!(
        sent["max_completion_tokens"], 128,
        "more than the cap: lowered"
    );
    assert_eq!(sent.get("max_tokens"), None, "no second limit added");
    let smaller = chat_body("Hello");
    assert_eq!(smaller["max_tokens"], 16);
    let sent = sent_upstream(&stack, &key, &smaller).await;
    assert_eq!(sent, smaller, "a smaller limit: unchanged");
}

/// Posts a chat `body` that must succeed; the body the upstream got (with its own length).
async fn sent_upstream(stack: &Stack, key: &str, body: &Value) -> Value {
    stack
        .gateway()
        .post_json("/v1/chat/completions", Some(key), body)
        .await
        .assert_success();
    let sent = stack.upstream.requests().pop().unwrap();
    assert_sent_with_its_length(&sent);
    sent.json()
}

#[tokio::test]
async fn malformed_requests_get_a_400_naming_the_field_and_reach_nobody() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = key(&stack, "shape-team", "").await;
    let gateway = stack.gateway();
    let chat = |field: &str, value: Value| {
        let mut body = chat_body("Say hello");
        body[field] = value;
        body
    };
    let cases = [
        (
            "/v1/chat/completions",
            chat("stream", json!("yes")),
            "stream",
            "invalid_type",
        ),
        (
            "/v1/chat/completions",
            chat("messages", json!([])),
            "messages",
            "invalid_value",
        ),
        (
            "/v1/chat/completions",
            chat("messages", json!("hi")),
            "messages",
            "invalid_type",
        ),
        (
            "/v1/chat/completions",
            chat("messages", json!([{"role": "user", "content": 42}])),
            "messages[0].content",
            "invalid_type",
        ),
        (
            "/v1/chat/completions",
            chat("max_tokens", json!(-1)),
            "max_tokens",
            "invalid_value",
        ),
        (
            "/v1/embeddings",
            json!({"model": MODEL, "input": {"x": 1}}),
            "input",
            "invalid_type",
        ),
    ];
    for (path, body, param, code) in cases {
        let before = stack.upstream.requests().len();
        let answer = gateway.post_json(path, Some(&key), &body).await;
        answer.assert_error(400, code);
        assert_eq!(answer.json()["error"]["param"], param, "{body}");
        assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
        assert_eq!(
            stack.upstream.requests().len(),
            before,
            "{body} reached the upstream"
        );
        let good = gateway.chat(Some(&key)).await;
        good.assert_success();
        assert_eq!(stack.upstream.requests().len(), before + 1, "after {body}");
    }
}

/// What the OpenAI Python SDK made of the gateway's answer to `case` (see the script).
fn sdk_error(base_url: &str, key: &str, case: &str) -> Value {
    let output = run_to_success(
        Command::new(artifacts::python())
            .arg(artifacts::repo_root().join("tests/clients/sdk_errors.py"))
            .args([base_url, key, MODEL, case])
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL"),
    );
    serde_json::from_str(output.trim()).unwrap_or_else(|e| panic!("{e}: {output}"))
}

fn assert_sdk_error(got: &Value, status: u16, code: &str) {
    assert_eq!(got["status"], status, "{got}");
    assert_eq!(got["code"], code, "the SDK parsed the error: {got}");
    assert!(got["type"].as_str().is_some_and(|t| !t.is_empty()), "{got}");
}

#[tokio::test]
async fn envoys_own_replies_are_json_errors_the_sdk_parses() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = key(&stack, "errors-team", "").await;
    let gateway = stack.gateway();
    let base = gateway.url("");

    let huge = modelgate_e2e::api::send(
        gateway
            .request(http::Method::POST, "/v1/chat/completions")
            .bearer_auth(&key)
            .header("x-huge", "a".repeat(100_000))
            .header("content-type", "application/json")
            .body(chat_body("Say hello").to_string()),
    )
    .await;
    huge.assert_error(431, "request_header_fields_too_large");
    assert_sdk_error(
        &sdk_error(&base, &key, "huge_header"),
        431,
        "request_header_fields_too_large",
    );

    let unrouted = gateway
        .post_json("/unknown/endpoint", Some(&key), &json!({}))
        .await;
    unrouted.assert_error(404, "not_found");
    assert_sdk_error(&sdk_error(&base, &key, "unrouted"), 404, "not_found");

    // The filter's own refusals keep their body: nothing wraps them a second time.
    let refused = gateway
        .post_json("/v1/chat/completions", None, &chat_body("Say hello"))
        .await;
    refused.assert_error(401, "missing_api_key");
    assert_eq!(
        refused.json()["error"]["type"],
        "authentication_error",
        "{}",
        refused.summary()
    );

    // The model server goes away; policy keeps being served.
    let Stack {
        upstream,
        control_plane: _control_plane,
        envoy,
        ..
    } = stack;
    drop(upstream);
    let down = envoy.gateway().chat(Some(&key)).await;
    down.assert_error(503, "upstream_unavailable");
    assert_sdk_error(&sdk_error(&base, &key, "chat"), 503, "upstream_unavailable");
}
