//! Requests authenticated by IdP JWTs, through the whole flow with the fake host: the team
//! their groups map to, its allowlist and cluster, per-user and per-team limits, refusals
//! with their codes, the audit record and the unknown-kid report.

use modelgate_proto::v1::{
    GetSnapshotRequest, Limits, PolicySnapshot, RequestStatus, TeamPolicy, UsageRecord, UserPolicy,
};
use prost::Message;
use serde_json::{json, Value};

use crate::audit::USAGE_QUEUE;
use crate::flow::tests::{forwarded, rejected, worker_with, Worker};
use crate::flow::{BodyVerdict, RequestFlow, Verdict};
use crate::host::Host;
use crate::identity::fixture::{claims, TestIdp, ISSUER};
use crate::identity::jwks::Algorithm;
use crate::identity::unknown_keys::{self, UNKNOWN_KEYS_KEY};
use crate::policy::tests::{snapshot, team};
use crate::snapshot::{publish_head, SnapshotHead};

const CHAT: &str = r#"{"model": "qwen2.5-7b", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]}"#;

/// The fixture snapshot plus the test IdP, team-1 for group `ai-users`, and team `research`
/// (alias `lab`, only llama models) for groups `research` and `ml-lab`, and a blocked team.
fn identity_snapshot(idp: &TestIdp) -> PolicySnapshot {
    let mut snap = snapshot(1);
    snap.teams[0].idp_groups = vec!["ai-users".to_owned()];
    snap.teams.push(TeamPolicy {
        alias: "lab".to_owned(),
        models: vec!["llama3.1-8b".to_owned()],
        idp_groups: vec!["research".to_owned(), "ml-lab".to_owned()],
        ..team("team-2-research")
    });
    snap.teams.push(TeamPolicy {
        blocked: true,
        idp_groups: vec!["suspended".to_owned()],
        ..team("team-0-suspended")
    });
    snap.identity_providers = vec![idp.provider()];
    snap
}

fn token(worker: &Worker, idp: &TestIdp, user: &str, groups: &[&str]) -> String {
    idp.sign(Algorithm::Es256, claims(worker.host.now_ms(), user, groups))
}

/// POSTs a chat with `token` (and `extra` headers) and returns the header verdict and, when
/// the body was awaited, the body verdict.
fn chat(
    worker: &mut Worker,
    token: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> (RequestFlow, Verdict, Option<BodyVerdict>) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    let (mut flow, verdict) = worker.headers(&headers, false);
    let body_verdict = matches!(verdict, Verdict::AwaitBody(_))
        .then(|| flow.on_request_body(&worker.host, body.as_bytes()));
    (flow, verdict, body_verdict)
}

fn last_record(worker: &Worker) -> UsageRecord {
    let queued = worker.host.queued(USAGE_QUEUE);
    UsageRecord::decode(queued.last().unwrap().as_slice()).unwrap()
}

fn cluster(verdict: BodyVerdict) -> String {
    let (edits, _) = forwarded(verdict);
    edits
        .set
        .iter()
        .find(|(name, _)| name == "x-modelgate-cluster")
        .map(|(_, value)| value.clone())
        .expect("a route header")
}

fn refusal(verdict: &Verdict) -> (u32, String) {
    let (status, body, _) = rejected(verdict);
    (status, body["error"]["code"].as_str().unwrap().to_owned())
}

#[test]
fn a_token_with_a_mapped_group_is_forwarded_as_its_team_and_recorded_as_its_user() {
    let idp = TestIdp::new();
    let mut worker = worker_with(&identity_snapshot(&idp));
    let token = token(&worker, &idp, "alice@corp", &["ai-users"]);
    let (mut flow, verdict, body) =
        chat(&mut worker, &token, &[("x-modelgate-team", "team-1")], CHAT);
    let Verdict::AwaitBody(edits) = verdict else {
        panic!("expected the body awaited, got {verdict:?}");
    };
    for stripped in ["authorization", "x-modelgate-team"] {
        assert!(edits.remove.iter().any(|h| h == stripped), "{stripped}");
    }
    assert_eq!(cluster(body.unwrap()), "pool-qwen");
    flow.on_log(&worker.host, Some(200), Some("via_upstream"));
    let record = last_record(&worker);
    assert_eq!(record.auth_method, "jwt");
    assert_eq!(record.issuer, ISSUER);
    assert_eq!(record.user_id, "alice@corp");
    assert_eq!(record.team_id, "team-1");
    assert_eq!(record.key_id, "", "a token has no key");
    assert_eq!(record.status, RequestStatus::Success as i32);
    let logged = format!("{record:?}");
    assert!(
        !logged.contains(&token[..40]),
        "the record never holds the token"
    );
}

