//! [`AdminError`]: why the admin router refused or failed a request, as a JSON response.
//!
//! Every refusal of the router is one of these: the caller's input (400), the guard (403), an
//! entry the caller cannot see (404), or the store (500/503). Only the last is the server's
//! fault, so nothing a client sends can produce a 500.

use audit_core::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use super::response::json_response;

/// Why the admin router refused or failed a request.
///
/// As a response, each variant is a JSON body `{"error": <code>, "message": <text>}`; a bad
/// parameter also names it in `"parameter"`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A query parameter or path segment is malformed or out of bounds: `400`,
    /// `"error": "invalid_parameter"`.
    #[error("invalid parameter `{parameter}`: {message}")]
    InvalidParameter {
        /// The parameter's name (`limit`, `from`, `cursor`, `id`, ...).
        parameter: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The guard denied access: `403`, `"error": "access_denied"`.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// No entry with this id exists within the caller's scope: `404`, `"error": "not_found"`.
    /// An entry of another tenant gets the same answer, so its existence does not leak.
    #[error("no audit entry {0} is visible to you")]
    NotFound(String),
    /// The store failed: `503` when it is unavailable, `500` otherwise. The body says only that
    /// the store failed; the details go to the server's log.
    #[error(transparent)]
    Store(StoreError),
}

impl AdminError {
    /// An [`InvalidParameter`](AdminError::InvalidParameter) error.
    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        AdminError::InvalidParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            AdminError::AccessDenied(_) => StatusCode::FORBIDDEN,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Store(StoreError::InvalidQuery { .. }) => StatusCode::BAD_REQUEST,
            AdminError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidQuery { parameter, message } => {
                AdminError::InvalidParameter { parameter, message }
            }
            other => AdminError::Store(other),
        }
    }
}

/// The body of every error response, and its schema in the OpenAPI document.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub(crate) struct ErrorBody {
    /// What kind of refusal or failure this is.
    pub error: ErrorCode,
    /// The query parameter or path segment at fault, for `invalid_parameter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub(crate) enum ErrorCode {
    InvalidParameter,
    AccessDenied,
    NotFound,
    StoreUnavailable,
    StoreError,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (error, parameter, message) = match self {
            AdminError::InvalidParameter { parameter, message } => {
                (ErrorCode::InvalidParameter, Some(parameter), message)
            }
            AdminError::AccessDenied(message) => (ErrorCode::AccessDenied, None, message),
            not_found @ AdminError::NotFound(_) => {
                (ErrorCode::NotFound, None, not_found.to_string())
            }
            AdminError::Store(error) => {
                tracing::error!(%error, "audit admin: the store failed");
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    (
                        ErrorCode::StoreUnavailable,
                        None,
                        "the audit store is unavailable; try again later".to_owned(),
                    )
                } else {
                    (
                        ErrorCode::StoreError,
                        None,
                        "the audit store failed; see the server log".to_owned(),
                    )
                }
            }
        };
        let body = ErrorBody {
            error,
            parameter,
            message,
        };
        json_response(status, &body)
    }
}
