//! Redaction scope: every string the model can read is redacted by default, structural fields
//! stay, encoded values are found and masked in place, a policy narrows the scope explicitly,
//! and answers are masked or restored field by field.

#![cfg(test)]

use modelgate_redact::{
    for_each_request_text, process_response_body, redact_request_body, FieldKind, Phase,
    PlaceholderMap, PolicyError, Redactor, Scope, StreamRestorer,
};
use serde_json::{json, Value};

fn redacted(policy: &str, body: &Value) -> (Value, PlaceholderMap) {
    let r = Redactor::from_json(policy).unwrap();
    let mut map = PlaceholderMap::new();
    let out = redact_request_body(&r, body.to_string().as_bytes(), &mut map).unwrap();
    let bytes = out.body.unwrap_or_else(|| body.to_string().into_bytes());
    (serde_json::from_slice(&bytes).unwrap(), map)
}

/// A chat request with a value in every kind of field, and structural fields that must stay.
fn chat_request() -> Value {
    json!({
        "model": "llama3",
        "user": "jane.doe@corp.com",
        "messages": [
            {"role": "system", "content": "Escalate to bob@corp.com."},
            {"role": "user", "name": "Priya Raman", "content": [
                {"type": "text", "text": "My card 4111 1111 1111 1111"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,am9obkBleGFtcGxlLmNvbQ==", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_jane@corp.com", "type": "function", "function": {
                    "name": "send_mail",
                    "arguments": "{\"to\": \"jane.doe@corp.com\", \"cc\": [\"ops\\u0040corp.com\"], \"n\": 2}"
                }}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sent to jane.doe@corp.com"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "send_mail",
            "description": "Mail someone, e.g. alice@corp.com",
            "parameters": {
                "type": "object",
                "properties": {
                    "to": {"type": "string", "format": "email", "description": "like carol@corp.com"},
                    "kind": {"type": "string", "enum": ["dave@corp.com", "plain"]}
                },
                "required": ["to"]
            }
        }}],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": {
            "type": "object", "description": "Answer for erin@corp.com"
        }}},
        "metadata": {"ticket": {"owner": "frank@corp.com"}},
        "stream": true,
        "temperature": 0.2
    })
}

