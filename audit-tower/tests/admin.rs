//! The admin router over HTTP: every parameter, the guard's four answers, tenant and team
//! isolation on every endpoint, 400s for bad input, exports equal to the list, CSV formula
//! neutralisation, the OpenAPI document, and the recording of reads and exports, against a
//! `MemoryStore` (the SQL stores answer the same queries: the store suite holds them to it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use audit_core::store::{AuditQuery, Order, Scope};
use audit_core::store::{AuditStore, Page, StoreError};
use audit_core::{
    Action, Actor, ActorKind, ApiKeyRef, AuditEntry, AuditSink, Change, MemoryStore, Outcome,
    SinkError, TenantRef,
};
use audit_tower::admin::{self, Access, NO_GUARD_MESSAGE};
use audit_tower::{AuditLayer, Buffered};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::request::Parts;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const PEER: ([u8; 4], u16) = ([203, 0, 113, 7], 40000);

/// A test guard driven by a header. Only for tests: a real guard must never trust a header the
/// client can set.
fn header_guard(parts: &Parts) -> Access {
    let access = parts
        .headers
        .get("x-test-access")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fields: Vec<&str> = access.split(':').collect();
    match fields.as_slice() {
        ["all"] => Access::All,
        ["tenant", tenant] => Access::tenant(*tenant),
        ["team", tenant, team] => Access::team(*tenant, *team),
        _ => Access::denied("the audit log is for administrators"),
    }
}

struct Fixture {
    store: MemoryStore,
    app: Router,
    seeded: Vec<AuditEntry>,
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
}

/// The entity types of the seeded entries.
const TYPES: [&str; 5] = [
    "ConnectionProfile",
    "ApiKey",
    "MappingConfig",
    "Tenant",
    "ExtractionCursor",
];

/// 60 entries over two tenants and two teams, with every filterable field varied on its own
/// period, so filters combine into non-trivial subsets.
fn seed_entries() -> Vec<AuditEntry> {
    let actions = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Revoke,
        Action::Login,
        Action::Custom("Approve".into()),
    ];
    let types = TYPES;
    (0..60)
        .map(|i: i64| {
            let n = usize::try_from(i).unwrap();
            let mut b = AuditEntry::builder(actions[n % 6].clone())
                .tenant(if n % 4 == 3 { "globex" } else { "acme" })
                .entity(types[n % 5], format!("{}", n % 10))
                .entity_name(if n == 7 {
                    "Salesforce Prod".to_owned()
                } else {
                    format!("Object {n}")
                })
                .details(format!("details of change {n}"))
                .occurred_at(base_time() + Duration::minutes(i))
                .outcome(match n % 8 {
                    0 => Outcome::Denied,
                    1 => Outcome::Failure,
                    _ => Outcome::Success,
                })
                .ip(format!("10.0.0.{}", n % 5).parse().unwrap());
            b = match n % 3 {
                0 => b.team("ops"),
                1 => b.team("sales"),
                _ => b,
            };
            b = match n % 7 {
                0 | 3 => b.actor(Actor::user(
                    format!("u{}", n % 2),
                    format!("user{}@example.com", n % 2),
                )),
                1 => b
                    .actor(Actor::api_key("k1", "CI deployer"))
                    .api_key(ApiKeyRef::new("k1", "CI deployer")),
                2 => b.actor(Actor::system("scheduler")),
                _ => b.actor(Actor::anonymous()),
            };
            if n % 6 == 1 {
                b = b.changes(vec![Change::new(
                    "host",
                    json!(format!("old{n}.internal")),
                    json!(format!("new{n}.internal")),
                )]);
            }
            b.build()
        })
        .collect()
}

