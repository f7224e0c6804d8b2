//! Retention in SQL: purges that delete a chain's oldest entries in short transactions and move
//! the chain's start with them, and legal holds. The tables are
//! [`m20261204_000006_create_audit_retention`](crate::migration::m20261204_000006_create_audit_retention)'s.
//!
//! A purge of one tenant, on the store's writer connection:
//!
//! 1. stops if the tenant is on legal hold;
//! 2. finds the last entry to go, `through`: the entry before the first of the chain (after its
//!    current start) that is to be kept, or the chain's last entry when none is. Entries go in
//!    chain order, so a chain loses only a prefix and stays whole;
//! 3. records itself as a `Purge` entry in the tenant's chain, naming `through` and its hash;
//! 4. deletes up to `batch` entries per transaction, oldest first, and in the same transaction
//!    moves the chain's start (`audit_chain_start`) to the last entry deleted, checking the
//!    hold again first; the writers extending the chain never wait for it (they lock the head,
//!    not the start);
//! 5. deletes the tenant's entries stored before chaining began (no link) that are older than
//!    the cutoff, in the same batches.
//!
//! Verification starts at the recorded start and accepts it when a `Purge` entry of the chain
//! names a `through` at or beyond it.

use audit_core::AuditEntry;
use audit_core::chain::ChainHash;
use audit_core::retention::{LegalHold, PurgeReport, PurgeRequest};
use audit_core::store::StoreError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IsolationLevel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use crate::chain::chain_key;
use crate::entity;
use crate::error::store_error;

/// The `audit_chain_start` table: where each chain a purge shortened starts.
pub(crate) mod start_entity {
    use sea_orm::entity::prelude::*;

    /// The last entry a purge deleted from one chain.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_chain_start")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chain_key: String,
        pub seq: i64,
        #[sea_orm(column_type = "Binary(32)")]
        pub hash: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `audit_legal_hold` table: one row per tenant on legal hold.
pub(crate) mod hold_entity {
    use sea_orm::entity::prelude::*;

    /// A legal hold.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_legal_hold")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chain_key: String,
        pub reason: String,
        pub placed_by: Option<String>,
        pub placed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn corrupt(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        id: what.to_owned(),
        message: message.to_string(),
    }
}

fn tenant_of(key: &str) -> Option<String> {
    key.strip_prefix("t:").map(str::to_owned)
}

/// Where `tenant`'s chain starts: the number and hash of the last entry a purge deleted, or
/// `(0, GENESIS)` when the chain starts at its first entry.
pub(crate) async fn chain_start<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
) -> Result<(u64, ChainHash), StoreError> {
    let key = chain_key(tenant);
    match start_entity::Entity::find_by_id(key.clone())
        .one(db)
        .await
        .map_err(store_error)?
    {
        None => Ok((0, ChainHash::GENESIS)),
        Some(row) => {
            let seq = u64::try_from(row.seq)
                .map_err(|_| corrupt(&key, format!("a chain start of {}", row.seq)))?;
            let hash = <[u8; 32]>::try_from(row.hash.as_slice())
                .map(ChainHash)
                .map_err(|_| corrupt(&key, "a chain start's hash is not 32 bytes"))?;
            Ok((seq, hash))
        }
    }
}

/// The legal hold on `tenant`, if one stands.
pub(crate) async fn legal_hold<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
) -> Result<Option<LegalHold>, StoreError> {
    Ok(hold_entity::Entity::find_by_id(chain_key(tenant))
        .one(db)
        .await
        .map_err(store_error)?
        .map(|row| LegalHold {
            tenant_id: tenant_of(&row.chain_key),
            reason: row.reason,
            placed_by: row.placed_by,
            placed_at: row.placed_at,
        }))
}

