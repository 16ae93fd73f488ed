//! Company SSO end to end: an IdP issuer registered with the control plane (its JWKS served
//! by a stand-in IdP on loopback that this test signs tokens for), a team named by IdP groups,
//! and people calling through the real Envoy with their IdP token instead of a key.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::{ECDSAP256KeyPairLike, ES256KeyPair, JWTClaims};
use modelgate_e2e::api::{chat_body, MODEL, PROPAGATION_TIMEOUT};
use modelgate_e2e::poll::eventually;
use modelgate_e2e::{ApiResponse, ControlPlane, EnvoyConfig, Stack};
use serde_json::{json, Map, Value};

const AUDIENCE: &str = "modelgate";
const GROUP: &str = "ai-engineering";

/// A stand-in IdP: OIDC discovery and a JWKS on loopback, signing keys kept here.
struct Idp {
    issuer: String,
    jwks: Arc<Mutex<String>>,
    jwks_hits: Arc<Mutex<u32>>,
}

impl Idp {
    fn start() -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(String::new()));
        let jwks_hits = Arc::new(Mutex::new(0));
        let (served, hits, iss) = (Arc::clone(&jwks), Arc::clone(&jwks_hits), issuer.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request_line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain the headers (no bodies on GET).
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let body = if request_line.contains("/.well-known/openid-configuration") {
                    json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")}).to_string()
                } else {
                    *hits.lock().unwrap() += 1;
                    served.lock().unwrap().clone()
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.flush();
            }
        });
        Idp {
            issuer,
            jwks,
            jwks_hits,
        }
    }

    fn publish(&self, keys: &[&ES256KeyPair]) {
        let keys: Vec<Value> = keys.iter().map(|k| jwk(k)).collect();
        *self.jwks.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn hits(&self) -> u32 {
        *self.jwks_hits.lock().unwrap()
    }
}

fn key(kid: &str) -> ES256KeyPair {
    ES256KeyPair::generate().with_key_id(kid)
}

fn jwk(key: &ES256KeyPair) -> Value {
    let mut jwk: Value = serde_json::from_str(&key.public_key().to_jwk()).unwrap();
    jwk["kid"] = json!(key.key_id().as_deref().unwrap());
    jwk
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid token for `user` in `groups`, valid for an hour.
fn claims(issuer: &str, user: &str, groups: &[&str]) -> Value {
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": user, "groups": groups,
        "iat": now_s(), "exp": now_s() + 3600, "jti": format!("{user}-{}", rand_suffix()),
    })
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A token carrying exactly `claims`.
fn sign(key: &ES256KeyPair, claims: Value) -> String {
    let Value::Object(custom) = claims else {
        panic!("claims must be an object")
    };
    let claims: JWTClaims<Map<String, Value>> = JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    };
    key.sign(claims).unwrap()
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

async fn chat_model(stack: &Stack, token: &str, model: &str) -> ApiResponse {
    let mut body = chat_body("Say hello");
    body["model"] = json!(model);
    stack
        .gateway()
        .post_json("/v1/chat/completions", Some(token), &body)
        .await
}

