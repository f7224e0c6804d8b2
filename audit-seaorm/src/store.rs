//! [`SeaOrmStore`]: the audit log in a SeaORM database, as a sink (what the layer writes to)
//! and as a store (what the admin router reads from): connecting, migrating, and the SQLite
//! settings the store opens its connections with.

use std::time::Duration;

use async_trait::async_trait;
use audit_core::chain::{ChainLink, ChainReport};
use audit_core::store::{AuditQuery, AuditStore, Page, Scope, StoreError};
use audit_core::{AuditEntry, AuditSink, SinkError};
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    IsolationLevel, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use crate::error::{sink_error, sqlx_error, store_error};
use crate::migration::Migrator;
use crate::options::StoreOptions;
use crate::{read, write};

/// How long a SQLite connection waits for another writer's lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The audit log in a SQLite, PostgreSQL or MySQL/MariaDB database through SeaORM.
///
/// Cloning is cheap and clones share the connection pools.
///
/// Free text matches case-insensitively by lowering both sides; SQLite's `LOWER` folds ASCII
/// letters only, so there `É` and `é` differ, while PostgreSQL and MySQL fold all letters.
///
/// ```no_run
/// use audit_core::{Action, AuditEntry, AuditSink};
/// use audit_core::store::{AuditQuery, AuditStore, Scope};
/// use audit_seaorm::SeaOrmStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SeaOrmStore::connect("sqlite://audit.db?mode=rwc").await?;
/// store.record(AuditEntry::builder(Action::Create).tenant("acme").build()).await?;
/// let page = store.query(&AuditQuery::new(Scope::tenant("acme"))).await?;
/// assert_eq!(page.items.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    /// Reads, and whatever the user does through [`SeaOrmStore::connection`].
    db: DatabaseConnection,
    /// The store's own writes and migrations: a pool of its own when the store opened the
    /// connections ([`SeaOrmStore::connect_with`]: one connection on a SQLite file,
    /// [`SERVER_WRITER_CONNECTIONS`] on a server); `db` when given one by [`SeaOrmStore::new`].
    writer: DatabaseConnection,
    /// The isolation the store's write transactions ask for (see
    /// [`SeaOrmStore::insert_batch`]); `None` where the writer's sessions are read committed
    /// already.
    write_isolation: Option<IsolationLevel>,
}

/// Connections the store keeps for its own writes on PostgreSQL and MySQL, apart from the pool
/// it reads with and hands out as [`SeaOrmStore::connection`]. The writer task writes one batch
/// at a time; the others serve intents and concurrent writers (the admin router's reads).
pub const SERVER_WRITER_CONNECTIONS: u32 = 4;

/// Opens a SQLite pool, retrying while the file is locked. Setting up a connection switches the
/// file to WAL mode, which needs a moment of exclusive access that SQLite does not wait for:
/// several processes opening one new file at once (replicas starting together) could fail
/// with "database is locked". The retries stop after [`SQLITE_BUSY_TIMEOUT`].
async fn connect_sqlite(
    options: impl Fn() -> ConnectOptions,
) -> Result<DatabaseConnection, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match Database::connect(options()).await {
            Ok(db) => return Ok(db),
            Err(err) if sqlite_busy(&err) && started.elapsed() < SQLITE_BUSY_TIMEOUT => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(err) => return Err(store_error(err)),
        }
    }
}