/// Places `hold` on `tenant` (replacing one that stands), or lifts the hold with `None`.
pub(crate) async fn set_legal_hold<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
    hold: Option<&LegalHold>,
) -> Result<(), StoreError> {
    let key = chain_key(tenant);
    match hold {
        None => {
            hold_entity::Entity::delete_by_id(key)
                .exec(db)
                .await
                .map_err(store_error)?;
        }
        Some(hold) => {
            let row = hold_entity::ActiveModel {
                chain_key: Set(key),
                reason: Set(hold
                    .reason
                    .chars()
                    .take(audit_core::retention::MAX_HOLD_REASON)
                    .collect()),
                placed_by: Set(hold
                    .placed_by
                    .as_ref()
                    .map(|who| who.chars().take(255).collect())),
                placed_at: Set(hold.placed_at),
            };
            hold_entity::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(hold_entity::Column::ChainKey)
                        .update_columns([
                            hold_entity::Column::Reason,
                            hold_entity::Column::PlacedBy,
                            hold_entity::Column::PlacedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await
                .map_err(store_error)?;
        }
    }
    Ok(())
}

/// The entries of `tenant`.
fn of_tenant(tenant: Option<&str>) -> sea_orm::sea_query::SimpleExpr {
    match tenant {
        Some(tenant) => entity::Column::TenantId.eq(tenant),
        None => entity::Column::TenantId.is_null(),
    }
}

fn to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|e| corrupt("sequence", e))
}

/// The number and hash of the last entry of `tenant`'s chain a purge of everything before
/// `before` deletes, after `start`; `None` when nothing goes.
async fn last_to_go<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
    start: u64,
    before: DateTime<Utc>,
) -> Result<Option<(u64, ChainHash)>, StoreError> {
    use entity::Column;
    let after_start = || {
        entity::Entity::find()
            .select_only()
            .filter(of_tenant(tenant))
            .filter(Column::ChainSeq.gt(start as i64))
    };
    // The first entry of the chain to keep; everything before it goes.
    let kept: Option<Option<i64>> = after_start()
        .column(Column::ChainSeq)
        .filter(Column::OccurredAt.gte(before))
        .order_by_asc(Column::ChainSeq)
        .limit(1)
        .into_tuple()
        .one(db)
        .await
        .map_err(store_error)?;
    let bound = kept.flatten();
    let mut last = after_start()
        .columns([Column::ChainSeq, Column::ChainHash])
        .order_by_desc(Column::ChainSeq)
        .limit(1);
    if let Some(bound) = bound {
        last = last.filter(Column::ChainSeq.lt(bound));
    }
    let row: Option<(Option<i64>, Option<Vec<u8>>)> =
        last.into_tuple().one(db).await.map_err(store_error)?;
    match row {
        Some((Some(seq), Some(hash))) => {
            let seq =
                u64::try_from(seq).map_err(|_| corrupt("audit_log", "a negative sequence"))?;
            let hash = <[u8; 32]>::try_from(hash.as_slice())
                .map(ChainHash)
                .map_err(|_| corrupt("audit_log", "a chain hash is not 32 bytes"))?;
            Ok(Some((seq, hash)))
        }
        _ => Ok(None),
    }
}

