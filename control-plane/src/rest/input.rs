//! Reading request bodies: JSON objects, absent vs `null`, required fields, limits.

use axum::body::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::RestError;
use crate::limits::LimitsInput;

/// The request body as `T`, with serde's message (it names the field) on failure.
pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| RestError::bad_request(format!("invalid request body: {e}")))
}

/// Tells "absent" (`None`) from `null` (`Some(None)`) in updates.
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LimitFields {
    #[serde(deserialize_with = "present")]
    rpm_limit: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    tpm_limit: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    max_parallel_requests: Option<Option<u32>>,
    #[serde(deserialize_with = "present")]
    max_budget: Option<Option<f64>>,
    #[serde(deserialize_with = "present")]
    budget_duration: Option<Option<String>>,
    budget_reset: Option<String>,
}

impl LimitFields {
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
