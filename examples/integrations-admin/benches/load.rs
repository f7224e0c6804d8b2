//! End-to-end load: HTTP/1.1 over loopback, closed loop, against a trivial handler and against
//! the example's own handlers, with and without the audit layer.
//!
//! Run with `cargo bench -p integrations-admin --bench load`; arguments after `--` pick parts
//! (`layer`, `sqlite`, `postgres`, `limit`; all by default). The server runs on a Tokio
//! runtime with one worker thread and the load generator on another, in the same process, so
//! on a two-core machine the server is bound by one core. Each connection sends its next
//! request when the previous response is in; after a warm-up, requests answered within the
//! measuring window count. A `503` is a refusal, counted apart from successes; after one the
//! connection waits as its `Retry-After` says (at most 1 s), as a polite client does.
//!
//! 1. `layer`: `POST /api-keys` answered `201` by a handler that does nothing, bare and under
//!    `AuditLayer::new(sink)` with a sink that discards entries, synchronous and buffered, in
//!    interleaved rounds (the median round's share of its bare figure is reported).
//! 2. `sqlite`, `postgres`: the example's `POST /api-keys` (its entry goes through the layer's
//!    queue) and `POST /connection-profiles` (its entry commits in the request's transaction),
//!    authenticated with a `DEMO_ADMIN_TOKEN`-style bearer token, a unique name per request.
//!    Each measurement gets a fresh database: a temporary SQLite file, or a database created on
//!    the PostgreSQL server at `AUDIT_TEST_POSTGRES_URL` (dropped after). JetStream publishes
//!    to `AUDIT_NATS_URL` (default `nats://127.0.0.1:4222`) with the example's forwarder in the
//!    process, and again with no forwarder until the window is over (then one drains the
//!    stream, timed). The baseline runs the same handlers with `AuditContext::detached()`.
//! 3. `limit`: buffered on SQLite, with more and more connections until requests are refused.
//!
//! Environment: `LOAD_SECONDS` (measuring window, default 5), `LOAD_ROUNDS` (part 1's rounds,
//! default 5), `LOAD_WARMUP_SECONDS` (default
//! 1), `LOAD_CONNECTIONS` (parts 1 and 2, default 32), `LOAD_LIMIT_CONNECTIONS` (part 3's
//! steps, comma-separated, default `512,2048,max`; `max`, or a step beyond the open-file
//! limit, is as many connections as that limit allows). Part 3 stops at the first step with
//! refusals; when none is refused, it runs 1,024 and 2,048 connections with a queue of 1,024
//! slots. Progress goes to stderr, the tables to stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use audit_core::{AuditEntry, AuditSink, SinkError};
use audit_seaorm::SeaOrmTransactions;
use audit_test_support::{Backend, TestDb, fresh_db};
use audit_tower::{AuditContext, AuditLayer, Buffered, DeliveryStats, TransactionLayer};
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::routing::post;
use axum::serve::ListenerExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use integrations_admin::{AppState, AuditOptions, Delivery, auth, handlers};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio::runtime::Runtime;

/// The bearer token the server is told about, as `DEMO_ADMIN_TOKEN`.
const TOKEN: &str = "load-bench-token";

/// A sink that takes entries and keeps nothing.
struct Discard;

#[async_trait::async_trait]
impl AuditSink for Discard {
    async fn record(&self, _: AuditEntry) -> Result<(), SinkError> {
        Ok(())
    }

    async fn record_batch(&self, _: Vec<AuditEntry>) -> Result<(), SinkError> {
        Ok(())
    }

