//! The plugin configuration (JSON in Envoy's wasm `configuration`), one shape per role.
//!
//! The same `.wasm` runs as the HTTP filter on every worker and as the singleton service on
//! the main thread; `role` tells them apart. Parsing is strict (unknown fields are errors) and
//! values are validated, so a typo fails `on_configure` instead of silently changing behaviour.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A parsed and validated plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginConfig {
    Filter(FilterConfig),
    Service(ServiceConfig),
}

/// The HTTP filter's configuration (`role` omitted or `"filter"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// How long a snapshot is enforced after the last contact with the control plane.
    #[serde(default = "default_max_staleness_s")]
    pub max_staleness_s: u64,
    /// Cluster for requests whose model has no route in the snapshot.
    pub default_cluster: String,
    /// Request header that carries the chosen cluster to Envoy's `cluster_header` route.
    #[serde(default = "default_route_header")]
    pub route_header: String,
    /// `Authorization` value sent upstream in place of the client's; empty = none.
    #[serde(default)]
    pub upstream_authorization: String,
    /// Requests outside this path prefix are refused with 404.
    #[serde(default = "default_api_prefix")]
    pub api_prefix: String,
    /// The largest request body the filter reads to route, redact and count a request; larger
    /// ones are refused with 413 (the filter never forwards a body it could not check). The
    /// default, 10^6 bytes, stays under Envoy's default 1 MiB connection buffer limit so this
    /// filter's JSON answer comes before Envoy's plain-text one; raise both together.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Take the audit record's client IP from the last `x-forwarded-for` entry (the address
    /// the nearest proxy saw) instead of the downstream connection. Only for deployments
    /// where a trusted proxy in front of Envoy sets that header.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Paths under `api_prefix` besides the supported LLM endpoints that are forwarded to
    /// `default_cluster` without reading their bodies: exact paths, or prefixes ending in
    /// `*` (`/v1/audio/*`). They skip model routing and redaction, so a team whose policy
    /// redacts requests cannot send bodies to them. Everything else is refused with 404.
    #[serde(default)]
    pub pass_through_paths: Vec<String>,
    /// The largest bearer JWT verified; larger ones are refused (`token_too_large`) before
    /// any decoding. IdP tokens with many groups reach a few KiB.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Where Open WebUI forwards its signed-in user (its `FORWARD_USER_INFO_HEADER_*` and
    /// `FORWARD_SESSION_INFO_HEADER_*` settings; its defaults here). Honoured only from keys
    /// marked `can_assert_user`; removed from every request before the upstream. Boxed: seven
    /// names would triple the size of every `PluginConfig`.
    #[serde(default)]
    pub asserted_user_headers: Box<AssertedUserHeaders>,
}

/// The header names of Open WebUI's forwarded user, as its environment names them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssertedUserHeaders {
    /// `FORWARD_USER_INFO_HEADER_USER_ID`.
    pub user_id: String,
    /// `FORWARD_USER_INFO_HEADER_USER_EMAIL`.
    pub user_email: String,
    /// `FORWARD_USER_INFO_HEADER_USER_NAME`.
    pub user_name: String,
    /// `FORWARD_USER_INFO_HEADER_USER_ROLE`.
    pub user_role: String,
    /// `FORWARD_SESSION_INFO_HEADER_CHAT_ID`.
    pub chat_id: String,
    /// `FORWARD_SESSION_INFO_HEADER_MESSAGE_ID`.
    pub message_id: String,
    /// `FORWARD_USER_INFO_HEADER_JWT`: the signed form.
    pub user_jwt: String,
}

impl Default for AssertedUserHeaders {
    fn default() -> Self {
        Self {
            user_id: "x-openwebui-user-id".to_owned(),
            user_email: "x-openwebui-user-email".to_owned(),
            user_name: "x-openwebui-user-name".to_owned(),
            user_role: "x-openwebui-user-role".to_owned(),
            chat_id: "x-openwebui-chat-id".to_owned(),
            message_id: "x-openwebui-message-id".to_owned(),
            user_jwt: "x-openwebui-user-jwt".to_owned(),
        }
    }
}

