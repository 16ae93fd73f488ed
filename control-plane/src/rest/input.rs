//! Reading request bodies strictly: one JSON object, every field known and of its type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::RestError;
use crate::limits::LimitsInput;

/// Admin bodies are small JSON objects; anything bigger is a mistake or an attack.
pub(super) const MAX_BODY_BYTES: usize = 1 << 20;

/// A request's JSON object, read field by field. Whatever no handler took is a field
/// Modelgate does not implement, and [`Body::finish`] refuses it rather than drop it, so a
/// migrated script never believes it set something it did not.
pub(super) struct Body(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = RestError;

    async fn from_request(request: Request, state: &S) -> Result<Self, RestError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| RestError::unreadable_body(e.status(), &e.body_text()))?;
        Self::parse(&bytes)
    }
}

impl Body {
    /// A JSON object nested in a body (a list entry), read as strictly as a body.
    pub(super) fn of(fields: Map<String, Value>) -> Self {
        Self(fields)
    }

    fn parse(bytes: &[u8]) -> Result<Self, RestError> {
        let not_object = || RestError::bad_request("the request body must be a JSON object");
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(not_object());
        }
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(fields)) => Ok(Self(fields)),
            Ok(_) => Err(not_object()),
            Err(e) => Err(RestError::bad_request(format!("invalid request body: {e}"))),
        }
    }

    /// A field's value; absent and `null` are both `None`.
    pub(super) fn take<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
    ) -> Result<Option<T>, RestError> {
        Ok(self.change(name)?.flatten())
    }

    /// Tells "absent" (`None`) from `null` (`Some(None)`), for updates.
    pub(super) fn change<T: DeserializeOwned>(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Option<T>>, RestError> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => serde_json::from_value(v)
                .map(|v| Some(Some(v)))
                .map_err(|e| RestError::invalid(name, format!("{name} is invalid: {e}"))),
        }
    }

    /// A field that must be a non-empty string.
    pub(super) fn required(&mut self, name: &'static str) -> Result<String, RestError> {
        required(self.take(name)?, name)
    }

    /// Refuses the first field no handler took.
    pub(super) fn finish(self) -> Result<(), RestError> {
        match self.0.keys().next() {
            Some(name) => Err(RestError::unknown_field(name)),
            None => Ok(()),
        }
    }
}

pub(super) fn required(value: Option<String>, param: &'static str) -> Result<String, RestError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(RestError::missing(param))
}

/// JSON given as an object, or as a string holding one.
pub(super) fn json_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// `metadata` with LiteLLM's `tags` folded in: LiteLLM keeps a key's or team's tags in its
/// metadata (`metadata.tags`), so they are stored there rather than refused.
pub(super) fn metadata_with_tags(
    metadata: Option<Value>,
    tags: Option<Vec<String>>,
) -> Result<Option<String>, RestError> {
    let Some(tags) = tags else {
        return Ok(metadata.map(json_text));
    };
    let object = match metadata {
        None => Some(Map::new()),
        Some(Value::Object(m)) => Some(m),
        Some(Value::String(s)) => serde_json::from_str(&s).ok(),
        Some(_) => None,
    };
    let mut object = object.ok_or_else(|| {
        RestError::invalid("metadata", "metadata is invalid: expected a JSON object")
    })?;
    object.insert("tags".into(), Value::from(tags));
    Ok(Some(Value::Object(object).to_string()))
}

/// LiteLLM's limit fields, shared by keys, teams and users, with the `budget_id` of a budget
/// object whose limits the scope takes on (`null` detaches it).
pub(super) struct LimitFields {
    budget_id: Option<Option<String>>,
    rpm_limit: Option<Option<u64>>,
    tpm_limit: Option<Option<u64>>,
    max_parallel_requests: Option<Option<u32>>,
    max_budget: Option<Option<f64>>,
    budget_duration: Option<Option<String>>,
    budget_reset: Option<String>,
}

impl LimitFields {
    pub(super) fn take(body: &mut Body) -> Result<Self, RestError> {
        Ok(Self {
            budget_id: body.change("budget_id")?,
            rpm_limit: body.change("rpm_limit")?,
            tpm_limit: body.change("tpm_limit")?,
            max_parallel_requests: body.change("max_parallel_requests")?,
            max_budget: body.change("max_budget")?,
            budget_duration: body.change("budget_duration")?,
            budget_reset: body.take("budget_reset")?,
        })
    }

    pub(super) fn input(&self) -> LimitsInput {
        LimitsInput {
            rpm: self.rpm_limit.flatten(),
            tpm: self.tpm_limit.flatten(),
            max_parallel: self.max_parallel_requests.flatten(),
            max_budget: self.max_budget.flatten(),
            budget_duration: self.budget_duration.clone().flatten(),
            budget_reset: self.budget_reset.clone(),
        }
    }

    /// The `budget_id` given: `None` leaves the scope's budget object, `Some(None)` detaches
    /// it (see [`crate::admin::Admin::with_budget`]).
    pub(super) fn budget_change(&self) -> Option<Option<&str>> {
        self.budget_id.as_ref().map(Option::as_deref)
    }

    /// The limits set to `null`, by the names the admin service clears.
    pub(super) fn nulls(&self) -> Vec<String> {
        [
            ("rpm_limit", self.rpm_limit.is_some_and(|v| v.is_none())),
            ("tpm_limit", self.tpm_limit.is_some_and(|v| v.is_none())),
            (
                "max_parallel_requests",
                self.max_parallel_requests.is_some_and(|v| v.is_none()),
            ),
            ("max_budget", self.max_budget.is_some_and(|v| v.is_none())),
            (
                "budget_duration",
                self.budget_duration.as_ref().is_some_and(Option::is_none),
            ),
        ]
        .into_iter()
        .filter(|(_, null)| *null)
        .map(|(name, _)| name.to_owned())
        .collect()
    }
}
