//! One request's body and its answer: what goes upstream (redacted, asked for stream usage)
//! and what comes back (counted, placeholders restored, PII removed, errors in OpenAI shape),
//! and what of it the audit record keeps (hashes, tokens, spend, redaction summary).
//!
//! Pure: `flow` feeds it what Envoy reports; `wasm/http.rs` moves the bytes.
//!
//! - Request: the body is parsed once ([`RequestBody`]); the team's policy applies to every
//!   string its scope covers (by default all the model can read, structural fields excepted),
//!   and the record says which scope applied; `block` refuses naming entity types; a high-trust team bypasses and is
//!   marked; a body the policy must check but cannot (too large, not a JSON object) is refused,
//!   never forwarded unchecked. Streamed OpenAI requests get `stream_options.include_usage`,
//!   and the client's own choice is remembered. `prompt_sha256` covers the body as sent.
//! - Answer: `response_sha256` covers the body as the upstream sent it. Streams pass event by
//!   event ([`stream`]); other answers pass chunk by chunk while a bounded copy yields their
//!   usage, or are held whole when their text must change; upstream errors come out in
//!   OpenAI's error shape.
//! - Tokens: the upstream's counts, or estimates (marked) from the text actually sent and
//!   received; a request that reached the upstream is never counted as zero tokens.

mod redactors;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use modelgate_proto::v1::{ModelRoute, TeamPolicy};
use modelgate_redact::{EntityType, Phase, PlaceholderMap};
use sha2::{Digest, Sha256};

pub use redactors::{RedactorCache, TeamRedaction};
pub use request::RequestBody;
pub use stream::{ResponseStream, TextRewrite};

use crate::audit::{BodyEnd, RecordDraft};
use crate::endpoint::Endpoint;
use crate::errors::Rejection;
use crate::sse::DEFAULT_MAX_RECORD_BYTES;
use crate::usage::{request_stream_usage, IncludeUsage, StreamFormat, TokenUsage};

/// Whether the filter reads the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Hold the request until its whole body is in ([`Exchange::prepare_request`]).
    Read,
    /// Forward at once: no body, or one the filter does not look at.
    Skip,
}

/// What the adapter does with a response body callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead {
    /// Let it pass without reading it.
    Skip,
    /// Keep buffering; the whole body is read at its end.
    Wait,
    /// Read this chunk and hand it to [`Exchange::on_response_body`].
    Read,
}

/// Changes to the response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaderEdits {
    pub remove: Vec<&'static str>,
    pub set: Vec<(&'static str, String)>,
}

#[derive(Debug, Default)]
pub struct Exchange {
    endpoint: Option<Endpoint>,
    max_body_bytes: u64,
    team: TeamRedaction,
    /// The request's reversible values.
    map: PlaceholderMap,
    /// The gateway asked for the stream's usage chunk; the client did not.
    hide_usage_chunk: bool,
    prompt_estimate: u64,
    /// The request went upstream (with its body, if it had one).
    forwarded: bool,
    found: Vec<EntityType>,
    prompt_sha256: String,
    prompt_redacted: String,
    response: Response,
}

#[derive(Debug, Default)]
struct Response {
    mode: Mode,
    hasher: Option<Sha256>,
    first_body_ms: Option<i64>,
    ended: bool,
    /// Counts of a non-streamed answer, once it ended.
    usage: Option<TokenUsage>,
    found: Vec<EntityType>,
    client_gone: bool,
}

#[derive(Debug, Default)]
enum Mode {
    /// No response headers yet.
    #[default]
    Waiting,
    /// Not looked at (pass-through paths, refused requests).
    Untouched,
    /// A non-streamed body passing unchanged; a copy yields its usage.
    Observed(response::UsageScan),
    /// A non-streamed answer held whole, to be rewritten at its end.
    Rewritten(TextRewrite),
    /// An upstream error held whole, to come out in OpenAI's shape.
    Error {
        status: u32,
    },
    Streamed(Box<ResponseStream>),
}

