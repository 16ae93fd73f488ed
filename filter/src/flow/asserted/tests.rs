//! Service keys naming their end user through the whole flow with the fake host: per-user
//! limits and audit lines for asserted users, the signed form, and forwarded-user headers
//! from ordinary keys stripped and ignored.

use jwt_simple::prelude::{Claims, Duration, HS256Key, MACLike, UnixTimeStamp};
use modelgate_proto::v1::{KeyPolicy, KeyStatus, Limits, PolicySnapshot, UsageRecord};
use prost::Message;
use serde::Serialize;

use crate::audit::USAGE_QUEUE;
use crate::flow::tests::{bearer, rejected, worker_with, Worker};
use crate::flow::{RequestFlow, Verdict};
use crate::host::Host;
use crate::policy::tests::{key, snapshot, ALICE_KEY};

const SERVICE_KEY: &str = "sk-mg-owui00000001-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const SIGNED_KEY: &str = "sk-mg-owui00000002-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The fixture snapshot plus two service keys of team-1 with 1 request a minute each: one on
/// plain headers, one with a secret.
fn service_snapshot() -> PolicySnapshot {
    let limited = |secret: &str, id: &str| KeyPolicy {
        can_assert_user: true,
        limits: Some(Limits {
            rpm: Some(1),
            ..Limits::default()
        }),
        ..key(secret, id, KeyStatus::Active)
    };
    let mut snap = snapshot(1);
    snap.keys.push(limited(SERVICE_KEY, "owui00000001"));
    snap.keys.push(KeyPolicy {
        assert_user_secret: SECRET.to_vec(),
        ..limited(SIGNED_KEY, "owui00000002")
    });
    snap
}

/// GETs a pass-through path with `key` and `extra` headers, logs it, and returns the verdict
/// and its record.
fn get(worker: &mut Worker, key: &str, extra: &[(&str, &str)]) -> (Verdict, UsageRecord) {
    let auth = bearer(key);
    let mut headers = vec![
        (":method", "GET"),
        (":path", "/v1/files"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    let (mut flow, verdict): (RequestFlow, Verdict) = worker.headers(&headers, true);
    flow.on_log(&worker.host, Some(200), Some("via_upstream"));
    let queued = worker.host.queued(USAGE_QUEUE);
    let record = UsageRecord::decode(queued.last().unwrap().as_slice()).unwrap();
    (verdict, record)
}

fn stripped(verdict: &Verdict) -> &[String] {
    match verdict {
        Verdict::Forward(edits) | Verdict::AwaitBody(edits) => &edits.remove,
        Verdict::Reject(reply) => panic!("expected forwarded, got {reply:?}"),
    }
}

#[derive(Serialize)]
struct Email {
    email: String,
}

fn open_webui_token(worker: &Worker, secret: &[u8], email: &str) -> String {
    let now_s = u64::try_from(worker.host.now_ms() / 1000).unwrap();
    let email = Email {
        email: email.to_owned(),
    };
    let mut claims = Claims::with_custom_claims(email, Duration::from_secs(300))
        .with_issuer("open-webui")
        .with_subject("uuid-of-the-user");
    claims.issued_at = Some(UnixTimeStamp::from_secs(now_s));
    claims.invalid_before = None;
    claims.expires_at = Some(UnixTimeStamp::from_secs(now_s + 300));
    HS256Key::from_bytes(secret).authenticate(claims).unwrap()
}

#[test]
fn each_asserted_user_has_their_own_record_and_limits() {
    let mut worker = worker_with(&service_snapshot());
    let ana = [
        ("x-openwebui-user-email", "ana@corp.example"),
        ("x-openwebui-user-id", "u-1"),
    ];
    let bo = [("X-OpenWebUI-User-Id", "u-2")];

    let (verdict, record) = get(&mut worker, SERVICE_KEY, &ana);
    assert!(matches!(verdict, Verdict::Forward(_)), "{verdict:?}");
    assert_eq!(record.user_id, "ana@corp.example");
    assert_eq!(record.auth_method, "asserted");
    assert_eq!(record.key_id, "owui00000001");
    assert_eq!(record.team_id, "team-1");
    let removed = stripped(&verdict);
    assert!(
        removed.contains(&"x-openwebui-user-email".to_owned()),
        "{removed:?}"
    );

    // The key's 1 request a minute is each user's: Bo still gets through, Ana does not.
    let (verdict, record) = get(&mut worker, SERVICE_KEY, &bo);
    assert!(matches!(verdict, Verdict::Forward(_)), "{verdict:?}");
    assert_eq!(record.user_id, "u-2");
    let (verdict, record) = get(&mut worker, SERVICE_KEY, &ana);
    let (status, body, _) = rejected(&verdict);
    assert_eq!(
        (status, body["error"]["scope"].as_str()),
        (429, Some("user"))
    );
    assert_eq!(record.user_id, "ana@corp.example");
}

#[test]
fn a_service_key_without_a_user_is_itself() {
    let mut worker = worker_with(&service_snapshot());
    let (verdict, record) = get(&mut worker, SERVICE_KEY, &[]);
    assert!(matches!(verdict, Verdict::Forward(_)), "{verdict:?}");
    assert_eq!(record.auth_method, "key");
    assert_eq!(record.user_id, "owui00000001@example.com");
}

#[test]
fn forwarded_user_headers_from_an_ordinary_key_change_nothing_and_are_stripped() {
    let mut worker = worker_with(&service_snapshot());
    let spoofed = [
        ("x-openwebui-user-email", "ceo@corp.example"),
        ("x-openwebui-user-jwt", "a.b.c"),
        ("x-openwebui-chat-id", "chat-1"),
    ];
    let (verdict, record) = get(&mut worker, ALICE_KEY, &spoofed);
    assert_eq!(record.user_id, "alice0000001@example.com");
    assert_eq!(record.auth_method, "key");
    let removed = stripped(&verdict);
    for (name, _) in spoofed {
        assert!(
            removed.contains(&name.to_owned()),
            "{name} not stripped: {removed:?}"
        );
    }
}

#[test]
fn a_key_with_a_secret_takes_only_the_signed_form() {
    let mut worker = worker_with(&service_snapshot());
    let token = open_webui_token(&worker, SECRET, "ana@corp.example");
    let (verdict, record) = get(&mut worker, SIGNED_KEY, &[("x-openwebui-user-jwt", &token)]);
    assert!(matches!(verdict, Verdict::Forward(_)), "{verdict:?}");
    assert_eq!(
        (record.user_id.as_str(), record.auth_method.as_str()),
        ("ana@corp.example", "asserted")
    );

    let forged = open_webui_token(
        &worker,
        b"not-the-secret-not-the-secret-!!",
        "ceo@corp.example",
    );
    let (verdict, record) = get(
        &mut worker,
        SIGNED_KEY,
        &[("x-openwebui-user-jwt", &forged)],
    );
    let (status, body, reply) = rejected(&verdict);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "asserted_user_invalid_signature");
    assert!(!String::from_utf8_lossy(&reply.body).contains(&forged));
    assert_eq!(record.reason, "asserted_user_invalid_signature");
    assert_eq!(record.key_id, "owui00000002");

    let (verdict, _) = get(
        &mut worker,
        SIGNED_KEY,
        &[("x-openwebui-user-email", "ceo@corp.example")],
    );
    let (status, body, _) = rejected(&verdict);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("asserted_user_signature_required"))
    );
}

