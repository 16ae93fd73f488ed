//! Open WebUI users, end to end: a service key (`key create --can-assert-user`) names the end
//! user in Open WebUI's forwarded-user headers, plain or signed, and the real filter in the
//! real Envoy gives each user their own limits and audit line; from an ordinary key the same
//! headers change nothing and never reach the upstream.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jwt_simple::prelude::{Claims, Duration, HS256Key, JWTClaims, MACLike};
use modelgate_e2e::api::{chat_body, send};
use modelgate_e2e::exchange::{record_where, records};
use modelgate_e2e::{ApiResponse, ControlPlane, EnvoyConfig, Stack};
use serde_json::{json, Map, Value};

/// What Open WebUI's FORWARD_USER_INFO_HEADER_JWT_SECRET would hold.
const SECRET: &str = "owui-forward-secret-0123456789abcdef0123";
/// Every header Open WebUI 0.12 forwards with ENABLE_FORWARD_USER_INFO_HEADERS=true.
const FORWARDED: [&str; 7] = [
    "x-openwebui-user-id",
    "x-openwebui-user-email",
    "x-openwebui-user-name",
    "x-openwebui-user-role",
    "x-openwebui-chat-id",
    "x-openwebui-message-id",
    "x-openwebui-user-jwt",
];

/// A chat with `key` and these extra headers.
async fn chat_as(stack: &Stack, key: &str, headers: &[(&str, &str)]) -> ApiResponse {
    let mut request = stack
        .gateway()
        .request(http::Method::POST, "/v1/chat/completions")
        .header(http::header::CONTENT_TYPE, "application/json")
        .bearer_auth(key)
        .body(chat_body("Say hello").to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

/// Open WebUI's plain headers for a user.
fn plain<'a>(id: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-OpenWebUI-User-Id", id),
        ("X-OpenWebUI-User-Email", email),
        ("X-OpenWebUI-User-Name", "Someone"),
        ("X-OpenWebUI-User-Role", "user"),
        ("X-OpenWebUI-Chat-Id", "chat-1"),
    ]
}

/// The token Open WebUI mints: HS256, `iss: "open-webui"`, `sub`, `email`, `name`, `role`,
/// valid 300 s.
fn open_webui_jwt(secret: &str, email: &str) -> String {
    let Value::Object(user) = json!({"email": email, "name": "Someone", "role": "user"}) else {
        panic!("claims must be an object")
    };
    let claims: JWTClaims<Map<String, Value>> =
        Claims::with_custom_claims(user, Duration::from_secs(300))
            .with_issuer("open-webui")
            .with_subject("0b8f5c2e-uuid");
    HS256Key::from_bytes(secret.as_bytes())
        .authenticate(claims)
        .unwrap()
}

/// `key create --team TEAM ARGS…`; returns the whole key and its public id.
fn create_key(control_plane: &ControlPlane, team: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["key", "create", "--team", team];
    all.extend_from_slice(args);
    let created = control_plane.cli_json(&all);
    (
        created["key"].as_str().unwrap().to_owned(),
        created["public_id"].as_str().unwrap().to_owned(),
    )
}

/// The upstream saw none of the forwarded-user headers since request `from`.
fn assert_upstream_saw_no_forwarded_user(stack: &Stack, from: usize) {
    let requests = stack.upstream.requests();
    assert!(requests.len() > from, "nothing reached the upstream");
    for request in &requests[from..] {
        for name in FORWARDED {
            assert!(
                request.header(name).is_none(),
                "{name} reached the upstream: {:?}",
                request.headers
            );
        }
    }
}

