//! Buffered delivery: responses do not wait for the sink, a full queue refuses requests before
//! their handler runs, failed batches are retried, and `flush` waits until everything is stored.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use audit_core::{Action, AuditEntry, AuditSink, MemoryStore, Outcome, SinkError};
use audit_tower::{AuditContext, AuditLayer, Buffered};
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Request, StatusCode};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// A sink that stores into a `MemoryStore` once the test lets it, and fails while asked to.
#[derive(Clone)]
struct GatedSink {
    inner: MemoryStore,
    gate: Arc<Semaphore>,
    failures_left: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl GatedSink {
    fn open() -> Self {
        GatedSink {
            inner: MemoryStore::new(),
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            failures_left: Arc::new(AtomicUsize::new(0)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn closed() -> Self {
        let sink = GatedSink::open();
        sink.gate.forget_permits(Semaphore::MAX_PERMITS);
        sink
    }
}

#[async_trait]
impl AuditSink for GatedSink {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.record_batch(vec![entry]).await
    }

    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _permit = self.gate.acquire().await.unwrap();
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(SinkError::Unavailable("database is down".into()));
        }
        self.inner.record_batch(entries).await
    }
}

fn app(layer: AuditLayer, handled: Arc<AtomicUsize>) -> Router {
    let counted = move |audit: AuditContext| {
        let handled = handled.clone();
        async move {
            handled.fetch_add(1, Ordering::SeqCst);
            audit.entity_name("Orders sync");
            StatusCode::CREATED
        }
    };
    Router::new()
        .route("/connection-profiles", post(counted))
        .route(
            "/connection-profiles/{id}/ping",
            post(|audit: AuditContext| async move {
                audit.skip();
                "pong"
            }),
        )
        .layer(layer)
}

async fn post_to(app: &Router, uri: &str) -> StatusCode {
    let request = Request::post(uri).body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn responses_return_before_the_sink_stores_and_flush_waits_for_it() {
    let sink = GatedSink::closed();
    let layer = AuditLayer::new(sink.clone()).buffered(Buffered::new(16).linger(Duration::ZERO));
    let app = app(layer.clone(), Arc::default());

    // The sink cannot store anything yet, and still the responses come back.
    for _ in 0..3 {
        assert_eq!(
            post_to(&app, "/connection-profiles").await,
            StatusCode::CREATED
        );
    }
    assert!(sink.inner.is_empty());
    let flushed = tokio::time::timeout(Duration::from_millis(200), layer.flush()).await;
    assert!(
        flushed.is_err(),
        "flush returned while entries were still unstored"
    );

    sink.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    tokio::time::timeout(Duration::from_secs(10), layer.flush())
        .await
        .unwrap();
    let entries = sink.inner.entries();
    assert_eq!(entries.len(), 3);
    for entry in &entries {
        assert_eq!(entry.action, Action::Create);
        assert_eq!(entry.entity_type.as_deref(), Some("ConnectionProfile"));
        assert_eq!(entry.entity_name.as_deref(), Some("Orders sync"));
        assert_eq!(entry.status, Some(201));
        assert_eq!(entry.outcome, Outcome::Success);
        assert_eq!(entry.route.as_deref(), Some("/connection-profiles"));
    }
}

#[tokio::test]
async fn a_full_queue_refuses_requests_before_the_handler_runs() {
    let sink = GatedSink::closed();
    let handled = Arc::new(AtomicUsize::new(0));
    let layer = AuditLayer::new(sink.clone()).buffered(Buffered::new(2).linger(Duration::ZERO));
    let app = app(layer.clone(), handled.clone());

    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    // Both slots are held by entries the sink has not stored.
    let refused = app
        .clone()
        .oneshot(
            Request::post("/connection-profiles")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(handled.load(Ordering::SeqCst), 2, "the refused handler ran");

    // Once the sink catches up, slots are free again and nothing was lost.
    sink.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    layer.flush().await;
    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    layer.flush().await;
    assert_eq!(sink.inner.len(), 3);
    assert_eq!(handled.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failing_sink_is_retried_until_it_stores_the_batch_once() {
    let sink = GatedSink::open();
    sink.failures_left.store(3, Ordering::SeqCst);
    let layer = AuditLayer::new(sink.clone()).buffered(
        Buffered::new(16)
            .linger(Duration::ZERO)
            .max_backoff(Duration::from_millis(5)),
    );
    let app = app(layer.clone(), Arc::default());

    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    tokio::time::timeout(Duration::from_secs(10), layer.flush())
        .await
        .unwrap();
    assert_eq!(sink.inner.len(), 1);
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        4,
        "three failures, then success"
    );
}

#[tokio::test]
async fn skipped_entries_give_their_slot_back() {
    let sink = GatedSink::open();
    let layer = AuditLayer::new(sink.clone()).buffered(Buffered::new(1).linger(Duration::ZERO));
    let app = app(layer.clone(), Arc::default());

    for _ in 0..5 {
        assert_eq!(
            post_to(&app, "/connection-profiles/p-1/ping").await,
            StatusCode::OK
        );
    }
    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    layer.flush().await;
    let entries = sink.inner.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, Action::Create);
}

#[tokio::test]
async fn batches_gather_while_the_writer_lingers() {
    let sink = GatedSink::open();
    let layer = AuditLayer::new(sink.clone()).buffered(
        Buffered::new(1_000)
            .max_batch(100)
            .linger(Duration::from_millis(200)),
    );
    let app = app(layer.clone(), Arc::default());

    for _ in 0..250 {
        assert_eq!(
            post_to(&app, "/connection-profiles").await,
            StatusCode::CREATED
        );
    }
    layer.flush().await;
    assert_eq!(sink.inner.len(), 250);
    // 250 entries in batches of at most 100: three or four calls, not 250.
    let calls = sink.calls.load(Ordering::SeqCst);
    assert!((3..=4).contains(&calls), "{calls} sink calls");
    let mut ids: Vec<_> = sink.inner.entries().iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250);
}

#[tokio::test]
async fn flush_returns_at_once_when_nothing_is_queued() {
    let layer = AuditLayer::new(MemoryStore::new()).buffered(Buffered::default());
    tokio::time::timeout(Duration::from_secs(1), layer.flush())
        .await
        .unwrap();
    let sync = AuditLayer::new(MemoryStore::new());
    tokio::time::timeout(Duration::from_secs(1), sync.flush())
        .await
        .unwrap();
}

#[test]
fn without_a_tokio_runtime_the_entry_is_written_before_the_response() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let sink = MemoryStore::new();
    let layer = AuditLayer::new(sink.clone()).buffered(Buffered::new(4));
    let app = Router::new()
        .route("/tenants", post(|| async { StatusCode::CREATED }))
        .layer(layer);
    let request = Request::post("/tenants").body(Body::empty()).unwrap();
    // Polled by hand, outside any runtime: the layer cannot start its writer, so it records the
    // entry itself, as in the synchronous mode, rather than queueing it for no one.
    let mut response = std::pin::pin!(app.oneshot(request));
    let mut cx = Context::from_waker(Waker::noop());
    let response = loop {
        if let Poll::Ready(response) = response.as_mut().poll(&mut cx) {
            break response.unwrap();
        }
    };
    assert_eq!(response.status(), StatusCode::CREATED);
    let entries = sink.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entity_type.as_deref(), Some("Tenant"));
}