    async fn record_slice(&self, _: &[AuditEntry]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The run's settings, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    window: Duration,
    warmup: Duration,
    connections: usize,
    limit_steps: Vec<usize>,
    /// Rounds of part 1.
    rounds: usize,
}

impl Settings {
    fn from_env() -> Self {
        let seconds = |name: &str, default: f64| {
            let value = std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .unwrap_or(default);
            Duration::from_secs_f64(value)
        };
        let connections = std::env::var("LOAD_CONNECTIONS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n: &usize| *n > 0)
            .unwrap_or(32);
        let limit_steps = std::env::var("LOAD_LIMIT_CONNECTIONS")
            .ok()
            .map(|v| {
                v.split(',')
                    .filter_map(|n| match n.trim() {
                        "max" => Some(usize::MAX),
                        n => n.parse().ok(),
                    })
                    .filter(|n: &usize| *n > 0)
                    .collect::<Vec<_>>()
            })
            .filter(|steps| !steps.is_empty())
            .unwrap_or_else(|| vec![512, 2048, usize::MAX]);
        Settings {
            window: seconds("LOAD_SECONDS", 5.0),
            warmup: seconds("LOAD_WARMUP_SECONDS", 1.0),
            connections,
            limit_steps,
            rounds: std::env::var("LOAD_ROUNDS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|n: &usize| *n > 0)
                .unwrap_or(5),
        }
    }
}

/// Seconds since the bench started, for the progress lines on stderr.
fn elapsed() -> f64 {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    STARTED.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// A runtime with one worker thread.
fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/// The route a load creates objects on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Keys,
    Profiles,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Keys => "/api-keys",
            Route::Profiles => "/connection-profiles",
        }
    }

    fn body(self, n: u64) -> String {
        match self {
            Route::Keys => format!(r#"{{"name":"load key {n}"}}"#),
            Route::Profiles => format!(
                r#"{{"name":"load profile {n}","kind":"rest","host":"crm{n}.example","username":"svc","client_secret":"s3cret-{n}"}}"#
            ),
        }
    }
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Tally {
    /// 2xx within the window.
    ok: u64,
    /// 503 within the window.
    refused: u64,
    /// Other statuses within the window.
    other: u64,
    /// Requests or connections that failed within the window.
    failed: u64,
    /// Latencies of the 2xx, in microseconds.
    latencies: Vec<u32>,
}

/// The figures of one measurement.
#[derive(Debug, Default, Clone)]
struct Figures {
    ok: u64,
    refused: u64,
    other: u64,
    failed: u64,
    seconds: f64,
    p50_us: u32,
    p99_us: u32,
    /// Entries the layer stored within the window, when a layer runs.
    written: Option<u64>,
    /// The most slots held and entries queued seen while the window ran.
    peak_held: usize,
    peak_queued: usize,
    /// Cores used while the window ran: the server runtime's thread, SQLite's threads, the
    /// load generator, and the whole machine (every process).
    server_cpu: f64,
    sqlite_cpu: f64,
    load_cpu: f64,
    machine_cpu: f64,
    /// Cores the hypervisor gave to other machines while the window ran (counted in
    /// `machine_cpu`, which is busy or stolen).
    stolen_cpu: f64,
    /// JetStream with the forwarder started after the window: entries it stored per second
    /// while draining what the window published.
    drained_per_second: Option<f64>,
}

impl Figures {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// Seconds of the server thread's CPU per answered request.
    fn cpu_per_request(&self) -> f64 {
        self.server_cpu / self.rps()
    }

    fn refused_share(&self) -> f64 {
        let answered = self.ok + self.refused + self.other;
        if answered == 0 {
            0.0
        } else {
            self.refused as f64 / answered as f64
        }
    }

    fn written_per_second(&self) -> Option<f64> {
        self.written.map(|w| w as f64 / self.seconds)
    }

    /// Anything but successes, for a note under the table.
    fn problems(&self) -> Option<String> {
        (self.refused + self.other + self.failed > 0).then(|| {
            format!(
                "{} refused (503), {} other statuses, {} failed",
                self.refused, self.other, self.failed
            )
        })
    }
}

/// CPU time so far, in clock ticks (1/100 s): this process's threads by name, and the whole
/// machine's.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    /// The server runtime's threads.
    server: u64,
    /// SQLx's SQLite worker threads (one per connection; they run the statements).
    sqlite: u64,
    /// The load generator's runtime.
    load: u64,
    /// Every core of the machine: busy and in all.
    machine_busy: u64,
    machine_total: u64,
    /// Time the hypervisor gave this virtual machine's cores to others ("steal").
    machine_steal: u64,
}

impl Cpu {
    fn now() -> Cpu {
        let mut cpu = Cpu::default();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                    continue;
                };
                let name = &stat[open + 1..close];
                let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
                let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
                let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
                    continue;
                };
                match name {
                    "server" => cpu.server += user + system,
                    "load" => cpu.load += user + system,
                    n if n.starts_with("sqlx-sqlite") => cpu.sqlite += user + system,
                    _ => {}
                }
            }
        }
        if let Some(line) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            let values: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse().ok())
                .collect();
            if values.len() == 8 {
                cpu.machine_total = values.iter().sum();
                cpu.machine_busy = cpu.machine_total - values[3] - values[4];
                cpu.machine_steal = values[7];
            }
        }
        cpu
    }
}

