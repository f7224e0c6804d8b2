//! [`SeaOrmStore`]: the audit log in a SeaORM database, as a sink and as a store.
//!
//! In the flow request → layer → entry → **sink → store** → admin router, the layer hands
//! entries to this type through [`AuditSink`], and the admin router reads them back through
//! [`AuditStore`].

use std::time::Duration;

use async_trait::async_trait;
use audit_core::store::Scope;
use audit_core::{AuditEntry, AuditQuery, AuditSink, AuditStore, Page, SinkError, StoreError};
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use crate::error::{sink_error, store_error};
use crate::migration::Migrator;
use crate::{read, write};

/// How long a SQLite connection waits for another writer's lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The audit log in a SQLite, PostgreSQL or MySQL/MariaDB database through SeaORM.
///
/// Cloning is cheap and clones share the connection pool.
///
/// Free text matches case-insensitively by lowering both sides; SQLite's `LOWER` folds ASCII
/// letters only, so there `É` and `é` differ, while PostgreSQL and MySQL fold all letters.
///
/// ```no_run
/// use audit_core::{Action, AuditEntry, AuditQuery, AuditSink, AuditStore, Scope};
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
    db: DatabaseConnection,
}

impl SeaOrmStore {
    /// Connects to `url` (`sqlite://…`, `postgres://…` or `mysql://…`) and runs the
    /// [`Migrator`], so the table and its indexes exist.
    ///
    /// SQLite databases are opened in WAL mode with a [`SQLITE_BUSY_TIMEOUT`], a 64 MiB page
    /// cache and a 256 MiB memory map, and the file is created when missing; readers then never
    /// wait for the writer. An in-memory SQLite
    /// database (`sqlite::memory:`) gets a single connection, since each connection would see
    /// its own empty database. SQL statement logging is off.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false);
        if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if !in_memory {
                options.max_connections(4);
            }
            options.map_sqlx_sqlite_opts(|opts| {
                // A tenant's rows are spread through the table, so a free-text scan of one
                // tenant touches pages all over the file: reading them through a memory map
                // and a 64 MiB page cache, not a read() call and the default 2 MiB cache each,
                // is what keeps such scans fast.
                opts.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .create_if_missing(true)
                    .pragma("cache_size", "-65536")
                    .pragma("mmap_size", "268435456")
            });
        }
        let db = Database::connect(options).await.map_err(store_error)?;
        let store = SeaOrmStore::new(db);
        store.migrate().await?;
        Ok(store)
    }

    /// Uses an existing connection as it is: no migration runs (see
    /// [`migrate`](Self::migrate) or run [`Migrator`] from your own migrator) and no
    /// connection setting changes, so on SQLite choose WAL mode and a busy timeout yourself
    /// (SQLx's default busy timeout is 5 s).
    pub fn new(db: DatabaseConnection) -> Self {
        SeaOrmStore { db }
    }

    /// Creates the table and indexes if they are missing. Safe to run at every start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.map_err(store_error)
    }

    /// The underlying connection, for example to begin a transaction in which
    /// [`insert_entry`](crate::insert_entry) records an entry.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stores `entries`, skipping ids already stored. More entries than fit in one statement
    /// are written in one transaction, so a batch is stored whole or not at all.
    pub async fn insert_batch(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let chunks = write::chunks(self.db.get_database_backend(), entries);
        match chunks.as_slice() {
            [] => Ok(()),
            [only] => write::insert_chunk(&self.db, only).await,
            _ => {
                let txn = self.db.begin().await.map_err(store_error)?;
                for chunk in &chunks {
                    write::insert_chunk(&txn, chunk).await?;
                }
                txn.commit().await.map_err(store_error)
            }
        }
    }
}

#[async_trait]
impl AuditSink for SeaOrmStore {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        write::insert_entry(&self.db, &entry)
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
}
