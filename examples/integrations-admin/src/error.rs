//! The service's errors and their JSON bodies: `{"error": code, "message": text}`, for every
//! error the service answers (see [`json_errors`] for those its handlers do not make).

use audit_tower::FailureReason;
use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
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
        let message = self.to_string();
        let mut response =
            (status, Json(json!({"error": code, "message": message}))).into_response();
        // The audit layer writes the reason into the entry's `details`.
        response
            .extensions_mut()
            .insert(FailureReason::new(code, message));
        response
    }
}

/// Whether `response` already has a JSON body (the service's own errors, the admin router's).
fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().ends_with("json"))
}

/// The most of a rejection's text that is kept as its message; axum's are a line or two.
const MAX_REJECTION_TEXT: usize = 4 * 1024;

/// Middleware giving every error the service answers its one shape, `{"error": code,
/// "message": text}` as `application/json`: the handlers' [`ApiError`]s have it already; axum's
/// rejections (a body that is not JSON, `415` without a JSON content type, `422` for JSON of
/// the wrong shape, `413` past the body limit, a path segment that is not text), the router's
/// `404` and `405` and the audit layer's `503` get it here. The status and the other headers
/// (`Allow`, `Retry-After`) are kept; a `5xx`'s text is not passed on. The code and message
/// also go into the response's [`FailureReason`], for the audit entry's `details`; the router
/// runs this inside the audit layer as well as outside it, so the layer sees them.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let given = |fallback: String| {
        if text.is_empty() {
            fallback
        } else {
            text.clone()
        }
    };
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("invalid", given("the request is malformed".into())),
        StatusCode::UNAUTHORIZED => ("unauthorized", ApiError::Unauthorized.to_string()),
        StatusCode::FORBIDDEN => ("forbidden", given("not allowed".into())),
        StatusCode::NOT_FOUND => ("not_found", format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!(
                "{method} is not allowed on {path}; the Allow header lists the methods that are"
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("the body is larger than the {MAX_BODY_BYTES} bytes a request may send"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            given("send the body as JSON, with `Content-Type: application/json`".into()),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "invalid",
            given("the JSON body does not have the fields this route takes".into()),
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the service cannot take this request now; retry shortly".to_owned(),
        ),
        status if status.is_server_error() => ("internal", "internal error".to_owned()),
        status => (
            "error",
            given(status.canonical_reason().unwrap_or("error").to_owned()),
        ),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = json!({"error": code, "message": message}).to_string();
    parts.extensions.insert(FailureReason::new(code, message));
    Response::from_parts(parts, Body::from(body))
}

/// The largest request body the service reads (a mapping is at most 64 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
