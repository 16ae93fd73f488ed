//! A LiteLLM migration guide's admin calls, sent unchanged but for the host to the gateway's
//! `/litellm/` route (the deployment exposes only Envoy): two `team/new`, then three
//! `key/generate` (one for the team by the id its `team/new` chose, two personal keys without
//! a team, as LiteLLM allows). The keys they return are then used with the official OpenAI
//! Python SDK through Envoy (`tests/clients/sdk_calls.py`), and their limits hold: the rpm,
//! the parallel cap and the allowlist.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use modelgate_e2e::api::{send, ApiResponse, PROPAGATION_TIMEOUT};
use modelgate_e2e::poll::eventually;
use modelgate_e2e::process::run_to_success;
use modelgate_e2e::upstream::Behaviour;
use modelgate_e2e::{artifacts, EnvoyConfig, Gateway, Stack};
use serde_json::{json, Value};

const SMALL: &str = "llama-3-8b";
const BIG: &str = "llama-3-70b";

/// `curl -X POST http://gateway/litellm/<path> -H 'Authorization: Bearer <master key>' -d body`
async fn litellm(gateway: &Gateway, master_key: &str, path: &str, body: Value) -> Value {
    let response = gateway
        .post_json(&format!("/litellm/{path}"), Some(master_key), &body)
        .await;
    assert_eq!(response.status, 200, "{path}: {}", response.summary());
    response.json()
}

