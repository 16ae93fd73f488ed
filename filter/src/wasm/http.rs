//! The HTTP context: feeds Envoy's events to a [`RequestFlow`] and applies its answers.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::root::FilterShared;
use crate::errors::Rejection;
use crate::flow::{HeaderEdits, LocalReply, RequestFlow, RequestHeaders, Verdict};
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
        let flow = RequestFlow::new(Rc::clone(&shared.config));
        Self {
            shared,
            flow,
            awaiting_body: false,
        }
    }

    fn route_with_buffered_body(&mut self, size: usize) {
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.awaiting_body = false;
        apply(&self.flow.on_request_body(&body));
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
            // Envoy buffers until the end (bounded by the listener's buffer limit: 413).
            return Action::Pause;
        }
        self.route_with_buffered_body(body_size);
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.awaiting_body {
            self.route_with_buffered_body(usize::MAX);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.flow.response_headers() {
            if let Err(status) =
                hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(&value))
            {
                log::warn!("response header {name} not set: {status:?}");
            }
        }
        Action::Continue
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
        let rejection = Rejection::Misconfigured;
        send(&LocalReply {
            status: u32::from(rejection.status()),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: rejection.body(),
        });
        Action::Pause
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
