//! Indexes that let PostgreSQL answer a tenant's free-text search from an index alone; nothing
//! on SQLite and MySQL.
//!
//! Free text is a substring search over five columns, which no B-tree can seek. Without help,
//! a search that matches nothing reads every row of the tenant, and on PostgreSQL those rows
//! sit on heap pages spread through the whole table (a tenant's rows are interleaved with every
//! other tenant's), so a tenant of 20,000 entries costs some 16,000 page visits. This migration
//! adds `audit_log_tenant_text`, `(tenant_id, occurred_at, id)` carrying the searched columns (and the team),
//! so the store scans one tenant's slice of that index in keyset order, without a sort, matches
//! the text there and reads from the table only the rows of the page it returns.
//!
//! A B-tree entry may not exceed about 2.7 KB, and `details` holds up to 64 KiB. The covering
//! index is therefore partial: it holds the rows whose carried texts total at most 2,000 bytes,
//! nearly all of them. The others are listed in a second, small partial index,
//! `audit_log_tenant_long_text`, and searched in the table; the store queries both and merges
//! them, so every row is searched.
//!
//! pg_trgm was tried first and rejected: a trigram GIN index made batched inserts 7 times
//! slower (`fastupdate = off`) or 1.6 times slower (`fastupdate = on`), made a common term
//! slower (the planner trusts the GIN scan, which intersects posting lists over the whole
//! table), and cannot help a term shorter than three characters (`docs/decisions/0011`).
//!
//! Building the indexes locks the table against writes while it runs (about 2 s per million
//! entries). To add them to a large log without stopping writes, create them beforehand with
//! `CREATE INDEX CONCURRENTLY` and the definitions of [`index_statements`]: the migration then
//! finds them in place.
//!
//! The migration is idempotent: each index is created only when missing.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The migration that adds the free-text indexes.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

/// The covering index for rows whose carried texts are short.
pub(crate) const COVERING: &str = "audit_log_tenant_text";
/// The index of the other rows, whose texts are searched in the table.
pub(crate) const LONG: &str = "audit_log_tenant_long_text";

/// The most bytes of text a row of the covering index carries: its own columns together stay
/// well under a B-tree entry's limit (2,704 bytes), whatever was written into them.
#[cfg_attr(not(test), allow(dead_code))] // stated in the predicates below; tests compare them
pub(crate) const COVERED_BYTES: u32 = 2000;

/// The predicate of [`COVERING`]: the text columns it carries total at most [`COVERED_BYTES`].
/// A query must state it exactly so for PostgreSQL to use the index.
pub(crate) const SHORT_TEXT: &str = "octet_length(COALESCE(tenant_id, '')) \
    + octet_length(COALESCE(team_id, '')) + octet_length(COALESCE(entity_name, '')) \
    + octet_length(COALESCE(details, '')) + octet_length(COALESCE(actor_name, '')) \
    + octet_length(COALESCE(entity_id, '')) + octet_length(COALESCE(api_key_name, '')) <= 2000";

/// The predicate of [`LONG`]: the complement of [`SHORT_TEXT`].
pub(crate) const LONG_TEXT: &str = "octet_length(COALESCE(tenant_id, '')) \
    + octet_length(COALESCE(team_id, '')) + octet_length(COALESCE(entity_name, '')) \
    + octet_length(COALESCE(details, '')) + octet_length(COALESCE(actor_name, '')) \
    + octet_length(COALESCE(entity_id, '')) + octet_length(COALESCE(api_key_name, '')) > 2000";

/// The `CREATE INDEX IF NOT EXISTS` statements of the two indexes, by name.
pub fn index_statements() -> [(&'static str, String); 2] {
    [
        (
            COVERING,
            format!(
                "CREATE INDEX IF NOT EXISTS {COVERING} ON audit_log (tenant_id, occurred_at, id) \
                 INCLUDE (team_id, entity_name, details, actor_name, entity_id, api_key_name) \
                 WHERE {SHORT_TEXT}"
            ),
        ),
        (
            LONG,
            format!(
                "CREATE INDEX IF NOT EXISTS {LONG} ON audit_log (tenant_id, occurred_at, id) \
                 WHERE {LONG_TEXT}"
            ),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (name, statement) in index_statements() {
            if !manager.has_index("audit_log", name).await? {
                manager
                    .get_connection()
                    .execute_unprepared(&statement)
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            for name in [COVERING, LONG] {
                manager
                    .get_connection()
                    .execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_predicates_are_complements() {
        assert_eq!(
            SHORT_TEXT.replace("<= 2000", "> 2000"),
            LONG_TEXT,
            "the two partial indexes must hold every row exactly once"
        );
        assert!(SHORT_TEXT.ends_with(&format!("<= {COVERED_BYTES}")));
    }
}
