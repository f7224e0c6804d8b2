//! Transactional recording through the layer, on every backend: a handler changes a row and
//! records its audit entry in the same SeaORM transaction, by hand or in the transaction
//! `TransactionLayer` opens for the request; both commit or neither does, and the layer never
//! writes the entry a second time.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;

use audit_core::{Action, Actor, Outcome, TenantRef};

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_seaorm::sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait,
};
use audit_seaorm::{SeaOrmStore, SeaOrmTransactions};
use audit_tests::{Backend, TestDb, fresh_db};
use audit_tower::{AuditContext, AuditLayer, Transaction, TransactionLayer};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::put;
use tower::ServiceExt;

async fn tenant_acme(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(TenantRef::new("acme"));
    next.run(req).await
}

/// Renames a widget and records the change in one transaction; `x-fail: after-audit` makes the
/// handler fail after both writes, so the transaction rolls back.
async fn rename(
    State(db): State<DatabaseConnection>,
    audit: AuditContext,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> StatusCode {
    let backend = db.get_database_backend();
    let txn = db.begin().await.unwrap();
    let sql = Statement::from_sql_and_values(
        backend,
        rename_sql(backend),
        [format!("renamed-{id}").into(), id.into()],
    );
    txn.execute_raw(sql).await.unwrap();
    audit.entity_name(format!("widget {id}"));
    audit
        .record_with(audit_seaorm::record_in(&txn))
        .await
        .unwrap();
    if headers.contains_key("x-fail") {
        txn.rollback().await.unwrap();
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    txn.commit().await.unwrap();
    StatusCode::OK
}

fn rename_sql(backend: audit_seaorm::sea_orm::DbBackend) -> &'static str {
    match backend {
        audit_seaorm::sea_orm::DbBackend::Postgres => "UPDATE widgets SET name = $1 WHERE id = $2",
        _ => "UPDATE widgets SET name = ? WHERE id = ?",
    }
}

/// A fresh database on `backend` with the audit store and a `widgets` table of two rows.
async fn widgets(backend: Backend) -> Option<(TestDb, SeaOrmStore, DatabaseConnection)> {
    let db = fresh_db(backend).await?;
    let store = SeaOrmStore::connect(&db.url).await.unwrap();
    let conn = store.connection().clone();
    conn.execute_unprepared(
        "CREATE TABLE widgets (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL)",
    )
    .await
    .unwrap();
    conn.execute_unprepared("INSERT INTO widgets (id, name) VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    Some((db, store, conn))
}

async fn change_and_entry_commit_or_roll_back_together(backend: Backend) {
    let Some((_db, store, conn)) = widgets(backend).await else {
        return;
    };
    let app = Router::new()
        .route("/widgets/{id}", put(rename))
        .layer(AuditLayer::new(store.clone()))
        .layer(middleware::from_fn(tenant_acme))
        .with_state(conn.clone());
    let call = |id: i64, fail: bool| {
        let mut req = Request::builder()
            .method("PUT")
            .uri(format!("/widgets/{id}"));
        if fail {
            req = req.header("x-fail", "after-audit");
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 4], 5000))));
        app.clone().oneshot(req)
    };

    assert_eq!(call(1, false).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        call(2, true).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let names: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT name FROM widgets ORDER BY id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect();
    assert_eq!(
        names,
        ["renamed-1", "two"],
        "the failed request's change was rolled back"
    );
    let entries = store
        .query(&AuditQuery::new(Scope::tenant("acme")))
        .await
        .unwrap()
        .items;
    assert_eq!(
        entries.len(),
        1,
        "one entry for the committed change, none for the rolled-back one: {entries:#?}"
    );
    let e = &entries[0];
    assert_eq!(
        (
            e.action.clone(),
            e.entity_type.as_deref(),
            e.entity_id.as_deref()
        ),
        (Action::Update, Some("Widget"), Some("1"))
    );
    assert_eq!(e.entity_name.as_deref(), Some("widget 1"));
    assert_eq!(e.ip, Some("192.0.2.4".parse().unwrap()));
    assert_eq!(e.route.as_deref(), Some("/widgets/{id}"));
}

/// Authentication inside the audit layer: the caller is named in the request extensions only
/// after the layer has run.
async fn inner_auth(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(TenantRef::new("acme"));
    req.extensions_mut()
        .insert(Actor::user("u-inner", "Inner User"));
    next.run(req).await
}

/// Renames a widget in a transaction that the first attempt rolls back (as after a
/// serialization failure) and the second commits; both record the entry in their transaction.
async fn rename_with_retry(
    State(db): State<DatabaseConnection>,
    audit: AuditContext,
    Path(id): Path<i64>,
) -> StatusCode {
    let backend = db.get_database_backend();
    for attempt in 1..=2 {
        let txn = db.begin().await.unwrap();
        let sql = Statement::from_sql_and_values(
            backend,
            rename_sql(backend),
            [format!("retried-{id}").into(), id.into()],
        );
        txn.execute_raw(sql).await.unwrap();
        audit.entity_name(format!("widget {id}, attempt {attempt}"));
        audit
            .record_with(audit_seaorm::record_in(&txn))
            .await
            .unwrap();
        if attempt == 1 {
            txn.rollback().await.unwrap();
        } else {
            txn.commit().await.unwrap();
        }
    }
    StatusCode::OK
}

