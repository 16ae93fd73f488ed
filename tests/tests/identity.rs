//! Company SSO end to end: a real OpenID provider (npm `oidc-provider`, see `modelgate_e2e::idp`)
//! registered as an issuer with the control plane, a team named by IdP groups, and people
//! calling through the real Envoy with the access tokens the provider's token endpoint issued.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use jwt_simple::prelude::{ECDSAP256KeyPairLike, ES256KeyPair, HS256Key, JWTClaims, MACLike};
use modelgate_e2e::api::{chat_body, send, MODEL, PROPAGATION_TIMEOUT};
use modelgate_e2e::idp::{Idp, Person, AUDIENCE};
use modelgate_e2e::poll::eventually;
use modelgate_e2e::{ApiResponse, ControlPlane, EnvoyConfig, Stack};
use serde_json::{json, Map, Value};

const GROUP: &str = "ai-engineering";
/// The issuer's leeway for `exp` (`idp add --clock-skew`): small, so a token the IdP issued
/// for one second is expired for the gateway two seconds later.
const CLOCK_SKEW_S: u64 = 1;

/// A stack whose control plane knows the provider as an issuer and has a team for [`GROUP`].
struct Sso {
    stack: Stack,
    idp: Idp,
    team_id: String,
}

impl Sso {
    async fn start() -> Sso {
        let stack = Stack::start(EnvoyConfig::default()).await;
        let idp = Idp::start().await;
        let cp = &stack.control_plane;
        cli_ok(
            cp,
            &[
                "idp",
                "add",
                "--issuer",
                idp.issuer(),
                "--audience",
                AUDIENCE,
                "--clock-skew",
                &CLOCK_SKEW_S.to_string(),
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
        Sso {
            stack,
            idp,
            team_id,
        }
    }

    /// Registers `id` with the IdP as `person` and returns a token the IdP issued for them.
    async fn token(&self, id: &str, person: &Person) -> String {
        self.idp.set_person(id, person).await;
        self.idp.token(id).await
    }

    async fn chat(&self, token: &str) -> ApiResponse {
        self.stack.gateway().chat(Some(token)).await
    }

    /// Asserts the refusal and that its body does not echo the token.
    async fn assert_refused(&self, token: &str, status: u16, code: &str) {
        let response = self.chat(token).await;
        response.assert_error(status, code);
        assert!(!response.text().contains(token), "token echoed: {code}");
    }

    /// Envoy's log holds no wasm panic and none of `tokens`.
    fn assert_log_clean(&self, tokens: &[&str]) {
        let log = self.stack.envoy.log();
        assert!(!log.contains("panicked"), "wasm panic in Envoy's log");
        for token in tokens {
            let signature = token.rsplit('.').next().unwrap_or_default();
            assert!(
                !log.contains(token) && (signature.is_empty() || !log.contains(signature)),
                "the filter logged a token"
            );
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

/// A token's header or claims (segment 0 or 1) as JSON.
fn segment(token: &str, index: usize) -> Map<String, Value> {
    let text = token.split('.').nth(index).unwrap();
    let bytes = Base64UrlSafeNoPadding::decode_to_vec(text, None).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `token` with its claims segment replaced by `claims` (bytes, so not necessarily JSON or
/// UTF-8), header and signature kept: a forgery the IdP never signed.
fn with_claims_bytes(token: &str, claims: &[u8]) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims), parts[2])
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for jwt-simple to sign exactly as given.
fn exact_claims(claims: Map<String, Value>) -> JWTClaims<Map<String, Value>> {
    JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom: claims,
    }
}

async fn chat_model(stack: &Stack, token: &str, model: &str) -> ApiResponse {
    chat_as(stack, token, model, None).await
}

/// A chat with `model`, acting for `team` (`x-modelgate-team`) when one is named.
async fn chat_as(stack: &Stack, token: &str, model: &str, team: Option<&str>) -> ApiResponse {
    let mut body = chat_body("Say hello");
    body["model"] = json!(model);
    let mut request = stack
        .gateway()
        .request(reqwest::Method::POST, "/v1/chat/completions")
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(team) = team {
        request = request.header("x-modelgate-team", team);
    }
    send(request).await
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
    let sso = Sso::start().await;
    let (stack, idp) = (&sso.stack, &sso.idp);
    let cp = &stack.control_plane;
    let bob = cp.cli_json(&["user", "create", "bob@example.com", "--rpm", "2"]);
    assert_eq!(bob["rpm_limit"], 2);

    // A token with a mapped group: 200 once the snapshot with the issuer reached Envoy.
    let mut alice_person = Person::new("alice@example.com", &[GROUP, "other"]);
    alice_person.alg = Some("RS256");
    let alice = sso.token("alice@example.com", &alice_person).await;
    let waited = stack.gateway().wait_for_status(&alice, 200).await;
    println!("IdP token accepted {waited:?} after `idp add`");
    sso.chat(&alice).await.assert_success();
    // The upstream never sees the client's token.
    let seen = stack.upstream.requests();
    assert!(
        !format!("{:?}", seen.last().unwrap()).contains(&alice),
        "token forwarded upstream"
    );
    // The team's allowlist applies.
    chat_model(stack, &alice, "other-model")
        .await
        .assert_error(403, "model_not_allowed");

    // Refusals, each with its own code. Real tokens from the IdP where it can produce them
    // (expired by waiting out a one-second lifetime, minted for another audience, a person
    // in no mapped group); forgeries it would never sign crafted here from a real token
    // (claims swapped under its signature, `alg: none`) or with jwt-simple (HS256 keyed with
    // the IdP's published RSA key, a key and issuer of our own).
    let mut short_lived = Person::new("erin@example.com", &[GROUP]);
    short_lived.ttl_s = Some(1);
    let expired = sso.token("erin@example.com", &short_lived).await;
    let exp = segment(&expired, 1)["exp"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(
        (exp + CLOCK_SKEW_S + 1).saturating_sub(now_s()),
    ))
    .await;
    let other_audience = idp.token_for_other_app("alice@example.com").await;
    assert_eq!(segment(&other_audience, 1)["aud"], "someone-else");

    let mut claims = segment(&alice, 1);
    claims.insert("sub".into(), json!("admin@example.com"));
    let bad_signature = with_claims_bytes(&alice, &serde_json::to_vec(&claims).unwrap());

    let mut header = segment(&alice, 0);
    header.insert("alg".into(), json!("none"));
    let alg_none = format!(
        "{}.{}.",
        b64(&serde_json::to_vec(&header).unwrap()),
        alice.split('.').nth(1).unwrap()
    );

    let kid = header["kid"].as_str().unwrap().to_owned();
    let jwks = idp_jwks(idp).await;
    let public_key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("{kid} not in {jwks}"));
    let confused = HS256Key::from_bytes(public_key.to_string().as_bytes())
        .with_key_id(&kid)
        .authenticate(exact_claims(segment(&alice, 1)))
        .unwrap();

    let mut stranger_claims = segment(&alice, 1);
    stranger_claims.insert("iss".into(), json!("https://idp.evil.example.com"));
    let stranger = ES256KeyPair::generate()
        .with_key_id("evil")
        .sign(exact_claims(stranger_claims))
        .unwrap();

    let no_team = sso
        .token(
            "carol@example.com",
            &Person::new("carol@example.com", &["marketing"]),
        )
        .await;

    let refusals = [
        (&expired, 401, "token_expired"),
        (&other_audience, 401, "token_invalid_audience"),
        (&bad_signature, 401, "token_invalid_signature"),
        (&alg_none, 401, "token_algorithm_not_allowed"),
        (&confused, 401, "token_algorithm_not_allowed"),
        (&stranger, 401, "token_unknown_issuer"),
        (&no_team, 403, "no_team_for_identity"),
    ];
    for &(token, status, code) in &refusals {
        sso.assert_refused(token, status, code).await;
    }

    // Group removed at the IdP: the next token says so and is refused; the user's earlier
    // token keeps the groups it was issued with until it expires.
    let removed = sso
        .token(
            "alice@example.com",
            &Person::new("alice@example.com", &["other"]),
        )
        .await;
    sso.assert_refused(&removed, 403, "no_team_for_identity")
        .await;
    sso.chat(&alice).await.assert_success();

    // A user's RPM is shared across two of their tokens.
    let bob_person = Person::new("bob@example.com", &[GROUP]);
    let bob_1 = sso.token("bob@example.com", &bob_person).await;
    let bob_2 = idp.token("bob@example.com").await;
    assert_ne!(bob_1, bob_2);
    sso.chat(&bob_1).await.assert_success();
    sso.chat(&bob_2).await.assert_success();
    let third = sso.chat(&bob_1).await;
    assert_eq!(third.status, 429, "{}", third.summary());

    // A person in two mapped teams acts for the one `x-modelgate-team` names (id or alias);
    // without the header, for the mapped team whose id sorts first. Naming a team one's
    // groups do not map to is refused. The teams differ in their allowlists, so the model
    // answer shows which team applied.
    let both = format!("{MODEL},other-model");
    let platform = cp.cli_json(&[
        "team",
        "create",
        "--alias",
        "platform",
        "--models",
        &both,
        "--idp-groups",
        "platform",
        "--rpm",
        "3",
    ]);
    let platform_id = platform["team_id"].as_str().unwrap().to_owned();
    let dana = sso
        .token(
            "dana@example.com",
            &Person::new("dana@example.com", &[GROUP, "platform"]),
        )
        .await;
    eventually(
        "the platform team reached Envoy",
        PROPAGATION_TIMEOUT,
        || async {
            let response = chat_as(stack, &dana, "other-model", Some("platform")).await;
            if response.status == 200 {
                Ok(())
            } else {
                Err(response.summary())
            }
        },
    )
    .await;
    chat_as(stack, &dana, "other-model", Some("engineering"))
        .await
        .assert_error(403, "model_not_allowed");
    chat_as(stack, &dana, "other-model", Some(&platform_id))
        .await
        .assert_success();
    let unnamed = chat_model(stack, &dana, "other-model").await;
    if platform_id < sso.team_id {
        unnamed.assert_success();
    } else {
        unnamed.assert_error(403, "model_not_allowed");
    }
    chat_as(stack, &alice, MODEL, Some("platform"))
        .await
        .assert_error(403, "team_not_allowed");
    // The team's own limits apply to its members' tokens: the platform team's RPM of 3 counts
    // every request dana made as that team, and only those.
    let used = if platform_id < sso.team_id { 3 } else { 2 };
    for _ in used..3 {
        chat_as(stack, &dana, MODEL, Some("platform"))
            .await
            .assert_success();
    }
    chat_as(stack, &dana, MODEL, Some("platform"))
        .await
        .assert_error(429, "rate_limit_exceeded");
    chat_as(stack, &dana, MODEL, Some("engineering"))
        .await
        .assert_success();

    let mut sent: Vec<&str> = vec![&alice, &removed, &bob_1, &bob_2, &dana];
    sent.extend(refusals.iter().map(|(token, _, _)| token.as_str()));
    sso.assert_log_clean(&sent);

    // The audit log names user, team, issuer and the auth method, for refusals too.
    eventually(
        "alice's audited request and the expired token's refusal",
        PROPAGATION_TIMEOUT,
        || async {
            let records = audit_records(cp);
            let alice = records.iter().any(|r| {
                r["user_id"] == "alice@example.com"
                    && r["team_id"] == sso.team_id.as_str()
                    && r["issuer"] == idp.issuer()
                    && r["auth_method"] == "jwt"
                    && r["status"] == "success"
            });
            let expired = records
                .iter()
                .any(|r| r["reason"] == "token_expired" && r["auth_method"] == "jwt");
            if alice && expired {
                Ok(())
            } else {
                Err(format!(
                    "{} records; alice's success: {alice}, the expired token's refusal: {expired}",
                    records.len()
                ))
            }
        },
    )
    .await;

    // The same IdP's tokens administer once a group is given a role: the control plane
    // verifies them against the keys it fetched, as Envoy does for requests.
    cli_ok(
        cp,
        &[
            "idp",
            "update",
            idp.issuer(),
            "--admin-role",
            "mg-admins=auditor",
        ],
    );
    let auditor = sso
        .token(
            "ivy@example.com",
            &Person::new("ivy@example.com", &["mg-admins"]),
        )
        .await;
    let teams = cli_ok(cp, &["--admin-token", &auditor, "team", "list", "--json"]);
    assert!(teams.contains("engineering"), "{teams}");
    let denied = cp.cli(&["--admin-token", &auditor, "team", "create", "--alias", "x"]);
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("role auditor may not create_team"),
        "{stderr}"
    );
    let outsider = cp.cli(&["--admin-token", &alice, "team", "list"]);
    let stderr = String::from_utf8_lossy(&outsider.stderr);
    assert!(
        stderr.contains("none of the token's groups is given an admin role"),
        "{stderr}"
    );
    // Old records and these new ones chain and verify alike.
    let verify = cp.cli_json(&["audit", "verify"]);
    assert!(verify.is_object(), "audit verify printed {verify}");
}

/// The provider's published keys, as the control plane fetches them (discovery, then
/// `jwks_uri`).
async fn idp_jwks(idp: &Idp) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let body = http.get(url).send().await.unwrap().bytes().await.unwrap();
            serde_json::from_slice::<Value>(&body).unwrap()
        }
    };
    let discovery = get(format!("{}/.well-known/openid-configuration", idp.issuer())).await;
    get(discovery["jwks_uri"].as_str().unwrap().to_owned()).await
}