/// Cores used over a window: (server runtime, SQLite threads, load generator, whole machine,
/// stolen by the hypervisor).
fn cores(before: Cpu, after: Cpu, seconds: f64) -> (f64, f64, f64, f64, f64) {
    let used = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 100.0 / seconds;
    let total = after.machine_total.saturating_sub(before.machine_total) as f64;
    let share = |a: u64, b: u64| {
        if total > 0.0 {
            b.saturating_sub(a) as f64 / total
                * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
        } else {
            0.0
        }
    };
    (
        used(before.server, after.server),
        used(before.sqlite, after.sqlite),
        used(before.load, after.load),
        share(before.machine_busy, after.machine_busy),
        share(before.machine_steal, after.machine_steal),
    )
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One keep-alive connection, sending requests one after the other until `end`.
async fn drive(
    addr: SocketAddr,
    route: Route,
    next: Arc<AtomicU64>,
    start: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let in_window = |at: Instant| at >= start && at <= end;
    let give_up = tokio::time::Instant::from_std(end + Duration::from_secs(2));
    let host = addr.to_string();
    let bearer = format!("Bearer {TOKEN}");
    'connect: while Instant::now() < end {
        let connected = async {
            let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.set_nodelay(true).ok()?;
            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .ok()
        };
        let Some((mut sender, connection)) = connected.await else {
            if in_window(Instant::now()) {
                tally.failed += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        tokio::spawn(connection);
        loop {
            if Instant::now() >= end {
                break 'connect;
            }
            if sender.ready().await.is_err() {
                continue 'connect;
            }
            let n = next.fetch_add(1, Ordering::Relaxed);
            let request = hyper::Request::post(route.path())
                .header(header::HOST, &host)
                .header(header::AUTHORIZATION, &bearer)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(route.body(n))))
                .expect("a valid request");
            let sent = Instant::now();
            let answered = tokio::time::timeout_at(give_up, async {
                let response = sender.send_request(request).await.ok()?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                response.into_body().collect().await.ok()?;
                Some((status, retry_after))
            })
            .await;
            let done = Instant::now();
            let Ok(Some((status, retry_after))) = answered else {
                if in_window(done) {
                    tally.failed += 1;
                }
                continue 'connect;
            };
            if in_window(done) {
                if status.is_success() {
                    tally.ok += 1;
                    let micros = done.duration_since(sent).as_micros();
                    tally
                        .latencies
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                } else if status == StatusCode::SERVICE_UNAVAILABLE {
                    tally.refused += 1;
                } else {
                    tally.other += 1;
                }
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                let pause = retry_after.map_or(Duration::from_millis(250), |s| {
                    Duration::from_secs(s).min(Duration::from_secs(1))
                });
                tokio::time::sleep(pause).await;
            }
        }
    }
    tally
}

