//! The hash chain in SQL: every write of entries links them into their tenants' chains in the
//! same transaction, and [`verify`] walks a chain in order. The encoding and the checks are
//! `audit_core::chain`'s; the link lives in `audit_log`'s four `chain_` columns and each
//! chain's last link in `audit_chain_head`, both from
//! [`m20261203_000005_create_audit_chain`](crate::migration::m20261203_000005_create_audit_chain).
//!
//! Writing, in one transaction: lock the heads of the batch's chains in key order, creating
//! those that are missing (an upsert that returns the rows on PostgreSQL and SQLite; an insert
//! and `SELECT … FOR UPDATE` on MySQL), link the entries in batch order, insert them with their
//! links, and move the heads. A second writer of the same tenant waits for the lock and
//! continues from the new head; the unique index on (`tenant_id`, `chain_seq`) refuses a fork
//! of a tenant's chain whatever happens. A retried batch is not chained twice: ids already
//! stored are skipped (see [`write_linked`]).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use audit_core::AuditEntry;
use audit_core::chain::{ChainBreak, ChainHash, ChainLink, ChainReport, ERASED, Personal, link};
use audit_core::store::StoreError;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TryIntoModel,
};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::convert::{from_model, to_row};
use crate::entity;
use crate::error::store_error;

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
        #[sea_orm(column_type = "Binary(32)")]
        pub hash: Vec<u8>,
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

/// Locks the heads of the chains `keys` (sorted, distinct), creating those that are missing,
/// and reads them. PostgreSQL and SQLite do it in one upsert per run of keys that returns the
/// rows (a no-op update locks an existing row, and on SQLite takes the write lock); MySQL,
/// without `RETURNING`, inserts the missing rows and then reads them `FOR UPDATE`. Keys are
/// locked in order, so two writers of overlapping tenants never deadlock.
async fn lock_heads<C: ConnectionTrait>(
    txn: &C,
    keys: &[String],
) -> Result<BTreeMap<String, (u64, ChainHash)>, StoreError> {
    let backend = txn.get_database_backend();
    let fresh = |key: &String| head_entity::ActiveModel {
        chain_key: Set(key.clone()),
        seq: Set(0),
        hash: Set(ChainHash::GENESIS.0.to_vec()),
    };
    let mut rows: Vec<head_entity::Model> = Vec::with_capacity(keys.len());
    for part in runs(keys) {
        if backend == DbBackend::MySql {
            head_entity::Entity::insert_many(part.iter().map(fresh))
                .on_conflict_do_nothing_on([head_entity::Column::ChainKey])
                .exec_without_returning(txn)
                .await
                .map_err(store_error)?;
            let locked = head_entity::Entity::find()
                .filter(head_entity::Column::ChainKey.is_in(part.iter().cloned()))
                .order_by_asc(head_entity::Column::ChainKey)
                .lock_exclusive()
                .all(txn)
                .await
                .map_err(store_error)?;
            rows.extend(locked);
        } else {
            let mut insert = Query::insert();
            insert
                .into_table(head_entity::Entity)
                .columns([
                    head_entity::Column::ChainKey,
                    head_entity::Column::Seq,
                    head_entity::Column::Hash,
                ])
                .on_conflict(
                    OnConflict::column(head_entity::Column::ChainKey)
                        .value(
                            head_entity::Column::Seq,
                            Expr::col((head_entity::Entity, head_entity::Column::Seq)),
                        )
                        .to_owned(),
                )
                .returning(Query::returning().columns([
                    head_entity::Column::ChainKey,
                    head_entity::Column::Seq,
                    head_entity::Column::Hash,
                ]));
            for key in part {
                insert
                    .values([
                        key.clone().into(),
                        0i64.into(),
                        ChainHash::GENESIS.0.to_vec().into(),
                    ])
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
            }
            for row in txn.query_all(&insert).await.map_err(store_error)? {
                rows.push(head_entity::Model::from_query_result(&row, "").map_err(store_error)?);
            }
        }
    }
    let mut heads = BTreeMap::new();
    for head in rows {
        let seq = to_u64(head.seq, &head.chain_key)?;
        let hash = to_hash(&head.hash, &head.chain_key)?;
        heads.insert(head.chain_key, (seq, hash));
    }
    if heads.len() != keys.len() {
        return Err(corrupt("audit_chain_head", "a chain's head row vanished"));
    }
    Ok(heads)
}

