//! Storage benchmark: insert throughput and query latency of `SeaOrmStore`.
//!
//! Run with `cargo bench -p audit-seaorm --bench storage` (release profile). SQLite always runs,
//! on a temporary file; PostgreSQL and MySQL run when `AUDIT_BENCH_POSTGRES_URL` /
//! `AUDIT_BENCH_MYSQL_URL` are set. **The bench drops and recreates `audit_log` in those
//! databases**, so point them at a database of its own.
//!
//! Settings (environment):
//! - `AUDIT_BENCH_ROWS`: entries in the query dataset (default 1,000,000), over
//!   `AUDIT_BENCH_TENANTS` tenants (default 50), loaded in batches of 1,000 with the insert
//!   rate of each 250,000-entry slice reported (the growth figures: set it to 2,000,000), and
//!   the table's and indexes' sizes after;
//! - `AUDIT_BENCH_INSERT_ROWS`: entries per insert measurement (default 20,000; a tenth of
//!   that for single-entry inserts);
//! - `AUDIT_BENCH_SAMPLES`: timed runs of each query (default 200);
//! - `AUDIT_BENCH_INSERT_ROUNDS`: runs of each insert variant, alternating their order
//!   (default 2); the median is reported;
//! - `AUDIT_BENCH_BEFORE_LOAD`: SQL statements (separated by `;`) run on the emptied table
//!   before the query dataset is loaded, such as `DROP INDEX …`, to measure what an index
//!   costs a growing log and what its queries cost without it;
//! - `AUDIT_BENCH_SQLITE_DURABILITY`: the SQLite durabilities whose inserts are measured, each
//!   on a file of its own (default `normal,full`); the query dataset uses the first.
//!
//! Either size set to 0 skips that part. Arguments filter backends by name:
//! `cargo bench -p audit-seaorm --bench storage -- sqlite`.
//!
//! Inserts are measured through the store (`record` / `record_batch`, all indexes in place,
//! each entry linked into its tenant's hash chain), through the store with the chain off (the
//! same statements in the same transaction, nothing of the chain's) and as a raw SQLx
//! multi-row insert of the same rows into the same table, each into an emptied table. The raw insert runs on the pool of `SeaOrmStore::connection`; on a SQLite
//! file the store writes through a connection of its own. SQLite runs are timed until the WAL
//! has been checkpointed, so a short run does not leave out the cost it defers. Batches of 999
//! show what cutting a batch into the store's statement shapes costs: two statements, against
//! the raw insert's one. Queries are timed through `AuditStore::query` on one tenant, after
//! warm-up, and reported as p50 and p99.

mod common;

use common::{Rng, env_usize, exec, ms, percentile};
use std::time::{Duration, Instant};

use audit_core::{Action, AuditEntry, AuditSink};

