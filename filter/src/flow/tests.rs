use modelgate_proto::v1::{PolicySnapshot, RequestStatus, UsageRecord};
use prost::Message;
use serde_json::Value;

use super::*;
use crate::config::PluginConfig;
use crate::host::fake::FakeHost;
use crate::identity::IdentityCache;
use crate::policy::tests::{snapshot, ALICE_KEY};
use crate::snapshot::{publish_head, publish_snapshot, SnapshotHead};

const PEER: &str = "10.0.0.7:40112";

/// A worker with its own snapshot cache, against a fake host.
pub(super) struct Worker {
    pub(super) host: FakeHost,
    pub(super) config: Rc<FilterConfig>,
    pub(super) snapshots: SnapshotCache,
    pub(super) identities: Rc<IdentityCache>,
}

impl Worker {
    pub(super) fn new(config_json: &str) -> Self {
        let PluginConfig::Filter(config) = PluginConfig::parse(config_json.as_bytes()).unwrap()
        else {
            panic!("not a filter config");
        };
        Self {
            host: FakeHost::new(),
            config: Rc::new(config),
            snapshots: SnapshotCache::new(),
            identities: Rc::new(IdentityCache::new()),
        }
    }

    /// `/v1/files` passes through: a path forwarded without a model.
    pub(super) fn default() -> Self {
        Self::new(
            r#"{"default_cluster": "upstream", "max_staleness_s": 30, "pass_through_paths": ["/v1/files"]}"#,
        )
    }

    pub(super) fn with_snapshot(self) -> Self {
        let head = SnapshotHead {
            version: 1,
            last_contact_ms: self.host.now_ms(),
        };
        publish_snapshot(&self.host, &snapshot(1).encode_to_vec(), head).unwrap();
        self
    }

    pub(super) fn headers(
        &mut self,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> (RequestFlow, Verdict) {
        let mut flow =
            RequestFlow::new(Rc::clone(&self.config)).with_identities(Rc::clone(&self.identities));
        let headers: RequestHeaders = headers.iter().copied().collect();
        let verdict = flow.on_request_headers(
            &self.host,
            &mut self.snapshots,
            &headers,
            Some(PEER),
            end_of_stream,
        );
        (flow, verdict)
    }

    /// A GET of a pass-through path with these extra headers, logged with `status` if
    /// forwarded.
    fn get(&mut self, extra: &[(&str, &str)]) -> (Verdict, UsageRecord) {
        let mut headers = vec![(":method", "GET"), (":path", "/v1/files")];
        headers.extend_from_slice(extra);
        let (mut flow, verdict) = self.headers(&headers, true);
        flow.on_log(&self.host, Some(200), Some("via_upstream"));
        (verdict, self.only_record())
    }

    pub(super) fn only_record(&self) -> UsageRecord {
        let queued = self.host.queued(USAGE_QUEUE);
        assert_eq!(queued.len(), 1, "exactly one usage record per request");
        UsageRecord::decode(queued[0].as_slice()).unwrap()
    }
}

/// A worker enforcing `snapshot`.
pub(super) fn worker_with(snapshot: &PolicySnapshot) -> Worker {
    let worker = Worker::default();
    let head = SnapshotHead {
        version: snapshot.version,
        last_contact_ms: worker.host.now_ms(),
    };
    publish_snapshot(&worker.host, &snapshot.encode_to_vec(), head).unwrap();
    worker
}

pub(super) fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

pub(super) fn rejected(verdict: &Verdict) -> (u32, Value, &LocalReply) {
    let Verdict::Reject(reply) = verdict else {
        panic!("expected a rejection, got {verdict:?}");
    };
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap(),
        reply,
    )
}

/// The edits and new body of a forwarded body.
pub(super) fn forwarded(verdict: BodyVerdict) -> (HeaderEdits, Option<Vec<u8>>) {
    match verdict {
        BodyVerdict::Forward { edits, body } => (edits, body),
        BodyVerdict::Reject(reply) => panic!("expected the body forwarded, got {reply:?}"),
    }
}

