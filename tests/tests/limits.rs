//! Allowlists, rate limits, parallel caps and budgets, end to end: an admin sets them with the
//! control plane's gRPC admin API, clients call through a real Envoy with two worker threads
//! (so two filter VMs share the counters), and every limit holds at its exact boundary.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use modelgate_e2e::api::{chat_body, send, PROPAGATION_TIMEOUT};
use modelgate_e2e::control_plane::AdminClient;
use modelgate_e2e::poll::eventually;
use modelgate_e2e::{ApiResponse, Behaviour, EnvoyConfig, Gateway, Stack};
use modelgate_proto::v1::{
    CreateKeyRequest, CreateModelRequest, CreateTeamRequest, CreateUserRequest, LimitSettings,
};
use serde_json::{json, Value};

/// Two workers: each runs its own copy of the filter; limits must hold across both.
fn two_workers() -> EnvoyConfig {
    EnvoyConfig::default().concurrency(2)
}

/// What the stand-in upstream reports for [`chat`]: 2 prompt words, 5 reply words.
const COMPLETION_TOKENS: u64 = 5;

/// A priced model whose every [`chat`] costs exactly $0.007: the prompt is free, each of the
/// 5 completion tokens costs $0.0014 (and `max_tokens` is 5, so the estimate is exact too).
async fn priced_model(admin: &mut AdminClient, name: &str) {
    model(admin, name, "", 1_400.0).await;
}
const CHAT_COST: f64 = 0.007;

async fn model(admin: &mut AdminClient, name: &str, upstream_model: &str, output_per_mtok: f64) {
    admin
        .create_model(CreateModelRequest {
            name: name.to_string(),
            upstream_model: upstream_model.to_string(),
            output_cost_per_mtok: output_per_mtok,
            ..CreateModelRequest::default()
        })
        .await
        .unwrap_or_else(|status| panic!("CreateModel {name}: {status}"));
}

async fn team(admin: &mut AdminClient, alias: &str, models: &[&str], limits: LimitSettings) {
    admin
        .create_team(CreateTeamRequest {
            alias: alias.to_string(),
            models: models.iter().map(|m| m.to_string()).collect(),
            limits: Some(limits),
            ..CreateTeamRequest::default()
        })
        .await
        .unwrap_or_else(|status| panic!("CreateTeam {alias}: {status}"));
}

/// A key of `team`; returns the whole key.
async fn key(
    admin: &mut AdminClient,
    team: &str,
    models: &[&str],
    limits: LimitSettings,
) -> String {
    admin
        .create_key(CreateKeyRequest {
            team: team.to_string(),
            models: models.iter().map(|m| m.to_string()).collect(),
            limits: Some(limits),
            ..CreateKeyRequest::default()
        })
        .await
        .unwrap_or_else(|status| panic!("CreateKey in {team}: {status}"))
        .into_inner()
        .secret
}

/// A key of `team` owned by `user_id`; returns the whole key.
async fn user_key(admin: &mut AdminClient, team: &str, user_id: &str) -> String {
    admin
        .create_key(CreateKeyRequest {
            team: team.to_string(),
            user_id: user_id.to_string(),
            ..CreateKeyRequest::default()
        })
        .await
        .unwrap_or_else(|status| panic!("CreateKey for {user_id}: {status}"))
        .into_inner()
        .secret
}

/// A small chat completion for `model`, asking for at most [`COMPLETION_TOKENS`].
fn chat_for(model: &str) -> Value {
    let mut body = chat_body("Say hello");
    body["model"] = model.into();
    body["max_tokens"] = COMPLETION_TOKENS.into();
    body
}

async fn chat(gateway: &Gateway, key: &str, model: &str) -> ApiResponse {
    gateway
        .post_json("/v1/chat/completions", Some(key), &chat_for(model))
        .await
}

async fn get(gateway: &Gateway, key: &str, path: &str) -> ApiResponse {
    send(gateway.request(http::Method::GET, path).bearer_auth(key)).await
}

/// The public names `GET /v1/models` lists for `key`.
async fn listed(gateway: &Gateway, key: &str) -> Result<Vec<String>, String> {
    let response = get(gateway, key, "/v1/models").await;
    if response.status != 200 {
        return Err(response.summary());
    }
    Ok(response.json()["data"]
        .as_array()
        .ok_or_else(|| response.summary())?
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect())
}

