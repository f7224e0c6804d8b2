//! Writing entries: idempotent multi-row inserts, chunked under each backend's limits.
//!
//! In the flow request → layer → entry → **sink** → store → admin router, this is the sink's
//! half of [`SeaOrmStore`](crate::SeaOrmStore), and [`insert_entry`] is what transactional
//! recording uses to write an entry inside a handler's own transaction.

use std::collections::HashSet;

use audit_core::{AuditEntry, StoreError};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait};

use crate::convert::to_active;
use crate::entity;
use crate::error::store_error;

/// Bound parameters per row: one per column.
const COLUMNS: usize = 23;
/// The most rows in one statement, whatever the backend allows: past this, larger statements
/// stop paying for themselves and only hold locks longer.
const MAX_ROWS: usize = 1000;
/// A rough cap on one statement's size, well under MySQL's default `max_allowed_packet`
/// (16 MiB on MariaDB, 64 MiB on MySQL 8).
const MAX_STATEMENT_BYTES: usize = 4 * 1024 * 1024;

/// The most bound parameters one statement may carry on `backend`.
fn max_parameters(backend: DbBackend) -> usize {
    match backend {
        // SQLITE_MAX_VARIABLE_NUMBER is 32,766 since SQLite 3.32 (the bundled driver is newer).
        DbBackend::Sqlite => 32_766,
        // Both count parameters in a 16-bit field.
        _ => 65_535,
    }
}

/// The most rows per statement on `backend`.
pub(crate) fn rows_per_statement(backend: DbBackend) -> usize {
    (max_parameters(backend) / COLUMNS).min(MAX_ROWS)
}

/// Roughly how many bytes `entry` adds to a statement.
fn approx_size(entry: &AuditEntry) -> usize {
    fn len(text: &Option<String>) -> usize {
        text.as_deref().map_or(0, str::len)
    }
    fn value_len(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(s) => s.len() + 2,
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => value.to_string().len(),
            _ => 8,
        }
    }
    let texts = [
        &entry.tenant_id,
        &entry.team_id,
        &entry.actor_id,
        &entry.actor_name,
        &entry.api_key_id,
        &entry.api_key_name,
        &entry.entity_type,
        &entry.entity_id,
        &entry.entity_name,
        &entry.details,
        &entry.user_agent,
        &entry.request_id,
        &entry.method,
        &entry.route,
    ]
    .into_iter()
    .map(len)
    .sum::<usize>();
    let changes = entry
        .changes
        .iter()
        .map(|c| c.field.len() + value_len(&c.old) + value_len(&c.new) + 24)
        .sum::<usize>();
    let metadata = entry
        .metadata
        .iter()
        .map(|(k, v)| k.len() + value_len(v) + 4)
        .sum::<usize>();
    // Fixed-size columns and per-value overhead.
    128 + texts + changes + metadata
}

/// The row counts a statement may have: 1, 2 and 5 times each power of ten, up to
/// [`MAX_ROWS`], largest first.
///
/// Every distinct row count is a distinct SQL text, and SQLx prepares and keeps each one, per
/// connection, in the client and (on PostgreSQL and MySQL) in the server, up to 100 statements
/// a connection. A prepared 1,000-row insert holds about 9 MiB of a PostgreSQL backend's
/// memory, so batches of arbitrary sizes could make one connection hold most of a gigabyte. Cut
/// into these shapes, a connection keeps at most ten insert statements (about 17 MiB of server
/// memory at worst), while the batch sizes people choose (1, 100, 1000) remain one statement
/// each and any other size under 1000 takes at most nine.
const SHAPES: [usize; 10] = [1000, 500, 200, 100, 50, 20, 10, 5, 2, 1];
const _: () = assert!(SHAPES[0] == MAX_ROWS && SHAPES[SHAPES.len() - 1] == 1);

/// Splits `rows` into pieces whose lengths are all [`SHAPES`] no larger than `max_rows`,
/// largest first.
fn shaped<'a>(mut rows: &[&'a AuditEntry], max_rows: usize, out: &mut Vec<Vec<&'a AuditEntry>>) {
    for shape in SHAPES.into_iter().filter(|&shape| shape <= max_rows) {
        while rows.len() >= shape {
            let (piece, rest) = rows.split_at(shape);
            out.push(piece.to_vec());
            rows = rest;
        }
    }
}

/// Splits `entries` into statement-sized chunks for `backend`, dropping repeated ids (the
/// first one wins, as it would in separate inserts). Each chunk's length is one of a few
/// [`SHAPES`], so that a connection prepares a bounded number of insert statements.
pub(crate) fn chunks(backend: DbBackend, entries: &[AuditEntry]) -> Vec<Vec<&AuditEntry>> {
    let max_rows = rows_per_statement(backend);
    let mut out: Vec<Vec<&AuditEntry>> = Vec::new();
    for chunk in sized_chunks(max_rows, entries) {
        shaped(&chunk, max_rows, &mut out);
    }
    out
}