#[test]
fn a_member_of_two_teams_gets_the_first_by_id_or_the_one_the_header_names() {
    let idp = TestIdp::new();
    let mut worker = worker_with(&identity_snapshot(&idp));
    let token = token(&worker, &idp, "bob", &["research", "ai-users"]);
    let llama = r#"{"model": "llama3.1-8b", "messages": [{"role": "user", "content": "hi"}]}"#;

    // No header: team-1 (sorts before team-2-research), whose allowlist has qwen.
    let (_, _, body) = chat(&mut worker, &token, &[], CHAT);
    assert_eq!(cluster(body.unwrap()), "pool-qwen");

    // The header, by alias: research's allowlist has no qwen, but llama.
    let (_, _, body) = chat(&mut worker, &token, &[("x-modelgate-team", "lab")], CHAT);
    let Some(BodyVerdict::Reject(reply)) = body else {
        panic!("expected a refusal");
    };
    assert_eq!(reply.status, 403);
    let (_, _, body) = chat(&mut worker, &token, &[("x-modelgate-team", "lab")], llama);
    assert_eq!(cluster(body.unwrap()), "pool-llama");
    let (mut flow, _, _) = chat(
        &mut worker,
        &token,
        &[("x-modelgate-team", "team-2-research")],
        llama,
    );
    flow.on_log(&worker.host, Some(200), None);
    assert_eq!(last_record(&worker).team_id, "team-2-research");

    // A team the groups do not map to, even one that exists.
    let (_, verdict, _) = chat(
        &mut worker,
        &token,
        &[("x-modelgate-team", "team-blocked")],
        CHAT,
    );
    assert_eq!(refusal(&verdict), (403, "team_not_allowed".to_owned()));

    // Only `ai-users`: the header cannot reach research.
    let member = self::token(&worker, &idp, "carol", &["ai-users"]);
    let (_, verdict, _) = chat(&mut worker, &member, &[("x-modelgate-team", "lab")], CHAT);
    assert_eq!(refusal(&verdict), (403, "team_not_allowed".to_owned()));
}

#[test]
fn no_mapped_or_allowed_group_is_403_and_a_blocked_team_stays_blocked() {
    let idp = TestIdp::new();
    let mut snap = identity_snapshot(&idp);
    let mut worker = worker_with(&snap);
    let outsider = token(&worker, &idp, "dave", &["finance"]);
    let (mut flow, verdict, _) = chat(&mut worker, &outsider, &[], CHAT);
    assert_eq!(refusal(&verdict), (403, "no_team_for_identity".to_owned()));
    flow.on_log(&worker.host, None, None);
    let record = last_record(&worker);
    assert_eq!(
        (
            record.reason.as_str(),
            record.user_id.as_str(),
            record.issuer.as_str()
        ),
        ("no_team_for_identity", "dave", ISSUER)
    );

    let suspended = token(&worker, &idp, "erin", &["suspended"]);
    let (_, verdict, _) = chat(&mut worker, &suspended, &[], CHAT);
    assert_eq!(refusal(&verdict), (403, "team_blocked".to_owned()));

    // The issuer only lets `ai-admins` in: a mapped group alone is not enough.
    snap.version = 2;
    snap.identity_providers[0].allowed_groups = vec!["ai-admins".to_owned()];
    let worker2 = worker_with(&snap);
    let mut worker2 = worker2;
    let member = token(&worker2, &idp, "frank", &["ai-users"]);
    let (_, verdict, _) = chat(&mut worker2, &member, &[], CHAT);
    assert_eq!(refusal(&verdict), (403, "no_team_for_identity".to_owned()));
    let admin = token(&worker2, &idp, "grace", &["ai-users", "ai-admins"]);
    let (_, _, body) = chat(&mut worker2, &admin, &[], CHAT);
    assert_eq!(cluster(body.unwrap()), "pool-qwen");
}

#[test]
fn token_refusals_are_401_with_their_code_in_the_body_and_the_record() {
    let idp = TestIdp::new();
    let mut worker = worker_with(&identity_snapshot(&idp));
    let now_s = worker.host.now_ms() / 1000;
    let mut expired = claims(worker.host.now_ms(), "alice", &["ai-users"]);
    expired["exp"] = json!(now_s - 3600);
    let cases = [
        (idp.sign(Algorithm::Rs256, expired), "token_expired"),
        (
            TestIdp::forger().sign(Algorithm::Rs256, claims(now_s * 1000, "alice", &[])),
            "token_invalid_signature",
        ),
        // A 64 KB bearer token of a JWT's shape.
        (
            format!("{}.{}.{}", "e".repeat(32_000), "e".repeat(32_000), "e"),
            "token_too_large",
        ),
    ];
    for (token, code) in cases {
        let (mut flow, verdict, _) = chat(&mut worker, &token, &[], CHAT);
        let (status, body, reply) = rejected(&verdict);
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some(code)));
        assert_eq!(body["error"]["type"], "authentication_error");
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(!text.contains(&token[token.len() - 20..]), "never echoed");
        flow.on_log(&worker.host, None, None);
        let record = last_record(&worker);
        assert_eq!(record.reason, code);
        assert_eq!(record.auth_method, "jwt");
        assert_eq!(record.status, RequestStatus::Blocked as i32);
    }
}

