//! Adds `audit_entity_ref`: one row for each object a bulk change names
//! ([`BulkChange`](audit_core::BulkChange)), so that a filter by entity id finds the bulk
//! changes of an object by an index, as it finds the object's own entries.
//!
//! A row holds the entry's id, the object's id and the entry's tenant. Its key is
//! (`entry_id`, `entity_id`), which a purge deletes by; the index
//! `audit_entity_ref_lookup` (`entity_id`, `tenant_id`, `entry_id`) answers "which entries name
//! this object", within a tenant or in all of them, newest first. Only bulk changes have rows,
//! so the table and its index stay small next to `audit_log` and cost other entries nothing.
//!
//! Idempotent: the table and the index are created only when missing.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_audit_log::mysql_collation;
use crate::entity::capacity;

/// The migration that creates `audit_entity_ref`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

/// The table's name.
pub const TABLE: &str = "audit_entity_ref";
/// The look-up index's name.
pub const INDEX: &str = "audit_entity_ref_lookup";

#[derive(DeriveIden)]
enum AuditEntityRef {
    Table,
    EntryId,
    EntityId,
    TenantId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        if !manager.has_table(TABLE).await? {
            let mut table = Table::create();
            table
                .table(AuditEntityRef::Table)
                .if_not_exists()
                .col(ColumnDef::new(AuditEntityRef::EntryId).uuid().not_null())
                .col(
                    ColumnDef::new(AuditEntityRef::EntityId)
                        .string_len(capacity::ID)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEntityRef::TenantId)
                        .string_len(capacity::ID)
                        .null(),
                )
                .primary_key(
                    Index::create()
                        .col(AuditEntityRef::EntryId)
                        .col(AuditEntityRef::EntityId),
                );
            if backend == DbBackend::MySql {
                // Ids compare byte for byte, as in `audit_log`.
                table
                    .character_set("utf8mb4")
                    .collate(mysql_collation(manager).await?);
            }
            manager.create_table(table.to_owned()).await?;
        }
        if !manager.has_index(TABLE, INDEX).await? {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(AuditEntityRef::Table)
                        .col(AuditEntityRef::EntityId)
                        .col(AuditEntityRef::TenantId)
                        .col(AuditEntityRef::EntryId)
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
                    .table(AuditEntityRef::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
