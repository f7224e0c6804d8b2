//! The schema of the audit log: [`Migrator`] and its migrations, in order:
//! [`m20260101_000001_create_audit_log`] (the table and its indexes),
//! [`m20261122_000002_free_text_index`] (PostgreSQL's free-text indexes; nothing elsewhere) and
//! [`m20261130_000003_mysql_exact_text`] (binary collation on MySQL and MariaDB for a table
//! created otherwise; nothing elsewhere), [`m20261201_000004_create_audit_intent`] (the
//! intents of requests in flight), [`m20261203_000005_create_audit_chain`] (the hash
//! chain's links and heads), [`m20261204_000006_create_audit_retention`] (where purged
//! chains start, and legal holds), [`m20261204_000007_bucketed_lookup_indexes`] (the actor
//! and object lookups by bucket), [`m20261205_000008_sqlite_covering_tenant_index`] (SQLite's
//! one covering index per tenant), [`m20261206_000009_search_text`] (the text free text
//! searches, filled for stored rows; PostgreSQL's free-text indexes over it) and
//! [`m20261206_000010_postgres_grouped_tenant_index`] (PostgreSQL's tenant time index carrying
//! what summaries, actor lists and facets read), [`m20261207_000011_mysql_search_index`]
//! (MySQL's and MariaDB's free-text index), [`m20261208_000012_trace_id`] (the entries'
//! trace ids) and [`m20261208_000013_create_audit_entity_ref`] (the objects bulk changes name).
//!
//! [`SeaOrmStore::connect`](crate::SeaOrmStore::connect) runs the migrations; to run them
//! from your own migrator instead, list the migrations there, in this order:
//!
//! ```no_run
//! use sea_orm_migration::prelude::*;
//!
//! pub struct AppMigrator;
//!
//! #[async_trait::async_trait]
//! impl MigratorTrait for AppMigrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         vec![
//!             // ... your own migrations ...
//!             Box::new(audit_seaorm::migration::m20260101_000001_create_audit_log::Migration),
//!             Box::new(audit_seaorm::migration::m20261122_000002_free_text_index::Migration),
//!             Box::new(audit_seaorm::migration::m20261130_000003_mysql_exact_text::Migration),
//!             Box::new(audit_seaorm::migration::m20261201_000004_create_audit_intent::Migration),
//!             Box::new(audit_seaorm::migration::m20261203_000005_create_audit_chain::Migration),
//!             Box::new(audit_seaorm::migration::m20261204_000006_create_audit_retention::Migration),
//!             Box::new(audit_seaorm::migration::m20261204_000007_bucketed_lookup_indexes::Migration),
//!             Box::new(audit_seaorm::migration::m20261205_000008_sqlite_covering_tenant_index::Migration),
//!             Box::new(audit_seaorm::migration::m20261206_000009_search_text::Migration),
//!             Box::new(audit_seaorm::migration::m20261206_000010_postgres_grouped_tenant_index::Migration),
//!             Box::new(audit_seaorm::migration::m20261207_000011_mysql_search_index::Migration),
//!             Box::new(audit_seaorm::migration::m20261208_000012_trace_id::Migration),
//!             Box::new(audit_seaorm::migration::m20261208_000013_create_audit_entity_ref::Migration),
//!         ]
//!     }
//! }
//! ```
//!
//! [`Migrator`] keeps its own bookkeeping table, `audit_seaql_migrations`, so it never trips
//! over your migrations in `seaql_migrations` (SeaORM refuses to run when it finds applied
//! migrations it does not know). Every step checks before it creates, so running the migrations
//! from both places, or twice, is harmless.
//!
//! Several processes starting at once against an empty database (replicas of one service) are
//! safe through [`SeaOrmStore::migrate`](crate::SeaOrmStore::migrate) (which `connect` calls):
//! it holds a lock in the database while it runs, so one process migrates and the others then
//! find the schema in place. SeaORM's own migrator takes no such lock, so if your migrator runs
//! these migrations, run it from one process (a deploy step), or
//! let every replica call [`SeaOrmStore::migrate`](crate::SeaOrmStore::migrate) instead.

use sea_orm_migration::prelude::*;

pub mod m20260101_000001_create_audit_log;
pub mod m20261122_000002_free_text_index;
pub mod m20261130_000003_mysql_exact_text;
pub mod m20261201_000004_create_audit_intent;
pub mod m20261203_000005_create_audit_chain;
pub mod m20261204_000006_create_audit_retention;
pub mod m20261204_000007_bucketed_lookup_indexes;
pub mod m20261205_000008_sqlite_covering_tenant_index;
pub mod m20261206_000009_search_text;
pub mod m20261206_000010_postgres_grouped_tenant_index;
pub mod m20261207_000011_mysql_search_index;
pub mod m20261208_000012_trace_id;
pub mod m20261208_000013_create_audit_entity_ref;

/// Creates and upgrades the `audit_log` and `audit_intent` tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_create_audit_log::Migration),
            Box::new(m20261122_000002_free_text_index::Migration),
            Box::new(m20261130_000003_mysql_exact_text::Migration),
            Box::new(m20261201_000004_create_audit_intent::Migration),
            Box::new(m20261203_000005_create_audit_chain::Migration),
            Box::new(m20261204_000006_create_audit_retention::Migration),
            Box::new(m20261204_000007_bucketed_lookup_indexes::Migration),
            Box::new(m20261205_000008_sqlite_covering_tenant_index::Migration),
            Box::new(m20261206_000009_search_text::Migration),
            Box::new(m20261206_000010_postgres_grouped_tenant_index::Migration),
            Box::new(m20261207_000011_mysql_search_index::Migration),
            Box::new(m20261208_000012_trace_id::Migration),
            Box::new(m20261208_000013_create_audit_entity_ref::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("audit_seaql_migrations").into_iden()
    }
}
