//! Creates the hash chain's tables (see `audit_core::chain` and `docs/chain.md`):
//!
//! - `audit_chain`: one row per chained entry, written in the entry's transaction: its chain
//!   (`chain_key`: `t:` and the tenant id, or `-` for entries without a tenant), its sequence
//!   number in that chain, its hash, the digest of its personal fields and the salt of that
//!   digest (`NULL` once they are erased). A unique index on (`chain_key`, `seq`) makes a fork
//!   (two entries with one number) impossible, whoever writes.
//! - `audit_chain_head`: each chain's last sequence number and hash, the row a writer locks
//!   before it extends the chain.
//!
//! Entries stored before this migration have no `audit_chain` row: they stay as an unchained
//! prefix that verification counts and reports, rather than being chained after the fact by
//! a migration that would vouch for rows it never saw written.
//!
//! Idempotent: tables and index are created only when missing.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_audit_log::mysql_collation;

/// The migration that creates `audit_chain` and `audit_chain_head`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

/// The tables and their columns, frozen as of this migration.
#[derive(DeriveIden)]
enum AuditChain {
    Table,
    EntryId,
    ChainKey,
    Seq,
    Hash,
    Personal,
    Salt,
}

#[derive(DeriveIden)]
enum AuditChainHead {
    Table,
    ChainKey,
    Seq,
    Hash,
}

const CHAIN: &str = "audit_chain";
const HEAD: &str = "audit_chain_head";
const INDEX: &str = "audit_chain_key_seq";
/// `t:` and a tenant id of up to 255 characters.
const KEY_LEN: u32 = 257;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mysql = manager.get_database_backend() == DbBackend::MySql;
        if !manager.has_table(CHAIN).await? {
            let mut table = Table::create();
            table
                .table(AuditChain::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(AuditChain::EntryId)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuditChain::ChainKey)
                        .string_len(KEY_LEN)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditChain::Seq).big_integer().not_null())
                .col(ColumnDef::new(AuditChain::Hash).string_len(64).not_null())
                .col(
                    ColumnDef::new(AuditChain::Personal)
                        .string_len(64)
                        .not_null(),
                )
                .col(ColumnDef::new(AuditChain::Salt).string_len(32).null());
            if mysql {
                // Keys compare byte for byte: tenants `acme` and `Acme` have two chains.
                table
                    .character_set("utf8mb4")
                    .collate(mysql_collation(manager).await?);
            }
            manager.create_table(table).await?;
        }
        if !manager.has_index(CHAIN, INDEX).await? {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(AuditChain::Table)
                        .col(AuditChain::ChainKey)
                        .col(AuditChain::Seq)
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
                        .string_len(64)
                        .not_null(),
                );
            if mysql {
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
        for table in [
            AuditChain::Table.into_iden(),
            AuditChainHead::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
