//! `AuditContext::detached`: a handler that extracts an `AuditContext` runs outside the audit
//! layer, and nothing it says is recorded.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use audit_core::AuditEntry;
use audit_tower::AuditContext;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware;
use axum::routing::post;
use http::StatusCode;
use serde_json::json;
use tower::ServiceExt;

/// A handler as an application writes it: names the object, records its changes, and stores
/// its entry in its own transaction.
async fn create(State(writes): State<Arc<AtomicUsize>>, audit: AuditContext) -> StatusCode {
    audit
        .entity_id("k-1")
        .entity_name("CI deploy key")
        .details("created")
        .metadata("source", "test")
        .created(&json!({"name": "CI deploy key", "password": "secret"}));
    let stored = audit
        .record_with(|_entry: AuditEntry| async move {
            writes.fetch_add(1, Ordering::SeqCst);
            Ok::<(), std::io::Error>(())
        })
        .await;
    assert!(stored.is_ok());
    assert!(audit.claim().is_none(), "a detached context has no entry");
    StatusCode::CREATED
}

fn app(writes: Arc<AtomicUsize>, detached: bool) -> Router {
    let routes = Router::new()
        .route("/api-keys", post(create))
        .with_state(writes);
    if !detached {
        return routes;
    }
    routes.layer(middleware::map_request(|mut req: Request| async move {
        req.extensions_mut().insert(AuditContext::detached());
        req
    }))
}

fn post_request() -> Request {
    Request::builder()
        .method("POST")
        .uri("/api-keys")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_handler_runs_with_a_detached_context_and_nothing_is_stored() {
    let writes = Arc::new(AtomicUsize::new(0));
    let response = app(writes.clone(), true)
        .oneshot(post_request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "record_with stores nothing"
    );
}

#[tokio::test]
async fn without_a_context_the_extractor_still_refuses() {
    let writes = Arc::new(AtomicUsize::new(0));
    let response = app(writes, false).oneshot(post_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn a_detached_context_has_no_entry_to_claim_even_after_edits() {
    let audit = AuditContext::detached();
    audit
        .entity_name("CRM")
        .changes(&json!({"a": 1}), &json!({"a": 2}));
    assert!(audit.claim().is_none());
    // Clones share the same (empty) draft; a new detached context is a draft of its own.
    assert!(audit.clone().claim().is_none());
    assert!(AuditContext::detached().claim().is_none());
}