/// What [`write_linked`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linked {
    /// Every entry was stored and linked.
    All,
    /// Some entries were stored already (a retried batch): nothing may be kept, since their
    /// links took numbers the chain must not have; roll back and write again with
    /// `look_up` set.
    Retry,
}

/// Links `entries` into their chains and inserts them with their links, through `txn`, which
/// must be a transaction (or a savepoint in one).
///
/// With `look_up`, ids already stored are found first and skipped. Without it (PostgreSQL and
/// SQLite only, where an insert reports exactly how many rows it added), every entry is
/// assumed new, which saves a round trip; if the insert reports fewer rows, the caller gets
/// [`Linked::Retry`] and must roll `txn` back. MySQL counts a skipped row as found, so it
/// always looks up.
pub(crate) async fn write_linked<C: ConnectionTrait>(
    txn: &C,
    entries: &[AuditEntry],
    look_up: bool,
) -> Result<Linked, StoreError> {
    let backend = txn.get_database_backend();
    let look_up = look_up || backend == DbBackend::MySql;
    let mut seen = HashSet::with_capacity(entries.len());
    let fresh: Vec<&AuditEntry> = entries.iter().filter(|e| seen.insert(e.id)).collect();
    if fresh.is_empty() {
        return Ok(Linked::All);
    }
    let keys: Vec<String> = fresh
        .iter()
        .map(|e| chain_key(e.tenant_id.as_deref()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut heads = lock_heads(txn, &keys).await?;
    // Under the locks: which of these ids are stored already?
    let mut stored: HashSet<Uuid> = HashSet::new();
    if look_up {
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
        }
    }
    let mut rows = Vec::with_capacity(fresh.len());
    let fresh: Vec<&AuditEntry> = fresh
        .into_iter()
        .filter(|e| !stored.contains(&e.id))
        .collect();
    for &entry in &fresh {
        let mut row = to_row(entry)?;
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
        row.model.chain_seq = Set(Some(to_i64(next)?));
        row.model.chain_hash = Set(Some(hash.0.to_vec()));
        row.model.chain_personal = Set(Some(personal.digest.0.to_vec()));
        row.model.chain_salt = Set(personal.salt.map(|salt| salt.to_vec()));
        rows.push(row);
    }
    let expected = rows.len() as u64;
    let mut inserted = 0;
    for chunk in crate::write::shape_rows(backend, rows) {
        inserted += crate::write::insert_chunk(txn, chunk).await?;
    }
    if backend != DbBackend::MySql && inserted != expected {
        if !look_up {
            return Ok(Linked::Retry);
        }
        return Err(corrupt(
            "audit_log",
            format!("{inserted} of {expected} new entries were inserted under the chain's lock"),
        ));
    }
    crate::refs::write(txn, fresh).await?;
    // The heads move in one statement: an upsert onto rows that exist and are locked.
    let moved: Vec<head_entity::ActiveModel> = heads
        .iter()
        .map(|(key, (seq, hash))| {
            Ok(head_entity::ActiveModel {
                chain_key: Set(key.clone()),
                seq: Set(to_i64(*seq)?),
                hash: Set(hash.0.to_vec()),
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
    Ok(Linked::All)
}

fn to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|e| corrupt("sequence", e))
}

fn to_hash(bytes: &[u8], what: &str) -> Result<ChainHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(ChainHash)
        .map_err(|_| corrupt(what, format!("a hash of {} bytes", bytes.len())))
}

/// The stored link of `row`, or `None` for an entry stored before chaining began.
pub(crate) fn stored_link(row: &entity::Model) -> Result<Option<ChainLink>, StoreError> {
    let id = row.id.to_string();
    let (Some(seq), Some(hash), Some(digest)) =
        (row.chain_seq, &row.chain_hash, &row.chain_personal)
    else {
        return Ok(None);
    };
    let salt = match &row.chain_salt {
        Some(bytes) => Some(
            <[u8; 16]>::try_from(bytes.as_slice())
                .map_err(|_| corrupt(&id, format!("a salt of {} bytes", bytes.len())))?,
        ),
        None => None,
    };
    Ok(Some(ChainLink {
        seq: to_u64(seq, &id)?,
        hash: to_hash(hash, &id)?,
        personal: Personal {
            salt,
            digest: to_hash(digest, &id)?,
        },
    }))
}

/// What checking one page found: entries checked, the last good link, the break if any.
type Checked = (u64, (u64, ChainHash), Option<ChainBreak>);

/// Checks `run` (one page of a chain, in order) from `start`, the link before it.
fn check(start: (u64, ChainHash), run: &[(AuditEntry, ChainLink)]) -> Checked {
    audit_core::chain::check_run(start, run.iter().map(|(entry, link)| (entry, link)))
}

/// Adding a checked page to a report.
trait AddChecked {
    /// Adds `page`; `false` when it broke the chain.
    fn add(&mut self, page: Checked) -> bool;
}

impl AddChecked for ChainReport {
    fn add(&mut self, (checked, last, broken): Checked) -> bool {
        self.checked += checked;
        self.last = last;
        self.broken = broken;
        self.broken.is_none()
    }
}

/// Erases the personal fields of `actor_id`'s entries, `batch` entries a statement, each
/// batch committed on its own (no long lock); returns how many entries changed. The salt goes
/// with them, so verification then checks the marker instead of the digest.
pub(crate) async fn erase_actor<C: ConnectionTrait>(
    db: &C,
    actor_id: &str,
    batch: u64,
) -> Result<u64, StoreError> {
    use crate::migration::m20261206_000009_search_text as search_text;
    use entity::Column;
    let mut erased = 0;
    loop {
        // Entries of the actor that are not erased yet (or were erased by hand and kept a salt).
        let pending = Condition::any()
            .add(Column::ChainSalt.is_not_null())
            .add(Column::ActorName.is_null())
            .add(Column::ActorName.ne(ERASED))
            .add(Column::Ip.is_not_null())
            .add(Column::UserAgent.is_null())
            .add(Column::UserAgent.ne(ERASED));
        let rows = entity::Entity::find()
            .filter(Column::ActorId.eq(actor_id))
            .filter(pending)
            .limit(batch)
            .all(db)
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            return Ok(erased);
        }
        erased += rows.len() as u64;
        // What free text finds goes with the erased fields.
        let mut ids = Vec::with_capacity(rows.len());
        let mut texts = Vec::with_capacity(rows.len());
        for mut row in rows {
            row.actor_name = Some(ERASED.to_owned());
            row.ip = None;
            row.user_agent = Some(ERASED.to_owned());
            ids.push(row.id);
            texts.push((row.id, search_text::row_search_text(row)));
        }
        search_text::set_search_texts(db, texts)
            .await
            .map_err(store_error)?;
        entity::Entity::update_many()
            .col_expr(Column::ActorName, Expr::value(ERASED))
            .col_expr(Column::Ip, Expr::value(Option::<String>::None))
            .col_expr(Column::UserAgent, Expr::value(ERASED))
            .col_expr(Column::ChainSalt, Expr::value(Option::<Vec<u8>>::None))
            .filter(Column::Id.is_in(ids))
            .exec(db)
            .await
            .map_err(store_error)?;
    }
}

/// Up to `limit` entries of `tenant`'s chain with their links, in chain order, after number
/// `after`.
pub(crate) async fn page_after<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
    after: u64,
    limit: u64,
) -> Result<Vec<(AuditEntry, ChainLink)>, StoreError> {
    let scope = match tenant {
        Some(tenant) => entity::Column::TenantId.eq(tenant),
        None => entity::Column::TenantId.is_null(),
    };
    let models = entity::Entity::find()
        .filter(scope)
        .filter(entity::Column::ChainSeq.gt(to_i64(after)?))
        .order_by_asc(entity::Column::ChainSeq)
        .limit(limit)
        .all(db)
        .await
        .map_err(store_error)?;
    let mut run = Vec::with_capacity(models.len());
    for model in models {
        let Some(stored) = stored_link(&model)? else {
            return Err(corrupt(&model.id.to_string(), "a partial link"));
        };
        run.push((from_model(model)?, stored));
    }
    Ok(run)
}

