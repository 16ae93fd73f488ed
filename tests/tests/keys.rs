//! Keys, end to end: an admin makes a team and a key with the control plane (CLI or gRPC), a
//! client calls through the real Envoy running the real filter, and the filter decides from
//! the policy snapshot it pulled over gRPC.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use modelgate_e2e::api::{chat_body, MODEL};
use modelgate_e2e::upstream::REPLY;
use modelgate_e2e::{ApiResponse, ControlPlane, Envoy, EnvoyConfig, Stack, Upstream};
use modelgate_proto::v1::{CreateKeyRequest, CreateTeamRequest, ListKeysRequest};

/// The promise: a revocation is enforced by every Envoy within this.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(2);

/// `sk-mg-<12 [a-z0-9]>-<43 base62>`.
fn assert_key_format(key: &str) {
    let rest = key
        .strip_prefix("sk-mg-")
        .unwrap_or_else(|| panic!("{key} lacks sk-mg-"));
    let (public_id, secret) = rest.split_once('-').expect("public id and secret");
    assert_eq!(public_id.len(), 12, "public id of {key}");
    assert!(public_id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert_eq!(secret.len(), 43, "secret of {key}");
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
}

fn assert_answer_from_upstream(response: &ApiResponse) {
    response.assert_success();
    assert_eq!(
        response.json()["choices"][0]["message"]["content"],
        REPLY,
        "{}",
        response.summary()
    );
}

#[tokio::test]
async fn key_made_with_the_cli_reaches_the_upstream() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = stack.control_plane.team_with_key("cli-team");
    assert_key_format(&key.key);
    let waited = stack.gateway().wait_for_status(&key.key, 200).await;
    println!("key accepted {waited:?} after `modelgate key create` returned");

    let before = stack.upstream.requests().len();
    let response = stack.gateway().chat(Some(&key.key)).await;
    assert_answer_from_upstream(&response);
    assert!(
        response
            .header("x-modelgate-request-id")
            .is_some_and(|id| !id.is_empty()),
        "x-modelgate-request-id missing: {:?}",
        response.headers
    );

    let requests = stack.upstream.requests();
    assert_eq!(requests.len(), before + 1, "exactly one request upstream");
    let seen = requests.last().expect("a request");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.json()["model"], MODEL);
    assert_eq!(seen.json()["messages"], chat_body("Say hello")["messages"]);
}

#[tokio::test]
async fn key_made_over_grpc_reaches_the_upstream_and_lists_without_its_secret() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let mut admin = stack.control_plane.admin().await;
    let team = admin
        .create_team(CreateTeamRequest {
            alias: "grpc-team".to_string(),
            models: vec![MODEL.to_string()],
            ..CreateTeamRequest::default()
        })
        .await
        .expect("CreateTeam")
        .into_inner();
    let created = admin
        .create_key(CreateKeyRequest {
            team: team.team_id.clone(),
            user_id: "alice@example.com".to_string(),
            key_alias: "notebook".to_string(),
            ..CreateKeyRequest::default()
        })
        .await
        .expect("CreateKey")
        .into_inner();
    let key = created.secret;
    assert_key_format(&key);
    let listed_key = created.key.expect("created key metadata");
    assert!(key.ends_with(&listed_key.last4), "last4 of the created key");

    stack.gateway().wait_for_status(&key, 200).await;
    assert_answer_from_upstream(&stack.gateway().chat(Some(&key)).await);

    let listed = admin
        .list_keys(ListKeysRequest {
            team: "grpc-team".to_string(),
            ..ListKeysRequest::default()
        })
        .await
        .expect("ListKeys")
        .into_inner();
    assert_eq!(listed.keys.len(), 1);
    let secret = key.rsplit('-').next().expect("secret part");
    assert!(
        !format!("{:?}", listed.keys).contains(secret),
        "ListKeys leaks the secret"
    );
    assert_eq!(listed.keys[0].public_id, listed_key.public_id);
    assert_eq!(listed.keys[0].user_id, "alice@example.com");

    // Without the master key the admin API refuses.
    let mut anonymous = modelgate_proto::v1::admin_service_client::AdminServiceClient::connect(
        stack.control_plane.grpc_url(),
    )
    .await
    .expect("connect");
    let refused = anonymous
        .list_keys(ListKeysRequest::default())
        .await
        .expect_err("ListKeys without a master key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn missing_bad_and_malformed_keys_get_401_json_errors_and_never_reach_the_upstream() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = stack.control_plane.team_with_key("team");
    stack.gateway().wait_for_status(&key.key, 200).await;
    let before = stack.upstream.requests().len();

    let gateway = stack.gateway();
    gateway
        .chat(None)
        .await
        .assert_error(401, "missing_api_key");

    // Well-formed, but no such key: same shape, one character off, and someone else's format.
    let mut flipped = key.key.clone();
    let last = flipped.pop().expect("non-empty");
    flipped.push(if last == 'a' { 'b' } else { 'a' });
    let unknown = format!("sk-mg-zzzzzzzzzzzz-{}", "A".repeat(43));
    for bad in [
        flipped.as_str(),
        unknown.as_str(),
        "sk-proj-not-a-modelgate-key",
    ] {
        gateway
            .chat(Some(bad))
            .await
            .assert_error(401, "invalid_api_key");
    }

    for header in ["Basic dXNlcjpwYXNz", key.key.as_str(), "Bearer two tokens"] {
        let response = modelgate_e2e::api::send(
            gateway
                .request(http::Method::POST, "/v1/chat/completions")
                .header("authorization", header)
                .header("content-type", "application/json")
                .body(chat_body("hi").to_string()),
        )
        .await;
        response.assert_error(401, "malformed_authorization");
    }

    assert_eq!(
        stack.upstream.requests().len(),
        before,
        "a refused request reached the upstream"
    );
    let log = stack.envoy.log();
    for secret in [&key.key, &flipped, &unknown] {
        assert!(
            !log.contains(secret.as_str()),
            "Envoy's log contains a raw key"
        );
    }
}

