//! What the workspace's tests share: the one place that reads the database servers' URLs
//! (`AUDIT_TEST_POSTGRES_URL`, `AUDIT_TEST_MYSQL_URL`) and applies the rule that a server
//! missing under `CI=true` fails the run instead of skipping it; a fresh database per test on
//! any backend; a router served over real TCP; a TCP proxy to cut a server off with; and NATS
//! servers (the shared one, or ones a test starts and kills).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test support: a panic is a failed test

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;

use sea_orm::{ConnectionTrait, Database};

mod nats;
mod proxy;
pub use nats::{NatsNode, NatsServers, nats_server_binary, nats_url};
pub use proxy::TcpProxy;

/// A database backend the suites run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A temporary SQLite file: always available.
    Sqlite,
    /// The server named by `AUDIT_TEST_POSTGRES_URL`.
    Postgres,
    /// The server named by `AUDIT_TEST_MYSQL_URL`.
    Mysql,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::Mysql];

    /// The environment variable naming the backend's server, if it has one.
    pub fn env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("AUDIT_TEST_POSTGRES_URL"),
            Backend::Mysql => Some("AUDIT_TEST_MYSQL_URL"),
        }
    }
}

/// Whether this run is CI's, where every backend must run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The URL of `backend`'s server, or `None` (with a notice, once per backend and process) when
/// its variable is not set. Under `CI=true` a missing URL panics: CI must run every backend.
/// SQLite has no server: `None`.
pub fn server_url(backend: Backend) -> Option<String> {
    let var = backend.env()?;
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !in_ci(),
                "{var} is not set but CI=true: the {backend:?} tests must run in CI. Set {var} \
                 to a database URL (see the README)."
            );
            static NOTICED: Mutex<Vec<Backend>> = Mutex::new(Vec::new());
            let mut noticed = NOTICED.lock().unwrap_or_else(|p| p.into_inner());
            if !noticed.contains(&backend) {
                noticed.push(backend);
                // Past libtest's output capture, so the notice shows in a normal run.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTICE: {backend:?} tests SKIPPED because {var} is not set. Set it to \
                     run them (see the README).\n"
                );
            }
            None
        }
    }
}

/// A database of its own for one test: a temporary SQLite file, or a uniquely named database
/// on a server, dropped again when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The connection URL of the fresh database.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// For server databases: the backend, the server URL and the database's name.
    server: Option<(Backend, String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((backend, base, name)) = self.server.take() else {
            return;
        };
        // Drop cannot be async; a short-lived runtime on its own thread does the clean-up.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let server = Database::connect(&base).await.ok()?;
                let sql = match backend {
                    Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                server.execute_unprepared(&sql).await.ok()?;
                server.close().await.ok()
            })
        });
        let _ = cleanup.join();
    }
}

/// A fresh, empty database on `backend`, or `None` when the backend's server is not configured
/// (see [`server_url`]).
pub async fn fresh_db(backend: Backend) -> Option<TestDb> {
    if backend == Backend::Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        return Some(TestDb {
            url,
            _dir: Some(dir),
            server: None,
        });
    }
    let base = server_url(backend)?;
    let name = format!("ia_{}", uuid::Uuid::new_v4().simple());
    let server = Database::connect(&base).await.unwrap();
    server
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    server.close().await.unwrap();
    // Replace the database part of the URL: everything after the last '/' (before any '?').
    let (head, query) = base
        .split_once('?')
        .map_or((base.as_str(), None), |(h, q)| (h, Some(q)));
    let root = head.rsplit_once('/').map_or(head, |(r, _)| r);
    let url = match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    };
    Some(TestDb {
        url,
        _dir: None,
        server: Some((backend, base, name)),
    })
}

/// Serves `app` on an ephemeral loopback port over real TCP, with the peer address available as
/// `ConnectInfo`; the task runs until aborted.
pub async fn serve(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, server)
}