impl Exchange {
    pub fn new() -> Self {
        Self::default()
    }

    /// After the request headers were accepted: which endpoint, what the team's policy asks,
    /// and whether the body is read. Refuses unsupported paths (404), teams whose policy does
    /// not compile (503), bodies announced larger than `max_body_bytes` (413) and bodies on
    /// pass-through paths for teams whose policy must check them (400).
    pub fn begin(
        &mut self,
        config: &crate::config::FilterConfig,
        path: &str,
        team: Option<&TeamPolicy>,
        redactors: &RedactorCache,
        content_length: Option<u64>,
        has_body: bool,
    ) -> Result<BodyPlan, Rejection> {
        let endpoint = Endpoint::of(path, config).ok_or(Rejection::PathNotFound)?;
        self.endpoint = Some(endpoint);
        self.max_body_bytes = config.max_body_bytes;
        if let Some(team) = team {
            self.team = redactors
                .team(team)
                .map_err(|_| Rejection::RedactionUnavailable)?;
        }
        if !endpoint.has_prompt() {
            if has_body && endpoint == Endpoint::PassThrough && self.team.redacts_requests() {
                return Err(Rejection::RedactionUnsupported);
            }
            self.forwarded = true;
            return Ok(BodyPlan::Skip);
        }
        self.check_body_size(content_length.unwrap_or(0))?;
        if has_body {
            Ok(BodyPlan::Read)
        } else {
            self.forwarded = true;
            Ok(BodyPlan::Skip)
        }
    }

    /// While the body is buffered: refuses it as soon as it outgrows the limit.
    pub fn check_body_size(&self, size: u64) -> Result<(), Rejection> {
        if size > self.max_body_bytes {
            return Err(Rejection::BodyTooLarge {
                limit: self.max_body_bytes,
                redacting: self.team.redacts_requests(),
            });
        }
        Ok(())
    }

    /// The whole request body: redacts what the policy's scope covers, asks streams for usage
    /// and keeps what the record needs. Refusals: `pii_blocked`, or a body the policy cannot check.
    pub fn prepare_request(&mut self, body: &mut RequestBody) -> Result<(), Rejection> {
        let Some(endpoint) = self.endpoint else {
            return Ok(());
        };
        let Some(value) = body.value_mut() else {
            if self.team.redacts_requests() {
                return Err(Rejection::BodyUnreadable);
            }
            return Ok(());
        };
        if let Some(redactor) = self.team.redactor(Phase::Request).cloned() {
            let redaction = request::redact_prompt(&redactor, value, &mut self.map);
            self.found.extend(redaction.found);
            if !redaction.blocked.is_empty() {
                let types = redaction.blocked.iter().map(ToString::to_string).collect();
                return Err(Rejection::PiiBlocked(types));
            }
            if redaction.changed {
                body.mark_content_changed();
            }
        }
        let Some(value) = body.value_mut() else {
            return Ok(());
        };
        if endpoint.asks_for_stream_usage() && request_stream_usage(value) == IncludeUsage::Injected
        {
            self.hide_usage_chunk = true;
            body.mark_changed();
        }
        // `stream_options` is no prompt text: only redaction changes the estimate.
        self.prompt_estimate = body.prompt_tokens();
        let Some(value) = body.value_mut() else {
            return Ok(());
        };
        if let Some(masker) = self.team.record_masker() {
            self.prompt_redacted = request::record_prompt(masker, value);
        }
        Ok(())
    }

    /// The body goes upstream: returns its new bytes when it changed (`None`: send the
    /// original) and hashes what is sent.
    pub fn send_request(
        &mut self,
        body: &RequestBody,
        original: &[u8],
    ) -> Result<Option<Vec<u8>>, Rejection> {
        let rewritten = body.rewritten().map_err(|err| {
            log::error!("request body does not serialize again: {err}");
            Rejection::BodyUnreadable
        })?;
        self.prompt_sha256 = hex::encode(Sha256::digest(rewritten.as_deref().unwrap_or(original)));
        self.forwarded = true;
        Ok(rewritten)
    }

