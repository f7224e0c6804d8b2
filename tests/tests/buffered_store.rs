//! Buffered delivery into a real database, on every backend: concurrent requests over TCP are
//! answered without waiting for the database, and after `flush` every one of them is stored
//! exactly once, attributed and addressed as in the synchronous mode.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::time::Duration;

use audit_core::{Action, Actor, ActorKind, TenantRef};

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_seaorm::SeaOrmStore;
use audit_tests::{Backend, fresh_db, serve};
use audit_tower::{AuditContext, AuditLayer, Buffered};
use axum::Router;
use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use reqwest::StatusCode;

async fn signed_in(mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(Actor::user("u-7", "ops@acme.example"));
    req.extensions_mut().insert(TenantRef::new("acme"));
    next.run(req).await
}

async fn reset(audit: AuditContext, Path(id): Path<String>) -> StatusCode {
    audit.entity_name(format!("cursor {id}"));
    StatusCode::NO_CONTENT
}

async fn concurrent_requests_are_all_stored_once(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let store = SeaOrmStore::connect(&db.url).await.unwrap();
    let audit = AuditLayer::new(store.clone()).buffered(
        Buffered::new(1_000)
            .max_batch(64)
            .linger(Duration::from_millis(5)),
    );
    let app = Router::new()
        .route("/extraction-cursors/{id}/reset", post(reset))
        .layer(audit.clone())
        .layer(middleware::from_fn(signed_in));
    let (addr, server) = serve(app).await;

    let client = reqwest::Client::new();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        requests.spawn(async move {
            client
                .post(format!("http://{addr}/extraction-cursors/c-{i}/reset"))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::NO_CONTENT);
    }
    tokio::time::timeout(Duration::from_secs(30), audit.flush())
        .await
        .unwrap();
    server.abort();

    let page = store
        .query(&AuditQuery::new(Scope::tenant("acme")).limit(1000))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 200);
    let ids: HashSet<_> = page.items.iter().map(|e| e.entity_id.clone()).collect();
    assert_eq!(ids.len(), 200, "every request is stored once");
    for entry in &page.items {
        let id = entry.entity_id.as_deref().unwrap();
        assert_eq!(entry.action, Action::Reset);
        assert_eq!(entry.entity_type.as_deref(), Some("ExtractionCursor"));
        assert_eq!(entry.entity_name.as_deref(), Some(&*format!("cursor {id}")));
        assert_eq!(entry.actor_kind, ActorKind::User);
        assert_eq!(entry.actor_name.as_deref(), Some("ops@acme.example"));
        assert_eq!(entry.status, Some(204));
        assert_eq!(entry.ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            entry.route.as_deref(),
            Some("/extraction-cursors/{id}/reset")
        );
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_all_stored_once() {
        super::concurrent_requests_are_all_stored_once(super::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_all_stored_once() {
        super::concurrent_requests_are_all_stored_once(super::Backend::Postgres).await;
    }
}

mod mysql {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_all_stored_once() {
        super::concurrent_requests_are_all_stored_once(super::Backend::Mysql).await;
    }
}