/// Verifies `tenant`'s chain (`None`: the chain of entries without a tenant) on `db`, reading
/// `page` entries at a time in chain order.
pub(crate) async fn verify<C: ConnectionTrait>(
    db: &C,
    tenant: Option<&str>,
    page: u64,
) -> Result<ChainReport, StoreError> {
    let key = chain_key(tenant);
    let (start, start_hash) = crate::retention::chain_start(db, tenant).await?;
    let mut report = ChainReport::starting_after(tenant.map(str::to_owned), start, start_hash);
    let scope = || match tenant {
        Some(tenant) => entity::Column::TenantId.eq(tenant),
        None => entity::Column::TenantId.is_null(),
    };
    let head = head_entity::Entity::find_by_id(key.clone())
        .one(db)
        .await
        .map_err(store_error)?;
    // Pages are read in chain order; each is checked on a blocking thread while the next is
    // read, up to two at once. A page's check needs only the stored link before it, which is
    // known as soon as that page is read, so pages are independent.
    let mut first: Option<Uuid> = None;
    let mut fetched = (start, start_hash);
    // The furthest a `Purge` entry of the chain vouches for deleting.
    let mut purged_through: Option<u64> = None;
    let mut checking: VecDeque<JoinHandle<Checked>> = VecDeque::new();
    loop {
        let run = page_after(db, tenant, fetched.0, page).await?;
        let Some((_, first_link)) = run.first() else {
            break;
        };
        if first_link.seq != fetched.0 + 1 {
            // A purge running meanwhile may have deleted what comes next and moved the start
            // past it: continue from there, as a verification begun later would.
            let moved = crate::retention::chain_start(db, tenant).await?;
            if moved.0 > fetched.0 && moved.0 + 1 == first_link.seq {
                fetched = moved;
                report.start = moved.0;
            }
        }
        first.get_or_insert(run[0].0.id);
        purged_through = run
            .iter()
            .filter_map(|(entry, _)| audit_core::retention::purged_through(entry))
            .chain(purged_through)
            .max();
        let start = fetched;
        if let Some((_, stored)) = run.last() {
            fetched = (stored.seq, stored.hash);
        }
        checking.push_back(tokio::task::spawn_blocking(move || check(start, &run)));
        if checking.len() >= 2
            && let Some(oldest) = checking.pop_front()
            && !report.add(oldest.await.map_err(|e| StoreError::Backend(Box::new(e)))?)
        {
            return Ok(report);
        }
    }
    while let Some(oldest) = checking.pop_front() {
        if !report.add(oldest.await.map_err(|e| StoreError::Backend(Box::new(e)))?) {
            return Ok(report);
        }
    }
    if let Err(unattested) = audit_core::chain::start_attested(report.start, purged_through) {
        report.broken = Some(unattested);
        return Ok(report);
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
    let unlinked = entity::Entity::find()
        .select_only()
        .column(entity::Column::Id)
        .filter(scope())
        .filter(entity::Column::ChainSeq.is_null());
    // Counted without an order, which would have SQLite walk the primary key instead of
    // the chain's index.
    report.unchained = unlinked.clone().count(db).await.map_err(store_error)?;
    if let (Some(first), true) = (first, report.unchained > 0) {
        let newest: Option<Uuid> = unlinked
            .order_by_desc(entity::Column::Id)
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
