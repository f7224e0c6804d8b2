//! Replaces the two lookup indexes whose inserts land all over them, the actor's and the
//! object's, with indexes whose inserts land at a bounded number of places.
//!
//! `audit_log_tenant_actor` was (`tenant_id`, `actor_id`, `occurred_at`, `id`) and
//! `audit_log_tenant_entity_id` the same with `entity_id`. Their second column is random and of
//! high cardinality, so each new entry went to its own group's last leaf page: with 50 tenants,
//! about 21,500 actor groups and a million object groups at 2,000,000 entries, a batch of 1,000
//! touched about 1,000 pages of each, more than the cache holds once they grew, and inserts
//! slowed as the log grew.
//!
//! The replacements put a small bucket of the id second: `audit_log_tenant_actor_bucket` is
//! (`tenant_id`, `actor_bucket`, `occurred_at`, `id`, `actor_id`) and
//! `audit_log_tenant_entity_bucket` the same with `entity_bucket` and `entity_id`, where a
//! bucket is [`crate::entity::bucket`] of the id, one of 64 values. Within a group, entries
//! arrive in time order, so inserts append to at most 64 places per tenant. A lookup asks for
//! the tenant, the bucket and the id: it reads the bucket's entries in keyset order and keeps
//! those with the id, from the index itself (the id is its last column), without a sort.
//!
//! Adds the two bucket columns, fills them for stored rows (a thousand rows per statement),
//! creates the new indexes and drops the old ones. Idempotent: each step checks first.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm_migration::prelude::*;
use uuid::Uuid;

/// The migration that buckets the actor and object lookup indexes.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    OccurredAt,
    TenantId,
    ActorId,
    EntityId,
    ActorBucket,
    EntityBucket,
}

const LOG: &str = "audit_log";
const OLD: [&str; 2] = ["audit_log_tenant_actor", "audit_log_tenant_entity_id"];
/// Rows filled per statement.
const FILL: u64 = 1_000;

fn index(name: &str, bucket: AuditLog, id: AuditLog) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(AuditLog::Table)
        .col(AuditLog::TenantId)
        .col(bucket)
        .col(AuditLog::OccurredAt)
        .col(AuditLog::Id)
        .col(id)
        .to_owned()
}

/// Fills the bucket columns of rows stored before they existed, a thousand at a time.
async fn fill(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    loop {
        let pending = Query::select()
            .columns([AuditLog::Id, AuditLog::ActorId, AuditLog::EntityId])
            .from(AuditLog::Table)
            .cond_where(
                Condition::any()
                    .add(
                        Expr::col(AuditLog::ActorBucket)
                            .is_null()
                            .and(Expr::col(AuditLog::ActorId).is_not_null()),
                    )
                    .add(
                        Expr::col(AuditLog::EntityBucket)
                            .is_null()
                            .and(Expr::col(AuditLog::EntityId).is_not_null()),
                    ),
            )
            .limit(FILL)
            .to_owned();
        let rows = db.query_all(&pending).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut actor = CaseStatement::new();
        let mut entity = CaseStatement::new();
        for row in &rows {
            let id: Uuid = row.try_get("", "id")?;
            let actor_id: Option<String> = row.try_get("", "actor_id")?;
            let entity_id: Option<String> = row.try_get("", "entity_id")?;
            let at = Expr::col(AuditLog::Id).eq(id);
            actor = actor.case(at.clone(), actor_id.map(|a| crate::entity::bucket(&a)));
            entity = entity.case(at, entity_id.map(|e| crate::entity::bucket(&e)));
            ids.push(id);
        }
        let update = Query::update()
            .table(AuditLog::Table)
            .value(AuditLog::ActorBucket, actor)
            .value(AuditLog::EntityBucket, entity)
            .and_where(Expr::col(AuditLog::Id).is_in(ids))
            .to_owned();
        db.execute(&update).await?;
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [AuditLog::ActorBucket, AuditLog::EntityBucket] {
            if !manager.has_column(LOG, &name.to_string()).await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(AuditLog::Table)
                            .add_column(ColumnDef::new(name).small_integer().null())
                            .to_owned(),
                    )
                    .await?;
            }
        }
        fill(manager).await?;
        for (name, bucket, id) in [
            (
                "audit_log_tenant_actor_bucket",
                AuditLog::ActorBucket,
                AuditLog::ActorId,
            ),
            (
                "audit_log_tenant_entity_bucket",
                AuditLog::EntityBucket,
                AuditLog::EntityId,
            ),
        ] {
            if !manager.has_index(LOG, name).await? {
                manager.create_index(index(name, bucket, id)).await?;
            }
        }
        for name in OLD {
            if manager.has_index(LOG, name).await? {
                manager
                    .drop_index(Index::drop().name(name).table(AuditLog::Table).to_owned())
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, column) in [
            ("audit_log_tenant_actor", AuditLog::ActorId),
            ("audit_log_tenant_entity_id", AuditLog::EntityId),
        ] {
            if !manager.has_index(LOG, name).await? {
                manager
                    .create_index(
                        Index::create()
                            .name(name)
                            .table(AuditLog::Table)
                            .col(AuditLog::TenantId)
                            .col(column)
                            .col(AuditLog::OccurredAt)
                            .col(AuditLog::Id)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        for name in [
            "audit_log_tenant_actor_bucket",
            "audit_log_tenant_entity_bucket",
        ] {
            if manager.has_index(LOG, name).await? {
                manager
                    .drop_index(Index::drop().name(name).table(AuditLog::Table).to_owned())
                    .await?;
            }
        }
        for name in [AuditLog::ActorBucket, AuditLog::EntityBucket] {
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
