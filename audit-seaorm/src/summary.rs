//! Grouped questions as grouped SQL: a summary is one `GROUP BY day, key`, an actor list one
//! `GROUP BY actor_id` and a point look-up of each listed actor's latest entry (for its name
//! and kind), facets one `GROUP BY` per list and, for the API keys, a point look-up of each
//! key's latest entry (for its name). The filters are the listing's ([`read::filter_condition`]), so the
//! scope is applied inside every statement, and the semantics are `audit_core`'s reference
//! `tally` functions, which the store suite holds every backend to.
//!
//! `occurred_at` is a `timestamptz` on PostgreSQL, a `DATETIME(6)` holding UTC on MySQL and
//! MariaDB, and RFC 3339 text with a `+00:00` offset on SQLite (how SQLx writes a UTC time),
//! so the UTC day is `to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
//! `DATE_FORMAT(occurred_at, '%Y-%m-%d')` and its first ten characters. Ties in an order
//! compare bytewise, as the reference does: the binary collation on MySQL and SQLite,
//! `COLLATE "C"` on PostgreSQL.

use std::collections::HashMap;
use std::str::FromStr;

use audit_core::store::{
    ActorSeen, ApiKeyFacet, AuditQuery, DayCount, Facets, StoreError, Summary, SummaryBy,
    most_frequent, sort_actors,
};
use audit_core::{Action, ActorKind};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, Func, LikeExpr, Query, SelectStatement, UnionType,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, QueryResult,
};

use crate::entity::{Column, Entity};
use crate::error::store_error;
use crate::read::{contains_pattern, filter_condition};

/// The escape character of [`contains_pattern`]'s patterns.
const LIKE_ESCAPE: char = '!';

/// The UTC day of `occurred_at`, as `YYYY-MM-DD` text.
fn day_expr(backend: DbBackend) -> Expr {
    Expr::cust(match backend {
        DbBackend::Postgres => "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        DbBackend::MySql => "DATE_FORMAT(occurred_at, '%Y-%m-%d')",
        _ => "substr(occurred_at, 1, 10)",
    })
}

/// `column` for an `ORDER BY` or `MAX` that must compare bytewise.
fn bytewise(column: Column, backend: DbBackend) -> Expr {
    let name = match column {
        Column::ActorId => "actor_id",
        Column::EntityType => "entity_type",
        Column::Action => "action",
        Column::TeamId => "team_id",
        Column::ApiKeyId => "api_key_id",
        _ => "api_key_name",
    };
    if backend == DbBackend::Postgres {
        Expr::cust(format!("{name} COLLATE \"C\""))
    } else {
        Expr::col(column)
    }
}

fn corrupt(what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        id: what.to_owned(),
        message: message.to_string(),
    }
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, StoreError> {
    row.try_get::<T>("", column)
        .map_err(|e| corrupt(column, format!("unreadable grouped column: {e}")))
}

fn count(row: &QueryResult) -> Result<u64, StoreError> {
    let n: i64 = get(row, "n")?;
    u64::try_from(n).map_err(|_| corrupt("n", format!("a negative count {n}")))
}

/// The statement of a summary: `(day, k, n)` rows.
fn summary_select(
    query: &AuditQuery,
    by: SummaryBy,
    backend: DbBackend,
    named: &[uuid::Uuid],
) -> SelectStatement {
    let key = match by {
        SummaryBy::Action => Column::Action,
        SummaryBy::Actor => Column::ActorId,
        SummaryBy::EntityType => Column::EntityType,
    };
    Query::select()
        .expr_as(day_expr(backend), Alias::new("day"))
        .expr_as(Expr::col(key), Alias::new("k"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Entity)
        .cond_where(filter_condition(query, named))
        .add_group_by([Expr::cust("1"), Expr::cust("2")])
        .to_owned()
}

/// Entries per UTC day and key of an already validated query.
pub(crate) async fn summary(
    db: &DatabaseConnection,
    query: &AuditQuery,
    by: SummaryBy,
) -> Result<Summary, StoreError> {
    let named = crate::refs::naming(db, query).await?;
    let select = summary_select(query, by, db.get_database_backend(), &named);
    let rows = db.query_all(&select).await.map_err(store_error)?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in &rows {
        let day: String = get(row, "day")?;
        counts.push(DayCount {
            day: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|e| corrupt("day", format!("{day:?}: {e}")))?,
            key: get(row, "k")?,
            count: count(row)?,
        });
    }
    Ok(Summary::new(by, counts))
}

