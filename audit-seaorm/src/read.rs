//! Reading entries: an [`AuditQuery`] as one indexed `SELECT`, keyset paging and export. Every
//! value is bound by
//! the query builder; the free text is matched in the row's `search_text` with
//! `LIKE … ESCAPE '!'` after escaping `!`, `%` and `_`, so it is always a literal substring. The escape is `!` rather than `\`, which
//! MySQL reads differently under `NO_BACKSLASH_ESCAPES`.

use audit_core::chain::ChainLink;
use audit_core::store::{AUDIT_LOG_ENTITY, AuditQuery, Cursor, Order, Page, Scope, StoreError};
use audit_core::{Action, AuditEntry};
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LikeExpr, Query, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use uuid::Uuid;

use crate::convert::from_model;
use crate::entity::{Column, Entity};
use crate::error::store_error;

/// How many rows an export reads per round trip.
pub(crate) const EXPORT_CHUNK: u32 = 1000;

/// The condition a scope imposes.
pub(crate) fn scope_condition(scope: &Scope) -> Condition {
    match scope {
        Scope::All => Condition::all(),
        Scope::Tenant(tenant) => Condition::all().add(Column::TenantId.eq(tenant.as_str())),
        Scope::Team { tenant, team } => Condition::all()
            .add(Column::TenantId.eq(tenant.as_str()))
            .add(Column::TeamId.eq(team.as_str())),
    }
}

/// The escape character of `LIKE` patterns: one that needs no escaping in SQL text on any
/// backend or SQL mode.
const LIKE_ESCAPE: char = '!';

/// `text` as a `LIKE` pattern that matches it literally anywhere, with [`LIKE_ESCAPE`] as the
/// escape.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 8);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, LIKE_ESCAPE | '%' | '_') {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn in_list<T: Into<sea_orm::Value> + Clone>(column: Column, values: &[T]) -> Option<Condition> {
    (!values.is_empty()).then(|| Condition::all().add(column.is_in(values.iter().cloned())))
}

/// The lookup buckets of `ids` (see [`crate::entity::bucket`]), each once.
fn buckets(ids: &[String]) -> Vec<i16> {
    let mut buckets: Vec<i16> = ids.iter().map(|id| crate::entity::bucket(id)).collect();
    buckets.sort_unstable();
    buckets.dedup();
    buckets
}

/// Everything in `query` but the cursor, as one condition. `named` are the entries whose bulk
/// changes name one of the query's entity ids ([`crate::refs::naming`]): an entity id filter
/// takes them as well as the objects' own entries.
pub(crate) fn filter_condition(query: &AuditQuery, named: &[Uuid]) -> Condition {
    let mut cond = scope_condition(&query.scope);
    let texts = |values: &[String]| values.to_vec();
    for part in [
        in_list(Column::EntityType, &texts(&query.entity_types)),
        in_list(
            Column::Action,
            &query
                .actions
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect::<Vec<_>>(),
        ),
        in_list(Column::ActorId, &texts(&query.actor_ids)),
        in_list(Column::ActorBucket, &buckets(&query.actor_ids)),
        in_list(
            Column::ActorKind,
            &query
                .actor_kinds
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect::<Vec<_>>(),
        ),
        entity_condition(query, named),
        in_list(Column::RequestId, &texts(&query.request_ids)),
        in_list(Column::TraceId, &texts(&query.trace_ids)),
        in_list(
            Column::Outcome,
            &query
                .outcomes
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect::<Vec<_>>(),
        ),
    ]
    .into_iter()
    .flatten()
    {
        cond = cond.add(part);
    }
    if !query.api_keys.is_empty() {
        cond = cond.add(
            Condition::any()
                .add(Column::ApiKeyId.is_in(query.api_keys.iter().cloned()))
                .add(Column::ApiKeyName.is_in(query.api_keys.iter().cloned())),
        );
    }
    if let Some(teams) = in_list(Column::TeamId, &query.teams) {
        cond = cond.add(teams);
    }
    if query.hide_log_reads {
        cond = cond.add(not_a_log_read());
    }
    if let Some(from) = query.from {
        cond = cond.add(Column::OccurredAt.gte(from));
    }
    if let Some(to) = query.to {
        cond = cond.add(Column::OccurredAt.lt(to));
    }
    if let Some(term) = query.search_term() {
        cond = cond.add(free_text_condition(&term));
    }
    cond
}

