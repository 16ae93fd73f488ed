//! Batch redaction of JSON Lines: the contract of `modelgate redact --jsonl` and of the
//! evaluation in `eval/`.
//!
//! Each input line is one record `{"id": …, "text": "…"}`; other fields are ignored. Each
//! record gives one output line, in input order:
//!
//! ```json
//! {"id": 7, "redacted": "Dear <PERSON>", "entities": [{"type": "PERSON", "start": 5, "end": 16}]}
//! ```
//!
//! - `id` is copied unchanged (any JSON value); `start`/`end` are offsets in Unicode scalar
//!   values (chars) into `text`, end exclusive.
//! - `"blocked": ["CREDIT_CARD", …]` is added when the policy would refuse the request (400
//!   `pii_blocked`), and `"bypassed": true` when a high-trust policy skips redaction.
//! - Every record is its own request: reversible placeholders are numbered from 1 per line.
//! - Lines holding only whitespace carry no record and give no output; they still count in
//!   line numbers, so an error's line number is the one an editor shows.
//! - The first bad line (not UTF-8, not JSON, not an object, no `id`, no string `text`) stops
//!   the run with [`JsonlError::Record`] naming its line. Every line before it has been
//!   written and flushed, so output line *k* always belongs to input record *k*, and a caller
//!   knows exactly where processing stopped. Stopping, rather than writing an error object in
//!   place of the record, keeps every output line in one shape and makes a typo in a batch
//!   impossible to miss.
//!
//! ```
//! use modelgate_redact::{jsonl, Phase, Redactor};
//!
//! let redactor = Redactor::from_json("").unwrap();
//! let input = "{\"id\": \"a\", \"text\": \"Grüße an priya@example.com\"}\n";
//! let mut out = Vec::new();
//! jsonl::redact_jsonl(&redactor, Phase::Request, input.as_bytes(), &mut out).unwrap();
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "{\"id\":\"a\",\"redacted\":\"Grüße an <EMAIL_ADDRESS>\",\
//!      \"entities\":[{\"type\":\"EMAIL_ADDRESS\",\"start\":9,\"end\":26}]}\n"
//! );
//! ```

use std::io::{self, BufRead, BufWriter, Write};

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::entity::{Entity, EntityType};
use crate::placeholder::PlaceholderMap;
use crate::policy::Phase;
use crate::redactor::{Redactor, Verdict};

/// Why a JSON Lines run stopped.
#[derive(Debug, Error)]
pub enum JsonlError {
    /// Input line `line` (1-based) is not a valid record; nothing after it was processed.
    #[error("line {line}: {reason}")]
    Record { line: u64, reason: RecordError },
    #[error("cannot read input at line {line}: {source}")]
    Read {
        line: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot write output: {0}")]
    Write(#[source] io::Error),
}

/// What is wrong with one input line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("expected a JSON object {{\"id\": …, \"text\": \"…\"}}, found {0}")]
    NotObject(&'static str),
    #[error("the record has no \"id\"")]
    MissingId,
    #[error("the record has no \"text\"")]
    MissingText,
    #[error("\"text\" must be a string, found {0}")]
    TextNotString(&'static str),
}

#[derive(Serialize)]
struct OutputRecord<'a> {
    id: &'a Value,
    redacted: &'a str,
    entities: &'a [Entity],
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<&'a [EntityType]>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bypassed: bool,
}

/// Redacts every record of `input` in `phase` and writes one output line per record to
/// `output` (see the module docs for both formats and the error rule). Output is buffered
/// here and flushed before returning, on success and on a bad line alike.
pub fn redact_jsonl<R: BufRead, W: Write>(
    redactor: &Redactor,
    phase: Phase,
    mut input: R,
    output: W,
) -> Result<(), JsonlError> {
    let mut output = BufWriter::new(output);
    let mut buf = Vec::new();
    let mut line: u64 = 0;
    let result = loop {
        buf.clear();
        line += 1;
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(source) => break Err(JsonlError::Read { line, source }),
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (id, text) = match parse_record(&buf) {
            Ok(record) => record,
            Err(reason) => break Err(JsonlError::Record { line, reason }),
        };
        if let Err(e) = write_record(redactor, phase, &id, &text, &mut output) {
            break Err(JsonlError::Write(e));
        }
    };
    let flushed = output.flush().map_err(JsonlError::Write);
    result.and(flushed)
}

/// The `id` and `text` of one non-blank input line.
fn parse_record(line: &[u8]) -> Result<(Value, String), RecordError> {
    // Without its line ending, so serde_json's positions stay on this line.
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| RecordError::NotUtf8)?;
    let mut record = match serde_json::from_str(line) {
        Ok(Value::Object(record)) => record,
        Ok(other) => return Err(RecordError::NotObject(kind(&other))),
        Err(e) => return Err(RecordError::Json(json_reason(&e))),
    };
    let id = record.remove("id").ok_or(RecordError::MissingId)?;
    match record.remove("text") {
        Some(Value::String(text)) => Ok((id, text)),
        Some(other) => Err(RecordError::TextNotString(kind(&other))),
        None => Err(RecordError::MissingText),
    }
}

fn write_record(
    redactor: &Redactor,
    phase: Phase,
    id: &Value,
    text: &str,
    output: &mut impl Write,
) -> io::Result<()> {
    let mut map = PlaceholderMap::new();
    let r = redactor.redact(text, phase, &mut map);
    let blocked = match &r.verdict {
        Verdict::Block { entity_types } => Some(entity_types.as_slice()),
        Verdict::Allow | Verdict::Bypassed => None,
    };
    let row = OutputRecord {
        id,
        redacted: &r.text,
        entities: &r.entities,
        blocked,
        bypassed: r.verdict == Verdict::Bypassed,
    };
    serde_json::to_writer(&mut *output, &row)?;
    output.write_all(b"\n")
}

/// serde_json's message with its position as a column: the line number it would give is
/// always 1 here and would read as the file's line.
fn json_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&position) {
        Some(msg) => format!("{msg} (column {})", e.column()),
        None => full,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
