//! The real OpenID provider of the IdP scenarios: npm `oidc-provider` under Node 22 from npm
//! (`tests/oidc/provider.mjs`), on a loopback port it picks itself; people registered as
//! client-credentials clients, JWT access tokens from its real token endpoint, signing keys
//! rotated on request; killed on drop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::artifacts;
use crate::process::{new_log, Process};

/// The audience of the provider's tokens for the gateway (what `idp add --audience` names).
pub const AUDIENCE: &str = "modelgate";
/// The audience of tokens minted for another application of the same IdP.
pub const OTHER_AUDIENCE: &str = "someone-else";
/// Resource indicators (RFC 8707) a client asks tokens for; the provider maps each to its
/// audience.
const RESOURCE: &str = "https://modelgate.test/";
const OTHER_RESOURCE: &str = "https://other-app.test/";

/// Node starts, then the provider generates an RSA key: seconds on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the IdP knows about a person; their tokens say it as it is when they are issued.
#[derive(Clone, Debug)]
pub struct Person {
    pub email: String,
    pub groups: Vec<String>,
    /// More claims, e.g. nested objects or arrays (`{}` for none).
    pub claims: Value,
    /// `RS256` or `ES256` (the provider's default: ES256).
    pub alg: Option<&'static str>,
    /// Token lifetime (the provider's default: an hour).
    pub ttl_s: Option<u64>,
}

impl Person {
    /// A person with this email and these groups, nothing else.
    pub fn new(email: &str, groups: &[&str]) -> Person {
        Person {
            email: email.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            claims: json!({}),
            alg: None,
            ttl_s: None,
        }
    }
}

/// The signing keys after a rotation.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The `kid`s that sign from now on (RS256, ES256).
    pub signing: Vec<String>,
    /// Every `kid` the JWKS publishes.
    pub published: Vec<String>,
}

/// A running provider.
pub struct Idp {
    // Field order: the process dies before its log directory goes.
    process: Process,
    issuer: String,
    http: reqwest::Client,
    /// Client secrets by person id.
    secrets: Mutex<HashMap<String, String>>,
    _dir: TempDir,
}

impl Idp {
    /// Starts the provider and returns once its OpenID discovery document answers.
    pub async fn start() -> Idp {
        let dir = tempfile::Builder::new()
            .prefix("modelgate-idp-")
            .tempdir()
            .expect("temp dir");
        let log = new_log(dir.path(), "oidc-provider.log");
        let packages = packages_dir();
        let mut cmd = Command::new(packages.join("node_modules/.bin/node"));
        cmd.arg(artifacts::repo_root().join("tests/oidc/provider.mjs"))
            .env("IDP_PACKAGES", &packages)
            .env("IDP_RESOURCE", RESOURCE)
            .env("IDP_AUDIENCE", AUDIENCE)
            .env("IDP_OTHER_RESOURCE", OTHER_RESOURCE)
            .env("IDP_OTHER_AUDIENCE", OTHER_AUDIENCE);
        let mut process = Process::spawn("oidc-provider", cmd, &log);
        let issuer = process.wait_for_line(START_TIMEOUT, |line| {
            line.strip_prefix("oidc-provider listening on ")
                .map(str::to_owned)
        });
        process
            .wait_ready(
                &format!("{issuer}/.well-known/openid-configuration"),
                START_TIMEOUT,
            )
            .await;
        Idp {
            process,
            issuer,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(START_TIMEOUT)
                .build()
                .expect("HTTP client"),
            secrets: Mutex::new(HashMap::new()),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, exactly as the tokens' `iss` says it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Registers `id` (the tokens' `sub`) or changes what the IdP knows about them.
    pub async fn set_person(&self, id: &str, person: &Person) {
        let body = json!({
            "email": person.email,
            "groups": person.groups,
            "claims": person.claims,
            "alg": person.alg,
            "ttl_s": person.ttl_s,
        });
        let path = format!("/test/people/{}", form_encode(id));
        let created = self.test_route(http::Method::PUT, &path, &body).await;
        let secret = created["client_secret"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_secret in {created}"));
        self.secrets
            .lock()
            .expect("secrets")
            .insert(id.to_owned(), secret.to_owned());
    }

    /// A fresh access token for `id` (registered first) from the token endpoint, for the
    /// gateway's audience.
    pub async fn token(&self, id: &str) -> String {
        self.token_for(id, RESOURCE).await
    }

    /// A fresh access token for `id`, minted for another application ([`OTHER_AUDIENCE`]).
    pub async fn token_for_other_app(&self, id: &str) -> String {
        self.token_for(id, OTHER_RESOURCE).await
    }

    async fn token_for(&self, id: &str, resource: &str) -> String {
        let secret = self
            .secrets
            .lock()
            .expect("secrets")
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is not registered with the IdP"));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", &secret),
            ("resource", resource),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={}", form_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
        let answer = self
            .send(
                self.http
                    .post(format!("{}/token", self.issuer))
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form),
            )
            .await;
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {answer}"))
            .to_owned()
    }

