//! The audit log, end to end: requests of every outcome through a real Envoy running the real
//! filter, each leaving exactly one record in the real control plane with the fields the
//! client and the upstream saw; nothing lost or doubled when the control plane is killed
//! mid-burst; no raw key or raw PII value ever stored.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_e2e::api::{chat_body, PROPAGATION_TIMEOUT};
use modelgate_e2e::control_plane::AdminClient;
use modelgate_e2e::poll::eventually;
use modelgate_e2e::{ApiResponse, Behaviour, ControlPlane, EnvoyConfig, Gateway, Stack, Upstream};
use modelgate_proto::v1::{CreateKeyRequest, CreateTeamRequest, LimitSettings, RevokeKeyRequest};
use serde_json::{json, Value};

/// How long shipped records may take to be queryable: a few service ticks (1 s each) plus
/// slack for a loaded CI machine and a control plane coming back from a crash.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests per outcome in [`every_outcome_leaves_one_exact_record`].
const N: usize = 3;

const MODEL: &str = modelgate_e2e::api::MODEL;
/// A model the snapshot routes but the test team may not use (403).
const OTHER_MODEL: &str = "other-model";
/// A model nobody routes (404).
const MISSING_MODEL: &str = "no-such-model";

/// PII in the prompts of the redacting team; none of it may reach the upstream or the store.
const EMAIL: &str = "jane.doe@example.com";
const PHONE: &str = "+1 415 555 0134";
/// Blocked by the team's policy: the request is refused with 400 `pii_blocked`.
const CARD: &str = "4111 1111 1111 1111";

/// The team's policy: mask every built-in type, refuse credit cards.
const POLICY: &str = r#"{"entities": {"CREDIT_CARD": "block"}}"#;

/// SHA-256 hex of `bytes`, from coreutils (this crate has no hashing dependency).
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(bytes)
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("sha256sum output");
    assert!(output.status.success(), "sha256sum: {}", output.status);
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// One request the test sent and what it expects its record to say.
#[derive(Debug)]
struct Sent {
    what: String,
    response: ApiResponse,
    request_id: String,
    key_id: Option<String>,
    team_id: Option<String>,
    model: Option<String>,
    status: &'static str,
    /// A try while waiting for a change to reach Envoy: only status and outcome are checked.
    outcome_only: bool,
}

/// Everything the test sends, kept so every record can be checked against its request.
struct Client {
    gateway: Gateway,
    sent: Vec<Sent>,
}

/// Who is calling, as the record should name it.
#[derive(Clone)]
struct Caller {
    key: Option<String>,
    key_id: Option<String>,
    team_id: Option<String>,
}

impl Client {
    async fn send(&mut self, what: &str, caller: &Caller, body: &Value, status: &'static str) {
        let response = self
            .gateway
            .post_json("/v1/chat/completions", caller.key.as_deref(), body)
            .await;
        let request_id = response
            .header("x-modelgate-request-id")
            .unwrap_or_else(|| panic!("{what}: no x-modelgate-request-id in {response:?}"))
            .to_string();
        self.sent.push(Sent {
            what: what.to_string(),
            request_id,
            key_id: caller.key_id.clone(),
            team_id: caller.team_id.clone(),
            model: body["model"].as_str().map(str::to_string),
            status,
            outcome_only: false,
            response,
        });
    }

    fn last(&self) -> &ApiResponse {
        &self.sent.last().expect("a request was sent").response
    }