/// Whether `err` is SQLite's "busy" or "locked" (primary result codes 5 and 6).
fn sqlite_busy(err: &DbErr) -> bool {
    let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error(err) else {
        return false;
    };
    // Extended result codes keep the primary code in their low byte.
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// How many WAL pages a SQLite commit may leave before it checkpoints (SQLite's default is
/// 1,000).
const SQLITE_WAL_AUTOCHECKPOINT: u32 = 10_000;
/// The size, in bytes, a SQLite WAL file is cut back to after a checkpoint.
const SQLITE_JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// How long [`SeaOrmStore::migrate`] waits for another process's migration to finish, on
/// PostgreSQL and MySQL/MariaDB.
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// The name both server backends lock while one process migrates.
const MIGRATION_LOCK: &str = "audit_seaorm_migrate";

/// Runs [`Migrator`] on `db` while holding the database's migration lock, so that processes
/// migrating one database at the same moment take turns instead of racing to create the same
/// table and indexes.
async fn migrate_locked(db: &DatabaseConnection) -> Result<(), StoreError> {
    let timeout = MIGRATION_LOCK_TIMEOUT.as_secs();
    match db.get_database_backend() {
        DbBackend::Postgres => {
            // Everything runs in this one transaction: the lock (scoped to this database) is
            // released when it ends, whether it commits or not. READ COMMITTED whatever the
            // server's default, so that a process that waited for the lock then sees what the
            // one before it created (a snapshot taken before the wait would not).
            let txn = db
                .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
                .map_err(store_error)?;
            txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{timeout}s'"))
                .await
                .map_err(store_error)?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock(hashtext('{MIGRATION_LOCK}'))"
            ))
            .await
            .map_err(store_error)?;
            Migrator::up(&txn, None).await.map_err(store_error)?;
            txn.commit().await.map_err(store_error)
        }
        DbBackend::MySql => {
            // A named lock belongs to a session and is server-wide: the transaction keeps every
            // statement on one session (MySQL commits each schema change on its own anyway),
            // and the name carries the database's. Once asked for, the lock is given back on
            // every path; if this future is dropped half-way, the session keeps it until its
            // connection closes (at the latest when the store's pool does).
            let name = format!("CONCAT('{MIGRATION_LOCK}:', LEFT(SHA1(DATABASE()), 40))");
            let txn = db.begin().await.map_err(store_error)?;
            let migrated = async {
                let got = txn
                    .query_one_raw(Statement::from_string(
                        DbBackend::MySql,
                        format!("SELECT GET_LOCK({name}, {timeout}) AS got"),
                    ))
                    .await
                    .map_err(store_error)?
                    .map(|row| row.try_get::<Option<i64>>("", "got"))
                    .transpose()
                    .map_err(store_error)?
                    .flatten();
                if got != Some(1) {
                    return Err(StoreError::Unavailable(format!(
                        "another process held the audit log's migration lock for over {timeout} s"
                    )));
                }
                Migrator::up(&txn, None).await.map_err(store_error)
            }
            .await;
            // Releasing a lock this session does not hold does nothing.
            let released = txn
                .execute_unprepared(&format!("DO RELEASE_LOCK({name})"))
                .await
                .map_err(store_error);
            migrated?;
            released?;
            txn.commit().await.map_err(store_error)
        }
        _ => {
            // `BEGIN IMMEDIATE` takes SQLite's one write lock up front (waiting for it up to
            // the busy timeout), so the check for each table and index and its creation
            // happen under one lock.
            let txn = db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .map_err(store_error)?;
            Migrator::up(&txn, None).await.map_err(store_error)?;
            txn.commit().await.map_err(store_error)
        }
    }
}

/// Options shared by every pool [`SeaOrmStore::connect_with`] opens.
fn base_options(url: &str) -> ConnectOptions {
    let mut connect = ConnectOptions::new(url);
    connect.sqlx_logging(false);
    connect
}

