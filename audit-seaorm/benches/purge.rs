//! Purge benchmark: how fast `SeaOrmStore::purge` deletes a large expired stretch of the log,
//! and what it does to the latency of the writes that keep arriving meanwhile.
//!
//! Run with `cargo bench -p audit-seaorm --bench purge` (release profile). SQLite always runs,
//! on a temporary file; PostgreSQL runs when `AUDIT_BENCH_POSTGRES_URL` is set, for example
//! `AUDIT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/audit_bench cargo bench -p
//! audit-seaorm --bench purge`. **The bench drops and recreates the audit tables (`audit_log`,
//! `audit_chain_head`, `audit_chain_start`, `audit_legal_hold`, `audit_intent`) in that
//! database**, so point it at a database of its own. Arguments filter backends by name:
//! `cargo bench -p audit-seaorm --bench purge -- sqlite`.
//!
//! Settings (environment):
//! - `AUDIT_BENCH_PURGE_ROWS`: entries stored before the purge (default 2,000,000);
//! - `AUDIT_BENCH_PURGE_INSERT_BATCH`: entries per batch of the concurrent inserter
//!   (default 10);
//! - `AUDIT_BENCH_PURGE_BASELINE_SECS`: how long the inserter runs alone, with no purge
//!   (default 10).
//!
//! Each backend, on emptied tables:
//!
//! 1. **Fill**: the entries, over 50 tenants, through `SeaOrmStore::insert_batch` (the chained
//!    write path) in batches of 1,000. Half of them (each tenant's first half) occurred 60 to
//!    40 days ago, the other half within the last 10 days, written oldest first, so the old
//!    entries are the front of each tenant's chain. Reported as entries per second of wall
//!    time (entries generated on the fly; the time spent in `insert_batch` alone is shown
//!    too). On SQLite the time includes a final WAL checkpoint. Then `ANALYZE` (PostgreSQL:
//!    `VACUUM ANALYZE audit_log`), untimed.
//! 2. **Baseline**: the inserter below alone for `AUDIT_BENCH_PURGE_BASELINE_SECS`.
//! 3. **Purge**: `store.purge(&PurgeRequest::new(Some(tenant), now - 30 days))` for every
//!    tenant, one after the other (the default 1,000 entries per transaction), timed as a
//!    whole: entries deleted per second. The total deleted must be the old half.
//! 4. **Concurrent inserts**: during the baseline and the purge, a task calls
//!    `store.insert_batch` with batches of `AUDIT_BENCH_PURGE_INSERT_BATCH` entries occurring
//!    now, each entry for a random tenant, back to back with a 5 ms sleep between calls; each
//!    call's latency is recorded and reported as p50, p99 and max.
//! 5. **Verification**: one tenant's chain is verified after the purge; it must be intact and
//!    start after the purged entries.

mod common;

use common::{Rng, env_usize, exec, ms, percentile};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use audit_core::AuditEntry;
use audit_core::retention::PurgeRequest;
use audit_seaorm::sea_orm::DbBackend;
use audit_seaorm::{SeaOrmStore, StoreOptions};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use uuid::Uuid;

/// Tenants the entries are spread over.
const TENANTS: usize = 50;
/// Entries per `insert_batch` call while filling.
const FILL_BATCH: usize = 1_000;
/// The inserter's pause between two calls.
const INSERT_PAUSE: Duration = Duration::from_millis(5);
/// The tenant whose chain is verified after the purge.
const VERIFIED_TENANT: usize = 7;

fn tenant_name(tenant: usize) -> String {
    format!("tenant-{tenant:02}")
}

/// Moment `i` of `count` evenly spread over `span` from `from`, with some jitter.
fn moment(
    rng: &mut Rng,
    from: DateTime<Utc>,
    span: ChronoDuration,
    i: usize,
    count: usize,
) -> DateTime<Utc> {
    let micros = span.num_microseconds().unwrap_or(i64::MAX);
    let step = (micros / count.max(1) as i64).max(1);
    from + ChronoDuration::microseconds(step * i as i64 + (rng.next() % step as u64) as i64)
}

/// A store on freshly created, empty tables.
async fn fresh(url: &str) -> SeaOrmStore {
    let store = SeaOrmStore::connect_with(url, StoreOptions::default())
        .await
        .expect("connect");
    for table in [
        "audit_log",
        "audit_chain_head",
        "audit_chain_start",
        "audit_legal_hold",
        "audit_intent",
        "audit_seaql_migrations",
    ] {
        exec(&store, &format!("DROP TABLE IF EXISTS {table}")).await;
    }
    store.migrate().await.expect("migrate");
    store
}