/// A short write transaction: read committed on a server, and on SQLite one that takes the
/// write lock at once (it reads the hold before it deletes).
async fn begin(
    db: &DatabaseConnection,
    isolation: Option<IsolationLevel>,
) -> Result<sea_orm::DatabaseTransaction, StoreError> {
    let sqlite = db.get_database_backend() == DbBackend::Sqlite;
    db.begin_with_options(TransactionOptions {
        isolation_level: isolation,
        sqlite_transaction_mode: sqlite.then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
    .map_err(store_error)
}

/// Runs `request` on `db`, the store's writer connection (see the module documentation).
pub(crate) async fn purge(
    db: &DatabaseConnection,
    isolation: Option<IsolationLevel>,
    request: &PurgeRequest,
) -> Result<PurgeReport, StoreError> {
    use entity::Column;
    let tenant = request.tenant_id.as_deref();
    let batch = u64::from(request.batch.clamp(1, 10_000));
    let mut report = PurgeReport::new(request);
    if let Some(hold) = legal_hold(db, tenant).await? {
        report.held = Some(hold);
        return Ok(report);
    }
    let (mut start, _) = chain_start(db, tenant).await?;
    report.chain_start = start;
    let through = last_to_go(db, tenant, start, request.before).await?;
    let chained = match through {
        Some((seq, _)) => entity::Entity::find()
            .filter(of_tenant(tenant))
            .filter(Column::ChainSeq.gt(to_i64(start)?))
            .filter(Column::ChainSeq.lte(to_i64(seq)?))
            .count(db)
            .await
            .map_err(store_error)?,
        None => 0,
    };
    let unlinked = || {
        entity::Entity::find()
            .filter(of_tenant(tenant))
            .filter(Column::ChainSeq.is_null())
            .filter(Column::OccurredAt.lt(request.before))
    };
    let unchained = unlinked().count(db).await.map_err(store_error)?;
    report.matched = chained + unchained;
    if request.dry_run || report.matched == 0 {
        return Ok(report);
    }
    let record: AuditEntry = request.record(
        report.matched,
        through.as_ref().map(|(seq, hash)| (*seq, hash)),
    );
    report.entry_id = Some(record.id);
    crate::write::insert_linked(db, std::slice::from_ref(&record), isolation).await?;

    if let Some((through, _)) = through {
        let key = chain_key(tenant);
        while start < through {
            let txn = begin(db, isolation).await?;
            if let Some(hold) = legal_hold(&txn, tenant).await? {
                txn.rollback().await.map_err(store_error)?;
                report.held = Some(hold);
                return Ok(report);
            }
            let target = through.min(start + batch);
            let last: Option<(Option<i64>, Option<Vec<u8>>)> = entity::Entity::find()
                .select_only()
                .columns([Column::ChainSeq, Column::ChainHash])
                .filter(of_tenant(tenant))
                .filter(Column::ChainSeq.gt(to_i64(start)?))
                .filter(Column::ChainSeq.lte(to_i64(target)?))
                .order_by_desc(Column::ChainSeq)
                .limit(1)
                .into_tuple()
                .one(&txn)
                .await
                .map_err(store_error)?;
            let Some((Some(_), Some(hash))) = last else {
                // Nothing left in this stretch (another purge took it): read the start again.
                txn.rollback().await.map_err(store_error)?;
                let (moved, _) = chain_start(db, tenant).await?;
                if moved <= start {
                    return Err(corrupt(
                        &key,
                        format!("entries {} to {target} of the chain are missing", start + 1),
                    ));
                }
                start = moved;
                continue;
            };
            let deleted = entity::Entity::delete_many()
                .filter(of_tenant(tenant))
                .filter(Column::ChainSeq.gt(to_i64(start)?))
                .filter(Column::ChainSeq.lte(to_i64(target)?))
                .exec(&txn)
                .await
                .map_err(store_error)?
                .rows_affected;
            start_entity::Entity::insert(start_entity::ActiveModel {
                chain_key: Set(key.clone()),
                seq: Set(to_i64(target)?),
                hash: Set(hash),
            })
            .on_conflict(
                OnConflict::column(start_entity::Column::ChainKey)
                    .update_columns([start_entity::Column::Seq, start_entity::Column::Hash])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(store_error)?;
            txn.commit().await.map_err(store_error)?;
            report.deleted += deleted;
            start = target;
            report.chain_start = start;
        }
    }

    loop {
        let txn = begin(db, isolation).await?;
        if let Some(hold) = legal_hold(&txn, tenant).await? {
            txn.rollback().await.map_err(store_error)?;
            report.held = Some(hold);
            return Ok(report);
        }
        let ids: Vec<Uuid> = unlinked()
            .select_only()
            .column(Column::Id)
            .limit(batch)
            .into_tuple()
            .all(&txn)
            .await
            .map_err(store_error)?;
        if ids.is_empty() {
            txn.rollback().await.map_err(store_error)?;
            return Ok(report);
        }
        let deleted = entity::Entity::delete_many()
            .filter(Column::Id.is_in(ids))
            .exec(&txn)
            .await
            .map_err(store_error)?
            .rows_affected;
        txn.commit().await.map_err(store_error)?;
        report.deleted += deleted;
    }
}