#[test]
fn header_names_follow_the_configuration() {
    let mut worker = Worker::new(
        r#"{"default_cluster": "upstream", "pass_through_paths": ["/v1/files"],
            "asserted_user_headers": {"user_email": "X-Corp-User"}}"#,
    );
    let head = crate::snapshot::SnapshotHead {
        version: 1,
        last_contact_ms: worker.host.now_ms(),
    };
    crate::snapshot::publish_snapshot(&worker.host, &service_snapshot().encode_to_vec(), head)
        .unwrap();
    let (_, record) = get(
        &mut worker,
        SERVICE_KEY,
        &[("x-corp-user", "ana@corp.example")],
    );
    assert_eq!(record.user_id, "ana@corp.example");
}

#[test]
fn a_user_with_a_team_is_in_it_and_the_keys_team_still_bounds_everyone() {
    let mut snap = service_snapshot();
    snap.teams[0].limits = Some(Limits {
        rpm: Some(1),
        ..Limits::default()
    });
    snap.teams.push(crate::policy::tests::team("team-2"));
    snap.users.push(modelgate_proto::v1::UserPolicy {
        user_id: "ana@corp.example".to_owned(),
        team_id: "team-2".to_owned(),
        ..modelgate_proto::v1::UserPolicy::default()
    });
    let mut worker = worker_with(&snap);

    let (verdict, record) = get(
        &mut worker,
        SERVICE_KEY,
        &[("x-openwebui-user-email", "ana@corp.example")],
    );
    assert!(matches!(verdict, Verdict::Forward(_)), "{verdict:?}");
    assert_eq!(
        (record.team_id.as_str(), record.key_id.as_str()),
        ("team-2", "owui00000001")
    );
    // Ana's request counted against the key's team too: its 1 a minute is spent for Bo.
    let (verdict, record) = get(
        &mut worker,
        SERVICE_KEY,
        &[("x-openwebui-user-email", "bo@corp.example")],
    );
    let (status, body, _) = rejected(&verdict);
    assert_eq!(
        (status, body["error"]["scope"].as_str()),
        (429, Some("team"))
    );
    assert_eq!(record.team_id, "team-1");
}