pub(super) fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn fails_closed_with_503_before_the_first_snapshot() {
    let mut worker = Worker::default();
    let auth = bearer(ALICE_KEY);
    let (verdict, record) = worker.get(&[("authorization", &auth)]);
    let (status, body, reply) = rejected(&verdict);
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "policy_unavailable");
    assert_eq!(header(reply, "content-type"), Some("application/json"));
    assert_eq!(header(reply, "retry-after"), Some("1"));
    assert!(header(reply, REQUEST_ID_HEADER).is_some());
    assert_eq!(record.status, RequestStatus::Blocked as i32);
    assert_eq!(record.reason, "policy_not_loaded");
    assert_eq!(record.http_status, 503);
}

#[test]
fn a_valid_key_is_forwarded_without_client_credentials_or_internal_headers() {
    let mut worker = Worker::default().with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (verdict, record) = worker.get(&[
        ("authorization", &auth),
        ("x-api-key", ALICE_KEY),
        ("x-modelgate-cluster", "pool-of-my-choice"),
        ("X-Modelgate-Team", "admins"),
        ("x-request-id", "envoy-rid-1"),
    ]);
    let Verdict::Forward(edits) = verdict else {
        panic!("expected forward, got {verdict:?}");
    };
    assert_eq!(
        edits.remove,
        [
            "authorization",
            "x-api-key",
            "x-modelgate-cluster",
            "x-modelgate-team"
        ]
    );
    assert_eq!(
        edits.set,
        [("x-modelgate-cluster".to_owned(), "upstream".to_owned())]
    );
    assert!(edits.reroute);

    assert_eq!(record.status, RequestStatus::Success as i32);
    assert_eq!(record.request_id, "envoy-rid-1");
    assert_eq!(record.key_id, "alice0000001");
    assert_eq!(record.team_id, "team-1");
    assert_eq!(record.user_id, "alice0000001@example.com");
    assert_eq!(record.client_ip, "10.0.0.7");
    assert_eq!(record.path, "/v1/files");
    assert_eq!(record.http_status, 200);
}

#[test]
fn the_upstream_credential_replaces_the_clients() {
    let mut worker = Worker::new(
        r#"{"default_cluster": "upstream", "upstream_authorization": "Bearer upstream-secret",
            "pass_through_paths": ["/v1/files"]}"#,
    )
    .with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (verdict, _) = worker.get(&[("authorization", &auth)]);
    let Verdict::Forward(edits) = verdict else {
        panic!("expected forward, got {verdict:?}");
    };
    assert!(edits.remove.contains(&"authorization".to_owned()));
    assert!(edits.set.contains(&(
        "authorization".to_owned(),
        "Bearer upstream-secret".to_owned()
    )));
}