async fn a_retried_transaction_commits_its_entry_with_the_inner_caller(backend: Backend) {
    let Some((_db, store, conn)) = widgets(backend).await else {
        return;
    };
    let app = Router::new()
        .route("/widgets/{id}", put(rename_with_retry))
        .route_layer(middleware::from_fn(inner_auth))
        .layer(AuditLayer::new(store.clone()))
        .with_state(conn.clone());
    let mut req = Request::builder()
        .method("PUT")
        .uri("/widgets/1")
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 4], 5000))));
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);

    let name = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT name FROM widgets WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(name, "retried-1");
    let entries = store
        .query(&AuditQuery::new(Scope::tenant("acme")))
        .await
        .unwrap()
        .items;
    assert_eq!(
        entries.len(),
        1,
        "the committed change has its entry, in the caller's tenant: {entries:#?}"
    );
    let e = &entries[0];
    assert_eq!(e.actor_id.as_deref(), Some("u-inner"));
    assert_eq!(e.entity_name.as_deref(), Some("widget 1, attempt 2"));
    assert_eq!(e.entity_id.as_deref(), Some("1"));
}

/// Renames a widget through the transaction `TransactionLayer` opened for the request;
/// `x-fail` answers 500 after the change, so the layer rolls it back.
async fn rename_in_request_transaction(
    txn: Transaction<DatabaseTransaction>,
    audit: AuditContext,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> StatusCode {
    let backend = txn.get_database_backend();
    let sql = Statement::from_sql_and_values(
        backend,
        rename_sql(backend),
        [format!("layer-{id}").into(), id.into()],
    );
    txn.execute_raw(sql).await.unwrap();
    audit.entity_name(format!("widget {id}"));
    if headers.contains_key("x-fail") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn the_request_transaction_commits_the_change_with_its_entry(backend: Backend) {
    let Some((_db, store, conn)) = widgets(backend).await else {
        return;
    };
    let app = Router::new()
        .route("/widgets/{id}", put(rename_in_request_transaction))
        .layer(TransactionLayer::new(SeaOrmTransactions::new(conn.clone())))
        .layer(AuditLayer::new(store.clone()))
        .layer(middleware::from_fn(tenant_acme));
    let call = |id: i64, fail: bool| {
        let mut req = Request::builder()
            .method("PUT")
            .uri(format!("/widgets/{id}"));
        if fail {
            req = req.header("x-fail", "1");
        }
        app.clone()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
    };
    assert_eq!(call(1, false).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        call(2, true).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let names: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT name FROM widgets ORDER BY id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect();
    assert_eq!(
        names,
        ["layer-1", "two"],
        "the failed request was rolled back"
    );
    let mut entries = store
        .query(&AuditQuery::new(Scope::tenant("acme")))
        .await
        .unwrap()
        .items;
    entries.sort_by_key(|e| e.entity_id.clone());
    assert_eq!(entries.len(), 2, "{entries:#?}");
    // The committed change's entry, written in its transaction with the response's status.
    assert_eq!(entries[0].entity_id.as_deref(), Some("1"));
    assert_eq!(entries[0].status, Some(200));
    assert_eq!(entries[0].outcome, Outcome::Success);
    assert_eq!(entries[0].entity_name.as_deref(), Some("widget 1"));
    // The rolled-back attempt, recorded by the audit layer as a failure.
    assert_eq!(entries[1].entity_id.as_deref(), Some("2"));
    assert_eq!(entries[1].status, Some(500));
    assert_eq!(entries[1].outcome, Outcome::Failure);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_request_transaction_commits_the_change_with_its_entry() {
        super::the_request_transaction_commits_the_change_with_its_entry(super::Backend::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn change_and_entry_commit_or_roll_back_together() {
        super::change_and_entry_commit_or_roll_back_together(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_transaction_commits_its_entry_with_the_inner_caller() {
        super::a_retried_transaction_commits_its_entry_with_the_inner_caller(
            super::Backend::Sqlite,
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_request_transaction_commits_the_change_with_its_entry() {
        super::the_request_transaction_commits_the_change_with_its_entry(super::Backend::Postgres)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn change_and_entry_commit_or_roll_back_together() {
        super::change_and_entry_commit_or_roll_back_together(super::Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_transaction_commits_its_entry_with_the_inner_caller() {
        super::a_retried_transaction_commits_its_entry_with_the_inner_caller(
            super::Backend::Postgres,
        )
        .await;
    }
}

mod mysql {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_request_transaction_commits_the_change_with_its_entry() {
        super::the_request_transaction_commits_the_change_with_its_entry(super::Backend::Mysql)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn change_and_entry_commit_or_roll_back_together() {
        super::change_and_entry_commit_or_roll_back_together(super::Backend::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retried_transaction_commits_its_entry_with_the_inner_caller() {
        super::a_retried_transaction_commits_its_entry_with_the_inner_caller(super::Backend::Mysql)
            .await;
    }
}