/// Bad input: Envoy answers each with a clear 4xx (or serves it when the token is good), keeps
/// serving, and the filter's VM does not panic.
#[tokio::test]
async fn idp_bad_tokens() {
    let sso = Sso::start().await;
    let alice = sso
        .token(
            "alice@example.com",
            &Person::new("alice@example.com", &[GROUP]),
        )
        .await;
    sso.stack.gateway().wait_for_status(&alice, 200).await;

    // Past Envoy's 60 KiB header limit: Envoy's own JSON 431, before the filter.
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(100),
        "x".repeat(64 * 1024),
        "s".repeat(100)
    );
    sso.chat(&huge)
        .await
        .assert_error(431, "request_header_fields_too_large");
    // Past the filter's 16 KiB token cap but within Envoy's limit.
    let large = with_claims_bytes(&alice, "x".repeat(20 * 1024).as_bytes());
    sso.assert_refused(&large, 401, "token_too_large").await;

    // A token of a person in 500 groups (one of them mapped), signed by the IdP.
    let groups: Vec<String> = (0..500).map(|i| format!("group-{i}")).collect();
    let mut many: Vec<&str> = groups.iter().map(String::as_str).collect();
    many.push(GROUP);
    let wide = sso
        .token("dave@example.com", &Person::new("dave@example.com", &many))
        .await;
    sso.chat(&wide).await.assert_success();

    // Nested and array claims: only plain strings in `groups` name a team, the rest is ignored.
    let mut nested = Person::new("frank@example.com", &[]);
    nested.claims = json!({
        "groups": [[GROUP], {"name": GROUP}, 7, null, GROUP],
        "org": {"unit": {"teams": [["x"], {"y": [1, 2]}]}},
        "email": {"primary": "frank@example.com"},
    });
    let nested_ok = sso.token("frank@example.com", &nested).await;
    sso.chat(&nested_ok).await.assert_success();
    nested.claims["groups"] = json!([[GROUP], {"name": GROUP}]);
    let nested_only = sso.token("frank@example.com", &nested).await;
    sso.assert_refused(&nested_only, 403, "no_team_for_identity")
        .await;

    // Claims that are not UTF-8 (no IdP produces them; crafted from a real token).
    let mut bytes = format!(
        "{{\"iss\":\"{}\",\"aud\":\"{AUDIENCE}\",\"sub\":\"",
        sso.idp.issuer()
    )
    .into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    bytes.extend_from_slice(b"\",\"exp\":9999999999}");
    let non_utf8 = with_claims_bytes(&alice, &bytes);
    sso.assert_refused(&non_utf8, 401, "token_malformed").await;

    // A token that is not valid yet: the IdP never issues one, so it comes from a second
    // issuer whose JWKS the test uploads (`idp add --jwks-file`) and whose key signs here.
    let own = ES256KeyPair::generate().with_key_id("own-1");
    let mut jwk: Value = serde_json::from_str(&own.public_key().to_jwk()).unwrap();
    jwk["kid"] = json!("own-1");
    let jwks_file = sso.stack.control_plane.data_dir().join("own-jwks.json");
    std::fs::write(&jwks_file, json!({ "keys": [jwk] }).to_string()).unwrap();
    let own_issuer = "https://own-issuer.example.com";
    cli_ok(
        &sso.stack.control_plane,
        &[
            "idp",
            "add",
            "--issuer",
            own_issuer,
            "--audience",
            AUDIENCE,
            "--jwks-file",
            jwks_file.to_str().unwrap(),
        ],
    );
    let signed_from = |not_before: u64| {
        let claims = json!({
            "iss": own_issuer,
            "aud": AUDIENCE,
            "sub": "gina@example.com",
            "groups": [GROUP],
            "nbf": not_before,
            "exp": now_s() + 3600,
        });
        own.sign(exact_claims(claims.as_object().unwrap().clone()))
            .unwrap()
    };
    let current = signed_from(now_s());
    sso.stack.gateway().wait_for_status(&current, 200).await;
    let early = signed_from(now_s() + 600);
    sso.assert_refused(&early, 401, "token_not_yet_valid").await;

    // Envoy still serves, and its log holds neither a panic nor a token.
    sso.chat(&alice).await.assert_success();
    sso.assert_log_clean(&[
        &alice,
        &large,
        &wide,
        &nested_ok,
        &nested_only,
        &non_utf8,
        &current,
        &early,
    ]);
}

