//! SeaORM storage for tower-audit: the audit log in SQLite, PostgreSQL or MySQL/MariaDB.
//!
//! The flow of the project is request → layer → entry → sink → store → admin router. This
//! crate is the **sink** and the **store**: [`SeaOrmStore`] implements
//! [`AuditSink`](audit_core::AuditSink) (what the layer writes to) and
//! [`AuditStore`](audit_core::store::AuditStore) (what the admin router reads from), on one table,
//! `audit_log`, in the database your service already uses.
//!
//! - [`entity`] is the table as a SeaORM entity; [`migration::Migrator`] creates it and its
//!   indexes, from [`SeaOrmStore::connect`] or from your own migrator.
//! - Writes are idempotent on the entry id and batched into multi-row inserts.
//! - [`insert_entry`] writes an entry inside your own transaction, so a change and its audit
//!   entry commit or roll back together; [`SeaOrmTransactions`] does it for every request
//!   under `audit_tower::TransactionLayer`.
//! - Queries are scoped, filtered and paged by keyset on `(occurred_at, id)`, served by the
//!   migration's indexes; exports stream in chunks.
//!
//! ```no_run
//! use audit_core::store::{AuditQuery, AuditStore, Scope};
//! use audit_seaorm::SeaOrmStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SeaOrmStore::connect("postgres://app@localhost/app").await?;
//! let page = store.query(&AuditQuery::new(Scope::tenant("acme")).limit(50)).await?;
//! if let Some(cursor) = page.next_cursor {
//!     let next = store.query(&AuditQuery::new(Scope::tenant("acme")).limit(50).cursor(cursor)).await?;
//! #   let _ = next;
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chain;
mod convert;
pub mod entity;
mod error;
mod intents;
pub mod migration;
mod options;
mod read;
mod refs;
mod retention;
mod store;
mod summary;
mod transactions;
mod write;

pub use options::{SqliteDurability, StoreOptions};
pub use store::{
    MIGRATION_LOCK_TIMEOUT, SERVER_WRITER_CONNECTIONS, SQLITE_BUSY_TIMEOUT, SeaOrmStore,
    VERIFY_CONCURRENCY,
};
pub use transactions::SeaOrmTransactions;
pub use write::{insert_entries, insert_entry, record_in};

/// Re-exported so users name the same SeaORM this crate was built with.
pub use sea_orm;