/// Splits `entries` into chunks of at most `max_rows` rows and [`MAX_STATEMENT_BYTES`],
/// dropping repeated ids.
fn sized_chunks(max_rows: usize, entries: &[AuditEntry]) -> Vec<Vec<&AuditEntry>> {
    let mut seen = HashSet::with_capacity(entries.len());
    let mut out: Vec<Vec<&AuditEntry>> = Vec::new();
    let mut current: Vec<&AuditEntry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        if !seen.insert(entry.id) {
            continue;
        }
        let size = approx_size(entry);
        if !current.is_empty() && (current.len() >= max_rows || bytes + size > MAX_STATEMENT_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Inserts one chunk as one statement; ids that already exist are skipped.
pub(crate) async fn insert_chunk<C: ConnectionTrait>(
    conn: &C,
    chunk: &[&AuditEntry],
) -> Result<(), StoreError> {
    let rows = chunk.iter().map(|entry| to_active(entry));
    entity::Entity::insert_many(rows)
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Inserts one entry on any connection, a [`DatabaseTransaction`](sea_orm::DatabaseTransaction)
/// included, so that a handler's change and its audit entry commit or roll back together.
///
/// Inserting an entry whose id is already stored does nothing, so a retry never duplicates it.
/// The table must exist ([`Migrator`](crate::migration::Migrator)).
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
pub async fn insert_entry<C: ConnectionTrait>(
    conn: &C,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    insert_chunk(conn, &[entry]).await
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
pub fn record_in<'c, C: ConnectionTrait>(
    conn: &'c C,
) -> impl FnOnce(AuditEntry) -> BoxFuture<'c, Result<(), StoreError>> + 'c {
    move |entry| Box::pin(async move { insert_entry(conn, &entry).await })
}

/// Inserts entries on any connection in multi-row statements of up to 1,000 rows, skipping ids
/// that are already stored. Statements come in a few fixed sizes (1, 2 or 5 times a power of
/// ten rows), so that a connection keeps few prepared statements whatever the batch sizes: a
/// batch of 100 or 1,000 is one statement, one of 999 is nine (fewer rows when ids repeat, and
/// more statements when the rows exceed 4 MiB).
///
/// This opens no transaction of its own: on a plain connection, a failure after the first
/// statement leaves the earlier chunks stored (a retry then completes the batch, since
/// inserts are idempotent). [`AuditSink::record_batch`](audit_core::AuditSink::record_batch)
/// on [`SeaOrmStore`](crate::SeaOrmStore) wraps a multi-statement batch in a transaction.
pub async fn insert_entries<C: ConnectionTrait>(
    conn: &C,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    for chunk in chunks(conn.get_database_backend(), entries) {
        insert_chunk(conn, &chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use audit_core::{Action, Change};

    #[test]
    fn chunks_respect_parameter_limits_and_drop_repeated_ids() {
        assert!(rows_per_statement(DbBackend::Sqlite) * COLUMNS <= 32_766);
        assert_eq!(rows_per_statement(DbBackend::Postgres), 1000);
        let entries: Vec<AuditEntry> = (0..2500).map(|_| AuditEntry::new(Action::Create)).collect();
        let mut with_repeats = entries.clone();
        with_repeats.push(entries[0].clone());
        with_repeats.insert(1, entries[0].clone());
        for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
            let chunks = chunks(backend, &with_repeats);
            let max = rows_per_statement(backend);
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= max));
            let flat: Vec<_> = chunks.iter().flatten().map(|e| e.id).collect();
            let expected: Vec<_> = entries.iter().map(|e| e.id).collect();
            assert_eq!(flat, expected);
        }
    }

    #[test]
    fn statements_come_in_a_few_shapes() {
        let entries: Vec<AuditEntry> = (0..2600).map(|_| AuditEntry::new(Action::Create)).collect();
        let mut lengths = HashSet::new();
        for n in (0..=1100).chain([1999, 2000, 2001, 2600]) {
            let chunks = chunks(DbBackend::Postgres, &entries[..n]);
            // Every entry once, in order.
            let flat: Vec<_> = chunks.iter().flatten().map(|e| e.id).collect();
            let expected: Vec<_> = entries[..n].iter().map(|e| e.id).collect();
            assert_eq!(flat, expected, "{n}");
            if n < 1000 {
                assert!(
                    chunks.len() <= 9,
                    "{n} rows took {} statements",
                    chunks.len()
                );
            }
            lengths.extend(chunks.iter().map(Vec::len));
        }
        let mut lengths: Vec<_> = lengths.into_iter().collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(lengths, SHAPES);
        // The sizes people choose stay one statement each.
        for n in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
            assert_eq!(chunks(DbBackend::Sqlite, &entries[..n]).len(), 1, "{n}");
        }
        assert_eq!(
            chunks(DbBackend::MySql, &entries[..999])
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [500, 200, 200, 50, 20, 20, 5, 2, 2]
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
            let bytes: usize = chunk.iter().map(|e| approx_size(e)).sum();
            assert!(bytes <= MAX_STATEMENT_BYTES);
        }
    }
}