/// The IdP rotates its keys: tokens with the new `kid` are accepted within a poll tick of the
/// control plane's refetch (triggered by the filter's report of the unknown `kid`), tokens
/// with the old key verify until it leaves the JWKS. The rotation publishes a crowded JWKS
/// (over 100 keys), which the control plane and the filter handle.
#[tokio::test]
async fn idp_key_rotation() {
    let sso = Sso::start().await;
    let (stack, idp) = (&sso.stack, &sso.idp);
    let alice_person = Person::new("alice@example.com", &[GROUP]);
    let before = sso.token("alice@example.com", &alice_person).await;
    stack.gateway().wait_for_status(&before, 200).await;
    let old_kid = segment(&before, 0)["kid"].as_str().unwrap().to_owned();

    let fetches = idp.jwks_requests().await;
    let rotation = idp.rotate(true, 98).await;
    assert!(rotation.published.len() > 100, "{rotation:?}");
    assert!(rotation.published.contains(&old_kid));
    let rotated = idp.token("alice@example.com").await;
    let new_kid = segment(&rotated, 0)["kid"].as_str().unwrap().to_owned();
    assert!(rotation.signing.contains(&new_kid), "{rotation:?}");

    let started = Instant::now();
    sso.assert_refused(&rotated, 401, "token_unknown_key").await;
    eventually(
        "the control plane refetched the JWKS",
        PROPAGATION_TIMEOUT,
        || async {
            let now = idp.jwks_requests().await;
            if now > fetches {
                Ok(())
            } else {
                Err(format!("{now} fetches"))
            }
        },
    )
    .await;
    let refetched = started.elapsed();
    let waited = stack.gateway().wait_for_status(&rotated, 200).await;
    println!(
        "rotated kid: JWKS refetched {refetched:?} after the first refusal, token accepted {waited:?} later"
    );
    // One snapshot poll (1 s) after the refetch, with slack for a loaded machine.
    assert!(waited < Duration::from_secs(3), "rotation took {waited:?}");
    assert_eq!(
        idp.jwks_requests().await - fetches,
        1,
        "one refetch for the rotation"
    );
    // The other algorithm's new key came with the same JWKS.
    let mut bob_person = Person::new("bob@example.com", &[GROUP]);
    bob_person.alg = Some("RS256");
    let bob = sso.token("bob@example.com", &bob_person).await;
    sso.chat(&bob).await.assert_success();
    // The old key is still published: its token still verifies.
    sso.chat(&before).await.assert_success();

    // The IdP drops the old keys. Once the control plane refetched (the newest kid's first
    // refusal asks; refetches for unknown kids are spaced 5 s apart), old-key tokens are
    // refused as signed by an unknown key.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let retired = idp.rotate(false, 0).await;
    assert!(!retired.published.contains(&old_kid));
    let newest = idp.token("alice@example.com").await;
    stack.gateway().wait_for_status(&newest, 200).await;
    sso.assert_refused(&before, 401, "token_unknown_key").await;
    sso.assert_refused(&rotated, 401, "token_unknown_key").await;
    sso.assert_log_clean(&[&before, &rotated, &bob, &newest]);
}