impl AssertedUserHeaders {
    /// Every name, as Envoy reports them (lowercase).
    pub fn names(&self) -> [&str; 7] {
        [
            &self.user_id,
            &self.user_email,
            &self.user_name,
            &self.user_role,
            &self.chat_id,
            &self.message_id,
            &self.user_jwt,
        ]
    }

    /// Header names are case-insensitive; Envoy reports them lowercase.
    fn normalise(&mut self) {
        for name in [
            &mut self.user_id,
            &mut self.user_email,
            &mut self.user_name,
            &mut self.user_role,
            &mut self.chat_id,
            &mut self.message_id,
            &mut self.user_jwt,
        ] {
            name.make_ascii_lowercase();
        }
    }
}

/// The singleton service's configuration (`role: "service"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Envoy cluster (HTTP/2) that reaches the control plane's gRPC port.
    pub control_plane_cluster: String,
    /// The data-plane token (`modelgate dataplane token create`) sent with every call to the
    /// control plane. Required: the control plane serves no policy without one.
    pub control_plane_token: ControlPlaneToken,
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u32,
    /// Names this Envoy in the control plane's logs and in usage batch ids.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    #[serde(default = "default_grpc_timeout_ms")]
    pub grpc_timeout_ms: u32,
    /// Records per `ReportUsage` batch.
    #[serde(default = "default_usage_batch_records")]
    pub usage_batch_records: u32,
    /// Records held while the control plane is unreachable; beyond this they are dropped
    /// (counted and logged).
    #[serde(default = "default_usage_buffer_records")]
    pub usage_buffer_records: u32,
}

/// A data-plane token. Its `Debug` never shows it, so it cannot leak through a logged config.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ControlPlaneToken(String);

impl ControlPlaneToken {
    const PREFIX: &'static str = "mgdp-";

    /// The `authorization` value for gRPC calls to the control plane.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    fn is_well_formed(&self) -> bool {
        self.0.len() > Self::PREFIX.len() && self.0.starts_with(Self::PREFIX) && is_token(&self.0)
    }
}

impl std::fmt::Debug for ControlPlaneToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlPlaneToken(<redacted>)")
    }
}

fn default_max_staleness_s() -> u64 {
    30
}
fn default_route_header() -> String {
    "x-modelgate-cluster".to_owned()
}
fn default_api_prefix() -> String {
    "/".to_owned()
}
fn default_max_body_bytes() -> u64 {
    1_000_000
}
/// Bounds of `max_body_bytes`: below 1 KiB no chat request fits; a body is held in the VM's
/// memory (and parsed) while it is checked, and a wasm32 VM has 4 GiB at most.
const MAX_BODY_BYTES_RANGE: std::ops::RangeInclusive<u64> = 1024..=(64 << 20);
fn default_max_token_bytes() -> usize {
    16 * 1024
}
/// Bounds of `max_token_bytes`: no IdP token is under 256 bytes; one near Envoy's default
/// 60 KiB header limit is a mistake or an attack.
const MAX_TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 256..=(64 << 10);
fn default_tick_ms() -> u32 {
    1000
}
fn default_node_id() -> String {
    "envoy".to_owned()
}
fn default_grpc_timeout_ms() -> u32 {
    2000
}
fn default_usage_batch_records() -> u32 {
    500
}
fn default_usage_buffer_records() -> u32 {
    20_000
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Without a configuration the role is unknown; guessing would let a singleton run as a
    /// filter and never fetch policy.
    #[error("the plugin configuration is empty; it needs at least a role")]
    Empty,
    #[error("the plugin configuration is not a JSON object: {0}")]
    NotJson(String),
    #[error("unknown role {0:?} (expected \"filter\" or \"service\")")]
    UnknownRole(String),
    #[error("invalid {role} configuration: {message}")]
    Shape { role: &'static str, message: String },
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

impl PluginConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::Empty);
        }
        let mut object: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|err| ConfigError::NotJson(err.to_string()))?;
        let role = match object.remove("role") {
            None => "filter".to_owned(),
            Some(Value::String(role)) => role,
            Some(other) => return Err(ConfigError::UnknownRole(other.to_string())),
        };
        match role.as_str() {
            "filter" => {
                let mut config: FilterConfig = from_object("filter", object)?;
                config.asserted_user_headers.normalise();
                config.validate()?;
                Ok(Self::Filter(config))
            }
            "service" => {
                let config: ServiceConfig = from_object("service", object)?;
                config.validate()?;
                Ok(Self::Service(config))
            }
            _ => Err(ConfigError::UnknownRole(role)),
        }
    }
}