/// `text` as a literal, case-insensitive substring of the actor id or name.
fn actor_text_condition(text: &str, backend: DbBackend) -> Condition {
    let pattern = contains_pattern(&text.to_lowercase());
    let mut any = Condition::any();
    for column in [Column::ActorId, Column::ActorName] {
        let like = LikeExpr::new(pattern.clone()).escape(LIKE_ESCAPE);
        any = any.add(match backend {
            // SQLite's LIKE ignores ASCII case already, as its LOWER folds only ASCII.
            DbBackend::Sqlite => Expr::col((Entity, column)).like(like),
            _ => Expr::expr(Func::lower(Expr::col((Entity, column)))).like(like),
        });
    }
    any
}

/// The condition of an actor list: the query's filters, an actor, and the text.
fn actors_condition(
    query: &AuditQuery,
    text: Option<&str>,
    backend: DbBackend,
    named: &[uuid::Uuid],
) -> Condition {
    let mut cond = filter_condition(query, named).add(Column::ActorId.is_not_null());
    if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
        cond = cond.add(actor_text_condition(text, backend));
    }
    cond
}

/// The statement of an actor list: `(actor_id, n, last_seen)` rows, most recent first.
fn actors_select(cond: Condition, backend: DbBackend, limit: u32) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col(Column::ActorId), Alias::new("actor_id"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .expr_as(Expr::cust("MAX(occurred_at)"), Alias::new("last_seen"))
        .from(Entity)
        .cond_where(cond)
        .group_by_col(Column::ActorId)
        .order_by_expr(Expr::cust("MAX(occurred_at)"), sea_orm::Order::Desc)
        .order_by_expr(bytewise(Column::ActorId, backend), sea_orm::Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// The actors of an already validated query (and checked text and limit).
pub(crate) async fn actors(
    db: &DatabaseConnection,
    query: &AuditQuery,
    text: Option<&str>,
    limit: u32,
) -> Result<Vec<ActorSeen>, StoreError> {
    let backend = db.get_database_backend();
    let named = crate::refs::naming(db, query).await?;
    let cond = actors_condition(query, text, backend, &named);
    let select = actors_select(cond.clone(), backend, limit);
    let rows = db.query_all(&select).await.map_err(store_error)?;
    let mut groups: Vec<(String, u64, DateTime<Utc>)> = Vec::with_capacity(rows.len());
    for row in &rows {
        groups.push((get(row, "actor_id")?, count(row)?, last_seen(row, backend)?));
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<(String, DateTime<Utc>)> = groups
        .iter()
        .map(|(actor_id, _, at)| (actor_id.clone(), *at))
        .collect();
    let names = latest_rows(db, &cond, Column::ActorId, Column::ActorName, &pairs).await?;
    let mut actors = Vec::with_capacity(groups.len());
    for (actor_id, count, last_seen) in groups {
        let (actor_name, kind) = match names.get(actor_id.as_str()) {
            Some(latest) => (
                latest.name.clone(),
                ActorKind::from_str(&latest.kind).map_err(|e| corrupt("actor_kind", e))?,
            ),
            None => return Err(corrupt(&actor_id, "the actor's latest entry vanished")),
        };
        actors.push(ActorSeen {
            actor_id,
            actor_name,
            actor_kind: kind,
            count,
            last_seen,
        });
    }
    sort_actors(&mut actors);
    Ok(actors)
}

/// What the latest entry of an actor or API key says.
struct Latest {
    id: uuid::Uuid,
    name: Option<String>,
    kind: String,
}

/// How many point look-ups one statement of [`latest_rows`] holds.
const LOOKUPS_PER_STATEMENT: usize = 50;

/// The latest entry matching `cond` of each `(value of key, instant)` pair, by key value: one
/// `UNION ALL` of point look-ups (`key = ? AND occurred_at = ?`, with the actor's bucket for
/// an actor), each of which an index answers with a seek (SQLite's covering tenant index,
/// PostgreSQL's and MySQL's tenant-time or actor-bucket ones). One `OR` of the pairs instead
/// was answered by reading every entry of the tenant (see `docs/decisions`). Of several
/// entries at the same instant, the greatest id is the latest, as in the reference.
async fn latest_rows(
    db: &DatabaseConnection,
    cond: &Condition,
    key: Column,
    name: Column,
    pairs: &[(String, DateTime<Utc>)],
) -> Result<HashMap<String, Latest>, StoreError> {
    let mut latest: HashMap<String, Latest> = HashMap::new();
    for chunk in pairs.chunks(LOOKUPS_PER_STATEMENT) {
        let mut branches = chunk.iter().map(|(value, at)| {
            let mut point = cond
                .clone()
                .add(key.eq(value.as_str()))
                .add(Column::OccurredAt.eq(*at));
            if matches!(key, Column::ActorId) {
                point = point.add(Column::ActorBucket.eq(crate::entity::bucket(value)));
            }
            Query::select()
                .expr_as(Expr::col(key), Alias::new("k"))
                .expr_as(Expr::col(name), Alias::new("name"))
                .expr_as(Expr::col(Column::ActorKind), Alias::new("kind"))
                .expr_as(Expr::col(Column::Id), Alias::new("id"))
                .from(Entity)
                .cond_where(point)
                .to_owned()
        });
        let Some(mut union) = branches.next() else {
            continue;
        };
        for branch in branches {
            union.union(UnionType::All, branch);
        }
        for row in db.query_all(&union).await.map_err(store_error)? {
            let value: String = get(&row, "k")?;
            let found = Latest {
                id: get(&row, "id")?,
                name: get(&row, "name")?,
                kind: get(&row, "kind")?,
            };
            if latest.get(&value).is_none_or(|known| found.id > known.id) {
                latest.insert(value, found);
            }
        }
    }
    Ok(latest)
}

/// `MAX(occurred_at)` as an instant: SQLite gives the stored text back.
fn last_seen(row: &QueryResult, backend: DbBackend) -> Result<DateTime<Utc>, StoreError> {
    if backend == DbBackend::Sqlite {
        let text: String = get(row, "last_seen")?;
        return DateTime::parse_from_rfc3339(&text)
            .or_else(|_| DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%:z"))
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| corrupt("last_seen", format!("{text:?}: {e}")));
    }
    get(row, "last_seen")
}

/// The facets' one statement: `(t, a, m, k, n, last_seen)` rows, the entries and latest
/// instant of each combination of entity type, action, team and API key present. The lists
/// are summed from those rows, so the tenant's entries are read once rather than once per
/// list (on MySQL, where a tenant's grouped questions read its rows, four reads took 6.4 s at
/// 1,000,000 entries).
fn facets_select(query: &AuditQuery, named: &[uuid::Uuid]) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col(Column::EntityType), Alias::new("t"))
        .expr_as(Expr::col(Column::Action), Alias::new("a"))
        .expr_as(Expr::col(Column::TeamId), Alias::new("m"))
        .expr_as(Expr::col(Column::ApiKeyId), Alias::new("k"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .expr_as(Expr::cust("MAX(occurred_at)"), Alias::new("last_seen"))
        .from(Entity)
        .cond_where(filter_condition(query, named))
        .add_group_by([
            Expr::cust("1"),
            Expr::cust("2"),
            Expr::cust("3"),
            Expr::cust("4"),
        ])
        .to_owned()
}

/// The facets of an already validated query (and checked limit).
pub(crate) async fn facets(
    db: &DatabaseConnection,
    query: &AuditQuery,
    limit: u32,
) -> Result<Facets, StoreError> {
    let backend = db.get_database_backend();
    let named = crate::refs::naming(db, query).await?;
    let rows = db
        .query_all(&facets_select(query, &named))
        .await
        .map_err(store_error)?;
    let mut entity_types: HashMap<String, u64> = HashMap::new();
    let mut actions: HashMap<String, u64> = HashMap::new();
    let mut teams: HashMap<String, u64> = HashMap::new();
    let mut keys: HashMap<String, (u64, DateTime<Utc>)> = HashMap::new();
    for row in &rows {
        let n = count(row)?;
        if let Some(t) = get::<Option<String>>(row, "t")? {
            *entity_types.entry(t).or_default() += n;
        }
        *actions.entry(get::<String>(row, "a")?).or_default() += n;
        if let Some(m) = get::<Option<String>>(row, "m")? {
            *teams.entry(m).or_default() += n;
        }
        if let Some(k) = get::<Option<String>>(row, "k")? {
            let at = last_seen(row, backend)?;
            let (total, latest) = keys.entry(k).or_insert((0, at));
            *total += n;
            *latest = Ord::max(*latest, at);
        }
    }
    let listed = most_frequent(
        keys.iter().map(|(k, (n, _))| (k.clone(), *n)).collect(),
        limit,
    );
    let pairs: Vec<(String, DateTime<Utc>)> = listed
        .into_iter()
        .filter_map(|k| keys.get(&k).map(|(_, at)| (k, *at)))
        .collect();
    let names = latest_rows(
        db,
        &filter_condition(query, &named),
        Column::ApiKeyId,
        Column::ApiKeyName,
        &pairs,
    )
    .await?;
    let api_keys: Vec<ApiKeyFacet> = pairs
        .into_iter()
        .map(|(id, _)| ApiKeyFacet {
            name: names.get(&id).and_then(|latest| latest.name.clone()),
            id,
        })
        .collect();
    let list = |counts: HashMap<String, u64>| most_frequent(counts.into_iter().collect(), limit);
    Ok(Facets {
        entity_types: list(entity_types),
        actions: list(actions)
            .into_iter()
            .map(|a| Action::from_str(&a).unwrap_or(Action::Custom(a)))
            .collect(),
        teams: list(teams),
        api_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_is_the_patterns() {
        assert_eq!(
            contains_pattern("!"),
            format!("%{LIKE_ESCAPE}{LIKE_ESCAPE}%")
        );
    }

    /// Every grouped statement on a tenant searches the tenant's entries in an index, never
    /// the whole table; those that need no name (which the covering tenant index does not
    /// hold) read that index alone: the summary a time range of it, actors and facets the
    /// tenant's slice.
    #[tokio::test]
    async fn sqlite_groups_a_tenant_from_its_covering_index() {
        use audit_core::store::Scope;
        use sea_orm::Statement;
        let store = crate::SeaOrmStore::connect("sqlite::memory:")
            .await
            .expect("connect");
        let db = store.connection();
        let plan = |select: SelectStatement| async move {
            let (sql, values) = select.build(sea_orm::sea_query::SqliteQueryBuilder);
            let explain = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {sql}"),
                values,
            );
            let rows = db.query_all_raw(explain).await.expect("explain");
            rows.iter()
                .map(|row| row.try_get::<String>("", "detail").expect("detail"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let at = chrono::Utc::now();
        let month = AuditQuery::new(Scope::tenant("acme"))
            .hide_log_reads(true)
            .from(at - chrono::Duration::days(30))
            .to(at);
        let tenant = AuditQuery::new(Scope::tenant("acme")).hide_log_reads(true);
        // (plan, whether the index alone answers: names are not in it)
        let mut plans = Vec::new();
        for by in SummaryBy::ALL {
            plans.push((
                plan(summary_select(&month, by, DbBackend::Sqlite, &[])).await,
                true,
            ));
        }
        for (text, alone) in [(None, true), (Some("ada"), false)] {
            let cond = actors_condition(&tenant, text, DbBackend::Sqlite, &[]);
            plans.push((
                plan(actors_select(cond, DbBackend::Sqlite, 20)).await,
                alone,
            ));
        }
        plans.push((plan(facets_select(&tenant, &[])).await, true));
        for (plan, alone) in plans {
            // Never a scan of the table: a search of the tenant's entries in an index.
            assert!(plan.starts_with("SEARCH audit_log USING"), "{plan}");
            assert!(plan.contains("(tenant_id=?"), "{plan}");
            assert_eq!(
                plan.contains("COVERING INDEX audit_log_tenant_covering"),
                alone,
                "{plan}"
            );
        }
    }

    #[test]
    fn every_backend_groups_by_the_utc_day() {
        use sea_orm::sea_query::{MysqlQueryBuilder, PostgresQueryBuilder, SqliteQueryBuilder};
        let select = |backend| {
            Query::select()
                .expr(day_expr(backend))
                .from(Entity)
                .to_owned()
        };
        assert!(
            select(DbBackend::Postgres)
                .to_string(PostgresQueryBuilder)
                .contains("AT TIME ZONE 'UTC'")
        );
        assert!(
            select(DbBackend::MySql)
                .to_string(MysqlQueryBuilder)
                .contains("DATE_FORMAT")
        );
        assert!(
            select(DbBackend::Sqlite)
                .to_string(SqliteQueryBuilder)
                .contains("substr(occurred_at, 1, 10)")
        );
    }
}
