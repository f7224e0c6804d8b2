//! Instructions per request under `AuditLayer`, counted by callgrind, beside a bare router, an
//! identity layer and tower-http's `TraceLayer`, all in one run.
//!
//! `cargo bench -p audit-tower --bench instructions` runs every variant twice under
//! `valgrind --tool=callgrind` (with `REQUESTS` and `2 × REQUESTS` requests) and prints the
//! difference divided by `REQUESTS`: the instructions one more request costs, whole program,
//! the buffered writer's work included. Instruction counts do not depend on what else the
//! machine is doing, so two runs of the same binary agree to a few instructions.
//!
//! Every variant serves `POST /api-keys/{id}/revoke` and `GET /api-keys/{id}` from an axum
//! 0.8 router finalised with `with_state(())` (as `axum::serve` does), called with
//! `Router::oneshot` on a current-thread runtime. Requests come as from behind a load balancer:
//! a `ConnectInfo` peer in `10.0.0.0/8`, an `X-Forwarded-For` naming the client and another
//! proxy, a `User-Agent` and an `x-api-key`; the audit layer trusts `10.0.0.0/8` and walks the
//! header. The audit variants deliver into a sink that only counts.
//! `audit_buffered_unknown_key` sends a key its resolver does not know, so the layer
//! fingerprints it with SHA-256 (in software under valgrind, which does not run the CPU's SHA
//! instructions; natively it costs a fraction of this).
//!
//! Run with `-- <variant> <method> <count>` to serve requests without counting (what the outer
//! run does under valgrind).

use std::hint::black_box;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use audit_core::{ApiKeyRef, AuditEntry, AuditSink, SinkError};
use audit_tower::{AuditLayer, Buffered, ClientIpConfig, ClientIpSource};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{Method, Request};
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

/// Requests in the shorter of the two counted runs.
const REQUESTS: usize = 5_000;
const KNOWN_KEY: &str = "sk_live_bench_key_0123456789";
const UNKNOWN_KEY: &str = "sk_live_someone_elses_key_987";

const VARIANTS: [&str; 5] = [
    "bare",
    "noop_layer",
    "trace",
    "audit_buffered",
    "audit_buffered_unknown_key",
];

/// Counts entries and drops them.
#[derive(Clone, Default)]
struct CountingSink(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl AuditSink for CountingSink {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        black_box(&entry);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        black_box(entries);
        self.0.fetch_add(entries.len(), Ordering::Relaxed);
        Ok(())
    }
}

fn routes() -> Router {
    Router::new()
        .route("/api-keys/{id}/revoke", post(|| async { "revoked" }))
        .route("/api-keys/{id}", get(|| async { "key" }))
}

fn audit_layer(sink: CountingSink) -> AuditLayer {
    let proxies = ["10.0.0.0/8".parse().expect("a network")];
    AuditLayer::new(sink)
        .client_ip(ClientIpConfig::forwarded(
            ClientIpSource::XForwardedFor,
            proxies,
        ))
        .api_key_with(|raw: &str| {
            (raw == KNOWN_KEY).then(|| ApiKeyRef::new("k-1", "CI deploy key"))
        })
        .buffered(Buffered::default())
}

fn request(method: &Method, key: &'static str) -> Request<Body> {
    let uri = if method == Method::POST {
        "/api-keys/k-1/revoke"
    } else {
        "/api-keys/k-1"
    };
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header("user-agent", "bench/1.0")
        .header("x-forwarded-for", "203.0.113.9, 10.0.0.2")
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("valid request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
    req
}

/// Serves `count` requests of `method` through `variant`.
fn serve(variant: &str, method: &Method, count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sink = CountingSink::default();
    let audit = audit_layer(sink.clone());
    let peer_audit = AuditLayer::new(sink.clone())
        .api_key_with(|raw: &str| {
            (raw == KNOWN_KEY).then(|| ApiKeyRef::new("k-1", "CI deploy key"))
        })
        .buffered(Buffered::default());
    let key = if variant == "audit_buffered_unknown_key" {
        UNKNOWN_KEY
    } else {
        KNOWN_KEY
    };
    let app = match variant {
        "bare" => routes(),
        "noop_layer" => routes().layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r)),
        "trace" => routes().layer(TraceLayer::new_for_http()),
        "audit_buffered" | "audit_buffered_unknown_key" => routes().layer(audit.clone()),
        "audit_buffered_peer" => routes().layer(peer_audit.clone()),
        other => panic!("unknown variant {other}"),
    }
    .with_state(());
    runtime.block_on(async {
        let mut done = 0;
        while done < count {
            let round = (count - done).min(256);
            for _ in 0..round {
                let response = app.clone().oneshot(request(method, key)).await;
                black_box(response.expect("infallible"));
            }
            done += round;
            audit.flush().await;
            peer_audit.flush().await;
        }
    });
    if variant.starts_with("audit") && method == Method::POST {
        assert_eq!(
            sink.0.load(Ordering::Relaxed),
            count,
            "every request has its entry"
        );
    }
}

/// Total instructions of serving `count` requests, as callgrind counts them.
fn counted(variant: &str, method: &str, count: usize) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out_file = std::env::temp_dir().join(format!(
        "audit-instructions-{}-{variant}-{method}-{count}.out",
        std::process::id()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .args([variant, method, &count.to_string()])
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{variant} {method} {count} failed:\n{stderr}");
        return None;
    }
    stderr
        .lines()
        .find_map(|line| {
            line.split_once("Collected :")
                .map(|(_, n)| n.trim().parse().ok())
        })
        .flatten()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [variant, method, count] = args.as_slice() {
        let method: Method = method.parse().expect("a method");
        serve(variant, &method, count.parse().expect("a count"));
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed; nothing measured");
        return;
    }
    println!(
        "instructions per request (callgrind, whole program, {REQUESTS} vs {} requests)",
        2 * REQUESTS
    );
    for method in ["POST", "GET"] {
        let mut bare = None;
        let mut noop = None;
        for variant in VARIANTS {
            let (Some(short), Some(long)) = (
                counted(variant, method, REQUESTS),
                counted(variant, method, 2 * REQUESTS),
            ) else {
                println!("{method:<5} {variant:<28} failed");
                continue;
            };
            let per_request = long.saturating_sub(short) / REQUESTS as u64;
            if variant == "bare" {
                bare = Some(per_request);
            }
            if variant == "noop_layer" {
                noop = Some(per_request);
            }
            let over = |base: Option<u64>| {
                base.map_or(String::new(), |b| {
                    format!("{:+}", per_request as i64 - b as i64)
                })
            };
            println!(
                "{method:<5} {variant:<28} {per_request:>7}   over bare {:>7}   over identity layer {:>7}",
                over(bare),
                over(noop)
            );
        }
    }
}
