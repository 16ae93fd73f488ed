//! Allowlists, model lists and limits through whole requests: headers, body, response, log.

use modelgate_proto::v1::{Limits, PolicySnapshot, RequestStatus, SpendState, UsageRecord};
use prost::Message;
use serde_json::{json, Value};

use crate::audit::USAGE_QUEUE;
use crate::flow::tests::{bearer, forwarded, header, rejected, worker_with, Worker};
use crate::flow::{BodyVerdict, LocalReply, RequestFlow, Verdict};
use crate::host::Host;
use crate::policy::tests::{snapshot, ALICE_KEY};
use crate::snapshot::{publish_head, SnapshotHead};

const CHAT: &str = r#"{"model": "qwen2.5-7b", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]}"#;

/// The fixture snapshot with Alice's key given `limits` (and her team `team_limits`).
fn limited(limits: Limits, team_limits: Option<Limits>) -> PolicySnapshot {
    let mut snap = snapshot(1);
    snap.keys[0].limits = Some(limits);
    snap.teams[0].limits = team_limits;
    snap
}

/// Time passes; the control plane keeps answering (the snapshot stays fresh).
fn advance(worker: &Worker, ms: i64) {
    worker.host.advance(ms);
    let head = SnapshotHead {
        version: 1,
        last_contact_ms: worker.host.now_ms(),
    };
    publish_head(&worker.host, head).unwrap();
}

fn post(worker: &mut Worker, path: &str, body: &str) -> (RequestFlow, BodyVerdict) {
    let auth = bearer(ALICE_KEY);
    let (mut flow, verdict) = worker.headers(
        &[
            (":method", "POST"),
            (":path", path),
            ("authorization", &auth),
        ],
        false,
    );
    assert!(matches!(verdict, Verdict::AwaitBody(_)), "{verdict:?}");
    let verdict = flow.on_request_body(&worker.host, body.as_bytes());
    (flow, verdict)
}

fn refused(verdict: &BodyVerdict) -> (u32, Value, &LocalReply) {
    let BodyVerdict::Reject(reply) = verdict else {
        panic!("expected a refusal, got {verdict:?}");
    };
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap(),
        reply,
    )
}

fn last_record(worker: &Worker) -> UsageRecord {
    let queued = worker.host.queued(USAGE_QUEUE);
    UsageRecord::decode(queued.last().unwrap().as_slice()).unwrap()
}

fn response_header(flow: &RequestFlow, name: &str) -> Option<String> {
    flow.response_headers()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[test]
fn model_lists_hold_exactly_what_this_key_may_use() {
    let mut snap = snapshot(1);
    let mut worker = worker_with(&snap);
    let auth = bearer(ALICE_KEY);
    let (mut flow, verdict) = worker.headers(
        &[
            (":method", "GET"),
            (":path", "/v1/models"),
            ("authorization", &auth),
        ],
        true,
    );
    let (status, body, reply) = rejected(&verdict);
    assert_eq!(status, 200);
    assert_eq!(header(reply, "content-type"), Some("application/json"));
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["llama3.1-8b", "qwen2.5-7b"],
        "team: llama3.1-8b, qwen2.5-*"
    );
    assert_eq!(body["object"], "list");
    flow.on_log(&worker.host, Some(200), None);
    let record = last_record(&worker);
    assert_eq!(record.status, RequestStatus::Success as i32);

    // The key narrows its team's list; Ollama clients get the same through /api/tags.
    snap.version = 2;
    snap.keys[0].models = vec!["qwen2.5-*".to_owned(), "llama3.1-8b-instruct".to_owned()];
    let mut worker = worker_with(&snap);
    let (_, verdict) = worker.headers(
        &[
            (":method", "GET"),
            (":path", "/api/tags"),
            ("authorization", &auth),
        ],
        true,
    );
    let (status, body, _) = rejected(&verdict);
    assert_eq!(status, 200);
    assert_eq!(
        body["models"],
        json!([{"name": "qwen2.5-7b", "model": "qwen2.5-7b", "modified_at": "1970-01-01T00:00:00Z", "size": 0, "digest": "", "details": {}}])
    );
}

