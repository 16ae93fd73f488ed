//! The request body, parsed once: routing, admission and redaction read and edit the same
//! value, and it is serialized again only when one of them changed it.

use modelgate_redact::{for_each_request_text, EntityType, Phase, PlaceholderMap, Redactor, Scope};
use serde_json::Value;

use crate::usage::estimate_prompt_tokens;

/// A request body on its way upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    /// The body, when it is a JSON object (anything else is forwarded as it came).
    value: Option<Value>,
    changed: bool,
    /// The prompt estimate of `value`, while known (admission computed it, and no content
    /// field changed since).
    prompt_tokens: Option<u64>,
}

impl RequestBody {
    pub fn parse(raw: &[u8]) -> Self {
        Self::new(serde_json::from_slice::<Value>(raw).ok(), None)
    }

    /// A body admission already parsed and estimated, so neither is done again.
    pub fn parsed(value: Value, prompt_tokens: u64) -> Self {
        Self::new(Some(value), Some(prompt_tokens))
    }

    fn new(value: Option<Value>, prompt_tokens: Option<u64>) -> Self {
        Self {
            value: value.filter(Value::is_object),
            changed: false,
            prompt_tokens,
        }
    }

    pub fn json(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    /// The body for editing (e.g. an alias rewritten to the upstream's model name); it is then
    /// serialized again.
    pub fn json_mut(&mut self) -> Option<&mut Value> {
        self.changed |= self.value.is_some();
        self.prompt_tokens = None;
        self.value.as_mut()
    }

    /// The top-level `model`, when it is a string.
    pub fn model(&self) -> Option<&str> {
        self.value.as_ref()?.get("model")?.as_str()
    }

    /// The bytes to send upstream in place of the original, `None` when nothing changed.
    /// Serializing a parsed `Value` does not fail in practice; if it ever did, the edits
    /// (redaction included) must not be dropped, so the caller refuses the request.
    pub(super) fn rewritten(&self) -> Result<Option<Vec<u8>>, serde_json::Error> {
        match &self.value {
            Some(value) if self.changed => serde_json::to_vec(value).map(Some),
            _ => Ok(None),
        }
    }

    pub(super) fn value_mut(&mut self) -> Option<&mut Value> {
        self.value.as_mut()
    }

    /// An edit outside the exchange (the route's output cap): the body is serialized again.
    pub(crate) fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// A content field changed (redaction): the prompt is estimated again.
    pub(super) fn mark_content_changed(&mut self) {
        self.changed = true;
        self.prompt_tokens = None;
    }

    /// Estimated prompt tokens of the body as it stands (0 when it is not a JSON object).
    pub(super) fn prompt_tokens(&self) -> u64 {
        match (self.prompt_tokens, &self.value) {
            (Some(known), _) => known,
            (None, Some(value)) => estimate_prompt_tokens(value),
            (None, None) => 0,
        }
    }
}

/// What a request-side redaction found.
#[derive(Debug, Default)]
pub(super) struct PromptRedaction {
    pub(super) changed: bool,
    pub(super) found: Vec<EntityType>,
    pub(super) blocked: Vec<EntityType>,
}

/// Redacts, in place, every string of a request the policy's scope covers (by default every
/// string the model can read; structural fields stay); the JSON keeps its shape.
pub(super) fn redact_prompt(
    redactor: &Redactor,
    value: &mut Value,
    map: &mut PlaceholderMap,
) -> PromptRedaction {
    let mut outcome = PromptRedaction::default();
    for_each_request_text(value, redactor.scope(), &mut |_, text: &mut String| {
        let redaction = redactor.redact(text, Phase::Request, map);
        outcome
            .found
            .extend(redaction.entities.iter().map(|e| e.entity_type.clone()));
        if let modelgate_redact::Verdict::Block { entity_types } = redaction.verdict {
            outcome.blocked.extend(entity_types);
        }
        if redaction.text != *text {
            *text = redaction.text;
            outcome.changed = true;
        }
    });
    outcome.blocked.sort();
    outcome.blocked.dedup();
    outcome
}

/// The most prompt text an audit record keeps; records stay compact.
const RECORD_PROMPT_BYTES: usize = 8 * 1024;

/// The prompt for the audit record: the message text of the body as sent upstream (already
/// redacted by the team's policy, if any), each masked again with every built-in type so no
/// raw value reaches the record whatever the team's policy leaves on, joined by newlines and
/// cut at `RECORD_PROMPT_BYTES`.
pub(super) fn record_prompt(masker: &Redactor, value: &mut Value) -> String {
    let mut scratch = PlaceholderMap::new();
    let mut out = String::new();
    for_each_request_text(value, Scope::MESSAGES, &mut |_, text: &mut String| {
        if out.len() >= RECORD_PROMPT_BYTES {
            return;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&masker.redact(text, Phase::Request, &mut scratch).text);
    });
    if out.len() > RECORD_PROMPT_BYTES {
        let mut cut = RECORD_PROMPT_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}