    /// New RS256 and ES256 keys sign from now on; the old keys stay published if `keep_old`.
    /// `extra_es256` more ES256 keys are published beside them (a crowded JWKS).
    pub async fn rotate(&self, keep_old: bool, extra_es256: usize) -> Rotation {
        let body = json!({ "keep_old": keep_old, "extra_es256": extra_es256 });
        let rotated = self
            .test_route(http::Method::POST, "/test/rotate", &body)
            .await;
        let kids = |field: &str| -> Vec<String> {
            rotated[field]
                .as_array()
                .unwrap_or_else(|| panic!("no {field} in {rotated}"))
                .iter()
                .filter_map(|kid| kid.as_str().map(str::to_owned))
                .collect()
        };
        Rotation {
            signing: kids("signing"),
            published: kids("published"),
        }
    }

    /// How often the JWKS was fetched (by the control plane: nobody else asks).
    pub async fn jwks_requests(&self) -> u64 {
        let stats = self
            .test_route(http::Method::GET, "/test/stats", &Value::Null)
            .await;
        stats["jwks_requests"]
            .as_u64()
            .unwrap_or_else(|| panic!("no jwks_requests in {stats}"))
    }

    /// The provider's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    async fn test_route(&self, method: http::Method, path: &str, body: &Value) -> Value {
        let request = self
            .http
            .request(method, format!("{}{path}", self.issuer))
            .header(http::header::CONTENT_TYPE, "application/json");
        let request = if body.is_null() {
            request
        } else {
            request.body(body.to_string())
        };
        self.send(request).await
    }

    /// Sends, asserts a 2xx JSON answer and returns it.
    async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("request to the IdP");
        let status = response.status();
        let body = response.bytes().await.expect("read the IdP's answer");
        assert!(
            status.is_success(),
            "IdP answered {status}: {}\n{}",
            String::from_utf8_lossy(&body),
            self.log()
        );
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "IdP answered no JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })
    }
}

/// Where `make oidc-provider` installed the npm packages: `MODELGATE_OIDC_DIR`, else the
/// Makefile's default, `~/.cache/modelgate/oidc-<first 16 hex of the lockfile's SHA-256>`.
fn packages_dir() -> PathBuf {
    let dir = match std::env::var_os("MODELGATE_OIDC_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let lock = artifacts::repo_root().join("tests/oidc/package-lock.json");
            let bytes =
                std::fs::read(&lock).unwrap_or_else(|e| panic!("read {}: {e}", lock.display()));
            let digest = Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(format!(".cache/modelgate/oidc-{}", &hex[..16]))
        }
    };
    assert!(
        dir.join(".installed").is_file(),
        "the OpenID provider is not installed in {} (run `make oidc-provider`)",
        dir.display()
    );
    dir
}

/// `application/x-www-form-urlencoded` (and path segment) encoding: everything but the
/// unreserved characters percent-encoded.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
