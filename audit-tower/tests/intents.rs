//! Intents: for a route whose rule asks for one, the entry is stored as an intent (outcome
//! `unknown`) before the handler runs and cleared once the final entry is stored; a request
//! whose intent cannot be stored is refused before its handler runs; intents left behind are
//! recovered as entries.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use audit_core::{Action, AuditEntry, IntentStore, MemoryStore, Outcome, SinkError};
use audit_tower::{AuditLayer, Buffered, RouteRule};
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Method, Request, StatusCode};
use tower::ServiceExt;
use uuid::Uuid;

/// Refunds happen elsewhere: the handler notes what the intent store held while it ran.
fn app(
    layer: AuditLayer,
    store: MemoryStore,
    seen: Arc<std::sync::Mutex<Vec<AuditEntry>>>,
) -> Router {
    let refund = move || {
        let (store, seen) = (store.clone(), seen.clone());
        async move {
            seen.lock().unwrap().extend(store.intents());
            "refunded"
        }
    };
    Router::new()
        .route("/payments/{id}/refund", post(refund))
        .route("/payments/{id}/note", post(|| async { "noted" }))
        .layer(
            layer.rule(
                RouteRule::new(Method::POST, "/payments/{id}/refund")
                    .action(Action::Custom("Refund".into()))
                    .entity_type("Payment")
                    .entity_id_param("id")
                    .intent(),
            ),
        )
}

async fn post_to(app: &Router, uri: &str) -> StatusCode {
    let request = Request::post(uri)
        .header("x-request-id", "req-7")
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn the_intent_is_stored_before_the_handler_and_cleared_after() {
    let store = MemoryStore::new();
    let seen = Arc::default();
    let layer = AuditLayer::new(store.clone()).intents(store.clone());
    let app = app(layer, store.clone(), Arc::clone(&seen));

    assert_eq!(post_to(&app, "/payments/p-1/refund").await, StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the handler ran after its intent was stored");
    assert_eq!(seen[0].outcome, Outcome::Unknown);
    assert_eq!(seen[0].status, None);
    assert_eq!(seen[0].entity_id.as_deref(), Some("p-1"));
    assert_eq!(seen[0].request_id.as_deref(), Some("req-7"));
    assert_eq!(seen[0].action, Action::Custom("Refund".into()));
    // The final entry has the intent's id, and the intent is gone.
    let entries = store.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, seen[0].id);
    assert_eq!(entries[0].outcome, Outcome::Success);
    assert_eq!(entries[0].status, Some(200));
    assert!(store.intents().is_empty());

    // A route without the rule writes no intent.
    assert_eq!(post_to(&app, "/payments/p-1/note").await, StatusCode::OK);
    assert_eq!(store.entries().len(), 2);
    assert!(store.intents().is_empty());
}

#[tokio::test]
async fn buffered_the_intent_is_cleared_once_the_writer_stores_the_entry() {
    let store = MemoryStore::new();
    let layer = AuditLayer::new(store.clone())
        .buffered(Buffered::new(16).linger(Duration::ZERO))
        .intents(store.clone());
    let app = app(layer.clone(), store.clone(), Arc::default());
    assert_eq!(post_to(&app, "/payments/p-2/refund").await, StatusCode::OK);
    layer.flush().await;
    assert_eq!(store.entries().len(), 1);
    assert!(store.intents().is_empty());
}

/// An intent store that is down.
#[derive(Clone, Default)]
struct DownIntents {
    attempts: Arc<AtomicUsize>,
}

#[async_trait]
impl IntentStore for DownIntents {
    async fn record_intents(&self, _: &[AuditEntry]) -> Result<(), SinkError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err(SinkError::Unavailable("connection refused".into()))
    }
    async fn clear_intents(&self, _: &[Uuid]) -> Result<(), SinkError> {
        Ok(())
    }
    async fn recover_intents(&self, _: Duration) -> Result<u64, SinkError> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_request_whose_intent_cannot_be_stored_is_refused_before_its_handler() {
    let store = MemoryStore::new();
    let down = DownIntents::default();
    let seen = Arc::default();
    let layer = AuditLayer::new(store.clone()).intents(down.clone());
    let app = app(layer.clone(), store.clone(), Arc::clone(&seen));
    assert_eq!(
        post_to(&app, "/payments/p-3/refund").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(down.attempts.load(Ordering::SeqCst), 3, "tried three times");
    assert!(seen.lock().unwrap().is_empty(), "the handler ran");
    assert!(store.is_empty(), "a refused request is not an action");
    // Its queue slot came back, and the refusal is counted with the queue's.
    let stats = layer.stats();
    assert_eq!((stats.held, stats.refused), (0, 1));
}

#[tokio::test]
async fn intents_left_behind_are_recovered_as_entries_of_unknown_outcome() {
    let store = MemoryStore::new();
    let left = AuditEntry::builder(Action::Custom("Refund".into()))
        .entity("Payment", "p-4")
        .outcome(Outcome::Unknown)
        .build();
    let finished = AuditEntry::builder(Action::Custom("Refund".into()))
        .entity("Payment", "p-5")
        .outcome(Outcome::Unknown)
        .build();
    store
        .record_intents(&[left.clone(), finished.clone()])
        .await
        .unwrap();
    // The second one's final entry was stored before the process died.
    let mut final_entry = finished.clone();
    final_entry.outcome = Outcome::Success;
    audit_core::AuditSink::record(&store, final_entry)
        .await
        .unwrap();

    // Too young to recover yet.
    assert_eq!(
        store
            .recover_intents(Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.recover_intents(Duration::ZERO).await.unwrap(), 2);
    assert!(store.intents().is_empty());
    let mut entries = store.entries();
    entries.sort_by_key(|e| e.entity_id.clone());
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].id, entries[0].outcome),
        (left.id, Outcome::Unknown)
    );
    assert_eq!(
        (entries[1].id, entries[1].outcome),
        (finished.id, Outcome::Success)
    );
}
