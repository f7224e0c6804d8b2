//! Integration tests of tower-audit that need several crates live in `tests/`; this library
//! holds what they share: the example service on a real TCP port, over a database of its own
//! (from `audit-test-support`) on each backend.
//!
//! The README's example is compiled here as a doctest, so it cannot drift from the code.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test support: a panic is a failed test

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use audit_test_support::{Backend, TestDb, fresh_db, serve};

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