/// The entity id filter: the objects' own entries (by id and its bucket, which the lookup
/// index leads with), and the entries in `named`.
fn entity_condition(query: &AuditQuery, named: &[Uuid]) -> Option<Condition> {
    let own = in_list(Column::EntityId, &query.entity_ids)?
        .add(Column::EntityBucket.is_in(buckets(&query.entity_ids)));
    Some(if named.is_empty() {
        own
    } else {
        Condition::any()
            .add(own)
            .add(Column::Id.is_in(named.iter().copied()))
    })
}

/// Leaves out the log's own reads.
fn not_a_log_read() -> Condition {
    // Not `NOT (action = 'Read' AND entity_type = 'AuditLog')`: with no entity type that is
    // NULL, and would leave out every `Read` without one.
    Condition::any()
        .add(Column::Action.ne(Action::Read.as_str()))
        .add(Column::EntityType.is_null())
        .add(Column::EntityType.ne(AUDIT_LOG_ENTITY))
}

/// Free text: `term` (already lower-cased, [`AuditQuery::search_term`]) as a literal substring
/// of the row's `search_text`, which holds every searched field lower-cased
/// ([`AuditQuery::search_text`]). Both sides are lowered by the same Rust function, so the match
/// is the same on every backend and in `MemoryStore`, and needs no `LOWER` in SQL: a plain,
/// byte-wise `LIKE` on PostgreSQL and on MySQL's binary collation; on SQLite its `LIKE` also
/// folds ASCII, which changes nothing on lower-cased text.
fn free_text_condition(term: &str) -> Condition {
    Condition::all().add(
        Expr::col((Entity, Column::SearchText))
            .like(LikeExpr::new(contains_pattern(term)).escape(LIKE_ESCAPE)),
    )
}

/// The predicates of PostgreSQL's two free-text indexes, as the migration states them: a query
/// must repeat them word for word for PostgreSQL to use those indexes.
use crate::migration::m20261206_000009_search_text::{
    LONG_TEXT as PG_LONG_TEXT, SHORT_TEXT as PG_SHORT_TEXT,
};

/// Whether PostgreSQL and SQLite can search `query` in their free-text indexes alone: free text
/// within a tenant or team, with at most a time range, teams, the log's reads left out and a
/// cursor besides, since those indexes carry the columns these need and no others.
fn text_covered(query: &AuditQuery) -> bool {
    !matches!(query.scope, Scope::All)
        && query.trimmed_text().is_some()
        && query.entity_types.is_empty()
        && query.actions.is_empty()
        && query.actor_ids.is_empty()
        && query.actor_kinds.is_empty()
        && query.entity_ids.is_empty()
        && query.request_ids.is_empty()
        && query.trace_ids.is_empty()
        && query.outcomes.is_empty()
        && query.api_keys.is_empty()
}

/// Whether MySQL can search `query` through its free-text index
/// ([`m20261207_000011_mysql_search_index`](crate::migration::m20261207_000011_mysql_search_index)):
/// what [`text_covered`] allows, within one tenant and no team, since that index carries no
/// team.
fn mysql_text_covered(query: &AuditQuery) -> bool {
    matches!(query.scope, Scope::Tenant(_)) && query.teams.is_empty() && text_covered(query)
}

/// The two conditions of a MySQL search through its free-text index: rows whose
/// `search_text` the index holds whole (`search_short`), tested in the index alone, and the
/// others (`search_long = 1`), tested in their rows. The log's reads are left out by the
/// index's `log_read` flag in the first, as in any listing in the second. `None` when the query
/// holds no term.
fn mysql_text_conditions(query: &AuditQuery) -> Option<(Condition, Condition)> {
    let term = query.search_term()?;
    let mut base = query.clone();
    base.text = None;
    base.hide_log_reads = false;
    // No entity id filter here (`text_covered`), so no bulk changes to take.
    let mut base = filter_condition(&base, &[]);
    if let Some(cursor) = &query.cursor {
        base = base.add(after(cursor, query.order));
    }
    let column = |name: &str| Expr::col((Entity, Alias::new(name)));
    let mut short = base.clone().add(column("search_long").eq(0)).add(
        column("search_short").like(LikeExpr::new(contains_pattern(&term)).escape(LIKE_ESCAPE)),
    );
    let mut long = base
        .add(column("search_long").eq(1))
        .add(free_text_condition(&term));
    if query.hide_log_reads {
        short = short.add(column("log_read").eq(0));
        long = long.add(not_a_log_read());
    }
    Some((short, long))
}

