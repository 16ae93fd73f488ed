//! The exchange through the request flow, against a fake host: what goes upstream, what the
//! client gets back, and what the record says.

use std::rc::Rc;

use modelgate_proto::v1::{PolicySnapshot, RequestStatus, TeamPolicy, UsageRecord};
use modelgate_redact::Redactor;
use prost::Message;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::*;
use crate::audit::USAGE_QUEUE;
use crate::config::{FilterConfig, PluginConfig};
use crate::flow::{BodyVerdict, HeaderEdits, RequestFlow, RequestHeaders, Verdict};
use crate::host::fake::FakeHost;
use crate::host::Host;
use crate::policy::tests::{snapshot, ALICE_KEY};
use crate::snapshot::{publish_snapshot, SnapshotCache, SnapshotHead};
use crate::sse::SseParser;

const MODEL: &str = "llama3.1-8b";

/// A worker whose snapshot gives Alice's team `team` settings.
struct Gateway {
    host: FakeHost,
    config: Rc<FilterConfig>,
    snapshots: SnapshotCache,
    redactors: Rc<RedactorCache>,
}

/// One request in flight, and what the upstream and the client saw of it.
struct Call {
    flow: RequestFlow,
    /// The body as it went upstream.
    upstream_body: Vec<u8>,
    /// The request header edits sent with it.
    edits: HeaderEdits,
}

impl Call {
    /// The `content-length` the request goes upstream with, when the edits set one.
    fn content_length_set(&self) -> Option<&str> {
        self.edits
            .set
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| value.as_str())
    }

    fn removes(&self, header: &str) -> bool {
        self.edits.remove.iter().any(|name| name == header)
    }
}

impl Gateway {
    fn new(team: impl FnOnce(&mut TeamPolicy)) -> Self {
        Self::with_config(r#"{"default_cluster": "upstream"}"#, team)
    }

    fn with_config(config: &str, team: impl FnOnce(&mut TeamPolicy)) -> Self {
        Self::with_snapshot(config, |snap| team(&mut snap.teams[0]))
    }

    /// A worker whose snapshot `edit` changes (Alice's team is `teams[0]`, her model
    /// `models[0]`).
    fn with_snapshot(config: &str, edit: impl FnOnce(&mut PolicySnapshot)) -> Self {
        let PluginConfig::Filter(config) = PluginConfig::parse(config.as_bytes()).unwrap() else {
            panic!("not a filter config");
        };
        let host = FakeHost::new();
        let mut snap: PolicySnapshot = snapshot(1);
        snap.teams[0].models = vec!["*".to_owned()];
        // No alias: the upstream gets the body as the exchange made it.
        snap.models[0].upstream_model.clear();
        edit(&mut snap);
        snap.models[0].input_cost_per_mtok = 2.0;
        snap.models[0].output_cost_per_mtok = 10.0;
        let head = SnapshotHead {
            version: 1,
            last_contact_ms: host.now_ms(),
        };
        publish_snapshot(&host, &snap.encode_to_vec(), head).unwrap();
        Self {
            host,
            config: Rc::new(config),
            snapshots: SnapshotCache::new(),
            redactors: Rc::new(RedactorCache::new()),
        }
    }

    fn redacting(policy: &str) -> Self {
        let policy = policy.to_owned();
        Self::new(move |team| team.redaction_policy_json = policy)
    }

    fn flow(&mut self, path: &str, body: Option<&[u8]>) -> (RequestFlow, Verdict) {
        let mut flow =
            RequestFlow::new(Rc::clone(&self.config)).with_redactors(Rc::clone(&self.redactors));
        let auth = format!("Bearer {ALICE_KEY}");
        let length = body.map(|b| b.len().to_string());
        let mut pairs = vec![
            (":method", "POST"),
            (":path", path),
            ("authorization", auth.as_str()),
        ];
        if let Some(length) = &length {
            pairs.push(("content-length", length));
        }
        let headers: RequestHeaders = pairs.into_iter().collect();
        let verdict = flow.on_request_headers(
            &self.host,
            &mut self.snapshots,
            &headers,
            Some("10.0.0.7:4000"),
            body.is_none(),
        );
        (flow, verdict)
    }

    /// Sends `body` to `path`; panics unless it is forwarded.
    fn send(&mut self, path: &str, body: &Value) -> Call {
        match self.try_send(path, body.to_string().as_bytes()) {
            Ok(call) => call,
            Err(reply) => panic!("refused: {reply}"),
        }
    }

    /// Sends raw bytes; `Err` carries the refusal's status and body.
    fn try_send(&mut self, path: &str, body: &[u8]) -> Result<Call, String> {
        let (mut flow, verdict) = self.flow(path, Some(body));
        match verdict {
            Verdict::AwaitBody(_) => {}
            Verdict::Reject(reply) => {
                flow.on_log(&self.host, Some(reply.status), None);
                return Err(format!(
                    "{} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
            }
            Verdict::Forward(_) => panic!("expected the filter to read the body"),
        }
        match flow.on_request_body(&self.host, body) {
            BodyVerdict::Forward { edits, body: new } => Ok(Call {
                flow,
                upstream_body: new.unwrap_or_else(|| body.to_vec()),
                edits,
            }),
            BodyVerdict::Reject(reply) => {
                flow.on_log(&self.host, Some(reply.status), None);
                Err(format!(
                    "{} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ))
            }
        }
    }

    /// The upstream answers with these body chunks; returns what the client receives, as the
    /// adapter would hand it over (held bodies are given whole at their end).
    fn answer(
        &self,
        call: &mut Call,
        status: u32,
        content_type: &str,
        chunks: &[&[u8]],
    ) -> Vec<u8> {
        call.flow
            .on_response_headers(Some(status), Some(content_type), chunks.is_empty());
        let mut out = Vec::new();
        let mut held = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let end = i + 1 == chunks.len();
            self.host.advance(5);
            match call.flow.response_body_read(end) {
                BodyRead::Skip => out.extend_from_slice(chunk),
                BodyRead::Wait => held.extend_from_slice(chunk),
                BodyRead::Read => {
                    held.extend_from_slice(chunk);
                    let data = std::mem::take(&mut held);
                    let sent = call.flow.on_response_body(&self.host, &data, end);
                    out.extend(sent.unwrap_or(data));
                }
            }
        }
        out
    }

    /// Like `answer`, but the body stops after `chunks` (no end of stream).
    fn answer_partly(&self, call: &mut Call, content_type: &str, chunks: &[&[u8]]) -> Vec<u8> {
        call.flow
            .on_response_headers(Some(200), Some(content_type), false);
        let mut out = Vec::new();
        for chunk in chunks {
            self.host.advance(5);
            assert_eq!(call.flow.response_body_read(false), BodyRead::Read);
            let sent = call.flow.on_response_body(&self.host, chunk, false);
            out.extend(sent.unwrap_or(chunk.to_vec()));
        }
        out
    }

    fn log(&self, mut call: Call, status: u32) -> UsageRecord {
        call.flow
            .on_log(&self.host, Some(status), Some("via_upstream"));
        self.last_record()
    }

    fn last_record(&self) -> UsageRecord {
        let queued = self.host.queued(USAGE_QUEUE);
        UsageRecord::decode(queued.last().expect("a record").as_slice()).unwrap()
    }
}

fn chat(content: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 50})
}

fn chat_stream(content: &str, include_usage: Option<bool>) -> Value {
    let mut body = chat(content);
    body["stream"] = json!(true);
    if let Some(include) = include_usage {
        body["stream_options"] = json!({"include_usage": include});
    }
    body
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn status(record: &UsageRecord) -> RequestStatus {
    RequestStatus::try_from(record.status).unwrap()
}

fn redactions(record: &UsageRecord) -> Vec<(String, u32)> {
    record
        .redactions
        .iter()
        .map(|e| (e.entity_type.clone(), e.count))
        .collect()
}

/// An OpenAI chat stream: one event per piece, a finish event, then usage if given.
fn sse_chat(pieces: &[&str], usage: Option<(u64, u64)>) -> Vec<u8> {
    let chunk = |choices: Value| json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": choices});
    let mut events: Vec<Value> = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    )];
    events.extend(
        pieces
            .iter()
            .map(|p| chunk(json!([{"index": 0, "delta": {"content": p}, "finish_reason": null}]))),
    );
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ));
    if let Some((prompt, completion)) = usage {
        let mut last = chunk(json!([]));
        last["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
        events.push(last);
    }
    sse_body(&events)
}

