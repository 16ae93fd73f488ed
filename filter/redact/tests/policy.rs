//! Policy actions, directions, custom rules, and the JSON body helpers.

#![cfg(test)]

use modelgate_redact::{
    process_response_body, redact_request_body, EntityType, Phase, PlaceholderMap, PolicyError,
    Redactor, Verdict,
};
use serde_json::Value;

#[test]
fn actions_per_type() {
    let r = Redactor::from_json(
        r#"{"entities": {"PERSON": "reversible", "EMAIL_ADDRESS": "reversible", "IP_ADDRESS": "off",
            "CREDIT_CARD": "block"}}"#,
    )
    .unwrap();
    let mut map = PlaceholderMap::new();
    let text = "Priya Raman (priya@example.com) met Aisha; Priya Raman again from 10.0.0.1 with 4111 1111 1111 1111";
    let out = r.redact(text, Phase::Request, &mut map);
    assert_eq!(
        out.text,
        "<PERSON_1> (<EMAIL_ADDRESS_1>) met <PERSON_2>; <PERSON_1> again from 10.0.0.1 with <CREDIT_CARD>"
    );
    assert_eq!(
        out.verdict,
        Verdict::Block {
            entity_types: vec![EntityType::CreditCard]
        }
    );
    assert_eq!(
        map.restore(&out.text),
        text.replace("4111 1111 1111 1111", "<CREDIT_CARD>")
    );
    assert_eq!(
        out.counts(),
        vec![
            (EntityType::EmailAddress, 1),
            (EntityType::CreditCard, 1),
            (EntityType::Person, 3)
        ]
    );
}