fn sqlite(store: &SeaOrmStore) -> bool {
    store.connection().get_database_backend() == DbBackend::Sqlite
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Latencies of the inserter's calls.
struct Latencies {
    sorted: Vec<Duration>,
    elapsed: Duration,
}

impl Latencies {
    fn row(&self, label: &str, batch: usize) -> String {
        let n = self.sorted.len();
        format!(
            "| {label} | {n} calls in {:.1} s ({:.0} entries/s) | {} | {} | {} |",
            self.elapsed.as_secs_f64(),
            rate((n * batch) as u64, self.elapsed),
            ms(percentile(&self.sorted, 0.5)),
            ms(percentile(&self.sorted, 0.99)),
            ms(self.sorted.last().copied().unwrap_or_default()),
        )
    }
}

/// Starts the inserter: batches of `batch` entries occurring now, each for a random tenant,
/// one `insert_batch` call after the other with [`INSERT_PAUSE`] between them, until `stop`.
fn start_inserter(
    store: &SeaOrmStore,
    batch: usize,
    seed: u64,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Latencies> {
    let store = store.clone();
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let mut rng = Rng(seed | 1);
        let mut times = Vec::new();
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let entries: Vec<AuditEntry> = (0..batch)
                .map(|_| {
                    let tenant = rng.below(TENANTS);
                    common::entry(&mut rng, tenant, Utc::now())
                })
                .collect();
            let call = Instant::now();
            store
                .insert_batch(&entries)
                .await
                .expect("concurrent insert_batch");
            times.push(call.elapsed());
            tokio::time::sleep(INSERT_PAUSE).await;
        }
        let elapsed = started.elapsed();
        times.sort();
        Latencies {
            sorted: times,
            elapsed,
        }
    })
}

#[derive(Clone, Copy)]
struct Settings {
    rows: usize,
    insert_batch: usize,
    baseline: Duration,
}

