//! Writing entries: idempotent multi-row inserts, chunked under each backend's limits. This is
//! the sink's half of [`SeaOrmStore`](crate::SeaOrmStore); [`insert_entry`] writes an entry
//! inside a handler's own transaction.

use audit_core::AuditEntry;
use audit_core::store::StoreError;
use futures_util::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, IsolationLevel, Iterable, TransactionSession,
    TransactionTrait, TryInsertResult,
};

use crate::chain::Linked;
use crate::convert::Row;
use crate::entity::{self, Column};
use crate::error::store_error;
/// The most rows in one statement, whatever the backend allows: past this, larger statements
/// stop paying for themselves and only hold locks longer.
const MAX_ROWS: usize = 1000;
/// A rough cap on one statement's size, well under MySQL's default `max_allowed_packet`
/// (16 MiB on MariaDB, 64 MiB on MySQL 8).
const MAX_STATEMENT_BYTES: usize = 4 * 1024 * 1024;
/// The most bytes of rows a chunk takes before it is padded: padding repeats the smallest of a
/// chunk's last rows at most 1.5 times over (21 rows padded to 50), so a padded statement
/// stays under [`MAX_STATEMENT_BYTES`].
const MAX_CHUNK_BYTES: usize = MAX_STATEMENT_BYTES * 2 / 5;

/// The most bound parameters one statement may carry on `backend`.
fn max_parameters(backend: DbBackend) -> usize {
    match backend {
        // SQLITE_MAX_VARIABLE_NUMBER is 32,766 since SQLite 3.32 (the bundled driver is newer).
        DbBackend::Sqlite => 32_766,
        // Both count parameters in a 16-bit field.
        _ => 65_535,
    }
}

/// The most rows per statement on `backend`: one bound parameter per column and row.
pub(crate) fn rows_per_statement(backend: DbBackend) -> usize {
    (max_parameters(backend) / Column::iter().count()).min(MAX_ROWS)
}

/// The step between the large statement sizes: a chunk's whole hundreds (100, 200, …, 1,000
/// rows) go in one statement.
pub(crate) const LARGE_STEP: usize = 100;
/// The sizes of the statement that takes a chunk's last rows (fewer than [`LARGE_STEP`]),
/// padded up to the next of them.
const SMALL_SHAPES: [usize; 7] = [1, 2, 5, 10, 20, 50, 100];
const _: () = assert!(MAX_ROWS.is_multiple_of(LARGE_STEP) && SMALL_SHAPES[6] == LARGE_STEP);

/// Cuts one chunk of at most [`MAX_ROWS`] rows into at most two statements of a few fixed
/// sizes: its whole hundreds, and the rest padded up to the next of [`SMALL_SHAPES`] by
/// repeating its smallest row (a repeated id is skipped like any stored one).
///
/// Every distinct row count is a distinct SQL text, and SQLx prepares and keeps each one, per
/// connection, in the client and (on PostgreSQL and MySQL) in the server, up to 100 statements
/// a connection. A prepared 1,000-row insert holds about 9 MiB of a PostgreSQL backend's
/// memory, so batches of arbitrary sizes could make one connection hold most of a gigabyte.
/// With these sizes a connection keeps at most 16 insert statements (about 50 MiB of server
/// memory at the very worst, when every size has been used). Two statements at most, rather
/// than an exact split into many, because each statement is a round trip, in a transaction on
/// SQLite (and over TCP, with SQLx 0.9.0, which did not set `TCP_NODELAY`, one that spanned
/// several segments waited ~40 ms for a delayed acknowledgement); the padding costs at most 49
/// repeated rows, which the database skips.
fn shaped(mut rows: Vec<Row>, out: &mut Vec<Vec<Row>>) {
    let rest = rows.split_off(rows.len() / LARGE_STEP * LARGE_STEP);
    if !rows.is_empty() {
        out.push(rows);
    }
    let Some(filler) = rest.iter().min_by_key(|row| row.bytes).cloned() else {
        return;
    };
    let shape = padded_len(rest.len());
    let mut piece = rest;
    piece.resize(shape, filler);
    out.push(piece);
}

/// The statement size that takes `len` rows (at most [`LARGE_STEP`]): the next of
/// [`SMALL_SHAPES`]. The rows are padded up to it by repeating one of them.
pub(crate) fn padded_len(len: usize) -> usize {
    SMALL_SHAPES
        .into_iter()
        .find(|&shape| shape >= len)
        .unwrap_or(len)
}

/// Splits `entries` into statement-sized chunks for `backend`, dropping repeated ids (the
/// first one wins, as it would in separate inserts). Statements have one of a few sizes (see
/// [`shaped`]), so that a connection prepares a bounded number of insert statements; the last
/// rows of a chunk may be followed by repeats of one of them, which the insert skips.
pub(crate) fn chunks(
    backend: DbBackend,
    entries: &[AuditEntry],
) -> Result<Vec<Vec<Row>>, StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        if seen.insert(entry.id) {
            rows.push(crate::convert::to_row(entry)?);
        }
    }
    Ok(shape_rows(backend, rows))
}

