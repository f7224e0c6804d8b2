//! The trace id of the current OpenTelemetry span (feature `opentelemetry`): what a request's
//! entry carries when the request came without a `traceparent` header, so that an entry is
//! linked to the trace the service itself started for the request.
//!
//! The span is the current `tracing` span (the one the layer's service is called in, such as
//! tower-http's `TraceLayer` span); its OpenTelemetry context comes from `tracing-opentelemetry`'s
//! layer in the subscriber. Without that layer, or outside any span, there is no trace id.

use audit_core::trace::TraceId;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace id of the current span's OpenTelemetry context, when it is a valid one.
pub(crate) fn current_trace_id() -> Option<TraceId> {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    TraceId::from_bytes(span_context.trace_id().to_bytes())
}