#[test]
fn a_users_rpm_is_shared_by_their_tokens_and_a_new_user_gets_the_issuer_defaults() {
    let idp = TestIdp::new();
    let mut snap = identity_snapshot(&idp);
    snap.users.push(UserPolicy {
        user_id: "alice".to_owned(),
        limits: Some(Limits {
            rpm: Some(2),
            ..Limits::default()
        }),
        ..UserPolicy::default()
    });
    snap.identity_providers[0].default_user_limits = Some(Limits {
        rpm: Some(1),
        ..Limits::default()
    });
    let mut worker = worker_with(&snap);
    let first = token(&worker, &idp, "alice", &["ai-users"]);
    worker.host.advance(1_000);
    let head = SnapshotHead {
        version: 1,
        last_contact_ms: worker.host.now_ms(),
    };
    publish_head(&worker.host, head).unwrap();
    let second = token(&worker, &idp, "alice", &["ai-users"]);
    assert_ne!(first, second, "two different tokens of one user");
    for token in [&first, &second] {
        let (_, _, body) = chat(&mut worker, token, &[], CHAT);
        assert!(matches!(body, Some(BodyVerdict::Forward { .. })));
    }
    let (_, _, body) = chat(&mut worker, &first, &[], CHAT);
    let Some(BodyVerdict::Reject(reply)) = body else {
        panic!("the third request in a minute is refused");
    };
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        (reply.status, &body["error"]["scope"]),
        (429, &json!("user"))
    );

    // Not in the snapshot: the issuer's default of 1 per minute.
    let newcomer = token(&worker, &idp, "intern-summer-2026", &["ai-users"]);
    let (_, _, body) = chat(&mut worker, &newcomer, &[], CHAT);
    assert!(matches!(body, Some(BodyVerdict::Forward { .. })));
    let (_, _, body) = chat(&mut worker, &newcomer, &[], CHAT);
    assert!(matches!(body, Some(BodyVerdict::Reject(ref r)) if r.status == 429));
}

#[test]
fn an_unknown_kid_is_reported_once_and_sent_with_the_next_poll() {
    let idp = TestIdp::new();
    let mut snap = identity_snapshot(&idp);
    snap.identity_providers[0].jwks_json =
        json!({ "keys": [idp.jwk(Algorithm::Rs256)] }).to_string();
    let mut worker = worker_with(&snap);
    let rotated = token(&worker, &idp, "alice", &["ai-users"]); // signed with `es256`
    for _ in 0..3 {
        let (_, verdict, _) = chat(&mut worker, &rotated, &[], CHAT);
        assert_eq!(refusal(&verdict), (401, "token_unknown_key".to_owned()));
    }
    let pending =
        GetSnapshotRequest::decode(worker.host.shared(UNKNOWN_KEYS_KEY).unwrap().as_slice())
            .unwrap()
            .unknown_signing_keys;
    assert_eq!(pending.len(), 1, "de-duplicated");
    assert_eq!(
        (pending[0].issuer.as_str(), pending[0].kid.as_str()),
        (ISSUER, "es256")
    );

    // The singleton takes them for its GetSnapshot; the list starts over.
    let taken = unknown_keys::take(&worker.host).unwrap();
    assert_eq!(taken, pending);
    assert!(unknown_keys::take(&worker.host).unwrap().is_empty());

    // A flood of made-up kids fills the list to its bound and stops there.
    for i in 0..100 {
        unknown_keys::report(&worker.host, ISSUER, &format!("made-up-{i}")).unwrap();
    }
    assert_eq!(
        unknown_keys::take(&worker.host).unwrap().len(),
        unknown_keys::MAX_PENDING
    );
}

#[test]
fn virtual_keys_keep_working_next_to_tokens() {
    let idp = TestIdp::new();
    let mut worker = worker_with(&identity_snapshot(&idp));
    let auth = format!("Bearer {}", crate::policy::tests::ALICE_KEY);
    let (mut flow, verdict) = worker.headers(
        &[
            (":method", "GET"),
            (":path", "/v1/models"),
            ("authorization", &auth),
        ],
        true,
    );
    assert!(matches!(verdict, Verdict::Reject(ref reply) if reply.status == 200));
    flow.on_log(&worker.host, Some(200), None);
    let record = last_record(&worker);
    assert_eq!(
        (record.auth_method.as_str(), record.key_id.as_str()),
        ("key", "alice0000001")
    );
}