/// Waits until the key is in Envoy's snapshot with exactly these models. Model lists are
/// answered by the filter without counting against any limit, so waiting spends nothing.
async fn wait_for_models(gateway: &Gateway, key: &str, models: &[&str]) {
    eventually(
        &format!("the key lists {models:?}"),
        PROPAGATION_TIMEOUT,
        || async {
            match listed(gateway, key).await {
                Ok(names) if names == models => Ok(()),
                Ok(names) => Err(format!("lists {names:?}")),
                Err(why) => Err(why),
            }
        },
    )
    .await;
}

fn header(response: &ApiResponse, name: &str) -> String {
    response
        .header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers))
        .to_string()
}

/// An OpenAI-style 429 naming the scope and limit, with `retry-after`.
fn assert_limited(response: &ApiResponse, code: &str, scope: &str, limit: &str) {
    response.assert_error(429, code);
    let error = &response.json()["error"];
    assert_eq!(error["scope"], scope, "{}", response.summary());
    assert_eq!(error["limit"], limit, "{}", response.summary());
    let retry: u64 = header(response, "retry-after").parse().unwrap();
    assert!(retry >= 1, "retry-after {retry}");
}

#[tokio::test]
async fn rpm_3_the_fourth_request_within_the_minute_is_429_with_headers() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    model(&mut admin, "m", "", 0.0).await;
    team(&mut admin, "rpm-team", &["m"], LimitSettings::default()).await;
    let limits = LimitSettings {
        rpm_limit: Some(3),
        tpm_limit: Some(100_000),
        ..LimitSettings::default()
    };
    let key = key(&mut admin, "rpm-team", &[], limits).await;
    let gateway = stack.gateway();
    wait_for_models(gateway, &key, &["m"]).await;

    let started = Instant::now();
    for remaining in ["2", "1", "0"] {
        let response = chat(gateway, &key, "m").await;
        response.assert_success();
        assert_eq!(header(&response, "x-ratelimit-limit-requests"), "3");
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            remaining
        );
        assert_eq!(header(&response, "x-ratelimit-limit-tokens"), "100000");
        assert!(response.header("x-ratelimit-remaining-tokens").is_some());
    }
    let fourth = chat(gateway, &key, "m").await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "all within the minute"
    );
    assert_limited(&fourth, "rate_limit_exceeded", "key", "rpm");
    assert_eq!(fourth.json()["error"]["type"], "requests");
    let retry: u64 = header(&fourth, "retry-after").parse().unwrap();
    assert!((1..=61).contains(&retry), "retry-after {retry}");
    assert_eq!(header(&fourth, "x-ratelimit-limit-requests"), "3");
    assert_eq!(header(&fourth, "x-ratelimit-remaining-requests"), "0");
    assert!(header(&fourth, "x-ratelimit-reset-requests").ends_with('s'));
    assert_eq!(header(&fourth, "x-ratelimit-limit-tokens"), "100000");
    assert!(fourth.header("x-ratelimit-remaining-tokens").is_some());
    assert!(fourth.header("x-ratelimit-reset-tokens").is_some());
    assert_eq!(
        stack.upstream.requests().len(),
        3,
        "the 4th never went upstream"
    );
    println!(
        "connections per worker: {:?}",
        stack.envoy.connections_per_worker().await
    );

    // A LiteLLM budget object's rpm binds a key that names it, set up as LiteLLM scripts do.
    let rest = Gateway::new(format!("http://{}", stack.control_plane.http_addr()));
    let master = stack.control_plane.master_key();
    rest.post_json(
        "/budget/new",
        Some(&master),
        &json!({"budget_id": "one-a-minute", "rpm_limit": 1}),
    )
    .await
    .assert_success();
    let budgeted = rest
        .post_json(
            "/key/generate",
            Some(&master),
            &json!({"team_id": "rpm-team", "budget_id": "one-a-minute"}),
        )
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Until Envoy has the key, it answers 401, which counts against no limit.
    eventually(
        "the budgeted key is served",
        PROPAGATION_TIMEOUT,
        || async {
            let response = chat(gateway, &budgeted, "m").await;
            if response.status == 200 {
                Ok(())
            } else {
                Err(response.summary())
            }
        },
    )
    .await;
    let second = chat(gateway, &budgeted, "m").await;
    assert_limited(&second, "rate_limit_exceeded", "key", "rpm");
    assert_eq!(header(&second, "x-ratelimit-limit-requests"), "1");
}

