//! Redaction through the real Envoy and filter: a team's policy (set with the control plane)
//! keeps values out of what reaches the model, gives reversible ones back to the client, in
//! plain and streamed answers however the upstream splits them, removes what the model made
//! up, refuses what must not be sent, and lets a high-trust team through, marked.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use modelgate_e2e::exchange::{
    chat_answer, chat_events, request_id, Script, ScriptedStack, TeamSettings, SCRIPTED_MODEL,
};
use serde_json::{json, Value};

const REVERSIBLE: &str = r#"{"default_action": "off", "entities": {"PERSON": "reversible", "EMAIL_ADDRESS": "reversible"}}"#;

/// What a client wrote, with the values that must not reach the model.
const PROMPT: &str = "Please write to Priya Raman at priya.raman@example.com about the invoice.";
const ORIGINALS: [&str; 2] = ["Priya Raman", "priya.raman@example.com"];

fn chat(content: &str, stream: bool) -> Value {
    json!({"model": SCRIPTED_MODEL, "messages": [{"role": "user", "content": content}],
           "max_tokens": 64, "stream": stream})
}

fn policy(json: &str) -> TeamSettings {
    TeamSettings {
        redaction_policy_json: json.to_string(),
        ..TeamSettings::default()
    }
}

struct Answer {
    status: u16,
    request_id: String,
    body: String,
    /// When each body chunk arrived, with its bytes.
    chunks: Vec<(Duration, String)>,
}

async fn post(stack: &ScriptedStack, key: &str, body: &Value) -> Answer {
    let started = Instant::now();
    let mut response = stack.send_json(key, "/v1/chat/completions", body).await;
    let status = response.status().as_u16();
    let request_id = request_id(&response);
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("read the answer") {
        chunks.push((
            started.elapsed(),
            String::from_utf8_lossy(&chunk).into_owned(),
        ));
    }
    Answer {
        status,
        request_id,
        body: chunks.iter().map(|(_, c)| c.as_str()).collect(),
        chunks,
    }
}

/// The generated text of an SSE answer, checking every event is JSON the SDK can read.
fn streamed_text(body: &str) -> String {
    let mut text = String::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect::<Vec<_>>()
            .join("\n");
        if data == "[DONE]" || data.is_empty() {
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        for choice in chunk["choices"].as_array().unwrap() {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    text
}

#[tokio::test]
async fn a_masked_request_reaches_the_upstream_without_any_original_value() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key("mask-team", policy(r#"{"default_action": "mask"}"#))
        .await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("Done.", Some((20, 2)))));
    let prompt =
        "Card 4111 1111 1111 1111, SSN 219-09-9999, phone +1 415 555 0132, mail a.b@example.org";
    let answer = post(&stack, &key, &chat(prompt, false)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let received = stack.upstream.requests().last().unwrap().clone();
    let received_text = String::from_utf8_lossy(&received.body);
    for original in [
        "4111 1111 1111 1111",
        "219-09-9999",
        "415 555 0132",
        "a.b@example.org",
    ] {
        assert!(
            !received_text.contains(original),
            "{original} reached the upstream: {received_text}"
        );
    }
    assert_eq!(
        received.json()["messages"][0]["content"],
        "Card <CREDIT_CARD>, SSN <US_SSN>, phone <PHONE_NUMBER>, mail <EMAIL_ADDRESS>"
    );
    let record = stack.record(&answer.request_id).await;
    let redactions = &record["redactions"];
    for entity in ["CREDIT_CARD", "US_SSN", "PHONE_NUMBER", "EMAIL_ADDRESS"] {
        assert_eq!(redactions[entity], 1, "{record}");
    }
    assert_eq!(record["redaction_bypassed"], false);
}

#[tokio::test]
async fn reversible_values_come_back_in_a_plain_answer() {
    let stack = ScriptedStack::start().await;
    let key = stack.key("reversible-team", policy(REVERSIBLE)).await;
    stack.upstream.script(Script::json(
        200,
        &chat_answer(
            "Dear <PERSON_1>, a copy went to <EMAIL_ADDRESS_1>.",
            Some((18, 12)),
        ),
    ));
    let answer = post(&stack, &key, &chat(PROMPT, false)).await;
    let received = stack.upstream.last_json();
    let content = received["messages"][0]["content"].as_str().unwrap();
    assert_eq!(
        content,
        "Please write to <PERSON_1> at <EMAIL_ADDRESS_1> about the invoice."
    );
    let answer: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Dear Priya Raman, a copy went to priya.raman@example.com."
    );
}

#[tokio::test]
async fn reversible_values_come_back_in_a_stream_even_split_across_events() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key("stream-reversible-team", policy(REVERSIBLE))
        .await;
    let pieces = [
        "Dear <PER",
        "SON_1>, a copy",
        " went to <EMAIL_",
        "ADDRESS",
        "_1>.",
    ];
    stack
        .upstream
        .script(Script::sse(chat_events(&pieces, Some((18, 12)))));
    let answer = post(&stack, &key, &chat(PROMPT, true)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        streamed_text(&answer.body),
        "Dear Priya Raman, a copy went to priya.raman@example.com."
    );
    assert!(answer.body.ends_with("data: [DONE]\n\n"), "{}", answer.body);
    assert!(
        !answer.body.contains("\"usage\""),
        "the client did not ask for usage"
    );
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["tokens_out"], 12, "{record}");
    assert_eq!(record["redactions"]["PERSON"], 1, "{record}");
}