    /// Sends until `caller` is answered `http_status` (a change reaching Envoy); every try is
    /// kept, since every try must leave a record too.
    async fn send_until(&mut self, what: &str, caller: &Caller, http_status: u16) {
        let start = Instant::now();
        loop {
            let status = if http_status == 200 {
                "success"
            } else {
                "blocked"
            };
            self.send(what, caller, &chat_body("Say hello"), status)
                .await;
            if self.last().status == http_status {
                return;
            }
            // Not there yet (e.g. 503 before the first snapshot, which names no key): only
            // the outcome of this try is known, and its record must still exist.
            let last = self.sent.last_mut().expect("sent");
            last.status = if (200..300).contains(&last.response.status) {
                "success"
            } else {
                "blocked"
            };
            last.outcome_only = true;
            assert!(
                start.elapsed() < PROPAGATION_TIMEOUT,
                "{what}: not answered {http_status} after {PROPAGATION_TIMEOUT:?}: {}",
                last.response.summary()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn audit_records(control_plane: &ControlPlane) -> Vec<Value> {
    // Requests only: the harness's team and key creation are admin records in the same log.
    let records = control_plane.cli_json(&["audit", "query", "--limit", "0", "--kind", "request"]);
    records
        .as_array()
        .unwrap_or_else(|| panic!("audit query printed no list: {records}"))
        .clone()
}

/// Polls until the log holds `expected` records, then waits two more ticks to see that no
/// extra record (a duplicate) arrives late.
async fn wait_for_records(control_plane: &ControlPlane, expected: usize) -> Vec<Value> {
    eventually(
        &format!("{expected} audit records"),
        DELIVERY_TIMEOUT,
        || async {
            let found = audit_records(control_plane).len();
            if found >= expected {
                Ok(())
            } else {
                Err(format!("{found} records"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let records = audit_records(control_plane);
    assert_eq!(
        records.len(),
        expected,
        "records after the log settled (duplicates?)"
    );
    records
}

/// Records by request id, asserting each id appears exactly once.
fn by_request_id(records: &[Value]) -> BTreeMap<String, &Value> {
    let mut by_id = BTreeMap::new();
    for record in records {
        let id = record["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("record without request_id: {record}"))
            .to_string();
        if let Some(earlier) = by_id.insert(id.clone(), record) {
            panic!("two records for request {id}:\n{earlier}\n{record}");
        }
    }
    by_id
}

fn assert_verifies(control_plane: &ControlPlane) {
    let report = control_plane.cli_json(&["audit", "verify"]);
    assert!(report.is_object(), "audit verify printed {report}");
}

async fn create_key(admin: &mut AdminClient, team_id: &str, limits: LimitSettings) -> Caller {
    let created = admin
        .create_key(CreateKeyRequest {
            team: team_id.to_string(),
            limits: Some(limits),
            ..CreateKeyRequest::default()
        })
        .await
        .unwrap_or_else(|status| panic!("CreateKey in {team_id}: {status}"))
        .into_inner();
    Caller {
        key: Some(created.secret),
        key_id: Some(created.key.expect("created key").public_id),
        team_id: Some(team_id.to_string()),
    }
}

fn body_for(model: &str, prompt: &str) -> Value {
    let mut body = chat_body(prompt);
    body["model"] = model.into();
    body
}

/// Every file of the store and the JSONL sink, as raw bytes.
fn stored_bytes(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![data_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read data dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "master.key") {
                let bytes = std::fs::read(&path).expect("read stored file");
                files.push((path.display().to_string(), bytes));
            }
        }
    }
    files
}

/// Request ids of the request records in the complete lines of the JSONL sink (`<data dir>/audit/*.jsonl`), sorted.
fn sink_request_ids(data_dir: &Path) -> Vec<String> {
    let dir = data_dir.join("audit");
    let mut ids = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a sink file");
        // A line still being written is not a record yet.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()));
            // The sink also holds the control plane's records of admin calls (the test's own
            // team and key set-up); only request records answer to sent requests.
            if record["kind"] != "request" {
                assert_eq!(record["kind"], "admin", "{line}");
                continue;
            }
            ids.push(
                record["request_id"]
                    .as_str()
                    .expect("request_id")
                    .to_string(),
            );
        }
    }
    ids.sort();
    ids
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_leaves_one_exact_record() {
    let started = Instant::now();
    let stack = Stack::start(EnvoyConfig::default()).await;
    let mut admin = stack.control_plane.admin().await;
    stack.control_plane.create_model(OTHER_MODEL).await;
    let team_id = admin
        .create_team(CreateTeamRequest {
            alias: "audited".to_string(),
            models: vec![MODEL.to_string()],
            redaction_policy_json: POLICY.to_string(),
            keep_redacted_prompt: true,
            ..CreateTeamRequest::default()
        })
        .await
        .expect("CreateTeam")
        .into_inner()
        .team_id;
    let user = create_key(&mut admin, &team_id, LimitSettings::default()).await;
    let limited = create_key(
        &mut admin,
        &team_id,
        LimitSettings {
            rpm_limit: Some(1),
            ..LimitSettings::default()
        },
    )
    .await;
    let revoked = create_key(&mut admin, &team_id, LimitSettings::default()).await;
    let unknown_key = format!("sk-mg-unknownkey00-{}", "A".repeat(43));
    let unknown = Caller {
        key: Some(unknown_key.clone()),
        key_id: Some(format!(
            "unknown:{}",
            &sha256_hex(unknown_key.as_bytes())[..8]
        )),
        team_id: None,
    };
    let anonymous = Caller {
        key: None,
        key_id: None,
        team_id: None,
    };

    let mut client = Client {
        gateway: stack.gateway().clone(),
        sent: Vec::new(),
    };
    client.send_until("warm-up", &user, 200).await;
    admin
        .revoke_key(RevokeKeyRequest {
            public_id: revoked.key_id.clone().expect("id"),
        })
        .await
        .expect("RevokeKey");
    client
        .send_until("revoked key taking effect", &revoked, 401)
        .await;

    let pii_prompt = format!("Write to {EMAIL} or call {PHONE} about the order");
    for i in 0..N {
        client
            .send("success", &user, &body_for(MODEL, &pii_prompt), "success")
            .await;
        client.last().assert_success();
        client
            .send("missing key", &anonymous, &chat_body("hi"), "blocked")
            .await;
        client.last().assert_error(401, "missing_api_key");
        client
            .send("unknown key", &unknown, &chat_body("hi"), "blocked")
            .await;
        client.last().assert_error(401, "invalid_api_key");
        client
            .send("revoked key", &revoked, &chat_body("hi"), "blocked")
            .await;
        client.last().assert_error(401, "key_revoked");
        client
            .send(
                "model not allowed",
                &user,
                &body_for(OTHER_MODEL, "hi"),
                "blocked",
            )
            .await;
        client.last().assert_error(403, "model_not_allowed");
        client
            .send(
                "model not found",
                &user,
                &body_for(MISSING_MODEL, "hi"),
                "blocked",
            )
            .await;
        client.last().assert_error(404, "model_not_found");
        let card_prompt = format!("Charge {CARD} for {EMAIL}");
        client
            .send(
                "pii blocked",
                &user,
                &body_for(MODEL, &card_prompt),
                "blocked",
            )
            .await;
        client.last().assert_error(400, "pii_blocked");
        // The key allows one request a minute: its first is served, the rest limited.
        let expected = if i == 0 { "success" } else { "blocked" };
        client
            .send("rate limited", &limited, &chat_body("hi"), expected)
            .await;
        if i == 0 {
            client.last().assert_success();
        } else {
            assert_eq!(client.last().status, 429, "{}", client.last().summary());
        }
    }
    // The limited key's extra request so the 429 outcome also has N records.
    client
        .send("rate limited", &limited, &chat_body("hi"), "blocked")
        .await;
    assert_eq!(client.last().status, 429, "{}", client.last().summary());
    let mut stream_body = body_for(MODEL, &pii_prompt);
    stream_body["stream"] = true.into();
    stream_body["stream_options"] = json!({"include_usage": true});
    client
        .send("streamed success", &user, &stream_body, "success")
        .await;
    client.last().assert_success();
    stack.upstream.set_behaviour(Behaviour {
        fail_status: Some(500),
        ..Behaviour::default()
    });
    for _ in 0..N {
        client
            .send("upstream failure", &user, &chat_body("hi"), "errored")
            .await;
        assert_eq!(client.last().status, 500, "{}", client.last().summary());
    }
    stack.upstream.set_behaviour(Behaviour::default());
    let traffic_done = started.elapsed();

    let records = wait_for_records(&stack.control_plane, client.sent.len()).await;
    let delivered = started.elapsed();
    let by_id = by_request_id(&records);
    let mut sent_ids: Vec<String> = client.sent.iter().map(|s| s.request_id.clone()).collect();
    sent_ids.sort();
    let data_dir = stack.control_plane.data_dir();
    eventually(
        "the JSONL sink holds every record once",
        DELIVERY_TIMEOUT,
        || async {
            let sunk = sink_request_ids(&data_dir);
            if sunk == sent_ids {
                Ok(())
            } else {
                Err(format!(
                    "{} lines for {} requests",
                    sunk.len(),
                    sent_ids.len()
                ))
            }
        },
    )
    .await;
    let upstream_bodies = upstream_by_request_id(&stack.upstream);
    for sent in &client.sent {
        let record = by_id.get(&sent.request_id).unwrap_or_else(|| {
            panic!(
                "no record for {} (request id {}): {}",
                sent.what,
                sent.request_id,
                sent.response.summary()
            )
        });
        check_record(sent, record, upstream_bodies.get(&sent.request_id));
    }

    let secrets: Vec<&str> = [&user, &limited, &revoked, &unknown]
        .iter()
        .filter_map(|c| c.key.as_deref())
        .collect();
    let pii = [EMAIL, PHONE, CARD, "4111111111111111", "jane.doe"];
    for (file, bytes) in stored_bytes(&stack.control_plane.data_dir()) {
        for secret in &secrets {
            assert!(!contains(&bytes, secret), "{file} contains a raw key");
            let (_, tail) = secret.rsplit_once('-').expect("key has a secret part");
            assert!(!contains(&bytes, tail), "{file} contains a key's secret");
        }
        for value in pii {
            assert!(
                !contains(&bytes, value),
                "{file} contains the PII value {value:?}"
            );
        }
    }
    let kept: Vec<&str> = records
        .iter()
        .filter_map(|r| r["prompt_redacted"].as_str())
        .collect();
    assert!(
        !kept.is_empty(),
        "the team keeps redacted prompts, yet no record has one"
    );
    assert!(
        kept.iter().any(|p| p.contains("<EMAIL_ADDRESS>")),
        "kept prompts are not the masked ones: {kept:?}"
    );
    assert_verifies(&stack.control_plane);
    eprintln!(
        "{} requests, traffic {traffic_done:?}, all records in {delivered:?}, total {:?}",
        client.sent.len(),
        started.elapsed()
    );
}

/// Bodies the upstream received, by the `x-request-id` Envoy sent it.
fn upstream_by_request_id(upstream: &Upstream) -> BTreeMap<String, bytes::Bytes> {
    upstream
        .requests()
        .into_iter()
        .filter_map(|r| Some((r.header("x-request-id")?.to_string(), r.body)))
        .collect()
}

fn check_record(sent: &Sent, record: &Value, upstream_body: Option<&bytes::Bytes>) {
    let what = format!(
        "record of {} ({})\n{record}",
        sent.what,
        sent.response.summary()
    );
    let text = |field: &str| record[field].as_str().map(str::to_string);
    assert_eq!(record["status"], sent.status, "status in {what}");
    assert_eq!(
        record["http_status"],
        u64::from(sent.response.status),
        "http_status in {what}"
    );
    if sent.outcome_only {
        return;
    }
    assert_eq!(text("key_id"), sent.key_id, "key_id in {what}");
    assert_eq!(text("team_id"), sent.team_id, "team_id in {what}");
    // A 401 is answered from the headers, before the body (and its model) is read.
    if sent.response.status != 401 {
        assert_eq!(text("model"), sent.model, "model in {what}");
    }
    let response = &sent.response;
    if sent.status == "blocked" {
        // The reason is the error code, made finer for limits (which limit of which scope).
        let expected = match response.json()["error"]["code"].as_str() {
            Some("rate_limit_exceeded") => "key_rpm_exceeded".to_string(),
            code => code.unwrap_or_default().to_string(),
        };
        assert_eq!(text("reason"), Some(expected), "reason in {what}");
        assert!(
            upstream_body.is_none(),
            "a blocked request reached the upstream: {what}"
        );
        return;
    }
    let body = upstream_body.unwrap_or_else(|| panic!("the upstream never saw {what}"));
    assert_eq!(
        text("prompt_sha256"),
        Some(sha256_hex(body)),
        "prompt_sha256 vs the body the upstream received ({}) in {what}",
        String::from_utf8_lossy(body)
    );
    // The client gets the upstream's bytes unchanged (no response redaction in this policy).
    assert_eq!(
        text("response_sha256"),
        Some(sha256_hex(&response.body)),
        "response_sha256 in {what}"
    );
    if sent.status == "errored" {
        let expected = format!("upstream_http_{}", response.status);
        assert_eq!(text("reason"), Some(expected), "reason in {what}");
    }
    if sent.status == "success" {
        assert_eq!(text("reason"), None, "reason in {what}");
        let usage = reported_usage(response);
        assert_eq!(record["tokens_in"], usage.0, "tokens_in in {what}");
        assert_eq!(record["tokens_out"], usage.1, "tokens_out in {what}");
        assert_eq!(
            record["tokens_estimated"], false,
            "tokens_estimated in {what}"
        );
    }
    let upstream_text = String::from_utf8_lossy(body);
    for value in [EMAIL, PHONE] {
        assert!(
            !upstream_text.contains(value),
            "{value} reached the upstream: {what}"
        );
    }
}

/// (prompt, completion) tokens the upstream reported, from the JSON or the last SSE event.
fn reported_usage(response: &ApiResponse) -> (u64, u64) {
    let text = response.text();
    let usage = if text.starts_with("data:") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|event| event.get("usage").filter(|u| u.is_object()).cloned())
            .expect("a usage event in the stream")
    } else {
        response.json()["usage"].clone()
    };
    (
        usage["prompt_tokens"].as_u64().expect("prompt_tokens"),
        usage["completion_tokens"]
            .as_u64()
            .expect("completion_tokens"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_control_plane_mid_burst_loses_and_doubles_nothing() {
    let started = Instant::now();
    let mut stack = Stack::start(EnvoyConfig::default()).await;
    let caller = stack.control_plane.team_with_key("burst");
    let caller = Caller {
        key: Some(caller.key),
        key_id: Some(caller.public_id),
        team_id: Some(caller.team_id),
    };
    let mut client = Client {
        gateway: stack.gateway().clone(),
        sent: Vec::new(),
    };
    client.send_until("warm-up", &caller, 200).await;

    // Sequential traffic from a task while the test kills and restarts the control plane.
    let gateway = stack.gateway().clone();
    let key = caller.key.clone().expect("key");
    let burst = tokio::spawn(async move {
        let mut answers = Vec::new();
        let end = Instant::now() + Duration::from_secs(8);
        while Instant::now() < end {
            answers.push(gateway.chat(Some(&key)).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.control_plane.kill();
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.control_plane.restart().await;
    let restarted_at = started.elapsed();
    let answers = burst.await.expect("burst task");

    let mut expected: BTreeSet<String> = client.sent.iter().map(|s| s.request_id.clone()).collect();
    for answer in &answers {
        answer.assert_success();
        let id = answer
            .header("x-modelgate-request-id")
            .expect("x-modelgate-request-id")
            .to_string();
        assert!(expected.insert(id), "request id reused");
    }
    let records = wait_for_records(&stack.control_plane, expected.len()).await;
    let delivered = started.elapsed();
    let stored: BTreeSet<String> = by_request_id(&records).into_keys().collect();
    let missing: Vec<_> = expected.difference(&stored).collect();
    let extra: Vec<_> = stored.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing records {missing:?}, records of unknown requests {extra:?}"
    );
    assert_verifies(&stack.control_plane);
    eprintln!(
        "{} requests ({} in the burst), killed at {killed_at:?}, back at {restarted_at:?}, \
         all records at {delivered:?}",
        expected.len(),
        answers.len()
    );
}
