//! The hash chain in SQL: every write of entries links them into their tenants' chains in the
//! same transaction, and [`verify`] walks a chain back. The encoding and the checks are
//! `audit_core::chain`'s; the tables are those of
//! [`m20261203_000005_create_audit_chain`](crate::migration::m20261203_000005_create_audit_chain).
//!
//! Writing, in one transaction: make sure each chain of the batch has a head row, lock the
//! heads in key order (`SELECT … FOR UPDATE` on PostgreSQL and MySQL; on SQLite the head
//! insert already took the database's one write lock), skip entries already stored (a retried
//! batch is not chained twice), link the rest in batch order, insert entries and links, and
//! move the heads. A second writer of the same tenant waits for the lock and continues from
//! the new head; the unique index on (`chain_key`, `seq`) refuses a fork whatever happens.

use std::collections::{BTreeMap, HashMap, HashSet};

use audit_core::AuditEntry;
use audit_core::chain::{ChainBreak, ChainHash, ChainLink, ChainReport, Personal, link};
use audit_core::store::StoreError;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TryIntoModel,
};
use uuid::Uuid;

use crate::convert::{Row, from_model, to_row};
use crate::entity;
use crate::error::store_error;

/// The `audit_chain` table: one link per chained entry.
pub(crate) mod link_entity {
    use sea_orm::entity::prelude::*;

    /// One entry's link.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_chain")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub entry_id: Uuid,
        pub chain_key: String,
        pub seq: i64,
        pub hash: String,
        pub personal: String,
        pub salt: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `audit_chain_head` table: each chain's last link.
pub(crate) mod head_entity {
    use sea_orm::entity::prelude::*;

    /// One chain's head.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_chain_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chain_key: String,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The key of `tenant`'s chain: `t:` and the tenant id, or `-` for entries without a tenant.
pub(crate) fn chain_key(tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("t:{tenant}"),
        None => "-".to_owned(),
    }
}

/// The tenants whose chains the store holds (`None`: entries without a tenant), in key order
/// with the tenantless chain last.
pub(crate) async fn chains<C: ConnectionTrait>(db: &C) -> Result<Vec<Option<String>>, StoreError> {
    let keys: Vec<String> = head_entity::Entity::find()
        .select_only()
        .column(head_entity::Column::ChainKey)
        .order_by_asc(head_entity::Column::ChainKey)
        .into_tuple()
        .all(db)
        .await
        .map_err(store_error)?;
    let mut tenants: Vec<Option<String>> = keys
        .iter()
        .filter_map(|key| key.strip_prefix("t:").map(|t| Some(t.to_owned())))
        .collect();
    if keys.iter().any(|key| key == "-") {
        tenants.push(None);
    }
    Ok(tenants)
}

/// The lengths the lists of one statement (an `IN (…)` list, the rows of a multi-row insert)
/// are cut into, largest first: SQLx prepares and keeps every distinct statement text, up to
/// 100 per connection, so lists of any length must make few texts (see `write::shaped`).
const RUNS: [usize; 16] = [
    1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 50, 20, 10, 5, 2, 1,
];

/// `items` cut into runs whose lengths are among [`RUNS`], in order.
fn runs<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    while !items.is_empty() {
        let take = RUNS
            .into_iter()
            .find(|&run| run <= items.len())
            .unwrap_or(items.len());
        let (run, rest) = items.split_at(take);
        out.push(run);
        items = rest;
    }
    out
}

fn corrupt(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        id: what.to_owned(),
        message: message.to_string(),
    }
}

fn to_u64(seq: i64, key: &str) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| corrupt(key, format!("negative sequence {seq}")))
}

fn parse_hash(text: &str, key: &str) -> Result<ChainHash, StoreError> {
    text.parse().map_err(|e| corrupt(key, e))
}

