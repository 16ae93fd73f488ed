//! Fixtures shared by the Criterion benches (`benches/filter.rs`) and the callgrind profile
//! (`examples/profile_requests.rs`): policy snapshots of any size, a ~1 KB chat body, a 4 KB
//! prompt full of PII, recorded llama-server answers, and a worker that runs whole requests
//! through [`RequestFlow`] against the fake host the way the wasm adapter does.

use std::rc::Rc;

use modelgate_filter::audit::USAGE_QUEUE;
use modelgate_filter::config::{FilterConfig, PluginConfig};
use modelgate_filter::credential::KeyDigest;
use modelgate_filter::exchange::{BodyRead, RedactorCache};
use modelgate_filter::flow::{BodyVerdict, RequestFlow, RequestHeaders, Verdict};
use modelgate_filter::host::fake::FakeHost;
use modelgate_filter::host::{Host, ServiceHost};
use modelgate_filter::identity::IdentityCache;
use modelgate_filter::snapshot::{publish_snapshot, SnapshotCache, SnapshotHead};
use modelgate_proto::v1::{
    KeyPolicy, KeyStatus, Limits, ModelRoute, PolicySnapshot, TeamPolicy, UserPolicy,
};
use prost::Message;

/// The served model every bench request names (the recorded answers come from it).
pub const MODEL: &str = "smollm2-135m";
const TEAM: &str = "team-bench";
const PEER: &str = "10.0.0.7:40112";
/// What e2e and `make bench` configure for the redacting team.
pub const MASK_POLICY: &str = r#"{"default_action": "mask"}"#;

/// A recorded non-streamed llama-server answer (~660 B, with `usage`).
pub const ANSWER: &[u8] = include_bytes!("../../tests/fixtures/streams/llama-chat-a.json");
/// The same request streamed, with the usage chunk the filter asks for.
pub const STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/streams/llama-chat-a-stream-usage.sse");

/// The client key of the `i`th key in [`snapshot`] (same shape as real `sk-mg-` keys).
pub fn secret(i: usize) -> String {
    format!("sk-mg-bench{i:07}-{:043}", i.wrapping_mul(2_654_435_761))
}

/// Generous limits: every bench request is admitted, but every scope still reserves,
/// settles and releases through shared data as it would under real limits.
fn limits(parallel: Option<u32>) -> Option<Limits> {
    Some(Limits {
        rpm: Some(1_000_000_000),
        tpm: Some(1_000_000_000_000),
        max_parallel_requests: parallel,
        ..Limits::default()
    })
}

/// A snapshot of `keys` active keys, each with its own user and limits, all in one team that
/// allows `smollm2-*` with `redaction_policy_json`, and a handful of model routes.
pub fn snapshot(keys: usize, redaction_policy_json: &str) -> PolicySnapshot {
    let keys: Vec<KeyPolicy> = (0..keys)
        .map(|i| KeyPolicy {
            key_sha256: KeyDigest::of(&secret(i)).as_bytes().to_vec(),
            public_id: format!("bench{i:07}"),
            team_id: TEAM.to_owned(),
            user_id: format!("user{i}@example.com"),
            key_alias: format!("bench key {i}"),
            status: KeyStatus::Active as i32,
            limits: limits(Some(1000)),
            ..KeyPolicy::default()
        })
        .collect();
    let models = [
        MODEL,
        "smollm2-360m",
        "llama3.1-8b",
        "qwen2.5-7b",
        "mistral-7b",
    ]
    .iter()
    .map(|name| ModelRoute {
        name: (*name).to_owned(),
        cluster: format!("pool-{name}"),
        input_cost_per_mtok: 0.1,
        output_cost_per_mtok: 0.2,
        ..ModelRoute::default()
    })
    .collect();
    PolicySnapshot {
        version: 1,
        generated_at_ms: FakeHost::START_MS,
        keys,
        teams: vec![TeamPolicy {
            team_id: TEAM.to_owned(),
            alias: "bench".to_owned(),
            models: vec!["smollm2-*".to_owned()],
            limits: limits(None),
            redaction_policy_json: redaction_policy_json.to_owned(),
            ..TeamPolicy::default()
        }],
        users: vec![UserPolicy {
            user_id: "user0@example.com".to_owned(),
            limits: limits(Some(1000)),
            ..UserPolicy::default()
        }],
        models,
        ..PolicySnapshot::default()
    }
}

/// A chat request of about 1 KB (system prompt, a short exchange, a question).
pub fn chat_body() -> Vec<u8> {
    chat_with_prompt(
        "I am preparing the quarterly review of our internal platform. Summarise the three \
         biggest reliability risks in a service mesh that fronts GPU inference servers, and \
         for each one suggest a metric we could alert on, a runbook step and an owner. Keep \
         it under two hundred words and use plain language that product managers follow.",
    )
}