/// Events as an SSE body, ended by `[DONE]`.
fn sse_body(events: &[Value]) -> Vec<u8> {
    let mut out: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("data: {e}\n\n").into_bytes())
        .collect();
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// The client's view of an SSE stream: every event's data, and the generated text.
fn client_events(bytes: &[u8]) -> (Vec<String>, String) {
    let mut parser = SseParser::default();
    parser.push(bytes);
    parser.finish();
    let mut data = Vec::new();
    let mut text = String::new();
    while let Some(block) = parser.next_block().unwrap() {
        assert!(block.is_terminated(), "every event ends with a blank line");
        let Some(d) = block.data() else { continue };
        if d != "[DONE]" {
            let v: Value =
                serde_json::from_str(d).unwrap_or_else(|e| panic!("event is not JSON ({e}): {d}"));
            for choice in v["choices"].as_array().into_iter().flatten() {
                text.push_str(
                    choice["delta"]["content"]
                        .as_str()
                        .or(choice["text"].as_str())
                        .unwrap_or(""),
                );
            }
        }
        data.push(d.to_owned());
    }
    (data, text)
}

// ---- request side ----

#[test]
fn masked_request_reaches_the_upstream_without_the_values() {
    let mut gw = Gateway::redacting(r#"{"default_action": "mask"}"#);
    let call = gw.send(
        "/v1/chat/completions",
        &chat("Mail priya@example.com or call 415-555-0132, SSN 219-09-9999."),
    );
    let sent: Value = serde_json::from_slice(&call.upstream_body).unwrap();
    let content = sent["messages"][0]["content"].as_str().unwrap();
    assert!(
        !content.contains("priya@example.com") && !content.contains("219-09-9999"),
        "{content}"
    );
    assert!(
        content.contains("<EMAIL_ADDRESS>") && content.contains("<US_SSN>"),
        "{content}"
    );
    assert_eq!(sent["max_tokens"], 50, "other fields untouched");
    assert_eq!(
        call.content_length_set(),
        Some(call.upstream_body.len().to_string().as_str()),
        "the rewritten body goes out with its own length, not chunked"
    );
    assert!(!call.removes("content-length"));
    let expected_hash = sha256_hex(&call.upstream_body);
    let record = gw.log(call, 200);
    assert_eq!(record.prompt_sha256, expected_hash);
    assert!(redactions(&record).contains(&("EMAIL_ADDRESS".to_owned(), 1)));
    assert!(
        record.prompt_redacted.is_empty(),
        "the team does not keep prompts"
    );
}

#[test]
fn the_routes_output_cap_goes_upstream_with_a_correct_length() {
    let mut gw = Gateway::with_snapshot(r#"{"default_cluster": "upstream"}"#, |snap| {
        snap.models[0].max_output_tokens = 128;
    });
    let mut unlimited = chat("Hello");
    unlimited.as_object_mut().unwrap().remove("max_tokens");
    let call = gw.send("/v1/chat/completions", &unlimited);
    let sent: Value = serde_json::from_slice(&call.upstream_body).unwrap();
    assert_eq!(
        sent["max_tokens"], 128,
        "a request without a limit gets the cap"
    );
    assert_eq!(
        call.content_length_set(),
        Some(call.upstream_body.len().to_string().as_str())
    );
    gw.log(call, 200);

    let mut greedy = chat("Hello");
    greedy["max_tokens"] = json!(4096);
    let call = gw.send("/v1/chat/completions", &greedy);
    let sent: Value = serde_json::from_slice(&call.upstream_body).unwrap();
    assert_eq!(
        sent["max_tokens"], 128,
        "a larger limit is lowered to the cap"
    );
    gw.log(call, 200);

    let raw = br#"{ "model" : "llama3.1-8b", "max_tokens": 16, "messages": [{"role":"user","content":"Hi"}] }"#;
    let call = gw.try_send("/v1/chat/completions", raw).unwrap();
    assert_eq!(
        call.upstream_body, raw,
        "a smaller limit goes upstream byte for byte"
    );
    assert_eq!(call.content_length_set(), None);
}

