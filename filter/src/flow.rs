//! One request through the filter, as a sequence of events: request headers -> a verdict,
//! the whole request body -> the route and the body sent upstream, response headers and
//! body -> what the client gets (`response`), log -> the usage record on the shared queue.
//! Pure: the HTTP context in `wasm/` feeds it what Envoy reports and applies what it returns.

mod admission;
mod asserted;
mod response;
mod token;

use std::rc::Rc;

use modelgate_proto::v1::KeyPolicy;
use prost::Message;

use crate::audit::{self, Outcome, RecordDraft, USAGE_QUEUE};
use crate::config::FilterConfig;
use crate::credential::{self, Credential, KeyDigest};
use crate::endpoint::Endpoint;
use crate::errors::Rejection;
use crate::exchange::{BodyPlan, Exchange, RedactorCache, RequestBody};
use crate::host::Host;
use crate::identity::asserted::ForwardedUser;
use crate::identity::teams::TEAM_HEADER;
use crate::identity::IdentityCache;
use crate::limits::plan::usd_to_nano;
use crate::limits::Actual;
use crate::models::request::{BodyError, ModelRequest};
use crate::policy::{Denial, PolicyIndex, Principal};
use crate::request_id;
use crate::snapshot::{SnapshotCache, Unavailable};
use admission::Access;

/// Response header that returns the request id to the client.
pub const REQUEST_ID_HEADER: &str = "x-modelgate-request-id";
/// Envoy's request id header, kept as the id when present.
const ENVOY_REQUEST_ID_HEADER: &str = "x-request-id";
/// Headers only Modelgate may set; client-sent ones are removed so nobody can spoof them.
pub(crate) const INTERNAL_HEADER_PREFIX: &str = "x-modelgate-";
/// Counter of usage records lost before reaching the control plane.
pub const RECORDS_DROPPED_COUNTER: &str = "modelgate_usage_records_dropped";

/// Request headers as Envoy reports them (lowercase names; values may be any bytes).
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    pairs: Vec<(String, Vec<u8>)>,
}

