//! Calling the gateway the way OpenAI clients do, and reading its answers.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::poll::eventually;

/// The model name the scenarios ask for; the stand-in upstream answers any name.
pub const MODEL: &str = "stand-in-model";

/// How long a change made with the control plane may take to reach Envoy in tests: one poll
/// tick (1 s by default) plus generous slack for a loaded CI machine.
pub const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client for one gateway base URL (`http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
}

impl Gateway {
    /// Every request opens a new connection, so requests spread over Envoy's workers (Envoy
    /// assigns connections, not requests, to worker threads).
    pub fn new(base: String) -> Gateway {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build HTTP client");
        Gateway { http, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request builder on this gateway, for headers the helpers below do not set.
    pub fn request(&self, method: http::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// POSTs `body` as JSON, with `Authorization: Bearer <key>` when a key is given.
    pub async fn post_json(&self, path: &str, key: Option<&str>, body: &Value) -> ApiResponse {
        let mut request = self
            .request(http::Method::POST, path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        send(request).await
    }

    /// A small non-streamed chat completion.
    pub async fn chat(&self, key: Option<&str>) -> ApiResponse {
        self.post_json("/v1/chat/completions", key, &chat_body("Say hello"))
            .await
    }

    /// Repeats [`Gateway::chat`] with `key` until the answer has `status`, e.g. until a key
    /// created or revoked with the control plane takes effect in Envoy. Returns how long
    /// that took; fails the test after [`PROPAGATION_TIMEOUT`].
    pub async fn wait_for_status(&self, key: &str, status: u16) -> Duration {
        let what = format!("a chat request answered {status}");
        eventually(&what, PROPAGATION_TIMEOUT, || async {
            let response = self.chat(Some(key)).await;
            if response.status == status {
                Ok(())
            } else {
                Err(response.summary())
            }
        })
        .await
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> ApiResponse {
    let response = request.send().await.expect("send request to the gateway");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("read response body");
    ApiResponse {
        status,
        headers,
        body,
    }
}

/// A chat completion request body with one user message.
pub fn chat_body(content: &str) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 16,
    })
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: body is not JSON ({}): {}", self.status, self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Short description for failure messages.
    pub fn summary(&self) -> String {
        format!("{} {}", self.status, self.text())
    }

    /// Asserts a 2xx answer.
    pub fn assert_success(&self) {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {}",
            self.summary()
        );
    }

    /// Asserts an OpenAI-style JSON error: this status, `content-type: application/json`, and
    /// `{"error": {"message": non-empty, "type": non-empty, "code": code}}`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {}", self.summary());
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "content-type {content_type:?} of {}",
            self.summary()
        );
        let body = self.json();
        let error = &body["error"];
        assert_eq!(error["code"], code, "error code of {}", self.summary());
        for field in ["message", "type"] {
            assert!(
                error[field].as_str().is_some_and(|s| !s.is_empty()),
                "error.{field} missing in {}",
                self.summary()
            );
        }
    }
}