#[test]
fn every_string_the_model_reads_is_redacted_and_structure_stays() {
    let (out, _) = redacted(r#"{"entities": {"PERSON": "reversible"}}"#, &chat_request());
    let text = out.to_string();
    for value in [
        "jane.doe@corp.com",
        "bob@corp.com",
        "4111",
        "Priya",
        "alice@corp.com",
        "carol@corp.com",
        "dave@corp.com",
        "erin@corp.com",
        "frank@corp.com",
        "ops\\u0040corp.com",
        "ops@corp.com",
    ] {
        assert!(
            !text.contains(value),
            "{value} reached the upstream: {text}"
        );
    }
    assert_eq!(out["user"], "<EMAIL_ADDRESS>");
    assert_eq!(out["messages"][1]["name"], "<PERSON_1>");
    assert_eq!(out["metadata"]["ticket"]["owner"], "<EMAIL_ADDRESS>");
    // Tool-call arguments are still JSON, redacted inside, numbers kept.
    let args: Value = serde_json::from_str(
        out["messages"][2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        args,
        json!({"to": "<EMAIL_ADDRESS>", "cc": ["<EMAIL_ADDRESS>"], "n": 2})
    );
    // Structural fields are exactly as sent: ids, names of functions, roles, enums, schema
    // keywords, property names, base64 payloads.
    let mut want = chat_request();
    for (pointer, masked) in [
        ("/user", "<EMAIL_ADDRESS>"),
        ("/messages/0/content", "Escalate to <EMAIL_ADDRESS>."),
        ("/messages/1/name", "<PERSON_1>"),
        ("/messages/1/content/0/text", "My card <CREDIT_CARD>"),
        ("/messages/3/content", "sent to <EMAIL_ADDRESS>"),
        (
            "/tools/0/function/description",
            "Mail someone, e.g. <EMAIL_ADDRESS>",
        ),
        (
            "/tools/0/function/parameters/properties/to/description",
            "like <EMAIL_ADDRESS>",
        ),
        (
            "/tools/0/function/parameters/properties/kind/enum/0",
            "<EMAIL_ADDRESS>",
        ),
        (
            "/response_format/json_schema/schema/description",
            "Answer for <EMAIL_ADDRESS>",
        ),
        ("/metadata/ticket/owner", "<EMAIL_ADDRESS>"),
    ] {
        *want.pointer_mut(pointer).unwrap() = json!(masked);
    }
    *want
        .pointer_mut("/messages/2/tool_calls/0/function/arguments")
        .unwrap() = out["messages"][2]["tool_calls"][0]["function"]["arguments"].clone();
    assert_eq!(out, want);
    assert_eq!(
        out["messages"][2]["tool_calls"][0]["id"], "call_jane@corp.com",
        "ids are structural"
    );
}

#[test]
fn embeddings_legacy_and_ollama_shapes() {
    for (body, field) in [
        (
            json!({"model": "e", "input": ["hi", "mail jane@corp.com"], "encoding_format": "float"}),
            "/input/1",
        ),
        (
            json!({"model": "c", "prompt": "call 415-555-2671", "suffix": "or jane@corp.com"}),
            "/suffix",
        ),
        (
            json!({"model": "o", "prompt": "x", "system": "user jane@corp.com", "format": "json", "keep_alive": "5m"}),
            "/system",
        ),
        (
            json!({"model": "o", "messages": [{"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "f", "arguments": {"to": "jane@corp.com"}}}]}]}),
            "/messages/0/tool_calls/0/function/arguments/to",
        ),
    ] {
        let (out, _) = redacted("{}", &body);
        let got = out.pointer(field).unwrap().as_str().unwrap();
        assert!(got.contains("<EMAIL_ADDRESS>"), "{field}: {out}");
        assert_eq!(out["model"], body["model"]);
        assert_eq!(out.get("format"), body.get("format"));
        assert_eq!(out.get("encoding_format"), body.get("encoding_format"));
    }
    let (out, _) = redacted("{}", &json!({"model": "c", "prompt": "call 415-555-2671"}));
    assert_eq!(out["prompt"], "call <PHONE_NUMBER>");
}

#[test]
fn encoded_values_are_found_and_masked_in_their_encoded_form() {
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content":
            "see https://x.test/u?mail=jane.doe%40corp.com&a=1 and {\"mail\": \"bob\\u0040corp.com\"}"}]
    });
    let (out, _) = redacted("{}", &body);
    assert_eq!(
        out["messages"][0]["content"],
        "see https://x.test/u?mail=<EMAIL_ADDRESS>&a=1 and {\"mail\": \"<EMAIL_ADDRESS>\"}"
    );
    // A PEM key pasted inside a JSON document (escaped newlines) is one value.
    let pem = "{\"key\": \"-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAzcd1mQ3dWkpN0iQkPBT6S8s8J2HxV8G5v6W8mRk3pXQnb7Y0\\n-----END RSA PRIVATE KEY-----\\n\"}";
    let (out, _) = redacted("{}", &json!({"model": "m", "prompt": pem}));
    let text = out["prompt"].as_str().unwrap();
    assert!(!text.contains("MIIEow"), "{text}");
    assert!(text.starts_with("{\"key\": \"<SECRET>"), "{text}");
    // Not escapes: left as written.
    let (out, _) = redacted("{}", &json!({"model": "m", "prompt": "50% off at C:\\new"}));
    assert_eq!(out["prompt"], "50% off at C:\\new");
}

#[test]
fn a_policy_narrows_the_scope_and_bad_scopes_are_refused() {
    let (out, _) = redacted(r#"{"scope": "messages"}"#, &chat_request());
    assert_eq!(out["user"], "jane.doe@corp.com");
    assert_eq!(
        out["messages"][0]["content"],
        "Escalate to <EMAIL_ADDRESS>."
    );
    assert_eq!(
        out["tools"][0]["function"]["description"],
        "Mail someone, e.g. alice@corp.com"
    );
    let (out, _) = redacted(r#"{"scope": ["tool_calls", "names"]}"#, &chat_request());
    assert_eq!(out["messages"][0]["content"], "Escalate to bob@corp.com.");
    assert_eq!(out["messages"][1]["name"], "<PERSON>");
    assert!(out["messages"][2]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap()
        .contains("<EMAIL_ADDRESS>"));

    let scope = |json: &str| Redactor::from_json(json).map(|r| r.scope());
    assert_eq!(scope("{}").unwrap(), Scope::FULL);
    assert_eq!(scope(r#"{"scope": "full"}"#).unwrap().label(), "full");
    assert_eq!(
        scope(r#"{"scope": ["names", "messages"]}"#)
            .unwrap()
            .label(),
        "messages,names"
    );
    for bad in [
        r#"{"scope": "everything"}"#,
        r#"{"scope": []}"#,
        r#"{"scope": ["messages", 3]}"#,
        r#"{"scope": ["message"]}"#,
    ] {
        let err = scope(bad).unwrap_err();
        assert!(matches!(err, PolicyError::Scope(_)), "{bad}: {err:?}");
        let message = err.to_string();
        assert!(
            message.contains("redaction scope") && message.contains("tool_calls"),
            "{message}"
        );
    }
    assert!(scope(r#"{"scope": "messages", "bogus": 1}"#).is_err());
}

#[test]
fn kinds_are_reported_to_the_visitor() {
    let mut body = chat_request();
    let mut kinds = Vec::new();
    for_each_request_text(&mut body, Scope::FULL, &mut |kind, _| kinds.push(kind));
    for kind in FieldKind::ALL {
        assert!(kinds.contains(&kind), "{kind:?}");
    }
}

#[test]
fn answers_are_masked_and_restored_in_every_text_field() {
    let policy = r#"{"direction": "both", "entities": {"PERSON": "reversible"}}"#;
    let r = Redactor::from_json(policy).unwrap();
    let mut map = PlaceholderMap::new();
    redact_request_body(
        &r,
        br#"{"messages":[{"role":"user","content":"I am Priya Raman"}]}"#,
        &mut map,
    )
    .unwrap();
    let answer = json!({"choices": [{"index": 0, "message": {
        "role": "assistant",
        "content": "Hi <PERSON_1>, write to bob@corp.com",
        "reasoning_content": "<PERSON_1> asked; bob@corp.com knows",
        "refusal": "not for bob@corp.com",
        "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "mail", "arguments": "{\"to\": \"<PERSON_1>\", \"cc\": \"bob@corp.com\"}"}}]
    }}]});
    let out = process_response_body(&r, answer.to_string().as_bytes(), &map).unwrap();
    let v: Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Hi Priya Raman, write to <EMAIL_ADDRESS>");
    assert_eq!(
        m["reasoning_content"],
        "Priya Raman asked; <EMAIL_ADDRESS> knows"
    );
    assert_eq!(m["refusal"], "not for <EMAIL_ADDRESS>");
    let args: Value = serde_json::from_str(
        m["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"to": "Priya Raman", "cc": "<EMAIL_ADDRESS>"}));
    assert_eq!(m["tool_calls"][0]["id"], "c1");
}

#[test]
fn restored_values_in_json_text_are_escaped() {
    let r = Redactor::from_json(
        r#"{"custom_patterns": [{"name": "TOKEN", "pattern": "TOK\"[a-z]+\\\\", "action": "reversible"}]}"#,
    )
    .unwrap();
    let mut map = PlaceholderMap::new();
    let masked = r.redact(r#"use TOK"abc\ now"#, Phase::Request, &mut map);
    assert_eq!(masked.text, "use <TOKEN_1> now");
    let mut restorer = StreamRestorer::in_json();
    let mut out = restorer.push("{\"k\": \"<TOK", &map);
    out.push_str(&restorer.push("EN_1>\"}", &map));
    out.push_str(&restorer.finish(&map));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["k"], r#"TOK"abc\"#);
}