#[test]
fn unchanged_bodies_go_upstream_byte_for_byte() {
    let mut gw = Gateway::new(|_| {});
    let raw = br#"{ "model" : "llama3.1-8b", "messages": [{"role":"user","content":"Dear Priya Raman"}] }"#;
    let call = gw.try_send("/v1/chat/completions", raw).unwrap();
    assert_eq!(call.upstream_body, raw);
    assert!(!call.removes("content-length"));
    assert_eq!(
        call.content_length_set(),
        None,
        "the client's length stands"
    );
    let record = gw.log(call, 200);
    assert_eq!(record.prompt_sha256, sha256_hex(raw));
    assert!(!record.redaction_bypassed);
}

#[test]
fn block_mode_refuses_naming_only_the_types() {
    let mut gw = Gateway::redacting(r#"{"entities": {"US_SSN": "block", "CREDIT_CARD": "block"}}"#);
    let refused = gw
        .try_send(
            "/v1/completions",
            json!({"model": MODEL, "prompt": "my ssn is 219-09-9999"})
                .to_string()
                .as_bytes(),
        )
        .err()
        .unwrap();
    assert!(refused.starts_with("400 "), "{refused}");
    assert!(
        refused.contains("pii_blocked") && refused.contains("US_SSN"),
        "{refused}"
    );
    assert!(
        !refused.contains("219-09") && !refused.contains("CREDIT_CARD"),
        "{refused}"
    );
    let record = gw.last_record();
    assert_eq!(status(&record), RequestStatus::Blocked);
    assert_eq!(record.reason, "pii_blocked");
    assert_eq!(redactions(&record), [("US_SSN".to_owned(), 1)]);
    assert_eq!((record.tokens_in, record.tokens_out), (0, 0));
    assert!(record.prompt_sha256.is_empty(), "nothing was sent");
}

#[test]
fn high_trust_bypasses_and_is_marked() {
    let mut gw = Gateway::new(|team| {
        team.redaction_policy_json = r#"{"default_action": "mask"}"#.to_owned();
        team.high_trust = true;
    });
    let body = chat("Mail priya@example.com");
    let call = gw.send("/v1/chat/completions", &body);
    assert_eq!(call.upstream_body, body.to_string().into_bytes());
    let record = gw.log(call, 200);
    assert!(record.redaction_bypassed);
    assert!(record.redactions.is_empty());
}

#[test]
fn a_policy_that_does_not_compile_fails_closed() {
    let mut gw = Gateway::redacting(r#"{"entities": {"NOT_A_TYPE": "mask"}}"#);
    let (_, verdict) = gw.flow("/v1/chat/completions", Some(b"{}"));
    let Verdict::Reject(reply) = verdict else {
        panic!("expected a refusal")
    };
    assert_eq!(reply.status, 503);
    let mut gw = Gateway::new(|_| {});
    let (_, verdict) = gw.flow("/v1/chat/completions", Some(b"{}"));
    assert!(
        matches!(verdict, Verdict::AwaitBody(_)),
        "other teams are unaffected"
    );
}

#[test]
fn bodies_the_policy_cannot_check_are_refused_never_forwarded() {
    let config = r#"{"default_cluster": "upstream", "max_body_bytes": 2048}"#;
    let policy = r#"{"default_action": "mask"}"#;
    let mut gw = Gateway::with_config(config, |t| t.redaction_policy_json = policy.to_owned());
    let big = chat(&"word ".repeat(1000)).to_string();
    let refused = gw
        .try_send("/v1/chat/completions", big.as_bytes())
        .err()
        .unwrap();
    assert!(
        refused.starts_with("413 ") && refused.contains("request_too_large"),
        "{refused}"
    );
    assert_eq!(gw.last_record().reason, "redaction_body_too_large");

    // Announced size fine, buffered body grows past it (chunked upload).
    let (mut flow, verdict) = gw.flow("/v1/chat/completions", Some(b"{}"));
    assert!(matches!(verdict, Verdict::AwaitBody(_)));
    assert!(flow.on_request_body_size(1000).is_none());
    let reply = flow.on_request_body_size(4096).unwrap();
    assert_eq!(reply.status, 413);

    let refused = gw
        .try_send("/v1/chat/completions", b"not json")
        .err()
        .unwrap();
    assert!(refused.starts_with("400 "), "{refused}");

    // A team without a policy gets the same size limit.
    let mut plain = Gateway::with_config(config, |_| {});
    let refused = plain
        .try_send("/v1/chat/completions", big.as_bytes())
        .err()
        .unwrap();
    assert!(refused.starts_with("413 "), "{refused}");
    assert_eq!(plain.last_record().reason, "request_too_large");
}

#[test]
fn a_body_that_is_not_an_object_is_never_forwarded_unchecked() {
    let cache = RedactorCache::new();
    let mut exchange = Exchange::new();
    exchange.endpoint = Some(Endpoint::ChatCompletions);
    exchange.team = cache
        .team(&TeamPolicy {
            redaction_policy_json: r#"{"default_action": "mask"}"#.to_owned(),
            ..TeamPolicy::default()
        })
        .unwrap();
    let mut body = RequestBody::parse(b"[\"219-09-9999\"]");
    assert_eq!(
        exchange.prepare_request(&mut body),
        Err(crate::errors::Rejection::BodyUnreadable)
    );
}

#[test]
fn unsupported_paths_are_404_unless_passed_through() {
    let config = r#"{"default_cluster": "upstream", "pass_through_paths": ["/health"]}"#;
    let mut gw = Gateway::with_config(config, |_| {});
    let (_, verdict) = gw.flow("/v1/responses", Some(b"{}"));
    let Verdict::Reject(reply) = verdict else {
        panic!("expected 404")
    };
    assert_eq!(reply.status, 404);
    let (_, verdict) = gw.flow("/health", None);
    assert!(matches!(verdict, Verdict::Forward(_)));
    let (_, verdict) = gw.flow("/health", Some(b"x"));
    assert!(
        matches!(verdict, Verdict::Forward(_)),
        "pass-through bodies are not read"
    );

    let mut redacting = Gateway::with_config(config, |t| t.redaction_policy_json = "{}".to_owned());
    let (_, verdict) = redacting.flow("/health", Some(b"x"));
    let Verdict::Reject(reply) = verdict else {
        panic!("expected a refusal")
    };
    assert_eq!(reply.status, 400);
    let (_, verdict) = redacting.flow("/health", None);
    assert!(matches!(verdict, Verdict::Forward(_)));
}

#[test]
fn the_record_keeps_a_masked_prompt_only_when_the_team_asks() {
    let mut gw = Gateway::new(|team| {
        team.keep_redacted_prompt = true;
        team.redaction_policy_json =
            r#"{"entities": {"PERSON": "reversible"}, "default_action": "off"}"#.to_owned();
    });
    let call = gw.send(
        "/v1/chat/completions",
        &chat("Dear Priya Raman, card 4111 1111 1111 1111, mail p@example.com"),
    );
    let record = gw.log(call, 200);
    assert_eq!(
        record.prompt_redacted,
        "Dear <PERSON_1>, card <CREDIT_CARD>, mail <EMAIL_ADDRESS>"
    );

    let mut no_policy = Gateway::new(|team| team.keep_redacted_prompt = true);
    let call = no_policy.send(
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "ssn 219-09-9999"}),
    );
    assert_eq!(no_policy.log(call, 200).prompt_redacted, "ssn <US_SSN>");
}

