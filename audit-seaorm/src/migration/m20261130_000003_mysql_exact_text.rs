//! Makes the text columns of `audit_log` compare byte for byte on MySQL and MariaDB; nothing
//! elsewhere.
//!
//! Scopes and filters find rows by equality on text (`tenant_id = 'acme'`), so the columns
//! must compare exactly: under a case- or accent-insensitive collation, tenant `acme` would
//! also see the entries of tenants `ACME` and `Acmé`. The first migration creates the table
//! with the binary, no-pad collation, but a table it finds already there (created by your own
//! migrator from [`entity`](crate::entity), which takes the server's default collation) it
//! leaves as it is. This migration checks the columns and converts those that do not use the
//! binary collation. A table already right is not touched.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_audit_log::mysql_collation;

/// The migration that makes text compare exactly on MySQL and MariaDB.
#[derive(Debug, Clone, Copy, DeriveMigrationName)]
pub struct Migration;

/// The JSON columns: MariaDB gives them a collation of their own, which is left alone.
const JSON_COLUMNS: [&str; 2] = ["changes", "metadata"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let collation = mysql_collation(manager).await?;
        let conn = manager.get_connection();
        let rows = conn
            .query_all_raw(Statement::from_string(
                DbBackend::MySql,
                "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, \
                 COLLATION_NAME AS collation FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'audit_log' \
                 AND COLLATION_NAME IS NOT NULL",
            ))
            .await?;
        let mut changes = Vec::new();
        for row in rows {
            let name: String = row.try_get("", "name")?;
            let current: String = row.try_get("", "collation")?;
            if JSON_COLUMNS.contains(&name.as_str()) || current == collation {
                continue;
            }
            let column_type: String = row.try_get("", "type")?;
            let nullable: String = row.try_get("", "nullable")?;
            let null = if nullable == "YES" {
                "NULL"
            } else {
                "NOT NULL"
            };
            // The names and types come from the server's own catalogue, the collation from
            // a fixed list: nothing here is user input.
            changes.push(format!(
                "MODIFY `{name}` {column_type} CHARACTER SET utf8mb4 COLLATE {collation} {null}"
            ));
        }
        if changes.is_empty() {
            return Ok(());
        }
        conn.execute_unprepared(&format!("ALTER TABLE audit_log {}", changes.join(", ")))
            .await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Nothing to undo: the first migration's `down` drops the table.
        Ok(())
    }
}
