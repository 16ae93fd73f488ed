//! What crosses the gateway, under the test's control: an upstream that answers with exactly
//! the bytes a test scripts (split into separate writes, slowly, cut off), a stack built around
//! it with teams whose policies the test sets over gRPC, and the audit records the control
//! plane stored for each request.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use modelgate_proto::v1::{CreateModelRequest, CreateTeamRequest};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::poll::eventually;
use crate::upstream::RecordedRequest;
use crate::{ControlPlane, Envoy, EnvoyConfig, Gateway};

/// The model every scripted scenario asks for.
pub const SCRIPTED_MODEL: &str = "scripted-model";
/// Its prices per million tokens, so spend is checkable.
pub const INPUT_COST_PER_MTOK: f64 = 3.0;
pub const OUTPUT_COST_PER_MTOK: f64 = 15.0;

/// One answer: status, content type, and the body as separate writes.
#[derive(Clone, Debug)]
pub struct Script {
    pub status: u16,
    pub content_type: String,
    pub chunks: Vec<Bytes>,
    /// Wait before each chunk.
    pub chunk_delay: Duration,
    /// After the chunks, break the connection instead of ending the body.
    pub cut: bool,
}

impl Script {
    /// A JSON answer in one piece.
    pub fn json(status: u16, body: &Value) -> Script {
        Script {
            status,
            content_type: "application/json".to_string(),
            chunks: vec![Bytes::from(body.to_string())],
            chunk_delay: Duration::ZERO,
            cut: false,
        }
    }

    /// A 200 event stream, one write per event.
    pub fn sse(events: Vec<String>) -> Script {
        Script {
            status: 200,
            content_type: "text/event-stream".to_string(),
            chunks: events.into_iter().map(Bytes::from).collect(),
            chunk_delay: Duration::from_millis(10),
            cut: false,
        }
    }

    /// A 200 NDJSON stream (Ollama), one write per line.
    pub fn ndjson(lines: Vec<Value>) -> Script {
        Script {
            status: 200,
            content_type: "application/x-ndjson".to_string(),
            chunks: lines
                .iter()
                .map(|l| Bytes::from(format!("{l}\n")))
                .collect(),
            chunk_delay: Duration::from_millis(10),
            cut: false,
        }
    }

    pub fn delay(mut self, delay: Duration) -> Script {
        self.chunk_delay = delay;
        self
    }

    pub fn cut(mut self) -> Script {
        self.cut = true;
        self
    }
}

/// OpenAI chat stream events: a role chunk, one chunk per piece, a finish chunk, a usage
/// chunk when `usage` is given (as servers send only when asked), and `[DONE]`.
pub fn chat_events(pieces: &[&str], usage: Option<(u64, u64)>) -> Vec<String> {
    let chunk = |choices: Value| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
               "model": SCRIPTED_MODEL, "choices": choices})
    };
    let mut events = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    )];
    events.extend(pieces.iter().map(|piece| {
        chunk(json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]))
    }));
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ));
    if let Some((prompt, completion)) = usage {
        let mut last = chunk(json!([]));
        last["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion});
        events.push(last);
    }
    let mut events: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    events.push("data: [DONE]\n\n".to_string());
    events
}