/// A chat request whose last user message is `prompt`.
pub fn chat_with_prompt(prompt: &str) -> Vec<u8> {
    serde_json::json!({
        "model": MODEL,
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for an engineering team. Answer in short paragraphs, cite no sources you cannot name, and say so when you are unsure."},
            {"role": "user", "content": "What is a service mesh?"},
            {"role": "assistant", "content": "A service mesh is a layer of proxies beside each service that handles traffic, retries, TLS and telemetry, so applications do not implement them."},
            {"role": "user", "content": prompt},
        ],
    })
    .to_string()
    .into_bytes()
}

/// A 4 KB prompt with a name, an address, a phone number and an email in every sentence.
pub fn pii_prompt() -> String {
    let sentence = "Dear Priya Raman, the parcel for 221B Baker Street left on Monday; \
                    call +1 415 555 0132 or write to ops@example.com with questions. ";
    sentence.chars().cycle().take(4096).collect()
}

/// One Envoy worker: its config, snapshot cache, compiled redactors and verified IdP tokens,
/// as `wasm/root.rs` shares them with every HTTP context, over the fake host.
#[derive(Debug)]
pub struct Worker {
    pub host: FakeHost,
    config: Rc<FilterConfig>,
    snapshots: SnapshotCache,
    redactors: Rc<RedactorCache>,
    identities: Rc<IdentityCache>,
}

impl Worker {
    /// A worker with `snapshot` published by the singleton service.
    pub fn new(snapshot: &PolicySnapshot) -> Result<Self, String> {
        let config = PluginConfig::parse(br#"{"default_cluster": "upstream"}"#)
            .map_err(|err| err.to_string())?;
        let PluginConfig::Filter(config) = config else {
            return Err("not a filter config".to_owned());
        };
        let host = FakeHost::new();
        let head = SnapshotHead {
            version: snapshot.version,
            last_contact_ms: host.now_ms(),
        };
        publish_snapshot(&host, &snapshot.encode_to_vec(), head).map_err(|err| err.to_string())?;
        Ok(Self {
            host,
            config: Rc::new(config),
            snapshots: SnapshotCache::new(),
            redactors: Rc::new(RedactorCache::new()),
            identities: Rc::new(IdentityCache::new()),
        })
    }

    /// One whole non-streamed request with `key` (a virtual key or an IdP JWT): headers, body, the upstream's `answer`
    /// (200, JSON), log; the usage record is taken off the queue as the service would.
    /// The clock moves 1 ms per request, so rate windows roll as under steady traffic.
    pub fn request(&mut self, key: &str, body: &[u8], answer: &[u8]) -> Result<(), String> {
        self.host.advance(1);
        let headers = RequestHeaders::new(vec![
            (":method".to_owned(), b"POST".to_vec()),
            (":path".to_owned(), b"/v1/chat/completions".to_vec()),
            (":authority".to_owned(), b"gateway.internal".to_vec()),
            (
                "authorization".to_owned(),
                format!("Bearer {key}").into_bytes(),
            ),
            ("content-type".to_owned(), b"application/json".to_vec()),
            (
                "content-length".to_owned(),
                body.len().to_string().into_bytes(),
            ),
            ("user-agent".to_owned(), b"OpenAI/Python 1.54.0".to_vec()),
            (
                "x-request-id".to_owned(),
                b"6f1c2a0e-8d43-4b7a-9a51-2c0d5e7f9b13".to_vec(),
            ),
        ]);
        let mut flow = RequestFlow::new(Rc::clone(&self.config))
            .with_redactors(Rc::clone(&self.redactors))
            .with_identities(Rc::clone(&self.identities));
        let verdict =
            flow.on_request_headers(&self.host, &mut self.snapshots, &headers, Some(PEER), false);
        if !matches!(verdict, Verdict::AwaitBody(_)) {
            return Err(format!("headers: {verdict:?}"));
        }
        if let Some(reply) = flow.on_request_body_size(body.len() as u64) {
            return Err(format!("body size: {reply:?}"));
        }
        if let BodyVerdict::Reject(reply) = flow.on_request_body(&self.host, body) {
            return Err(format!("body: {reply:?}"));
        }
        flow.on_response_headers(Some(200), Some("application/json"), false);
        if flow.response_body_read(true) == BodyRead::Read {
            flow.on_response_body(&self.host, answer, true);
        }
        flow.note_response_flags(0);
        flow.on_log(&self.host, Some(200), Some("via_upstream"));
        match self.host.dequeue(USAGE_QUEUE) {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("usage record: {other:?}")),
        }
    }
}