#[test]
fn client_ip_comes_from_forwarded_for_only_when_trusted() {
    let trusting = r#"{"default_cluster": "upstream", "trust_forwarded_for": true}"#;
    for (config, expected) in [
        (trusting, "203.0.113.5"),
        (r#"{"default_cluster": "upstream"}"#, "10.0.0.7"),
    ] {
        let mut gw = Gateway::with_config(config, |_| {});
        let mut flow = RequestFlow::new(Rc::clone(&gw.config));
        let auth = format!("Bearer {ALICE_KEY}");
        let headers: RequestHeaders = [
            (":path", "/v1/models"),
            ("authorization", auth.as_str()),
            ("x-forwarded-for", "198.51.100.1, 203.0.113.5"),
        ]
        .into_iter()
        .collect();
        flow.on_request_headers(
            &gw.host,
            &mut gw.snapshots,
            &headers,
            Some("10.0.0.7:4000"),
            true,
        );
        flow.on_log(&gw.host, Some(200), None);
        assert_eq!(gw.last_record().client_ip, expected);
    }
}

// ---- non-streamed answers ----

#[test]
fn reversible_values_come_back_in_a_non_streamed_answer() {
    let mut gw = Gateway::redacting(
        r#"{"entities": {"PERSON": "reversible", "EMAIL_ADDRESS": "reversible"}}"#,
    );
    let mut call = gw.send(
        "/v1/chat/completions",
        &chat("Write to Priya Raman at priya@example.com"),
    );
    let sent = String::from_utf8(call.upstream_body.clone()).unwrap();
    assert!(
        sent.contains("<PERSON_1>") && sent.contains("<EMAIL_ADDRESS_1>"),
        "{sent}"
    );
    let upstream = json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi <PERSON_1>, I wrote to <EMAIL_ADDRESS_1>."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}}).to_string();
    let (a, b) = upstream.as_bytes().split_at(40);
    let got = gw.answer(&mut call, 200, "application/json", &[a, b]);
    let got: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Hi Priya Raman, I wrote to priya@example.com."
    );
    let record = gw.log(call, 200);
    assert_eq!(record.response_sha256, sha256_hex(upstream.as_bytes()));
    assert_eq!(
        (record.tokens_in, record.tokens_out, record.tokens_estimated),
        (21, 9, false)
    );
    assert!((record.spend - (21.0 * 2.0 + 9.0 * 10.0) / 1e6).abs() < 1e-12);
    assert_eq!(status(&record), RequestStatus::Success);
    assert!(!record.stream);
}