#[tokio::test]
async fn values_the_upstream_injects_are_removed_even_split_across_events() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key(
            "response-team",
            policy(r#"{"default_action": "mask", "direction": "response"}"#),
        )
        .await;
    let pieces = [
        "Call 415-55",
        "5-0132 or mail le",
        "ak@corp.exa",
        "mple today.",
    ];
    stack
        .upstream
        .script(Script::sse(chat_events(&pieces, None)));
    let answer = post(&stack, &key, &chat("who do I call?", true)).await;
    let mut so_far = String::new();
    for (_, chunk) in &answer.chunks {
        so_far.push_str(chunk);
        for leaked in ["415-55", "5-0132", "leak@", "ak@corp", "corp.example"] {
            assert!(
                !so_far.contains(leaked),
                "{leaked} reached the client: {so_far}"
            );
        }
    }
    assert_eq!(
        streamed_text(&answer.body),
        "Call <PHONE_NUMBER> or mail <EMAIL_ADDRESS> today."
    );
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["redactions"]["PHONE_NUMBER"], 1, "{record}");
    assert_eq!(record["redactions"]["EMAIL_ADDRESS"], 1, "{record}");

    // The same in a plain answer.
    stack.upstream.script(Script::json(
        200,
        &chat_answer("Mail leak@corp.example now.", None),
    ));
    let answer = post(&stack, &key, &chat("who do I mail?", false)).await;
    assert!(
        !answer.body.contains("leak@corp.example"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("<EMAIL_ADDRESS>"), "{}", answer.body);
}

#[tokio::test]
async fn block_mode_refuses_and_nothing_reaches_the_upstream() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key(
            "block-team",
            policy(r#"{"default_action": "off", "entities": {"US_SSN": "block"}}"#),
        )
        .await;
    let before = stack.upstream.requests().len();
    let answer = post(&stack, &key, &chat("My SSN is 219-09-9999.", false)).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let error: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(error["error"]["code"], "pii_blocked");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("US_SSN") && !message.contains("219-09"),
        "{message}"
    );
    assert_eq!(
        stack.upstream.requests().len(),
        before,
        "nothing went upstream"
    );
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["status"], "blocked", "{record}");
    assert_eq!(record["reason"], "pii_blocked", "{record}");
    assert_eq!(record["redactions"]["US_SSN"], 1, "{record}");
}

#[tokio::test]
async fn a_high_trust_team_bypasses_and_its_records_say_so() {
    let stack = ScriptedStack::start().await;
    let settings = TeamSettings {
        redaction_policy_json: r#"{"default_action": "mask"}"#.to_string(),
        high_trust: true,
        keep_redacted_prompt: true,
    };
    let key = stack.key("trusted-team", settings).await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("ok", Some((9, 1)))));
    let answer = post(&stack, &key, &chat(PROMPT, false)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(stack.upstream.last_json()["messages"][0]["content"], PROMPT);
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["redaction_bypassed"], true, "{record}");
    let kept = record["prompt_redacted"].as_str().unwrap_or_default();
    for original in ORIGINALS {
        assert!(
            !kept.contains(original),
            "the record holds {original}: {record}"
        );
    }
}

#[tokio::test]
async fn the_kept_prompt_holds_no_original_value() {
    let stack = ScriptedStack::start().await;
    let settings = TeamSettings {
        redaction_policy_json: REVERSIBLE.to_string(),
        keep_redacted_prompt: true,
        ..TeamSettings::default()
    };
    let key = stack.key("keeping-team", settings).await;
    stack
        .upstream
        .script(Script::json(200, &chat_answer("ok", Some((9, 1)))));
    let prompt = format!("{PROMPT} My card is 4111 1111 1111 1111.");
    let answer = post(&stack, &key, &chat(&prompt, false)).await;
    let record = stack.record(&answer.request_id).await;
    let kept = record["prompt_redacted"].as_str().expect("a kept prompt");
    assert_eq!(
        kept,
        "Please write to <PERSON_1> at <EMAIL_ADDRESS_1> about the invoice. My card is <CREDIT_CARD>."
    );
}

