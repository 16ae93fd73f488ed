//! Redaction scope through the real Envoy and filter: every field of a request the model can
//! read reaches the recording upstream masked (tool-call arguments still JSON, percent-encoded
//! values too) with a `Content-Length` that matches the body, reversible values come back in
//! the client's copy (tool-call argument deltas of a stream included), JSON-escaped values are
//! masked, rules that cover responses mask the answer (streamed or not), and the audit record
//! says which scope applied.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use modelgate_e2e::exchange::{
    chat_answer, chat_events, request_id, Script, ScriptedStack, TeamSettings, SCRIPTED_MODEL,
};
use serde_json::{json, Value};

const REVERSIBLE: &str = r#"{"entities": {"PERSON": "reversible", "EMAIL_ADDRESS": "reversible"}}"#;

fn policy(json: &str) -> TeamSettings {
    TeamSettings {
        redaction_policy_json: json.to_string(),
        ..TeamSettings::default()
    }
}

/// Posts `body` to the chat endpoint: the status, the request id and the whole answer.
async fn post(stack: &ScriptedStack, key: &str, body: &Value) -> (u16, String, String) {
    let response = stack.send_json(key, "/v1/chat/completions", body).await;
    let status = response.status().as_u16();
    let request_id = request_id(&response);
    (
        status,
        request_id,
        response.text().await.expect("read the answer"),
    )
}

/// A request with a value in every kind of field the model reads.
fn wide_request(stream: bool) -> Value {
    json!({
        "model": SCRIPTED_MODEL,
        "stream": stream,
        "user": "jane.doe@corp.example",
        "messages": [
            {"role": "system", "content": "You help Priya Raman."},
            {"role": "user", "name": "Priya Raman",
             "content": [{"type": "text", "text": "Open https://crm.example/find?mail=jane.doe%40corp.example"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "send_mail",
                             "arguments": "{\"to\": \"bob.stone@corp.example\", \"count\": 2}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "queued for bob.stone@corp.example"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "send_mail",
            "description": "Send mail, for example to carol.white@corp.example",
            "parameters": {"type": "object", "required": ["to"], "properties": {
                "to": {"type": "string", "description": "Recipient such as dave.green@corp.example"},
                "count": {"type": "integer"}
            }}
        }}],
        "tool_choice": "auto",
        "x_ticket": {"reporter": "erin.black@corp.example"},
        "max_tokens": 64
    })
}

const ORIGINALS: [&str; 7] = [
    "jane.doe",
    "Priya Raman",
    "bob.stone",
    "carol.white",
    "dave.green",
    "erin.black",
    "%40corp",
];

#[tokio::test]
async fn every_field_the_model_reads_reaches_the_upstream_masked() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key("scope-mask", policy(r#"{"default_action": "mask"}"#))
        .await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("Done.", Some((40, 2)))));
    let (status, request_id, body) = post(&stack, &key, &wide_request(false)).await;
    assert_eq!(status, 200, "{body}");

    let received = stack.upstream.requests().last().unwrap().clone();
    let text = String::from_utf8_lossy(&received.body).into_owned();
    for original in ORIGINALS {
        assert!(
            !text.contains(original),
            "{original} reached the upstream: {text}"
        );
    }
    assert_eq!(
        received.header("content-length"),
        Some(received.body.len().to_string().as_str()),
        "Content-Length is the forwarded body's length"
    );
    assert_eq!(received.header("transfer-encoding"), None);
    let sent = received.json();
    let args = sent["messages"][2]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(args).expect("arguments are still JSON"),
        json!({"to": "<EMAIL_ADDRESS>", "count": 2})
    );
    assert_eq!(
        sent["messages"][1]["content"][0]["text"],
        "Open https://crm.example/find?mail=<EMAIL_ADDRESS>"
    );
    assert_eq!(sent["messages"][1]["name"], "<PERSON>");
    assert_eq!(sent["user"], "<EMAIL_ADDRESS>");
    assert_eq!(sent["x_ticket"]["reporter"], "<EMAIL_ADDRESS>");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["properties"]["to"]["description"],
        "Recipient such as <EMAIL_ADDRESS>"
    );
    // Structural fields are as the client sent them.
    let original = wide_request(false);
    for pointer in [
        "/model",
        "/tool_choice",
        "/messages/2/tool_calls/0/id",
        "/tools/0/function/name",
        "/tools/0/function/parameters/required",
        "/tools/0/function/parameters/properties/to/type",
    ] {
        assert_eq!(
            sent.pointer(pointer),
            original.pointer(pointer),
            "{pointer}"
        );
    }
    let record = stack.record(&request_id).await;
    assert_eq!(record["redaction_scope"], "full", "{record}");
    assert!(
        record["redactions"]["EMAIL_ADDRESS"].as_u64().unwrap() >= 7,
        "{record}"
    );
}