#[test]
fn response_redaction_removes_values_the_model_produced() {
    let mut gw = Gateway::redacting(r#"{"direction": "both"}"#);
    let mut call = gw.send(
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "hello"}),
    );
    let upstream = json!({"choices": [{"index": 0, "text": "Reach me at leak@example.org", "finish_reason": "stop"}]}).to_string();
    let got = gw.answer(&mut call, 200, "application/json", &[upstream.as_bytes()]);
    let got = String::from_utf8(got).unwrap();
    assert!(
        !got.contains("leak@example.org") && got.contains("<EMAIL_ADDRESS>"),
        "{got}"
    );
    let record = gw.log(call, 200);
    assert_eq!(redactions(&record), [("EMAIL_ADDRESS".to_owned(), 1)]);
    assert!(record.tokens_estimated, "the upstream reported no usage");
    assert!(record.tokens_in > 0 && record.tokens_out > 0);
}

#[test]
fn answers_without_rewriting_pass_unchanged_and_are_counted() {
    let mut gw = Gateway::new(|_| {});
    let mut call = gw.send(
        "/api/embed",
        &json!({"model": MODEL, "input": ["a b c", "d e"]}),
    );
    let upstream =
        json!({"model": MODEL, "embeddings": [[0.1], [0.2]], "prompt_eval_count": 5}).to_string();
    let got = gw.answer(&mut call, 200, "application/json", &[upstream.as_bytes()]);
    assert_eq!(got, upstream.as_bytes());
    let record = gw.log(call, 200);
    assert_eq!(
        (record.tokens_in, record.tokens_out, record.tokens_estimated),
        (5, 0, false)
    );
}

#[test]
fn usage_of_a_huge_body_is_found_at_its_edges() {
    for usage_first in [true, false] {
        let mut gw = Gateway::new(|_| {});
        let mut call = gw.send("/v1/embeddings", &json!({"model": MODEL, "input": "x"}));
        let data: Vec<Value> = (0..5000).map(|i| json!({"object": "embedding", "index": i, "embedding": vec![0.123_456_f64; 64]})).collect();
        let usage = json!({"prompt_tokens": 4321, "total_tokens": 4321});
        let body = if usage_first {
            json!({"object": "list", "usage": usage, "data": data})
        } else {
            json!({"object": "list", "data": data, "usage": usage})
        }
        .to_string();
        assert!(body.len() > 2 << 20);
        let chunks: Vec<&[u8]> = body.as_bytes().chunks(16 * 1024).collect();
        let got = gw.answer(&mut call, 200, "application/json", &chunks);
        assert_eq!(got.len(), body.len());
        let record = gw.log(call, 200);
        assert_eq!(
            (record.tokens_in, record.tokens_estimated),
            (4321, false),
            "usage first: {usage_first}"
        );
    }
}

