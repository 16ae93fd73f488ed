//! Modelgate's PII redaction engine: validated detectors, per-team policies, reversible
//! placeholders, fragmentation-safe streaming, and JSON body helpers. Pure Rust with no I/O,
//! threads or filesystem access at run time, so it runs inside the wasm filter unchanged; the
//! [`jsonl`] batch mode (used by `modelgate redact --jsonl`) only reads and writes the streams
//! its caller hands it.
//! Lint policy: the workspace's (no unwrap/expect/panic outside tests, no unsafe).
//!
//! # Policy JSON (`redaction_policy_json`)
//!
//! Every field is optional; `{}` (or an empty string) masks every built-in type in requests.
//!
//! ```json
//! {
//!   "default_action": "mask",
//!   "direction": "request",
//!   "entities": {
//!     "PERSON": "reversible",
//!     "EMAIL_ADDRESS": {"action": "reversible", "direction": "both"},
//!     "CREDIT_CARD": "block",
//!     "IP_ADDRESS": "off"
//!   },
//!   "custom_patterns": [
//!     {"name": "EMPLOYEE_ID", "pattern": "\\bEMP-[0-9]{6}\\b", "action": "mask"}
//!   ],
//!   "deny_terms": [
//!     {"name": "CODENAME", "terms": ["Bluebird", "Project Nightjar"], "action": "block"}
//!   ],
//!   "high_trust": false,
//!   "scope": "full"
//! }
//! ```
//!
//! - `default_action` (`off` | `mask` | `reversible` | `block`, default `mask`): for built-in
//!   types not listed in `entities`.
//! - `direction` (`request` | `response` | `both`, default `request`): for rules that do not
//!   name their own. In responses `block` and `reversible` act as `mask`.
//! - `entities`: built-in type name -> action, or `{"action", "direction"}`. Types:
//!   `EMAIL_ADDRESS`, `US_SSN`, `CREDIT_CARD`, `PHONE_NUMBER`, `IBAN_CODE`, `US_BANK_NUMBER`,
//!   `IP_ADDRESS`, `SECRET`, `PERSON`, `US_ITIN` (SSN-shaped numbers with area 900-999 and
//!   an ITIN group; a policy that lists `US_SSN` but not `US_ITIN` applies the SSN rule).
//! - `custom_patterns`: `regex` crate syntax (linear time); `name` is the entity type reported
//!   (`[A-Z][A-Z0-9_]{0,31}`), `action`/`direction` as above.
//! - `deny_terms`: literal terms matched on word boundaries, case-insensitive unless
//!   `"case_sensitive": true`; reported as `name` (default `DENY_LIST`).
//! - `high_trust`: bypass redaction; the caller marks the request as bypassed in its audit.
//! - `scope` (default `"full"`: every string the model can read, structural fields excepted):
//!   one [`FieldKind`] name or a list of them (`messages`, `tool_calls`, `tools`, `names`,
//!   `other`); anything else is refused with [`PolicyError::Scope`]. The request walker in
//!   `body/request.rs` is the one list of structural fields (the README prints it).
//!
//! In every text, percent and JSON escapes are decoded for detection; a finding masks the
//! whole encoded range it came from.
//!
//! # Example
//!
//! ```
//! use modelgate_redact::{Phase, PlaceholderMap, Redactor, Verdict};
//!
//! let redactor = Redactor::from_json(r#"{"entities": {"PERSON": "reversible"}}"#).unwrap();
//! let mut map = PlaceholderMap::new();
//! let r = redactor.redact("Dear Priya Raman, mail priya@example.com", Phase::Request, &mut map);
//! assert_eq!(r.text, "Dear <PERSON_1>, mail <EMAIL_ADDRESS>");
//! assert_eq!(r.verdict, Verdict::Allow);
//! assert_eq!((r.entities[0].start, r.entities[0].end), (5, 16));
//! assert_eq!(map.restore("Hello <PERSON_1>!"), "Hello Priya Raman!");
//! ```

mod body;
mod decode;
mod detect;
mod entity;
pub mod jsonl;
mod placeholder;
mod policy;
mod redactor;
mod scope;
mod stream;

pub use body::{
    for_each_request_text, for_each_response_text, process_response_body, process_response_value,
    redact_request_body, BodyError, BodyRedaction,
};
pub use detect::Detection;
pub use entity::{Entity, EntityType};
pub use placeholder::{PlaceholderMap, MAX_PLACEHOLDERS, MAX_PLACEHOLDER_BYTES};
pub use policy::{
    Action, CustomPattern, DenyTerms, Direction, EntityRule, Phase, PolicyError, RedactionPolicy,
    MAX_CUSTOM_PATTERNS, MAX_DENY_TERMS,
};
pub use redactor::{Redaction, Redactor, Verdict};
pub use scope::{FieldKind, Scope};
pub use stream::{StreamRedactor, StreamRestorer, CONTEXT_KEEP, MAX_HOLD};
