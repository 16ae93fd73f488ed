//! The HTTP context: feeds Envoy's events to a [`RequestFlow`] and applies its answers.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::root::FilterShared;
use crate::errors::Rejection;
use crate::exchange::BodyRead;
use crate::flow::{BodyVerdict, HeaderEdits, LocalReply, RequestFlow, RequestHeaders, Verdict};
use crate::host::property_u64;

/// Foreign function that makes Envoy pick the route again after the route header changed
/// (Envoy no longer does that by itself when a wasm filter edits headers).
const CLEAR_ROUTE_CACHE: &str = "clear_route_cache";

pub(super) struct HttpFilter {
    shared: Rc<FilterShared>,
    flow: RequestFlow,
    awaiting_body: bool,
}

impl HttpFilter {
    pub(super) fn new(shared: Rc<FilterShared>) -> Self {
        let flow = RequestFlow::new(Rc::clone(&shared.config))
            .with_redactors(Rc::clone(&shared.redactors))
            .with_identities(Rc::clone(&shared.identities));
        Self {
            shared,
            flow,
            awaiting_body: false,
        }
    }

    /// The whole body is in: the flow routes it and may rewrite or refuse it.
    fn forward_buffered_body(&mut self, size: usize) -> Action {
        self.awaiting_body = false;
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some(reply) = self.flow.on_request_body_size(body.len() as u64) {
            send(&reply);
            return Action::Pause;
        }
        match self.flow.on_request_body(&self.shared.host, &body) {
            BodyVerdict::Reject(reply) => {
                send(&reply);
                Action::Pause
            }
            BodyVerdict::Forward { edits, body: new } => {
                apply(&edits);
                if let Some(new) = new {
                    if let Err(status) =
                        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new)
                    {
                        // Forwarding the unrewritten body could leak what redaction removed.
                        log::error!("request body not replaced ({status:?}); request refused");
                        send(&misconfigured_reply());
                        return Action::Pause;
                    }
                }
                Action::Continue
            }
        }
    }
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = RequestHeaders::new(
            hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default(),
        );
        let source = hostcalls::get_property(vec!["source", "address"])
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let verdict = {
            let mut snapshots = self.shared.snapshots.borrow_mut();
            self.flow.on_request_headers(
                &self.shared.host,
                &mut snapshots,
                &headers,
                source.as_deref(),
                end_of_stream,
            )
        };
        match verdict {
            Verdict::Reject(reply) => {
                send(&reply);
                Action::Pause
            }
            Verdict::Forward(edits) => {
                apply(&edits);
                Action::Continue
            }
            Verdict::AwaitBody(edits) => {
                apply(&edits);
                self.awaiting_body = true;
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        if !end_of_stream {
            // Envoy buffers until the end; the filter refuses once the body outgrows its limit.
            if let Some(reply) = self.flow.on_request_body_size(body_size as u64) {
                self.awaiting_body = false;
                send(&reply);
            }
            return Action::Pause;
        }
        self.forward_buffered_body(body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.awaiting_body {
            return self.forward_buffered_body(usize::MAX);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let header = |name: &str| {
            hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
                .ok()
                .flatten()
        };
        let status = header(":status").and_then(|s| s.trim().parse::<u32>().ok());
        let content_type = header("content-type");
        let edits = self
            .flow
            .on_response_headers(status, content_type.as_deref(), end_of_stream);
        for name in edits.remove {
            if let Err(status) = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name) {
                log::warn!("response header {name} not removed: {status:?}");
            }
        }
        for (name, value) in edits.set {
            if let Err(status) =
                hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(&value))
            {
                log::warn!("response header {name} not set: {status:?}");
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.flow.response_body_read(end_of_stream) {
            BodyRead::Skip => Action::Continue,
            BodyRead::Wait => Action::Pause,
            BodyRead::Read => {
                let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let replacement =
                    self.flow
                        .on_response_body(&self.shared.host, &chunk, end_of_stream);
                if let Some(replacement) = replacement {
                    if let Err(status) = hostcalls::set_buffer(
                        BufferType::HttpResponseBody,
                        0,
                        chunk.len(),
                        &replacement,
                    ) {
                        log::error!("response body not replaced: {status:?}");
                    }
                }
                Action::Continue
            }
        }
    }

    fn on_log(&mut self) {
        if self.awaiting_body && !self.shared.warned_body_never_came.replace(true) {
            // Also happens when a client gives up mid-upload, hence once per VM and worded so.
            log::warn!(
                "a request held for its body ended without it; if requests with bodies hang, \
                 set `allow_on_headers_stop_iteration: true` in this wasm filter's PluginConfig \
                 (without it Envoy never hands the body to the filter)"
            );
        }
        let status = hostcalls::get_property(vec!["response", "code"])
            .ok()
            .flatten()
            .and_then(|bytes| property_u64(&bytes))
            .and_then(|code| u32::try_from(code).ok());
        let details = hostcalls::get_property(vec!["response", "code_details"])
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some(flags) = hostcalls::get_property(vec!["response", "flags"])
            .ok()
            .flatten()
            .and_then(|bytes| property_u64(&bytes))
        {
            self.flow.note_response_flags(flags);
        }
        self.flow
            .on_log(&self.shared.host, status, details.as_deref());
    }
}

/// An HTTP context for a root that cannot filter (its configuration is not a filter's):
/// refuses every request rather than letting it through unchecked.
pub(super) struct Misconfigured;

impl Context for Misconfigured {}

impl HttpContext for Misconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        send(&misconfigured_reply());
        Action::Pause
    }
}

/// The filter cannot do its job for this request: refuse rather than let it through.
fn misconfigured_reply() -> LocalReply {
    let rejection = Rejection::Misconfigured;
    LocalReply {
        status: u32::from(rejection.status()),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: rejection.body(),
    }
}

fn send(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    if let Err(status) = hostcalls::send_http_response(reply.status, headers, Some(&reply.body)) {
        log::error!("local reply {} not sent: {status:?}", reply.status);
    }
}

fn apply(edits: &HeaderEdits) {
    for name in &edits.remove {
        if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name) {
            log::warn!("request header {name} not removed: {status:?}");
        }
    }
    for (name, value) in &edits.set {
        if let Err(status) =
            hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
        {
            log::warn!("request header {name} not set: {status:?}");
        }
    }
    if edits.reroute {
        if let Err(status) = hostcalls::call_foreign_function(CLEAR_ROUTE_CACHE, None) {
            log::error!("{CLEAR_ROUTE_CACHE} failed ({status:?}); the route may ignore the model");
        }
    }
}
