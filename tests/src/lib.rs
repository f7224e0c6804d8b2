//! Integration tests of tower-audit live in `tests/`; this library holds what they share: a
//! database per test on each backend, and the example service on a real TCP port.
//!
//! The README's example is compiled here as a doctest, so it cannot drift from the code.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test support: a panic is a failed test

use std::net::SocketAddr;

use sea_orm::{ConnectionTrait, Database};

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// A database backend the suites run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file: always available.
    Sqlite,
    /// The server named by `AUDIT_TEST_POSTGRES_URL`.
    Postgres,
    /// The server named by `AUDIT_TEST_MYSQL_URL`.
    Mysql,
}

impl Backend {
    fn env(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "AUDIT_TEST_POSTGRES_URL",
            Backend::Mysql => "AUDIT_TEST_MYSQL_URL",
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
    /// For server databases: the server URL and the database's name.
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

/// A fresh, empty database on `backend`, or `None` (with a notice) when the backend's URL is
/// not set. Under `CI=true` a missing URL is a failure, not a skip.
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
    let Ok(base) = std::env::var(backend.env()) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{} is not set: CI must run the {backend:?} suites",
                backend.env()
            );
        }
        eprintln!(
            "notice: {} is not set; skipping the {backend:?} run of this test",
            backend.env()
        );
        return None;
    };
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

/// The example service, seeded, serving on an ephemeral loopback port.
pub struct RunningExample {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The service's state (database and audit store).
    pub state: integrations_admin::AppState,
    /// The seeded demo accounts and keys.
    pub demo: integrations_admin::Demo,
    server: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

impl Drop for RunningExample {
    fn drop(&mut self) {
        // Fields drop after this: the server stops first, then the database goes.
        self.server.abort();
    }
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

/// Starts the example on `backend`, or `None` when the backend is skipped.
pub async fn start_example(backend: Backend) -> Option<RunningExample> {
    let db = fresh_db(backend).await?;
    let state = integrations_admin::connect(&db.url).await.unwrap();
    let demo = integrations_admin::seed_demo(&state)
        .await
        .unwrap()
        .expect("a fresh database is seeded");
    let (addr, server) = serve(integrations_admin::router(state.clone())).await;
    Some(RunningExample {
        base: format!("http://{addr}"),
        state,
        demo,
        server,
        _db: db,
    })
}
