//! [`AuditContext`] as an axum extractor, and its rejection, [`MissingAuditContext`].

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::context::AuditContext;

/// The rejection when [`AuditContext`] is extracted on a route without
/// [`AuditLayer`](crate::AuditLayer), or on a request the layer does not record.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "AuditContext is missing: add `.layer(AuditLayer::new(sink))` to this router, and extract \
     `Option<AuditContext>` in handlers that also serve GET, HEAD or OPTIONS"
)]
pub struct MissingAuditContext;

impl IntoResponse for MissingAuditContext {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditContext {
    type Rejection = MissingAuditContext;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = parts
            .extensions
            .get::<AuditContext>()
            .cloned()
            .ok_or(MissingAuditContext)?;
        context.learn_caller(&parts.extensions);
        Ok(context)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AuditContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let context = parts.extensions.get::<AuditContext>().cloned();
        if let Some(context) = &context {
            context.learn_caller(&parts.extensions);
        }
        Ok(context)
    }
}