#[tokio::test]
async fn revoked_key_is_refused_within_two_seconds() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = stack.control_plane.team_with_key("team");
    let other = stack.control_plane.create_key(&key.team_id);
    stack.gateway().wait_for_status(&key.key, 200).await;
    stack.gateway().wait_for_status(&other.key, 200).await;

    let revoke_started = Instant::now();
    stack.control_plane.revoke_key(&key.public_id);
    let cli_took = revoke_started.elapsed();
    let gateway = stack.gateway();
    let propagation = gateway.wait_for_status(&key.key, 401).await;
    println!(
        "revocation propagation: {propagation:?} after `modelgate key revoke` returned \
         (the CLI call took {cli_took:?})"
    );
    assert!(
        propagation < REVOCATION_DEADLINE,
        "revocation took {propagation:?} to reach Envoy"
    );

    for _ in 0..10 {
        gateway
            .chat(Some(&key.key))
            .await
            .assert_error(401, "key_revoked");
    }
    assert_answer_from_upstream(&gateway.chat(Some(&other.key)).await);
}

#[tokio::test]
async fn upstream_never_sees_the_client_key_or_client_sent_internal_headers() {
    let stack =
        Stack::start(EnvoyConfig::default().upstream_authorization("Bearer upstream-secret")).await;
    let key = stack.control_plane.team_with_key("team");
    stack.gateway().wait_for_status(&key.key, 200).await;

    let gateway = stack.gateway();
    let spoofing = |request: reqwest::RequestBuilder| {
        request
            .header("content-type", "application/json")
            // Would route to the control plane if the filter let it through.
            .header("x-modelgate-cluster", "modelgate_control_plane")
            .header("X-Modelgate-Team-Id", "someone-elses-team")
            .header("x-modelgate-request-id", "spoofed")
            .body(chat_body("hi").to_string())
    };
    let by_bearer =
        spoofing(gateway.request(http::Method::POST, "/v1/chat/completions")).bearer_auth(&key.key);
    assert_answer_from_upstream(&modelgate_e2e::api::send(by_bearer).await);
    let by_api_key = spoofing(gateway.request(http::Method::POST, "/v1/chat/completions"))
        .header("x-api-key", &key.key);
    assert_answer_from_upstream(&modelgate_e2e::api::send(by_api_key).await);

    let requests = stack.upstream.requests();
    let last_two = &requests[requests.len() - 2..];
    for seen in last_two {
        assert_eq!(seen.header("authorization"), Some("Bearer upstream-secret"));
        for (name, value) in &seen.headers {
            assert!(
                !name.as_str().starts_with("x-modelgate-"),
                "upstream saw {name}: {value:?}"
            );
            assert!(
                !value.to_str().unwrap_or_default().contains(&key.key),
                "upstream saw the client key in {name}"
            );
        }
        assert!(seen.header("x-api-key").is_none(), "upstream saw x-api-key");
    }
}

#[tokio::test]
async fn without_upstream_credential_the_upstream_gets_no_authorization_at_all() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let key = stack.control_plane.team_with_key("team");
    stack.gateway().wait_for_status(&key.key, 200).await;
    for seen in stack.upstream.requests() {
        assert!(
            seen.header("authorization").is_none(),
            "upstream saw authorization: {:?}",
            seen.header("authorization")
        );
    }
}

#[tokio::test]
async fn envoy_started_before_the_control_plane_fails_closed_then_recovers() {
    let upstream = Upstream::start();
    // The token is minted first (an Envoy needs one in its config), then the control plane
    // goes away; it comes back on the same address and data.
    let mut control_plane = ControlPlane::start().await;
    let access = control_plane.data_plane_access("late-starter");
    control_plane.kill();
    let envoy = Envoy::start(upstream.addr(), &access, EnvoyConfig::default()).await;
    let gateway = envoy.gateway();

    let some_key = format!("sk-mg-aaaaaaaaaaaa-{}", "B".repeat(43));
    // Several ticks' worth of failed polls: still closed.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let response = gateway.chat(Some(&some_key)).await;
        response.assert_error(503, "policy_unavailable");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        upstream.requests().is_empty(),
        "a request reached the upstream"
    );

    control_plane.restart().await;
    control_plane.create_model(MODEL).await;
    let key = control_plane.team_with_key("late");
    let recovered = gateway.wait_for_status(&key.key, 200).await;
    println!("first snapshot loaded {recovered:?} after the key was created");
    gateway
        .chat(Some(&some_key))
        .await
        .assert_error(401, "invalid_api_key");
}

