//! What `AuditLayer` costs per request, beside a bare router and tower-http's `TraceLayer`.
//!
//! Run with `cargo bench -p audit-tower --bench layer`. Each variant serves the same two routes
//! in-process through `Router::oneshot`; the difference to `bare` is the layer's cost on the
//! request path. Both audit variants deliver into a channel drained by a task on another
//! thread, so the figure is the capture cost, not a database's: `audit_sync` builds the entry
//! and sends it before the response returns; `audit_buffered` queues the capture and lets the
//! layer's writer build and send entries off the request path. Two reference layers bound what
//! any audit layer can cost: `noop_layer` returns the request unchanged (what axum charges any
//! `Router::layer`), and `floor` does only what every layer offering an `AuditContext` must (the
//! matched route, the clock, one header, a shared context in the extensions). `floor` does that
//! on `GET` too, where the audit layer does nothing.
//!
//! The loop runs on the calling thread and the drain task and writer on one worker thread. With
//! `AUDIT_BENCH_CURRENT_THREAD=1` everything shares one thread instead, so the writer runs only
//! between the timed rounds.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use audit_core::{AuditEntry, AuditSink, SinkError};
use audit_tower::{AuditLayer, Buffered};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Method, Request};
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

/// Hands entries to a tokio channel drained by a task on the runtime's worker thread.
struct ChannelSink(tokio::sync::mpsc::UnboundedSender<AuditEntry>);

#[async_trait::async_trait]
impl AuditSink for ChannelSink {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.0
            .send(entry)
            .map_err(|e| SinkError::Unavailable(e.to_string()))
    }
}

fn routes() -> Router {
    Router::new()
        .route("/api-keys/{id}/revoke", post(|| async { "revoked" }))
        .route("/api-keys/{id}", get(|| async { "key" }))
}

fn request(method: Method, uri: &'static str) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("user-agent", "bench/1.0")
        .header("x-api-key", "sk_live_bench_key_0123456789")
        .body(Body::empty())
        .expect("valid request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 9], 4000))));
    req
}

/// A shared, lockable per-request context, as an extractor needs one.
#[derive(Clone)]
struct FloorContext(#[allow(dead_code)] Arc<Mutex<FloorCapture>>);

type FloorCapture = (Option<MatchedPath>, SystemTime, Option<HeaderValue>);

/// The least any layer does that gives handlers an `AuditContext`: read the matched route, the
/// clock and one header, and put a shared context into the request extensions. No route
/// derivation, caller, client address, API key, response or delivery: what it costs over the
/// identity layer is the part of the audit layer's cost that no implementation avoids.
fn floor(mut req: Request<Body>) -> Request<Body> {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let user_agent = req.headers().get(http::header::USER_AGENT).cloned();
    let context = FloorContext(Arc::new(Mutex::new((route, SystemTime::now(), user_agent))));
    req.extensions_mut().insert(context);
    req
}

fn bench(c: &mut Criterion) {
    // The benchmark loop runs on this thread (`block_on`); the channel's drain task and the
    // buffered writer run on the runtime's one worker thread, as they would on another core of
    // a server.
    let runtime = if std::env::var_os("AUDIT_BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
    }
    .expect("runtime");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AuditEntry>();
    runtime.spawn(async move {
        while let Some(entry) = rx.recv().await {
            drop(black_box(entry));
        }
    });
    let buffered = AuditLayer::new(ChannelSink(tx.clone())).buffered(Buffered::default());

    // `noop_layer` is an identity layer: what axum's `Router::layer` costs for any layer (an
    // extra boxed route clone and future per request), so `audit - noop_layer` is the audit
    // layer's own work.
    let variants: [(&str, Router); 6] = [
        ("bare", routes()),
        (
            "noop_layer",
            routes().layer(tower::util::MapRequestLayer::new(|req: Request<Body>| req)),
        ),
        (
            "floor",
            routes().layer(tower::util::MapRequestLayer::new(floor)),
        ),
        (
            "audit_sync",
            routes().layer(AuditLayer::new(ChannelSink(tx))),
        ),
        ("audit_buffered", routes().layer(buffered.clone())),
        ("trace", routes().layer(TraceLayer::new_for_http())),
    ];
    // What `axum::serve` does once (`into_make_service` calls `with_state(())`): handlers
    // become routes, with their layers applied, before the first request. Without it, a router
    // called directly converts the matched handler and applies every layer again per request.
    let variants = variants.map(|(name, app)| (name, app.with_state(())));
    for (label, method, uri) in [
        ("post_revoke", Method::POST, "/api-keys/k-1/revoke"),
        ("get_key", Method::GET, "/api-keys/k-1"),
    ] {
        let mut group = c.benchmark_group(label);
        group.measurement_time(Duration::from_secs(4));
        for (name, app) in &variants {
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        // Requests are timed in rounds of 256; between rounds, untimed, the
                        // queue is flushed (and every variant yields as often), so the figure is
                        // the request path with a writer that keeps up, not a growing backlog.
                        let mut timed = Duration::ZERO;
                        let mut done = 0;
                        while done < iters {
                            let round = (iters - done).min(256);
                            let start = Instant::now();
                            for _ in 0..round {
                                let request = request(method.clone(), uri);
                                let response = app.clone().oneshot(request).await;
                                black_box(response.expect("infallible"));
                            }
                            timed += start.elapsed();
                            done += round;
                            buffered.flush().await;
                            tokio::task::yield_now().await;
                        }
                        timed
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