impl SeaOrmStore {
    /// Connects to `url` (`sqlite://…`, `postgres://…` or `mysql://…`) with the default
    /// [`StoreOptions`] and runs the [`Migrator`], so the table and its indexes exist.
    ///
    /// SQLite databases are opened in WAL mode with `synchronous = NORMAL`
    /// ([`SqliteDurability::Normal`](crate::SqliteDurability::Normal): a committed entry survives a crash of the process, an
    /// operating-system crash or power cut can lose the last commits but never corrupts the
    /// file), a [`SQLITE_BUSY_TIMEOUT`], a 64 MiB page cache and a 256 MiB memory map, and the
    /// file is created when missing; readers then never wait for the writer. An in-memory SQLite
    /// database (`sqlite::memory:`) gets a single connection, since each connection would see
    /// its own empty database. SQL statement logging is off.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects to `url` like [`connect`](Self::connect), with `options`; for example, to
    /// flush every SQLite commit to disk before it returns:
    ///
    /// ```no_run
    /// use audit_seaorm::{SeaOrmStore, SqliteDurability, StoreOptions};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let options = StoreOptions::new().sqlite_durability(SqliteDurability::Full);
    /// let store = SeaOrmStore::connect_with("sqlite://audit.db?mode=rwc", options).await?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    ///
    /// The options concern the connections this store opens. An entry recorded in your own
    /// transaction ([`record_in`](crate::record_in)) commits with that transaction, under your
    /// connection's settings, and [`new`](Self::new) uses your connection as it is.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            let server = |max_connections: Option<u32>| {
                let mut connect = base_options(url);
                connect
                    .acquire_timeout(options.acquire_timeout)
                    .connect_timeout(options.acquire_timeout);
                if let Some(max) = max_connections {
                    connect.max_connections(max).min_connections(1);
                    // The writer's sessions are read committed from the start (a startup
                    // parameter, no statement), so its transactions need not ask for it.
                    connect.map_sqlx_postgres_opts(|opts| {
                        opts.options([("default_transaction_isolation", "read committed")])
                    });
                }
                connect
            };
            // The store's writes get connections of their own: in a pool shared with the
            // service, the writer queued behind the service's handlers for a connection while
            // their responses waited for the writer (synchronous delivery on PostgreSQL, 32
            // clients: see docs/decisions/0047).
            let writer = Database::connect(server(Some(SERVER_WRITER_CONNECTIONS)))
                .await
                .map_err(store_error)?;
            let db = Database::connect(server(None)).await.map_err(store_error)?;
            let write_isolation = match writer.get_database_backend() {
                DbBackend::Postgres => None,
                _ => Some(IsolationLevel::ReadCommitted),
            };
            let store = SeaOrmStore {
                db,
                writer,
                write_isolation,
            };
            store.migrate().await?;
            return Ok(store);
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let sqlite = |max_connections: u32| {
            let mut connect = base_options(url);
            connect.max_connections(max_connections);
            let synchronous = options.sqlite_durability.synchronous();
            connect.map_sqlx_sqlite_opts(move |opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .create_if_missing(true)
                    // A tenant's rows are spread through the table, so a free-text scan of
                    // one tenant touches pages all over the file: reading them through a
                    // memory map and a 64 MiB page cache, not a read() call and the default
                    // 2 MiB cache each, is what keeps such scans fast.
                    .pragma("cache_size", "-65536")
                    .pragma("mmap_size", "268435456")
                    // A statement that writes several rows inside a transaction keeps a
                    // statement journal, to undo just itself if it fails; by default SQLite
                    // writes it to a temporary file. In memory, a batch written in one
                    // transaction stored about 15 % more entries per second.
                    .pragma("temp_store", "memory")
                    // Each commit appends every page it changed to the WAL (about 4 per
                    // entry: one per index), and each checkpoint flushes the WAL to disk and
                    // copies it back. Checkpointing every 10,000 pages rather than SQLite's
                    // 1,000 flushes and copies each hot page an order of magnitude less
                    // often; the WAL file then stays around 40 MiB, and is cut back to
                    // 64 MiB after a checkpoint if a long reader ever let it grow further.
                    .pragma("wal_autocheckpoint", SQLITE_WAL_AUTOCHECKPOINT.to_string())
                    .pragma("journal_size_limit", SQLITE_JOURNAL_SIZE_LIMIT.to_string())
            });
            connect
        };
        if in_memory {
            // Each connection to `sqlite::memory:` would see its own empty database.
            let db = connect_sqlite(|| sqlite(1)).await?;
            let store = SeaOrmStore::new(db);
            store.migrate().await?;
            return Ok(store);
        }
        // SQLite has one writer at a time. Writing through one connection of its own queues
        // the store's writes in the pool instead of in SQLite's busy handler, and keeps that
        // connection's page cache valid from one commit to the next (a connection drops its
        // whole cache when it finds that another one has written).
        let writer = connect_sqlite(|| sqlite(1)).await?;
        let store = SeaOrmStore {
            db: connect_sqlite(|| sqlite(4)).await?,
            writer,
            write_isolation: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Uses an existing connection as it is, for reads and writes: no migration runs (see
    /// [`migrate`](Self::migrate) or run [`Migrator`] from your own migrator) and no
    /// connection setting changes, so on SQLite choose WAL mode and a busy timeout yourself
    /// (SQLx's default busy timeout is 5 s). The table must come from [`Migrator`]: on MySQL
    /// and MariaDB its binary collation is what keeps one tenant's scope from matching another
    /// tenant id that differs only in case, accents or trailing spaces.
    pub fn new(db: DatabaseConnection) -> Self {
        let write_isolation = match db.get_database_backend() {
            DbBackend::Sqlite => None,
            _ => Some(IsolationLevel::ReadCommitted),
        };
        SeaOrmStore {
            writer: db.clone(),
            db,
            write_isolation,
        }
    }

    /// Creates the table and indexes if they are missing. Safe to run at every start, and
    /// from several processes at once (replicas of a service starting together): the run
    /// holds a lock in the database, so one process migrates while the others wait for it
    /// and then find everything in place. The lock is a transaction-scoped advisory lock on
    /// PostgreSQL, a named lock (`GET_LOCK`, named after the database) on MySQL/MariaDB and
    /// the write lock of an immediate transaction on SQLite; another process waits for it at
    /// most [`MIGRATION_LOCK_TIMEOUT`] (on SQLite, the busy timeout).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate_locked(&self.writer).await
    }

    /// The underlying connection, for example to begin a transaction in which
    /// [`insert_entry`](crate::insert_entry) records an entry. It is the pool the store reads
    /// with; on a SQLite file opened by [`connect_with`](Self::connect_with), the store's own
    /// writes go through a second pool of one connection with the same settings.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection writes go through (on a SQLite file, one of its own).
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Stores `entries`, skipping ids already stored. A batch that takes more than one
    /// statement (see [`insert_entries`](crate::insert_entries)) is written in one
    /// transaction, so it is stored whole or not at all.
    pub async fn insert_batch(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        // Read committed on a server, whatever the database's default: under repeatable read
        // PostgreSQL refuses to lock a chain head that another writer moved after this
        // transaction began ("could not serialize access"), where read committed waits for
        // the lock and reads the new head (six replicas writing one tenant at once).
        write::insert_linked(&self.writer, entries, self.write_isolation()).await
    }

    /// Not part of the API: [`insert_batch`](Self::insert_batch) without the hash chain,
    /// for the storage bench's measurement of what the chain costs. Entries stored this way
    /// have no link, and verification reports them.
    #[doc(hidden)]
    pub async fn insert_batch_unchained(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        write::insert_unlinked(&self.writer, entries, self.write_isolation()).await
    }

    /// The isolation of the store's own write transactions: read committed on a server (see
    /// [`insert_batch`](Self::insert_batch)), SQLite's own on a file.
    pub(crate) fn write_isolation(&self) -> Option<IsolationLevel> {
        self.write_isolation
    }

    /// Verifies `tenant`'s hash chain (`None`: the chain of entries without a tenant): every
    /// link from the first, the head, and entries written around the store. See
    /// `docs/chain.md`.
    pub async fn verify_chain(&self, tenant: Option<&str>) -> Result<ChainReport, StoreError> {
        crate::chain::verify(&self.db, tenant, VERIFY_PAGE).await
    }

    /// Erases the personal fields of every entry of `actor_id`, 1,000 entries a statement:
    /// see [`AuditStore::erase_actor`]. Returns how many entries changed.
    pub async fn erase_actor(&self, actor_id: &str) -> Result<u64, StoreError> {
        crate::chain::erase_actor(&self.writer, actor_id, 1_000).await
    }

    /// Purges `request.tenant_id`'s entries older than `request.before`, in batches of
    /// `request.batch` entries a transaction, unless the tenant is on legal hold; see
    /// [`AuditStore::purge`] and `audit_core::retention`. The purge is recorded first as a
    /// `Purge` entry in the tenant's chain, which then starts after the last entry deleted.
    ///
    /// ```no_run
    /// use audit_core::retention::{Period, PurgeRequest, RetentionPolicy};
    /// use audit_seaorm::SeaOrmStore;
    ///
    /// # async fn run(store: SeaOrmStore) -> Result<(), Box<dyn std::error::Error>> {
    /// let policy = RetentionPolicy::new(Period::Days(90));
    /// if let Some(request) = PurgeRequest::by_policy(&policy, Some("acme"), chrono::Utc::now()) {
    ///     let dry = store.purge(&request.clone().dry_run(true)).await?;
    ///     println!("{} entries would go", dry.matched);
    ///     let done = store.purge(&request).await?;
    ///     println!("{} entries deleted", done.deleted);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn purge(
        &self,
        request: &audit_core::retention::PurgeRequest,
    ) -> Result<audit_core::retention::PurgeReport, StoreError> {
        crate::retention::purge(&self.db, &self.writer, self.write_isolation(), request).await
    }

    /// Purges every chain in the store by `policy` at `now` (tenants kept forever are
    /// skipped), one after the other; a dry run with `dry_run`. Entries of a tenant with no
    /// chain (all stored before chaining began) are left to [`purge`](Self::purge).
    pub async fn purge_expired(
        &self,
        policy: &audit_core::retention::RetentionPolicy,
        now: chrono::DateTime<chrono::Utc>,
        dry_run: bool,
    ) -> Result<Vec<audit_core::retention::PurgeReport>, StoreError> {
        let mut reports = Vec::new();
        for tenant in self.chained_tenants().await? {
            if let Some(request) =
                audit_core::retention::PurgeRequest::by_policy(policy, tenant.as_deref(), now)
            {
                reports.push(self.purge(&request.dry_run(dry_run)).await?);
            }
        }
        Ok(reports)
    }

    /// The legal hold on `tenant`, if one stands.
    pub async fn legal_hold(
        &self,
        tenant: Option<&str>,
    ) -> Result<Option<audit_core::retention::LegalHold>, StoreError> {
        crate::retention::legal_hold(&self.db, tenant).await
    }

    /// Places `hold` on `tenant` (replacing one that stands), or lifts the hold with `None`.
    /// A purge running meanwhile stops before its next batch.
    pub async fn set_legal_hold(
        &self,
        tenant: Option<&str>,
        hold: Option<&audit_core::retention::LegalHold>,
    ) -> Result<(), StoreError> {
        crate::retention::set_legal_hold(&self.writer, tenant, hold).await
    }

    /// Where `tenant`'s chain starts: the number and hash of the last entry a purge deleted,
    /// or `(0, GENESIS)` when it starts at its first entry. An export of a shortened chain
    /// carries it (see [`audit_core::chain::linked_json_start`]).
    pub async fn chain_start(
        &self,
        tenant: Option<&str>,
    ) -> Result<(u64, audit_core::chain::ChainHash), StoreError> {
        crate::retention::chain_start(&self.db, tenant).await
    }

    /// Up to `limit` entries of `tenant`'s chain (`None`: the entries without a tenant) with
    /// their links, in chain order, after number `after` (0 for the start): pages of an
    /// export that [`audit_core::chain::verify_export`] or `scripts/verify_chain.py` can check
    /// offline, written with [`audit_core::chain::linked_json`].
    pub async fn chain_page(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: u64,
    ) -> Result<Vec<(AuditEntry, ChainLink)>, StoreError> {
        crate::chain::page_after(&self.db, tenant, after, limit).await
    }

    /// Verifies `tenant`'s chain as [`verify_chain`](Self::verify_chain) does, and then
    /// against `checkpoint`, a signed checkpoint of it whose signature the caller has checked:
    /// a chain cut short or rewritten up to the checkpoint is broken even when its head row was
    /// moved back to hide it.
    pub async fn verify_chain_against(
        &self,
        tenant: Option<&str>,
        checkpoint: &audit_core::checkpoint::Checkpoint,
    ) -> Result<ChainReport, StoreError> {
        let mut report = self.verify_chain(tenant).await?;
        let link_at = match checkpoint.seq.checked_sub(1) {
            Some(before) => self
                .chain_page(tenant, before, 1)
                .await?
                .into_iter()
                .next()
                .map(|(_, link)| link)
                .filter(|link| link.seq == checkpoint.seq),
            None => None,
        };
        audit_core::chain::check_against(&mut report, link_at.as_ref(), checkpoint);
        Ok(report)
    }

    /// The tenants whose chains the store holds (`None`: entries without a tenant), in key
    /// order with the tenantless chain last.
    pub async fn chained_tenants(&self) -> Result<Vec<Option<String>>, StoreError> {
        crate::chain::chains(&self.db).await
    }

    /// Verifies every chain in the store, tenant by tenant (entries without a tenant last).
    /// Up to [`VERIFY_CONCURRENCY`] chains are verified at once, each on a connection of
    /// the read pool.
    pub async fn verify_chains(&self) -> Result<Vec<ChainReport>, StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        let tenants = crate::chain::chains(&self.db).await?;
        futures_util::stream::iter(tenants)
            .map(|tenant| async move { self.verify_chain(tenant.as_deref()).await })
            .buffered(VERIFY_CONCURRENCY)
            .try_collect()
            .await
    }
}