/// A non-streamed chat completion answer.
pub fn chat_answer(content: &str, usage: Option<(u64, u64)>) -> Value {
    let mut answer = json!({
        "id": "chatcmpl-s", "object": "chat.completion", "created": 1, "model": SCRIPTED_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
    });
    if let Some((prompt, completion)) = usage {
        answer["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion});
    }
    answer
}

#[derive(Default)]
struct State {
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// An upstream that answers requests with queued scripts, in order; stops on drop.
pub struct ScriptedUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedUpstream {
    pub fn start() -> ScriptedUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind scripted upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State::default());
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("scripted upstream runtime");
            runtime.block_on(serve(listener, serving, stopped));
        });
        ScriptedUpstream {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues the answer to the next request.
    pub fn script(&self, script: Script) {
        self.state.scripts.lock().expect("lock").push_back(script);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The last request's body as JSON.
    pub fn last_json(&self) -> Value {
        self.requests()
            .last()
            .expect("a request reached the upstream")
            .json()
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Body = Channel<Bytes, std::io::Error>;

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&state), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    state.requests.lock().expect("lock").push(RecordedRequest {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        headers: parts.headers,
        body,
    });
    let script = state.scripts.lock().expect("lock").pop_front().unwrap_or_else(|| {
        Script::json(
            500,
            &json!({"error": {"message": "no script queued for this request", "type": "server_error", "code": null}}),
        )
    });
    let (sender, channel) = Channel::new(1);
    let response = Response::builder()
        .status(StatusCode::from_u16(script.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", script.content_type.clone())
        .body(channel)
        .expect("valid response");
    tokio::spawn(send_chunks(sender, script));
    Ok(response)
}

async fn send_chunks(mut sender: Sender<Bytes, std::io::Error>, script: Script) {
    for chunk in script.chunks {
        tokio::time::sleep(script.chunk_delay).await;
        if sender.send(Frame::data(chunk)).await.is_err() {
            return;
        }
    }
    if script.cut {
        tokio::time::sleep(script.chunk_delay).await;
        // Hyper drops the connection without ending the chunked body: a crashed server.
        sender.abort(std::io::Error::other("stream cut by the test"));
    }
}

/// A team's settings for a scripted stack.
#[derive(Clone, Debug, Default)]
pub struct TeamSettings {
    pub redaction_policy_json: String,
    pub high_trust: bool,
    pub keep_redacted_prompt: bool,
}

/// Control plane, Envoy and a scripted upstream, with the scripted model priced.
pub struct ScriptedStack {
    pub upstream: ScriptedUpstream,
    pub control_plane: ControlPlane,
    pub envoy: Envoy,
}

impl ScriptedStack {
    pub async fn start() -> ScriptedStack {
        let upstream = ScriptedUpstream::start();
        let control_plane = ControlPlane::start().await;
        let envoy = Envoy::start(
            upstream.addr(),
            &control_plane.data_plane_access("scripted"),
            EnvoyConfig::default(),
        )
        .await;
        let mut admin = control_plane.admin().await;
        admin
            .create_model(CreateModelRequest {
                name: SCRIPTED_MODEL.to_string(),
                input_cost_per_mtok: INPUT_COST_PER_MTOK,
                output_cost_per_mtok: OUTPUT_COST_PER_MTOK,
                ..CreateModelRequest::default()
            })
            .await
            .expect("CreateModel");
        ScriptedStack {
            upstream,
            control_plane,
            envoy,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        self.envoy.gateway()
    }

    /// POSTs `body` as JSON to `path` with `key`; the answer's body is left to read.
    pub async fn send_json(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.gateway()
            .request(http::Method::POST, path)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send")
    }

    /// A team with these settings allowed the scripted model, and a key of it that Envoy
    /// already accepts.
    pub async fn key(&self, alias: &str, settings: TeamSettings) -> String {
        let key = self
            .control_plane
            .create_team_key(CreateTeamRequest {
                alias: alias.to_string(),
                models: vec![SCRIPTED_MODEL.to_string()],
                redaction_policy_json: settings.redaction_policy_json,
                high_trust: settings.high_trust,
                keep_redacted_prompt: settings.keep_redacted_prompt,
                ..CreateTeamRequest::default()
            })
            .await;
        let gateway = self.gateway().clone();
        let probe = key.clone();
        eventually(
            "the new key to reach Envoy",
            crate::api::PROPAGATION_TIMEOUT,
            || {
                let gateway = gateway.clone();
                let probe = probe.clone();
                async move {
                    let response = gateway
                        .request(http::Method::GET, "/v1/models")
                        .bearer_auth(&probe)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    match response.status().as_u16() {
                        200 => Ok(()),
                        other => Err(format!("GET /v1/models answered {other}")),
                    }
                }
            },
        )
        .await;
        key
    }

    /// The audit record of `request_id`, once the control plane stored it.
    pub async fn record(&self, request_id: &str) -> Value {
        let what = format!("the audit record of request {request_id}");
        record_where(&self.control_plane, &what, |r| {
            r["request_id"] == request_id
        })
        .await
    }
}

/// The first audit record matching `wanted`, once the control plane stored one (15 s at most).
pub async fn record_where(
    control_plane: &ControlPlane,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let mut found = Value::Null;
    eventually(what, Duration::from_secs(15), || {
        let hit = records(control_plane).into_iter().find(|r| wanted(r));
        let ok = hit.is_some();
        if let Some(hit) = hit {
            found = hit;
        }
        async move {
            if ok {
                Ok(())
            } else {
                Err("not stored yet".to_string())
            }
        }
    })
    .await;
    found
}

/// Every request record the control plane stored (`modelgate audit query --json`); admin
/// records (the harness's team and key creation) are left out.
pub fn records(control_plane: &ControlPlane) -> Vec<Value> {
    let output = control_plane.cli(&[
        "audit", "query", "--limit", "0", "--json", "--kind", "request",
    ]);
    assert!(
        output.status.success(),
        "modelgate audit query: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => items,
        Ok(other) => vec![other],
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
    }
}

/// The request id the gateway put on its answer (empty when none).
pub fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-modelgate-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Hex SHA-256 of `bytes`, with coreutils' `sha256sum` (this crate has no hashing dependency).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}