async fn run(name: &str, url: &str, settings: &Settings) {
    let Settings {
        rows,
        insert_batch,
        baseline,
    } = *settings;
    println!("\n## {name}\n");
    println!("load average at start: {}", load_average());
    let store = fresh(url).await;

    // 1. Fill: the old half of every tenant's entries first, then the recent half.
    let now = Utc::now();
    let old = rows / 2;
    let recent = rows - old;
    let mut rng = Rng(0x5eed_9e37_79b9_7f4a);
    let mut batch = Vec::with_capacity(FILL_BATCH);
    let mut in_store = Duration::ZERO;
    let started = Instant::now();
    for i in 0..rows {
        let (tenant, at) = if i < old {
            let at = moment(
                &mut rng,
                now - ChronoDuration::days(60),
                ChronoDuration::days(20),
                i,
                old,
            );
            (i % TENANTS, at)
        } else {
            let j = i - old;
            let at = moment(
                &mut rng,
                now - ChronoDuration::days(10),
                ChronoDuration::days(10),
                j,
                recent,
            );
            (j % TENANTS, at)
        };
        batch.push(common::entry(&mut rng, tenant, at));
        if batch.len() == FILL_BATCH || i + 1 == rows {
            let call = Instant::now();
            store.insert_batch(&batch).await.expect("fill insert_batch");
            in_store += call.elapsed();
            batch.clear();
        }
        if (i + 1) % 250_000 == 0 {
            eprintln!(
                "  {name}: {} entries stored, {:.0} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if sqlite(&store) {
        exec(&store, "PRAGMA wal_checkpoint(PASSIVE)").await;
    }
    let fill = started.elapsed();
    let analyzed = Instant::now();
    if sqlite(&store) {
        exec(&store, "ANALYZE").await;
    } else {
        exec(&store, "VACUUM ANALYZE audit_log").await;
    }
    let analyze = analyzed.elapsed();
    println!(
        "fill: {rows} entries in {:.1} s, {:.0} entries/s ({:.0} entries/s counting only the \
         time in insert_batch); analyze {:.1} s",
        fill.as_secs_f64(),
        rate(rows as u64, fill),
        rate(rows as u64, in_store),
        analyze.as_secs_f64()
    );

    // 2. Baseline: the inserter alone.
    let stop = Arc::new(AtomicBool::new(false));
    let inserter = start_inserter(&store, insert_batch, 0xba5e, &stop);
    tokio::time::sleep(baseline).await;
    stop.store(true, Ordering::Relaxed);
    let alone = inserter.await.expect("baseline inserter");
    println!("baseline inserter done: {} calls", alone.sorted.len());

    // 3. Purge, tenant after tenant, with the inserter running.
    let before = Utc::now() - ChronoDuration::days(30);
    let stop = Arc::new(AtomicBool::new(false));
    let inserter = start_inserter(&store, insert_batch, 0x9a49e, &stop);
    let mut deleted = 0u64;
    let mut matched = 0u64;
    let mut per_tenant = Vec::with_capacity(TENANTS);
    let mut starts = vec![0u64; TENANTS];
    let started = Instant::now();
    for (tenant, start) in starts.iter_mut().enumerate() {
        let name = tenant_name(tenant);
        let one = Instant::now();
        let report = store
            .purge(&PurgeRequest::new(Some(&name), before))
            .await
            .expect("purge");
        per_tenant.push(one.elapsed());
        assert!(report.held.is_none(), "{name} is on legal hold");
        assert_eq!(report.matched, report.deleted, "{name}: matched vs deleted");
        deleted += report.deleted;
        matched += report.matched;
        *start = report.chain_start;
    }
    let purge = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = inserter.await.expect("inserter during the purge");
    let checkpoint = if sqlite(&store) {
        let started = Instant::now();
        exec(&store, "PRAGMA wal_checkpoint(PASSIVE)").await;
        Some(started.elapsed())
    } else {
        None
    };
    assert_eq!(deleted, old as u64, "entries deleted vs the old half");
    assert_eq!(matched, old as u64, "entries matched vs the old half");
    per_tenant.sort();

    // 4. Verification of one tenant's chain.
    let verified = Instant::now();
    let chain = store
        .verify_chain(Some(&tenant_name(VERIFIED_TENANT)))
        .await
        .expect("verify_chain");
    let verify = verified.elapsed();
    assert!(chain.is_intact(), "broken chain: {:?}", chain.broken);
    assert!(chain.start > 0, "the chain still starts at its beginning");
    let old_of_tenant = (0..old).filter(|i| i % TENANTS == VERIFIED_TENANT).count() as u64;
    assert_eq!(chain.start, old_of_tenant, "the chain's start");
    assert_eq!(starts[VERIFIED_TENANT], chain.start, "purge report's start");

    println!("load average at end: {}", load_average());
    println!("\n### {name}: summary\n");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| fill ({rows} entries, 50 tenants, batches of {FILL_BATCH}) | {:.1} s, {:.0} entries/s \
         ({:.0} entries/s in insert_batch) |",
        fill.as_secs_f64(),
        rate(rows as u64, fill),
        rate(rows as u64, in_store),
    );
    println!(
        "| purge (50 tenants, one after the other) | {deleted} entries deleted in {:.1} s, {:.0} \
         entries/s |",
        purge.as_secs_f64(),
        rate(deleted, purge),
    );
    println!(
        "| purge of one tenant (~{} entries) | min {} ms, p50 {} ms, max {} ms |",
        deleted / TENANTS as u64,
        ms(per_tenant.first().copied().unwrap_or_default()),
        ms(percentile(&per_tenant, 0.5)),
        ms(per_tenant.last().copied().unwrap_or_default()),
    );
    if let Some(checkpoint) = checkpoint {
        println!(
            "| WAL checkpoint after the purge (not in the purge time) | {} ms |",
            ms(checkpoint)
        );
    }
    println!(
        "| verify_chain({}) after the purge | intact, starts after {}, {} entries checked in {} \
         ms |",
        tenant_name(VERIFIED_TENANT),
        chain.start,
        chain.checked,
        ms(verify),
    );
    println!(
        "\nConcurrent insert_batch, {insert_batch} entries a call (random tenants), 5 ms sleep \
         between calls:\n"
    );
    println!("| inserter | calls | p50 ms | p99 ms | max ms |");
    println!("|---|---|---:|---:|---:|");
    println!("{}", alone.row("alone (no purge)", insert_batch));
    println!("{}", during.row("during the purge", insert_batch));
}

fn main() {
    let settings = Settings {
        rows: env_usize("AUDIT_BENCH_PURGE_ROWS", 2_000_000),
        insert_batch: env_usize("AUDIT_BENCH_PURGE_INSERT_BATCH", 10).max(1),
        baseline: Duration::from_secs(env_usize("AUDIT_BENCH_PURGE_BASELINE_SECS", 10) as u64),
    };
    let wanted = common::backend_filter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "rows={} tenants={TENANTS} insert_batch={} baseline={} s cpus={}",
            settings.rows,
            settings.insert_batch,
            settings.baseline.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        if wanted("sqlite") {
            let path =
                std::env::temp_dir().join(format!("audit-seaorm-purge-{}.db", Uuid::now_v7()));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            run("SQLite (file, WAL, Normal)", &url, &settings).await;
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        match std::env::var("AUDIT_BENCH_POSTGRES_URL") {
            Ok(url) if wanted("postgresql") => run("PostgreSQL", &url, &settings).await,
            Ok(_) => {}
            Err(_) => println!("\n(PostgreSQL skipped: AUDIT_BENCH_POSTGRES_URL is not set)"),
        }
    });
}
