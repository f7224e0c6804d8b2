//! Free text across every searched field through one derived column, `search_text`, on every
//! backend.
//!
//! Free text matches a term in any of a dozen fields, among them each change's name and values
//! (see [`AuditQuery::search_text`]). Rather than a `LIKE` per column (and, for changes, a walk
//! of JSON no index can carry), each row keeps those fields lower-cased, one a line, in
//! `search_text`, written with the row, and a search is one `LIKE` on it.
//!
//! This migration:
//!
//! 1. adds the column (`TEXT`, nullable);
//! 2. fills it for every row stored before, 500 rows a statement in id order,
//!    each derived from the row as it reads back, exactly as a new row's is;
//! 3. on PostgreSQL, replaces the covering free-text index pair of
//!    [`m20261122_000002_free_text_index`](super::m20261122_000002_free_text_index) (which carried
//!    the five columns searched before) with the same pair over `search_text`:
//!    `audit_log_tenant_search` (`tenant_id`, `occurred_at`, `id`)
//!    `INCLUDE (team_id, entity_type, action, search_text)`, partial on rows whose carried
//!    texts total at most 2,000 bytes, and `audit_log_tenant_long_search` for the others. The
//!    entity type and action are carried so that a search that leaves out the log's own reads
//!    stays in the index.
//!
//! SQLite gets no index for it by default: a search scans the tenant's covering index in keyset
//! order and reads `search_text` from each row. [`sqlite_index_statement`] is an index that
//! makes a search read the index alone, five to seven times faster, at the cost of about a third
//! of a batched insert's speed (`docs/decisions/0058`); create it yourself if searches matter
//! more than inserts. Being partial on `search_text IS NOT NULL`, it is used only by a search
//! that states that condition (the store's does), so every other listing keeps the covering
//! tenant index of
//! [`m20261205_000008_sqlite_covering_tenant_index`](super::m20261205_000008_sqlite_covering_tenant_index).
//!
//! On MySQL an InnoDB index can hold only a prefix of a `TEXT` column, and a prefix is never
//! read instead of the row (`docs/decisions/0058`): its free-text index, over virtual columns
//! derived from `search_text`, comes with
//! [`m20261207_000011_mysql_search_index`](super::m20261207_000011_mysql_search_index).
//!
//! The fill rewrites every row once: on a large log, expect it to take about as long as
//! loading the log did, under the migration lock (writes wait). Each statement commits on its
//! own, so an interrupted run resumes where it stopped. Rows written after this migration by
//! a store that predates it have no `search_text`, and free text does not find them: upgrade
//! every writer before running it. Idempotent: each step checks first.

use audit_core::store::AuditQuery;
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, Iterable, QueryFilter,
    QueryOrder, QuerySelect,
};
use sea_orm_migration::prelude::*;
use uuid::Uuid;

use super::m20261122_000002_free_text_index as old_text;
use crate::entity::{self, Column};

/// The migration that adds and fills `search_text` and indexes it on PostgreSQL.
#[derive(Debug, Clone, Copy, Default, DeriveMigrationName)]
pub struct Migration;

const LOG: &str = "audit_log";
/// The column's name.
const SEARCH_TEXT: &str = "search_text";

/// Rows filled per statement.
pub(crate) const BACKFILL_BATCH: u64 = 500;

/// SQLite's optional free-text index.
pub(crate) const SQLITE_SEARCH: &str = "audit_log_tenant_search";

/// The `CREATE INDEX IF NOT EXISTS` statement of SQLite's optional free-text index,
/// `audit_log_tenant_search`: (`tenant_id`, `occurred_at`, `id`, `team_id`, `entity_type`,
/// `action`, `search_text`), partial on `search_text IS NOT NULL`. Not created by the
/// migrations: with it, a tenant's search reads the index alone (6 ms instead of 44 for a
/// search that matches nothing among 20,000 entries), and batched inserts run about a third
/// slower (`docs/decisions/0058`). Reverting this migration drops it.
pub fn sqlite_index_statement() -> &'static str {
    "CREATE INDEX IF NOT EXISTS audit_log_tenant_search \
     ON audit_log (tenant_id, occurred_at, id, team_id, entity_type, action, search_text) \
     WHERE search_text IS NOT NULL"
}