/// Runs `connections` closed-loop connections against `addr` on `load`, and samples `probe`
/// (the layer's stats) while the window runs.
fn measure(
    load: &Runtime,
    addr: SocketAddr,
    route: Route,
    connections: usize,
    settings: &Settings,
    probe: Option<&dyn Fn() -> DeliveryStats>,
) -> Figures {
    let start = Instant::now() + settings.warmup;
    let end = start + settings.window;
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|_| load.spawn(drive(addr, route, next.clone(), start, end)))
        .collect();
    let mut figures = Figures::default();
    let sleep_until =
        |at: Instant| std::thread::sleep(at.saturating_duration_since(Instant::now()));
    sleep_until(start);
    let cpu_before = Cpu::now();
    let written_before = probe.map(|p| p().written);
    while Instant::now() < end {
        if let Some(probe) = probe {
            let stats = probe();
            figures.peak_held = figures.peak_held.max(stats.held);
            figures.peak_queued = figures.peak_queued.max(stats.queued);
        }
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
    let written_after = probe.map(|p| p().written);
    (
        figures.server_cpu,
        figures.sqlite_cpu,
        figures.load_cpu,
        figures.machine_cpu,
        figures.stolen_cpu,
    ) = cores(cpu_before, Cpu::now(), settings.window.as_secs_f64());
    figures.written = written_before
        .zip(written_after)
        .map(|(before, after)| after - before);
    let tallies = load.block_on(async {
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(task.await.expect("a load connection"));
        }
        tallies
    });
    let mut latencies = Vec::new();
    for tally in tallies {
        figures.ok += tally.ok;
        figures.refused += tally.refused;
        figures.other += tally.other;
        figures.failed += tally.failed;
        latencies.extend(tally.latencies);
    }
    latencies.sort_unstable();
    figures.p50_us = percentile(&latencies, 0.50);
    figures.p99_us = percentile(&latencies, 0.99);
    figures.seconds = settings.window.as_secs_f64();
    figures
}

/// A server on its own runtime; dropping it stops the runtime and everything on it.
struct Server {
    runtime: Runtime,
    addr: SocketAddr,
}

impl Server {
    /// Serves `app` on 127.0.0.1:0 on `runtime` with the peer address as `ConnectInfo`, as the
    /// example's binary does, and with `TCP_NODELAY`.
    fn start(runtime: Runtime, app: Router) -> Server {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        runtime.spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
            if let Err(error) = served {
                eprintln!("server failed: {error}");
            }
        });
        Server { runtime, addr }
    }

    fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: the layer's own cost.

fn part_layer(load: &Runtime, settings: &Settings) {
    println!(
        "\n## Part 1: the layer around a handler that does nothing ({} connections, {} rounds)\n",
        settings.connections, settings.rounds
    );
    let trivial = || Router::new().route("/api-keys", post(|| async { StatusCode::CREATED }));
    let variants: [(&str, Option<AuditLayer>); 3] = [
        ("bare", None),
        ("synchronous (default)", Some(AuditLayer::new(Discard))),
        (
            "buffered",
            Some(AuditLayer::new(Discard).buffered(Buffered::default())),
        ),
    ];
    // The variants take turns, round after round: the machine's speed drifts by more than
    // the differences measured, and a round compares variants run seconds apart.
    let mut rounds: Vec<Vec<Figures>> = Vec::new();
    for round in 1..=settings.rounds {
        let mut figures_of_round = Vec::new();
        for (name, layer) in &variants {
            let runtime = runtime("server");
            let app = match layer {
                Some(layer) => trivial().layer(layer.clone()),
                None => trivial(),
            };
            let server = Server::start(runtime, app);
            let probe = layer.clone().map(|l| move || l.stats());
            let figures = measure(
                load,
                server.addr,
                Route::Keys,
                settings.connections,
                settings,
                probe.as_ref().map(|p| p as &dyn Fn() -> DeliveryStats),
            );
            server.stop();
            eprintln!("[{:6.1} s] round {round}, {name}: {figures:?}", elapsed());
            figures_of_round.push(figures);
        }
        rounds.push(figures_of_round);
    }
    println!(
        "| variant | requests/s | of bare | server CPU per request | of bare (CPU) | p50 | p99 | server thread | load generator | machine | stolen | goal |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rows = Vec::new();
    for (index, (name, _)) in variants.iter().enumerate() {
        // Each round's share of that round's bare figures; the row is the median round's.
        let mut shares: Vec<(f64, f64, usize)> = rounds
            .iter()
            .enumerate()
            .map(|(r, figures)| {
                let bare = &figures[0];
                let this = &figures[index];
                (
                    this.rps() / bare.rps(),
                    bare.cpu_per_request() / this.cpu_per_request(),
                    r,
                )
            })
            .collect();
        shares.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rps_share, _, median_round) = shares[shares.len() / 2];
        let mut cpu_shares: Vec<f64> = shares.iter().map(|s| s.1).collect();
        cpu_shares.sort_by(f64::total_cmp);
        let cpu_share = cpu_shares[cpu_shares.len() / 2];
        let figures = &rounds[median_round][index];
        let goal = if *name == "bare" { "—" } else { "≥ 90 %" };
        println!(
            "| {name} | {} | {} | {:.2} µs | {} | {} | {} | {} | {} | {} | {} | {goal} |",
            thousands(figures.rps()),
            percent(rps_share),
            figures.cpu_per_request() * 1e6,
            percent(cpu_share),
            millis(figures.p50_us),
            millis(figures.p99_us),
            core_share(figures.server_cpu),
            core_share(figures.load_cpu),
            core_share(figures.machine_cpu),
            core_share(figures.stolen_cpu),
        );
        let all: Vec<String> = shares
            .iter()
            .map(|s| format!("{:.0}/{:.0}", s.0 * 100.0, s.1 * 100.0))
            .collect();
        eprintln!(
            "{name}: share of bare per round, requests/CPU, %: {}",
            all.join(" ")
        );
        rows.push((name, figures.clone()));
    }
    notes(&rows);
}