fn from_object<T: serde::de::DeserializeOwned>(
    role: &'static str,
    object: Map<String, Value>,
) -> Result<T, ConfigError> {
    serde_json::from_value(Value::Object(object)).map_err(|err| ConfigError::Shape {
        role,
        message: err.to_string(),
    })
}

impl FilterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_staleness_s == 0 {
            return Err(invalid("max_staleness_s", "must be at least 1 second"));
        }
        if !is_token(&self.default_cluster) {
            return Err(invalid(
                "default_cluster",
                "must be a non-empty cluster name without spaces or control characters",
            ));
        }
        let header_ok = !self.route_header.is_empty()
            && self
                .route_header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !header_ok {
            return Err(invalid(
                "route_header",
                "must be a lowercase header name ([a-z0-9_-])",
            ));
        }
        if !self
            .upstream_authorization
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return Err(invalid(
                "upstream_authorization",
                "must be printable ASCII (a valid header value)",
            ));
        }
        if !self.api_prefix.starts_with('/') || !is_token(&self.api_prefix) {
            return Err(invalid(
                "api_prefix",
                "must start with '/' and contain no spaces",
            ));
        }
        if !MAX_BODY_BYTES_RANGE.contains(&self.max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                "must be between 1024 and 67108864",
            ));
        }
        if !MAX_TOKEN_BYTES_RANGE.contains(&self.max_token_bytes) {
            return Err(invalid("max_token_bytes", "must be between 256 and 65536"));
        }
        let header_name = |name: &&str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !name.starts_with(crate::flow::INTERNAL_HEADER_PREFIX)
                && !matches!(*name, "authorization" | "x-api-key")
        };
        if !self.asserted_user_headers.names().iter().all(header_name) {
            return Err(invalid(
                "asserted_user_headers",
                "names must be header names ([A-Za-z0-9_-]), not a credential or x-modelgate-* header",
            ));
        }
        let path_ok = |p: &String| {
            p.starts_with('/') && is_token(p) && !p[..p.len() - 1].contains('*') && !p.contains('?')
        };
        if !self.pass_through_paths.iter().all(path_ok) {
            return Err(invalid(
                "pass_through_paths",
                "entries must start with '/', contain no spaces or '?', and use '*' only at the end",
            ));
        }
        Ok(())
    }

    /// Whether `path` (without its query) is one of `pass_through_paths`.
    pub fn passes_through(&self, path: &str) -> bool {
        self.pass_through_paths
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == entry,
            })
    }

    pub fn max_staleness_ms(&self) -> u64 {
        self.max_staleness_s.saturating_mul(1000)
    }

    /// Whether `path` lies under `api_prefix`, on a segment boundary (`/v1` covers `/v1/x`
    /// and `/v1?q`, not `/v1x`).
    pub fn covers_path(&self, path: &str) -> bool {
        let prefix = self.api_prefix.as_str();
        match path.strip_prefix(prefix) {
            None => false,
            Some(rest) => {
                prefix.ends_with('/')
                    || rest.is_empty()
                    || rest.starts_with('/')
                    || rest.starts_with('?')
            }
        }
    }
}

