//! Adds `trace_id` to `audit_log`: the W3C trace id of the request an entry was made from
//! (32 lowercase hexadecimal digits), on every backend.
//!
//! The column is a nullable `varchar(32)` (`TEXT` affinity on SQLite), like the other ids a
//! plain column rather than a key of `metadata`, so that the `trace_id` filter is an equality
//! on a column on every backend. Rows stored before have none, which is what they read back as.
//!
//! No index: like `request_id`, the filter is used within a tenant and a time range, which the
//! tenant's time index (or, on SQLite, its covering index) already narrows; an index of its
//! own would be one more place every insert lands at (`docs/decisions/0063`).
//!
//! On MySQL and MariaDB the column takes the table's default collation: the binary one for a
//! table the first migration created. Trace ids are lowercase hexadecimal digits, which every
//! collation compares alike, so a table created otherwise needs nothing either.
//!
//! Adding a nullable column rewrites no stored row (PostgreSQL 11 and later, SQLite, MySQL
//! 8.0.12's and MariaDB 10.3's instant `ADD COLUMN`), so the migration is quick whatever the
//! log's size. Idempotent: it checks first.

use sea_orm_migration::prelude::*;

use crate::entity::capacity;

/// The migration that adds `trace_id`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

const LOG: &str = "audit_log";
/// The column's name.
const TRACE_ID: &str = "trace_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column(LOG, TRACE_ID).await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(LOG))
                        .add_column(
                            ColumnDef::new(Alias::new(TRACE_ID))
                                .string_len(capacity::TRACE_ID)
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_column(LOG, TRACE_ID).await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(LOG))
                        .drop_column(Alias::new(TRACE_ID))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::migration::Migrator;
    use audit_core::store::{AuditQuery, AuditStore, Scope};
    use audit_core::{Action, AuditEntry, AuditSink};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// The column comes and goes with the migration, running it twice is harmless, and the
    /// store writes and filters on it.
    #[tokio::test]
    async fn the_column_is_added_once_and_read_and_filtered() {
        let store = crate::SeaOrmStore::connect("sqlite::memory:")
            .await
            .unwrap();
        let db = store.connection();
        let manager = SchemaManager::new(db);
        assert!(manager.has_column(LOG, TRACE_ID).await.unwrap());
        // This migration's own `down` (later migrations may follow it in the migrator).
        Migration.down(&manager).await.unwrap();
        assert!(!manager.has_column(LOG, TRACE_ID).await.unwrap());
        Migration.up(&manager).await.unwrap();
        Migration.up(&manager).await.unwrap();
        Migrator::up(db, None).await.unwrap();
        assert!(manager.has_column(LOG, TRACE_ID).await.unwrap());

        let traced = AuditEntry::builder(Action::Update)
            .tenant("acme")
            .trace_id(TRACE)
            .build();
        let plain = AuditEntry::builder(Action::Update).tenant("acme").build();
        store
            .record_batch(vec![traced.clone(), plain.clone()])
            .await
            .unwrap();
        let scope = Scope::tenant("acme");
        assert_eq!(
            store.get(&scope, traced.id).await.unwrap(),
            Some(traced.clone())
        );
        assert_eq!(store.get(&scope, plain.id).await.unwrap(), Some(plain));
        let page = store
            .query(&AuditQuery::new(scope).trace_id(TRACE))
            .await
            .unwrap();
        assert_eq!(page.items, vec![traced]);
    }
}