#[test]
fn unknown_models_are_404_forbidden_ones_403_and_unreadable_bodies_400() {
    let mut worker = worker_with(&snapshot(1));
    let cases = [
        (r#"{"model": "mystery"}"#, 404, "model_not_found", "mystery"),
        (
            r#"{"model": "qwen2.5x"}"#,
            403,
            "model_not_allowed",
            "qwen2.5x",
        ),
        ("not json", 400, "invalid_json", ""),
        (r#"{"model": 5}"#, 400, "invalid_model", ""),
        (r#"{"messages": []}"#, 400, "missing_model", ""),
        (
            r#"{"model": "qwen2.5-7b", "model": "qwen2.5x"}"#,
            400,
            "duplicate_model",
            "",
        ),
        ("", 400, "missing_body", ""),
    ];
    for (body, status, code, model) in cases {
        let (mut flow, verdict) = post(&mut worker, "/v1/chat/completions", body);
        let (got, error, _) = refused(&verdict);
        assert_eq!(
            (got, error["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        if !model.is_empty() {
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(model), "{message}");
        }
        flow.on_log(&worker.host, None, None);
        let record = last_record(&worker);
        assert_eq!(record.status, RequestStatus::Blocked as i32);
        assert_eq!(record.reason, code);
        assert_eq!(record.model_requested, model);
    }
}

#[test]
fn a_prompt_endpoint_without_a_body_is_400_at_once() {
    let mut worker = worker_with(&snapshot(1));
    let auth = bearer(ALICE_KEY);
    let (_, verdict) = worker.headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", &auth),
        ],
        true,
    );
    let (status, body, _) = rejected(&verdict);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_body"))
    );
}

#[test]
fn the_fourth_request_in_a_minute_is_429_with_openai_headers() {
    let mut worker = worker_with(&limited(
        Limits {
            rpm: Some(3),
            ..Limits::default()
        },
        None,
    ));
    for remaining in ["2", "1", "0"] {
        let (mut flow, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
        forwarded(verdict);
        assert_eq!(
            response_header(&flow, "x-ratelimit-limit-requests").as_deref(),
            Some("3")
        );
        assert_eq!(
            response_header(&flow, "x-ratelimit-remaining-requests").as_deref(),
            Some(remaining)
        );
        flow.on_log(&worker.host, Some(200), None);
        advance(&worker, 10_000);
    }
    let (mut flow, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
    let (status, body, reply) = refused(&verdict);
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["scope"], "key");
    assert_eq!(body["error"]["limit"], "rpm");
    assert_eq!(
        header(reply, "retry-after"),
        Some("31"),
        "the first expires 61 s after it"
    );
    assert_eq!(header(reply, "x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(header(reply, "x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(header(reply, "x-ratelimit-reset-requests"), Some("51s"));
    assert!(response_header(&flow, "x-ratelimit-limit-requests").is_none());
    flow.on_log(&worker.host, None, None);
    assert_eq!(last_record(&worker).reason, "key_rpm_exceeded");

    // Refused requests took nothing: once the first expires, exactly one fits.
    advance(&worker, 31_000);
    forwarded(post(&mut worker, "/v1/chat/completions", CHAT).1);
    refused(&post(&mut worker, "/v1/chat/completions", CHAT).1);
}

#[test]
fn a_parallel_slot_comes_back_on_every_ending() {
    // The team's cap is each key's default.
    let mut worker = worker_with(&limited(
        Limits::default(),
        Some(Limits {
            max_parallel_requests: Some(1),
            ..Limits::default()
        }),
    ));
    // Success, upstream error, client gone before any answer.
    for (status, details) in [
        (Some(200), None),
        (Some(503), Some("upstream_reset_before_response_started")),
        (None, Some("downstream_remote_disconnect")),
    ] {
        let (mut running, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
        forwarded(verdict);
        let (mut second, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
        let (code, body, _) = refused(&verdict);
        assert_eq!(
            (code, body["error"]["type"].as_str()),
            (429, Some("parallel_requests"))
        );
        second.on_log(&worker.host, None, None);
        running.on_log(&worker.host, status, details);
        running.on_log(&worker.host, status, details);
    }
    let (_, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
    forwarded(verdict);
}

#[test]
fn tpm_reserves_the_estimate_then_keeps_what_the_upstream_reported() {
    let mut worker = worker_with(&limited(
        Limits {
            tpm: Some(100),
            ..Limits::default()
        },
        None,
    ));
    let (mut flow, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
    forwarded(verdict);
    let reserved: u64 = response_header(&flow, "x-ratelimit-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        reserved < 80,
        "20 for the answer plus the prompt: {reserved} left"
    );
    // Another like it does not fit while the first runs...
    refused(&post(&mut worker, "/v1/chat/completions", CHAT).1);
    // ...the first really used 12 tokens...
    flow.on_response_headers(Some(200), Some("application/json"), false);
    let answer = json!({"choices": [{"message": {"role": "assistant", "content": "Hello"}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}});
    flow.on_response_body(&worker.host, answer.to_string().as_bytes(), true);
    flow.on_log(&worker.host, Some(200), None);
    assert_eq!(last_record(&worker).tokens_in, 10);
    // ...so now it does, and 88 were left before it.
    let (next, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
    forwarded(verdict);
    let left: u64 = response_header(&next, "x-ratelimit-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(left, 88 - (100 - reserved));
}

#[test]
fn a_budget_lets_through_what_it_fits_then_429s() {
    let mut snap = limited(Limits::default(), None);
    snap.teams[0].limits = Some(Limits {
        max_budget: Some(0.000_3),
        ..Limits::default()
    });
    snap.teams[0].spend = Some(SpendState {
        spend: 0.000_1,
        window_start_ms: worker_start(),
        window_reset_at_ms: worker_start() + 60_000,
        exhausted: false,
    });
    // $1 per million tokens either way: 10 + 2 tokens = $0.000012 a request... made dearer:
    let route = snap
        .models
        .iter_mut()
        .find(|r| r.name == "qwen2.5-7b")
        .unwrap();
    route.input_cost_per_mtok = 5.0;
    route.output_cost_per_mtok = 5.0;
    let mut worker = worker_with(&snap);
    let answer = json!({"choices": [{"message": {"role": "assistant", "content": "Hello"}}],
                        "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}});
    // Each request really costs 40 * $5/M = $0.0002... and $0.0001 is spent: one fits.
    let mut admitted = 0;
    loop {
        let (mut flow, verdict) = post(&mut worker, "/v1/chat/completions", CHAT);
        if let BodyVerdict::Reject(reply) = &verdict {
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(reply.status, 429);
            assert_eq!(body["error"]["code"], "budget_exceeded");
            assert_eq!(body["error"]["scope"], "team");
            assert_eq!(
                header(reply, "retry-after"),
                Some("60"),
                "until the window resets"
            );
            break;
        }
        flow.on_response_headers(Some(200), Some("application/json"), false);
        flow.on_response_body(&worker.host, answer.to_string().as_bytes(), true);
        flow.on_log(&worker.host, Some(200), None);
        admitted += 1;
        assert!(admitted < 5, "the budget never refused");
    }
    assert_eq!(admitted, 1);
    // The window resets: the snapshot's spend no longer counts, nor does the local one.
    advance(&worker, 60_000);
    forwarded(post(&mut worker, "/v1/chat/completions", CHAT).1);
}

fn worker_start() -> i64 {
    crate::host::fake::FakeHost::START_MS
}

#[test]
fn pass_through_requests_count_against_rpm_too() {
    let mut worker = worker_with(&limited(
        Limits {
            rpm: Some(1),
            ..Limits::default()
        },
        None,
    ));
    let auth = bearer(ALICE_KEY);
    let (_, verdict) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    assert!(matches!(verdict, Verdict::Forward(_)));
    let (_, verdict) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    assert_eq!(rejected(&verdict).0, 429);
    // Model lists are answered without counting.
    let (_, verdict) = worker.headers(&[(":path", "/v1/models"), ("authorization", &auth)], true);
    assert_eq!(rejected(&verdict).0, 200);
}
