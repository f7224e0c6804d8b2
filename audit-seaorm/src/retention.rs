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
//! 4. deletes the entries oldest first in short transactions (at most `batch` entries each,
//!    fewer while a transaction takes more than about 10 ms), and in the same transaction
//!    moves the chain's start (`audit_chain_start`) to the last entry deleted, checking the
//!    hold again first; the writers extending the chain do not wait for it on a server (they
//!    lock the head, not the start), and on a SQLite file wait for one short transaction;
//! 5. deletes the tenant's entries stored before chaining began (no link) that are older than
//!    the cutoff, in the same batches.
//!
//! Verification starts at the recorded start and accepts it when a `Purge` entry of the chain
//! names a `through` at or beyond it.

use std::time::{Duration, Instant};

use audit_core::AuditEntry;
use audit_core::chain::ChainHash;
use audit_core::retention::{LegalHold, PurgeReport, PurgeRequest};
use audit_core::store::StoreError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    IsolationLevel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
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

/// How long one of a purge's transactions should hold the write lock: a writer waiting behind
/// it waits about this long. Batches shrink (down to [`MIN_BATCH`]) while they take longer, and
/// grow back (up to the request's `batch`) while they take less.
const TARGET_TRANSACTION: Duration = Duration::from_millis(10);
/// The fewest entries a purge deletes per transaction.
const MIN_BATCH: u64 = 10;

/// The next batch size after a transaction of `size` entries took `took`.
fn next_batch(size: u64, took: Duration, most: u64) -> u64 {
    if took > TARGET_TRANSACTION * 2 {
        (size / 2).max(MIN_BATCH.min(most))
    } else if took < TARGET_TRANSACTION / 2 {
        (size * 2).min(most)
    } else {
        size
    }
}

/// A purge's next transaction, or the legal hold placed on `tenant` since the last one (the
/// transaction then rolled back).
async fn begin_unless_held(
    writer: &DatabaseConnection,
    isolation: Option<IsolationLevel>,
    tenant: Option<&str>,
) -> Result<Result<sea_orm::DatabaseTransaction, LegalHold>, StoreError> {
    let txn = begin(writer, isolation).await?;
    match legal_hold(&txn, tenant).await? {
        None => Ok(Ok(txn)),
        Some(hold) => {
            txn.rollback().await.map_err(store_error)?;
            Ok(Err(hold))
        }
    }
}

/// After a purge's transaction on a SQLite file: copies what it wrote from the WAL into the
/// database (a passive checkpoint, which waits for no reader). Deleting rewrites pages all over
/// the file, and left to the automatic checkpoint that work would fall, a few MiB at a time,
/// on whichever commit crosses its threshold: a writer's insert. Counted in the transaction's
/// time, so batches shrink to keep both short. Nothing to do elsewhere.
async fn settle(writer: &DatabaseConnection) -> Result<(), StoreError> {
    if writer.get_database_backend() == DbBackend::Sqlite {
        writer
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// Runs `request`: reads on `reader`, the store's read pool, and every write on `writer`, its
/// writer connection, in transactions sized to hold the write lock about
/// [`TARGET_TRANSACTION`] (see the module documentation). On a SQLite file, where the store
/// writes through one connection, a long read there would make every insert wait for it.
pub(crate) async fn purge(
    reader: &DatabaseConnection,
    writer: &DatabaseConnection,
    isolation: Option<IsolationLevel>,
    request: &PurgeRequest,
) -> Result<PurgeReport, StoreError> {
    use entity::Column;
    let db = reader;
    let tenant = request.tenant_id.as_deref();
    let most = u64::from(request.batch.clamp(1, 10_000));
    let mut batch = most.min(100);
    let mut report = PurgeReport::new(request);
    if let Some(hold) = legal_hold(db, tenant).await? {
        return Ok(report.held_by(hold));
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
    crate::write::insert_linked(writer, std::slice::from_ref(&record), isolation).await?;

    if let Some((through, _)) = through {
        let key = chain_key(tenant);
        while start < through {
            let began = Instant::now();
            let txn = match begin_unless_held(writer, isolation, tenant).await? {
                Ok(txn) => txn,
                Err(hold) => return Ok(report.held_by(hold)),
            };
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
                let (moved, _) = chain_start(writer, tenant).await?;
                if moved <= start {
                    return Err(corrupt(
                        &key,
                        format!("entries {} to {target} of the chain are missing", start + 1),
                    ));
                }
                start = moved;
                continue;
            };
            let stretch = Condition::all()
                .add(of_tenant(tenant))
                .add(Column::ChainSeq.gt(to_i64(start)?))
                .add(Column::ChainSeq.lte(to_i64(target)?));
            crate::refs::delete_of(&txn, stretch.clone()).await?;
            let deleted = entity::Entity::delete_many()
                .filter(stretch)
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
            settle(writer).await?;
            report.deleted += deleted;
            start = target;
            report.chain_start = start;
            batch = next_batch(batch, began.elapsed(), most);
        }
    }

    loop {
        let began = Instant::now();
        let txn = match begin_unless_held(writer, isolation, tenant).await? {
            Ok(txn) => txn,
            Err(hold) => return Ok(report.held_by(hold)),
        };
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
        let these = Condition::all().add(Column::Id.is_in(ids));
        crate::refs::delete_of(&txn, these.clone()).await?;
        let deleted = entity::Entity::delete_many()
            .filter(these)
            .exec(&txn)
            .await
            .map_err(store_error)?
            .rows_affected;
        txn.commit().await.map_err(store_error)?;
        settle(writer).await?;
        report.deleted += deleted;
        batch = next_batch(batch, began.elapsed(), most);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_shrink_while_slow_and_grow_back_to_the_requested_size() {
        let ms = Duration::from_millis;
        assert_eq!(next_batch(1000, ms(40), 1000), 500);
        assert_eq!(next_batch(20, ms(400), 1000), 10);
        assert_eq!(next_batch(10, ms(400), 1000), 10);
        assert_eq!(next_batch(100, ms(10), 1000), 100);
        assert_eq!(next_batch(100, ms(1), 1000), 200);
        assert_eq!(next_batch(800, ms(1), 1000), 1000);
        // A request for fewer than the minimum is honoured.
        assert_eq!(next_batch(3, ms(400), 3), 3);
    }
}