// ---------------------------------------------------------------------------------------------
// Part 2: the example's handlers on a database.

/// How a measurement of the example is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The same handlers with a detached context: nothing is recorded.
    NoAudit,
    Buffered,
    Synchronous,
    /// The layer's default mode; the handler's entry commits in its transaction.
    Transaction,
    JetStream,
    /// JetStream with no forwarder during the window (as when forwarders run on other
    /// machines); one starts after the window and drains the stream.
    JetStreamPublishing,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::NoAudit => "no audit",
            Mode::Buffered => "buffered",
            Mode::Synchronous => "synchronous",
            Mode::Transaction => "per-request transaction",
            Mode::JetStream => "JetStream",
            Mode::JetStreamPublishing => "JetStream, forwarder after the window",
        }
    }
}

/// One measurement of the example.
#[derive(Debug, Clone, Copy)]
struct Case<'a> {
    backend: Backend,
    route: Route,
    mode: Mode,
    connections: usize,
    /// The audit queue's slots, when not the layer's default.
    queue_capacity: Option<usize>,
    nats: Option<&'a str>,
}

/// The example's two creating routes with its authentication and transaction layer, and a
/// detached `AuditContext` where the audit layer would put its own.
fn unaudited_router(state: AppState) -> Router {
    Router::new()
        .route("/api-keys", post(handlers::create_key))
        .route("/connection-profiles", post(handlers::create_profile))
        .layer(TransactionLayer::new(SeaOrmTransactions::new(
            state.db.clone(),
        )))
        .layer(middleware::map_request(|mut req: Request| async move {
            req.extensions_mut().insert(AuditContext::detached());
            req
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

async fn count_entries(db: &DatabaseConnection) -> u64 {
    let statement = Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM audit_log",
    );
    let row = db
        .query_one_raw(statement)
        .await
        .expect("counting audit_log")
        .expect("a count");
    row.try_get::<i64>("", "n").expect("a number") as u64
}

/// The NATS server's URL, if it answers.
fn nats_url() -> Option<String> {
    let url = std::env::var("AUDIT_NATS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let first = url.split(',').next().unwrap_or_default().trim();
    let host_port = first.split("://").last().unwrap_or(first);
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
    reachable.then_some(url)
}

/// One measurement of the example: a fresh database, the service set up as `case` says, the
/// load, then every entry the layer took stored before the next measurement. `None` when the
/// backend's server is not configured.
fn example_run(load: &Runtime, settings: &Settings, case: Case<'_>) -> Option<Figures> {
    let db: TestDb = load.block_on(fresh_db(case.backend))?;
    let runtime = runtime("server");
    let (app, layer, forwarder, database, later) = runtime.block_on(async {
        let mut state = integrations_admin::connect(&db.url)
            .await
            .expect("connecting the example to its database");
        state.demo_admin_token_hash = Some(auth::sha256_hex(TOKEN));
        integrations_admin::seed_demo(&state)
            .await
            .expect("seeding the demo tenants");
        let database = state.db.clone();
        if case.mode == Mode::NoAudit {
            return (unaudited_router(state), None, None, database, None);
        }
        let options = AuditOptions {
            delivery: match case.mode {
                Mode::Buffered => Delivery::Buffered,
                _ => Delivery::Synchronous,
            },
            queue_capacity: case.queue_capacity,
            nats_url: match case.mode {
                Mode::JetStream | Mode::JetStreamPublishing => case.nats.map(str::to_owned),
                _ => None,
            },
            forwarder: case.mode != Mode::JetStreamPublishing,
            alerts: None,
        };
        let audit = integrations_admin::start_audit(&mut state, &options)
            .await
            .expect("starting the audit pipeline");
        // The state a forwarder started after the window stores into.
        let later = (case.mode == Mode::JetStreamPublishing).then(|| state.clone());
        let app = integrations_admin::router_with(state, audit.layer.clone());
        (app, Some(audit.layer), audit.forwarder, database, later)
    });
    let entries_before = runtime.block_on(count_entries(&database));
    let server = Server::start(runtime, app);
    let probe = layer.clone().map(|l| move || l.stats());
    let mut figures = measure(
        load,
        server.addr,
        case.route,
        case.connections,
        settings,
        probe.as_ref().map(|p| p as &dyn Fn() -> DeliveryStats),
    );
    server.runtime.block_on(async {
        let Some(layer) = &layer else { return };
        if tokio::time::timeout(Duration::from_secs(30), layer.flush())
            .await
            .is_err()
        {
            eprintln!("  NOTE: the audit writer did not flush within 30 s");
        }
        // JetStream: the forwarder stores what was published, so the next measurement's
        // forwarder (same durable consumer) finds nothing left over.
        let expected = entries_before + layer.stats().written;
        let started = Instant::now();
        let forwarder = match (forwarder, &later) {
            (Some(forwarder), _) => Some(forwarder),
            (None, Some(state)) => {
                let url = case.nats.expect("JetStream runs with a NATS URL");
                let jetstream = integrations_admin::jetstream(url)
                    .await
                    .expect("connecting to NATS");
                Some(
                    integrations_admin::forwarder(&jetstream, state)
                        .await
                        .expect("starting the forwarder"),
                )
            }
            (None, None) => None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut stored = count_entries(&database).await;
        while forwarder.is_some() && stored < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stored = count_entries(&database).await;
        }
        if case.mode != Mode::Transaction && stored < expected {
            eprintln!("  NOTE: {stored} entries stored, {expected} expected");
        }
        if later.is_some() {
            figures.drained_per_second =
                Some((stored - entries_before) as f64 / started.elapsed().as_secs_f64());
        }
        if let Some(forwarder) = forwarder
            && let Err(error) = forwarder.stop().await
        {
            eprintln!("  NOTE: stopping the forwarder: {error}");
        }
    });
    drop(database);
    server.stop();
    drop(db);
    eprintln!(
        "[{:6.1} s] {:?} {} {} ({} connections): {figures:?}",
        elapsed(),
        case.backend,
        case.route.path(),
        case.mode.name(),
        case.connections
    );
    Some(figures)
}

fn part_example(load: &Runtime, settings: &Settings, backend: Backend, label: &str) {
    println!(
        "\n## Part 2: the example's handlers on {label} ({} connections)\n",
        settings.connections
    );
    let nats = nats_url();
    if nats.is_none() {
        println!(
            "JetStream SKIPPED: no NATS server answers at AUDIT_NATS_URL \
             (default nats://127.0.0.1:4222).\n"
        );
    }
    let cases = [
        (Route::Keys, Mode::NoAudit),
        (Route::Keys, Mode::Buffered),
        (Route::Keys, Mode::Synchronous),
        (Route::Keys, Mode::JetStream),
        (Route::Keys, Mode::JetStreamPublishing),
        (Route::Profiles, Mode::NoAudit),
        (Route::Profiles, Mode::Transaction),
    ];
    let mut rows: Vec<(Route, Mode, Figures)> = Vec::new();
    for (route, mode) in cases {
        if matches!(mode, Mode::JetStream | Mode::JetStreamPublishing) && nats.is_none() {
            continue;
        }
        let case = Case {
            backend,
            route,
            mode,
            connections: settings.connections,
            queue_capacity: None,
            nats: nats.as_deref(),
        };
        let Some(figures) = example_run(load, settings, case) else {
            println!("{label} SKIPPED: AUDIT_TEST_POSTGRES_URL is not set.");
            return;
        };
        rows.push((route, mode, figures));
    }
    println!(
        "| route | mode | requests/s | of no audit | p50 | p99 | p99 over no audit | server CPU | machine | stolen | goal |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (route, mode, figures) in &rows {
        let base = rows
            .iter()
            .find(|(r, m, _)| r == route && *m == Mode::NoAudit)
            .map(|(_, _, f)| f.clone())
            .unwrap_or_default();
        let goal = match mode {
            Mode::NoAudit => "—",
            Mode::Buffered => "≥ 85 %, p99 ≤ +1 ms",
            Mode::JetStream | Mode::JetStreamPublishing => "≥ 80 %",
            Mode::Synchronous | Mode::Transaction => "≥ 70 %",
        };
        let (of_base, over) = if *mode == Mode::NoAudit {
            ("—".to_owned(), "—".to_owned())
        } else {
            (
                percent(figures.rps() / base.rps()),
                format!(
                    "{:+.2} ms",
                    (f64::from(figures.p99_us) - f64::from(base.p99_us)) / 1000.0
                ),
            )
        };
        println!(
            "| `POST {}` | {} | {} | {of_base} | {} | {} | {over} | {} | {} | {} | {goal} |",
            route.path(),
            mode.name(),
            thousands(figures.rps()),
            millis(figures.p50_us),
            millis(figures.p99_us),
            core_share(figures.server_cpu + figures.sqlite_cpu),
            core_share(figures.machine_cpu),
            core_share(figures.stolen_cpu),
        );
    }
    let written = |mode: Mode| {
        rows.iter()
            .find(|(r, m, _)| *r == Route::Keys && *m == mode)
            .and_then(|(_, _, f)| f.written_per_second())
    };
    if let (Some(buffered), Some(synchronous)) =
        (written(Mode::Buffered), written(Mode::Synchronous))
    {
        println!(
            "\nEntries stored per second, `POST /api-keys`: buffered {}, synchronous {} ({} of \
             buffered; goal ≥ 80 %).",
            thousands(buffered),
            thousands(synchronous),
            percent(synchronous / buffered)
        );
    }
    if let Some(drained) = rows
        .iter()
        .find_map(|(_, m, f)| (*m == Mode::JetStreamPublishing).then_some(f.drained_per_second))
        .flatten()
    {
        println!(
            "\nThe forwarder alone, started after the window, stored {} entries per second \
             while draining the stream.",
            thousands(drained)
        );
    }
    let named: Vec<(String, Figures)> = rows
        .iter()
        .map(|(r, m, f)| (format!("`POST {}` {}", r.path(), m.name()), f.clone()))
        .collect();
    notes(&named);
}

// ---------------------------------------------------------------------------------------------
// Part 3: buffered at its limit.

/// The most loopback connections this process can hold at both ends: two descriptors each,
/// under the soft limit on open files, with room for the rest.
fn connection_room() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|soft| soft.parse::<usize>().ok())
        .unwrap_or(1_024);
    limit.saturating_sub(400) / 2
}

/// Runs buffered `POST /api-keys` on SQLite with more and more connections, up to the first
/// step with refusals; returns the rows.
fn limit_ladder(
    load: &Runtime,
    settings: &Settings,
    steps: &[usize],
    queue_capacity: Option<usize>,
) -> Vec<(usize, Figures)> {
    let mut rows = Vec::new();
    for &connections in steps {
        // Thousands of connections take a while to open and to be answered once.
        let step = Settings {
            warmup: settings.warmup + Duration::from_secs_f64(connections as f64 / 2_000.0),
            ..settings.clone()
        };
        let case = Case {
            backend: Backend::Sqlite,
            route: Route::Keys,
            mode: Mode::Buffered,
            connections,
            queue_capacity,
            nats: None,
        };
        let Some(figures) = example_run(load, &step, case) else {
            break;
        };
        let refused = figures.refused > 0;
        rows.push((connections, figures));
        if refused {
            break;
        }
    }
    rows
}

fn part_limit(load: &Runtime, settings: &Settings) {
    println!("\n## Part 3: buffered on SQLite at its limit, `POST /api-keys`\n");
    let room = connection_room();
    let mut steps: Vec<usize> = settings.limit_steps.iter().map(|&c| c.min(room)).collect();
    steps.dedup();
    let default_slots = Buffered::default().capacity();
    let mut rows: Vec<(String, usize, Figures)> = limit_ladder(load, settings, &steps, None)
        .into_iter()
        .map(|(c, f)| (format!("{default_slots} (default)"), c, f))
        .collect();
    if rows.iter().all(|(_, _, f)| f.refused == 0) {
        // Refusals need more requests in flight than this process can open connections for:
        // show where they start with a smaller queue.
        let slots = 1_024;
        let small = limit_ladder(load, settings, &[1_024, 2_048], Some(slots));
        rows.extend(small.into_iter().map(|(c, f)| (slots.to_string(), c, f)));
    }
    println!(
        "| queue slots | connections | 2xx/s | 503/s | refused | p50 | p99 | most slots held | most entries queued | server CPU | machine |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (slots, connections, figures) in &rows {
        println!(
            "| {slots} | {connections} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(figures.rps()),
            thousands(figures.refused as f64 / figures.seconds),
            percent(figures.refused_share()),
            millis(figures.p50_us),
            millis(figures.p99_us),
            thousands(figures.peak_held as f64),
            thousands(figures.peak_queued as f64),
            core_share(figures.server_cpu + figures.sqlite_cpu),
            core_share(figures.machine_cpu),
        );
    }
    let others: Vec<(String, Figures)> = rows
        .iter()
        .map(|(slots, c, f)| {
            // Refusals are this table's subject, not a problem.
            let mut f = f.clone();
            f.refused = 0;
            (format!("{slots} slots, {c} connections"), f)
        })
        .collect();
    notes(&others);
}

// ---------------------------------------------------------------------------------------------
// Output.

fn notes<N: std::fmt::Display>(rows: &[(N, Figures)]) {
    for (name, figures) in rows {
        if let Some(problems) = figures.problems() {
            println!("\nNOTE {name}: {problems}.");
        }
    }
}

fn thousands(value: f64) -> String {
    let whole = value.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.0} %", ratio * 100.0)
    } else {
        "—".to_owned()
    }
}

fn millis(micros: u32) -> String {
    format!("{:.2} ms", f64::from(micros) / 1000.0)
}

/// Cores used, as a figure with two decimals.
fn core_share(cores: f64) -> String {
    format!("{cores:.2}")
}

fn main() {
    elapsed();
    let settings = Settings::from_env();
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let load = runtime("load");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# Load over loopback: server and load generator on one worker thread each, {cores} \
         cores; warm-up {:.0} s, window {:.0} s; load average at start {}",
        settings.warmup.as_secs_f64(),
        settings.window.as_secs_f64(),
        load_average
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "CPU columns: cores used during the window by the server runtime's thread (with \
         SQLite's worker threads in parts 2 and 3), and by the whole machine (every process)."
    );
    if wanted("layer") {
        part_layer(&load, &settings);
    }
    if wanted("sqlite") {
        part_example(
            &load,
            &settings,
            Backend::Sqlite,
            "SQLite (a temporary file)",
        );
    }
    if wanted("postgres") {
        part_example(&load, &settings, Backend::Postgres, "PostgreSQL");
    }
    if wanted("limit") {
        part_limit(&load, &settings);
    }
    eprintln!("[{:6.1} s] done", elapsed());
}
