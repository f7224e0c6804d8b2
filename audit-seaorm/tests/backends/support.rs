//! Connecting the suites to each backend, and helpers shared by the SQL-only cases.

use std::path::PathBuf;

use async_trait::async_trait;
use audit_core::store::{AuditQuery, AuditStore, Page, Scope, StoreError};
use audit_core::{AuditEntry, AuditSink, IntentStore, SinkError};
use audit_seaorm::SeaOrmStore;
use futures_util::stream::BoxStream;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// One backend under test. Dropping it removes a SQLite file.
pub struct Backend {
    pub name: &'static str,
    pub url: String,
    pub store: SeaOrmStore,
    _file: Option<TempFile>,
}

/// A SQLite database file (and its WAL and shared-memory files), removed on drop.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl TempFile {
    pub fn new() -> Self {
        TempFile(
            std::env::temp_dir().join(format!("audit-seaorm-test-{}.db", uuid::Uuid::now_v7())),
        )
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.display())
    }
}

impl Backend {
    /// A backend around a store made by the test itself.
    pub fn from_store(name: &'static str, url: String, store: SeaOrmStore) -> Self {
        Backend {
            name,
            url,
            store,
            _file: None,
        }
    }
}

/// A fresh SQLite file: always available.
pub async fn sqlite() -> Backend {
    let file = TempFile::new();
    let url = file.url();
    let store = SeaOrmStore::connect(&url).await.expect("open SQLite");
    Backend {
        name: "sqlite",
        url,
        store,
        _file: Some(file),
    }
}

/// Connects, running the migration exactly once per process first: tests run in parallel
/// and two concurrent first migrations of an empty database would race.
async fn server(
    name: &'static str,
    backend: audit_test_support::Backend,
    migrated: &'static OnceCell<()>,
) -> Option<Backend> {
    let url = audit_test_support::server_url(backend)?;
    migrated
        .get_or_init(|| async {
            SeaOrmStore::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {name} and migrate: {e}"));
        })
        .await;
    let store = SeaOrmStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
    Some(Backend {
        name,
        url,
        store,
        _file: None,
    })
}

pub async fn postgres() -> Option<Backend> {
    static MIGRATED: OnceCell<()> = OnceCell::const_new();
    server(
        "PostgreSQL",
        audit_test_support::Backend::Postgres,
        &MIGRATED,
    )
    .await
}

pub async fn mysql() -> Option<Backend> {
    static MIGRATED: OnceCell<()> = OnceCell::const_new();
    server("MySQL", audit_test_support::Backend::Mysql, &MIGRATED).await
}

pub use audit_core::store::suite::tenant;

pub fn ids(entries: &[AuditEntry]) -> Vec<uuid::Uuid> {
    entries.iter().map(|e| e.id).collect()
}

/// A backend is the store it holds (and keeps its SQLite file for as long as it lives), so the
/// store suite can run on it.
#[async_trait]
impl AuditSink for Backend {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.store.record(entry).await
    }

    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        self.store.record_batch(entries).await
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        self.store.record_slice(entries).await
    }
}

#[async_trait]
impl AuditStore for Backend {
    async fn query(&self, query: &AuditQuery) -> Result<Page, StoreError> {
        self.store.query(query).await
    }

    async fn get(&self, scope: &Scope, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
        self.store.get(scope, id).await
    }

    fn export(&self, query: &AuditQuery) -> BoxStream<'static, Result<AuditEntry, StoreError>> {
        self.store.export(query)
    }

    async fn summary(
        &self,
        query: &AuditQuery,
        by: audit_core::store::SummaryBy,
    ) -> Result<audit_core::store::Summary, StoreError> {
        self.store.summary(query, by).await
    }

    async fn actors(
        &self,
        query: &AuditQuery,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<audit_core::store::ActorSeen>, StoreError> {
        self.store.actors(query, text, limit).await
    }

    async fn facets(
        &self,
        query: &AuditQuery,
        limit: u32,
    ) -> Result<audit_core::store::Facets, StoreError> {
        self.store.facets(query, limit).await
    }
}

#[async_trait]
impl IntentStore for Backend {
    async fn record_intents(&self, intents: &[AuditEntry]) -> Result<(), SinkError> {
        self.store.record_intents(intents).await
    }

    async fn clear_intents(&self, ids: &[Uuid]) -> Result<(), SinkError> {
        self.store.clear_intents(ids).await
    }

    async fn recover_intents(&self, older_than: std::time::Duration) -> Result<u64, SinkError> {
        self.store.recover_intents(older_than).await
    }
}
