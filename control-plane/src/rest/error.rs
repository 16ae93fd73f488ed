//! REST errors in LiteLLM's shape, and how admin failures map onto HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::admin::AdminError;
use crate::store::StoreError;

/// An error as LiteLLM shapes it.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// The request field at fault.
    param: Option<String>,
}

impl RestError {
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
        }
    }

    pub(super) fn missing(param: &'static str) -> Self {
        Self::invalid(param, format!("{param} is required"))
    }

    /// A 400 about one field.
    pub(super) fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::bad_request(message)
        }
    }

    pub(super) fn unknown_field(name: &str) -> Self {
        Self::invalid(
            name,
            format!("unknown field {name:?}: Modelgate does not implement it, so the request was refused and nothing changed"),
        )
    }

    /// A body that could not be read: too large (413) or cut off.
    pub(super) fn unreadable_body(status: StatusCode, reason: &str) -> Self {
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "the request body is larger than {} bytes",
                super::input::MAX_BODY_BYTES
            )
        } else {
            format!("the request body could not be read: {reason}")
        };
        Self {
            status,
            ..Self::bad_request(message)
        }
    }
}

impl From<AdminError> for RestError {
    fn from(e: AdminError) -> Self {
        let (status, kind) = match &e {
            AdminError::Invalid(_)
            | AdminError::AdminKey(_)
            | AdminError::Store(StoreError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request_error")
            }
            AdminError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "auth_error"),
            AdminError::Denied(_) => (StatusCode::FORBIDDEN, "permission_error"),
            AdminError::Store(
                StoreError::TeamNotFound(_)
                | StoreError::KeyNotFound(_)
                | StoreError::UserNotFound(_)
                | StoreError::ModelNotFound(_)
                | StoreError::AdminKeyNotFound(_)
                | StoreError::IdentityProviderNotFound(_)
                | StoreError::BudgetNotFound(_),
            ) => (StatusCode::NOT_FOUND, "not_found_error"),
            AdminError::Store(
                StoreError::TeamAliasTaken(_)
                | StoreError::TeamIdTaken(_)
                | StoreError::UserExists(_)
                | StoreError::ModelExists(_)
                | StoreError::IdentityProviderExists(_)
                | StoreError::BudgetExists(_)
                | StoreError::BudgetInUse { .. }
                | StoreError::KeyRevoked(_),
            ) => (StatusCode::CONFLICT, "conflict_error"),
            AdminError::Store(StoreError::KeyIdTaken) => {
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            }
            AdminError::Store(s) if s.is_transient() => {
                tracing::warn!(error = %s, "store unavailable");
                return Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    kind: "service_unavailable",
                    message: "the database is unavailable, retry later".into(),
                    param: None,
                };
            }
            AdminError::Store(_) | AdminError::Random(_) | AdminError::CorruptRecord(_) => {
                tracing::error!(error = %e, "admin request failed");
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    kind: "internal_error",
                    message: "internal error (see the control plane's log)".into(),
                    param: None,
                };
            }
        };
        let param = match &e {
            AdminError::Invalid(v) | AdminError::Store(StoreError::Invalid(v)) => v.param(),
            _ => None,
        };
        Self {
            status,
            kind,
            message: e.to_string(),
            param: param.map(str::to_owned),
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.status.as_u16().to_string(),
        }});
        (self.status, Json(body)).into_response()
    }
}
