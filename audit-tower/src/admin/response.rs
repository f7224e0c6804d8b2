//! Small response helpers shared by the admin endpoints.

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

/// Headers every admin response carries: the log is sensitive, so nothing is cached, and no
/// browser guesses another content type.
pub(crate) fn common_headers(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// `body` as JSON with `status`.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(error) => {
            // Entries and error bodies are plain data; this is a bug, not a client's doing.
            tracing::error!(%error, "audit admin: could not serialise a response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"error":"internal","message":"could not serialise the response"}"#.to_vec(),
            )
        }
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    common_headers(headers);
    response
}