#[tokio::test]
async fn plain_headers_from_a_service_key_give_each_user_their_own_line_and_limits() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let cp = &stack.control_plane;
    let team = cp.create_team("owui", "*");
    let (key, public_id) = create_key(cp, &team, &["--can-assert-user", "--rpm", "1"]);
    // Ana is known to the gateway: her own limits, and her own team.
    let engineering = cp.create_team("engineering", "*");
    cp.cli_json(&["user", "create", "ana@corp.example", "--rpm", "1"]);
    let ana = cp.cli_json(&[
        "user",
        "update",
        "ana@corp.example",
        "--team",
        "engineering",
    ]);
    assert_eq!(ana["team_id"], engineering.as_str(), "{ana}");
    let shown = cp.cli_json(&["key", "show", &public_id]);
    assert_eq!(shown["can_assert_user"], true, "{shown}");
    assert_eq!(shown["has_assert_user_secret"], false, "{shown}");
    // The key's own request (Open WebUI listing models, say) uses its own minute.
    stack.gateway().wait_for_status(&key, 200).await;

    let before = stack.upstream.requests().len();
    chat_as(&stack, &key, &plain("u-ana", "ana@corp.example"))
        .await
        .assert_success();
    // Bo has no email: his Open WebUI id names him; unknown to the gateway, he gets the key's
    // limits as his own and the key's team.
    chat_as(&stack, &key, &plain("u-bo", ""))
        .await
        .assert_success();
    // Each user's minute is their own: Ana's second request is refused, as hers.
    let again = chat_as(&stack, &key, &plain("u-ana", "ana@corp.example")).await;
    again.assert_error(429, "rate_limit_exceeded");
    assert_eq!(
        again.json()["error"]["scope"],
        "user",
        "{}",
        again.summary()
    );
    assert_upstream_saw_no_forwarded_user(&stack, before);

    for (user, their_team) in [("ana@corp.example", &engineering), ("u-bo", &team)] {
        let record = record_where(cp, &format!("{user}'s record"), |r| {
            r["user_id"] == user && r["status"] == "success"
        })
        .await;
        assert_eq!(record["auth_method"], "asserted", "{record}");
        assert_eq!(record["key_id"], public_id.as_str(), "{record}");
        assert_eq!(record["team_id"], their_team.as_str(), "{record}");
    }
    let limited = record_where(cp, "ana's refused record", |r| {
        r["user_id"] == "ana@corp.example" && r["status"] == "blocked"
    })
    .await;
    assert_eq!(limited["auth_method"], "asserted", "{limited}");
}

#[tokio::test]
async fn a_key_with_a_secret_takes_only_open_webuis_signed_user() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let cp = &stack.control_plane;
    let team = cp.create_team("owui-signed", "*");
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), format!("{SECRET}\n")).unwrap();
    let path = secret_file.path().to_str().unwrap();
    let (key, public_id) = create_key(cp, &team, &["--assert-secret-file", path]);
    let shown = cp.cli(&["key", "show", &public_id, "--json"]);
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(!shown_text.contains(SECRET), "key show printed the secret");
    let shown: Value = serde_json::from_str(&shown_text).unwrap();
    assert_eq!(
        (&shown["can_assert_user"], &shown["has_assert_user_secret"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{shown}"
    );
    stack.gateway().wait_for_status(&key, 200).await;

    let token = open_webui_jwt(SECRET, "ana@corp.example");
    let before = stack.upstream.requests().len();
    chat_as(&stack, &key, &[("X-OpenWebUI-User-Jwt", &token)])
        .await
        .assert_success();
    assert_upstream_saw_no_forwarded_user(&stack, before);
    let record = record_where(cp, "ana's signed record", |r| {
        r["user_id"] == "ana@corp.example" && r["status"] == "success"
    })
    .await;
    assert_eq!(record["auth_method"], "asserted", "{record}");

    // Signed with another secret: refused, and the token is not echoed.
    let forged = open_webui_jwt("not-the-secret-not-the-secret-not-it", "ceo@corp.example");
    let refused = chat_as(&stack, &key, &[("X-OpenWebUI-User-Jwt", &forged)]).await;
    refused.assert_error(401, "asserted_user_invalid_signature");
    assert!(!refused.text().contains(&forged));
    // Plain headers are not enough once the key has a secret.
    chat_as(&stack, &key, &plain("u-ceo", "ceo@corp.example"))
        .await
        .assert_error(401, "asserted_user_signature_required");
    let log = stack.envoy.log();
    assert!(
        !log.contains(&forged),
        "the filter logged a forwarded-user token"
    );
    assert!(!log.contains("panicked"), "wasm panic in Envoy's log");
    assert!(
        records(cp)
            .iter()
            .all(|r| r["user_id"] != "ceo@corp.example"),
        "a refused user got a record under their claimed name"
    );
}

#[tokio::test]
async fn spoofed_forwarded_user_headers_from_an_ordinary_key_change_nothing() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let cp = &stack.control_plane;
    let team = cp.create_team("ordinary", "*");
    let (key, public_id) = create_key(cp, &team, &["--user", "alice@corp.example"]);
    stack.gateway().wait_for_status(&key, 200).await;

    let token = open_webui_jwt(SECRET, "ceo@corp.example");
    let mut spoofed = plain("u-ceo", "ceo@corp.example");
    spoofed.push(("X-OpenWebUI-User-Jwt", &token));
    let before = stack.upstream.requests().len();
    let response = chat_as(&stack, &key, &spoofed).await;
    response.assert_success();
    assert_upstream_saw_no_forwarded_user(&stack, before);
    let request_id = response
        .header("x-modelgate-request-id")
        .unwrap()
        .to_owned();
    let record = record_where(cp, "the spoofed request's record", |r| {
        r["request_id"] == request_id.as_str()
    })
    .await;
    assert_eq!(record["user_id"], "alice@corp.example", "{record}");
    assert_eq!(record["auth_method"], "key", "{record}");
    assert_eq!(record["key_id"], public_id.as_str(), "{record}");
}