/// Time to first token with reversible redaction on and off, against the same scripted
/// stream (first event after 50 ms, then one every 10 ms).
#[tokio::test]
async fn time_to_first_token_with_reversible_mode() {
    let stack = ScriptedStack::start().await;
    let plain = stack.key("ttft-plain", TeamSettings::default()).await;
    let reversible = stack.key("ttft-reversible", policy(REVERSIBLE)).await;
    let pieces: Vec<String> = (0..20).map(|i| format!(" token{i}")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let mut measured = Vec::new();
    for (name, key) in [("off", &plain), ("reversible", &reversible)] {
        let mut firsts = Vec::new();
        for _ in 0..5 {
            stack.upstream.script(
                Script::sse(chat_events(&pieces, Some((5, 20)))).delay(Duration::from_millis(10)),
            );
            let answer = post(&stack, key, &chat(PROMPT, true)).await;
            let first = answer
                .chunks
                .iter()
                .find(|(_, c)| c.contains("token0"))
                .map(|(t, _)| *t)
                .expect("the first token arrived");
            firsts.push(first);
        }
        firsts.sort();
        measured.push((name, firsts[firsts.len() / 2]));
    }
    println!("time to first token (median of 5), scripted upstream: {measured:?}");
    let (off, on) = (measured[0].1, measured[1].1);
    assert!(
        on < off + Duration::from_millis(100),
        "reversible mode holds the first token back: {measured:?}"
    );
}

#[tokio::test]
async fn a_large_prompt_is_checked_whole_and_one_past_the_limit_is_refused() {
    let stack = ScriptedStack::start().await;
    let key = stack
        .key("large-team", policy(r#"{"default_action": "mask"}"#))
        .await;
    // Many body chunks through Envoy; a value near the end must still be found.
    let filler = "All quiet on the western front. ".repeat(20_000);
    let prompt = format!("{filler} Mail me at late.value@example.com please.");
    stack
        .upstream
        .script(Script::json(200, &chat_answer("ok", Some((1, 1)))));
    let answer = post(&stack, &key, &chat(&prompt, false)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let received = stack.upstream.last_json();
    let content = received["messages"][0]["content"].as_str().unwrap();
    assert!(
        content.starts_with("All quiet") && content.ends_with("Mail me at <EMAIL_ADDRESS> please.")
    );
    assert_eq!(
        content.len(),
        filler.len() + " Mail me at <EMAIL_ADDRESS> please.".len()
    );

    let before = stack.upstream.requests().len();
    let too_large = format!("{} x@example.com", "word ".repeat(200_001));
    let answer = post(&stack, &key, &chat(&too_large, false)).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    let error: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(error["error"]["code"], "request_too_large", "{error}");
    assert_eq!(
        stack.upstream.requests().len(),
        before,
        "nothing went upstream"
    );
    let record = stack.record(&answer.request_id).await;
    assert_eq!(record["reason"], "redaction_body_too_large", "{record}");
}

/// Latency added by redaction for a 4 KB prompt: p50/p99 over the same scripted answer with
/// a masking team and a team without a policy, requests interleaved.
#[tokio::test]
async fn latency_added_by_redaction_for_a_4kb_prompt() {
    let stack = ScriptedStack::start().await;
    let plain = stack.key("latency-plain", TeamSettings::default()).await;
    let masked = stack
        .key("latency-masked", policy(r#"{"default_action": "mask"}"#))
        .await;
    let sentence = "Dear Priya Raman, the shipment to 221B Baker Street left on Monday; call +1 415 555 0132 or mail ops@example.com. ";
    let prompt: String = sentence.repeat(4096 / sentence.len() + 1)[..4096].to_string();
    let body = chat(&prompt, false);
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..120 {
        for (i, key) in [&plain, &masked].into_iter().enumerate() {
            stack
                .upstream
                .script(Script::json(200, &chat_answer("ok", Some((900, 1)))));
            let started = Instant::now();
            let answer = post(&stack, key, &body).await;
            assert_eq!(answer.status, 200);
            if round >= 20 {
                times[i].push(started.elapsed());
            }
        }
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1)]
    };
    let [mut off, mut on] = times;
    let (off50, off99, on50, on99) = (
        pct(&mut off, 0.5),
        pct(&mut off, 0.99),
        pct(&mut on, 0.5),
        pct(&mut on, 0.99),
    );
    println!(
        "4 KB prompt through Envoy, redaction off: p50 {off50:?} p99 {off99:?}; mask: p50 {on50:?} p99 {on99:?}; added p50 {:?}",
        on50.saturating_sub(off50)
    );
}