#[tokio::test]
async fn parallel_2_the_third_concurrent_is_429_and_a_cancelled_one_frees_its_slot() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    model(&mut admin, "m", "", 0.0).await;
    // The team's cap is each key's default.
    let team_limits = LimitSettings {
        max_parallel_requests: Some(2),
        ..LimitSettings::default()
    };
    team(&mut admin, "parallel-team", &["m"], team_limits).await;
    let key = key(&mut admin, "parallel-team", &[], LimitSettings::default()).await;
    let gateway = stack.gateway().clone();
    wait_for_models(&gateway, &key, &["m"]).await;

    stack.upstream.set_behaviour(Behaviour {
        delay: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let spawn_chat = || {
        let (gateway, key) = (gateway.clone(), key.clone());
        tokio::spawn(async move { chat(&gateway, &key, "m").await })
    };
    let first = spawn_chat();
    let second = spawn_chat();
    eventually(
        "two requests reach the slow upstream",
        PROPAGATION_TIMEOUT,
        || async {
            match stack.upstream.requests().len() {
                2 => Ok(()),
                n => Err(format!("{n} requests upstream")),
            }
        },
    )
    .await;
    let third = chat(&gateway, &key, "m").await;
    assert_limited(
        &third,
        "rate_limit_exceeded",
        "key",
        "max_parallel_requests",
    );
    assert_eq!(third.json()["error"]["type"], "parallel_requests");

    // The client of the first gives up: its connection closes, Envoy ends the request, and
    // the filter's log step gives the slot back.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    stack.upstream.set_behaviour(Behaviour::default());
    let freed = eventually("a new request is admitted", PROPAGATION_TIMEOUT, || async {
        let response = chat(&gateway, &key, "m").await;
        match response.status {
            200 => Ok(()),
            _ => Err(response.summary()),
        }
    })
    .await;
    println!("slot freed {freed:?} after the client cancelled");
    second.abort();
}

#[tokio::test]
async fn a_budget_that_fits_three_lets_three_through_then_429s_until_it_resets() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    priced_model(&mut admin, "priced").await;
    team(
        &mut admin,
        "budget-team",
        &["priced"],
        LimitSettings::default(),
    )
    .await;
    let limits = LimitSettings {
        max_budget: Some(3.0 * CHAT_COST),
        budget_duration: Some("1m".to_string()),
        ..LimitSettings::default()
    };
    let key = key(&mut admin, "budget-team", &[], limits).await;
    let budget_set = Instant::now();
    let gateway = stack.gateway();
    wait_for_models(gateway, &key, &["priced"]).await;

    for _ in 0..3 {
        chat(gateway, &key, "priced").await.assert_success();
    }
    // Refused at once, by the filter's own count: no need to wait for the control plane.
    let fourth = chat(gateway, &key, "priced").await;
    assert_limited(&fourth, "budget_exceeded", "key", "max_budget");
    assert_eq!(fourth.json()["error"]["type"], "insufficient_quota");
    // Still refused once the control plane has counted the spend and marked it exhausted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = chat(gateway, &key, "priced").await;
    assert_limited(&later, "budget_exceeded", "key", "max_budget");
    assert_eq!(stack.upstream.requests().len(), 3);

    // A LiteLLM budget object's max_budget caps each key that names it on its own spend.
    let rest = Gateway::new(format!("http://{}", stack.control_plane.http_addr()));
    let master = stack.control_plane.master_key();
    rest.post_json(
        "/budget/new",
        Some(&master),
        &json!({"budget_id": "two-chats", "max_budget": 2.0 * CHAT_COST, "budget_duration": "1d"}),
    )
    .await
    .assert_success();
    let budgeted = |alias: &'static str| {
        let rest = &rest;
        let master = &master;
        async move {
            rest.post_json(
                "/key/generate",
                Some(master),
                &json!({"team_id": "budget-team", "key_alias": alias, "budget_id": "two-chats"}),
            )
            .await
            .json()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (first, second) = (budgeted("first").await, budgeted("second").await);
    wait_for_models(gateway, &first, &["priced"]).await;
    wait_for_models(gateway, &second, &["priced"]).await;
    for _ in 0..2 {
        chat(gateway, &first, "priced").await.assert_success();
    }
    let third = chat(gateway, &first, "priced").await;
    assert_limited(&third, "budget_exceeded", "key", "max_budget");
    // Not one pot: the other key still has its own two chats.
    chat(gateway, &second, "priced").await.assert_success();
    assert_eq!(stack.upstream.requests().len(), 6);

    // The window rolls over a minute after the budget was set, without anyone touching it.
    let reset = eventually("the budget resets", Duration::from_secs(90), || async {
        let response = chat(gateway, &key, "priced").await;
        match response.status {
            200 => Ok(()),
            _ => Err(response.summary()),
        }
    })
    .await;
    let since_set = budget_set.elapsed();
    println!("budget reset {since_set:?} after it was set (waited {reset:?})");
    assert!(
        since_set >= Duration::from_secs(55),
        "reset after {since_set:?}, before its minute"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_against_a_budget_that_fits_ten_let_ten_through() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    priced_model(&mut admin, "priced").await;
    let limits = LimitSettings {
        max_budget: Some(10.0 * CHAT_COST),
        ..LimitSettings::default()
    };
    team(&mut admin, "budget-team", &["priced"], limits).await;
    let key = key(&mut admin, "budget-team", &[], LimitSettings::default()).await;
    let gateway = stack.gateway().clone();
    wait_for_models(&gateway, &key, &["priced"]).await;

    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (gateway, key) = (gateway.clone(), key.clone());
            tokio::spawn(async move { chat(&gateway, &key, "priced").await })
        })
        .collect();
    let mut succeeded = 0;
    for request in requests {
        let response = request.await.unwrap();
        if response.status == 200 {
            succeeded += 1;
        } else {
            assert_limited(&response, "budget_exceeded", "team", "max_budget");
        }
    }
    // Every estimate is exact here, so the shared count admits exactly what fits.
    assert_eq!(
        succeeded, 10,
        "requests through against a budget that fits 10"
    );
    assert_eq!(stack.upstream.requests().len(), 10);
}

