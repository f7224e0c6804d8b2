//! On SQLite, one covering index per tenant answers every filter of a tenant's log; the five
//! indexes it replaces made a growing log's inserts four times slower. Nothing on PostgreSQL
//! and MySQL.
//!
//! `audit_log_tenant_covering` is (`tenant_id`, `occurred_at`, `id`) followed by every column a
//! tenant's listing filters on: team, entity type, action, actor and its bucket, object and its
//! bucket, API key, actor kind, outcome. A listing scans the tenant's slice of it in keyset
//! order, checks the filters on the index entry itself, and reads from the table only the rows
//! it returns. It replaces `audit_log_tenant_time` and the four filter indexes
//! (`audit_log_tenant_entity_type`, `audit_log_tenant_action`, `audit_log_tenant_actor_bucket`,
//! `audit_log_tenant_entity_bucket`): inserts now land at one place per tenant instead of
//! several hundred per index, and a filter that matches few entries reads the tenant's index
//! entries instead of seeking straight to them (`docs/decisions/0054`).
//!
//! Building the index reads the whole table once (seconds per million entries), under the
//! write lock like any SQLite migration. Idempotent: each step checks first.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

/// The migration that gives SQLite one covering index per tenant.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

const LOG: &str = "audit_log";
/// The covering index's name.
pub(crate) const COVERING: &str = "audit_log_tenant_covering";

/// The indexes the covering one replaces on SQLite, with their definitions (for `down`).
const REPLACED: [(&str, &str); 5] = [
    ("audit_log_tenant_time", "tenant_id, occurred_at, id"),
    (
        "audit_log_tenant_entity_type",
        "tenant_id, entity_type, occurred_at, id",
    ),
    (
        "audit_log_tenant_action",
        "tenant_id, action, occurred_at, id",
    ),
    (
        "audit_log_tenant_actor_bucket",
        "tenant_id, actor_bucket, occurred_at, id, actor_id",
    ),
    (
        "audit_log_tenant_entity_bucket",
        "tenant_id, entity_bucket, occurred_at, id, entity_id",
    ),
];

/// The covering index's columns: the keyset order, then every filtered column.
const COVERING_COLUMNS: &str = "tenant_id, occurred_at, id, team_id, entity_type, action, \
    actor_id, actor_bucket, entity_id, entity_bucket, api_key_id, actor_kind, outcome";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {COVERING} ON {LOG} ({COVERING_COLUMNS})"
        ))
        .await?;
        for (name, _) in REPLACED {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for (name, columns) in REPLACED {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {LOG} ({columns})"
            ))
            .await?;
        }
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {COVERING}"))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::migration::Migrator;
    use sea_orm::{Statement, TryGetable};

    async fn indexes(db: &sea_orm::DatabaseConnection) -> Vec<String> {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|row| String::try_get(row, "", "name").unwrap())
            .collect()
    }

    #[tokio::test]
    async fn sqlite_keeps_one_covering_index_per_tenant_and_the_migration_reverts() {
        let store = crate::SeaOrmStore::connect("sqlite::memory:")
            .await
            .unwrap();
        let db = store.connection();
        assert_eq!(
            indexes(db).await,
            ["audit_log_chain", COVERING, "audit_log_time"]
        );
        // Back to before this migration, whatever came after it.
        let later = Migrator::migrations()
            .iter()
            .rev()
            .take_while(|m| m.name() != Migration.name())
            .count();
        Migrator::down(db, Some(later as u32 + 1)).await.unwrap();
        let before = indexes(db).await;
        for (name, _) in REPLACED {
            assert!(before.iter().any(|i| i == name), "{name}: {before:?}");
        }
        assert!(!before.iter().any(|i| i == COVERING), "{before:?}");
        Migrator::up(db, None).await.unwrap();
        assert_eq!(
            indexes(db).await,
            ["audit_log_chain", COVERING, "audit_log_time"]
        );
    }
}