/// The rows of `entries` that are not stored yet, linked into their chains, with the links:
/// call inside a transaction, then insert both (see [`write_linked`]).
async fn link_batch<C: ConnectionTrait>(
    txn: &C,
    entries: &[AuditEntry],
) -> Result<(Vec<Row>, Vec<link_entity::ActiveModel>), StoreError> {
    let mut seen = HashSet::with_capacity(entries.len());
    let fresh: Vec<&AuditEntry> = entries.iter().filter(|e| seen.insert(e.id)).collect();
    if fresh.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Head rows first: on SQLite this insert takes the write lock before anything is read.
    let keys: Vec<String> = fresh
        .iter()
        .map(|e| chain_key(e.tenant_id.as_deref()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for part in runs(&keys) {
        head_entity::Entity::insert_many(part.iter().map(|key| head_entity::ActiveModel {
            chain_key: Set(key.clone()),
            seq: Set(0),
            hash: Set(ChainHash::GENESIS.to_hex()),
        }))
        .on_conflict_do_nothing_on([head_entity::Column::ChainKey])
        .exec_without_returning(txn)
        .await
        .map_err(store_error)?;
    }
    let mut heads: BTreeMap<String, (u64, ChainHash)> = BTreeMap::new();
    for part in runs(&keys) {
        let mut select = head_entity::Entity::find()
            .filter(head_entity::Column::ChainKey.is_in(part.iter().cloned()))
            .order_by_asc(head_entity::Column::ChainKey);
        if txn.get_database_backend() != DbBackend::Sqlite {
            select = select.lock_exclusive();
        }
        for head in select.all(txn).await.map_err(store_error)? {
            let seq = to_u64(head.seq, &head.chain_key)?;
            let hash = parse_hash(&head.hash, &head.chain_key)?;
            heads.insert(head.chain_key, (seq, hash));
        }
    }
    // Under the locks: which of these ids are stored already (a retried batch)?
    let mut stored: HashSet<Uuid> = HashSet::new();
    for part in runs(&fresh) {
        let ids: Vec<Uuid> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Id)
            .filter(entity::Column::Id.is_in(part.iter().map(|e| e.id)))
            .into_tuple()
            .all(txn)
            .await
            .map_err(store_error)?;
        stored.extend(ids);
        // An id with a link was stored once, even if its row is gone since (deleted by
        // retention): linking it again would collide with its link.
        let linked: Vec<Uuid> = link_entity::Entity::find()
            .select_only()
            .column(link_entity::Column::EntryId)
            .filter(link_entity::Column::EntryId.is_in(part.iter().map(|e| e.id)))
            .into_tuple()
            .all(txn)
            .await
            .map_err(store_error)?;
        stored.extend(linked);
    }
    let mut rows = Vec::with_capacity(fresh.len());
    let mut links = Vec::with_capacity(fresh.len());
    for entry in fresh.into_iter().filter(|e| !stored.contains(&e.id)) {
        let row = to_row(entry)?;
        // The link covers the entry as it reads back (texts cut to their columns, NUL
        // replaced), so that verification recomputes the same hash from the stored row.
        let read_back;
        let as_stored = if row.changed {
            let model = row
                .model
                .clone()
                .try_into_model()
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            read_back = from_model(model)?;
            &read_back
        } else {
            entry
        };
        let key = chain_key(entry.tenant_id.as_deref());
        let (seq, prev) = heads
            .get_mut(&key)
            .ok_or_else(|| corrupt(&key, "the chain's head row vanished"))?;
        let personal = Personal::seal(as_stored);
        let next = *seq + 1;
        let hash = link(as_stored, next, prev, &personal.digest);
        *seq = next;
        *prev = hash;
        links.push(link_entity::ActiveModel {
            entry_id: Set(entry.id),
            chain_key: Set(key),
            seq: Set(i64::try_from(next).map_err(|e| corrupt("sequence", e))?),
            hash: Set(hash.to_hex()),
            personal: Set(personal.digest.to_hex()),
            salt: Set(personal.salt_hex()),
        });
        rows.push(row);
    }
    // The heads move in one statement: an upsert onto rows that exist and are locked.
    let moved: Vec<head_entity::ActiveModel> = heads
        .iter()
        .map(|(key, (seq, hash))| {
            Ok(head_entity::ActiveModel {
                chain_key: Set(key.clone()),
                seq: Set(i64::try_from(*seq).map_err(|e| corrupt("sequence", e))?),
                hash: Set(hash.to_hex()),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    for part in runs(&moved) {
        head_entity::Entity::insert_many(part.to_vec())
            .on_conflict(
                OnConflict::column(head_entity::Column::ChainKey)
                    .update_columns([head_entity::Column::Seq, head_entity::Column::Hash])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(store_error)?;
    }
    Ok((rows, links))
}

/// Links `entries` into their chains and inserts them with their links, through `txn`, which
/// must be a transaction (or a savepoint in one).
pub(crate) async fn write_linked<C: ConnectionTrait>(
    txn: &C,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    let (rows, links) = link_batch(txn, entries).await?;
    for chunk in crate::write::shape_rows(txn.get_database_backend(), rows) {
        crate::write::insert_chunk(txn, chunk).await?;
    }
    for part in runs(&links) {
        link_entity::Entity::insert_many(part.to_vec())
            .exec_without_returning(txn)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// Verifies `tenant`'s chain (`None`: the chain of entries without a tenant) on `db`, reading
/// `page` links at a time.
pub(crate) async fn verify<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
    page: u64,
) -> Result<ChainReport, StoreError> {
    let key = chain_key(tenant);
    let mut report = ChainReport {
        tenant_id: tenant.map(str::to_owned),
        checked: 0,
        unchained: 0,
        last: (0, ChainHash::GENESIS),
        broken: None,
    };
    let head = head_entity::Entity::find_by_id(key.clone())
        .one(db)
        .await
        .map_err(store_error)?;
    let mut first: Option<Uuid> = None;
    loop {
        let links = link_entity::Entity::find()
            .filter(link_entity::Column::ChainKey.eq(key.as_str()))
            .filter(
                link_entity::Column::Seq
                    .gt(i64::try_from(report.last.0).map_err(|e| corrupt("sequence", e))?),
            )
            .order_by_asc(link_entity::Column::Seq)
            .limit(page)
            .all(db)
            .await
            .map_err(store_error)?;
        if links.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = links.iter().map(|l| l.entry_id).collect();
        let mut entries: HashMap<Uuid, AuditEntry> = HashMap::with_capacity(ids.len());
        for model in entity::Entity::find()
            .filter(entity::Column::Id.is_in(ids))
            .all(db)
            .await
            .map_err(store_error)?
        {
            let entry = from_model(model)?;
            entries.insert(entry.id, entry);
        }
        for stored in links {
            first.get_or_insert(stored.entry_id);
            let seq = to_u64(stored.seq, &key)?;
            let Some(entry) = entries.get(&stored.entry_id) else {
                report.broken = Some(ChainBreak::Missing {
                    id: stored.entry_id,
                    seq,
                });
                return Ok(report);
            };
            let salt = match &stored.salt {
                Some(text) => Some(Personal::parse_salt(text).map_err(|e| corrupt(&key, e))?),
                None => None,
            };
            let chain_link = ChainLink {
                seq,
                hash: parse_hash(&stored.hash, &key)?,
                personal: Personal {
                    salt,
                    digest: parse_hash(&stored.personal, &key)?,
                },
            };
            match audit_core::chain::verify_run(report.last, [(entry, &chain_link)]) {
                Ok(last) => {
                    report.last = last;
                    report.checked += 1;
                }
                Err(broken) => {
                    report.broken = Some(broken);
                    return Ok(report);
                }
            }
        }
    }
    if let Some(head) = head {
        let head_seq = to_u64(head.seq, &key)?;
        if head_seq > report.last.0 {
            report.broken = Some(ChainBreak::Truncated {
                last: report.last.0,
                head: head_seq,
            });
            return Ok(report);
        }
    }
    // Entries of this tenant with no link: before the chain's first entry they are the
    // unchained prefix (stored before chaining began); after it, they were written around
    // the store.
    let scope = match tenant {
        Some(tenant) => entity::Column::TenantId.eq(tenant),
        None => entity::Column::TenantId.is_null(),
    };
    let unlinked = entity::Entity::find()
        .select_only()
        .column(entity::Column::Id)
        .filter(scope)
        .filter(
            entity::Column::Id.not_in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(link_entity::Column::EntryId)
                    .from(link_entity::Entity)
                    .and_where(link_entity::Column::ChainKey.eq(key.as_str()))
                    .to_owned(),
            ),
        )
        .order_by_desc(entity::Column::Id);
    report.unchained = unlinked.clone().count(db).await.map_err(store_error)?;
    if let (Some(first), true) = (first, report.unchained > 0) {
        let newest: Option<Uuid> = unlinked
            .limit(1)
            .into_tuple()
            .one(db)
            .await
            .map_err(store_error)?;
        if let Some(newest) = newest.filter(|id| *id > first) {
            report.broken = Some(ChainBreak::Unchained { id: newest });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_of_any_length_are_cut_into_few_fixed_lengths() {
        let items: Vec<usize> = (0..2100).collect();
        for n in 0..=2100 {
            let cut = runs(&items[..n]);
            assert_eq!(cut.concat(), items[..n], "{n}");
            assert!(cut.iter().all(|run| RUNS.contains(&run.len())), "{n}");
            // At most one run of hundreds per thousand, and the rest in at most six.
            assert!(cut.len() <= n / 1000 + 1 + 6, "{n}: {} runs", cut.len());
        }
    }
}
