//! Redaction scope through the request flow: every field the model reads goes upstream
//! masked, streamed tool-call arguments and reasoning come back restored (or masked) whatever
//! the split, and the record names the scope that applied.

use super::*;

/// A chat stream whose assistant makes one tool call with `pieces` as argument deltas, and
/// says `reasoning` in `reasoning_content`, then finishes with `tool_calls`.
fn sse_tool_call(reasoning: &[&str], pieces: &[&str]) -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": null}),
        Value::Null,
    )];
    events.extend(
        reasoning
            .iter()
            .map(|r| chunk(json!({"reasoning_content": r}), Value::Null)),
    );
    events.push(chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "send_mail", "arguments": ""}}]}),
        Value::Null,
    ));
    events.extend(pieces.iter().map(|p| {
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
            Value::Null,
        )
    }));
    events.push(chunk(json!({}), json!("tool_calls")));
    sse_body(&events)
}

/// What the client reassembles from a stream: reasoning text and the tool call's arguments.
fn reassembled(bytes: &[u8]) -> (String, String) {
    let (events, _) = client_events(bytes);
    let (mut reasoning, mut arguments) = (String::new(), String::new());
    for event in events.iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(event).unwrap();
        for choice in v["choices"].as_array().into_iter().flatten() {
            reasoning.push_str(choice["delta"]["reasoning_content"].as_str().unwrap_or(""));
            for call in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert_eq!(call["index"], 0);
                arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
    }
    (reasoning, arguments)
}

#[test]
fn every_field_the_model_reads_goes_upstream_masked_and_the_record_says_full() {
    let mut gw = Gateway::redacting(r#"{"entities": {"PERSON": "reversible"}}"#);
    let body = json!({
        "model": MODEL,
        "user": "jane.doe@corp.com",
        "messages": [
            {"role": "user", "name": "Priya Raman", "content": "mail jane.doe%40corp.com"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "send_mail", "arguments": "{\"to\":\"bob@corp.com\"}"}}]}
        ],
        "tools": [{"type": "function", "function": {"name": "send_mail",
            "description": "Mail, e.g. carol@corp.com",
            "parameters": {"type": "object", "properties": {
                "to": {"type": "string", "description": "like dave@corp.com"}}}}}],
        "x_unknown": {"note": "for erin@corp.com"}
    });
    let call = gw.send("/v1/chat/completions", &body);
    let sent: Value = serde_json::from_slice(&call.upstream_body).unwrap();
    let text = sent.to_string();
    for value in ["jane.doe", "Priya", "bob@", "carol@", "dave@", "erin@"] {
        assert!(!text.contains(value), "{value} went upstream: {text}");
    }
    let args = sent["messages"][1]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap(),
        json!({"to": "<EMAIL_ADDRESS>"})
    );
    assert_eq!(sent["messages"][0]["content"], "mail <EMAIL_ADDRESS>");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["properties"]["to"]["type"],
        "string"
    );
    assert_eq!(
        call.content_length_set(),
        Some(call.upstream_body.len().to_string().as_str())
    );
    let record = gw.log(call, 200);
    assert_eq!(record.redaction_scope, "full");
}

#[test]
fn the_record_names_a_narrowed_scope_or_none() {
    let mut gw = Gateway::redacting(r#"{"scope": ["messages", "tool_calls"]}"#);
    let call = gw.send(
        "/v1/chat/completions",
        &json!({"model": MODEL, "user": "jane@corp.com",
                "messages": [{"role": "user", "content": "jane@corp.com"}]}),
    );
    let sent: Value = serde_json::from_slice(&call.upstream_body).unwrap();
    assert_eq!(sent["user"], "jane@corp.com", "outside the narrowed scope");
    assert_eq!(sent["messages"][0]["content"], "<EMAIL_ADDRESS>");
    assert_eq!(gw.log(call, 200).redaction_scope, "messages,tool_calls");

    let mut gw = Gateway::new(|_| {});
    let call = gw.send("/v1/chat/completions", &chat("hi"));
    assert_eq!(gw.log(call, 200).redaction_scope, "");
}

#[test]
fn streamed_tool_call_arguments_are_restored_whatever_the_split() {
    let arguments = r#"{"to": "<PERSON_1>", "note": "ask <PERSON_1>"}"#;
    let mut gw = Gateway::redacting(r#"{"entities": {"PERSON": "reversible"}}"#);
    for cut in 1..arguments.len() {
        let mut call = gw.send(
            "/v1/chat/completions",
            &chat_stream("I am Priya Raman", None),
        );
        let (a, b) = arguments.split_at(cut);
        let upstream = sse_tool_call(&["<PERSON_1> wants ", "mail"], &[a, b]);
        let got = gw.answer(&mut call, 200, "text/event-stream", &[&upstream]);
        let (reasoning, args) = reassembled(&got);
        assert_eq!(reasoning, "Priya Raman wants mail", "cut {cut}");
        let args: Value = serde_json::from_str(&args)
            .unwrap_or_else(|e| panic!("cut {cut}: arguments are not JSON ({e}): {args}"));
        assert_eq!(
            args,
            json!({"to": "Priya Raman", "note": "ask Priya Raman"}),
            "cut {cut}"
        );
        gw.log(call, 200);
    }
}

#[test]
fn streamed_tool_call_arguments_are_masked_when_answers_are_covered() {
    let arguments = r#"{"to": "leak.person@example.org"}"#;
    let mut gw = Gateway::redacting(r#"{"direction": "both"}"#);
    for cut in 1..arguments.len() {
        let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", None));
        let (a, b) = arguments.split_at(cut);
        let upstream = sse_tool_call(&["mail leak.person", "@example.org"], &[a, b]);
        let got = gw.answer(&mut call, 200, "text/event-stream", &[&upstream]);
        let raw = String::from_utf8_lossy(&got).into_owned();
        assert!(!raw.contains("leak.person"), "cut {cut}: {raw}");
        let (reasoning, args) = reassembled(&got);
        assert_eq!(reasoning, "mail <EMAIL_ADDRESS>", "cut {cut}");
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"to": "<EMAIL_ADDRESS>"})
        );
        let record = gw.log(call, 200);
        assert_eq!(redactions(&record), [("EMAIL_ADDRESS".to_owned(), 2)]);
    }
}

#[test]
fn restore_only_policies_never_mask_new_values_in_answers() {
    // Direction `request`: answers only get the request's placeholders back.
    let mut gw = Gateway::redacting(r#"{"entities": {"PERSON": "reversible"}}"#);
    let mut call = gw.send(
        "/v1/chat/completions",
        &chat_stream("I am Priya Raman", None),
    );
    let upstream = sse_tool_call(
        &["<PERSON_1> and Will Smith, bob@corp.com"],
        &[r#"{"to": "<PERSON_1>", "cc": "bob@corp.com"}"#],
    );
    let got = gw.answer(&mut call, 200, "text/event-stream", &[&upstream]);
    let (reasoning, args) = reassembled(&got);
    assert_eq!(reasoning, "Priya Raman and Will Smith, bob@corp.com");
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"to": "Priya Raman", "cc": "bob@corp.com"})
    );
    let record = gw.log(call, 200);
    assert_eq!(redactions(&record), [("PERSON".to_owned(), 1)]);
}