#[tokio::test]
async fn allowlists_are_key_within_team_with_segment_safe_wildcards() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    for name in ["llama3.1-8b", "qwen2.5-7b", "qwen2.5x", "mistral-7b"] {
        model(&mut admin, name, "", 0.0).await;
    }
    team(
        &mut admin,
        "models-team",
        &["llama3.1-8b", "qwen2.5-*"],
        LimitSettings::default(),
    )
    .await;
    let inheriting = key(&mut admin, "models-team", &[], LimitSettings::default()).await;
    let narrowed = key(
        &mut admin,
        "models-team",
        &["qwen2.5-7b"],
        LimitSettings::default(),
    )
    .await;
    let gateway = stack.gateway();
    wait_for_models(gateway, &inheriting, &["llama3.1-8b", "qwen2.5-7b"]).await;
    wait_for_models(gateway, &narrowed, &["qwen2.5-7b"]).await;

    let tags = get(gateway, &inheriting, "/api/tags").await;
    tags.assert_success();
    let tags = tags.json();
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["llama3.1-8b", "qwen2.5-7b"]);

    let cases = [
        (&inheriting, "llama3.1-8b", 200, ""),
        (&inheriting, "qwen2.5-7b", 200, ""),
        (&inheriting, "qwen2.5x", 403, "model_not_allowed"),
        (&inheriting, "mistral-7b", 403, "model_not_allowed"),
        (&inheriting, "no-such-model", 404, "model_not_found"),
        (&narrowed, "qwen2.5-7b", 200, ""),
        (&narrowed, "llama3.1-8b", 403, "model_not_allowed"),
    ];
    for (key, model, status, code) in cases {
        let response = chat(gateway, key, model).await;
        if status == 200 {
            response.assert_success();
        } else {
            response.assert_error(status, code);
            let message = response.json()["error"]["message"].to_string();
            assert!(message.contains(model), "{model}: {message}");
        }
    }
    let upstream: Vec<String> = stack
        .upstream
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(upstream, ["llama3.1-8b", "qwen2.5-7b", "qwen2.5-7b"]);
}