#[tokio::test]
async fn control_plane_killed_after_a_snapshot_requests_still_succeed() {
    let mut stack = Stack::start(EnvoyConfig::default()).await;
    let key = stack.control_plane.team_with_key("team");
    let revoked = stack.control_plane.create_key(&key.team_id);
    stack.control_plane.revoke_key(&revoked.public_id);
    stack.gateway().wait_for_status(&key.key, 200).await;
    // The revocation is in the same or an earlier snapshot than the key's acceptance above.
    stack
        .gateway()
        .chat(Some(&revoked.key))
        .await
        .assert_error(401, "key_revoked");

    stack.control_plane.kill();
    let until = Instant::now() + Duration::from_secs(5);
    let mut served = 0;
    while Instant::now() < until {
        assert_answer_from_upstream(&stack.gateway().chat(Some(&key.key)).await);
        stack
            .gateway()
            .chat(Some(&revoked.key))
            .await
            .assert_error(401, "key_revoked");
        served += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("{served} requests served from the last snapshot over 5 s without a control plane");
}

#[tokio::test]
async fn control_plane_gone_longer_than_max_staleness_fails_closed_and_recovers_on_restart() {
    const MAX_STALENESS: Duration = Duration::from_secs(3);
    let mut stack =
        Stack::start(EnvoyConfig::default().max_staleness_s(MAX_STALENESS.as_secs())).await;
    let key = stack.control_plane.team_with_key("team");
    stack.gateway().wait_for_status(&key.key, 200).await;

    stack.control_plane.kill();
    let killed = Instant::now();
    assert_answer_from_upstream(&stack.gateway().chat(Some(&key.key)).await);
    let gateway = stack.gateway();
    gateway.wait_for_status(&key.key, 503).await;
    let closed_after = killed.elapsed();
    println!(
        "with max_staleness {MAX_STALENESS:?}: 503 {closed_after:?} after the control plane died"
    );
    // Staleness counts from the last successful poll, at most one tick (1 s) before the kill.
    assert!(
        closed_after >= MAX_STALENESS - Duration::from_secs(1),
        "failed closed too early: {closed_after:?}"
    );
    assert!(
        closed_after <= MAX_STALENESS + Duration::from_secs(3),
        "failed closed too late: {closed_after:?}"
    );
    gateway
        .chat(Some(&key.key))
        .await
        .assert_error(503, "policy_unavailable");

    stack.control_plane.restart().await;
    let recovered = stack.gateway().wait_for_status(&key.key, 200).await;
    println!("serving again {recovered:?} after the control plane restarted (same SQLite store)");
}

#[tokio::test]
async fn two_envoy_workers_enforce_the_same_snapshot() {
    const REQUESTS: usize = 40;
    let stack = Stack::start(EnvoyConfig::default().concurrency(2)).await;
    let key = stack.control_plane.team_with_key("team");
    stack.gateway().wait_for_status(&key.key, 200).await;
    let gateway = stack.gateway();

    let before = stack.envoy.connections_per_worker().await;
    assert_eq!(before.len(), 2, "per-worker listener stats: {before:?}");
    for _ in 0..REQUESTS {
        assert_answer_from_upstream(&gateway.chat(Some(&key.key)).await);
    }
    let accepted = stack.envoy.connections_per_worker().await;
    assert!(
        accepted
            .iter()
            .zip(&before)
            .all(|(after, before)| after > before),
        "both workers must serve some of the {REQUESTS} connections: {before:?} -> {accepted:?}"
    );

    stack.control_plane.revoke_key(&key.public_id);
    let propagation = gateway.wait_for_status(&key.key, 401).await;
    // Each worker's VM reads the snapshot from shared data on its own; give the slower one
    // the same deadline, then every connection on every worker must refuse.
    tokio::time::sleep(REVOCATION_DEADLINE.saturating_sub(propagation)).await;
    for _ in 0..REQUESTS {
        gateway
            .chat(Some(&key.key))
            .await
            .assert_error(401, "key_revoked");
    }
    let refused = stack.envoy.connections_per_worker().await;
    assert!(
        refused
            .iter()
            .zip(&accepted)
            .all(|(after, before)| after > before),
        "both workers must refuse some of the {REQUESTS} connections: {accepted:?} -> {refused:?}"
    );
    println!(
        "--concurrency 2: connections per worker {accepted:?} accepted, then {refused:?}; \
         first refusal {propagation:?} after revoke"
    );
}