/// The keyset condition "after `cursor`" in `order`.
fn after(cursor: &Cursor, order: Order) -> Condition {
    let at = cursor.occurred_at();
    let id = cursor.id();
    // Written as `t <= at AND (t < at OR id < last)` rather than a row comparison: every
    // backend turns the first term into an index range, and MySQL does not for row values.
    match order {
        Order::Desc => Condition::all().add(Column::OccurredAt.lte(at)).add(
            Condition::any()
                .add(Column::OccurredAt.lt(at))
                .add(Column::Id.lt(id)),
        ),
        Order::Asc => Condition::all().add(Column::OccurredAt.gte(at)).add(
            Condition::any()
                .add(Column::OccurredAt.gt(at))
                .add(Column::Id.gt(id)),
        ),
    }
}

/// The order of a query's pages, as SQL's.
fn direction(query: &AuditQuery) -> sea_orm::Order {
    match query.order {
        Order::Desc => sea_orm::Order::Desc,
        Order::Asc => sea_orm::Order::Asc,
    }
}

/// The ids of the first `rows` rows matching `branch` in `query`'s keyset order, as a derived
/// table named `name` (MySQL refuses a `LIMIT` directly inside `IN`).
fn first_ids(query: &AuditQuery, branch: Condition, rows: u64, name: &str) -> SelectStatement {
    Query::select()
        .column(Column::Id)
        .from_subquery(keyset_ids(query, branch, rows, None), Alias::new(name))
        .to_owned()
}

/// The ids of the first `rows` rows matching `branch` in `query`'s keyset order, through the
/// index `force` on MySQL when given.
fn keyset_ids(
    query: &AuditQuery,
    branch: Condition,
    rows: u64,
    force: Option<&'static str>,
) -> SelectStatement {
    use sea_orm::sea_query::extension::mysql::{
        IndexHintScope, IndexName, MySqlSelectStatementExt,
    };
    let mut select = Query::select();
    select.column((Entity, Column::Id)).from(Entity);
    if let Some(index) = force {
        select.force_index(IndexName::new(index), IndexHintScope::All);
    }
    select
        .cond_where(branch)
        .order_by((Entity, Column::OccurredAt), direction(query))
        .order_by((Entity, Column::Id), direction(query))
        .limit(rows)
        .to_owned()
}

/// On MySQL, the two statements that find the ids of a tenant's search page (each up to one
/// row more than the limit) through its free-text index: the short texts from the index
/// alone, the long ones through their rows. `None` when the query is not one that index
/// serves. Two statements, not one `UNION ALL`: MariaDB 10.11 re-executing a prepared union
/// of the two (SQLx keeps statements prepared) read every row of the tenant instead of the
/// index alone, 1.0–1.3 s instead of 15–35 ms at 1,000,000 entries; each on its own keeps
/// its plan.
fn mysql_page_ids(query: &AuditQuery) -> Option<[SelectStatement; 2]> {
    if !mysql_text_covered(query) {
        return None;
    }
    let (short, long) = mysql_text_conditions(query)?;
    let rows = u64::from(query.limit) + 1;
    // Forced: on a small table MariaDB would as soon read the tenant's time index and rows.
    let index = Some(crate::migration::m20261207_000011_mysql_search_index::INDEX);
    Some([
        keyset_ids(query, short, rows, index),
        keyset_ids(query, long, rows, index),
    ])
}