#[tokio::test]
async fn a_request_dropped_before_its_response_is_recorded_as_a_failure() {
    let sink = MemoryStore::new();
    let layer = AuditLayer::new(sink.clone()).buffered(Buffered::new(1).linger(Duration::ZERO));
    let app = Router::new()
        .route("/tenants", post(|| async { StatusCode::CREATED }))
        .route(
            "/tenants/{id}/deactivate",
            post(std::future::pending::<StatusCode>),
        )
        .layer(layer.clone());

    // The client goes away while the handler is still running: the attempt is recorded, and its
    // slot comes back once that entry is stored.
    let hanging = app.clone().oneshot(
        Request::post("/tenants/t-1/deactivate")
            .body(Body::empty())
            .unwrap(),
    );
    let timed_out = tokio::time::timeout(Duration::from_millis(50), hanging).await;
    assert!(timed_out.is_err());

    layer.flush().await;
    assert_eq!(post_to(&app, "/tenants").await, StatusCode::CREATED);
    layer.flush().await;
    let entries = sink.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].action, Action::Deactivate);
    assert_eq!(entries[0].entity_id.as_deref(), Some("t-1"));
    assert_eq!(entries[0].outcome, Outcome::Failure);
    assert_eq!(entries[0].status, None);
    assert_eq!(entries[1].action, Action::Create);
    assert_eq!(entries[1].outcome, Outcome::Success);
}

#[tokio::test]
async fn a_request_dropped_before_its_response_is_recorded_in_the_sync_mode_too() {
    let sink = MemoryStore::new();
    let app = Router::new()
        .route(
            "/tenants/{id}/deactivate",
            post(std::future::pending::<StatusCode>),
        )
        .layer(AuditLayer::new(sink.clone()));
    let hanging = app.clone().oneshot(
        Request::post("/tenants/t-2/deactivate")
            .body(Body::empty())
            .unwrap(),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(50), hanging)
            .await
            .is_err()
    );
    // The write was spawned; give it a moment on this runtime.
    for _ in 0..100 {
        if !sink.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let entries = sink.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entity_id.as_deref(), Some("t-2"));
    assert_eq!(entries[0].outcome, Outcome::Failure);
    assert_eq!(entries[0].status, None);
}

#[test]
fn entries_queued_on_a_runtime_that_stopped_are_stored_by_the_next_flush() {
    let sink = GatedSink::closed();
    let layer = AuditLayer::new(sink.clone()).buffered(Buffered::new(16).linger(Duration::ZERO));
    let app = app(layer.clone(), Arc::default());

    // A first runtime serves two requests and shuts down before its writer ever ran.
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        assert_eq!(
            post_to(&app, "/connection-profiles").await,
            StatusCode::CREATED
        );
        assert_eq!(
            post_to(&app, "/connection-profiles").await,
            StatusCode::CREATED
        );
    });
    drop(first);
    assert!(sink.inner.is_empty());

    // On another runtime, `flush` starts a writer and stores what the first one left queued.
    sink.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), layer.flush())
            .await
            .unwrap();
    });
    assert_eq!(sink.inner.len(), 2);
}
