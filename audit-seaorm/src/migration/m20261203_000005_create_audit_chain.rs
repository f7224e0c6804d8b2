//! Adds the hash chain (see `audit_core::chain` and `docs/chain.md`):
//!
//! - four nullable columns on `audit_log`, written in the entry's own insert: `chain_seq` (the
//!   entry's number in its tenant's chain), `chain_hash` (32 bytes), `chain_personal` (the
//!   32-byte digest of its personal fields) and `chain_salt` (the digest's 16-byte salt,
//!   `NULL` once the personal fields are erased). A unique index on (`tenant_id`,
//!   `chain_seq`) serves verification, which walks a chain in order, and refuses a fork of a
//!   tenant's chain whoever writes. Entries without a tenant share one chain, which the head
//!   lock alone keeps in line: the three databases treat `NULL` keys as distinct.
//! - `audit_chain_head`: each chain's last sequence number and hash (`chain_key`: `t:` and the
//!   tenant id, or `-` for entries without a tenant), the row a writer locks before it extends
//!   the chain.
//!
//! Entries stored before this migration keep `NULL` links: they stay an unchained prefix that
//! verification counts and reports, rather than being chained after the fact by a migration
//! that would vouch for rows it never saw written.
//!
//! Idempotent: each column, the index and the table are created only when missing. Adding a
//! nullable column without a default changes no stored row on any of the three databases.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_audit_log::mysql_collation;

/// The migration that adds the chain's columns to `audit_log` and creates `audit_chain_head`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

/// The tables and columns, frozen as of this migration.
#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    TenantId,
    ChainSeq,
    ChainHash,
    ChainPersonal,
    ChainSalt,
}

#[derive(DeriveIden)]
enum AuditChainHead {
    Table,
    ChainKey,
    Seq,
    Hash,
}

const LOG: &str = "audit_log";
const HEAD: &str = "audit_chain_head";
const INDEX: &str = "audit_log_chain";
/// `t:` and a tenant id of up to 255 characters.
const KEY_LEN: u32 = 257;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (
                AuditLog::ChainSeq,
                ColumnDef::new(AuditLog::ChainSeq)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
            (
                AuditLog::ChainHash,
                ColumnDef::new(AuditLog::ChainHash)
                    .binary_len(32)
                    .null()
                    .to_owned(),
            ),
            (
                AuditLog::ChainPersonal,
                ColumnDef::new(AuditLog::ChainPersonal)
                    .binary_len(32)
                    .null()
                    .to_owned(),
            ),
            (
                AuditLog::ChainSalt,
                ColumnDef::new(AuditLog::ChainSalt)
                    .binary_len(16)
                    .null()
                    .to_owned(),
            ),
        ];
        // One column per statement: SQLite alters one thing at a time.
        for (name, mut column) in columns {
            if !manager.has_column(LOG, &name.to_string()).await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(AuditLog::Table)
                            .add_column(&mut column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        if !manager.has_index(LOG, INDEX).await? {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(AuditLog::Table)
                        .col(AuditLog::TenantId)
                        .col(AuditLog::ChainSeq)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        if !manager.has_table(HEAD).await? {
            let mut table = Table::create();
            table
                .table(AuditChainHead::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(AuditChainHead::ChainKey)
                        .string_len(KEY_LEN)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(AuditChainHead::Seq).big_integer().not_null())
                .col(
                    ColumnDef::new(AuditChainHead::Hash)
                        .binary_len(32)
                        .not_null(),
                );
            if manager.get_database_backend() == DbBackend::MySql {
                // Keys compare byte for byte: tenants `acme` and `Acme` have two chains.
                table
                    .character_set("utf8mb4")
                    .collate(mysql_collation(manager).await?);
            }
            manager.create_table(table).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(AuditChainHead::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        if manager.has_index(LOG, INDEX).await? {
            manager
                .drop_index(Index::drop().name(INDEX).table(AuditLog::Table).to_owned())
                .await?;
        }
        for name in [
            AuditLog::ChainSeq,
            AuditLog::ChainHash,
            AuditLog::ChainPersonal,
            AuditLog::ChainSalt,
        ] {
            if manager.has_column(LOG, &name.to_string()).await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(AuditLog::Table)
                            .drop_column(name)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