#[tokio::test]
async fn an_alias_reaches_the_upstream_under_its_own_name() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    model(&mut admin, "llama3.1-8b", "llama3.1:8b", 0.0).await;
    team(
        &mut admin,
        "alias-team",
        &["llama3.1-8b"],
        LimitSettings::default(),
    )
    .await;
    let key = key(&mut admin, "alias-team", &[], LimitSettings::default()).await;
    let gateway = stack.gateway();
    wait_for_models(gateway, &key, &["llama3.1-8b"]).await;

    let sent = chat_for("llama3.1-8b");
    chat(gateway, &key, "llama3.1-8b").await.assert_success();
    let seen = stack.upstream.requests().pop().expect("a request upstream");
    let mut expected = sent.clone();
    expected["model"] = "llama3.1:8b".into();
    assert_eq!(seen.json(), expected, "only the model name changed");
    // The alias's own name is not a model clients can ask for.
    chat(gateway, &key, "llama3.1:8b")
        .await
        .assert_error(404, "model_not_found");
}

#[tokio::test]
async fn team_and_user_limits_are_shared_by_their_keys_and_named_in_the_429() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    model(&mut admin, "m", "", 0.0).await;
    let team_limits = LimitSettings {
        rpm_limit: Some(4),
        ..LimitSettings::default()
    };
    team(&mut admin, "shared-team", &["m"], team_limits).await;
    admin
        .create_user(CreateUserRequest {
            user_id: "ana@example.com".to_string(),
            limits: Some(LimitSettings {
                rpm_limit: Some(2),
                ..LimitSettings::default()
            }),
            ..CreateUserRequest::default()
        })
        .await
        .expect("CreateUser");
    let laptop = user_key(&mut admin, "shared-team", "ana@example.com").await;
    let notebook = user_key(&mut admin, "shared-team", "ana@example.com").await;
    let service = key(&mut admin, "shared-team", &[], LimitSettings::default()).await;
    let gateway = stack.gateway();
    for key in [&laptop, &notebook, &service] {
        wait_for_models(gateway, key, &["m"]).await;
    }

    // Ana's two keys share her 2 per minute.
    chat(gateway, &laptop, "m").await.assert_success();
    chat(gateway, &notebook, "m").await.assert_success();
    let third = chat(gateway, &laptop, "m").await;
    assert_limited(&third, "rate_limit_exceeded", "user", "rpm");
    assert!(
        !third.text().contains("ana@example.com"),
        "the user's address is not echoed: {}",
        third.summary()
    );
    // The team's 4 per minute cover every key: two more, then the team is full.
    chat(gateway, &service, "m").await.assert_success();
    chat(gateway, &service, "m").await.assert_success();
    let fifth = chat(gateway, &service, "m").await;
    assert_limited(&fifth, "rate_limit_exceeded", "team", "rpm");
    assert_eq!(stack.upstream.requests().len(), 4);
}

#[tokio::test]
async fn tpm_reserves_the_estimate_and_keeps_only_what_the_upstream_counted() {
    let stack = Stack::start(two_workers()).await;
    let mut admin = stack.control_plane.admin().await;
    model(&mut admin, "m", "", 0.0).await;
    team(&mut admin, "tpm-team", &["m"], LimitSettings::default()).await;
    let limits = LimitSettings {
        tpm_limit: Some(1_000),
        ..LimitSettings::default()
    };
    let key = key(&mut admin, "tpm-team", &[], limits).await;
    let gateway = stack.gateway();
    wait_for_models(gateway, &key, &["m"]).await;

    let remaining = |response: &ApiResponse| -> u64 {
        header(response, "x-ratelimit-remaining-tokens")
            .parse()
            .unwrap()
    };
    let first = chat(gateway, &key, "m").await;
    first.assert_success();
    let estimate = 1_000 - remaining(&first);
    let counted = first.json()["usage"]["total_tokens"].as_u64().unwrap();
    assert!(estimate > counted, "reserved {estimate}, counted {counted}");
    // The first request's reservation was replaced by its real count when it ended.
    let second = chat(gateway, &key, "m").await;
    second.assert_success();
    assert_eq!(remaining(&second), 1_000 - counted - estimate);

    // A request that could need more than the whole limit is refused up front.
    let mut huge = chat_for("m");
    huge["max_tokens"] = 5_000.into();
    let refused = gateway
        .post_json("/v1/chat/completions", Some(&key), &huge)
        .await;
    assert_limited(&refused, "rate_limit_exceeded", "key", "tpm");
    assert_eq!(refused.json()["error"]["type"], "tokens");
    assert_eq!(stack.upstream.requests().len(), 2);
}