/// PostgreSQL's covering index for rows whose carried texts are short.
pub(crate) const COVERING: &str = "audit_log_tenant_search";
/// PostgreSQL's index of the other rows, whose `search_text` is read from the table.
pub(crate) const LONG: &str = "audit_log_tenant_long_search";

/// The predicate of [`COVERING`]: the texts it carries total at most 2,000 bytes, well under a
/// B-tree entry's limit (2,704 bytes). A query must state it exactly so for PostgreSQL to use
/// the index.
pub(crate) const SHORT_TEXT: &str = "octet_length(COALESCE(tenant_id, '')) \
    + octet_length(COALESCE(team_id, '')) + octet_length(COALESCE(entity_type, '')) \
    + octet_length(action) + octet_length(COALESCE(search_text, '')) <= 2000";

/// The predicate of [`LONG`]: the complement of [`SHORT_TEXT`].
pub(crate) const LONG_TEXT: &str = "octet_length(COALESCE(tenant_id, '')) \
    + octet_length(COALESCE(team_id, '')) + octet_length(COALESCE(entity_type, '')) \
    + octet_length(action) + octet_length(COALESCE(search_text, '')) > 2000";

/// The `CREATE INDEX IF NOT EXISTS` statements of PostgreSQL's two indexes, by name. To add them
/// to a large log without stopping writes, create them beforehand with
/// `CREATE INDEX CONCURRENTLY` and these definitions: the migration then finds them in place.
pub fn index_statements() -> [(&'static str, String); 2] {
    [
        (
            COVERING,
            format!(
                "CREATE INDEX IF NOT EXISTS {COVERING} ON {LOG} (tenant_id, occurred_at, id) \
                 INCLUDE (team_id, entity_type, action, search_text) WHERE {SHORT_TEXT}"
            ),
        ),
        (
            LONG,
            format!(
                "CREATE INDEX IF NOT EXISTS {LONG} ON {LOG} (tenant_id, occurred_at, id) \
                 WHERE {LONG_TEXT}"
            ),
        ),
    ]
}

/// The search text of a stored row: that of the entry it reads back as; empty for a row no
/// entry can be read from (which every listing reports anyway).
pub(crate) fn row_search_text(row: entity::Model) -> String {
    crate::convert::from_model(row)
        .map(|entry| AuditQuery::search_text(&entry))
        .unwrap_or_default()
}

/// Sets `search_text` of each row in `texts` (id, text), in one statement.
pub(crate) async fn set_search_texts<C: ConnectionTrait>(
    db: &C,
    texts: Vec<(Uuid, String)>,
) -> Result<(), DbErr> {
    if texts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = texts.iter().map(|(id, _)| *id).collect();
    let mut case = CaseStatement::new();
    for (id, text) in texts {
        case = case.case(Column::Id.eq(id), Expr::val(text));
    }
    entity::Entity::update_many()
        .col_expr(Column::SearchText, case.into())
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(())
}

/// The columns of [`entity`] added by later migrations: on a log that predates them they are
/// not there yet when this migration runs, and the backfill reads them as `NULL`.
fn added_later(column: Column) -> bool {
    matches!(column, Column::TraceId)
}

/// Fills `search_text` of every row without one, in id order. `later_columns`: whether the
/// columns of later migrations are there already (a table created from [`entity`]).
async fn backfill<C: ConnectionTrait>(db: &C, later_columns: bool) -> Result<(), DbErr> {
    let mut after: Option<Uuid> = None;
    loop {
        let mut select = entity::Entity::find();
        if !later_columns {
            select = select.select_only();
            for column in Column::iter() {
                select = if added_later(column) {
                    select.expr_as(Expr::value(sea_orm::Value::String(None)), column.as_str())
                } else {
                    select.column(column)
                };
            }
        }
        let mut select = select.filter(Column::SearchText.is_null());
        if let Some(after) = after {
            select = select.filter(Column::Id.gt(after));
        }
        let rows = select
            .order_by_asc(Column::Id)
            .limit(BACKFILL_BATCH)
            .all(db)
            .await?;
        let Some(last) = rows.last().map(|row| row.id) else {
            return Ok(());
        };
        after = Some(last);
        let texts = rows
            .into_iter()
            .map(|row| (row.id, row_search_text(row)))
            .collect();
        set_search_texts(db, texts).await?;
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if !manager.has_column(LOG, SEARCH_TEXT).await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(LOG))
                        .add_column(ColumnDef::new(Alias::new(SEARCH_TEXT)).text().null())
                        .to_owned(),
                )
                .await?;
        }
        let later_columns = manager.has_column(LOG, Column::TraceId.as_str()).await?;
        backfill(db, later_columns).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            for (name, statement) in index_statements() {
                if !manager.has_index(LOG, name).await? {
                    db.execute_unprepared(&statement).await?;
                }
            }
            for name in [old_text::COVERING, old_text::LONG] {
                db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Sqlite {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {SQLITE_SEARCH}"))
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            for (name, statement) in old_text::index_statements() {
                if !manager.has_index(LOG, name).await? {
                    db.execute_unprepared(&statement).await?;
                }
            }
            for name in [COVERING, LONG] {
                db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                    .await?;
            }
        }
        if manager.has_column(LOG, SEARCH_TEXT).await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(LOG))
                        .drop_column(Alias::new(SEARCH_TEXT))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::migration::Migrator;
    use audit_core::store::{AuditStore, Scope};
    use audit_core::{Action, AuditEntry, AuditSink, Change};
    use sea_orm::{ActiveValue, Statement};
    use serde_json::json;

    #[test]
    fn the_predicates_are_complements() {
        assert_eq!(
            SHORT_TEXT.replace("<= 2000", "> 2000"),
            LONG_TEXT,
            "the two partial indexes must hold every row exactly once"
        );
    }

    /// Rows stored before the column existed are found by free text once the migration ran, by
    /// every field it searches.
    #[tokio::test]
    async fn the_migration_fills_the_rows_stored_before_it() {
        let store = crate::SeaOrmStore::connect("sqlite::memory:")
            .await
            .unwrap();
        let db = store.connection();
        // Back to before this migration, whatever came after it.
        let later = Migrator::migrations()
            .iter()
            .rev()
            .take_while(|m| m.name() != Migration.name())
            .count();
        Migrator::down(db, Some(later as u32 + 1)).await.unwrap();
        assert!(
            !SchemaManager::new(db)
                .has_column(LOG, SEARCH_TEXT)
                .await
                .unwrap()
        );
        // Rows written as a store without the column wrote them: every column but that one
        // (and those of later migrations, also reverted).
        let entries: Vec<AuditEntry> = (0..(BACKFILL_BATCH + 7))
            .map(|i| {
                AuditEntry::builder(Action::Update)
                    .tenant("acme")
                    .entity("Invoice", format!("inv-{i}"))
                    .changes(vec![Change::new(
                        "Total",
                        json!(format!("old-{i}")),
                        json!(i),
                    )])
                    .build()
            })
            .collect();
        for entry in &entries {
            let mut model = crate::convert::to_row(entry).unwrap().model;
            model.search_text = ActiveValue::NotSet;
            let insert = sea_orm::sea_query::Query::insert()
                .into_table(entity::Entity)
                .columns(
                    <entity::Column as sea_orm::Iterable>::iter()
                        .filter(|c| !matches!(c, Column::SearchText | Column::TraceId)),
                )
                .values_panic(
                    <entity::Column as sea_orm::Iterable>::iter()
                        .filter(|c| !matches!(c, Column::SearchText | Column::TraceId))
                        .map(|c| {
                            let value = sea_orm::ActiveModelTrait::get(&model, c);
                            Expr::val(value.into_value().unwrap())
                        }),
                )
                .to_owned();
            db.execute(&insert).await.unwrap();
        }
        Migrator::up(db, None).await.unwrap();
        let nulls = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM audit_log WHERE search_text IS NULL",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(nulls, 0);
        for (text, id) in [
            ("INV-3", "inv-3"),
            ("old-506", "inv-506"),
            ("total", "inv-0"),
        ] {
            let page = store
                .query(
                    &AuditQuery::new(Scope::tenant("acme"))
                        .text(text)
                        .limit(1000),
                )
                .await
                .unwrap();
            assert!(
                page.items
                    .iter()
                    .any(|e| e.entity_id.as_deref() == Some(id)),
                "{text}"
            );
        }
        // New rows get theirs from the store.
        let new = AuditEntry::builder(Action::Create)
            .tenant("acme")
            .entity("Invoice", "fresh-1")
            .build();
        store.record(new).await.unwrap();
        let page = store
            .query(&AuditQuery::new(Scope::tenant("acme")).text("FRESH-1"))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
    }
}