/// The `SELECT` of one page: filters, keyset, order, and one row more than the limit, which
/// tells whether another page exists without a COUNT. (A MySQL search that
/// [`mysql_page_ids`] serves is read by [`page_rows`] in two statements instead.)
fn page_select(query: &AuditQuery, backend: DbBackend, named: &[Uuid]) -> Select<Entity> {
    let mut cond = filter_condition(query, named);
    if let Some(cursor) = &query.cursor {
        cond = cond.add(after(cursor, query.order));
    }
    let rows = u64::from(query.limit) + 1;
    let covered = backend != DbBackend::MySql && text_covered(query);
    let cond = if covered && backend == DbBackend::Sqlite {
        // The page's ids, read in keyset order and cut at the page size; the outer query
        // then reads only those rows. The optional free-text index
        // (`sqlite_index_statement`) is partial on `search_text IS NOT NULL`, which SQLite does
        // not infer from the `LIKE`: stated, it makes that index cover this sub-select, and
        // SQLite prefers it to the tenant's covering index, which lacks the text. Without it,
        // the sub-select scans the tenant's covering index and reads each row.
        let mut ids = Query::select();
        ids.column((Entity, Column::Id))
            .from(Entity)
            .cond_where(cond.add(Column::SearchText.is_not_null()))
            .order_by((Entity, Column::OccurredAt), direction(query))
            .order_by((Entity, Column::Id), direction(query))
            .limit(rows);
        Condition::all().add(Column::Id.in_subquery(ids))
    } else if covered {
        // The page's ids from the two free-text indexes, each read in keyset order and cut at
        // the page size: the covering one without visiting the table, the other (rows with
        // long texts, rare) through it. The outer query then reads only those rows.
        let mut union = first_ids(
            query,
            cond.clone().add(Expr::cust(PG_SHORT_TEXT)),
            rows,
            "covered",
        );
        union.union(
            UnionType::All,
            first_ids(query, cond.add(Expr::cust(PG_LONG_TEXT)), rows, "long"),
        );
        Condition::all().add(Column::Id.in_subquery(union))
    } else {
        cond
    };
    Entity::find()
        .filter(cond)
        .order_by(Column::OccurredAt, direction(query))
        .order_by(Column::Id, direction(query))
        .limit(rows)
}

/// The ids `select` finds on MySQL, through a statement prepared for this execution alone.
/// MariaDB 10.11 re-executing a kept prepared statement whose index holds virtual columns,
/// after another statement on the same connection read the table's rows, read every row
/// instead of the index alone (1.0–2.0 s instead of 15–20 ms for a tenant's 20,000 entries);
/// a fresh statement keeps the index-only plan. SeaORM keeps every statement prepared, so
/// this one goes to SQLx directly.
async fn mysql_ids_unprepared(
    db: &DatabaseConnection,
    select: &SelectStatement,
) -> Result<Vec<Uuid>, StoreError> {
    use sea_query_sqlx::SqlxBinder;
    use sqlx::Row;
    let (sql, values) = select.build_sqlx(sea_orm::sea_query::MysqlQueryBuilder);
    let lift = |e: sqlx::Error| {
        store_error(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(
            std::sync::Arc::new(e),
        )))
    };
    // Made by the query builder, every value bound: nothing of the caller's is in the text.
    let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
        .persistent(false)
        .fetch_all(db.get_mysql_connection_pool())
        .await
        .map_err(lift)?;
    rows.iter()
        .map(|row| row.try_get::<Uuid, _>("id").map_err(lift))
        .collect()
}

