//! The objects bulk changes name ([`BulkChange`]), kept in `audit_entity_ref`
//! ([`m20261208_000013_create_audit_entity_ref`](crate::migration::m20261208_000013_create_audit_entity_ref)):
//! written with their entries, in the same transaction; read before a query with an entity id
//! filter, whose condition then also takes the entries found; deleted with their entries by a
//! purge.

use audit_core::store::{AuditQuery, Scope, StoreError};
use audit_core::{AuditEntry, BulkChange};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::entity::capacity;
use crate::error::store_error;

/// The `audit_entity_ref` table: one row per object a bulk change names.
pub(crate) mod ref_entity {
    use sea_orm::entity::prelude::*;

    /// An object a bulk change names.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_entity_ref")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub entry_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub entity_id: String,
        pub tenant_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use ref_entity::{Column, Entity};

/// The most bulk changes naming the filtered objects that a query takes, newest first: an
/// object named by more bulk changes than this (in the query's tenant) is found in its newest
/// ones only.
pub(crate) const MAX_NAMING_ENTRIES: u64 = 1000;

/// Writes the rows of the bulk changes among `entries` (entries just inserted, in the
/// transaction that inserted them). An id longer than the column (only possible with
/// [`Limits`](audit_core::Limits) raised past it) is not kept.
pub(crate) async fn write<'a, C: ConnectionTrait>(
    txn: &C,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<(), StoreError> {
    let mut rows: Vec<ref_entity::ActiveModel> = Vec::new();
    for entry in entries {
        for id in BulkChange::ids_of(entry) {
            if id.chars().count() > capacity::ID as usize {
                continue;
            }
            rows.push(ref_entity::ActiveModel {
                entry_id: Set(entry.id),
                entity_id: Set(id.to_owned()),
                tenant_id: Set(entry.tenant_id.clone()),
            });
        }
    }
    // Statements of the entries' few sizes (`crate::write`): a last, short one is padded by
    // repeating a row, which the insert skips, so a connection prepares few statements.
    for chunk in rows.chunks(crate::write::LARGE_STEP) {
        let shape = crate::write::padded_len(chunk.len());
        let mut statement = chunk.to_vec();
        if let Some(last) = chunk.last() {
            statement.resize(shape, last.clone());
        }
        Entity::insert_many(statement)
            .on_conflict_do_nothing()
            .exec_without_returning(txn)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// The ids of the entries in `query`'s tenant (any tenant when unscoped) whose bulk changes
/// name one of the query's entity ids, newest first, at most [`MAX_NAMING_ENTRIES`]; empty,
/// without a round trip, when the query filters no entity id.
pub(crate) async fn naming<C: ConnectionTrait>(
    db: &C,
    query: &AuditQuery,
) -> Result<Vec<Uuid>, StoreError> {
    if query.entity_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = Entity::find()
        .select_only()
        .column(Column::EntryId)
        .filter(Column::EntityId.is_in(query.entity_ids.iter().cloned()));
    match &query.scope {
        Scope::All => {}
        Scope::Tenant(tenant) | Scope::Team { tenant, .. } => {
            select = select.filter(Column::TenantId.eq(tenant.as_str()));
        }
    }
    let mut ids: Vec<Uuid> = select
        .order_by_desc(Column::EntryId)
        .limit(MAX_NAMING_ENTRIES)
        .into_tuple()
        .all(db)
        .await
        .map_err(store_error)?;
    // Several of the filtered ids may name one entry.
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Deletes the rows of the entries of `audit_log` that `entries` selects, before a purge
/// deletes those entries in the same transaction.
pub(crate) async fn delete_of<C: ConnectionTrait>(
    txn: &C,
    entries: sea_orm::Condition,
) -> Result<u64, StoreError> {
    let ids = sea_orm::sea_query::Query::select()
        .column(crate::entity::Column::Id)
        .from(crate::entity::Entity)
        .cond_where(entries)
        .to_owned();
    Ok(Entity::delete_many()
        .filter(Column::EntryId.in_subquery(ids))
        .exec(txn)
        .await
        .map_err(store_error)?
        .rows_affected)
}
