//! Adds what retention needs (see `audit_core::retention`):
//!
//! - `audit_chain_start`: where each chain a purge shortened now starts, the sequence number
//!   and hash of the last entry it deleted (`chain_key` as in `audit_chain_head`). A chain
//!   without a row starts at its first entry. A purge moves it in the transaction that deletes
//!   the entries, so the chain verifies from its start at every moment. It is a table of its
//!   own, not columns of `audit_chain_head`, so that a purge never waits for, or holds up, the
//!   writers that lock a head to extend the chain.
//! - `audit_legal_hold`: one row per tenant whose log is on legal hold, with the reason, who
//!   placed it and when. A purge reads it before every batch.
//!
//! Idempotent: each table is created only when missing.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_audit_log::mysql_collation;

/// The migration that creates `audit_chain_start` and `audit_legal_hold`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditChainStart {
    Table,
    ChainKey,
    Seq,
    Hash,
}

#[derive(DeriveIden)]
enum AuditLegalHold {
    Table,
    ChainKey,
    Reason,
    PlacedBy,
    PlacedAt,
}

/// `t:` and a tenant id of up to 255 characters.
const KEY_LEN: u32 = 257;

/// A chain key column, the table's primary key.
fn key(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .string_len(KEY_LEN)
        .not_null()
        .primary_key()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mysql = backend == DbBackend::MySql;
        let collation = if mysql {
            Some(mysql_collation(manager).await?)
        } else {
            None
        };
        let mut start = Table::create();
        start
            .table(AuditChainStart::Table)
            .if_not_exists()
            .col(key(AuditChainStart::ChainKey))
            .col(
                ColumnDef::new(AuditChainStart::Seq)
                    .big_integer()
                    .not_null(),
            )
            .col(
                ColumnDef::new(AuditChainStart::Hash)
                    .binary_len(32)
                    .not_null(),
            );
        let mut placed_at = ColumnDef::new(AuditLegalHold::PlacedAt);
        match backend {
            DbBackend::MySql => placed_at.custom("DATETIME(6)"),
            _ => placed_at.timestamp_with_time_zone(),
        };
        let mut hold = Table::create();
        hold.table(AuditLegalHold::Table)
            .if_not_exists()
            .col(key(AuditLegalHold::ChainKey))
            .col(
                ColumnDef::new(AuditLegalHold::Reason)
                    .string_len(2000)
                    .not_null(),
            )
            .col(
                ColumnDef::new(AuditLegalHold::PlacedBy)
                    .string_len(255)
                    .null(),
            )
            .col(placed_at.not_null());
        for table in [&mut start, &mut hold] {
            if let Some(collation) = collation {
                // Keys compare byte for byte, as the chain heads' do.
                table.character_set("utf8mb4").collate(collation);
            }
            manager.create_table(table.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(AuditLegalHold::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(AuditChainStart::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