#[test]
fn key_refusals_answer_401_or_403_and_are_audited() {
    let cases = [
        (None, 401, "missing_api_key", ""),
        (Some("Basic abc"), 401, "malformed_authorization", ""),
        (
            Some("Bearer never-issued"),
            401,
            "invalid_api_key",
            "unknown:",
        ),
        (
            Some("Bearer revoked-key"),
            401,
            "key_revoked",
            "revoked00001",
        ),
        (
            Some("Bearer expired-key"),
            401,
            "key_expired",
            "expired00001",
        ),
        (
            Some("Bearer blocked-key"),
            403,
            "key_blocked",
            "blocked00001",
        ),
        (
            Some("Bearer blocked-team-key"),
            403,
            "team_blocked",
            "blockedteam1",
        ),
        (
            Some("Bearer orphan-key"),
            401,
            "invalid_api_key",
            "orphan000001",
        ),
    ];
    for (authorization, status, code, key_id) in cases {
        let mut worker = Worker::default().with_snapshot();
        let extra: Vec<(&str, &str)> = authorization
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        let (verdict, record) = worker.get(&extra);
        let (got_status, body, reply) = rejected(&verdict);
        assert_eq!(
            (got_status, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{authorization:?}"
        );
        if status == 401 {
            assert!(header(reply, "www-authenticate").is_some());
        }
        assert_eq!(record.status, RequestStatus::Blocked as i32);
        assert_eq!(record.http_status, status);
        assert!(
            record.key_id.starts_with(key_id),
            "{authorization:?}: {}",
            record.key_id
        );
    }
}

#[test]
fn an_unknown_key_is_audited_by_fingerprint_only() {
    let mut worker = Worker::default().with_snapshot();
    let (_, record) = worker.get(&[("authorization", "Bearer sk-mg-nobody000001-secretsecret")]);
    let expected = KeyDigest::of("sk-mg-nobody000001-secretsecret").fingerprint();
    assert_eq!(record.key_id, expected);
    assert_eq!(record.key_id.len(), "unknown:".len() + 8);
    assert!(!format!("{record:?}").contains("secretsecret"));
    assert_eq!(record.reason, "invalid_api_key");
}

#[test]
fn fail_static_until_max_staleness_then_closed() {
    let mut worker = Worker::default().with_snapshot();
    let auth = bearer(ALICE_KEY);
    worker.host.advance(29_000);
    let (_, verdict) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    assert!(matches!(verdict, Verdict::Forward(_)));

    worker.host.advance(2_000);
    let (_, verdict) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    let (status, body, _) = rejected(&verdict);
    assert_eq!(status, 503);
    assert!(body["error"]["message"].as_str().unwrap().contains("stale"));

    let head = SnapshotHead {
        version: 1,
        last_contact_ms: worker.host.now_ms(),
    };
    publish_head(&worker.host, head).unwrap();
    let (_, verdict) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    assert!(matches!(verdict, Verdict::Forward(_)));
}

#[test]
fn the_body_picks_the_models_cluster() {
    let mut worker = Worker::default().with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (mut flow, verdict) = worker.headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", &auth),
        ],
        false,
    );
    let Verdict::AwaitBody(edits) = verdict else {
        panic!("expected to wait for the body, got {verdict:?}");
    };
    assert!(!edits.reroute, "no route before the body");
    let (edits, body) = forwarded(flow.on_request_body(
        &worker.host,
        br#"{"messages": [{"role": "user", "content": "hi"}], "model": "llama3.1-8b"}"#,
    ));
    assert_eq!(
        body.as_deref(),
        Some(&br#"{"messages": [{"role": "user", "content": "hi"}], "model": "llama3.1:8b"}"#[..]),
        "the alias, and only it, rewritten to the upstream's name"
    );
    assert_eq!(
        edits.set,
        [("x-modelgate-cluster".to_owned(), "pool-llama".to_owned())]
    );
    assert!(edits.remove.contains(&"content-length".to_owned()));
    assert!(edits.reroute);
    flow.on_log(&worker.host, Some(200), None);
    let record = worker.only_record();
    assert_eq!(record.model_requested, "llama3.1-8b");
    assert_eq!(record.model_resolved, "llama3.1:8b");
}

#[test]
fn request_ids_come_from_envoy_or_are_generated_and_sent_upstream() {
    let mut worker = Worker::default().with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (flow, verdict) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    let generated = flow.request_id().unwrap().to_owned();
    assert_eq!(generated.len(), 36);
    let Verdict::Forward(edits) = verdict else {
        panic!("expected forward");
    };
    assert!(edits
        .set
        .contains(&("x-request-id".to_owned(), generated.clone())));
    assert_eq!(
        flow.response_headers(),
        [(REQUEST_ID_HEADER, generated.clone())]
    );

    let (other, _) = worker.headers(&[(":path", "/v1/files"), ("authorization", &auth)], true);
    assert_ne!(other.request_id().unwrap(), generated);

    let (spoofed, _) = worker.headers(&[(":path", "/"), ("x-request-id", "bad id\r\nx: y")], true);
    assert_eq!(
        spoofed.request_id().unwrap().len(),
        36,
        "unusable ids are replaced"
    );
}

