//! The service's errors and their JSON bodies: `{"error": code, "message": text}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid credentials.
    #[error(
        "sign in with POST /login and send `Authorization: Bearer <token>`, or send an `x-api-key`"
    )]
    Unauthorized,
    /// Wrong email or password.
    #[error("wrong email or password")]
    BadLogin,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such object in the caller's tenant.
    #[error("no {0} with that id")]
    NotFound(&'static str),
    /// The request body is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The audit entry could not be written with the change, so the change was not made.
    #[error("the audit log is unavailable, so the change was not made")]
    Audit(#[from] audit_core::store::StoreError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadLogin => (StatusCode::UNAUTHORIZED, "bad_login"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ApiError::Audit(error) => {
                tracing::error!(%error, "audit store error");
                (StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable")
            }
            ApiError::Database(error) => {
                tracing::error!(%error, "database error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (
            status,
            Json(json!({"error": code, "message": self.to_string()})),
        )
            .into_response()
    }
}