use audit_core::store::{AuditQuery, AuditStore, Order, Scope};
use audit_seaorm::entity;
use audit_seaorm::sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use audit_seaorm::{SeaOrmStore, SqliteDurability, StoreOptions};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use sea_orm::sqlx;
use uuid::Uuid;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Entries `range` of a timeline of `total` realistic entries over `tenants` tenants, in time
/// order across one year, with UUIDv7 ids made from their own timestamps. Slices of one
/// timeline can be made one at a time, so a large dataset never sits in memory whole.
fn dataset(
    range: std::ops::Range<usize>,
    total: usize,
    tenants: usize,
    seed: u64,
) -> Vec<AuditEntry> {
    let mut rng = Rng((seed ^ (range.start as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    let year_micros: i64 = 365 * 24 * 3600 * 1_000_000;
    let step = (year_micros / total.max(1) as i64).max(1);
    range
        .map(|i| {
            let at = start()
                + ChronoDuration::microseconds(step * i as i64 + (rng.next() % step as u64) as i64);
            let tenant = rng.below(tenants);
            common::entry(&mut rng, tenant, at)
        })
        .collect()
}

/// One multi-row `INSERT … ON CONFLICT DO NOTHING` per batch, written with SQLx's
/// `QueryBuilder` and bound values: what a hand-written sink would do.
macro_rules! raw_insert {
    ($db:ty, $pool:expr, $rows:expr, $conflict:expr) => {{
        let mut qb = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO audit_log (id, occurred_at, tenant_id, team_id, actor_kind, actor_id, \
             actor_name, api_key_id, api_key_name, action, entity_type, entity_id, entity_name, \
             details, changes, outcome, status, ip, user_agent, request_id, method, route, \
             metadata, search_text) ",
        );
        qb.push_values($rows, |mut b, e: &AuditEntry| {
            b.push_bind(e.id)
                .push_bind(e.occurred_at)
                .push_bind(e.tenant_id.as_deref())
                .push_bind(e.team_id.as_deref())
                .push_bind(e.actor_kind.as_str())
                .push_bind(e.actor_id.as_deref())
                .push_bind(e.actor_name.as_deref())
                .push_bind(e.api_key_id.as_deref())
                .push_bind(e.api_key_name.as_deref())
                .push_bind(e.action.as_str())
                .push_bind(e.entity_type.as_deref())
                .push_bind(e.entity_id.as_deref())
                .push_bind(e.entity_name.as_deref())
                .push_bind(e.details.as_deref())
                .push_bind(sqlx::types::Json(&e.changes))
                .push_bind(e.outcome.as_str())
                .push_bind(e.status.map(i32::from))
                .push_bind(e.ip.map(|ip| ip.to_string()))
                .push_bind(e.user_agent.as_deref())
                .push_bind(e.request_id.as_deref())
                .push_bind(e.method.as_deref())
                .push_bind(e.route.as_deref())
                .push_bind(sqlx::types::Json(&e.metadata))
                .push_bind(AuditQuery::search_text(e));
        });
        qb.push($conflict);
        qb.build().execute($pool).await.map(|_| ())
    }};
}

async fn raw_batch(store: &SeaOrmStore, rows: &[AuditEntry]) -> Result<(), sqlx::Error> {
    let db = store.connection();
    match db.get_database_backend() {
        DbBackend::Sqlite => raw_insert!(
            sqlx::Sqlite,
            db.get_sqlite_connection_pool(),
            rows.iter(),
            " ON CONFLICT (id) DO NOTHING"
        ),
        DbBackend::Postgres => raw_insert!(
            sqlx::Postgres,
            db.get_postgres_connection_pool(),
            rows.iter(),
            " ON CONFLICT (id) DO NOTHING"
        ),
        _ => raw_insert!(
            sqlx::MySql,
            db.get_mysql_connection_pool(),
            rows.iter(),
            " ON DUPLICATE KEY UPDATE id = id"
        ),
    }
}

/// Empties the table between measurements.
async fn empty(store: &SeaOrmStore) {
    match store.connection().get_database_backend() {
        DbBackend::Sqlite => {
            for table in ["audit_log", "audit_chain_head"] {
                exec(store, &format!("DELETE FROM {table}")).await;
            }
            exec(store, "PRAGMA wal_checkpoint(TRUNCATE)").await;
        }
        _ => {
            for table in ["audit_log", "audit_chain_head"] {
                exec(store, &format!("TRUNCATE TABLE {table}")).await;
            }
        }
    }
}

/// A fresh, empty, migrated table.
async fn fresh(url: &str, options: StoreOptions) -> SeaOrmStore {
    let store = SeaOrmStore::connect_with(url, options)
        .await
        .expect("connect");
    for table in ["audit_log", "audit_chain_head"] {
        exec(&store, &format!("DROP TABLE IF EXISTS {table}")).await;
    }
    exec(&store, "DROP TABLE IF EXISTS audit_seaql_migrations").await;
    store.migrate().await.expect("migrate");
    store
}

fn rate(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

async fn bench_inserts(name: &str, store: &SeaOrmStore, insert_rows: usize, rounds: usize) {
    println!("\n### {name}: insert throughput (entries/s, all indexes in place)\n");
    println!(
        "| batch size | rows | store, chained | store, chain off | raw SQLx multi-row insert \
         | chained / off | chained / raw |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for batch in [1usize, 100, 999, 1000] {
        let rows = if batch == 1 {
            (insert_rows / 10).max(1)
        } else {
            insert_rows
        };
        let data = dataset(0..rows, rows, 50, 0x5eed + batch as u64);
        // Each variant into an emptied table, in one order and then in the reverse one, for
        // as many rounds as asked, so that none always gets the warmer cache; each variant's
        // median run is reported (the machine's speed drifts from minute to minute).
        let mut runs: [Vec<f64>; 3] = Default::default();
        for round in 0..rounds.max(1) {
            let order = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for which in order {
                empty(store).await;
                let started = Instant::now();
                for chunk in data.chunks(batch) {
                    match which {
                        0 if batch == 1 => store.record(chunk[0].clone()).await.expect("record"),
                        0 => store
                            .record_batch(chunk.to_vec())
                            .await
                            .expect("record_batch"),
                        1 => store
                            .insert_batch_unchained(chunk)
                            .await
                            .expect("unchained insert"),
                        _ => raw_batch(store, chunk).await.expect("raw insert"),
                    }
                }
                // Until the WAL is checkpointed: SQLite defers part of a commit's cost to the
                // checkpoint, which a run this short might otherwise leave out.
                if store.connection().get_database_backend() == DbBackend::Sqlite {
                    exec(store, "PRAGMA wal_checkpoint(PASSIVE)").await;
                }
                runs[which].push(rate(rows, started.elapsed()));
            }
        }
        let [chained, off, raw] = runs.map(|mut r| {
            r.sort_by(f64::total_cmp);
            let mid = r.len() / 2;
            if r.len() % 2 == 0 {
                (r[mid - 1] + r[mid]) / 2.0
            } else {
                r[mid]
            }
        });
        println!(
            "| {batch} | {rows} | {chained:.0} | {off:.0} | {raw:.0} | {:.2} | {:.2} |",
            chained / off,
            chained / raw
        );
    }
    empty(store).await;
}

/// Verifies the chains of `rows` entries over 50 tenants, stored in batches of 1,000.
async fn bench_verify(name: &str, store: &SeaOrmStore, rows: usize) {
    empty(store).await;
    let data = dataset(0..rows, rows, 50, 0x7e41f);
    for chunk in data.chunks(1000) {
        store
            .record_batch(chunk.to_vec())
            .await
            .expect("record_batch");
    }
    let started = Instant::now();
    let reports = store.verify_chains().await.expect("verify");
    let elapsed = started.elapsed();
    let checked: u64 = reports.iter().map(|r| r.checked).sum();
    assert!(reports.iter().all(|r| r.is_intact()), "a chain is broken");
    assert_eq!(checked as usize, rows, "entries verified");
    println!(
        "\n### {name}: chain verification\n\n{checked} entries in {} chains verified in {:.2} s: {:.0} entries/s",
        reports.len(),
        elapsed.as_secs_f64(),
        rate(rows, elapsed)
    );
    // What reading the same rows alone costs, tenant by tenant in chain order: through SQLx
    // (rows fetched, no column decoded) and through SeaORM (models built).
    let db = store.connection();
    let tenants: Vec<Option<String>> = entity::Entity::find()
        .select_only()
        .column(entity::Column::TenantId)
        .distinct()
        .into_tuple()
        .all(db)
        .await
        .expect("tenants");
    let started = Instant::now();
    let mut fetched = 0;
    for tenant in &tenants {
        let tenant = tenant.clone().unwrap_or_default();
        fetched += match db.get_database_backend() {
            DbBackend::Sqlite => {
                sqlx::query("SELECT * FROM audit_log WHERE tenant_id = ? ORDER BY chain_seq")
                    .bind(tenant)
                    .fetch_all(db.get_sqlite_connection_pool())
                    .await
                    .expect("read")
                    .len()
            }
            DbBackend::Postgres => {
                sqlx::query("SELECT * FROM audit_log WHERE tenant_id = $1 ORDER BY chain_seq")
                    .bind(tenant)
                    .fetch_all(db.get_postgres_connection_pool())
                    .await
                    .expect("read")
                    .len()
            }
            _ => sqlx::query("SELECT * FROM audit_log WHERE tenant_id = ? ORDER BY chain_seq")
                .bind(tenant)
                .fetch_all(db.get_mysql_connection_pool())
                .await
                .expect("read")
                .len(),
        };
    }
    let sqlx_rate = rate(fetched, started.elapsed());
    let started = Instant::now();
    let mut fetched = 0;
    for tenant in &tenants {
        fetched += entity::Entity::find()
            .filter(entity::Column::TenantId.eq(tenant.clone()))
            .order_by_asc(entity::Column::ChainSeq)
            .all(db)
            .await
            .expect("read")
            .len();
    }
    let seaorm_rate = rate(fetched, started.elapsed());
    println!(
        "Reading the same rows alone, one tenant after another: {sqlx_rate:.0} rows/s through \
         SQLx (no column decoded), {seaorm_rate:.0} rows/s through SeaORM models."
    );
    empty(store).await;
}

async fn time_query(
    store: &SeaOrmStore,
    query: &AuditQuery,
    samples: usize,
) -> (Duration, Duration, usize) {
    let mut items = 0;
    for _ in 0..samples.min(10) {
        items = store.query(query).await.expect("query").items.len();
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let page = store.query(query).await.expect("query");
        times.push(started.elapsed());
        items = page.items.len();
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), items)
}

async fn bench_queries(
    name: &str,
    store: &SeaOrmStore,
    rows: usize,
    tenants: usize,
    samples: usize,
) {
    empty(store).await;
    // What an index costs a growing log: statements run on the emptied table before loading
    // (`DROP INDEX …`, `CREATE INDEX …`).
    let before = std::env::var("AUDIT_BENCH_BEFORE_LOAD").unwrap_or_default();
    for statement in before.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        exec(store, statement).await;
        println!("\n(before loading: `{statement}`)");
    }
    let started = Instant::now();
    let mut loaded = 0;
    // Generated and loaded in slices, so the dataset never sits in memory whole; each slice's
    // rate shows what a growing log does to inserts.
    let slice = 250_000;
    let mut slices = Vec::new();
    while loaded < rows {
        let n = slice.min(rows - loaded);
        let part = dataset(loaded..loaded + n, rows, tenants, 0xdead_beef);
        let slice_started = Instant::now();
        for chunk in part.chunks(1000) {
            store.record_batch(chunk.to_vec()).await.expect("load");
        }
        if store.connection().get_database_backend() == DbBackend::Sqlite {
            exec(store, "PRAGMA wal_checkpoint(PASSIVE)").await;
        }
        slices.push((loaded + n, rate(n, slice_started.elapsed())));
        loaded += n;
    }
    let load = started.elapsed();
    match store.connection().get_database_backend() {
        DbBackend::Sqlite => exec(store, "ANALYZE").await,
        DbBackend::Postgres => exec(store, "VACUUM ANALYZE audit_log").await,
        _ => exec(store, "ANALYZE TABLE audit_log").await,
    }
    println!(
        "\n### {name}: query latency on {loaded} entries over {tenants} tenants (one tenant, ~{} entries)\n",
        loaded / tenants.max(1)
    );
    println!(
        "Loaded through `record_batch` (chained) in batches of 1000 at {:.0} entries/s ({:.1} s). \
         Per 250,000-entry slice, as the log grows:\n",
        rate(loaded, load),
        load.as_secs_f64()
    );
    println!("| entries after the slice | entries/s |");
    println!("|---:|---:|");
    for (after, per_second) in &slices {
        println!("| {after} | {per_second:.0} |");
    }
    println!();
    print_sizes(store).await;
    println!("| query | rows returned | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    let tenant = "tenant-07";
    let base = || AuditQuery::new(Scope::tenant(tenant));
    let mid = start() + ChronoDuration::days(180);
    let cases: Vec<(&str, AuditQuery)> = vec![
        ("first page (100, newest first)", base()),
        ("first page, oldest first", base().order(Order::Asc)),
        (
            "entity type + action",
            base()
                .entity_type("ConnectionProfile")
                .action(Action::Update),
        ),
        (
            "time range (one week, mid-year)",
            base().from(mid).to(mid + ChronoDuration::days(7)),
        ),
        ("actor id", base().actor_id("user-17")),
        ("entity id", base().entity_id("1234")),
        ("team scope", AuditQuery::new(Scope::team(tenant, "team-3"))),
        (
            "free text, common (\"salesforce prod\")",
            base().text("salesforce prod"),
        ),
        (
            "free text, no match (scans the tenant)",
            base().text("no such text"),
        ),
        (
            "free text, short term, no match (\"zq\")",
            base().text("zq"),
        ),
        (
            "free text, rare term (\"deployer 7\")",
            base().text("deployer 7"),
        ),
    ];
    for (label, query) in &cases {
        let (p50, p99, n) = time_query(store, query, samples).await;
        println!("| {label} | {n} | {} | {} |", ms(p50), ms(p99));
    }
    bench_grouped(store, tenant, samples).await;
    // Deep pages: walk to them once by cursor, then time the page itself.
    for (label, limit, page_number) in [
        ("first page at limit 20", 20u32, 1usize),
        ("page 1000 at limit 20, by cursor", 20, 1000),
        ("last page at limit 100, by cursor", 100, usize::MAX),
    ] {
        let mut query = base().limit(limit);
        let mut reached = 1;
        while reached < page_number {
            let page = store.query(&query).await.expect("walk");
            match page.next_cursor {
                Some(cursor) => {
                    query.cursor = Some(cursor);
                    reached += 1;
                }
                None => break,
            }
        }
        let (p50, p99, n) = time_query(store, &query, samples).await;
        println!(
            "| {label} (page {reached}) | {n} | {} | {} |",
            ms(p50),
            ms(p99)
        );
    }
}

/// p50, p99 and the size of the answer of `run`, timed `samples` times after warm-up.
async fn time_answer<F, Fut>(samples: usize, mut run: F) -> (Duration, Duration, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut size = 0;
    for _ in 0..samples.min(10) {
        size = run().await;
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        size = run().await;
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), size)
}

/// The grouped questions of the admin API on one tenant, as the admin router asks them (the
/// log's own reads left out): a summary of 30 days (the default range) by action, actor and
/// entity type, the actor list with and without text, and the facets, over the whole log.
async fn bench_grouped(store: &SeaOrmStore, tenant: &str, samples: usize) {
    use audit_core::store::{MAX_FACET_VALUES, SummaryBy};
    let base = || AuditQuery::new(Scope::tenant(tenant)).hide_log_reads(true);
    let from = start() + ChronoDuration::days(180);
    let month = base().from(from).to(from + ChronoDuration::days(30));
    println!();
    println!("| grouped query | rows in the answer | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for by in SummaryBy::ALL {
        let (p50, p99, n) = time_answer(samples, || async {
            store
                .summary(&month, by)
                .await
                .expect("summary")
                .counts
                .len()
        })
        .await;
        println!(
            "| summary, 30 days, by {by} (day × key counts) | {n} | {} | {} |",
            ms(p50),
            ms(p99)
        );
    }
    for (label, text) in [
        ("actors, whole log, latest 20", None),
        ("actors, whole log, text \"user-1\"", Some("user-1")),
    ] {
        let (p50, p99, n) = time_answer(samples, || async {
            store.actors(&base(), text, 20).await.expect("actors").len()
        })
        .await;
        println!("| {label} | {n} | {} | {} |", ms(p50), ms(p99));
    }
    let (p50, p99, n) = time_answer(samples, || async {
        let facets = store
            .facets(&base(), MAX_FACET_VALUES)
            .await
            .expect("facets");
        facets.entity_types.len()
            + facets.actions.len()
            + facets.teams.len()
            + facets.api_keys.len()
    })
    .await;
    println!("| facets, whole log | {n} | {} | {} |", ms(p50), ms(p99));
    println!();
}

/// The table's and each index's size on disk, in MiB (PostgreSQL and MySQL from their
/// catalogues; SQLite from `dbstat` when the library has it).
async fn print_sizes(store: &SeaOrmStore) {
    let db = store.connection();
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT c.relname AS name, pg_relation_size(c.oid)::BIGINT AS bytes FROM pg_class c \
             WHERE c.relname = 'audit_log' OR c.oid IN (SELECT indexrelid FROM pg_index \
             WHERE indrelid = 'audit_log'::regclass) ORDER BY bytes DESC"
        }
        DbBackend::Sqlite => {
            "SELECT name, SUM(pgsize) AS bytes FROM dbstat WHERE name = 'audit_log' OR name IN \
             (SELECT name FROM sqlite_master WHERE tbl_name = 'audit_log') GROUP BY name \
             ORDER BY bytes DESC"
        }
        _ => {
            "SELECT index_name AS name, CAST(stat_value * @@innodb_page_size AS SIGNED) AS bytes \
             FROM mysql.innodb_index_stats WHERE table_name = 'audit_log' \
             AND stat_name = 'size' ORDER BY bytes DESC"
        }
    };
    let rows = match db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            println!("(sizes not available: {e})\n");
            return;
        }
    };
    println!("| object | MiB |");
    println!("|---|---:|");
    for row in rows {
        let name: String = row.try_get("", "name").unwrap_or_default();
        let bytes: i64 = row.try_get("", "bytes").unwrap_or_default();
        println!("| {name} | {:.0} |", bytes as f64 / (1024.0 * 1024.0));
    }
    println!();
}

