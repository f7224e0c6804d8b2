//! The `opentelemetry` feature: a request without a `traceparent` header takes the trace id of
//! the current span's OpenTelemetry context. Runs with
//! `cargo test -p audit-tower --features opentelemetry --test opentelemetry`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use audit_core::{AuditEntry, MemoryStore};
use audit_tower::AuditLayer;
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Request, StatusCode};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower::ServiceExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn app(sink: &MemoryStore) -> Router {
    Router::new()
        .route("/tenants", post(|| async { "created" }))
        .layer(AuditLayer::new(sink.clone()))
}

/// Sends `req` (inside `span`, if any) and returns the one entry it left in `sink`.
async fn send(sink: &MemoryStore, req: Request<Body>, span: Option<tracing::Span>) -> AuditEntry {
    let call = app(sink).oneshot(req);
    let response = match span {
        Some(span) => call.instrument(span).await,
        None => call.await,
    }
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut entries = sink.take();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    entries.pop().unwrap()
}

fn post_tenants() -> http::request::Builder {
    Request::post("/tenants")
}

#[tokio::test]
async fn a_request_inside_a_span_carries_the_spans_trace_id() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("audit-test")));
    let _default = tracing::subscriber::set_default(subscriber);
    let sink = MemoryStore::new();

    // Inside a span: the span's trace id.
    let span = tracing::info_span!("request");
    let expected = span.context().span().span_context().trace_id().to_string();
    assert_eq!(expected.len(), 32);
    let entry = send(
        &sink,
        post_tenants().body(Body::empty()).unwrap(),
        Some(span),
    )
    .await;
    assert_eq!(entry.trace_id.as_deref(), Some(expected.as_str()));

    // A traceparent header wins over the span.
    let span = tracing::info_span!("request");
    let req = post_tenants()
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .body(Body::empty())
        .unwrap();
    let entry = send(&sink, req, Some(span)).await;
    assert_eq!(entry.trace_id.as_deref(), Some(TRACE));

    // A malformed header gives none, span or not.
    let span = tracing::info_span!("request");
    let req = post_tenants()
        .header(
            "traceparent",
            format!("00-{}-00f067aa0ba902b7-01", &TRACE[1..]),
        )
        .body(Body::empty())
        .unwrap();
    let entry = send(&sink, req, Some(span)).await;
    assert_eq!(entry.trace_id, None);

    // Outside any span: none.
    let entry = send(&sink, post_tenants().body(Body::empty()).unwrap(), None).await;
    assert_eq!(entry.trace_id, None);
    provider.shutdown().unwrap();
}

#[tokio::test]
async fn without_an_opentelemetry_layer_a_span_gives_no_trace_id() {
    let subscriber = tracing_subscriber::registry();
    let _default = tracing::subscriber::set_default(subscriber);
    let sink = MemoryStore::new();
    let span = tracing::info_span!("request");
    let entry = send(
        &sink,
        post_tenants().body(Body::empty()).unwrap(),
        Some(span),
    )
    .await;
    assert_eq!(entry.trace_id, None);
}