#[test]
fn paths_outside_the_api_prefix_are_404_after_authentication() {
    let mut worker =
        Worker::new(r#"{"default_cluster": "upstream", "api_prefix": "/v1"}"#).with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (_, verdict) = worker.headers(&[(":path", "/admin"), ("authorization", &auth)], true);
    assert_eq!(rejected(&verdict).0, 404);
    let (_, verdict) = worker.headers(&[(":path", "/admin")], true);
    assert_eq!(rejected(&verdict).0, 401);
    let (_, verdict) = worker.headers(
        &[(":path", "/v1/models?x=1"), ("authorization", &auth)],
        true,
    );
    assert_eq!(rejected(&verdict).0, 200, "answered by the filter");
}

#[test]
fn one_model_is_answered_when_the_key_may_use_it_and_404_otherwise() {
    let mut worker = Worker::default().with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (_, verdict) = worker.headers(
        &[
            (":path", "/v1/models/llama3.1-8b"),
            ("authorization", &auth),
        ],
        true,
    );
    let (status, model, _) = rejected(&verdict);
    assert_eq!(status, 200, "answered by the filter");
    assert_eq!(model["id"], "llama3.1-8b");
    assert_eq!(model["object"], "model");
    // Routed but not on Alice's team's list, and not routed at all: the same 404.
    for missing in ["/v1/models/qwen2.5x", "/v1/models/no-such-model"] {
        let (_, verdict) = worker.headers(&[(":path", missing), ("authorization", &auth)], true);
        let (status, error, _) = rejected(&verdict);
        assert_eq!(status, 404, "{missing}");
        assert_eq!(error["error"]["code"], "model_not_found", "{missing}");
    }
    let (_, verdict) = worker.headers(&[(":path", "/v1/models/llama3.1-8b")], true);
    assert_eq!(rejected(&verdict).0, 401, "a key is still needed");
}

#[test]
fn the_record_path_drops_the_query_string() {
    let mut worker = Worker::default().with_snapshot();
    let (mut flow, _) = worker.headers(&[(":path", "/v1/models?api_key=secret")], true);
    flow.on_log(&worker.host, None, None);
    assert_eq!(worker.only_record().path, "/v1/models");
}

#[test]
fn one_record_per_request_even_when_logged_twice_and_none_without_headers() {
    let mut worker = Worker::default().with_snapshot();
    let mut never_started = RequestFlow::new(Rc::clone(&worker.config));
    never_started.on_log(&worker.host, Some(200), None);
    assert!(worker.host.queued(USAGE_QUEUE).is_empty());

    let (mut flow, _) = worker.headers(&[(":path", "/v1/models")], true);
    flow.on_log(&worker.host, None, None);
    flow.on_log(&worker.host, None, None);
    assert_eq!(worker.host.queued(USAGE_QUEUE).len(), 1);
}

#[test]
fn cancelled_and_errored_requests_are_recorded_as_such() {
    let mut worker = Worker::default().with_snapshot();
    let auth = bearer(ALICE_KEY);
    let (mut flow, _) = worker.headers(&[(":path", "/v1/models"), ("authorization", &auth)], true);
    worker.host.advance(250);
    flow.on_log(&worker.host, None, Some("downstream_remote_disconnect"));
    let record = worker.only_record();
    assert_eq!(record.status, RequestStatus::Cancelled as i32);
    assert_eq!(record.latency_ms, 250);
}

#[test]
fn a_lost_record_is_counted() {
    let mut worker = Worker::default().with_snapshot();
    worker.host = FakeHost::new().refusing_enqueue();
    let (mut flow, _) = worker.headers(&[(":path", "/v1/models")], true);
    flow.on_log(&worker.host, None, None);
    assert_eq!(worker.host.counter(RECORDS_DROPPED_COUNTER), 1);
}