    /// Estimated prompt tokens of the body as sent (for admission).
    pub fn prompt_estimate(&self) -> u64 {
        self.prompt_estimate
    }

    /// The response headers arrived: picks how its body is handled.
    pub fn on_response_headers(
        &mut self,
        status: u32,
        content_type: Option<&str>,
        end_of_stream: bool,
    ) -> ResponseHeaderEdits {
        let mut edits = ResponseHeaderEdits::default();
        let response = &mut self.response;
        response.ended = end_of_stream;
        let endpoint = match self.endpoint {
            Some(endpoint) if self.forwarded && endpoint != Endpoint::PassThrough => endpoint,
            _ => {
                response.mode = Mode::Untouched;
                return edits;
            }
        };
        response.hasher = Some(Sha256::new());
        let stream = content_type.and_then(StreamFormat::from_content_type);
        let mut rewrite = || {
            let redactor = self.team.redactor(Phase::Response).cloned();
            endpoint
                .generates_text()
                .then(|| TextRewrite::new(redactor, std::mem::take(&mut self.map)))
                .flatten()
        };
        response.mode = if status >= 400 {
            edits
                .set
                .push(("content-type", "application/json".to_owned()));
            Mode::Error { status }
        } else if let Some(format) = stream {
            Mode::Streamed(Box::new(ResponseStream::new(
                format,
                self.hide_usage_chunk,
                rewrite(),
                DEFAULT_MAX_RECORD_BYTES,
            )))
        } else {
            match rewrite() {
                Some(text) => Mode::Rewritten(text),
                None => Mode::Observed(response::UsageScan::default()),
            }
        };
        if !matches!(response.mode, Mode::Observed(_)) {
            // The body may change length.
            edits.remove.push("content-length");
        }
        edits
    }

    /// How the adapter treats the next response body callback.
    pub fn response_body_read(&self, end_of_stream: bool) -> BodyRead {
        match &self.response.mode {
            Mode::Waiting | Mode::Untouched => BodyRead::Skip,
            Mode::Rewritten(_) | Mode::Error { .. } if !end_of_stream => BodyRead::Wait,
            _ => BodyRead::Read,
        }
    }

    /// A response body chunk (or, for held bodies, the whole body at its end); returns the
    /// bytes to send in its place, `None` to send it unchanged. `now_ms` is asked only for
    /// the first bytes (a host call per stream chunk would cross the VM boundary for nothing).
    pub fn on_response_body(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        now_ms: impl FnOnce() -> i64,
    ) -> Option<Vec<u8>> {
        let response = &mut self.response;
        if !chunk.is_empty() && response.first_body_ms.is_none() {
            response.first_body_ms = Some(now_ms());
        }
        if let Some(hasher) = &mut response.hasher {
            hasher.update(chunk);
        }
        response.ended |= end_of_stream;
        let prompt_estimate = self.prompt_estimate;
        match &mut response.mode {
            Mode::Waiting | Mode::Untouched => None,
            Mode::Observed(scan) => {
                scan.push(chunk);
                if end_of_stream {
                    response.usage = Some(scan.usage(prompt_estimate));
                }
                None
            }
            Mode::Rewritten(text) => {
                response.usage = Some(response::usage_or_estimate(chunk, prompt_estimate));
                let rewritten = response::rewrite_answer(text, chunk);
                response.found.extend(rewritten.found);
                rewritten.body
            }
            Mode::Error { status } => response::openai_error(*status, chunk),
            Mode::Streamed(stream) => {
                let mut out = stream.push(chunk);
                if end_of_stream {
                    out.extend(stream.finish());
                }
                (out != chunk).then_some(out)
            }
        }
    }

    /// Envoy's response flags at the end of the request: the client went away if they say so.
    pub fn note_response_flags(&mut self, flags: u64) {
        self.response.client_gone = flags & CLIENT_GONE_FLAGS != 0;
    }

