//! Redaction of JSON request and response bodies: the strings the policy's scope covers
//! change, everything else (structural fields, key order, numbers) is kept as it was.

mod request;
mod response;

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
    rewrite(
        body,
        &mut |value, f| for_each_request_text(value, redactor.scope(), f),
        &mut |_, s: &str, entities, blocked| {
            let r = redactor.redact(s, Phase::Request, map);
            entities.extend(r.entities);
            if let Verdict::Block { entity_types } = r.verdict {
                blocked.extend(entity_types);
            }
            r.text
        },
    )
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
    let mut scratch = PlaceholderMap::new();
    rewrite(
        body,
        &mut |value, f| for_each_response_text(value, f),
        &mut |kind, s: &str, entities, _| {
            if !redactor.scope().covers(kind) {
                return map.restore(s).into_owned();
            }
            let r = redactor.redact(s, Phase::Response, &mut scratch);
            entities.extend(r.entities);
            map.restore(&r.text).into_owned()
        },
    )
}

type Visit<'a> = dyn FnMut(&mut Value, &mut dyn FnMut(FieldKind, &mut String)) + 'a;
type Transform<'a> =
    dyn FnMut(FieldKind, &str, &mut Vec<Entity>, &mut Vec<EntityType>) -> String + 'a;

fn rewrite(
    body: &[u8],
    visit: &mut Visit<'_>,
    transform: &mut Transform<'_>,
) -> Result<BodyRedaction, BodyError> {
    let mut value: Value = serde_json::from_slice(body)?;
    if !value.is_object() {
        return Err(BodyError::NotObject);
    }
    let mut entities = Vec::new();
    let mut blocked = Vec::new();
    let mut changed = false;
    visit(&mut value, &mut |kind, s: &mut String| {
        let new = transform(kind, s, &mut entities, &mut blocked);
        if new != *s {
            *s = new;
            changed = true;
        }
    });
    let body = if changed {
        Some(serde_json::to_vec(&value)?)
    } else {
        None
    };
    Ok(BodyRedaction {
        body,
        entities,
        verdict: verdict(blocked),
    })
}