/// Links read per query while verifying a chain.
const VERIFY_PAGE: u64 = 5_000;

/// Chains [`SeaOrmStore::verify_chains`] verifies at once.
pub const VERIFY_CONCURRENCY: usize = 4;

#[async_trait]
impl AuditSink for SeaOrmStore {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.insert_batch(std::slice::from_ref(&entry))
            .await
            .map_err(sink_error)
    }

    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        self.insert_batch(&entries).await.map_err(sink_error)
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        self.insert_batch(entries).await.map_err(sink_error)
    }
}

#[async_trait]
impl AuditStore for SeaOrmStore {
    async fn query(&self, query: &AuditQuery) -> Result<Page, StoreError> {
        query.validate()?;
        read::fetch_page(&self.db, query).await
    }

    async fn get(&self, scope: &Scope, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
        scope.validate()?;
        read::fetch_one(&self.db, scope, id).await
    }

    fn export(&self, query: &AuditQuery) -> BoxStream<'static, Result<AuditEntry, StoreError>> {
        match query.validate() {
            Ok(()) => read::export_stream(self.db.clone(), query.clone()),
            Err(err) => stream::once(async move { Err(err) }).boxed(),
        }
    }

    fn export_linked(
        &self,
        query: &AuditQuery,
    ) -> BoxStream<'static, Result<(AuditEntry, Option<ChainLink>), StoreError>> {
        match query.validate() {
            Ok(()) => read::export_stream_linked(self.db.clone(), query.clone()),
            Err(err) => stream::once(async move { Err(err) }).boxed(),
        }
    }

    async fn chain_start(
        &self,
        tenant: Option<&str>,
    ) -> Result<Option<(u64, audit_core::chain::ChainHash)>, StoreError> {
        let start = SeaOrmStore::chain_start(self, tenant).await?;
        Ok((start.0 > 0).then_some(start))
    }

    async fn verify_chain(&self, tenant: Option<&str>) -> Result<Option<ChainReport>, StoreError> {
        SeaOrmStore::verify_chain(self, tenant).await.map(Some)
    }

    async fn erase_actor(&self, actor_id: &str) -> Result<Option<u64>, StoreError> {
        SeaOrmStore::erase_actor(self, actor_id).await.map(Some)
    }

    async fn purge(
        &self,
        request: &audit_core::retention::PurgeRequest,
    ) -> Result<Option<audit_core::retention::PurgeReport>, StoreError> {
        SeaOrmStore::purge(self, request).await.map(Some)
    }

    async fn legal_hold(
        &self,
        tenant: Option<&str>,
    ) -> Result<Option<audit_core::retention::LegalHold>, StoreError> {
        SeaOrmStore::legal_hold(self, tenant).await
    }

    async fn set_legal_hold(
        &self,
        tenant: Option<&str>,
        hold: Option<&audit_core::retention::LegalHold>,
    ) -> Result<bool, StoreError> {
        SeaOrmStore::set_legal_hold(self, tenant, hold)
            .await
            .map(|()| true)
    }

    async fn summary(
        &self,
        query: &AuditQuery,
        by: audit_core::store::SummaryBy,
    ) -> Result<audit_core::store::Summary, StoreError> {
        query.validate()?;
        crate::summary::summary(&self.db, query, by).await
    }

    async fn actors(
        &self,
        query: &AuditQuery,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<audit_core::store::ActorSeen>, StoreError> {
        audit_core::store::validate_actors(query, text, limit)?;
        crate::summary::actors(&self.db, query, text, limit).await
    }

    async fn facets(
        &self,
        query: &AuditQuery,
        limit: u32,
    ) -> Result<audit_core::store::Facets, StoreError> {
        audit_core::store::validate_facets(query, limit)?;
        crate::summary::facets(&self.db, query, limit).await
    }
}
