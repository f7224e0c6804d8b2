//! Creates `audit_intent`: entries written before their handler runs, for routes whose change
//! lives outside the database (see `audit_core::IntentStore`). One row per request in flight:
//! the entry's id, when the intent was recorded (microseconds since the Unix epoch, as a
//! number, so every backend compares it the same way) and the entry as JSON. An index on the
//! time serves recovery, which looks for the oldest.
//!
//! Idempotent: the table and its index are created only when missing.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The migration that creates `audit_intent`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

/// The table and its columns, frozen as of this migration.
#[derive(DeriveIden)]
enum AuditIntent {
    Table,
    Id,
    RecordedAt,
    Entry,
}

const TABLE: &str = "audit_intent";
const INDEX: &str = "audit_intent_recorded_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_table(TABLE).await? {
            let mut entry = ColumnDef::new(AuditIntent::Entry);
            match manager.get_database_backend() {
                // TEXT holds 64 KiB on MySQL; an entry with its changes may be larger.
                DbBackend::MySql => entry.custom("LONGTEXT"),
                _ => entry.text(),
            };
            let mut table = Table::create();
            table
                .table(AuditIntent::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(AuditIntent::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuditIntent::RecordedAt)
                        .big_integer()
                        .not_null(),
                )
                .col(entry.not_null());
            if manager.get_database_backend() == DbBackend::MySql {
                table.character_set("utf8mb4");
            }
            manager.create_table(table).await?;
        }
        if !manager.has_index(TABLE, INDEX).await? {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(AuditIntent::Table)
                        .col(AuditIntent::RecordedAt)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(AuditIntent::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