#[test]
fn directions() {
    let r = Redactor::from_json(r#"{"direction": "request", "entities": {"EMAIL_ADDRESS": {"action": "block", "direction": "both"}}}"#)
        .unwrap();
    let mut map = PlaceholderMap::new();
    // Responses cannot be refused: block masks there; request-only rules do not apply.
    let out = r.redact("a@example.com and Priya Raman", Phase::Response, &mut map);
    assert_eq!(out.text, "<EMAIL_ADDRESS> and Priya Raman");
    assert_eq!(out.verdict, Verdict::Allow);
}

#[test]
fn high_trust_bypasses() {
    let r = Redactor::from_json(r#"{"high_trust": true}"#).unwrap();
    let out = r.redact(
        "jane@example.com",
        Phase::Request,
        &mut PlaceholderMap::new(),
    );
    assert_eq!(out.text, "jane@example.com");
    assert_eq!(out.verdict, Verdict::Bypassed);
}

#[test]
fn custom_patterns_and_deny_terms() {
    let r = Redactor::from_json(
        r#"{"default_action": "off",
            "custom_patterns": [{"name": "EMPLOYEE_ID", "pattern": "\\bEMP-[0-9]{6}\\b"}],
            "deny_terms": [{"name": "CODENAME", "terms": ["Bluebird", "Project Nightjar"], "action": "block"}]}"#,
    )
    .unwrap();
    let out = r.redact(
        "EMP-123456 works on project nightjar, not bluebirds",
        Phase::Request,
        &mut PlaceholderMap::new(),
    );
    assert_eq!(out.text, "<EMPLOYEE_ID> works on <CODENAME>, not bluebirds");
    assert_eq!(
        out.verdict,
        Verdict::Block {
            entity_types: vec![EntityType::Custom("CODENAME".into())]
        }
    );
}

#[test]
fn invalid_policies_are_rejected() {
    assert!(matches!(
        Redactor::from_json(r#"{"entities": {"NAME": "mask"}}"#),
        Err(PolicyError::UnknownEntity(_))
    ));
    assert!(matches!(
        Redactor::from_json(r#"{"custom_patterns": [{"name": "PERSON", "pattern": "x"}]}"#),
        Err(PolicyError::InvalidName(_))
    ));
    assert!(matches!(
        Redactor::from_json(r#"{"custom_patterns": [{"name": "X", "pattern": "("}]}"#),
        Err(PolicyError::Pattern { .. })
    ));
    assert!(matches!(
        Redactor::from_json(r#"{"custom_patterns": [{"name": "X", "pattern": "a*"}]}"#),
        Err(PolicyError::EmptyMatch(_))
    ));
    assert!(matches!(
        Redactor::from_json(r#"{"bogus": 1}"#),
        Err(PolicyError::Field { field, .. }) if field == "bogus"
    ));
    assert!(matches!(
        Redactor::from_json("\"mask\""),
        Err(PolicyError::Invalid(_))
    ));
    assert!(matches!(
        Redactor::from_json(r#"{"entities": "#),
        Err(PolicyError::Json(_))
    ));
    // A wrong value is reported with the path of its field.
    let err = Redactor::from_json(r#"{"deny_terms": [{"terms": ["x"], "action": "hide"}]}"#)
        .err()
        .unwrap();
    assert!(
        matches!(&err, PolicyError::Field { field, .. } if field == "deny_terms[0].action"),
        "{err:?}"
    );
    assert!(Redactor::from_json("").is_ok() && Redactor::from_json("{}").is_ok());
}

#[test]
fn request_body_only_content_changes() {
    // The narrow scope: message text only (the full default is in tests/scope.rs).
    let r = Redactor::from_json(r#"{"scope": "messages", "entities": {"PERSON": "reversible"}}"#)
        .unwrap();
    let body = br#"{"model":"llama3","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"I am Priya Raman, jane@example.com"},{"type":"image_url","image_url":{"url":"https://x/jane@example.com.png"}}]}],"temperature":0.2,"user":"jane@example.com","stream":true}"#;
    let mut map = PlaceholderMap::new();
    let out = redact_request_body(&r, body, &mut map).unwrap();
    let v: Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
    let want: Value = serde_json::from_str(r#"{"model":"llama3","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"I am <PERSON_1>, <EMAIL_ADDRESS>"},{"type":"image_url","image_url":{"url":"https://x/jane@example.com.png"}}]}],"temperature":0.2,"user":"jane@example.com","stream":true}"#).unwrap();
    assert_eq!(v, want);
    // Key order is kept.
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "messages", "temperature", "user", "stream"]);

    for body in [
        r#"{"model":"m","prompt":["call 415-555-2671", 42]}"#,
        r#"{"model":"m","input":"call 415-555-2671"}"#,
        r#"{"model":"m","prompt":"call 415-555-2671","system":"x"}"#,
    ] {
        let out = redact_request_body(&r, body.as_bytes(), &mut map).unwrap();
        let text = String::from_utf8(out.body.unwrap()).unwrap();
        assert!(
            text.contains("call <PHONE_NUMBER>") && !text.contains("2671"),
            "{text}"
        );
    }
    let untouched =
        redact_request_body(&r, br#"{"model":"m","prompt":"hello"}"#, &mut map).unwrap();
    assert_eq!(untouched.body, None);
    assert!(redact_request_body(&r, b"[1]", &mut map).is_err());
    assert!(redact_request_body(&r, b"{", &mut map).is_err());
}

#[test]
fn response_body_restores_and_redacts_new_values() {
    let r = Redactor::from_json(r#"{"direction": "both", "entities": {"PERSON": "reversible"}}"#)
        .unwrap();
    let mut map = PlaceholderMap::new();
    let req = redact_request_body(
        &r,
        br#"{"messages":[{"role":"user","content":"I am Priya Raman"}]}"#,
        &mut map,
    )
    .unwrap();
    assert!(req.body.is_some());
    let answer = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hello <PERSON_1>! Mail bob@example.com"}}],"usage":{"total_tokens":9}}"#;
    let out = process_response_body(&r, answer, &map).unwrap();
    let v: Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello Priya Raman! Mail <EMAIL_ADDRESS>"
    );
    assert_eq!(v["usage"]["total_tokens"], 9);
    let ollama =
        br#"{"model":"m","message":{"role":"assistant","content":"Hi <PERSON_1>"},"done":true}"#;
    let out = process_response_body(&r, ollama, &map).unwrap();
    let v: Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
    assert_eq!(v["message"]["content"], "Hi Priya Raman");
}