#[tokio::test]
async fn a_narrowed_scope_leaves_other_fields_and_the_record_says_so() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key("scope-narrow", policy(r#"{"scope": "messages"}"#))
        .await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("Done.", None)));
    let (status, request_id, body) = post(&stack, &key, &wide_request(false)).await;
    assert_eq!(status, 200, "{body}");
    let sent = stack.upstream.last_json();
    assert_eq!(sent["messages"][0]["content"], "You help <PERSON>.");
    assert_eq!(sent["x_ticket"]["reporter"], "erin.black@corp.example");
    let record = stack.record(&request_id).await;
    assert_eq!(record["redaction_scope"], "messages", "{record}");
}

/// SSE events of an assistant that makes one tool call, its arguments in `pieces`.
fn tool_call_events(pieces: &[&str]) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
               "model": SCRIPTED_MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                    "function": {"name": "send_mail", "arguments": ""}}]}),
            Value::Null,
        ),
    ];
    events.extend(pieces.iter().map(|piece| {
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            Value::Null,
        )
    }));
    events.push(chunk(json!({}), json!("tool_calls")));
    let mut events: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    events.push("data: [DONE]\n\n".to_string());
    events
}

#[tokio::test]
async fn reversible_values_come_back_in_streamed_tool_call_arguments() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("scope-reversible", policy(REVERSIBLE)).await;
    stack.upstream.script(Script::sse(tool_call_events(&[
        "{\"to\": \"<EMAIL_",
        "ADDRESS_1>\", \"note\": \"for <PER",
        "SON_1>\"}",
    ])));
    let request = json!({"model": SCRIPTED_MODEL, "stream": true, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Please write to Priya Raman at priya.raman@example.com"}]});
    let (status, _, body) = post(&stack, &key, &request).await;
    assert_eq!(status, 200, "{body}");
    let sent = stack.upstream.last_json();
    assert_eq!(
        sent["messages"][0]["content"],
        "Please write to <PERSON_1> at <EMAIL_ADDRESS_1>"
    );
    let arguments = streamed_text(&body, |delta| {
        delta["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|call| call["function"]["arguments"].as_str())
            .collect()
    });
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).expect("arguments are JSON"),
        json!({"to": "priya.raman@example.com", "note": "for Priya Raman"})
    );
}

#[tokio::test]
async fn a_json_escaped_value_reaches_the_upstream_masked() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key("scope-escaped", policy(r#"{"default_action": "mask"}"#))
        .await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("Done.", None)));
    // `\u0040` is `@` written as a JSON escape in the raw body: serde would never send it so.
    let raw = format!(
        r#"{{"model": "{SCRIPTED_MODEL}", "max_tokens": 16, "messages": [{{"role": "user", "content": "Mail jane.doe\u0040corp.com today"}}]}}"#
    );
    let response = stack
        .gateway()
        .request(http::Method::POST, "/v1/chat/completions")
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let received = stack.upstream.requests().last().unwrap().clone();
    let text = String::from_utf8_lossy(&received.body).into_owned();
    assert!(
        !text.contains("jane.doe") && !text.contains("corp.com"),
        "the escaped address reached the upstream: {text}"
    );
    assert_eq!(
        received.json()["messages"][0]["content"],
        "Mail <EMAIL_ADDRESS> today"
    );
    assert_eq!(
        received.header("content-length"),
        Some(received.body.len().to_string().as_str())
    );
}

/// Email addresses are masked both ways; SSNs in prompts only.
const ANSWERS_MASKED: &str = r#"{"default_action": "off", "entities": {
    "EMAIL_ADDRESS": {"action": "mask", "direction": "both"}, "US_SSN": "mask"}}"#;

#[tokio::test]
async fn rules_that_cover_responses_mask_the_answer_streamed_or_not() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("scope-answers", policy(ANSWERS_MASKED)).await;
    let answer = "Write to jane.doe@corp.example about 219-09-9999.";
    let request = |stream: bool| {
        json!({"model": SCRIPTED_MODEL, "stream": stream, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Who has SSN 219-09-9999? Ask bob@corp.example"}]})
    };

    stack
        .upstream
        .script(Script::json(200, &chat_answer(answer, Some((12, 9)))));
    let (status, _, body) = post(&stack, &key, &request(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stack.upstream.last_json()["messages"][0]["content"],
        "Who has SSN <US_SSN>? Ask <EMAIL_ADDRESS>"
    );
    let client: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        client["choices"][0]["message"]["content"], "Write to <EMAIL_ADDRESS> about 219-09-9999.",
        "the address is masked in the answer; the request-only SSN rule leaves answers alone"
    );

    // The address split across three events is still found.
    stack.upstream.script(Script::sse(chat_events(
        &["Write to jane.do", "e@corp.exam", "ple about 219-09-9999."],
        Some((12, 9)),
    )));
    let (status, _, body) = post(&stack, &key, &request(true)).await;
    assert_eq!(status, 200, "{body}");
    let content = streamed_text(&body, |delta| {
        delta["content"].as_str().unwrap_or_default().to_owned()
    });
    assert_eq!(content, "Write to <EMAIL_ADDRESS> about 219-09-9999.");
}

/// What a client assembles from a chat stream: `pick`'s text of every choice's delta, joined.
fn streamed_text(body: &str, pick: impl Fn(&Value) -> String) -> String {
    let mut text = String::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event.strip_prefix("data: ").unwrap_or(event);
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            text.push_str(&pick(&choice["delta"]));
        }
    }
    text
}