/// Cuts `rows` (distinct ids) into statements for `backend`: chunks of at most
/// [`rows_per_statement`] rows and [`MAX_CHUNK_BYTES`], each in the few sizes of [`shaped`].
pub(crate) fn shape_rows(backend: DbBackend, rows: Vec<Row>) -> Vec<Vec<Row>> {
    let max_rows = rows_per_statement(backend);
    let mut out = Vec::new();
    for chunk in sized_chunks(max_rows, rows) {
        shaped(chunk, &mut out);
    }
    out
}

/// Groups `rows` in chunks of at most `max_rows` rows and [`MAX_CHUNK_BYTES`].
fn sized_chunks(max_rows: usize, rows: Vec<Row>) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    let mut current: Vec<Row> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        if !current.is_empty() && (current.len() >= max_rows || bytes + row.bytes > MAX_CHUNK_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += row.bytes;
        current.push(row);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Inserts one chunk as one statement; ids that already exist are skipped. Returns how many
/// rows the database reports as inserted (on MySQL, which counts a skipped row as found, an
/// upper bound).
pub(crate) async fn insert_chunk<C: ConnectionTrait>(
    conn: &C,
    chunk: Vec<Row>,
) -> Result<u64, StoreError> {
    let result = entity::Entity::insert_many(chunk.into_iter().map(|row| row.model))
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await
        .map_err(store_error)?;
    Ok(match result {
        TryInsertResult::Inserted(rows) => rows,
        TryInsertResult::Empty | TryInsertResult::Conflicted => 0,
    })
}

/// Inserts one entry on any connection, a [`DatabaseTransaction`](sea_orm::DatabaseTransaction)
/// included, so that a handler's change and its audit entry commit or roll back together. The
/// entry is linked into its tenant's hash chain in the same transaction (a savepoint inside
/// yours, or a transaction of its own on a plain connection), which locks the chain's head
/// until the transaction ends. In a PostgreSQL transaction under `REPEATABLE READ` or
/// `SERIALIZABLE`, a head that another writer moved since your transaction began cannot be
/// locked: the insert fails with a serialization error, to be retried like any other (the
/// store's own writes run under `READ COMMITTED`, which waits for the lock instead).
///
/// Inserting an entry whose id is already stored does nothing, so a retry never duplicates it.
/// The tables must exist ([`Migrator`](crate::migration::Migrator)).
///
/// ```no_run
/// use audit_core::{Action, AuditEntry};
/// use sea_orm::{Database, TransactionTrait};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let db = Database::connect("sqlite://app.db?mode=rwc").await?;
/// let txn = db.begin().await?;
/// // ... change your own tables through `txn` ...
/// let entry = AuditEntry::builder(Action::Update).tenant("acme").entity("Tenant", "7").build();
/// audit_seaorm::insert_entry(&txn, &entry).await?;
/// txn.commit().await?; // both the change and the entry, or neither
/// # Ok(()) }
/// ```
pub async fn insert_entry<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    insert_entries(conn, std::slice::from_ref(entry)).await
}

/// The writer for `AuditContext::record_with` (in `audit-tower`) that inserts the request's
/// entry through `conn`, typically the handler's own transaction: the change and its audit entry
/// then commit or roll back together, and the layer writes nothing more.
///
/// ```no_run
/// use audit_tower::AuditContext;
/// use sea_orm::{DatabaseConnection, TransactionTrait};
///
/// async fn update(db: DatabaseConnection, audit: AuditContext) -> Result<(), Box<dyn std::error::Error>> {
///     let txn = db.begin().await?;
///     // ... change your own tables through `txn`, and tell `audit` what changed ...
///     audit.record_with(audit_seaorm::record_in(&txn)).await?;
///     txn.commit().await?;
///     Ok(())
/// }
/// ```
pub fn record_in<'c, C: ConnectionTrait + TransactionTrait>(
    conn: &'c C,
) -> impl FnOnce(AuditEntry) -> BoxFuture<'c, Result<(), StoreError>> + 'c {
    move |entry| Box::pin(async move { insert_entry(conn, &entry).await })
}

/// Inserts entries on any connection in multi-row statements of up to 1,000 rows, skipping ids
/// that are already stored. Statements come in a few fixed sizes, so that a connection keeps
/// few prepared statements whatever the batch sizes: up to 1,000 entries take at most two
/// statements (a batch of 100 or 1,000 one, a batch of 999 a statement of 900 and one of 99
/// entries padded to 100 by repeating one of them; more when the rows exceed 4 MiB).
///
/// The entries are linked into their tenants' hash chains, in their order, in one transaction
/// (a savepoint when `conn` is a transaction already): all of them are stored, or none.
pub async fn insert_entries<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    insert_linked(conn, entries, None).await
}