impl RequestHeaders {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name` (matched case-insensitively).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }
}

impl<N: Into<String>, V: Into<Vec<u8>>> FromIterator<(N, V)> for RequestHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self::new(
            iter.into_iter()
                .map(|(n, v)| (n.into().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }
}

/// Changes to the request headers before they go upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
    /// The route header was set: Envoy must recompute the route (`clear_route_cache`).
    pub reroute: bool,
}

/// A reply the filter sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What to do with a request after its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with this reply (a refusal, or a model list the filter answers itself); nothing
    /// goes upstream.
    Reject(LocalReply),
    /// Apply the edits and forward.
    Forward(HeaderEdits),
    /// Apply the edits, then hold the request until its whole body is in; the body picks the
    /// route ([`RequestFlow::on_request_body`]).
    AwaitBody(HeaderEdits),
}

/// What to do with a request after its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyVerdict {
    Reject(LocalReply),
    /// Apply the edits and forward `body` in place of the original (`None`: unchanged).
    Forward {
        edits: HeaderEdits,
        body: Option<Vec<u8>>,
    },
}

/// The state of one request.
#[derive(Debug)]
pub struct RequestFlow {
    config: Rc<FilterConfig>,
    policy: Option<Rc<PolicyIndex>>,
    /// Set once the request headers arrived; `on_log` takes it.
    started: bool,
    draft: RecordDraft,
    refusal: Option<Rejection>,
    exchange: Exchange,
    redactors: Rc<RedactorCache>,
    identities: Rc<IdentityCache>,
    access: Access,
    /// The client announced its body's length (`content-length`) rather than chunking it.
    length_announced: bool,
}

impl RequestFlow {
    pub fn new(config: Rc<FilterConfig>) -> Self {
        Self {
            config,
            policy: None,
            started: false,
            draft: RecordDraft::default(),
            refusal: None,
            exchange: Exchange::new(),
            redactors: Rc::default(),
            identities: Rc::default(),
            access: Access::default(),
            length_announced: false,
        }
    }

    /// Shares the worker's issuers and verified tokens (without it, each request parses the
    /// issuers' keys and verifies its token anew).
    pub fn with_identities(mut self, identities: Rc<IdentityCache>) -> Self {
        self.identities = identities;
        self
    }

    /// Shares the worker's compiled redaction policies (without it, each request compiles
    /// its team's policy anew).
    pub fn with_redactors(mut self, redactors: Rc<RedactorCache>) -> Self {
        self.redactors = redactors;
        self
    }

    /// The request id, once the headers have been seen.
    pub fn request_id(&self) -> Option<&str> {
        self.started.then_some(self.draft.request_id.as_str())
    }

    pub fn on_request_headers(
        &mut self,
        host: &impl Host,
        snapshots: &mut SnapshotCache,
        headers: &RequestHeaders,
        source_address: Option<&str>,
        end_of_stream: bool,
    ) -> Verdict {
        let now_ms = host.now_ms();
        let mut edits = HeaderEdits::default();
        let request_id = match headers
            .get(ENVOY_REQUEST_ID_HEADER)
            .and_then(request_id::accept)
        {
            Some(id) => id,
            None => {
                let id = request_id::generate(host).unwrap_or_else(|err| {
                    log::error!("no random source for a request id: {err}");
                    format!("mg-{now_ms}")
                });
                edits
                    .set
                    .push((ENVOY_REQUEST_ID_HEADER.to_owned(), id.clone()));
                id
            }
        };
        let path = headers
            .get(":path")
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        self.started = true;
        self.draft = RecordDraft {
            request_id,
            started_ms: now_ms,
            path: audit::path_only(&path).to_owned(),
            client_ip: audit::client_ip(
                source_address,
                headers
                    .get("x-forwarded-for")
                    .filter(|_| self.config.trust_forwarded_for),
            ),
            ..RecordDraft::default()
        };

        let policy = match snapshots.current(host, now_ms, self.config.max_staleness_ms()) {
            Ok(policy) => policy,
            Err(why) => return self.refuse(Rejection::PolicyUnavailable(why)),
        };
        let credential =
            match credential::extract(headers.get("authorization"), headers.get("x-api-key")) {
                Ok(credential) => credential,
                Err(err) => return self.refuse(err.into()),
            };
        let access = match credential {
            Credential::Key(digest) => identify(&mut self.draft, &policy, &digest, now_ms)
                .and_then(|principal| {
                    let names = &self.config.asserted_user_headers;
                    let forwarded = ForwardedUser {
                        user_id: headers.get(&names.user_id),
                        user_email: headers.get(&names.user_email),
                        user_jwt: headers.get(&names.user_jwt),
                    };
                    asserted::access(
                        &mut self.draft,
                        &policy,
                        principal,
                        forwarded,
                        self.config.max_token_bytes,
                        now_ms,
                    )
                }),
            Credential::Jwt(token) => token::identify(
                &mut self.draft,
                host,
                &self.identities,
                &policy,
                token::TokenRequest {
                    token,
                    team_header: headers.get(TEAM_HEADER),
                    max_token_bytes: self.config.max_token_bytes,
                    now_ms,
                },
            ),
        };
        match access {
            Ok(access) => self.access = access,
            Err(rejection) => return self.refuse(rejection),
        }
        if !self.config.covers_path(&path) {
            return self.refuse(Rejection::PathNotFound);
        }
        let endpoint = Endpoint::of(&path, &self.config);
        if let Some(list) = self.access.listing(&policy, endpoint) {
            return Verdict::Reject(self.answer(list));
        }
        if let (Some(Endpoint::ModelInfo), Some(id)) = (endpoint, crate::endpoint::model_id(&path))
        {
            return match self.access.model_info(&policy, id) {
                Ok(model) => Verdict::Reject(self.answer(model)),
                Err(rejection) => self.refuse(rejection),
            };
        }
        if end_of_stream && endpoint.is_some_and(Endpoint::has_prompt) {
            return self.refuse(Rejection::BadRequestBody(BodyError::Missing));
        }
        let content_length = headers
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        self.length_announced = content_length.is_some();
        let body_plan = match self.exchange.begin(
            &self.config,
            &path,
            policy.team(&self.draft.team_id),
            &self.redactors,
            content_length,
            !end_of_stream,
        ) {
            Ok(plan) => plan,
            Err(rejection) => return self.refuse(rejection),
        };
        self.policy = Some(policy);

        edits.remove = headers_to_strip(headers, &self.config);
        if !self.config.upstream_authorization.is_empty() {
            edits.set.push((
                "authorization".to_owned(),
                self.config.upstream_authorization.clone(),
            ));
        }
        match body_plan {
            BodyPlan::Read => Verdict::AwaitBody(edits),
            BodyPlan::Skip => {
                if let Err(rejection) = self.access.admit(host, now_ms, None) {
                    return self.refuse(rejection);
                }
                edits.merge(self.route(None));
                Verdict::Forward(edits)
            }
        }
    }

    /// Part of the body is buffered (`size` bytes so far): a refusal once it is too large.
    pub fn on_request_body_size(&mut self, size: u64) -> Option<LocalReply> {
        let rejection = self.exchange.check_body_size(size).err()?;
        Some(self.refusal_reply(rejection))
    }

    /// The whole request body arrived (after [`Verdict::AwaitBody`]): checks the requested
    /// model against the key's allowlist, reserves the request's limits, picks the model's
    /// cluster, applies the team's redaction and returns the body to send (an alias rewritten
    /// to the upstream's name).
    pub fn on_request_body(&mut self, host: &impl Host, body: &[u8]) -> BodyVerdict {
        let now_ms = host.now_ms();
        let Admitted {
            model,
            aliased,
            mut request,
        } = match self.admit_body(host, now_ms, body) {
            Ok(admitted) => admitted,
            Err(rejection) => return BodyVerdict::Reject(self.refusal_reply(rejection)),
        };
        let outgoing = aliased.as_deref().unwrap_or(body);
        let mut edits = self.route(Some(&model));
        let sent = self
            .exchange
            .prepare_request(&mut request)
            .and_then(|()| self.exchange.send_request(&request, outgoing));
        match sent {
            Ok(rewritten) => {
                let body = rewritten.or(aliased);
                if let Some(new) = &body {
                    edits.merge(self.length_edits(new.len()));
                }
                BodyVerdict::Forward { edits, body }
            }
            Err(rejection) => {
                self.access.cancel(host, now_ms);
                BodyVerdict::Reject(self.refusal_reply(rejection))
            }
        }
    }

    /// The header edits a replaced body of `length` bytes needs. Upstreams that refuse
    /// chunked bodies (many Python servers answer 411 or 500) get the new length when the
    /// client sent one; a chunked request stays chunked (its stale length is dropped).
    fn length_edits(&self, length: usize) -> HeaderEdits {
        let mut edits = HeaderEdits::default();
        if self.length_announced {
            edits
                .set
                .push(("content-length".to_owned(), length.to_string()));
        } else {
            edits.remove.push("content-length".to_owned());
        }
        edits
    }

    /// The body names a model this key may use, and the request fits its limits.
    fn admit_body(
        &mut self,
        host: &impl Host,
        now_ms: i64,
        body: &[u8],
    ) -> Result<Admitted, Rejection> {
        let mut request = ModelRequest::parse(body).map_err(Rejection::BadRequestBody)?;
        self.draft.model_requested.clone_from(&request.model);
        // Known at the headers already (else 404); never admitted unchecked.
        let endpoint =
            Endpoint::of(&self.draft.path, &self.config).ok_or(Rejection::PathNotFound)?;
        request
            .check_shape(endpoint)
            .map_err(Rejection::BadRequestBody)?;
        let policy = self
            .policy
            .clone()
            .ok_or(Rejection::PolicyUnavailable(Unavailable::NeverLoaded))?;
        let route = self.access.resolve(&policy, &request.model)?;
        // Before admission, so the limits reserve the completion limit that goes upstream.
        let capped = request.cap_output(endpoint, route.max_output_tokens);
        self.access
            .admit(host, now_ms, Some((&request, route, endpoint)))?;
        let upstream = crate::models::upstream_name(route);
        // A capped body is serialized again anyway; splicing the alias in is for bodies that
        // are otherwise forwarded byte for byte.
        let aliased =
            (upstream != request.model && !capped).then(|| request.with_model(body, upstream));
        let model = request.model.clone();
        let prompt_tokens = request.prompt_tokens;
        let mut request = RequestBody::parsed(request.into_value(upstream), prompt_tokens);
        if capped {
            request.mark_changed();
        }
        Ok(Admitted {
            model,
            aliased,
            request,
        })
    }

    /// Headers to set on the response: the request id, and for an admitted request the
    /// `x-ratelimit-*` headers of its limits.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers: Vec<(&'static str, String)> = self
            .request_id()
            .map(|id| vec![(REQUEST_ID_HEADER, id.to_owned())])
            .unwrap_or_default();
        headers.extend(self.access.headers());
        headers
    }

    /// The request is over: queue its usage record for the service to ship. Requests whose
    /// headers never arrived produce none; a second call is a no-op.
    pub fn on_log(
        &mut self,
        host: &impl Host,
        http_status: Option<u32>,
        code_details: Option<&str>,
    ) {
        if !std::mem::take(&mut self.started) {
            return;
        }
        let mut draft = std::mem::take(&mut self.draft);
        let route = self
            .policy
            .as_ref()
            .and_then(|policy| policy.route(&draft.model_requested));
        let body = self.exchange.finish(&mut draft, route);
        // Every ending passes here: the limits get what the record says was used (nothing
        // when the upstream failed) and the parallel slot comes back.
        let used = Actual {
            tokens: draft.tokens.map_or(0, |tokens| tokens.total_tokens()),
            cost_nano: usd_to_nano(draft.spend),
        };
        // One clock read for the limits and the record's latency.
        let now_ms = host.now_ms();
        self.access.finish(host, now_ms, used);
        let outcome = match &self.refusal {
            Some(refusal) => Outcome::Refused {
                status: refusal.status(),
                reason: refusal.reason(),
            },
            None => Outcome::Finished {
                http_status,
                code_details,
                body,
            },
        };
        let record = draft.finish(outcome, now_ms);
        if let Err(err) = host.enqueue(USAGE_QUEUE, &record.encode_to_vec()) {
            host.increment_counter(RECORDS_DROPPED_COUNTER, 1);
            log::warn!(
                "usage record of request {} dropped: {err}",
                record.request_id
            );
        }
    }

    fn refuse(&mut self, rejection: Rejection) -> Verdict {
        Verdict::Reject(self.refusal_reply(rejection))
    }

    /// A 200 JSON answer the filter gives itself.
    fn answer(&self, body: Vec<u8>) -> LocalReply {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(id) = self.request_id() {
            headers.push((REQUEST_ID_HEADER.to_owned(), id.to_owned()));
        }
        LocalReply {
            status: 200,
            headers,
            body,
        }
    }

    fn refusal_reply(&mut self, rejection: Rejection) -> LocalReply {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(id) = self.request_id() {
            headers.push((REQUEST_ID_HEADER.to_owned(), id.to_owned()));
        }
        headers.extend(
            rejection
                .extra_headers()
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
        let reply = LocalReply {
            status: u32::from(rejection.status()),
            headers,
            body: rejection.body(),
        };
        self.refusal = Some(rejection);
        reply
    }

    fn route(&mut self, model: Option<&str>) -> HeaderEdits {
        let route = model.and_then(|model| self.policy.as_ref()?.route(model).cloned());
        let cluster = match &route {
            Some(route) if !route.cluster.is_empty() => route.cluster.clone(),
            _ => self.config.default_cluster.clone(),
        };
        if let Some(model) = model {
            self.draft.model_requested = model.to_owned();
            self.draft.model_resolved = match route {
                Some(route) if !route.upstream_model.is_empty() => route.upstream_model,
                _ => model.to_owned(),
            };
        }
        HeaderEdits {
            remove: Vec::new(),
            set: vec![(self.config.route_header.clone(), cluster)],
            reroute: true,
        }
    }
}

impl HeaderEdits {
    fn merge(&mut self, other: HeaderEdits) {
        self.remove.extend(other.remove);
        self.set.extend(other.set);
        self.reroute |= other.reroute;
    }
}

/// A request body admission accepted.
struct Admitted {
    /// The model's public name.
    model: String,
    /// For an alias, the body with only `model` rewritten.
    aliased: Option<Vec<u8>>,
    /// The body as parsed (and estimated) by admission, `model` as sent upstream.
    request: RequestBody,
}

/// Fills the record's identity and maps a refusal to its client answer.
fn identify<'p>(
    draft: &mut RecordDraft,
    policy: &'p PolicyIndex,
    digest: &KeyDigest,
    now_ms: i64,
) -> Result<Principal<'p>, Rejection> {
    let (key, refusal) = match policy.authorize(digest, now_ms) {
        Ok(principal) => {
            fill_identity(draft, &principal.key);
            return Ok(principal);
        }
        Err(Denial::UnknownKey) => {
            draft.key_id = digest.fingerprint();
            return Err(Rejection::InvalidApiKey);
        }
        Err(Denial::Revoked(key)) => (key, Rejection::KeyRevoked),
        Err(Denial::Blocked(key)) => (key, Rejection::KeyBlocked),
        Err(Denial::Expired(key)) => (key, Rejection::KeyExpired),
        Err(Denial::TeamBlocked(key)) => (key, Rejection::TeamBlocked),
        Err(Denial::UnrecognisedStatus(key)) => {
            log::warn!(
                "key {} has an unrecognised status {}; refused",
                key.public_id,
                key.status
            );
            (key, Rejection::KeyUnusable("key_status_unrecognised"))
        }
        Err(Denial::TeamMissing(key)) => {
            log::warn!(
                "key {} names team {:?}, absent from the snapshot; refused",
                key.public_id,
                key.team_id
            );
            (key, Rejection::KeyUnusable("team_not_in_snapshot"))
        }
    };
    fill_identity(draft, &key);
    Err(refusal)
}

fn fill_identity(draft: &mut RecordDraft, key: &KeyPolicy) {
    draft.key_id.clone_from(&key.public_id);
    draft.team_id.clone_from(&key.team_id);
    draft.user_id.clone_from(&key.user_id);
}

/// Client credentials, internal headers and forwarded-user headers (consumed here from a
/// service key, spoofed from any other), which must never reach the upstream.
fn headers_to_strip(headers: &RequestHeaders, config: &FilterConfig) -> Vec<String> {
    let forwarded_user = config.asserted_user_headers.names();
    let mut names: Vec<String> = headers
        .names()
        .filter(|name| {
            let name = name.to_ascii_lowercase();
            name.starts_with(INTERNAL_HEADER_PREFIX)
                || name == config.route_header
                || name == "authorization"
                || name == "x-api-key"
                || forwarded_user.contains(&name.as_str())
        })
        .map(str::to_ascii_lowercase)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests;
