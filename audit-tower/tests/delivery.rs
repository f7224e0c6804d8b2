//! Delivery. Buffered: responses do not wait for the sink, a full queue refuses requests before
//! their handler runs, failed batches are retried, and `flush` waits until everything is stored.
//! Synchronous: responses wait for their entry, concurrent requests share one write, and a sink
//! that keeps failing gets the entry handed to the writer, counted, instead of dropped.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use audit_core::{Action, AuditEntry, AuditSink, MemoryStore, Outcome, SinkError};
use audit_tower::{AuditContext, AuditLayer, Buffered, Synchronous};
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
    /// The size of every batch it was handed, in order.
    batches: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl GatedSink {
    fn open() -> Self {
        GatedSink {
            inner: MemoryStore::new(),
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            failures_left: Arc::new(AtomicUsize::new(0)),
            calls: Arc::new(AtomicUsize::new(0)),
            batches: Arc::default(),
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
        self.batches.lock().unwrap().push(entries.len());
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

/// Waits until `layer` has `queued` entries queued (pushed and not yet stored).
async fn until_queued(layer: &AuditLayer, queued: usize) {
    for _ in 0..1_000 {
        if layer.stats().queued == queued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never {queued} queued: {:?}", layer.stats());
}

#[tokio::test]
async fn a_synchronous_response_waits_until_its_entry_is_stored() {
    let sink = GatedSink::closed();
    let layer = AuditLayer::new(sink.clone());
    let app = app(layer.clone(), Arc::default());

    let response = tokio::spawn({
        let app = app.clone();
        async move { post_to(&app, "/connection-profiles").await }
    });
    until_queued(&layer, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !response.is_finished(),
        "answered before the entry was stored"
    );
    assert!(sink.inner.is_empty());

    sink.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    assert_eq!(response.await.unwrap(), StatusCode::CREATED);
    // Stored by the time the response came back.
    assert_eq!(sink.inner.len(), 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.mode, stats.queued, stats.held),
        ("synchronous", 0, 0)
    );
    assert_eq!((stats.written, stats.handed_off), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_synchronous_requests_share_one_write() {
    let sink = GatedSink::closed();
    let layer = AuditLayer::new(sink.clone());
    let app = app(layer.clone(), Arc::default());

    // The first entry is being written (the sink holds it at its gate) while 19 more finish:
    // they wait together for the next write.
    let mut responses = Vec::new();
    responses.push(tokio::spawn({
        let app = app.clone();
        async move { post_to(&app, "/connection-profiles").await }
    }));
    until_queued(&layer, 1).await;
    for _ in 0..19 {
        let app = app.clone();
        responses.push(tokio::spawn(async move {
            post_to(&app, "/connection-profiles").await
        }));
    }
    until_queued(&layer, 20).await;
    sink.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    for response in responses {
        assert_eq!(response.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(sink.inner.len(), 20);
    assert_eq!(*sink.batches.lock().unwrap(), [1, 19]);
}

#[tokio::test]
async fn a_failing_sink_gets_the_entry_handed_to_the_writer_not_dropped() {
    let sink = GatedSink::open();
    sink.failures_left.store(usize::MAX, Ordering::SeqCst);
    let layer = AuditLayer::new(sink.clone()).synchronous(
        Synchronous::default()
            .wait(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(10)),
    );
    let app = app(layer.clone(), Arc::default());

    // The response waits while the writer retries, then goes out.
    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    assert!(sink.inner.is_empty());
    let stats = layer.stats();
    assert_eq!((stats.handed_off, stats.queued, stats.written), (1, 1, 0));
    assert!(stats.failed_attempts >= 2, "{stats:?}");
    assert!(stats.oldest_queued_ms.is_some());

    // The sink comes back: the writer stores the entry, once.
    sink.failures_left.store(0, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), layer.flush())
        .await
        .unwrap();
    assert_eq!(sink.inner.len(), 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.queued, stats.written, stats.oldest_queued_ms),
        (0, 1, None)
    );
}

#[tokio::test]
async fn a_hanging_sink_gets_the_entry_handed_off_when_the_wait_is_over() {
    // The sink's call never returns while the gate is closed: the response still goes out
    // once its wait has passed, not when the sink answers.
    let sink = GatedSink::closed();
    let layer = AuditLayer::new(sink.clone())
        .synchronous(Synchronous::default().wait(Duration::from_millis(100)));
    let app = app(layer.clone(), Arc::default());

    let started = std::time::Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        post_to(&app, "/connection-profiles"),
    )
    .await
    .expect("the response waited for a hanging sink past its wait");
    assert_eq!(status, StatusCode::CREATED);
    assert!(started.elapsed() >= Duration::from_millis(100));
    let stats = layer.stats();
    assert_eq!((stats.handed_off, stats.queued, stats.written), (1, 1, 0));

    // The sink answers: the writer's pending call stores the entry.
    sink.gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), layer.flush())
        .await
        .unwrap();
    assert_eq!(sink.inner.len(), 1);
}

#[tokio::test]
async fn a_synchronous_queue_full_of_unstored_entries_refuses_before_the_handler() {
    let sink = GatedSink::open();
    sink.failures_left.store(usize::MAX, Ordering::SeqCst);
    let handled = Arc::new(AtomicUsize::new(0));
    let layer = AuditLayer::new(sink.clone()).synchronous(
        Synchronous::new(2)
            .wait(Duration::from_millis(20))
            .max_backoff(Duration::from_millis(10)),
    );
    let app = app(layer.clone(), handled.clone());
    for _ in 0..2 {
        assert_eq!(
            post_to(&app, "/connection-profiles").await,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    let stats = layer.stats();
    assert_eq!((stats.refused, stats.handed_off, stats.held), (1, 2, 2));

    sink.failures_left.store(0, Ordering::SeqCst);
    layer.flush().await;
    assert_eq!(
        post_to(&app, "/connection-profiles").await,
        StatusCode::CREATED
    );
    assert_eq!(sink.inner.len(), 3);
}

#[tokio::test]
async fn a_request_dropped_before_its_response_is_recorded_in_the_sync_mode_too() {
    let sink = MemoryStore::new();
    let layer = AuditLayer::new(sink.clone());
    let app = Router::new()
        .route(
            "/tenants/{id}/deactivate",
            post(std::future::pending::<StatusCode>),
        )
        .layer(layer.clone());
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
    // The entry was queued; the writer stores it.
    layer.flush().await;
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

#[test]
fn the_figures_reach_the_metrics_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let sink = GatedSink::open();
    sink.failures_left.store(2, Ordering::SeqCst);
    // The writer runs on this thread's runtime, so it sees the thread's recorder.
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = AuditLayer::new(sink.clone());
            let app = app(layer.clone(), Arc::default());
            for _ in 0..3 {
                assert_eq!(
                    post_to(&app, "/connection-profiles").await,
                    StatusCode::CREATED
                );
            }
            layer.flush().await;
        });
    });
    let figures: std::collections::HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect();
    assert_eq!(
        figures["audit_entries_written_total"],
        DebugValue::Counter(3)
    );
    assert_eq!(
        figures["audit_write_failures_total"],
        DebugValue::Counter(2)
    );
    assert!(matches!(figures["audit_entries_queued"], DebugValue::Gauge(q) if q.0 == 0.0));
    assert_eq!(sink.inner.len(), 3);
}
