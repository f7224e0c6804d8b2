//! On MySQL and MariaDB, an index free text reads instead of the rows; nothing on SQLite and
//! PostgreSQL.
//!
//! InnoDB indexes only a prefix of a `TEXT` column and never reads such a prefix instead of the
//! row, so until this migration a tenant's search read every one of the tenant's rows through
//! the primary key, spread over the whole table (1.8 s at 1,000,000 entries for a search that
//! matched nothing). This migration adds three virtual generated columns, which the server
//! computes from the row and which take no room in it:
//!
//! - `search_short`: `search_text`'s bytes when there are at most [`SHORT_BYTES`] of them, else
//!   `NULL` (a `VARBINARY`, so that an index can hold it whole, and so that `LIKE` compares
//!   bytes: the text and the term are lower-cased before they reach the database, and a
//!   byte-wise substring of UTF-8 is a substring of characters);
//! - `search_long`: 1 when `search_text` is longer than that, else 0;
//! - `log_read`: 1 for the log's own reads (`action = 'Read'` on entity type `AuditLog`), else
//!   0, so that a search leaving them out (the admin API's default) needs no other column;
//!
//! and one index over them, `audit_log_tenant_search`: (`tenant_id`, `search_long`,
//! `occurred_at`, `id`, `log_read`, `search_short`), 3,054 bytes of the 3,072 an InnoDB key
//! may hold. A tenant's search then reads its page's ids in two parts, each in keyset order
//! and cut at the page size: the short texts from this index alone (`search_long = 0`, the
//! `LIKE` on `search_short`), and the long ones (`search_long = 1`, rare) through this index
//! and their rows. Neither MySQL nor MariaDB pushes a condition into a backward index scan or
//! onto a virtual column, so a covering read is the only way to test the text without the row
//! (`docs/decisions/0060`).
//!
//! Creating the index reads the table once (its columns are computed then), with writes
//! allowed meanwhile on MariaDB and MySQL 8. Idempotent: each step checks first.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

/// The migration that indexes free text on MySQL and MariaDB.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

const LOG: &str = "audit_log";
/// The index's name.
pub(crate) const INDEX: &str = "audit_log_tenant_search";
/// The longest `search_text`, in bytes, that the index holds whole. With the tenant id (255
/// characters of up to 4 bytes), the flags, the time and the id, the key stays within
/// InnoDB's 3,072 bytes. PostgreSQL's covering index draws its line at the same size.
pub const SHORT_BYTES: u32 = 2000;

/// The generated columns, by name, with their definitions.
fn columns() -> [(&'static str, String); 3] {
    [
        (
            "search_short",
            format!(
                "VARBINARY({SHORT_BYTES}) GENERATED ALWAYS AS \
                 (IF(LENGTH(search_text) <= {SHORT_BYTES}, CAST(search_text AS BINARY), NULL)) \
                 VIRTUAL"
            ),
        ),
        (
            "search_long",
            format!(
                "TINYINT GENERATED ALWAYS AS \
                 (IF(LENGTH(search_text) > {SHORT_BYTES}, 1, 0)) VIRTUAL"
            ),
        ),
        (
            "log_read",
            "TINYINT GENERATED ALWAYS AS \
             (IF(action = 'Read' AND entity_type = 'AuditLog', 1, 0)) VIRTUAL"
                .to_owned(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let db = manager.get_connection();
        let mut adds = Vec::new();
        for (name, definition) in columns() {
            if !manager.has_column(LOG, name).await? {
                adds.push(format!("ADD COLUMN {name} {definition}"));
            }
        }
        if !manager.has_index(LOG, INDEX).await? {
            adds.push(format!(
                "ADD INDEX {INDEX} \
                 (tenant_id, search_long, occurred_at, id, log_read, search_short)"
            ));
        }
        if !adds.is_empty() {
            db.execute_unprepared(&format!("ALTER TABLE {LOG} {}", adds.join(", ")))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let db = manager.get_connection();
        let mut drops = Vec::new();
        if manager.has_index(LOG, INDEX).await? {
            drops.push(format!("DROP INDEX {INDEX}"));
        }
        for (name, _) in columns() {
            if manager.has_column(LOG, name).await? {
                drops.push(format!("DROP COLUMN {name}"));
            }
        }
        if !drops.is_empty() {
            db.execute_unprepared(&format!("ALTER TABLE {LOG} {}", drops.join(", ")))
                .await?;
        }
        Ok(())
    }
}