/// Runs `tests/clients/sdk_calls.py BASE_URL KEY MODEL args...` and returns one JSON value
/// per line it printed.
async fn sdk_calls(gateway: &Gateway, key: &str, model: &str, args: &[&str]) -> Vec<Value> {
    let mut command = Command::new(artifacts::python());
    command
        .arg(artifacts::repo_root().join("tests/clients/sdk_calls.py"))
        .args([&gateway.url("/v1"), key, model])
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("NO_PROXY", "*");
    let output = tokio::task::spawn_blocking(move || run_to_success(&mut command))
        .await
        .unwrap();
    output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The SDK's outcomes for `count` chats with `model`: one after another or all at once.
async fn sdk(
    gateway: &Gateway,
    key: &str,
    model: &str,
    count: usize,
    parallel: bool,
) -> Vec<Value> {
    let count = count.to_string();
    let mut args = vec![count.as_str()];
    args.extend(parallel.then_some("parallel"));
    sdk_calls(gateway, key, model, &args).await
}

/// The SDK's `models.retrieve(model)` with `key`.
async fn retrieve(gateway: &Gateway, key: &str, model: &str) -> Value {
    let mut printed = sdk_calls(gateway, key, model, &["retrieve"]).await;
    assert_eq!(printed.len(), 1, "{printed:?}");
    printed.remove(0)
}

fn outcomes(results: &[Value]) -> Vec<(String, u64)> {
    let mut seen: Vec<(String, u64)> = results
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen
}

fn ok(n: usize) -> Vec<(String, u64)> {
    vec![("ok".to_string(), 200); n]
}

async fn wait_until_admitted(gateway: &Gateway, key: &str, model: &str) {
    eventually("the new key reaches Envoy", PROPAGATION_TIMEOUT, || async {
        let listed = send(
            gateway
                .request(http::Method::GET, "/v1/models")
                .bearer_auth(key),
        )
        .await;
        if listed.status != 200 {
            return Err(listed.summary());
        }
        let body = listed.json();
        let names: Vec<&str> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .collect();
        if names.contains(&model) {
            Ok(())
        } else {
            Err(format!("{model} not in {names:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn the_guides_teams_and_keys_work_through_the_gateway_with_their_limits() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let cp = &stack.control_plane;
    let gateway = stack.gateway();
    let master = cp.master_key();
    // The model list LiteLLM's config.yaml would hold.
    cp.create_model(SMALL).await;
    cp.create_model(BIG).await;

    // The route reaches the control plane's own authentication, not the filter's.
    let anonymous: ApiResponse = gateway
        .post_json("/litellm/team/new", None, &json!({"team_alias": "x"}))
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.summary());
    assert!(
        anonymous.json()["error"]["message"].is_string(),
        "{}",
        anonymous.summary()
    );

    let engineering = litellm(
        gateway,
        &master,
        "team/new",
        json!({"team_id": "team_engineering", "team_alias": "engineering", "models": [SMALL, BIG], "max_budget": 100}),
    )
    .await;
    assert_eq!(engineering["team_id"], "team_engineering");
    let interns = litellm(
        gateway,
        &master,
        "team/new",
        json!({"team_alias": "interns", "models": [SMALL], "rpm_limit": 100}),
    )
    .await;
    assert!(interns["team_id"].is_string(), "{interns}");

    let ci = litellm(
        gateway,
        &master,
        "key/generate",
        json!({"team_id": "team_engineering", "key_alias": "eng-ci", "max_parallel_requests": 1}),
    )
    .await;
    assert_eq!(ci["team_id"], "team_engineering");
    let intern = litellm(
        gateway,
        &master,
        "key/generate",
        json!({"models": [SMALL], "user_id": "intern-1", "key_alias": "intern-laptop", "rpm_limit": 2}),
    )
    .await;
    assert_eq!(
        intern["team_id"],
        Value::Null,
        "a key without a team: {intern}"
    );
    let analyst = litellm(
        gateway,
        &master,
        "key/generate",
        json!({"user_id": "ana", "max_budget": 5, "duration": "30d", "metadata": {"team": "data"}}),
    )
    .await;
    assert_eq!(analyst["team_id"], Value::Null, "{analyst}");
    let key = |created: &Value| created["key"].as_str().unwrap().to_string();
    let (ci, intern, analyst) = (key(&ci), key(&intern), key(&analyst));

    // The intern's personal key: its own allowlist, then its own rpm of 2.
    wait_until_admitted(gateway, &intern, SMALL).await;
    let denied = sdk(gateway, &intern, BIG, 1, false).await;
    assert_eq!(
        outcomes(&denied),
        vec![("PermissionDeniedError".to_string(), 403)]
    );
    let burst = sdk(gateway, &intern, SMALL, 3, false).await;
    let mut expected = ok(2);
    expected.insert(0, ("RateLimitError".to_string(), 429));
    assert_eq!(outcomes(&burst), expected, "{burst:?}");

    // A personal key with no model list reaches every route, within the snapshot's routes.
    wait_until_admitted(gateway, &analyst, BIG).await;
    assert_eq!(
        outcomes(&sdk(gateway, &analyst, BIG, 1, false).await),
        ok(1)
    );
    // The SDK's models.retrieve: what the key may use, and a 404 for what it may not.
    let retrieved = retrieve(gateway, &intern, SMALL).await;
    assert_eq!(retrieved["id"], SMALL, "{retrieved}");
    assert_eq!(retrieved["object"], "model", "{retrieved}");
    let hidden = retrieve(gateway, &intern, BIG).await;
    assert_eq!(hidden["outcome"], "NotFoundError", "{hidden}");
    let unknown = sdk(gateway, &analyst, "gpt-4o", 1, false).await;
    assert_eq!(outcomes(&unknown), vec![("NotFoundError".to_string(), 404)]);

    // The team key: one request at a time while the model server is slow.
    wait_until_admitted(gateway, &ci, BIG).await;
    stack.upstream.set_behaviour(Behaviour {
        delay: Duration::from_secs(3),
        ..Behaviour::default()
    });
    let at_once = sdk(gateway, &ci, BIG, 2, true).await;
    let mut expected = ok(1);
    expected.insert(0, ("RateLimitError".to_string(), 429));
    assert_eq!(outcomes(&at_once), expected, "{at_once:?}");
    stack.upstream.set_behaviour(Behaviour::default());

    // Reads go through the route too: the three keys, as LiteLLM's /key/list counts them.
    let listed = send(
        gateway
            .request(http::Method::GET, "/litellm/key/list")
            .bearer_auth(&master),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.summary());
    assert_eq!(listed.json()["total_count"], 3, "{}", listed.summary());
}
