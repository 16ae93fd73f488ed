//! An OpenAI-compatible (and Ollama-native) inference server stand-in that records every
//! request it receives and can be told to be slow, to fail, or to cut a stream.
//!
//! It answers with [`REPLY`], one word per stream event, and reports usage the way the real
//! servers do: `prompt_tokens` = words in the prompt, `completion_tokens` = words in the reply
//! (Ollama: `prompt_eval_count` / `eval_count`). It runs on its own thread and runtime, so it
//! keeps serving whatever the test's runtime is doing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The answer of every generation.
pub const REPLY: &str = "Hello from the stand-in upstream.";

/// How the next requests are answered. `Behaviour::default()` answers at once, normally.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Wait before sending the response headers.
    pub delay: Duration,
    /// Wait before each stream event.
    pub event_delay: Duration,
    /// Answer every request with this status and an OpenAI-style error body.
    pub fail_status: Option<u16>,
    /// Send this many stream events, then drop the connection mid-response.
    pub cut_stream_after: Option<usize>,
    /// Answer 411 to a body sent chunked or without `Content-Length`, as servers that need
    /// the length up front do.
    pub require_content_length: bool,
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct State {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// The running stand-in; stops on drop.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts on a free loopback port.
    pub fn start() -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State::default());
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(serve(listener, serving, stopped));
        });
        Upstream {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, as `UPSTREAM_URL` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().expect("lock") = behaviour;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("lock").clone()
    }
}

impl Drop for Upstream {
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
            // A connection that breaks (e.g. a cut stream) only ends that connection.
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
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let recorded = RecordedRequest {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        headers: parts.headers,
        body,
    };
    state.requests.lock().expect("lock").push(recorded.clone());
    let behaviour = state.behaviour.lock().expect("lock").clone();

    tokio::time::sleep(behaviour.delay).await;
    let chunked = recorded
        .headers
        .contains_key(http::header::TRANSFER_ENCODING)
        || !recorded.headers.contains_key(http::header::CONTENT_LENGTH);
    if behaviour.require_content_length && !recorded.body.is_empty() && chunked {
        return Ok(json_response(
            411,
            &json!({"error": {"message": "a Content-Length is required; chunked bodies are refused",
                              "type": "invalid_request_error", "code": "length_required"}}),
        ));
    }
    if let Some(status) = behaviour.fail_status {
        return Ok(json_response(
            status,
            &json!({"error": {"message": "the stand-in upstream was told to fail",
                              "type": "server_error", "code": "upstream_failure"}}),
        ));
    }
    let reply = match route(&recorded) {
        Ok(reply) => reply,
        Err((status, message)) => {
            return Ok(json_response(
                status,
                &json!({"error": {"message": message, "type": "invalid_request_error", "code": null}}),
            ))
        }
    };
    Ok(match reply {
        Reply::Json(value) => json_response(200, &value),
        Reply::Stream {
            content_type,
            events,
        } => stream_response(content_type, events, behaviour),
    })
}

enum Reply {
    Json(Value),
    Stream {
        content_type: &'static str,
        events: Vec<String>,
    },
}

fn route(request: &RecordedRequest) -> Result<Reply, (u16, String)> {
    let path = request.path.split('?').next().unwrap_or_default();
    match (&request.method, path) {
        (&Method::GET, "/v1/models") => Ok(Reply::Json(json!({
            "object": "list",
            "data": [{"id": crate::api::MODEL, "object": "model", "created": 0, "owned_by": "stand-in"}],
        }))),
        (&Method::GET, "/api/tags") => Ok(Reply::Json(json!({
            "models": [{"name": crate::api::MODEL, "model": crate::api::MODEL, "size": 0}],
        }))),
        (&Method::POST, "/v1/chat/completions") => {
            Ok(openai_generation(&body(request)?, Kind::Chat))
        }
        (&Method::POST, "/v1/completions") => {
            Ok(openai_generation(&body(request)?, Kind::Completion))
        }
        (&Method::POST, "/v1/embeddings") => Ok(openai_embeddings(&body(request)?)),
        (&Method::POST, "/api/chat") => Ok(ollama_generation(&body(request)?, Kind::Chat)),
        (&Method::POST, "/api/generate") => {
            Ok(ollama_generation(&body(request)?, Kind::Completion))
        }
        (&Method::POST, "/api/embed") => Ok(ollama_embed(&body(request)?)),
        (method, path) => Err((404, format!("no route for {method} {path}"))),
    }
}

fn body(request: &RecordedRequest) -> Result<Value, (u16, String)> {
    serde_json::from_slice(&request.body).map_err(|e| (400, format!("body is not JSON: {e}")))
}

#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

/// Words of the prompt: message contents (string or text parts), `prompt`, or `input`.
fn prompt_tokens(body: &Value) -> usize {
    let mut texts = Vec::new();
    collect_texts(&body["prompt"], &mut texts);
    collect_texts(&body["input"], &mut texts);
    if let Some(messages) = body["messages"].as_array() {
        for message in messages {
            collect_texts(&message["content"], &mut texts);
        }
    }
    texts.iter().map(|t| t.split_whitespace().count()).sum()
}