    /// The request is over: fills the record's exchange fields and says how the body ended.
    pub fn finish(&mut self, draft: &mut RecordDraft, route: Option<&ModelRoute>) -> BodyEnd {
        let response = &self.response;
        draft.prompt_sha256 = std::mem::take(&mut self.prompt_sha256);
        draft.prompt_redacted = std::mem::take(&mut self.prompt_redacted);
        if let Some(hasher) = &response.hasher {
            draft.response_sha256 = hex::encode(hasher.clone().finalize());
        }
        let has_prompt = self.endpoint.is_some_and(Endpoint::has_prompt);
        draft.redaction_bypassed = self.team.bypassed() && has_prompt;
        if let Some(scope) = self.team.scope().filter(|_| has_prompt) {
            draft.redaction_scope = scope.label();
        }
        let streamed = match &response.mode {
            Mode::Streamed(stream) => stream.found(),
            _ => Vec::new(),
        };
        draft.redactions = count(
            self.found
                .iter()
                .chain(&response.found)
                .map(|t| (t.clone(), 1))
                .chain(streamed),
        );
        let prompt_only = (self.prompt_estimate > 0).then_some(TokenUsage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: 0,
            estimated: true,
        });
        let counted = self.forwarded && self.endpoint.is_some_and(Endpoint::has_prompt);
        let (tokens, end) = match &response.mode {
            Mode::Streamed(stream) => {
                draft.stream = true;
                draft.ttft_ms = response
                    .first_body_ms
                    .map(|ms| {
                        u32::try_from(ms.saturating_sub(draft.started_ms).max(0))
                            .unwrap_or(u32::MAX)
                    })
                    .unwrap_or(0);
                let usage = stream.usage();
                let end = if !response.ended {
                    BodyEnd::Interrupted {
                        client_gone: response.client_gone,
                    }
                } else if usage.upstream_error() {
                    BodyEnd::StreamError
                } else if !usage.completed() {
                    BodyEnd::Truncated
                } else {
                    BodyEnd::Complete
                };
                (Some(usage.usage(self.prompt_estimate)), end)
            }
            Mode::Error { .. } => (None, BodyEnd::Complete),
            Mode::Untouched => (None, BodyEnd::Complete),
            // The upstream had the prompt; what it made of it is unknown.
            Mode::Waiting => (prompt_only, BodyEnd::Complete),
            Mode::Observed(_) | Mode::Rewritten(_) if !response.ended => (
                prompt_only,
                BodyEnd::Interrupted {
                    client_gone: response.client_gone,
                },
            ),
            Mode::Observed(_) | Mode::Rewritten(_) => {
                (response.usage.or(prompt_only), BodyEnd::Complete)
            }
        };
        if counted {
            draft.tokens = tokens;
            if let (Some(tokens), Some(route)) = (tokens, route) {
                draft.spend = spend(&tokens, route);
            }
        }
        end
    }
}

/// Envoy's `response.flags` bits for a client that went away: DC (downstream connection
/// termination, bit 14) and DR (downstream remote reset, bit 28).
const CLIENT_GONE_FLAGS: u64 = 1 << 14 | 1 << 28;

/// Spend from the route's prices per million tokens.
pub fn spend(tokens: &TokenUsage, route: &ModelRoute) -> f64 {
    (tokens.prompt_tokens as f64 * route.input_cost_per_mtok
        + tokens.completion_tokens as f64 * route.output_cost_per_mtok)
        / 1_000_000.0
}

/// Entity types with their summed counts, sorted by name.
fn count(found: impl Iterator<Item = (EntityType, u32)>) -> Vec<(String, u32)> {
    let mut counts: Vec<(String, u32)> = Vec::new();
    for (entity, by) in found {
        let name = entity.as_str();
        match counts.iter_mut().find(|(n, _)| n == name) {
            Some((_, n)) => *n = n.saturating_add(by),
            None => counts.push((name.to_owned(), by)),
        }
    }
    counts.sort();
    counts
}
