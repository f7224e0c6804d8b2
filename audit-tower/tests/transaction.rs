//! `TransactionLayer`: a transaction per request, committed with the request's entry on
//! success, rolled back otherwise; a failed commit is a 503 whose attempt is still recorded.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use audit_core::{AuditEntry, AuditSink, MemoryStore, Outcome, SinkError, Transactions};
use audit_tower::{AuditContext, AuditLayer, Transaction, TransactionLayer};
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::{post, put};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A database whose transactions are lists of changes, applied at commit.
#[derive(Clone, Default)]
struct FakeDb {
    applied: Arc<Mutex<Vec<String>>>,
    /// The entries committed with the changes.
    entries: MemoryStore,
    fail_commits: Arc<AtomicBool>,
    rolled_back: Arc<AtomicUsize>,
}

#[derive(Default)]
struct FakeTxn {
    changes: Mutex<Vec<String>>,
}

#[async_trait]
impl Transactions for FakeDb {
    type Transaction = FakeTxn;

    async fn begin(&self) -> Result<FakeTxn, SinkError> {
        Ok(FakeTxn::default())
    }

    async fn commit(&self, txn: FakeTxn, entry: Option<&AuditEntry>) -> Result<(), SinkError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable("serialization failure".into()));
        }
        self.applied
            .lock()
            .unwrap()
            .extend(txn.changes.into_inner().unwrap());
        if let Some(entry) = entry {
            self.entries.record(entry.clone()).await?;
        }
        Ok(())
    }

    async fn rollback(&self, _: FakeTxn) -> Result<(), SinkError> {
        self.rolled_back.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Renames a widget in the request's transaction; `x-status` picks the answer.
async fn rename(
    txn: Transaction<FakeTxn>,
    audit: AuditContext,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    txn.changes.lock().unwrap().push(format!("rename {id}"));
    audit.entity_name(format!("widget {id}"));
    headers
        .get("x-status")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(StatusCode::OK)
}

fn app(db: &FakeDb, layer_sink: &MemoryStore) -> Router {
    Router::new()
        .route("/widgets/{id}", put(rename))
        .route("/widgets/{id}/ping", post(|| async { "pong" }))
        .layer(TransactionLayer::new(db.clone()))
        .layer(AuditLayer::new(layer_sink.clone()))
}

async fn send(app: &Router, method: &str, uri: &str, status: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(status) = status {
        request = request.header("x-status", status);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_success_commits_the_change_with_its_entry() {
    let (db, layer_sink) = (FakeDb::default(), MemoryStore::new());
    let app = app(&db, &layer_sink);
    assert_eq!(
        send(&app, "PUT", "/widgets/w1", None).await.0,
        StatusCode::OK
    );
    assert_eq!(*db.applied.lock().unwrap(), ["rename w1"]);
    let entries = db.entries.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entity_id.as_deref(), Some("w1"));
    assert_eq!(entries[0].entity_name.as_deref(), Some("widget w1"));
    assert_eq!(entries[0].status, Some(200));
    assert_eq!(entries[0].outcome, Outcome::Success);
    // The entry went with the transaction; the layer wrote nothing more.
    assert!(layer_sink.is_empty());
}

#[tokio::test]
async fn an_error_response_rolls_back_and_the_layer_records_the_attempt() {
    let (db, layer_sink) = (FakeDb::default(), MemoryStore::new());
    let app = app(&db, &layer_sink);
    let (status, _) = send(&app, "PUT", "/widgets/w2", Some("409")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(db.applied.lock().unwrap().is_empty());
    assert_eq!(db.rolled_back.load(Ordering::SeqCst), 1);
    assert!(db.entries.is_empty());
    let entries = layer_sink.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, Some(409));
    assert_eq!(entries[0].outcome, Outcome::Failure);
    assert_eq!(entries[0].entity_name.as_deref(), Some("widget w2"));
}

#[tokio::test]
async fn a_failed_commit_is_a_503_and_the_attempt_is_recorded() {
    let (db, layer_sink) = (FakeDb::default(), MemoryStore::new());
    db.fail_commits.store(true, Ordering::SeqCst);
    let app = app(&db, &layer_sink);
    let (status, _) = send(&app, "PUT", "/widgets/w3", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(db.applied.lock().unwrap().is_empty());
    assert!(db.entries.is_empty());
    let entries = layer_sink.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, Some(503));
    assert_eq!(entries[0].outcome, Outcome::Failure);
    assert_eq!(entries[0].entity_id.as_deref(), Some("w3"));
}

#[tokio::test]
async fn a_handler_without_a_transaction_passes_through() {
    let (db, layer_sink) = (FakeDb::default(), MemoryStore::new());
    let app = app(&db, &layer_sink);
    assert_eq!(
        send(&app, "POST", "/widgets/w4/ping", None).await,
        (StatusCode::OK, "pong".to_owned())
    );
    assert_eq!(db.rolled_back.load(Ordering::SeqCst), 0);
    assert!(db.entries.is_empty());
    assert_eq!(layer_sink.len(), 1);
}

#[tokio::test]
async fn without_the_layer_the_extractor_says_what_is_missing() {
    let layer_sink = MemoryStore::new();
    let app = Router::new()
        .route("/widgets/{id}", put(rename))
        .layer(AuditLayer::new(layer_sink.clone()));
    let (status, body) = send(&app, "PUT", "/widgets/w5", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("TransactionLayer"), "{body}");
}