impl ServiceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !is_token(&self.control_plane_cluster) || self.control_plane_cluster.len() > 125 {
            return Err(invalid(
                "control_plane_cluster",
                "must be a cluster name of 1 to 125 characters without spaces",
            ));
        }
        if !self.control_plane_token.is_well_formed() {
            return Err(invalid(
                "control_plane_token",
                "must be a data-plane token (mgdp-…); create one with \
                 `modelgate dataplane token create --name NAME`",
            ));
        }
        if !(50..=60_000).contains(&self.tick_ms) {
            return Err(invalid("tick_ms", "must be between 50 and 60000"));
        }
        if !is_token(&self.node_id) {
            return Err(invalid("node_id", "must be non-empty without spaces"));
        }
        if !(1..=60_000).contains(&self.grpc_timeout_ms) {
            return Err(invalid("grpc_timeout_ms", "must be between 1 and 60000"));
        }
        if !(1..=10_000).contains(&self.usage_batch_records) {
            return Err(invalid(
                "usage_batch_records",
                "must be between 1 and 10000",
            ));
        }
        if self.usage_buffer_records < self.usage_batch_records {
            return Err(invalid(
                "usage_buffer_records",
                "must be at least usage_batch_records",
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid { field, reason }
}

fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: &str) -> FilterConfig {
        match PluginConfig::parse(json.as_bytes()).unwrap() {
            PluginConfig::Filter(config) => config,
            other => panic!("expected a filter config, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_documented_filter_config() {
        let config = filter(
            r#"{"role": "filter", "max_staleness_s": 30, "default_cluster": "upstream",
                "route_header": "x-modelgate-cluster", "upstream_authorization": "",
                "api_prefix": "/"}"#,
        );
        assert_eq!(config.max_staleness_ms(), 30_000);
        assert_eq!(config.default_cluster, "upstream");
        assert_eq!(config.route_header, "x-modelgate-cluster");
        assert!(config.upstream_authorization.is_empty());
        assert_eq!(config.max_token_bytes, 16 * 1024, "the documented default");
    }

    #[test]
    fn role_defaults_to_filter_and_fields_to_their_defaults() {
        let config = filter(r#"{"default_cluster": "pool"}"#);
        assert_eq!(config.max_staleness_s, 30);
        assert_eq!(config.route_header, "x-modelgate-cluster");
        assert_eq!(config.api_prefix, "/");
        assert_eq!(config.max_body_bytes, 1_000_000);
        assert!(!config.trust_forwarded_for);
        assert!(config.pass_through_paths.is_empty());
    }

    #[test]
    fn pass_through_paths_are_exact_or_prefixes() {
        let config =
            filter(r#"{"default_cluster": "u", "pass_through_paths": ["/health", "/v1/audio/*"]}"#);
        assert!(config.passes_through("/health"));
        assert!(!config.passes_through("/healthz"));
        assert!(config.passes_through("/v1/audio/speech"));
        assert!(!config.passes_through("/v1/audio"));
        assert!(!config.passes_through("/v1/chat/completions"));
    }

    #[test]
    fn parses_the_documented_service_config() {
        let parsed = PluginConfig::parse(
            br#"{"role": "service", "control_plane_cluster": "modelgate_control_plane",
                 "control_plane_token": "mgdp-abcdefghijkl-SECRETsecret",
                 "tick_ms": 1000, "node_id": "envoy-local", "grpc_timeout_ms": 2000}"#,
        )
        .unwrap();
        let PluginConfig::Service(config) = parsed else {
            panic!("expected a service config");
        };
        assert_eq!(config.control_plane_cluster, "modelgate_control_plane");
        assert_eq!(
            config.control_plane_token.bearer(),
            "Bearer mgdp-abcdefghijkl-SECRETsecret"
        );
        // A logged config never shows the token.
        let shown = format!("{config:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(config.tick_ms, 1000);
        assert_eq!(config.node_id, "envoy-local");
        assert_eq!(config.usage_batch_records, 500);
    }

    /// A short name for each kind of error, so the table below stays readable.
    fn kind(err: &ConfigError) -> &'static str {
        match err {
            ConfigError::Empty => "empty",
            ConfigError::NotJson(_) => "json",
            ConfigError::UnknownRole(_) => "role",
            ConfigError::Shape { .. } => "shape",
            ConfigError::Invalid { field, .. } => field,
        }
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let service = |extra: &str| {
            format!(
                r#"{{"role": "service", "control_plane_cluster": "cp", "control_plane_token": "mgdp-x"{extra}}}"#
            )
        };
        let service_with_token = |token: &str| {
            format!(
                r#"{{"role": "service", "control_plane_cluster": "cp", "control_plane_token": "{token}"}}"#
            )
        };
        let cases = [
            ("".to_owned(), "empty"),
            ("  \n".to_owned(), "empty"),
            ("[1]".to_owned(), "json"),
            ("{".to_owned(), "json"),
            (r#"{"role": "router"}"#.to_owned(), "role"),
            (r#"{"role": 7}"#.to_owned(), "role"),
            ("{}".to_owned(), "shape"),
            (
                r#"{"default_cluster": "u", "max_stalenes_s": 3}"#.to_owned(),
                "shape",
            ),
            (
                r#"{"default_cluster": "u", "max_staleness_s": -1}"#.to_owned(),
                "shape",
            ),
            (
                r#"{"default_cluster": "u", "max_staleness_s": 0}"#.to_owned(),
                "max_staleness_s",
            ),
            (r#"{"default_cluster": ""}"#.to_owned(), "default_cluster"),
            (
                r#"{"default_cluster": "u", "route_header": "X-Cluster"}"#.to_owned(),
                "route_header",
            ),
            (
                r#"{"default_cluster": "u", "upstream_authorization": "a\r\nb"}"#.to_owned(),
                "upstream_authorization",
            ),
            (
                r#"{"default_cluster": "u", "api_prefix": "v1"}"#.to_owned(),
                "api_prefix",
            ),
            (
                r#"{"default_cluster": "u", "max_token_bytes": 100}"#.to_owned(),
                "max_token_bytes",
            ),
            (
                r#"{"default_cluster": "u", "max_body_bytes": 100}"#.to_owned(),
                "max_body_bytes",
            ),
            (
                r#"{"default_cluster": "u", "pass_through_paths": ["health"]}"#.to_owned(),
                "pass_through_paths",
            ),
            (
                r#"{"default_cluster": "u", "pass_through_paths": ["/a*b"]}"#.to_owned(),
                "pass_through_paths",
            ),
            (r#"{"role": "service"}"#.to_owned(), "shape"),
            // Without a token the control plane would refuse every call: refused here, with
            // a clear line in Envoy's log, instead.
            (
                r#"{"role": "service", "control_plane_cluster": "cp"}"#.to_owned(),
                "shape",
            ),
            (service_with_token(""), "control_plane_token"),
            (service_with_token("mgdp-"), "control_plane_token"),
            (
                service_with_token("REPLACE_WITH_A_DATA_PLANE_TOKEN"),
                "control_plane_token",
            ),
            (service_with_token("mgdp-a b"), "control_plane_token"),
            (
                service_with_token("sk-mg-abcdefghijkl-x"),
                "control_plane_token",
            ),
            (service(r#", "tick_ms": 10"#), "tick_ms"),
            (service(r#", "grpc_timeout_ms": 0"#), "grpc_timeout_ms"),
            (
                service(r#", "usage_batch_records": 100, "usage_buffer_records": 10"#),
                "usage_buffer_records",
            ),
            (service(r#", "node_id": "a b""#), "node_id"),
            (
                format!(
                    r#"{{"role": "service", "control_plane_cluster": "{}", "control_plane_token": "mgdp-x"}}"#,
                    "c".repeat(126)
                ),
                "control_plane_cluster",
            ),
        ];
        for (json, expected) in cases {
            let err = PluginConfig::parse(json.as_bytes()).unwrap_err();
            assert_eq!(kind(&err), expected, "{json:?} gave {err:?}");
        }
    }

    #[test]
    fn api_prefix_matches_on_segment_boundaries() {
        let mut config = filter(r#"{"default_cluster": "u", "api_prefix": "/v1"}"#);
        assert!(config.covers_path("/v1"));
        assert!(config.covers_path("/v1/chat/completions"));
        assert!(config.covers_path("/v1?x=1"));
        assert!(!config.covers_path("/v1x/models"));
        assert!(!config.covers_path("/api/chat"));
        config.api_prefix = "/".to_owned();
        assert!(config.covers_path("/anything"));
        config.api_prefix = "/v1/".to_owned();
        assert!(config.covers_path("/v1/models"));
        assert!(!config.covers_path("/v1"));
    }
}