/// What one run measures.
#[derive(Clone, Copy)]
struct Sizes {
    rows: usize,
    tenants: usize,
    insert_rows: usize,
    verify_rows: usize,
    samples: usize,
    rounds: usize,
}

async fn run(name: &str, url: &str, options: StoreOptions, sizes: &Sizes) {
    let Sizes {
        rows,
        tenants,
        insert_rows,
        verify_rows,
        samples,
        rounds,
    } = *sizes;
    let store = fresh(url, options).await;
    if insert_rows > 0 {
        bench_inserts(name, &store, insert_rows, rounds).await;
    }
    if verify_rows > 0 {
        bench_verify(name, &store, verify_rows).await;
    }
    if rows > 0 {
        bench_queries(name, &store, rows, tenants, samples).await;
    }
}

fn main() {
    let rows = env_usize("AUDIT_BENCH_ROWS", 1_000_000);
    let tenants = env_usize("AUDIT_BENCH_TENANTS", 50);
    let insert_rows = env_usize("AUDIT_BENCH_INSERT_ROWS", 20_000);
    let verify_rows = env_usize("AUDIT_BENCH_VERIFY_ROWS", 100_000);
    let samples = env_usize("AUDIT_BENCH_SAMPLES", 200);
    let durabilities: Vec<SqliteDurability> = std::env::var("AUDIT_BENCH_SQLITE_DURABILITY")
        .unwrap_or_else(|_| "normal,full".into())
        .split(',')
        .map(|d| match d.trim().to_ascii_lowercase().as_str() {
            "normal" => SqliteDurability::Normal,
            "full" => SqliteDurability::Full,
            other => panic!("AUDIT_BENCH_SQLITE_DURABILITY: unknown durability {other:?}"),
        })
        .collect();
    let wanted = common::backend_filter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "rows={rows} tenants={tenants} insert_rows={insert_rows} samples={samples} cpus={}",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let sizes = Sizes {
            rows,
            tenants,
            insert_rows,
            verify_rows,
            samples,
            rounds: env_usize("AUDIT_BENCH_INSERT_ROUNDS", 2),
        };
        if wanted("sqlite") {
            for (i, durability) in durabilities.iter().enumerate() {
                let path =
                    std::env::temp_dir().join(format!("audit-seaorm-bench-{}.db", Uuid::now_v7()));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                // The query dataset once, with the first durability.
                let sizes = Sizes {
                    rows: if i == 0 { rows } else { 0 },
                    verify_rows: if i == 0 { verify_rows } else { 0 },
                    ..sizes
                };
                run(
                    &format!("SQLite (file, WAL, {durability:?})"),
                    &url,
                    StoreOptions::new().sqlite_durability(*durability),
                    &sizes,
                )
                .await;
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        for (name, var) in [
            ("PostgreSQL", "AUDIT_BENCH_POSTGRES_URL"),
            ("MySQL", "AUDIT_BENCH_MYSQL_URL"),
        ] {
            match std::env::var(var) {
                Ok(url) if wanted(name) => run(name, &url, StoreOptions::new(), &sizes).await,
                Ok(_) => {}
                Err(_) => println!("\n({name} skipped: {var} is not set)"),
            }
        }
    });
}
