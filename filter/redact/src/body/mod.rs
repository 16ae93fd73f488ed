//! Redaction of JSON request and response bodies: the strings the policy's scope covers
//! change, everything else (structural fields, key order, numbers) is kept as it was.

mod request;
mod response;

use std::borrow::Cow;

use serde_json::Value;
use thiserror::Error;

pub use response::for_each_response_text;

use crate::entity::{Entity, EntityType};
use crate::placeholder::PlaceholderMap;
use crate::policy::Phase;
use crate::redactor::{count_types, verdict, Redactor, Verdict};
use crate::scope::{FieldKind, Scope};
use request::{walk, Ctx};

#[derive(Debug, Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("body is not a JSON object")]
    NotObject,
}

/// The result for a whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyRedaction {
    /// The rewritten body, or `None` when nothing changed (send the original bytes).
    pub body: Option<Vec<u8>>,
    /// Entities per text field, in field order; offsets are characters into that field.
    pub entities: Vec<Entity>,
    pub verdict: Verdict,
}

impl BodyRedaction {
    pub fn counts(&self) -> Vec<(EntityType, u32)> {
        count_types(&self.entities)
    }
}

/// Calls `f` on every string of a request body that `scope` covers, with its kind: the
/// request walker's rules say which strings are text and which are structural.
pub fn for_each_request_text(
    body: &mut Value,
    scope: Scope,
    f: &mut dyn FnMut(FieldKind, &mut String),
) {
    walk(body, Ctx::Root, &mut |kind, s: &mut String| {
        if scope.covers(kind) {
            f(kind, s);
        }
    });
}

/// Redacts the strings of a request body that the policy's scope covers (pre-call).
pub fn redact_request_body(
    redactor: &Redactor,
    body: &[u8],
    map: &mut PlaceholderMap,
) -> Result<BodyRedaction, BodyError> {
    let mut value: Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Err(BodyError::NotObject);
    }
    let mut entities = Vec::new();
    let mut blocked = Vec::new();
    let mut changed = false;
    for_each_request_text(&mut value, redactor.scope(), &mut |_, s: &mut String| {
        let r = redactor.redact(s, Phase::Request, map);
        entities.extend(r.entities);
        if let Verdict::Block { entity_types } = r.verdict {
            blocked.extend(entity_types);
        }
        if r.text != *s {
            *s = r.text;
            changed = true;
        }
    });
    Ok(BodyRedaction {
        body: changed.then(|| serde_json::to_vec(&value)).transpose()?,
        entities,
        verdict: verdict(blocked),
    })
}

/// Processes a non-streamed answer (post-call): in every generated text, removes the values
/// the policy covers in responses (in the kinds of text its scope covers), then puts the
/// request's reversible placeholders back (in every kind: a placeholder the model moved into
/// a tool call still comes back).
pub fn process_response_body(
    redactor: &Redactor,
    body: &[u8],
    map: &PlaceholderMap,
) -> Result<BodyRedaction, BodyError> {
    let mut value: Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Err(BodyError::NotObject);
    }
    let mut entities = Vec::new();
    let changed = process_response_value(Some(redactor), &mut value, map, &mut entities);
    Ok(BodyRedaction {
        body: changed.then(|| serde_json::to_vec(&value)).transpose()?,
        entities,
        verdict: Verdict::Allow,
    })
}

/// [`process_response_body`] on an answer (or one self-contained stream record) already
/// parsed; without a redactor it only restores. Adds what it masked to `found`; true when
/// any text changed.
pub fn process_response_value(
    redactor: Option<&Redactor>,
    value: &mut Value,
    map: &PlaceholderMap,
    found: &mut Vec<Entity>,
) -> bool {
    let mut scratch = PlaceholderMap::new();
    let mut changed = false;
    for_each_response_text(value, &mut |kind, s: &mut String| {
        let masked = match redactor.filter(|r| r.scope().covers(kind)) {
            Some(redactor) => {
                let r = redactor.redact(s, Phase::Response, &mut scratch);
                found.extend(r.entities);
                Cow::Owned(r.text)
            }
            None => Cow::Borrowed(s.as_str()),
        };
        let restored = map.restore(&masked).into_owned();
        if restored != *s {
            *s = restored;
            changed = true;
        }
    });
    changed
}
