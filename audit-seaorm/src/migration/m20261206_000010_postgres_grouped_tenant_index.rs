//! On PostgreSQL, the tenant's time index carries the columns a tenant's grouped questions
//! read, so that they read that index alone; nothing on SQLite and MySQL.
//!
//! `audit_log_tenant_time` was (`tenant_id`, `occurred_at`, `id`). `audit_log_tenant_grouped`
//! has the same key, so it serves every listing the old one did, and `INCLUDE (team_id,
//! entity_type, action, actor_id, actor_name, api_key_id)`: a summary of a tenant's 30 days, its actors
//! (by name or e-mail too) and its facets are index-only scans of the tenant's slice, instead
//! of reading one table page per entry (a tenant's entries are spread over the whole table).
//! It replaces the old index rather than adding one, so an insert still lands at one place
//! per tenant in it (`docs/decisions/0059`).
//!
//! An index-only scan skips the table for pages the visibility map marks all-visible, which
//! autovacuum keeps up for an append-only table (its insert threshold, PostgreSQL 13 and
//! later). Building the index reads the table once, writes waiting meanwhile (seconds per
//! million entries). Idempotent: each step checks first.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

/// The migration that makes PostgreSQL's tenant time index carry the grouped columns.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

const LOG: &str = "audit_log";
/// The index it replaces.
const OLD: &str = "audit_log_tenant_time";
/// The new index's name.
pub(crate) const GROUPED: &str = "audit_log_tenant_grouped";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {GROUPED} ON {LOG} (tenant_id, occurred_at, id) \
             INCLUDE (team_id, entity_type, action, actor_id, actor_name, api_key_id)"
        ))
        .await?;
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {OLD}"))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {OLD} ON {LOG} (tenant_id, occurred_at, id)"
        ))
        .await?;
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {GROUPED}"))
            .await?;
        Ok(())
    }
}