#[test]
fn upstream_errors_reach_the_client_in_openai_shape() {
    let cases: [(u32, &[u8], &str); 4] = [
        (500, br#"{"error":{"message":"boom","type":"server_error","code":null}}"#, "boom"),
        (404, br#"{"error":"model 'x' not found"}"#, "The upstream model server answered HTTP 404: model 'x' not found"),
        (503, b"upstream connect error or disconnect/reset before headers", "The upstream model server answered HTTP 503: upstream connect error or disconnect/reset before headers"),
        (502, b"", "The upstream model server answered HTTP 502."),
    ];
    for (code, body, message) in cases {
        let mut gw = Gateway::new(|_| {});
        let mut call = gw.send("/v1/chat/completions", &chat("hi"));
        let edits = call
            .flow
            .on_response_headers(Some(code), Some("text/plain"), false);
        assert!(edits
            .set
            .contains(&("content-type", "application/json".to_owned())));
        assert!(edits.remove.contains(&"content-length"));
        let got = gw.answer(&mut call, code, "text/plain", &[body]);
        let got: Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(got["error"]["message"], message, "{code}");
        let record = gw.log(call, code);
        assert_eq!(status(&record), RequestStatus::Errored);
        assert_eq!(record.reason, format!("upstream_http_{code}"));
        assert_eq!((record.tokens_in, record.tokens_out), (0, 0));
    }
}

// ---- streams ----

#[test]
fn the_usage_chunk_the_gateway_asked_for_is_hidden_and_counted() {
    let mut gw = Gateway::new(|_| {});
    let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", None));
    let sent: Value = serde_json::from_slice(&call.upstream_body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(
        call.content_length_set(),
        Some(call.upstream_body.len().to_string().as_str()),
        "the asked-for usage lengthens the body; the upstream gets the new length"
    );
    let upstream = sse_chat(&["Hello", " there"], Some((12, 2)));
    let got = gw.answer(&mut call, 200, "text/event-stream", &[&upstream]);
    assert_eq!(
        got,
        sse_chat(&["Hello", " there"], None),
        "exactly what it would have seen"
    );
    let record = gw.log(call, 200);
    assert_eq!(
        (record.tokens_in, record.tokens_out, record.tokens_estimated),
        (12, 2, false)
    );
    assert!(record.stream);
    assert_eq!(record.ttft_ms, 5);
    assert_eq!(record.response_sha256, sha256_hex(&upstream));
}

#[test]
fn a_chunked_request_stays_chunked_when_its_body_is_rewritten() {
    let mut gw = Gateway::new(|_| {});
    let mut flow = RequestFlow::new(Rc::clone(&gw.config)).with_redactors(Rc::clone(&gw.redactors));
    let auth = format!("Bearer {ALICE_KEY}");
    let headers: RequestHeaders = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("authorization", auth.as_str()),
        ("transfer-encoding", "chunked"),
    ]
    .into_iter()
    .collect();
    let verdict = flow.on_request_headers(&gw.host, &mut gw.snapshots, &headers, None, false);
    assert!(matches!(verdict, Verdict::AwaitBody(_)), "{verdict:?}");
    let body = chat_stream("hi", None).to_string();
    let BodyVerdict::Forward { edits, body: new } = flow.on_request_body(&gw.host, body.as_bytes())
    else {
        panic!("refused");
    };
    assert!(new.is_some(), "usage asked for");
    assert!(
        !edits.set.iter().any(|(name, _)| name == "content-length"),
        "no length the client did not announce: {edits:?}"
    );
    assert!(edits.remove.iter().any(|name| name == "content-length"));
}

#[test]
fn a_client_that_asked_for_usage_gets_the_stream_untouched() {
    let mut gw = Gateway::new(|_| {});
    let body = chat_stream("hi", Some(true));
    let mut call = gw.send("/v1/chat/completions", &body);
    assert_eq!(
        call.upstream_body,
        body.to_string().into_bytes(),
        "no rewrite needed"
    );
    let upstream = sse_chat(&["Hello"], Some((3, 1)));
    assert_eq!(
        gw.answer(&mut call, 200, "text/event-stream", &[&upstream]),
        upstream
    );
    assert_eq!(gw.log(call, 200).tokens_out, 1);
}

#[test]
fn missing_stream_usage_is_estimated_and_marked() {
    let mut gw = Gateway::new(|_| {});
    let mut call = gw.send(
        "/v1/chat/completions",
        &chat_stream("How are you today?", None),
    );
    let upstream = sse_chat(&["I", " am", " fine", ", thanks."], None);
    gw.answer(&mut call, 200, "text/event-stream", &[&upstream]);
    let record = gw.log(call, 200);
    assert!(record.tokens_estimated);
    assert!(record.tokens_in > 0 && record.tokens_out >= 4, "{record:?}");
    assert_eq!(status(&record), RequestStatus::Success);
}

#[test]
fn stream_endings_decide_the_status() {
    let full = sse_chat(&["a", " b", " c"], Some((5, 3)));
    let cut = &full[..full.len() / 2];
    let error_event = b"data: {\"error\":{\"message\":\"CUDA out of memory\",\"code\":500}}\n\n";

    // Body ends without [DONE].
    let mut gw = Gateway::new(|_| {});
    let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", None));
    gw.answer(&mut call, 200, "text/event-stream", &[cut]);
    let record = gw.log(call, 200);
    assert_eq!(
        (status(&record), record.reason.as_str()),
        (RequestStatus::Errored, "upstream_stream_truncated")
    );
    assert!(record.tokens_out > 0 && record.tokens_estimated);

    // The upstream reports an error inside the stream.
    let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", None));
    let first_event = &full[..full.windows(2).position(|w| w == b"\n\n").unwrap() + 2];
    let got = gw.answer(
        &mut call,
        200,
        "text/event-stream",
        &[first_event, error_event, b"data: [DONE]\n\n"],
    );
    assert!(
        String::from_utf8_lossy(&got).contains("CUDA out of memory"),
        "the client sees the error"
    );
    let record = gw.log(call, 200);
    assert_eq!(record.reason, "upstream_stream_error");

    // The connection breaks mid-stream (no end of body): errored, tokens so far counted.
    let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", None));
    gw.answer_partly(&mut call, "text/event-stream", &[cut]);
    call.flow.note_response_flags(1 << 4);
    let record = gw.log(call, 200);
    assert_eq!(status(&record), RequestStatus::Errored);
    assert!(record.tokens_out > 0);

    // The client goes away mid-stream: cancelled, tokens so far counted.
    let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", None));
    gw.answer_partly(&mut call, "text/event-stream", &[cut]);
    call.flow.note_response_flags(1 << 14);
    let record = gw.log(call, 200);
    assert_eq!(
        (status(&record), record.reason.as_str()),
        (RequestStatus::Cancelled, "client_disconnected")
    );
    assert!(record.tokens_in > 0 && record.tokens_out > 0);
}

#[test]
fn a_placeholder_split_anywhere_comes_back_whole() {
    let answer = "Thanks <PERSON_1>! I mailed <EMAIL_ADDRESS_1> today.";
    let expected = "Thanks Priya Raman! I mailed priya@example.com today.";
    let mut gw = Gateway::redacting(
        r#"{"entities": {"PERSON": "reversible", "EMAIL_ADDRESS": "reversible"}}"#,
    );
    for cut in 1..answer.len() {
        let mut call = gw.send(
            "/v1/chat/completions",
            &chat_stream("I am Priya Raman, priya@example.com", None),
        );
        let (a, b) = answer.split_at(cut);
        let upstream = sse_chat(&[a, b], Some((9, 8)));
        // TCP chunks split the bytes at another place too.
        let (x, y) = upstream.split_at(upstream.len() * cut / answer.len());
        let got = gw.answer(&mut call, 200, "text/event-stream", &[x, y]);
        let (events, text) = client_events(&got);
        assert_eq!(text, expected, "cut {cut}");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        assert!(
            !events.iter().any(|e| e.contains("\"usage\"")),
            "usage chunk hidden"
        );
        let record = gw.log(call, 200);
        assert_eq!((record.tokens_in, record.tokens_out), (9, 8));
    }
}

#[test]
fn values_injected_by_the_upstream_never_reach_the_client_whatever_the_split() {
    let answer = "Sure. Contact leak.person@example.org or 219-09-9999 now.";
    let mut gw = Gateway::redacting(r#"{"direction": "both", "default_action": "mask"}"#);
    for cut in 1..answer.len() {
        let mut call = gw.send(
            "/v1/chat/completions",
            &chat_stream("who to contact?", Some(true)),
        );
        let (a, b) = answer.split_at(cut);
        let upstream = sse_chat(&[a, b], Some((4, 12)));
        let mut client = Vec::new();
        call.flow
            .on_response_headers(Some(200), Some("text/event-stream"), false);
        for (i, byte_chunk) in upstream.chunks(7).enumerate() {
            let end = (i + 1) * 7 >= upstream.len();
            let sent = call
                .flow
                .on_response_body(&gw.host, byte_chunk, end)
                .unwrap_or(byte_chunk.to_vec());
            client.extend(sent);
            let so_far = String::from_utf8_lossy(&client);
            for secret in [
                "leak.person@example.org",
                "219-09-9999",
                "leak.person@",
                "9-9999",
            ] {
                assert!(
                    !so_far.contains(secret),
                    "cut {cut}: {secret} leaked in {so_far}"
                );
            }
        }
        let (events, text) = client_events(&client);
        assert_eq!(
            text, "Sure. Contact <EMAIL_ADDRESS> or <US_SSN> now.",
            "cut {cut}"
        );
        assert!(
            events.iter().any(|e| e.contains("\"usage\"")),
            "the client asked for usage"
        );
        let record = gw.log(call, 200);
        assert_eq!(
            redactions(&record),
            [("EMAIL_ADDRESS".to_owned(), 1), ("US_SSN".to_owned(), 1)]
        );
    }
}

#[test]
fn held_text_comes_out_when_the_stream_ends_without_finishing() {
    let mut gw = Gateway::redacting(r#"{"entities": {"PERSON": "reversible"}}"#);
    let mut call = gw.send(
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Dear Priya Raman", "stream": true}),
    );
    let chunk = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": null}]})
        )
    };
    let upstream = format!("{}{}", chunk("Bye"), chunk(" <PERSON_1>"));
    let got = gw.answer(&mut call, 200, "text/event-stream", &[upstream.as_bytes()]);
    let (_, text) = client_events(&got);
    assert_eq!(text, "Bye Priya Raman");
    assert_eq!(gw.log(call, 200).reason, "upstream_stream_truncated");
}

#[test]
fn ollama_streams_are_restored_and_counted() {
    let mut gw = Gateway::redacting(r#"{"entities": {"PERSON": "reversible"}}"#);
    let mut call = gw.send(
        "/api/chat",
        &json!({"model": MODEL, "messages": [{"role": "user", "content": "I am Priya Raman"}]}),
    );
    let sent = String::from_utf8(call.upstream_body.clone()).unwrap();
    assert!(
        !sent.contains("stream_options"),
        "Ollama reports usage anyway"
    );
    let line = |content: &str, done: bool| {
        let mut v = json!({"model": MODEL, "message": {"role": "assistant", "content": content}, "done": done});
        if done {
            v["prompt_eval_count"] = json!(14);
            v["eval_count"] = json!(3);
        }
        format!("{v}\n")
    };
    let upstream = format!(
        "{}{}{}",
        line("Hi <PERS", false),
        line("ON_1>!", false),
        line("", true)
    );
    let got = gw.answer(
        &mut call,
        200,
        "application/x-ndjson",
        &[upstream.as_bytes()],
    );
    let text: String = String::from_utf8(got)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Hi Priya Raman!");
    let record = gw.log(call, 200);
    assert_eq!(
        (record.tokens_in, record.tokens_out, record.tokens_estimated),
        (14, 3, false)
    );
    assert_eq!(status(&record), RequestStatus::Success);
}

#[test]
fn comments_between_split_events_do_not_release_held_text() {
    let mut gw = Gateway::redacting(r#"{"direction": "response"}"#);
    let mut call = gw.send("/v1/chat/completions", &chat_stream("hi", Some(true)));
    let events = sse_chat(&["mail leak", "@example.org ok"], None);
    let text = String::from_utf8(events).unwrap();
    let with_comment = text.replacen("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.1-8b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"@", ": keep-alive\n\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.1-8b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"@", 1);
    assert_ne!(with_comment, text);
    let got = gw.answer(
        &mut call,
        200,
        "text/event-stream",
        &[with_comment.as_bytes()],
    );
    let got = String::from_utf8(got).unwrap();
    assert!(!got.contains("leak"), "{got}");
    assert!(got.contains(": keep-alive"));
}

// ---- recorded streams (llama-server), split at every byte ----

const RECORDED: &[u8] =
    include_bytes!("../../tests/fixtures/streams/llama-chat-a-stream-usage.sse");

/// What a team with a response policy and a reversible request value puts on a stream.
struct Rewriting {
    redactor: Rc<Redactor>,
    map: PlaceholderMap,
}

impl Rewriting {
    fn new() -> Self {
        let redactor =
            Redactor::from_json(r#"{"direction": "response", "entities": {"PERSON": "off"}}"#)
                .unwrap();
        let mut map = PlaceholderMap::new();
        // A value the request had: the answer is watched for its placeholder all along.
        let requester = Redactor::from_json(r#"{"entities": {"PERSON": "reversible"}}"#).unwrap();
        requester.redact("Dear Priya Raman", Phase::Request, &mut map);
        assert!(!map.is_empty());
        Self {
            redactor: Rc::new(redactor),
            map,
        }
    }

    /// A client's view of `RECORDED`, fed in two pieces cut at `cut`.
    fn client_view(&self, cut: usize, redact: bool) -> (Vec<u8>, TokenUsage) {
        let redactor = redact.then(|| Rc::clone(&self.redactor));
        let rewrite = TextRewrite::new(redactor, self.map.clone());
        let mut stream =
            ResponseStream::new(StreamFormat::Sse, true, rewrite, DEFAULT_MAX_RECORD_BYTES);
        let (a, b) = RECORDED.split_at(cut);
        let mut out = stream.push(a);
        out.extend(stream.push(b));
        out.extend(stream.finish());
        (out, stream.usage().usage(1))
    }
}

#[test]
fn a_recorded_stream_split_anywhere_gives_the_same_answer_and_counts() {
    let rewriting = Rewriting::new();
    let (whole, usage) = rewriting.client_view(0, false);
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.estimated
        ),
        (35, 22, false)
    );
    let (events, text) = client_events(&whole);
    let (_, upstream_text) = client_events(RECORDED);
    assert_eq!(
        text, upstream_text,
        "nothing to restore: the text is the model's"
    );
    assert!(
        !events.iter().any(|e| e.contains("\"usage\"")),
        "hidden usage chunk"
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for cut in 1..RECORDED.len() {
        let (out, split_usage) = rewriting.client_view(cut, false);
        assert_eq!(out, whole, "cut at {cut}");
        assert_eq!(split_usage, usage, "cut at {cut}");
    }
    let (redacted_whole, _) = rewriting.client_view(0, true);
    assert_eq!(
        client_events(&redacted_whole).1,
        upstream_text,
        "no PII in this answer"
    );
    for cut in (1..RECORDED.len()).step_by(97) {
        assert_eq!(
            rewriting.client_view(cut, true).0,
            redacted_whole,
            "cut at {cut}"
        );
    }
}

mod scope;
