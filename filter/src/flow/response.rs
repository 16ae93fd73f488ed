//! The response side of a request: headers and body on their way to the client.

use super::RequestFlow;
use crate::exchange::{BodyRead, ResponseHeaderEdits};
use crate::host::Host;

impl RequestFlow {
    /// The response headers arrived (`status` from `:status`): the request id goes back to
    /// the client, and the exchange decides how the body is handled.
    pub fn on_response_headers(
        &mut self,
        status: Option<u32>,
        content_type: Option<&str>,
        end_of_stream: bool,
    ) -> ResponseHeaderEdits {
        let mut edits = if self.refusal.is_some() {
            ResponseHeaderEdits::default()
        } else {
            self.exchange
                .on_response_headers(status.unwrap_or(0), content_type, end_of_stream)
        };
        edits.set.extend(self.response_headers());
        edits
    }

    /// How the next response body callback is treated.
    pub fn response_body_read(&self, end_of_stream: bool) -> BodyRead {
        self.exchange.response_body_read(end_of_stream)
    }

    /// A response body chunk, or the whole body when it was held; `None` sends it unchanged.
    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        self.exchange
            .on_response_body(chunk, end_of_stream, || host.now_ms())
    }

    /// Envoy's `response.flags`, read just before [`RequestFlow::on_log`].
    pub fn note_response_flags(&mut self, flags: u64) {
        self.exchange.note_response_flags(flags);
    }
}