/// [`insert_entries`] in a transaction of `isolation` (a savepoint, whatever `isolation`
/// says, when `conn` is a transaction already).
pub(crate) async fn insert_linked<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    entries: &[AuditEntry],
    isolation: Option<IsolationLevel>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // First assuming every entry is new; if some were stored already (a retry after a commit
    // whose acknowledgement was lost), again from the start, skipping them.
    for look_up in [false, true] {
        let txn = conn
            .begin_with_config(isolation, None)
            .await
            .map_err(store_error)?;
        match crate::chain::write_linked(&txn, entries, look_up).await? {
            Linked::All => return txn.commit().await.map_err(store_error),
            Linked::Retry => txn.rollback().await.map_err(store_error)?,
        }
    }
    Err(StoreError::Backend(
        "the entries were neither new nor stored after a second attempt".into(),
    ))
}

/// [`insert_linked`] without the hash chain: the same statements in one transaction, none of
/// the chain's. Only for measuring what the chain costs (the storage bench).
pub(crate) async fn insert_unlinked<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    entries: &[AuditEntry],
    isolation: Option<IsolationLevel>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let txn = conn
        .begin_with_config(isolation, None)
        .await
        .map_err(store_error)?;
    for chunk in chunks(txn.get_database_backend(), entries)? {
        insert_chunk(&txn, chunk).await?;
    }
    crate::refs::write(&txn, entries).await?;
    txn.commit().await.map_err(store_error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use audit_core::{Action, Change};
    use std::collections::HashSet;

    fn id(row: &Row) -> uuid::Uuid {
        match &row.model.id {
            sea_orm::ActiveValue::Set(id) => *id,
            other => panic!("id is {other:?}"),
        }
    }

    fn chunks(backend: DbBackend, entries: &[AuditEntry]) -> Vec<Vec<Row>> {
        super::chunks(backend, entries).unwrap()
    }

    #[test]
    fn chunks_respect_parameter_limits_and_drop_repeated_ids() {
        assert!(rows_per_statement(DbBackend::Sqlite) * Column::iter().count() <= 32_766);
        assert_eq!(rows_per_statement(DbBackend::Postgres), 1000);
        let entries: Vec<AuditEntry> = (0..2500).map(|_| AuditEntry::new(Action::Create)).collect();
        let mut with_repeats = entries.clone();
        with_repeats.push(entries[0].clone());
        with_repeats.insert(1, entries[0].clone());
        for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
            let chunks = chunks(backend, &with_repeats);
            let max = rows_per_statement(backend);
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= max));
            let flat: Vec<_> = chunks.iter().flatten().map(id).collect();
            let expected: Vec<_> = entries.iter().map(|e| e.id).collect();
            assert_eq!(flat, expected);
        }
    }

    #[test]
    fn statements_come_in_a_few_sizes() {
        let entries: Vec<AuditEntry> = (0..2600).map(|_| AuditEntry::new(Action::Create)).collect();
        let mut lengths = HashSet::new();
        for n in (0..=1100).chain([1999, 2000, 2001, 2600]) {
            let chunks = chunks(DbBackend::Postgres, &entries[..n]);
            // Every entry, in order, then at most the padding: repeats of the chunk's own rows.
            let mut seen = HashSet::new();
            let mut order = Vec::new();
            for chunk in &chunks {
                let ids: HashSet<_> = chunk.iter().map(id).collect();
                for row in chunk {
                    assert!(ids.contains(&id(row)));
                    if seen.insert(id(row)) {
                        order.push(id(row));
                    }
                }
            }
            let expected: Vec<_> = entries[..n].iter().map(|e| e.id).collect();
            assert_eq!(order, expected, "{n}");
            let padding = chunks.iter().map(Vec::len).sum::<usize>() - n;
            assert!(
                padding <= 49 * n.div_ceil(1000),
                "{n} rows, {padding} repeats"
            );
            if n <= 1000 {
                assert!(
                    chunks.len() <= 2,
                    "{n} rows took {} statements",
                    chunks.len()
                );
            }
            lengths.extend(chunks.iter().map(Vec::len));
        }
        let mut lengths: Vec<_> = lengths.into_iter().collect();
        lengths.sort_unstable();
        assert_eq!(
            lengths,
            [
                1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000
            ]
        );
        // The sizes people choose stay one statement each.
        for n in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
            assert_eq!(chunks(DbBackend::Sqlite, &entries[..n]).len(), 1, "{n}");
        }
        assert_eq!(
            chunks(DbBackend::MySql, &entries[..999])
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [900, 100]
        );
    }

    #[test]
    fn large_entries_split_statements_by_size() {
        let big = AuditEntry::builder(Action::Update)
            .changes(vec![Change::new(
                "blob",
                serde_json::Value::Null,
                "x".repeat(60_000).into(),
            )])
            .limits(audit_core::Limits {
                change_value: 100_000,
                changes_total: 100_000,
                ..Default::default()
            })
            .build();
        let entries: Vec<AuditEntry> = (0..200)
            .map(|_| {
                let mut e = big.clone();
                e.id = uuid::Uuid::now_v7();
                e
            })
            .collect();
        let chunks = chunks(DbBackend::MySql, &entries);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|row| row.bytes).sum();
            assert!(bytes <= MAX_STATEMENT_BYTES);
        }
    }
}