/// The rows of one page (one more than the limit). A MySQL search that its free-text index
/// serves takes three statements: the page's ids from each branch, then their rows. With the
/// ids in an `IN` of a sub-select, MariaDB walked the whole log's time index and probed them
/// for each entry.
async fn page_rows(
    db: &DatabaseConnection,
    query: &AuditQuery,
) -> Result<Vec<crate::entity::Model>, StoreError> {
    let backend = db.get_database_backend();
    let Some(branches) = (backend == DbBackend::MySql)
        .then(|| mysql_page_ids(query))
        .flatten()
    else {
        let named = crate::refs::naming(db, query).await?;
        return page_select(query, backend, &named)
            .all(db)
            .await
            .map_err(store_error);
    };
    let mut ids = Vec::new();
    for branch in &branches {
        ids.extend(mysql_ids_unprepared(db, branch).await?);
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Entity::find()
        .filter(Column::Id.is_in(ids))
        .order_by(Column::OccurredAt, direction(query))
        .order_by(Column::Id, direction(query))
        .limit(u64::from(query.limit) + 1)
        .all(db)
        .await
        .map_err(store_error)
}

/// One page of an already validated query.
pub(crate) async fn fetch_page(
    db: &DatabaseConnection,
    query: &AuditQuery,
) -> Result<Page, StoreError> {
    let limit = u64::from(query.limit);
    let rows = page_rows(db, query).await?;
    let more = rows.len() as u64 > limit;
    let mut items = rows
        .into_iter()
        .take(query.limit as usize)
        .map(from_model)
        .collect::<Result<Vec<AuditEntry>, StoreError>>()?;
    items.shrink_to_fit();
    let next_cursor = match items.last() {
        Some(last) if more => Some(Cursor::after(query, last)),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// The entry `id` within `scope`.
pub(crate) async fn fetch_one(
    db: &DatabaseConnection,
    scope: &Scope,
    id: Uuid,
) -> Result<Option<AuditEntry>, StoreError> {
    let row = Entity::find()
        .filter(scope_condition(scope).add(Column::Id.eq(id)))
        .one(db)
        .await
        .map_err(store_error)?;
    row.map(from_model).transpose()
}

/// Every entry of an already validated query, read [`EXPORT_CHUNK`] rows at a time.
pub(crate) fn export_stream(
    db: DatabaseConnection,
    query: AuditQuery,
) -> BoxStream<'static, Result<AuditEntry, StoreError>> {
    export_stream_linked(db, query)
        .map_ok(|(entry, _)| entry)
        .boxed()
}

/// [`export_stream`] with each entry's link in its tenant's chain (`None`: stored before
/// chaining began).
pub(crate) fn export_stream_linked(
    db: DatabaseConnection,
    mut query: AuditQuery,
) -> BoxStream<'static, Result<(AuditEntry, Option<ChainLink>), StoreError>> {
    // The page size is not part of what a cursor checks, so each chunk can be larger than
    // the caller's page.
    query.limit = EXPORT_CHUNK;
    let chunks = stream::try_unfold(Some((db, query)), |state| async move {
        let Some((db, query)) = state else {
            return Ok::<_, StoreError>(None);
        };
        let limit = u64::from(query.limit);
        let rows = page_rows(&db, &query).await?;
        let more = rows.len() as u64 > limit;
        let items = rows
            .into_iter()
            .take(query.limit as usize)
            .map(|row| {
                let link = crate::chain::stored_link(&row)?;
                Ok((from_model(row)?, link))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = match items.last() {
            Some((last, _)) if more => {
                let mut next = query.clone();
                next.cursor = Some(Cursor::after(&query, last));
                Some((db, next))
            }
            _ => None,
        };
        Ok(Some((stream::iter(items.into_iter().map(Ok)), next)))
    });
    chunks.try_flatten().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(contains_pattern("abc"), "%abc%");
        assert_eq!(contains_pattern("100%"), "%100!%%");
        assert_eq!(contains_pattern("a_b"), "%a!_b%");
        assert_eq!(contains_pattern("wow!"), "%wow!!%");
        assert_eq!(contains_pattern("C:\\x"), "%C:\\x%");
        assert_eq!(contains_pattern("'; --"), "%'; --%");
    }

    /// The plan SQLite chooses for `query` on a fresh table: the migration's
    /// indexes must serve every listing without a temporary sort.
    async fn sqlite_plan(db: &DatabaseConnection, query: &AuditQuery) -> String {
        use sea_orm::{ConnectionTrait, QueryTrait, Statement};
        let statement = page_select(query, DbBackend::Sqlite, &[]).build(DbBackend::Sqlite);
        let explain = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {}", statement.sql),
            statement.values.map(|v| v.0).unwrap_or_default(),
        );
        let rows = db.query_all_raw(explain).await.unwrap();
        rows.iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn sqlite_serves_listings_from_the_indexes_without_sorting() {
        let store = crate::SeaOrmStore::connect("sqlite::memory:")
            .await
            .unwrap();
        let db = store.connection();
        let last = AuditEntry::builder(audit_core::Action::Create)
            .tenant("acme")
            .build();
        let tenant = || AuditQuery::new(Scope::tenant("acme"));
        // One covering index answers every filter of a tenant's log, in keyset order.
        let filtered = "INDEX audit_log_tenant_covering";
        for (query, index) in [
            (tenant(), filtered),
            (tenant().order(Order::Asc), filtered),
            (tenant().entity_type("ApiKey"), filtered),
            (tenant().action(audit_core::Action::Delete), filtered),
            (tenant().actor_id("u1"), filtered),
            (tenant().entity_id("42"), filtered),
            (
                AuditQuery::new(Scope::team("acme", "t1")).api_key("k1"),
                filtered,
            ),
            (AuditQuery::new(Scope::All), "audit_log_time"),
        ] {
            for query in [
                query.clone(),
                query.clone().cursor(Cursor::after(&query, &last)),
            ] {
                let plan = sqlite_plan(db, &query).await;
                assert!(plan.contains(index), "{query:?}: {plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{query:?} sorts: {plan}");
                assert!(!plan.starts_with("SCAN audit_log;"), "{query:?}: {plan}");
            }
        }
    }

    #[tokio::test]
    async fn sqlite_searches_a_tenant_from_its_free_text_index_when_it_is_there() {
        use sea_orm::ConnectionTrait;
        let store = crate::SeaOrmStore::connect("sqlite::memory:")
            .await
            .unwrap();
        let db = store.connection();
        // Without the optional index: the tenant's covering index, and a row per entry.
        let plan = sqlite_plan(db, &AuditQuery::new(Scope::tenant("acme")).text("x")).await;
        assert!(plan.contains("INDEX audit_log_tenant_covering"), "{plan}");
        db.execute_unprepared(
            crate::migration::m20261206_000009_search_text::sqlite_index_statement(),
        )
        .await
        .unwrap();
        let last = AuditEntry::builder(audit_core::Action::Create)
            .tenant("acme")
            .build();
        let tenant = || AuditQuery::new(Scope::tenant("acme")).text("x");
        for query in [
            tenant(),
            tenant().order(Order::Asc).hide_log_reads(true),
            AuditQuery::new(Scope::team("acme", "t1"))
                .text("x")
                .team("t1"),
        ] {
            for query in [
                query.clone(),
                query.clone().cursor(Cursor::after(&query, &last)),
            ] {
                // The page's ids in keyset order from the index alone; only the page's own
                // rows are then sorted.
                let plan = sqlite_plan(db, &query).await;
                assert!(
                    plan.contains("COVERING INDEX audit_log_tenant_search"),
                    "{query:?}: {plan}"
                );
                assert_eq!(plan.matches("TEMP B-TREE").count(), 1, "{query:?}: {plan}");
                assert!(plan.ends_with("USE TEMP B-TREE FOR ORDER BY"), "{plan}");
            }
        }
        // Free text with a filter the index lacks: the tenant's covering index, as without.
        let plan = sqlite_plan(db, &tenant().actor_id("u1")).await;
        assert!(plan.contains("INDEX audit_log_tenant_covering"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// On MySQL and MariaDB (when `AUDIT_TEST_MYSQL_URL` is set), a tenant's search reads its
    /// short texts from the free-text index alone and its long ones through that index.
    #[tokio::test]
    async fn mysql_searches_a_tenant_through_its_free_text_index() {
        use sea_orm::{ConnectionTrait, Statement};
        let Ok(url) = std::env::var("AUDIT_TEST_MYSQL_URL") else {
            eprintln!("AUDIT_TEST_MYSQL_URL is not set: skipped");
            return;
        };
        let store = crate::SeaOrmStore::connect(&url).await.unwrap();
        let db = store.connection();
        let tenant = format!("plan-{}", Uuid::now_v7());
        let entries: Vec<AuditEntry> = (0..300)
            .map(|i| {
                let mut builder = AuditEntry::builder(audit_core::Action::Update)
                    .tenant(&tenant)
                    .entity("Thing", format!("t{i}"))
                    .limits(audit_core::Limits {
                        details: 10_000,
                        ..Default::default()
                    });
                if i % 10 == 0 {
                    builder = builder.details("x".repeat(2100));
                }
                builder.build()
            })
            .collect();
        audit_core::AuditSink::record_batch(&store, entries.clone())
            .await
            .unwrap();
        db.execute_unprepared("ANALYZE TABLE audit_log")
            .await
            .unwrap();
        let last = &entries[150];
        let q = || AuditQuery::new(Scope::tenant(&tenant)).text("zz");
        for query in [
            q(),
            q().hide_log_reads(true),
            q().order(Order::Asc)
                .from(chrono::Utc::now() - chrono::Duration::days(1)),
            q().cursor(Cursor::after(&q(), last)),
        ] {
            let mut rows = Vec::new();
            for branch in mysql_page_ids(&query).unwrap() {
                let (sql, values) = branch.build(sea_orm::sea_query::MysqlQueryBuilder);
                let explain = Statement::from_sql_and_values(
                    DbBackend::MySql,
                    format!("EXPLAIN {sql}"),
                    values,
                );
                rows.extend(db.query_all_raw(explain).await.unwrap());
            }
            let plan: Vec<(String, Option<String>, String)> = rows
                .iter()
                .map(|row| {
                    (
                        row.try_get::<String>("", "table").unwrap_or_default(),
                        row.try_get::<Option<String>>("", "key").unwrap_or_default(),
                        row.try_get::<Option<String>>("", "Extra")
                            .unwrap_or_default()
                            .unwrap_or_default(),
                    )
                })
                .collect();
            // Both branches read the free-text index in keyset order, the short texts' alone.
            let index = crate::migration::m20261207_000011_mysql_search_index::INDEX;
            let search: Vec<&String> = plan
                .iter()
                .filter(|(_, key, _)| key.as_deref() == Some(index))
                .map(|(_, _, extra)| extra)
                .collect();
            assert_eq!(search.len(), 2, "{query:?}: {plan:?}");
            assert_eq!(
                search
                    .iter()
                    .filter(|extra| extra.contains("Using index"))
                    .count(),
                1,
                "{query:?}: {plan:?}"
            );
            assert!(
                plan.iter().all(|(_, _, extra)| !extra.contains("filesort")),
                "{query:?}: {plan:?}"
            );
        }
        // And it finds both kinds.
        let page =
            crate::read::fetch_page(db, &AuditQuery::new(Scope::tenant(&tenant)).text("xxxx"))
                .await
                .unwrap();
        assert_eq!(page.items.len(), 30);
    }

    #[test]
    fn free_text_is_bound_and_escaped_on_every_backend() {
        use sea_orm::QueryTrait;
        let query = AuditQuery::new(Scope::tenant("acme")).text(" 50%_OFF ");
        for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
            let statement = Entity::find()
                .filter(filter_condition(&query, &[]))
                .build(backend);
            let sql = statement.sql.clone();
            assert!(
                !sql.contains("50"),
                "{backend:?}: the text is not inlined: {sql}"
            );
            // One LIKE, on the derived column, with the pattern lowered before it is bound.
            assert_eq!(sql.matches("ESCAPE").count(), 1, "{sql}");
            let (_, condition) = sql.split_once(" WHERE ").unwrap();
            assert_eq!(condition.matches("search_text").count(), 1, "{sql}");
            assert!(!sql.contains("LOWER("), "{sql}");
            let values = statement.values.map(|v| v.0).unwrap_or_default();
            assert!(
                values.contains(&sea_orm::Value::from("%50!%!_off%".to_owned())),
                "{values:?}"
            );
        }
    }

    #[test]
    fn postgres_searches_a_tenant_through_the_free_text_indexes() {
        use sea_orm::QueryTrait;
        let sql = |query: AuditQuery| {
            page_select(&query, DbBackend::Postgres, &[])
                .build(DbBackend::Postgres)
                .sql
        };
        let tenant = || AuditQuery::new(Scope::tenant("acme")).text("x");
        let cursor = Cursor::after(&tenant(), &AuditEntry::new(audit_core::Action::Create));
        for query in [
            tenant(),
            tenant()
                .order(Order::Asc)
                .from(chrono::Utc::now())
                .cursor(cursor),
            AuditQuery::new(Scope::team("acme", "ops")).text("x"),
        ] {
            let sql = sql(query);
            assert!(sql.contains(&format!("AND ({PG_SHORT_TEXT})")), "{sql}");
            assert!(sql.contains(&format!("AND ({PG_LONG_TEXT})")), "{sql}");
            assert!(sql.contains("UNION ALL"), "{sql}");
            assert_eq!(sql.matches("LIKE $").count(), 2, "{sql}");
        }
        // Other filters, no text or no tenant: one plain query.
        for query in [
            tenant().action(audit_core::Action::Delete),
            tenant().api_key("k"),
            AuditQuery::new(Scope::tenant("acme")),
            AuditQuery::new(Scope::All).text("x"),
        ] {
            let sql = sql(query);
            assert!(!sql.contains("octet_length"), "{sql}");
        }
        for backend in [DbBackend::Sqlite, DbBackend::MySql] {
            let sql = page_select(&tenant(), backend, &[]).build(backend).sql;
            assert!(!sql.contains("octet_length"), "{sql}");
        }
    }
}