fn collect_texts<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, out)),
        Value::Object(part) => collect_texts(&part["text"], out),
        _ => {}
    }
}

/// The reply split into stream pieces: "Hello", " from", " the", ...
fn reply_pieces() -> Vec<String> {
    REPLY
        .split(' ')
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

fn model(body: &Value) -> String {
    body["model"]
        .as_str()
        .unwrap_or(crate::api::MODEL)
        .to_string()
}

fn openai_generation(body: &Value, kind: Kind) -> Reply {
    let model = model(body);
    let prompt_tokens = prompt_tokens(body);
    let pieces = reply_pieces();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": pieces.len(),
        "total_tokens": prompt_tokens + pieces.len(),
    });
    let (id, object) = match kind {
        Kind::Chat => ("chatcmpl-standin", "chat.completion"),
        Kind::Completion => ("cmpl-standin", "text_completion"),
    };
    if body["stream"] != json!(true) {
        let choice = match kind {
            Kind::Chat => {
                json!({"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"})
            }
            Kind::Completion => json!({"index": 0, "text": REPLY, "finish_reason": "stop"}),
        };
        return Reply::Json(json!({
            "id": id, "object": object, "created": 0, "model": model,
            "choices": [choice], "usage": usage,
        }));
    }
    let object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Completion => "text_completion",
    };
    let chunk = |choices: Value| json!({"id": id, "object": object, "created": 0, "model": model, "choices": choices});
    let mut events: Vec<Value> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            chunk(match kind {
                Kind::Chat if i == 0 => json!([{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": null}]),
                Kind::Chat => json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
                Kind::Completion => json!([{"index": 0, "text": piece, "finish_reason": null}]),
            })
        })
        .collect();
    events.push(chunk(match kind {
        Kind::Chat => json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        Kind::Completion => json!([{"index": 0, "text": "", "finish_reason": "stop"}]),
    }));
    // Like vLLM and llama.cpp: usage comes in an extra chunk only when asked for.
    if body["stream_options"]["include_usage"] == json!(true) {
        let mut last = chunk(json!([]));
        last["usage"] = usage;
        events.push(last);
    }
    let mut events: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    events.push("data: [DONE]\n\n".to_string());
    Reply::Stream {
        content_type: "text/event-stream",
        events,
    }
}

fn openai_embeddings(body: &Value) -> Reply {
    let inputs = match &body["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let tokens = prompt_tokens(body);
    Reply::Json(json!({
        "object": "list",
        "model": model(body),
        "data": (0..inputs).map(|i| json!({"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.75]})).collect::<Vec<_>>(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

fn ollama_generation(body: &Value, kind: Kind) -> Reply {
    let model = model(body);
    let pieces = reply_pieces();
    let piece = |text: &str| match kind {
        Kind::Chat => {
            json!({"model": model, "created_at": "2024-01-01T00:00:00Z", "message": {"role": "assistant", "content": text}, "done": false})
        }
        Kind::Completion => {
            json!({"model": model, "created_at": "2024-01-01T00:00:00Z", "response": text, "done": false})
        }
    };
    let mut last = piece("");
    last["done"] = json!(true);
    last["done_reason"] = json!("stop");
    last["prompt_eval_count"] = json!(prompt_tokens(body));
    last["eval_count"] = json!(pieces.len());
    // Ollama streams unless told not to.
    if body["stream"] == json!(false) {
        let mut whole = last;
        match kind {
            Kind::Chat => whole["message"]["content"] = json!(REPLY),
            Kind::Completion => whole["response"] = json!(REPLY),
        }
        return Reply::Json(whole);
    }
    let mut events: Vec<String> = pieces.iter().map(|p| format!("{}\n", piece(p))).collect();
    events.push(format!("{last}\n"));
    Reply::Stream {
        content_type: "application/x-ndjson",
        events,
    }
}

fn ollama_embed(body: &Value) -> Reply {
    let inputs = match &body["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    Reply::Json(json!({
        "model": model(body),
        "embeddings": vec![[0.25, -0.5, 0.75]; inputs],
        "prompt_eval_count": prompt_tokens(body),
    }))
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(body.to_string());
    let length = bytes.len();
    let (mut sender, channel) = Channel::new(1);
    // Room for exactly this frame; dropping the sender then ends the body.
    let _ = sender.try_send(Frame::data(bytes));
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("content-length", length)
        .body(channel)
        .expect("valid response")
}

fn stream_response(
    content_type: &'static str,
    events: Vec<String>,
    behaviour: Behaviour,
) -> Response<Body> {
    let (sender, channel) = Channel::new(1);
    tokio::spawn(send_events(sender, events, behaviour));
    Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(channel)
        .expect("valid response")
}

async fn send_events(
    mut sender: Sender<Bytes, std::io::Error>,
    events: Vec<String>,
    behaviour: Behaviour,
) {
    for (sent, event) in events.into_iter().enumerate() {
        if behaviour.cut_stream_after == Some(sent) {
            // An error in the body makes hyper drop the connection without ending the
            // chunked body: what a crashing inference server looks like.
            sender.abort(std::io::Error::other("stream cut by the test"));
            return;
        }
        tokio::time::sleep(behaviour.event_delay).await;
        if sender.send_data(Bytes::from(event)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
