//! The JSON Lines batch contract shared by `modelgate redact --jsonl` and `eval/score.py`.

#![cfg(test)]

use modelgate_redact::jsonl::{redact_jsonl, JsonlError, RecordError};
use modelgate_redact::{Phase, Redactor};
use serde_json::{json, Value};

fn run(policy: &str, phase: Phase, input: &[u8]) -> (Vec<Value>, Result<(), JsonlError>) {
    let redactor = Redactor::from_json(policy).unwrap();
    let mut out = Vec::new();
    let result = redact_jsonl(&redactor, phase, input, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    let rows = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (rows, result)
}

fn char_slice(text: &str, start: u64, end: u64) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

#[test]
fn offsets_are_chars_into_unicode_text() {
    let text =
        "Ünïcödé 🙂 prefix: mail zoe@example.com, then Dr. Priya Raman — 🚀 call +44 20 7946 0958";
    let input = format!("{}\n", json!({"id": 1, "text": text}));
    let (rows, result) = run("", Phase::Request, input.as_bytes());
    result.unwrap();
    assert_eq!(rows.len(), 1);
    let entities = rows[0]["entities"].as_array().unwrap();
    let found: Vec<(String, String)> = entities
        .iter()
        .map(|e| {
            let (s, t) = (e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap());
            (
                e["type"].as_str().unwrap().to_owned(),
                char_slice(text, s, t),
            )
        })
        .collect();
    assert!(
        found.contains(&("EMAIL_ADDRESS".into(), "zoe@example.com".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("PERSON".into(), "Priya Raman".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("PHONE_NUMBER".into(), "+44 20 7946 0958".into())),
        "{found:?}"
    );
    let redacted = rows[0]["redacted"].as_str().unwrap();
    assert!(redacted.starts_with("Ünïcödé 🙂 prefix: mail <EMAIL_ADDRESS>,"));
    assert!(!redacted.contains("Priya") && !redacted.contains("7946"));
}

#[test]
fn every_record_in_order_with_its_id_blank_lines_and_crlf_tolerated() {
    let input = concat!(
        "{\"id\": \"a\", \"text\": \"nothing here\", \"kind\": \"clean\"}\n",
        "\n",
        "   \r\n",
        "{\"text\": \"jane@example.com\", \"id\": {\"doc\": 7}}\r\n",
        "{\"id\": 3, \"text\": \"\"}\n",
        // The last line may lack its newline.
        "{\"id\": null, \"text\": \"ip 10.1.2.3\"}",
    );
    let (rows, result) = run("", Phase::Request, input.as_bytes());
    result.unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": "a", "redacted": "nothing here", "entities": []}),
            json!({"id": {"doc": 7}, "redacted": "<EMAIL_ADDRESS>",
                   "entities": [{"type": "EMAIL_ADDRESS", "start": 0, "end": 16}]}),
            json!({"id": 3, "redacted": "", "entities": []}),
            json!({"id": null, "redacted": "ip <IP_ADDRESS>",
                   "entities": [{"type": "IP_ADDRESS", "start": 3, "end": 11}]}),
        ]
    );
}

#[test]
fn each_record_is_its_own_request_for_placeholders() {
    let policy = r#"{"entities": {"PERSON": "reversible"}}"#;
    let input = concat!(
        "{\"id\": 1, \"text\": \"Dear Priya Raman and Dr. Aisha Khan\"}\n",
        "{\"id\": 2, \"text\": \"Dear Dr. Aisha Khan\"}\n",
    );
    let (rows, result) = run(policy, Phase::Request, input.as_bytes());
    result.unwrap();
    assert_eq!(rows[0]["redacted"], "Dear <PERSON_1> and Dr. <PERSON_2>");
    assert_eq!(rows[1]["redacted"], "Dear Dr. <PERSON_1>");
}

#[test]
fn blocked_and_bypassed_are_reported() {
    let input = b"{\"id\": 1, \"text\": \"card 4111 1111 1111 1111, mail a@example.com\"}\n";
    let (rows, result) = run(
        r#"{"entities": {"CREDIT_CARD": "block"}}"#,
        Phase::Request,
        input,
    );
    result.unwrap();
    assert_eq!(rows[0]["blocked"], json!(["CREDIT_CARD"]));
    assert_eq!(
        rows[0]["redacted"],
        "card <CREDIT_CARD>, mail <EMAIL_ADDRESS>"
    );
    assert!(rows[0].get("bypassed").is_none());

    let (rows, result) = run(r#"{"high_trust": true}"#, Phase::Request, input);
    result.unwrap();
    assert_eq!(
        rows[0],
        json!({"id": 1, "redacted": "card 4111 1111 1111 1111, mail a@example.com",
               "entities": [], "bypassed": true})
    );
}

#[test]
fn the_phase_selects_the_rules() {
    let policy = r#"{"entities": {"EMAIL_ADDRESS": {"action": "mask", "direction": "response"}}}"#;
    let input = b"{\"id\": 1, \"text\": \"a@example.com from 10.0.0.1\"}\n";
    let (rows, _) = run(policy, Phase::Request, input);
    assert_eq!(rows[0]["redacted"], "a@example.com from <IP_ADDRESS>");
    let (rows, _) = run(policy, Phase::Response, input);
    assert_eq!(rows[0]["redacted"], "<EMAIL_ADDRESS> from 10.0.0.1");
}

/// The first bad line stops the run, names its line (blank lines counted) and leaves every
/// earlier record written; nothing after it is processed.
#[test]
fn a_bad_line_stops_with_its_line_number_after_writing_the_earlier_ones() {
    let cases: [(&[u8], RecordError); 7] = [
        (
            b"{\"id\": 9, \"text\": \"x\"",
            RecordError::Json(String::new()),
        ),
        (b"[1, 2]", RecordError::NotObject("an array")),
        (b"\"just text\"", RecordError::NotObject("a string")),
        (b"{\"text\": \"no id\"}", RecordError::MissingId),
        (b"{\"id\": 9}", RecordError::MissingText),
        (
            b"{\"id\": 9, \"text\": 42}",
            RecordError::TextNotString("a number"),
        ),
        (b"{\"id\": 9, \"text\": \"caf\xe9\"}", RecordError::NotUtf8),
    ];
    for (bad, expected) in cases {
        let mut input = b"{\"id\": 1, \"text\": \"a@example.com\"}\n\n".to_vec();
        input.extend_from_slice(bad);
        input.extend_from_slice(b"\n{\"id\": 2, \"text\": \"b@example.com\"}\n");
        let (rows, result) = run("", Phase::Request, &input);
        assert_eq!(rows.len(), 1, "{expected:?}");
        assert_eq!(rows[0]["id"], 1);
        match result {
            Err(JsonlError::Record { line: 3, reason }) => match (&reason, &expected) {
                (RecordError::Json(msg), RecordError::Json(_)) => {
                    assert!(msg.contains("column"), "{msg}");
                    assert!(!msg.contains("line"), "{msg}");
                }
                _ => assert_eq!(reason, expected),
            },
            other => panic!("{expected:?}: {other:?}"),
        }
    }
}

#[test]
fn error_messages_name_the_line() {
    let (_, result) = run("", Phase::Request, b"\n\n{\"id\": 1, \"text\": 5}\n");
    assert_eq!(
        result.unwrap_err().to_string(),
        "line 3: \"text\" must be a string, found a number"
    );
    let (_, result) = run(
        "",
        Phase::Request,
        b"{\"id\": 1, \"text\": \"x\"} trailing\n",
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "line 1: not valid JSON: trailing characters (column 24)"
    );
    let (_, result) = run("", Phase::Request, b"{\"id\": 1, \"text\": \"x\"\r\n");
    assert_eq!(
        result.unwrap_err().to_string(),
        "line 1: not valid JSON: EOF while parsing an object (column 21)"
    );
}
