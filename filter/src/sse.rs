//! Server-sent-event parsing for streamed responses (being built).
