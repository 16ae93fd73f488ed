//! The LiteLLM-compatible REST API over plain HTTP/1.1, as scripts call it.

use std::net::SocketAddr;

use serde_json::Value;

use super::control_plane::ControlPlane;
pub use super::http::http;

/// A control plane in a fresh data directory, and its master key.
pub fn start() -> (tempfile::TempDir, ControlPlane, String) {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(dir.path(), &[], &[]);
    let master = std::fs::read_to_string(cp.data_dir.join("master.key"))
        .unwrap()
        .trim()
        .to_owned();
    (dir, cp, master)
}

pub struct Rest<'a> {
    pub addr: SocketAddr,
    pub key: &'a str,
}

impl Rest<'_> {
    pub fn get(&self, path: &str) -> (u16, Value) {
        http(self.addr, "GET", path, Some(self.key), None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        http(
            self.addr,
            "POST",
            path,
            Some(self.key),
            Some(&body.to_string()),
        )
    }

    /// Asserts 200 and returns the body.
    pub fn ok(&self, (status, body): (u16, Value)) -> Value {
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Asserts an error in LiteLLM's shape and returns its message.
pub fn error(status: u16, expected: u16, body: &Value) -> String {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], expected.to_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}