async fn fixture() -> Fixture {
    let store = MemoryStore::new();
    let seeded = seed_entries();
    store.record_batch(seeded.clone()).await.unwrap();
    let app = admin::router(store.clone())
        .guard(header_guard)
        .actions(["Approve"])
        .entity_types(TYPES)
        .into_router();
    Fixture { store, app, seeded }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn ids(&self) -> Vec<Uuid> {
        ids_of(&self.json()["items"])
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn ids_of(items: &Value) -> Vec<Uuid> {
    items
        .as_array()
        .expect("an array of entries")
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn request(access: &str, uri: &str) -> Request<Body> {
    let mut request = Request::get(uri)
        .header("x-test-access", access)
        .header("user-agent", "admin-test/1.0")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(PEER)));
    request
}

async fn get(app: &Router, access: &str, uri: &str) -> Reply {
    send(app, request(access, uri)).await
}

/// What the store holds now, read directly (unrecorded), with the query's reference semantics.
async fn oracle(store: &MemoryStore, query: &AuditQuery) -> Vec<Uuid> {
    let mut all: Vec<AuditEntry> = store
        .export(&AuditQuery::new(Scope::All))
        .map(|e| e.unwrap())
        .collect()
        .await;
    all.retain(|e| query.matches(e));
    all.sort_by_key(|e| (e.occurred_at, e.id));
    if query.order == Order::Desc {
        all.reverse();
    }
    all.into_iter()
        .take(query.limit as usize)
        .map(|e| e.id)
        .collect()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().into()
}

#[tokio::test]
async fn every_filter_parameter_selects_what_the_reference_semantics_select() {
    let f = fixture().await;
    let q = || AuditQuery::new(Scope::All);
    let cases: Vec<(&str, AuditQuery)> = vec![
        ("", q()),
        ("entity_type=ApiKey", q().entity_type("ApiKey")),
        (
            "entity_type=ApiKey&entity_type=Tenant",
            q().entity_type("ApiKey").entity_type("Tenant"),
        ),
        ("action=Revoke", q().action(Action::Revoke)),
        // Well-known names and closed sets in any case.
        ("action=revoke", q().action(Action::Revoke)),
        ("outcome=DENIED", q().outcome(Outcome::Denied)),
        ("actor_kind=System", q().actor_kind(ActorKind::System)),
        (
            "action=Approve&action=Delete",
            q().action(Action::Custom("Approve".into()))
                .action(Action::Delete),
        ),
        ("actor_id=u1", q().actor_id("u1")),
        ("actor_id=u0&actor_id=k1", q().actor_id("u0").actor_id("k1")),
        ("actor_kind=system", q().actor_kind(ActorKind::System)),
        (
            "actor_kind=user&actor_kind=api_key",
            q().actor_kind(ActorKind::User)
                .actor_kind(ActorKind::ApiKey),
        ),
        ("api_key=k1", q().api_key("k1")),
        ("api_key=CI%20deployer", q().api_key("CI deployer")),
        ("entity_id=7", q().entity_id("7")),
        ("entity_id=7&entity_id=3", q().entity_id("7").entity_id("3")),
        ("outcome=denied", q().outcome(Outcome::Denied)),
        (
            "outcome=denied&outcome=failure",
            q().outcome(Outcome::Denied).outcome(Outcome::Failure),
        ),
        (
            "from=2026-03-01T08:30:00Z",
            q().from(at("2026-03-01T08:30:00Z")),
        ),
        (
            "to=2026-03-01T08:10:00Z",
            q().to(at("2026-03-01T08:10:00Z")),
        ),
        (
            "from=2026-03-01T10:10:00%2B02:00&to=2026-03-01T08:20:00Z",
            q().from(at("2026-03-01T08:10:00Z"))
                .to(at("2026-03-01T08:20:00Z")),
        ),
        ("q=salesforce", q().text("salesforce")),
        // A configured entity type in any case or spelling; an action of the service's own
        // in any case.
        (
            "entity_type=connection-profile",
            q().entity_type("ConnectionProfile"),
        ),
        (
            "entity_type=MAPPING_CONFIG&entity_type=apikey",
            q().entity_type("MappingConfig").entity_type("ApiKey"),
        ),
        (
            "action=APPROVE",
            q().action(Action::Custom("Approve".into())),
        ),
        ("team=ops", q().team("ops")),
        ("team=ops&team=sales", q().team("ops").team("sales")),
        (
            "team=sales&action=update&outcome=success",
            q().team("sales")
                .action(Action::Update)
                .outcome(Outcome::Success),
        ),
        ("q=%20CHANGE%2012%20", q().text("change 12")),
        ("q=user1%40example", q().text("user1@example")),
        ("order=asc", q().order(Order::Asc)),
        ("order=desc&limit=7", q().limit(7)),
        ("limit=1", q().limit(1)),
        (
            "entity_type=ConnectionProfile&outcome=success&order=asc&limit=5",
            q().entity_type("ConnectionProfile")
                .outcome(Outcome::Success)
                .order(Order::Asc)
                .limit(5),
        ),
    ];
    let everything = f.seeded.len();
    for (query_string, query) in cases {
        // Only the seeded entries: reads recorded by earlier requests are later than `to`.
        let bounded = query
            .clone()
            .to(query.to.unwrap_or(at("2026-03-02T00:00:00Z")));
        let expected = oracle(&f.store, &bounded).await;
        let sep = if query_string.is_empty() { "" } else { "&" };
        let uri = if query.to.is_some() {
            format!("/entries?{query_string}")
        } else {
            format!("/entries?{query_string}{sep}to=2026-03-02T00:00:00Z")
        };
        let reply = get(&f.app, "all", &uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {:?}", reply.body);
        assert_eq!(reply.ids(), expected, "{uri}");
        if !query_string.is_empty() && !query_string.starts_with("order=asc") {
            assert!(
                !expected.is_empty() && expected.len() < everything,
                "{uri} must select a proper subset ({} of {everything})",
                expected.len()
            );
        }
    }
}

#[tokio::test]
async fn limit_defaults_to_100_and_the_cursor_pages_through_everything() {
    let f = fixture().await;
    // More than a default page.
    let extra: Vec<AuditEntry> = (0..90)
        .map(|i| {
            AuditEntry::builder(Action::Update)
                .tenant("acme")
                .occurred_at(base_time() - Duration::hours(1) + Duration::seconds(i))
                .build()
        })
        .collect();
    f.store.record_batch(extra.clone()).await.unwrap();
    let first = get(&f.app, "all", "/entries").await;
    assert_eq!(first.ids().len(), 100);
    assert!(first.json()["next_cursor"].is_string());

    let expected = oracle(
        &f.store,
        &AuditQuery::new(Scope::All).hide_log_reads(true).limit(1000),
    )
    .await;
    let mut seen = Vec::new();
    let mut uri = "/entries?limit=7".to_owned();
    loop {
        let page = get(&f.app, "all", &uri).await;
        assert_eq!(page.status, StatusCode::OK);
        let body = page.json();
        seen.extend(ids_of(&body["items"]));
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/entries?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    // The reads recorded by the requests above are left out: every page is the log's changes.
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 150);
}

#[tokio::test]
async fn the_guard_decides_the_scope_of_every_endpoint() {
    let f = fixture().await;
    let window = "to=2026-03-02T00:00:00Z";
    let tenants = |reply: &Reply| -> Vec<(String, String)> {
        reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["tenant_id"].as_str().unwrap_or("").to_owned(),
                    e["team_id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };

    // All: both tenants.
    let all = get(&f.app, "all", &format!("/entries?{window}")).await;
    assert_eq!(all.ids().len(), 60);
    assert!(tenants(&all).iter().any(|(t, _)| t == "globex"));

    // One tenant.
    let acme = get(&f.app, "tenant:acme", &format!("/entries?{window}")).await;
    let expected = oracle(
        &f.store,
        &AuditQuery::new(Scope::tenant("acme")).to(at("2026-03-02T00:00:00Z")),
    )
    .await;
    assert_eq!(acme.ids(), expected);
    assert_eq!(expected.len(), 45);
    assert!(tenants(&acme).iter().all(|(t, _)| t == "acme"));

    // One team.
    let ops = get(&f.app, "team:acme:ops", &format!("/entries?{window}")).await;
    let expected = oracle(
        &f.store,
        &AuditQuery::new(Scope::team("acme", "ops")).to(at("2026-03-02T00:00:00Z")),
    )
    .await;
    assert_eq!(ops.ids(), expected);
    assert!(!expected.is_empty() && expected.len() < 45);
    assert!(
        tenants(&ops)
            .iter()
            .all(|(t, team)| t == "acme" && team == "ops")
    );

    // Denied, on every data endpoint, with the guard's message.
    let id = f.seeded[0].id;
    for path in [
        "/entries".to_owned(),
        format!("/entries/{id}"),
        "/export.csv".to_owned(),
        "/export.json".to_owned(),
        "/export.ndjson".to_owned(),
    ] {
        for access in ["", "nobody", "tenant"] {
            let reply = get(&f.app, access, &path).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
            assert_eq!(reply.header("content-type"), "application/json");
            let body = reply.json();
            assert_eq!(body["error"], "access_denied");
            assert_eq!(body["message"], "the audit log is for administrators");
        }
    }

    // Without a guard, nobody gets in.
    let unguarded: Router = admin::router(f.store.clone()).into_router();
    for path in ["/entries", "/export.csv"] {
        let reply = get(&unguarded, "all", path).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.json()["message"], NO_GUARD_MESSAGE);
    }
}

#[tokio::test]
async fn entries_outside_the_scope_are_404_by_id_and_absent_from_every_export() {
    let f = fixture().await;
    let globex = f
        .seeded
        .iter()
        .find(|e| e.tenant_id.as_deref() == Some("globex"))
        .unwrap();
    let acme_sales = f
        .seeded
        .iter()
        .find(|e| e.tenant_id.as_deref() == Some("acme") && e.team_id.as_deref() == Some("sales"))
        .unwrap();
    let acme_ops = f
        .seeded
        .iter()
        .find(|e| e.tenant_id.as_deref() == Some("acme") && e.team_id.as_deref() == Some("ops"))
        .unwrap();

    // Visible within scope, with its changes.
    let reply = get(
        &f.app,
        "team:acme:ops",
        &format!("/entries/{}", acme_ops.id),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let entry: AuditEntry = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(&entry, acme_ops);
    let with_changes = f.seeded.iter().find(|e| !e.changes.is_empty()).unwrap();
    let reply = get(&f.app, "all", &format!("/entries/{}", with_changes.id)).await;
    assert_eq!(reply.json()["changes"][0]["field"], "host");

    // Outside the scope: the same 404 as an id that does not exist.
    let missing = get(
        &f.app,
        "tenant:acme",
        &format!("/entries/{}", Uuid::now_v7()),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for (access, id) in [
        ("tenant:acme", globex.id),
        ("team:acme:ops", globex.id),
        ("team:acme:ops", acme_sales.id),
        ("tenant:globex", acme_ops.id),
    ] {
        let reply = get(&f.app, access, &format!("/entries/{id}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{access} {id}");
        assert_eq!(reply.json()["error"], "not_found");
        assert_eq!(
            reply.json()["message"],
            format!("no audit entry {id} is visible to you")
        );
    }

    // Every export format holds exactly the scope's entries.
    for (access, scope) in [
        ("tenant:acme", Scope::tenant("acme")),
        ("team:acme:ops", Scope::team("acme", "ops")),
        ("tenant:globex", Scope::tenant("globex")),
    ] {
        let query = AuditQuery::new(scope)
            .to(at("2026-03-02T00:00:00Z"))
            .limit(1000);
        let expected = oracle(&f.store, &query).await;
        assert!(!expected.is_empty());
        let window = "to=2026-03-02T00:00:00Z";
        for format in ["csv", "json", "ndjson"] {
            let reply = get(&f.app, access, &format!("/export.{format}?{window}")).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(
                export_ids(format, &reply.body),
                expected,
                "{access} {format}"
            );
        }
    }
}

fn export_ids(format: &str, body: &[u8]) -> Vec<Uuid> {
    match format {
        "json" => ids_of(&serde_json::from_slice::<Value>(body).unwrap()),
        "ndjson" => std::str::from_utf8(body)
            .unwrap()
            .lines()
            .map(|line| {
                let entry: AuditEntry = serde_json::from_str(line).unwrap();
                entry.id
            })
            .collect(),
        "csv" => {
            let mut reader = csv::Reader::from_reader(body);
            let headers = reader.headers().unwrap().clone();
            assert_eq!(&headers[0], "id");
            reader
                .records()
                .map(|r| r.unwrap()[0].parse().unwrap())
                .collect()
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn bad_input_is_a_400_that_names_the_parameter() {
    let f = fixture().await;
    let page = get(&f.app, "all", "/entries?limit=2").await;
    let cursor = page.json()["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let many = (0..101)
        .map(|i| format!("entity_type=T{i}"))
        .collect::<Vec<_>>()
        .join("&");
    let long_q = "x".repeat(201);
    let cases: Vec<(String, &str)> = vec![
        ("/entries?limit=0".into(), "limit"),
        ("/entries?limit=1001".into(), "limit"),
        ("/entries?limit=abc".into(), "limit"),
        ("/entries?limit=-1".into(), "limit"),
        ("/entries?limit=99999999999999999999".into(), "limit"),
        ("/entries?limit=5&limit=6".into(), "limit"),
        ("/entries?from=yesterday".into(), "from"),
        ("/entries?from=2026-02-30T00:00:00Z".into(), "from"),
        ("/entries?to=2026-01-01".into(), "to"),
        (
            "/entries?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z".into(),
            "to",
        ),
        ("/entries?action=Not%20an%20action".into(), "action"),
        ("/entries?action=%3Cscript%3E".into(), "action"),
        ("/entries?actor_kind=robot".into(), "actor_kind"),
        ("/entries?outcome=ok".into(), "outcome"),
        ("/entries?order=newest".into(), "order"),
        ("/entries?cursor=garbage".into(), "cursor"),
        (format!("/entries?cursor={tampered}"), "cursor"),
        // A real cursor, but of another query.
        (format!("/entries?cursor={cursor}&action=Create"), "cursor"),
        (format!("/entries?cursor={cursor}&order=asc"), "cursor"),
        (format!("/entries?q={long_q}"), "q"),
        ("/entries?q=a%00b".into(), "q"),
        ("/entries?entity_type=a%0Ab".into(), "entity_type"),
        (format!("/entries?{many}"), "entity_type"),
        ("/entries?colour=red".into(), "colour"),
        ("/entries/not-a-uuid".into(), "id"),
        ("/entries/%FF".into(), "id"),
        ("/export.csv?limit=5".into(), "limit"),
        (format!("/export.json?cursor={cursor}"), "cursor"),
        ("/export.ndjson?from=soon".into(), "from"),
    ];
    for (uri, parameter) in cases {
        let reply = get(&f.app, "all", &uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(reply.header("content-type"), "application/json", "{uri}");
        let body = reply.json();
        assert_eq!(body["error"], "invalid_parameter", "{uri}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // Odd input never reaches a 500.
    for uri in [
        "/entries?%",
        "/entries?&&&=&",
        "/entries?q=%FF%FE",
        "/entries?q=%F0%9F%98%80",
        "/entries?entity_type=%E2%80%AE",
        "/entries?==",
        "/entries?q=%27%20OR%201%3D1%20--",
        "/entries?q=100%25_%5C",
        "/entries?from=9999-12-31T23:59:59Z",
        "/entries?from=-0001-01-01T00:00:00Z",
        "/entries?cursor=%00",
        "/entries/00000000-0000-0000-0000-000000000000",
        "/entries/..%2F..%2Fetc",
        "/export.csv?q=%3D1%2B1",
    ] {
        let reply = get(&f.app, "all", uri).await;
        assert!(
            reply.status.is_success()
                || reply.status == StatusCode::BAD_REQUEST
                || reply.status == StatusCode::NOT_FOUND,
            "{uri}: {}",
            reply.status
        );
    }
}

#[tokio::test]
async fn every_export_equals_the_list_for_the_same_filter() {
    let f = fixture().await;
    let filter = "entity_type=ConnectionProfile&entity_type=ApiKey&outcome=success\
                  &to=2026-03-02T00:00:00Z";
    for order in ["desc", "asc"] {
        let list = get(
            &f.app,
            "tenant:acme",
            &format!("/entries?{filter}&order={order}&limit=1000"),
        )
        .await;
        let items = list.json()["items"].clone();
        let ids = ids_of(&items);
        assert!(ids.len() > 5, "{}", ids.len());
        for format in ["csv", "json", "ndjson"] {
            let reply = get(
                &f.app,
                "tenant:acme",
                &format!("/export.{format}?{filter}&order={order}"),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK);
            let disposition = reply.header("content-disposition");
            assert!(
                disposition.starts_with("attachment; filename=\"audit-log-")
                    && disposition.ends_with(&format!(".{format}\"")),
                "{disposition}"
            );
            let content_type = reply.header("content-type");
            match format {
                "csv" => assert!(content_type.starts_with("text/csv")),
                "json" => assert_eq!(content_type, "application/json"),
                _ => assert_eq!(content_type, "application/x-ndjson"),
            }
            assert_eq!(export_ids(format, &reply.body), ids, "{format} {order}");
            if format == "json" {
                // Not just the ids: the same entries.
                assert_eq!(serde_json::from_slice::<Value>(&reply.body).unwrap(), items);
            }
        }
    }
    // An export with nothing to export is still a valid file.
    let none = "entity_type=Nothing";
    let json = get(&f.app, "all", &format!("/export.json?{none}")).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&json.body).unwrap(),
        json!([])
    );
    let csv = get(&f.app, "all", &format!("/export.csv?{none}")).await;
    assert_eq!(export_ids("csv", &csv.body), Vec::<Uuid>::new());
    let ndjson = get(&f.app, "all", &format!("/export.ndjson?{none}")).await;
    assert!(ndjson.body.is_empty());
}

#[tokio::test]
async fn an_export_ends_at_the_moment_it_started() {
    let f = fixture().await;
    // More rows than the store reads in one chunk, so the export reads again after it began.
    let more: Vec<AuditEntry> = (0..1500)
        .map(|n| {
            let mut entry = AuditEntry::builder(Action::Update)
                .tenant("acme")
                .entity("Tenant", format!("bulk-{n}"))
                .build();
            entry.occurred_at = at("2026-01-01T00:00:00Z") + chrono::Duration::seconds(n);
            entry
        })
        .collect();
    f.store.record_batch(more.clone()).await.unwrap();
    // Oldest first with no end: without a bound, the export would go on to read what was
    // written while it streamed, its own `Export` entry among them.
    for format in ["ndjson", "csv", "json"] {
        let before = oracle(
            &f.store,
            &AuditQuery::new(Scope::tenant("acme"))
                .order(Order::Asc)
                .limit(10_000),
        )
        .await;
        let reply = get(
            &f.app,
            "tenant:acme",
            &format!("/export.{format}?order=asc"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let exported = export_ids(format, &reply.body);
        assert_eq!(exported.len(), before.len(), "{format}: rows exported");
        assert!(
            exported == before,
            "{format}: the rows as they were when it started"
        );
    }
    // The three exports were recorded, in acme's log.
    let exports = oracle(
        &f.store,
        &AuditQuery::new(Scope::tenant("acme")).action(Action::Export),
    )
    .await;
    assert_eq!(exports.len(), 3);
    // A start in the future with no end is an empty export, not an error.
    let later = get(
        &f.app,
        "tenant:acme",
        "/export.ndjson?from=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(later.status, StatusCode::OK);
    assert!(later.body.is_empty());
}

#[tokio::test]
async fn csv_follows_rfc_4180_and_neutralises_formulas() {
    let f = fixture().await;
    let hostile = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+1+2",
        "-3+4",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
        "=cmd|' /C calc'!A0",
        // Harmless when split on commas, formulas when split on `;` or tabs unquoted.
        "a;=cmd|' /C calc'!A0;b",
        "a\t=1+1",
        "a;+1;@SUM(A1)",
    ];
    let entries: Vec<AuditEntry> = hostile
        .iter()
        .map(|name| {
            AuditEntry::builder(Action::Update)
                .tenant("acme")
                .entity("Spreadsheet", "csv-test")
                .entity_name(*name)
                .details("a, \"quoted\"\r\nand multi-line detail")
                .build()
        })
        .collect();
    f.store.record_batch(entries.clone()).await.unwrap();
    let reply = get(
        &f.app,
        "tenant:acme",
        "/export.csv?entity_id=csv-test&order=asc",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = std::str::from_utf8(&reply.body).unwrap();
    assert!(text.starts_with("id,occurred_at,tenant_id,team_id,actor_kind,"));
    assert!(
        text.split_once("\r\n")
            .unwrap()
            .0
            .ends_with(",route,metadata")
    );

    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reply.body.as_ref());
    let headers = reader.headers().unwrap().clone();
    let name_col = headers.iter().position(|h| h == "entity_name").unwrap();
    let details_col = headers.iter().position(|h| h == "details").unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let mut by_id = std::collections::HashMap::new();
    for record in &records {
        by_id.insert(record[0].to_owned(), record.clone());
    }
    assert_eq!(records.len(), hostile.len());
    for (entry, name) in entries.iter().zip(hostile) {
        let record = &by_id[&entry.id.to_string()];
        // Shown as text: a leading apostrophe, then the value unchanged.
        let shown = match name {
            "a;=cmd|' /C calc'!A0;b" => "a;'=cmd|' /C calc'!A0;b".to_owned(),
            "a\t=1+1" => "a\t'=1+1".to_owned(),
            "a;+1;@SUM(A1)" => "a;'+1;'@SUM(A1)".to_owned(),
            "\t=1+1" => "'\t'=1+1".to_owned(),
            "\r=1+1" => "'\r'=1+1".to_owned(),
            other => format!("'{other}"),
        };
        assert_eq!(&record[name_col], shown);
        assert_eq!(
            &record[details_col],
            "a, \"quoted\"\r\nand multi-line detail"
        );
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell could run as a formula: {cell:?}"
            );
        }
    }
    // A spreadsheet splitting on `;` or tabs (quotes respected) finds no formula either.
    for delimiter in [b';', b'\t'] {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(reply.body.as_ref());
        let mut cells = 0;
        for record in reader.records() {
            for cell in record.unwrap().iter() {
                cells += 1;
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "split on {:?}, a cell could run as a formula: {cell:?}",
                    delimiter as char
                );
            }
        }
        assert!(cells > hostile.len());
    }
}

#[tokio::test]
async fn reads_and_exports_are_recorded_with_actor_tenant_and_filter() {
    let f = fixture().await;
    let with_identity = |uri: &str| {
        let mut request = request("tenant:acme", uri);
        request
            .extensions_mut()
            .insert(Actor::user("admin-1", "ada@acme.example"));
        request
            .extensions_mut()
            .insert(TenantRef::new("acme").with_team("ops"));
        request
    };
    let audit_log_entries = || async {
        let mut entries: Vec<AuditEntry> = f
            .store
            .export(&AuditQuery::new(Scope::All).entity_type("AuditLog"))
            .map(|e| e.unwrap())
            .collect()
            .await;
        entries.sort_by_key(|e| (e.occurred_at, e.id));
        entries
    };

    let reply = send(&f.app, with_identity("/entries?action=Revoke&q=object")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let recorded = audit_log_entries().await;
    assert_eq!(recorded.len(), 1);
    let read = &recorded[0];
    assert_eq!(read.action, Action::Read);
    assert_eq!(read.outcome, Outcome::Success);
    assert_eq!(read.actor_kind, ActorKind::User);
    assert_eq!(read.actor_id.as_deref(), Some("admin-1"));
    assert_eq!(read.actor_name.as_deref(), Some("ada@acme.example"));
    assert_eq!(read.tenant_id.as_deref(), Some("acme"));
    assert_eq!(read.team_id.as_deref(), Some("ops"));
    assert_eq!(read.ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(read.user_agent.as_deref(), Some("admin-test/1.0"));
    assert_eq!(read.method.as_deref(), Some("GET"));
    assert_eq!(read.route.as_deref(), Some("/entries"));
    assert_eq!(
        read.metadata["filter"],
        json!({"action": ["Revoke"], "q": "object", "order": "desc"})
    );
    assert_eq!(read.metadata["returned"], json!(reply.ids().len()));

    let id = reply.ids()[0];
    send(&f.app, with_identity(&format!("/entries/{id}"))).await;
    let reply = send(
        &f.app,
        with_identity("/export.csv?entity_type=ApiKey&outcome=denied"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let recorded = audit_log_entries().await;
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[1].action, Action::Read);
    assert_eq!(recorded[1].entity_id, Some(id.to_string()));
    assert_eq!(recorded[1].route.as_deref(), Some("/entries/{id}"));
    let export = &recorded[2];
    assert_eq!(export.action, Action::Export);
    assert_eq!(export.entity_type.as_deref(), Some("AuditLog"));
    assert_eq!(export.actor_id.as_deref(), Some("admin-1"));
    assert_eq!(export.tenant_id.as_deref(), Some("acme"));
    assert_eq!(export.metadata["format"], "csv");
    assert_eq!(
        export.metadata["filter"],
        json!({"entity_type": ["ApiKey"], "outcome": ["denied"], "order": "desc"})
    );

    // Without a TenantRef the granted scope's tenant is used; a denial is recorded as denied.
    get(&f.app, "team:acme:sales", "/export.ndjson").await;
    get(&f.app, "nobody", "/entries").await;
    let recorded = audit_log_entries().await;
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[3].action, Action::Export);
    assert_eq!(recorded[3].tenant_id.as_deref(), Some("acme"));
    assert_eq!(recorded[3].team_id.as_deref(), Some("sales"));
    assert_eq!(recorded[4].outcome, Outcome::Denied);
    assert_eq!(recorded[4].status, Some(403));
    assert_eq!(recorded[4].ip, Some("203.0.113.7".parse().unwrap()));

    // Refused input is not a read, nor is a HEAD request, which gets no body.
    get(&f.app, "all", "/entries?limit=0").await;
    let head = Request::head("/export.csv")
        .header("x-test-access", "all")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f.app, head).await.status, StatusCode::OK);
    assert_eq!(audit_log_entries().await.len(), 5);

    // The recorded reads are in the log like any entry, visible to their tenant when asked
    // for; by default only the export is listed.
    let reply = get(
        &f.app,
        "tenant:acme",
        "/entries?entity_type=AuditLog&reads=include",
    )
    .await;
    assert_eq!(reply.ids().len(), 4);
    let reply = get(&f.app, "tenant:acme", "/entries?entity_type=AuditLog").await;
    assert_eq!(reply.ids(), [recorded[3].id, recorded[2].id]);
}

#[tokio::test]
async fn secrets_typed_into_filters_are_redacted_in_the_recorded_read() {
    let f = fixture().await;
    let key = "sk_live_9f8e7d6c5b4a39281706";
    for uri in [
        format!("/entries?api_key={key}&q=postgres%3A%2F%2Fapp%3Ahunter2%40db%2Fapp"),
        format!("/export.json?entity_id={key}&q=password%3Dhunter2"),
    ] {
        assert_eq!(
            get(&f.app, "all", &uri).await.status,
            StatusCode::OK,
            "{uri}"
        );
    }
    let recorded: Vec<AuditEntry> = f
        .store
        .export(&AuditQuery::new(Scope::All).entity_type("AuditLog"))
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(recorded.len(), 2);
    let text = serde_json::to_string(&recorded).unwrap();
    assert!(
        !text.contains("9f8e7d6c") && !text.contains("hunter2"),
        "{text}"
    );
    let filters: Vec<&Value> = recorded.iter().map(|e| &e.metadata["filter"]).collect();
    assert!(filters.contains(&&json!({
        "api_key": "[REDACTED]",
        "q": "postgres://app:[REDACTED]@db/app",
        "order": "desc"
    })));
    assert!(filters.contains(&&json!({
        "entity_id": ["[REDACTED]"],
        "q": "password=[REDACTED]",
        "order": "desc"
    })));
}

#[tokio::test]
async fn erasing_a_person_is_for_operators_takes_json_and_is_recorded() {
    let f = fixture().await;
    let erase = |access: &str, content_type: Option<&str>, body: &str| {
        let mut request = request(access, "/erase");
        *request.method_mut() = http::Method::POST;
        if let Some(content_type) = content_type {
            request
                .headers_mut()
                .insert("content-type", content_type.parse().unwrap());
        }
        *request.body_mut() = Body::from(body.to_owned());
        request
    };
    let of_u0 = || async {
        f.store
            .export(&AuditQuery::new(Scope::All).actor_id("u0"))
            .map(|e| e.unwrap())
            .collect::<Vec<AuditEntry>>()
            .await
    };
    let before = of_u0().await;
    assert!(!before.is_empty());
    let json_body = Some("application/json");

    // Not an operator, not JSON, not the expected body: refused, nothing erased.
    for (access, content_type, body, status) in [
        (
            "tenant:acme",
            json_body,
            r#"{"actor_id": "u0"}"#,
            StatusCode::FORBIDDEN,
        ),
        (
            "nobody",
            json_body,
            r#"{"actor_id": "u0"}"#,
            StatusCode::FORBIDDEN,
        ),
        (
            "all",
            None,
            r#"{"actor_id": "u0"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "all",
            Some("application/x-www-form-urlencoded"),
            "actor_id=u0",
            StatusCode::BAD_REQUEST,
        ),
        (
            "all",
            json_body,
            r#"{"actor": "u0"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "all",
            json_body,
            r#"{"actor_id": ""}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("all", json_body, "not json", StatusCode::BAD_REQUEST),
    ] {
        let reply = send(&f.app, erase(access, content_type, body)).await;
        assert_eq!(reply.status, status, "{access} {content_type:?} {body}");
    }
    assert_eq!(of_u0().await, before);

    let reply = send(&f.app, erase("all", json_body, r#"{"actor_id": "u0"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"actor_id": "u0", "erased": before.len()})
    );
    for entry in of_u0().await {
        assert_eq!(entry.actor_name.as_deref(), Some(audit_core::chain::ERASED));
        assert_eq!(
            (entry.ip, entry.user_agent.as_deref()),
            (None, Some("[ERASED]"))
        );
    }
    let recorded: Vec<AuditEntry> = f
        .store
        .export(&AuditQuery::new(Scope::All).action(Action::Erase))
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].metadata["erased_actor_id"], "u0");
    assert_eq!(recorded[0].metadata["entries"], json!(before.len()));
    // Again: nothing left to erase.
    let reply = send(&f.app, erase("all", json_body, r#"{"actor_id": "u0"}"#)).await;
    assert_eq!(reply.json()["erased"], 0);
}

/// A JSON `POST` to `uri` as `access`.
fn post_json(access: &str, uri: &str, body: &str) -> Request<Body> {
    let mut request = request(access, uri);
    *request.method_mut() = http::Method::POST;
    request
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    *request.body_mut() = Body::from(body.to_owned());
    request
}

#[tokio::test]
async fn retention_is_shown_to_readers_and_purges_and_holds_are_for_operators() {
    use audit_core::retention::{Period, RetentionPolicy};
    let f = fixture().await;
    let policy = RetentionPolicy::new(Period::Days(365));
    policy.set_tenant("acme", Period::Days(90));
    let app = admin::router(f.store.clone())
        .guard(header_guard)
        .retention(policy.clone())
        .into_router();
    let of = |tenant: &'static str| {
        let store = f.store.clone();
        async move {
            store
                .export(&AuditQuery::new(Scope::tenant(tenant)))
                .map(|e| e.unwrap())
                .collect::<Vec<AuditEntry>>()
                .await
        }
    };
    let seeded_acme = f
        .seeded
        .iter()
        .filter(|e| e.tenant_id.as_deref() == Some("acme"))
        .count() as u64;
    let globex_before = of("globex").await.len();

    // Who may read what.
    let reply = get(&app, "tenant:acme", "/retention").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"tenant_id": "acme", "days": 90, "kept": "90 days", "legal_hold": null})
    );
    assert_eq!(
        get(&app, "team:acme:ops", "/retention").await.json()["days"],
        90
    );
    assert_eq!(
        get(&app, "all", "/retention?tenant=globex").await.json()["days"],
        365
    );
    assert_eq!(
        get(&app, "all", "/retention").await.json()["tenant_id"],
        Value::Null
    );
    for (access, uri, status) in [
        (
            "tenant:acme",
            "/retention?tenant=globex",
            StatusCode::FORBIDDEN,
        ),
        ("nobody", "/retention", StatusCode::FORBIDDEN),
        ("all", "/retention?days=1", StatusCode::BAD_REQUEST),
        ("all", "/retention?tenant=a%00b", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            get(&app, access, uri).await.status,
            status,
            "{access} {uri}"
        );
    }

    // Purges: operators only, JSON only; a dry run counts and changes nothing.
    for (access, body, status) in [
        (
            "tenant:acme",
            r#"{"tenant": "acme"}"#,
            StatusCode::FORBIDDEN,
        ),
        (
            "all",
            r#"{"tenant": "acme", "days": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("all", r#"{"tenant": 7}"#, StatusCode::BAD_REQUEST),
        ("all", r#"{"tenant": "a\u0000b"}"#, StatusCode::BAD_REQUEST),
    ] {
        let reply = send(&app, post_json(access, "/purge", body)).await;
        assert_eq!(reply.status, status, "{access} {body}");
    }
    let reply = send(
        &app,
        post_json("all", "/purge", r#"{"tenant": "acme", "dry_run": true}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let dry = reply.json();
    assert_eq!(
        (dry["matched"].as_u64(), dry["deleted"].as_u64()),
        (Some(seeded_acme), Some(0))
    );
    assert_eq!(dry["kept"], "90 days");
    assert!(
        of("acme")
            .await
            .iter()
            .filter(|e| e.action != Action::Read)
            .count() as u64
            >= seeded_acme
    );

    // A legal hold needs a reason, shows in /retention, and stops the purge.
    let reply = send(
        &app,
        post_json("all", "/legal-hold", r#"{"tenant": "acme", "hold": true}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(
        &app,
        post_json(
            "tenant:acme",
            "/legal-hold",
            r#"{"tenant": "acme", "hold": false}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = send(
        &app,
        post_json(
            "all",
            "/legal-hold",
            r#"{"tenant": "acme", "hold": true, "reason": "matter 114"}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let shown = get(&app, "tenant:acme", "/retention").await.json();
    assert_eq!(shown["legal_hold"]["reason"], "matter 114");
    let reply = send(&app, post_json("all", "/purge", r#"{"tenant": "acme"}"#)).await;
    assert_eq!(reply.json()["deleted"], 0);
    assert_eq!(reply.json()["held"]["reason"], "matter 114");
    let holds: Vec<AuditEntry> = of("acme")
        .await
        .into_iter()
        .filter(|e| e.entity_type.as_deref() == Some("LegalHold"))
        .collect();
    assert_eq!(holds.len(), 1, "the hold is recorded in the tenant's log");
    assert_eq!(
        (holds[0].action.clone(), holds[0].entity_id.as_deref()),
        (Action::Create, Some("acme"))
    );

    // Lifted: the purge deletes every seeded entry of acme and no one else's.
    let reply = send(
        &app,
        post_json("all", "/legal-hold", r#"{"tenant": "acme", "hold": false}"#),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()["legal_hold"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let reply = send(&app, post_json("all", "/purge", r#"{"tenant": "acme"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["deleted"].as_u64(), Some(seeded_acme));
    let left = of("acme").await;
    assert!(
        left.iter().all(|e| f.seeded.iter().all(|s| s.id != e.id)),
        "a seeded acme entry survived"
    );
    let purges: Vec<&AuditEntry> = left.iter().filter(|e| e.action == Action::Purge).collect();
    // The operator's refused and granted requests, and the store's own record of the purge.
    assert_eq!(purges.len(), 3, "{purges:?}");
    let by_store: Vec<_> = purges
        .iter()
        .filter(|e| e.actor_kind == audit_core::ActorKind::System)
        .collect();
    assert_eq!(by_store.len(), 1);
    assert_eq!(
        by_store[0].metadata["purge_entries"].as_u64(),
        Some(seeded_acme)
    );
    assert_eq!(of("globex").await.len(), globex_before);

    // The viewer shows the period.
    let page = get(&app, "", "/").await;
    assert!(String::from_utf8_lossy(&page.body).contains("id=\"retention\""));
}

#[tokio::test]
async fn the_openapi_document_describes_what_the_router_accepts() {
    let f = fixture().await;
    let reply = get(&f.app, "", "/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/",
            "/actors",
            "/entries",
            "/entries/{id}",
            "/erase",
            "/export.csv",
            "/export.json",
            "/export.ndjson",
            "/facets",
            "/health",
            "/legal-hold",
            "/openapi.json",
            "/purge",
            "/retention",
            "/summary",
            "/verify"
        ]
    );
    // The health body has the fields the document gives it.
    let health = get(&f.app, "all", "/health").await.json();
    let schema = &doc["components"]["schemas"]["Health"]["properties"];
    let mut doc_keys: Vec<&String> = schema.as_object().unwrap().keys().collect();
    let mut real_keys: Vec<&String> = health.as_object().unwrap().keys().collect();
    doc_keys.sort();
    real_keys.sort();
    assert_eq!(doc_keys, real_keys);
    let cursor = get(&f.app, "all", "/entries?limit=1").await.json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let sample = |name: &str| -> String {
        match name {
            "action" => "Create".into(),
            "actor_kind" => "user".into(),
            "outcome" => "success".into(),
            "from" => "2026-01-01T00:00:00Z".into(),
            "to" => "2027-01-01T00:00:00Z".into(),
            "order" => "desc".into(),
            "reads" => "include".into(),
            "limit" => "1".into(),
            "cursor" => cursor.clone(),
            "trace_id" => "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            _ => "x".into(),
        }
    };
    for path in ["/entries", "/export.csv", "/export.json", "/export.ndjson"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let documented: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        let expected_len = if path == "/entries" { 17 } else { 15 };
        assert_eq!(documented.len(), expected_len, "{path}");
        for p in params {
            let name = p["name"].as_str().unwrap();
            let extra = if name == "cursor" { "&limit=1" } else { "" };
            let uri = format!("{path}?{name}={}{extra}", sample(name));
            let reply = get(&f.app, "all", &uri).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri}: {:?}", reply.body);
            // A repeatable parameter in the document is accepted twice by the router.
            if p["schema"]["type"] == "array" {
                let uri = format!("{path}?{name}={0}&{name}={0}", sample(name));
                assert_eq!(get(&f.app, "all", &uri).await.status, StatusCode::OK);
            }
        }
        // And what the document does not name is refused.
        let reply = get(&f.app, "all", &format!("{path}?undocumented=1")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
    // The responses the document promises for errors are the ones given.
    let errors = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    for code in ["invalid_parameter", "access_denied", "not_found"] {
        assert!(errors.contains(&json!(code)));
    }
    let entry_props = doc["components"]["schemas"]["AuditEntry"]["properties"]
        .as_object()
        .unwrap();
    let real = serde_json::to_value(&f.seeded[0]).unwrap();
    let mut real_keys: Vec<&String> = real.as_object().unwrap().keys().collect();
    let mut doc_keys: Vec<&String> = entry_props.keys().collect();
    real_keys.sort();
    doc_keys.sort();
    assert_eq!(doc_keys, real_keys);
}

#[tokio::test]
async fn the_viewer_page_is_served_under_the_mount_point_with_a_strict_policy() {
    let f = fixture().await;
    let app: Router = Router::new().nest(
        "/admin/audit-log",
        admin::router(f.store.clone())
            .guard(header_guard)
            .entity_types(["ConnectionProfile", "</script><b>x</b>"])
            .into_router(),
    );
    let reply = get(&app, "", "/admin/audit-log").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
    let csp = reply.header("content-security-policy");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(reply.header("x-frame-options"), "DENY");
    assert_eq!(reply.header("cache-control"), "no-store");
    let html = std::str::from_utf8(&reply.body).unwrap();
    assert!(html.contains("<th>Entity Name</th>"));
    assert!(html.contains("ConnectionProfile"));
    assert!(!html.contains("<b>x</b>"));
    // The data endpoints answer under the same prefix.
    let reply = get(&app, "all", "/admin/audit-log/entries?limit=3").await;
    assert_eq!(reply.ids().len(), 3);
    let reply = get(
        &app,
        "all",
        "/admin/audit-log/export.csv?entity_type=Tenant",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_memory_sink_serves_the_router_too() {
    let sink = MemoryStore::new();
    sink.record_batch(seed_entries()).await.unwrap();
    let app: Router = admin::router(sink.clone())
        .guard(|_: &Parts| Access::tenant("globex"))
        .into_router();
    let reply = get(&app, "", "/entries?limit=1000").await;
    assert_eq!(reply.ids().len(), 15);
    // The list just made was recorded in globex's log; the export holds it when asked to.
    let reply = get(&app, "", "/export.ndjson").await;
    assert_eq!(export_ids("ndjson", &reply.body).len(), 15);
    // With the reads: the list's read and the first export's entry.
    let reply = get(&app, "", "/export.ndjson?reads=include").await;
    assert_eq!(export_ids("ndjson", &reply.body).len(), 17);
    assert_eq!(sink.len(), 63);
}

/// A store whose backend is down.
#[derive(Clone)]
struct DownStore;

#[async_trait]
impl AuditStore for DownStore {
    async fn query(&self, _: &AuditQuery) -> Result<Page, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn get(&self, _: &Scope, _: Uuid) -> Result<Option<AuditEntry>, StoreError> {
        Err(StoreError::Backend(
            "disk I/O error at /var/lib/secret".into(),
        ))
    }
    fn export(&self, _: &AuditQuery) -> BoxStream<'static, Result<AuditEntry, StoreError>> {
        futures_util::stream::once(async { Err(StoreError::Unavailable("down".into())) }).boxed()
    }
}

#[async_trait]
impl AuditSink for DownStore {
    async fn record(&self, _: AuditEntry) -> Result<(), SinkError> {
        Err(SinkError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn a_failing_store_is_a_5xx_with_no_internals_in_the_body() {
    let app: Router = admin::router(DownStore)
        .guard(|_: &Parts| Access::All)
        .into_router();
    let reply = get(&app, "", "/entries").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["error"], "store_unavailable");
    let reply = get(&app, "", &format!("/entries/{}", Uuid::now_v7())).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!String::from_utf8_lossy(&reply.body).contains("secret"));
    let reply = get(&app, "", "/export.json").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // Bad input is still the client's 400, before the store is asked.
    assert_eq!(
        get(&app, "", "/entries?limit=0").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn health_shows_how_the_layers_delivery_is_doing() {
    let store = MemoryStore::new();
    let layer =
        AuditLayer::new(store.clone()).buffered(Buffered::new(4).linger(std::time::Duration::ZERO));
    let app: Router = admin::router(store.clone())
        .recorded_by(&layer)
        .guard(header_guard)
        .into_router();
    let health = get(&app, "all", "/health").await;
    assert_eq!(health.status, StatusCode::OK);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["delivery"]["mode"], "buffered");
    assert_eq!(body["delivery"]["capacity"], 4);
    assert_eq!(body["delivery"]["written"], 0);

    // A read of the log goes through the layer's queue; health itself is not recorded.
    get(&app, "all", "/entries").await;
    layer.flush().await;
    let body = get(&app, "all", "/health").await.json();
    assert_eq!(body["delivery"]["written"], 1);
    assert_eq!(store.len(), 1);
    assert_eq!(
        get(&app, "nobody", "/health").await.status,
        StatusCode::FORBIDDEN
    );

    // A store that is down: the denied read's entry holds the only slot, retried, and the
    // layer refuses what it would record.
    let layer =
        AuditLayer::new(DownStore).buffered(Buffered::new(1).linger(std::time::Duration::ZERO));
    let app: Router = admin::router(DownStore)
        .recorded_by(&layer)
        .guard(header_guard)
        .into_router();
    assert_eq!(
        get(&app, "nobody", "/entries").await.status,
        StatusCode::FORBIDDEN
    );
    let body = get(&app, "all", "/health").await.json();
    assert_eq!(body["status"], "refusing");
    assert_eq!(body["delivery"]["held"], 1);
    assert_eq!(body["delivery"]["queued"], 1);
}

#[tokio::test]
async fn health_reports_the_parts_it_was_given_and_a_degraded_one_degrades_it() {
    let store = MemoryStore::new();
    let degraded = Arc::new(AtomicBool::new(false));
    let app: Router = admin::router(store)
        .guard(header_guard)
        .health_part("forwarder", {
            let degraded = degraded.clone();
            move || audit_core::PartHealth {
                degraded: degraded.load(Ordering::SeqCst),
                details: serde_json::json!({"lag": 12}),
            }
        })
        .into_router();
    let body = get(&app, "all", "/health").await.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["parts"]["forwarder"]["details"]["lag"], 12);
    assert_eq!(body["parts"]["forwarder"]["degraded"], false);
    degraded.store(true, Ordering::SeqCst);
    let body = get(&app, "all", "/health").await.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["parts"]["forwarder"]["degraded"], true);
}

#[tokio::test]
async fn verify_checks_the_callers_access_and_says_when_the_store_keeps_no_chain() {
    let f = fixture().await;
    // `MemoryStore` keeps no chain: said plainly, not an empty success.
    let reply = get(&f.app, "tenant:acme", "/verify").await;
    assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(reply.json()["error"], "not_supported");
    assert_eq!(
        get(&f.app, "all", "/verify?tenant=globex").await.status,
        StatusCode::NOT_IMPLEMENTED
    );
    // Another tenant, a team administrator, nobody: refused before the store is asked.
    for (access, uri) in [
        ("tenant:acme", "/verify?tenant=globex"),
        ("team:acme:ops", "/verify"),
        ("nobody", "/verify"),
    ] {
        assert_eq!(
            get(&f.app, access, uri).await.status,
            StatusCode::FORBIDDEN,
            "{access} {uri}"
        );
    }
    // Hostile or unknown parameters: a 400 naming the parameter.
    for uri in [
        "/verify?tenant=a%00b",
        "/verify?tenant=acme&tenant=globex",
        "/verify?order=desc",
        &format!("/verify?tenant={}", "x".repeat(300)),
    ] {
        let reply = get(&f.app, "all", uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(reply.json()["error"], "invalid_parameter", "{uri}");
    }
}

#[tokio::test]
async fn a_method_an_endpoint_does_not_take_is_a_json_405_naming_the_allowed_ones() {
    let f = fixture().await;
    for (method, uri) in [
        (http::Method::DELETE, "/entries"),
        (http::Method::PUT, "/export.csv"),
        (http::Method::GET, "/purge"),
    ] {
        let mut request = request("all", uri);
        *request.method_mut() = method.clone();
        let reply = send(&f.app, request).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert!(
            reply.headers.contains_key(http::header::ALLOW),
            "{method} {uri}"
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"], "method_not_allowed", "{method} {uri}");
        assert!(
            body["message"].as_str().unwrap().contains(method.as_str()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn closed_filters_refuse_unknown_values_with_the_valid_ones() {
    let f = fixture().await;
    for (uri, parameter, listed) in [
        (
            "/entries?action=Frobnicate",
            "action",
            "Create, Read, Update",
        ),
        ("/entries?action=Aprove", "action", ", Approve"),
        ("/export.csv?action=frobnicate", "action", "Erase"),
        (
            "/entries?actor_kind=robot",
            "actor_kind",
            "user, api_key, system, anonymous",
        ),
        (
            "/entries?outcome=maybe",
            "outcome",
            "success, failure, denied, unknown",
        ),
        ("/entries?order=newest", "order", "`desc` or `asc`"),
        ("/export.json?reads=all", "reads", "hide, include"),
    ] {
        let reply = get(&f.app, "all", uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        let body = reply.json();
        assert_eq!(body["parameter"], parameter, "{uri}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(listed), "{uri}: {message}");
    }
    // A custom action the router was not told of is valid where the log holds it (one a
    // route derived), and finds its entries; one it does not hold is refused, with the custom
    // actions it does hold among the valid ones.
    let unconfigured = admin::router(f.store.clone())
        .guard(header_guard)
        .into_router();
    let reply = get(&unconfigured, "all", "/entries?action=Approve").await;
    assert_eq!(reply.status, StatusCode::OK);
    let approve = AuditQuery::new(Scope::All).action(Action::Custom("Approve".into()));
    assert_eq!(reply.ids(), oracle(&f.store, &approve).await);
    assert!(!reply.ids().is_empty());
    let reply = get(&unconfigured, "all", "/entries?action=Aprove").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.ends_with(", Approve"), "{message}");
    // Within a scope whose log does not hold it, it is refused: no other tenant's actions
    // leak into the list either.
    f.store
        .record(
            AuditEntry::builder(Action::Custom("Archive".into()))
                .tenant("globex")
                .build(),
        )
        .await
        .unwrap();
    let reply = get(&unconfigured, "tenant:acme", "/summary?action=Archive").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    let (_, valid) = message.split_once("expected one of: ").unwrap();
    assert!(!valid.contains("Archive"), "{message}");
    let reply = get(&unconfigured, "tenant:globex", "/summary?action=Archive").await;
    assert_eq!(reply.status, StatusCode::OK);
    // The verbs and rules of the layer that records the router's reads are its actions.
    let layer = AuditLayer::new(f.store.clone())
        .verb("publish-draft", Action::Custom("PublishDraft".into()));
    let told = admin::router(f.store.clone())
        .guard(header_guard)
        .recorded_by(&layer)
        .into_router();
    let reply = get(&told, "all", "/export.csv?action=publishdraft").await;
    assert_eq!(reply.status, StatusCode::OK);
    // The entity type stays open: an unconfigured type (one the service retired, say) is
    // searched as given, in its exact spelling.
    let retired = AuditEntry::builder(Action::Delete)
        .tenant("acme")
        .entity("LegacyWidget", "w1")
        .occurred_at(base_time() - Duration::days(400))
        .build();
    f.store.record(retired.clone()).await.unwrap();
    let reply = get(&f.app, "all", "/entries?entity_type=LegacyWidget").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.ids(), [retired.id]);
    let reply = get(&f.app, "all", "/entries?entity_type=legacy-widget").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.ids(), Vec::<Uuid>::new());
}

#[tokio::test]
async fn the_team_filter_narrows_within_the_granted_scope() {
    let f = fixture().await;
    let window = "to=2026-03-02T00:00:00Z";
    let teams_of = |reply: &Reply| -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["tenant_id"].as_str().unwrap_or("").to_owned(),
                    e["team_id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let reply = get(
        &f.app,
        "tenant:acme",
        &format!("/entries?team=ops&{window}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(teams_of(&reply), [("acme".to_owned(), "ops".to_owned())]);
    assert_eq!(
        reply.ids(),
        oracle(
            &f.store,
            &AuditQuery::new(Scope::tenant("acme"))
                .team("ops")
                .to(at("2026-03-02T00:00:00Z"))
        )
        .await
    );
    // An operator's team filter spans tenants; it never widens a tenant's scope.
    let reply = get(&f.app, "all", &format!("/entries?team=sales&{window}")).await;
    assert_eq!(
        teams_of(&reply),
        [
            ("acme".to_owned(), "sales".to_owned()),
            ("globex".to_owned(), "sales".to_owned())
        ]
    );
    let reply = get(
        &f.app,
        "tenant:globex",
        &format!("/export.ndjson?team=sales&{window}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let exported = export_ids("ndjson", &reply.body);
    assert!(!exported.is_empty());
    assert!(exported.iter().all(|id| {
        let e = f.seeded.iter().find(|e| e.id == *id).unwrap();
        e.tenant_id.as_deref() == Some("globex") && e.team_id.as_deref() == Some("sales")
    }));
    // A team administrator may name their own team, and no other: a 403 naming it.
    let reply = get(&f.app, "team:acme:ops", "/entries?team=ops").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.ids().is_empty());
    for uri in ["/entries?team=sales", "/export.csv?team=ops&team=sales"] {
        let reply = get(&f.app, "team:acme:ops", uri).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}");
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("\"sales\""), "{uri}: {message}");
    }
}

#[tokio::test]
async fn the_logs_own_reads_are_hidden_unless_asked_for() {
    let f = fixture().await;
    // Ten listings, an entry fetched, an export: eleven reads and one export in the log.
    for _ in 0..10 {
        assert_eq!(
            get(&f.app, "all", "/entries?limit=1").await.status,
            StatusCode::OK
        );
    }
    let id = f.seeded[0].id;
    assert_eq!(
        get(&f.app, "all", &format!("/entries/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&f.app, "all", "/export.csv").await.status,
        StatusCode::OK
    );
    let log = |reply: &Reply| -> Vec<String> {
        reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["entity_type"] == "AuditLog")
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    // The newest page is still full of the log's other entries: the reads are left out in
    // the store's query, not after it.
    let reply = get(&f.app, "all", "/entries?limit=5").await;
    assert_eq!(reply.ids().len(), 5);
    assert_eq!(log(&reply), ["Export"]);
    let reply = get(&f.app, "all", "/entries?limit=1000&reads=include").await;
    let actions = log(&reply);
    assert_eq!(actions.iter().filter(|a| *a == "Read").count(), 12);
    assert_eq!(reply.ids().len(), 60 + 13);
    let reply = get(&f.app, "all", "/entries?limit=1000&reads=hide").await;
    assert_eq!(reply.ids().len(), 61);
    // Exports leave them out too, unless asked.
    let csv = get(&f.app, "all", "/export.csv").await;
    assert_eq!(export_ids("csv", &csv.body).len(), 61);
    let csv = get(&f.app, "all", "/export.csv?reads=include").await;
    assert_eq!(export_ids("csv", &csv.body).len(), 60 + 16);
    // The filter of a read that asked for them says so.
    let recorded: Vec<AuditEntry> = f
        .store
        .export(&AuditQuery::new(Scope::All).entity_type("AuditLog"))
        .map(|e| e.unwrap())
        .collect()
        .await;
    let reads: Vec<&Value> = recorded
        .iter()
        .filter_map(|e| e.metadata.get("filter"))
        .filter_map(|filter| filter.get("reads"))
        .collect();
    // `/entries?reads=include` and `/export.csv?reads=include`; `reads=hide` is the default
    // and not written.
    assert_eq!(reads, [&json!("include"), &json!("include")]);
}

#[tokio::test]
async fn the_request_id_filter_finds_a_requests_entries_and_its_jobs() {
    let f = fixture().await;
    let at = base_time() + Duration::minutes(5);
    let entry = |action: Action, request_id: &str, minutes: i64| {
        let mut e = AuditEntry::builder(action)
            .tenant("acme")
            .entity("ExtractionCursor", "c-1")
            .occurred_at(at + Duration::minutes(minutes))
            .build();
        e.request_id = Some(request_id.to_owned());
        e
    };
    let started = entry(Action::Start, "req-77", 0);
    let mut ran = entry(Action::Execute, "req-77", 1);
    ran.actor_kind = ActorKind::System;
    let other = entry(Action::Start, "req-78", 2);
    f.store
        .record_batch(vec![started.clone(), ran.clone(), other.clone()])
        .await
        .unwrap();
    let reply = get(&f.app, "all", "/entries?request_id=req-77").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.ids(), vec![ran.id, started.id]);
    let reply = get(
        &f.app,
        "all",
        "/entries?request_id=req-77&request_id=req-78",
    )
    .await;
    assert_eq!(reply.ids(), vec![other.id, ran.id, started.id]);
    let reply = get(&f.app, "tenant:globex", "/entries?request_id=req-78").await;
    assert!(reply.ids().is_empty());
    let reply = get(&f.app, "tenant:acme", "/entries?request_id=req-78").await;
    assert_eq!(reply.ids(), vec![other.id]);
    // An oversize value is refused, naming the parameter.
    let long = "r".repeat(300);
    let reply = get(&f.app, "all", &format!("/entries?request_id={long}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("request_id"),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn the_trace_id_filter_finds_a_traces_entries() {
    let f = fixture().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let at = base_time() + Duration::minutes(5);
    let entry = |action: Action, trace_id: Option<&str>, minutes: i64| {
        let mut builder = AuditEntry::builder(action)
            .tenant("acme")
            .entity("ExtractionCursor", "c-1")
            .occurred_at(at + Duration::minutes(minutes));
        if let Some(trace_id) = trace_id {
            builder = builder.trace_id(trace_id);
        }
        builder.build()
    };
    let started = entry(Action::Start, Some(trace), 0);
    let ran = entry(Action::Execute, Some(trace), 1);
    let other = entry(Action::Start, Some(other_trace), 2);
    let untraced = entry(Action::Start, None, 3);
    f.store
        .record_batch(vec![
            started.clone(),
            ran.clone(),
            other.clone(),
            untraced.clone(),
        ])
        .await
        .unwrap();
    let reply = get(&f.app, "all", &format!("/entries?trace_id={trace}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.ids(), vec![ran.id, started.id]);
    assert_eq!(reply.json()["items"][0]["trace_id"], trace);
    // Any case; several values.
    let upper = trace.to_uppercase();
    let reply = get(
        &f.app,
        "all",
        &format!("/entries?trace_id={upper}&trace_id={other_trace}"),
    )
    .await;
    assert_eq!(reply.ids(), vec![other.id, ran.id, started.id]);
    let reply = get(
        &f.app,
        "tenant:globex",
        &format!("/entries?trace_id={trace}"),
    )
    .await;
    assert!(reply.ids().is_empty());
    // The export carries the column, and filters alike.
    let reply = get(&f.app, "all", &format!("/export.csv?trace_id={trace}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(",request_id,trace_id,method,")
    );
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains(trace));
    // A value that is not a trace id is refused, naming the parameter and what it takes.
    for bad in [
        "req-1",
        &trace[1..],
        &format!("{trace}0"),
        &"0".repeat(32),
        &"g".repeat(32),
    ] {
        let reply = get(&f.app, "all", &format!("/entries?trace_id={bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(body.contains("trace_id"), "{body}");
        assert!(body.contains("32 hexadecimal digits"), "{body}");
    }
}