fn cli_ok(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.cli(args);
    assert!(
        out.status.success(),
        "modelgate {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn audit_records(cp: &ControlPlane) -> Vec<Value> {
    cp.cli_json(&["audit", "query", "--limit", "0", "--kind", "request"])
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn idp_tokens_through_envoy() {
    let stack = Stack::start(EnvoyConfig::default()).await;
    let cp = &stack.control_plane;
    let idp = Idp::start();
    let k1 = key("k1");
    idp.publish(&[&k1]);

    cli_ok(
        cp,
        &[
            "idp",
            "add",
            "--issuer",
            &idp.issuer,
            "--audience",
            AUDIENCE,
        ],
    );
    cp.create_model("other-model").await;
    let team = cp.cli_json(&[
        "team",
        "create",
        "--alias",
        "engineering",
        "--models",
        MODEL,
        "--idp-groups",
        GROUP,
    ]);
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    let bob = cp.cli_json(&["user", "create", "bob@example.com", "--rpm", "2"]);
    assert_eq!(bob["rpm_limit"], 2);

    // A token with a mapped group: 200 once the snapshot with the issuer reached Envoy.
    let alice = sign(
        &k1,
        claims(&idp.issuer, "alice@example.com", &[GROUP, "other"]),
    );
    let waited = stack.gateway().wait_for_status(&alice, 200).await;
    println!("IdP token accepted {waited:?} after `idp add`");
    let response = stack.gateway().chat(Some(&alice)).await;
    response.assert_success();
    // The upstream never sees the client's token.
    let seen = stack.upstream.requests();
    assert!(
        !format!("{:?}", seen.last().unwrap()).contains(&alice),
        "token forwarded upstream"
    );
    // The team's allowlist applies.
    chat_model(&stack, &alice, "other-model")
        .await
        .assert_error(403, "model_not_allowed");

    // Refusals, each with its own code.
    let expired = sign(
        &k1,
        with(
            with(
                claims(&idp.issuer, "alice@example.com", &[GROUP]),
                "exp",
                json!(now_s() - 3600),
            ),
            "iat",
            json!(now_s() - 7200),
        ),
    );
    let audience = sign(
        &k1,
        with(
            claims(&idp.issuer, "alice@example.com", &[GROUP]),
            "aud",
            json!("someone-else"),
        ),
    );
    let forged = sign(
        &key("k1"),
        claims(&idp.issuer, "alice@example.com", &[GROUP]),
    );
    let stranger = sign(
        &k1,
        claims(
            "https://idp.evil.example.com",
            "alice@example.com",
            &[GROUP],
        ),
    );
    let no_team = sign(
        &k1,
        claims(&idp.issuer, "carol@example.com", &["marketing"]),
    );
    for (token, status, code) in [
        (&expired, 401, "token_expired"),
        (&audience, 401, "token_invalid_audience"),
        (&forged, 401, "token_invalid_signature"),
        (&stranger, 401, "token_unknown_issuer"),
        (&no_team, 403, "no_team_for_identity"),
    ] {
        let response = stack.gateway().chat(Some(token)).await;
        response.assert_error(status, code);
        assert!(
            !response.text().contains(token.as_str()),
            "token echoed: {code}"
        );
    }

    // The IdP rotates: a token with the new kid is refused as unknown until the control
    // plane refetched (triggered by the filter's report), then accepted; the old key still
    // verifies while it stays in the JWKS.
    let k2 = key("k2");
    idp.publish(&[&k1, &k2]);
    let hits_before = idp.hits();
    let rotated = sign(&k2, claims(&idp.issuer, "alice@example.com", &[GROUP]));
    let started = Instant::now();
    let first = stack.gateway().chat(Some(&rotated)).await;
    first.assert_error(401, "token_unknown_key");
    let waited = stack.gateway().wait_for_status(&rotated, 200).await;
    println!(
        "token with the rotated kid accepted {:?} after the first refusal ({} JWKS fetches)",
        started.elapsed(),
        idp.hits() - hits_before
    );
    assert!(waited < Duration::from_secs(5), "rotation took {waited:?}");
    assert_eq!(idp.hits() - hits_before, 1, "one refetch for the rotation");
    stack.gateway().chat(Some(&alice)).await.assert_success();

    // A user's RPM is shared across two of their tokens.
    let bob_1 = sign(&k1, claims(&idp.issuer, "bob@example.com", &[GROUP]));
    let bob_2 = sign(&k2, claims(&idp.issuer, "bob@example.com", &[GROUP]));
    assert_ne!(bob_1, bob_2);
    stack.gateway().chat(Some(&bob_1)).await.assert_success();
    stack.gateway().chat(Some(&bob_2)).await.assert_success();
    let third = stack.gateway().chat(Some(&bob_1)).await;
    assert_eq!(third.status, 429, "{}", third.summary());

    // Bad input: Envoy answers with a clear 4xx and keeps serving; the VM does not panic.
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(100),
        "x".repeat(64 * 1024),
        "s".repeat(100)
    );
    let response = stack.gateway().chat(Some(&huge)).await;
    assert!(
        (400..500).contains(&response.status),
        "64 KB token: {}",
        response.status
    );
    let groups: Vec<String> = (0..500).map(|i| format!("group-{i}")).collect();
    let mut many: Vec<&str> = groups.iter().map(String::as_str).collect();
    many.push(GROUP);
    let wide = sign(&k1, claims(&idp.issuer, "dave@example.com", &many));
    let response = stack.gateway().chat(Some(&wide)).await;
    assert!(
        response.status == 200 || (400..500).contains(&response.status),
        "500 groups: {}",
        response.summary()
    );
    stack.gateway().chat(Some(&alice)).await.assert_success();
    let log = stack.envoy.log();
    assert!(!log.contains("panicked"), "wasm panic in Envoy's log");
    assert!(!log.contains(&alice), "the filter logged a token");

    // The audit log names user, team, issuer and the auth method.
    eventually("alice's audited request", PROPAGATION_TIMEOUT, || async {
        let records = audit_records(cp);
        let found = records.iter().any(|r| {
            r["user_id"] == "alice@example.com"
                && r["team_id"] == team_id.as_str()
                && r["issuer"] == idp.issuer.as_str()
                && r["auth_method"] == "jwt"
                && r["status"] == "success"
        });
        if found {
            Ok(())
        } else {
            Err(format!("{} records, none of alice's", records.len()))
        }
    })
    .await;
    let records = audit_records(cp);
    let refused = records
        .iter()
        .find(|r| r["reason"] == "token_expired")
        .unwrap_or_else(|| panic!("no record of the expired token: {records:?}"));
    assert_eq!(refused["auth_method"], "jwt", "{refused}");
    // Old records and these new ones chain and verify alike.
    let verify = cp.cli_json(&["audit", "verify"]);
    assert!(verify.is_object(), "audit verify printed {verify}");
}
