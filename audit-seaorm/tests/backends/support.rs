//! Connecting the suite to each backend, and helpers shared by its cases.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

use audit_core::{AuditEntry, AuditQuery, AuditStore, Order};
use audit_seaorm::SeaOrmStore;
use tokio::sync::OnceCell;

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

/// Writes past libtest's output capture, so the notice shows in a normal `cargo test` run.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn url_from_env(var: &str, name: &str, once: &'static Once) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!(
                    "{var} is not set but CI=true: the {name} suite must run in CI. \
                     Set {var} to a database URL (see the README)."
                );
            }
            once.call_once(|| {
                notice(&format!(
                    "\nNOTICE: {name} tests SKIPPED because {var} is not set. \
                     Set it to run the same suite against {name} (see the README).\n"
                ))
            });
            None
        }
    }
}

/// Connects, running the migration exactly once per process first: tests run in parallel
/// and two concurrent first migrations of an empty database would race.
async fn server(
    name: &'static str,
    var: &str,
    once: &'static Once,
    migrated: &'static OnceCell<()>,
) -> Option<Backend> {
    let url = url_from_env(var, name, once)?;
    migrated
        .get_or_init(|| async {
            SeaOrmStore::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {name} at {var} and migrate: {e}"));
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
    static NOTICE: Once = Once::new();
    static MIGRATED: OnceCell<()> = OnceCell::const_new();
    server("PostgreSQL", "AUDIT_TEST_POSTGRES_URL", &NOTICE, &MIGRATED).await
}

pub async fn mysql() -> Option<Backend> {
    static NOTICE: Once = Once::new();
    static MIGRATED: OnceCell<()> = OnceCell::const_new();
    server("MySQL", "AUDIT_TEST_MYSQL_URL", &NOTICE, &MIGRATED).await
}

/// A tenant id no other test uses: tests share one database and isolate by tenant.
pub fn tenant() -> String {
    format!("t-{}", uuid::Uuid::now_v7())
}

/// Every page of `query`, followed by cursor; checks that no page past the first is empty and
/// that no page is longer than the limit.
pub async fn all_pages(store: &SeaOrmStore, query: &AuditQuery) -> Vec<AuditEntry> {
    let mut query = query.clone();
    let mut out = Vec::new();
    for page_number in 0..10_000 {
        let page = store.query(&query).await.expect("query");
        assert!(page.items.len() <= query.limit as usize);
        if page_number > 0 {
            assert!(!page.items.is_empty(), "a cursor led to an empty page");
        }
        out.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return out,
        }
    }
    panic!("paging did not end");
}

/// `entries` in the order a store lists them.
pub fn sorted(mut entries: Vec<AuditEntry>, order: Order) -> Vec<AuditEntry> {
    entries.sort_by_key(|e| (e.occurred_at, e.id));
    if order == Order::Desc {
        entries.reverse();
    }
    entries
}

pub fn ids(entries: &[AuditEntry]) -> Vec<uuid::Uuid> {
    entries.iter().map(|e| e.id).collect()
}
