//! Creates `audit_log` and the indexes its queries use.
//!
//! Column types suit each backend: native `uuid`, `timestamptz` and `jsonb` on PostgreSQL;
//! `binary(16)`, `DATETIME(6)` (microseconds; a plain `DATETIME` would drop them) and `json`
//! on MySQL/MariaDB; text affinities on SQLite, where the id is stored as a 16-byte blob (what
//! the sqlx driver binds for a UUID; it sorts like the UUID itself).
//!
//! On MySQL the table uses a binary, no-pad collation, so that `tenant_id = 'acme'` matches
//! neither `'ACME'` nor `'acme '`: scoping and filters compare exactly as on the other
//! backends. Free text still matches case-insensitively because the store lowers both sides.
//!
//! Indexes follow the queries (newest first within a tenant, optionally filtered):
//! `(tenant_id, occurred_at, id)`, and `(tenant_id, <column>, occurred_at, id)` for entity type,
//! action, actor id and entity id. `id` ends each index so a keyset page on
//! `(occurred_at, id)` is read in index order with no sort. `(occurred_at, id)` serves the
//! unscoped view of a platform operator.
//!
//! The migration is idempotent: the table and each index are created only when missing.

use sea_orm::{DbBackend, Statement};
use sea_orm_migration::prelude::*;

use crate::entity::capacity;

/// The migration that creates `audit_log`.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

/// The table and its columns, frozen as of this migration.
#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    OccurredAt,
    TenantId,
    TeamId,
    ActorKind,
    ActorId,
    ActorName,
    ApiKeyId,
    ApiKeyName,
    Action,
    EntityType,
    EntityId,
    EntityName,
    Details,
    Changes,
    Outcome,
    Status,
    Ip,
    UserAgent,
    RequestId,
    Method,
    Route,
    Metadata,
}

const TABLE: &str = "audit_log";

/// Every index: its name and columns.
fn indexes() -> Vec<(&'static str, Vec<AuditLog>)> {
    use AuditLog::*;
    vec![
        ("audit_log_tenant_time", vec![TenantId, OccurredAt, Id]),
        (
            "audit_log_tenant_entity_type",
            vec![TenantId, EntityType, OccurredAt, Id],
        ),
        (
            "audit_log_tenant_action",
            vec![TenantId, Action, OccurredAt, Id],
        ),
        (
            "audit_log_tenant_actor",
            vec![TenantId, ActorId, OccurredAt, Id],
        ),
        (
            "audit_log_tenant_entity_id",
            vec![TenantId, EntityId, OccurredAt, Id],
        ),
        ("audit_log_time", vec![OccurredAt, Id]),
    ]
}

/// The collation that compares MySQL text byte for byte and counts trailing spaces.
pub(crate) async fn mysql_collation(manager: &SchemaManager<'_>) -> Result<&'static str, DbErr> {
    let row = manager
        .get_connection()
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT VERSION() AS version",
        ))
        .await?;
    let version: String = match row {
        Some(row) => row.try_get("", "version")?,
        None => String::new(),
    };
    Ok(if version.to_ascii_lowercase().contains("mariadb") {
        "utf8mb4_nopad_bin"
    } else {
        // MySQL 8's binary collation of the 0900 family is NO PAD.
        "utf8mb4_0900_bin"
    })
}

fn text(def: &mut ColumnDef, len: u32) -> &mut ColumnDef {
    def.string_len(len)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        if !manager.has_table(TABLE).await? {
            let mut table = Table::create();
            table.table(AuditLog::Table).if_not_exists();

            let mut id = ColumnDef::new(AuditLog::Id);
            id.uuid().not_null().primary_key();
            let mut occurred_at = ColumnDef::new(AuditLog::OccurredAt);
            match backend {
                DbBackend::MySql => occurred_at.custom("DATETIME(6)"),
                _ => occurred_at.timestamp_with_time_zone(),
            };
            occurred_at.not_null();
            table.col(id).col(occurred_at);

            for (column, len, required) in [
                (AuditLog::TenantId, capacity::ID, false),
                (AuditLog::TeamId, capacity::ID, false),
                (AuditLog::ActorKind, capacity::KIND, true),
                (AuditLog::ActorId, capacity::ID, false),
                (AuditLog::ActorName, capacity::NAME, false),
                (AuditLog::ApiKeyId, capacity::ID, false),
                (AuditLog::ApiKeyName, capacity::NAME, false),
                (AuditLog::Action, capacity::ACTION, true),
                (AuditLog::EntityType, capacity::NAME, false),
                (AuditLog::EntityId, capacity::ID, false),
                (AuditLog::EntityName, capacity::NAME, false),
            ] {
                let mut def = ColumnDef::new(column);
                text(&mut def, len);
                if required {
                    def.not_null();
                } else {
                    def.null();
                }
                table.col(def);
            }
            table
                .col(ColumnDef::new(AuditLog::Details).text().null())
                .col(ColumnDef::new(AuditLog::Changes).json_binary().not_null());
            let mut outcome = ColumnDef::new(AuditLog::Outcome);
            text(&mut outcome, capacity::KIND).not_null();
            table
                .col(outcome)
                .col(ColumnDef::new(AuditLog::Status).integer().null());
            let mut ip = ColumnDef::new(AuditLog::Ip);
            text(&mut ip, capacity::IP).null();
            let mut request_id = ColumnDef::new(AuditLog::RequestId);
            text(&mut request_id, capacity::ID).null();
            let mut method = ColumnDef::new(AuditLog::Method);
            text(&mut method, capacity::METHOD).null();
            table
                .col(ip)
                .col(ColumnDef::new(AuditLog::UserAgent).text().null())
                .col(request_id)
                .col(method)
                .col(ColumnDef::new(AuditLog::Route).text().null())
                .col(ColumnDef::new(AuditLog::Metadata).json_binary().not_null());
            if backend == DbBackend::MySql {
                table
                    .character_set("utf8mb4")
                    .collate(mysql_collation(manager).await?);
            }
            manager.create_table(table).await?;
        }

        for (name, columns) in indexes() {
            if manager.has_index(TABLE, name).await? {
                continue;
            }
            let mut index = Index::create();
            index.name(name).table(AuditLog::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).if_exists().to_owned())
            .await
    }
}
