//! The admin router's grouped endpoints over HTTP, against a `MemoryStore`: `GET /summary`
//! (per UTC day and per action, actor or entity type), `GET /actors` and `GET /facets`, each
//! within the guard's scope, with the list's filters, clear 400s, and recorded as reads of the
//! log (which they, like the list, leave out unless `reads=include`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_core::{Action, Actor, ActorKind, ApiKeyRef, AuditEntry, AuditSink, MemoryStore};
use audit_tower::admin::{self, Access};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use futures_util::StreamExt;
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

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

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, d, 0, 0, 0).unwrap()
}

fn entry(tenant: &str, action: Action, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry::builder(action)
        .tenant(tenant)
        .occurred_at(at)
        .build()
}

/// acme: three days in November 2025 (one entry a microsecond before midnight), two teams,
/// three actors of whom one was renamed; globex: entries on the same days that acme's
/// answers must never count.
fn seed() -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let ada = |e: AuditEntry, name: &str| {
        let mut e = e;
        e.actor_id = Some("u-1".into());
        e.actor_name = Some(name.into());
        e.actor_kind = ActorKind::User;
        e
    };
    // Day 1: Update ×3 (Ada), Create ×1 (the CI key), the last a microsecond before midnight.
    for i in 0..3 {
        let mut e = ada(
            entry("acme", Action::Update, day(1) + Duration::hours(i)),
            "Ada <ada@old.example>",
        );
        e.entity_type = Some("ConnectionProfile".into());
        e.team_id = Some("ops".into());
        entries.push(e);
    }
    let mut ci = AuditEntry::builder(Action::Create)
        .tenant("acme")
        .team("sales")
        .actor(Actor::api_key("k-1", "CI key"))
        .api_key(ApiKeyRef::new("k-1", "CI key"))
        .entity("ApiKey", "k-9")
        .occurred_at(day(2) - Duration::microseconds(1))
        .build();
    ci.actor_kind = ActorKind::ApiKey;
    entries.push(ci);
    // Day 2: Delete ×1 at midnight (Ada, renamed), Update ×1 with no actor.
    let mut renamed = ada(
        entry("acme", Action::Delete, day(2)),
        "Ada <ada@acme.example>",
    );
    renamed.entity_type = Some("ConnectionProfile".into());
    renamed.team_id = Some("ops".into());
    entries.push(renamed);
    let mut anonymous = entry("acme", Action::Update, day(2) + Duration::hours(5));
    anonymous.entity_type = Some("Tenant".into());
    entries.push(anonymous);
    // Day 4: a custom action by Bob.
    let mut bob = AuditEntry::builder(Action::Custom("Approve".into()))
        .tenant("acme")
        .team("ops")
        .actor(Actor::user("u-2", "Bob <bob@acme.example>"))
        .entity("Invoice", "i-1")
        .occurred_at(day(4) + Duration::hours(12))
        .build();
    bob.actor_kind = ActorKind::User;
    entries.push(bob);
    // globex, same days.
    for d in [1, 2, 4] {
        let mut e = AuditEntry::builder(Action::Login)
            .tenant("globex")
            .team("ops")
            .actor(Actor::user("g-1", "Gus <gus@globex.example>"))
            .api_key(ApiKeyRef::new("g-key", "Globex key"))
            .entity("GlobexThing", "1")
            .occurred_at(day(d) + Duration::hours(1))
            .build();
        e.actor_kind = ActorKind::User;
        entries.push(e);
    }
    entries
}

struct Fixture {
    store: MemoryStore,
    app: Router,
}

async fn fixture() -> Fixture {
    let store = MemoryStore::new();
    store.record_batch(seed()).await.unwrap();
    let app = admin::router(store.clone())
        .guard(header_guard)
        .entity_types(["ConnectionProfile", "Webhook"])
        .actions(["Approve", "Refund"])
        .into_router();
    Fixture { store, app }
}

async fn get(app: &Router, access: &str, uri: &str) -> (StatusCode, Value) {
    let mut request = Request::get(uri)
        .header("x-test-access", access)
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40000))));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

/// November 2025's first week, as a query string.
const WEEK: &str = "from=2025-11-01T00:00:00Z&to=2025-11-08T00:00:00Z";

/// The reads of the log the store holds.
async fn log_reads(store: &MemoryStore) -> Vec<AuditEntry> {
    let mut reads: Vec<AuditEntry> = store
        .export(&AuditQuery::new(Scope::All).entity_type("AuditLog"))
        .map(|e| e.unwrap())
        .collect()
        .await;
    reads.sort_by_key(|e| (e.occurred_at, e.id));
    reads
}

#[tokio::test]
async fn a_summary_counts_per_utc_day_and_action_within_the_tenant() {
    let f = fixture().await;
    let (status, body) = get(&f.app, "tenant:acme", &format!("/summary?{WEEK}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "by": "action",
            "from": "2025-11-01T00:00:00.000000Z",
            "to": "2025-11-08T00:00:00.000000Z",
            "days": [
                {"day": "2025-11-01", "counts": {"Update": 3, "Create": 1}},
                {"day": "2025-11-02", "counts": {"Delete": 1, "Update": 1}},
                {"day": "2025-11-04", "counts": {"Approve": 1}},
            ],
            "totals": [
                {"key": "Update", "label": "Update", "count": 4},
                {"key": "Approve", "label": "Approve", "count": 1},
                {"key": "Create", "label": "Create", "count": 1},
                {"key": "Delete", "label": "Delete", "count": 1},
            ],
        })
    );
    // globex sees only its own.
    let (_, globex) = get(&f.app, "tenant:globex", &format!("/summary?{WEEK}")).await;
    assert_eq!(
        globex["totals"],
        json!([{"key": "Login", "label": "Login", "count": 3}])
    );
    // An operator sees both.
    let (_, all) = get(&f.app, "all", &format!("/summary?{WEEK}")).await;
    let total: u64 = all["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);
}

#[tokio::test]
async fn by_actor_labels_each_with_the_latest_name_and_by_entity_type_counts_types() {
    let f = fixture().await;
    let (status, body) = get(&f.app, "tenant:acme", &format!("/summary?by=actor&{WEEK}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["by"], "actor");
    assert_eq!(
        body["totals"],
        json!([
            {"key": "u-1", "label": "Ada <ada@acme.example>", "count": 4},
            {"key": "(none)", "label": "(none)", "count": 1},
            {"key": "k-1", "label": "CI key", "count": 1},
            {"key": "u-2", "label": "Bob <bob@acme.example>", "count": 1},
        ])
    );
    assert_eq!(
        body["days"][1],
        json!({"day": "2025-11-02", "counts": {"u-1": 1, "(none)": 1}})
    );
    let (_, types) = get(
        &f.app,
        "tenant:acme",
        &format!("/summary?by=ENTITY_TYPE&{WEEK}"),
    )
    .await;
    assert_eq!(types["by"], "entity_type");
    assert_eq!(
        types["totals"],
        json!([
            {"key": "ConnectionProfile", "label": "ConnectionProfile", "count": 4},
            {"key": "ApiKey", "label": "ApiKey", "count": 1},
            {"key": "Invoice", "label": "Invoice", "count": 1},
            {"key": "Tenant", "label": "Tenant", "count": 1},
        ])
    );
}

#[tokio::test]
async fn a_summary_applies_the_filters_and_the_team_scope() {
    let f = fixture().await;
    let (_, updates) = get(
        &f.app,
        "tenant:acme",
        &format!("/summary?action=update&{WEEK}"),
    )
    .await;
    assert_eq!(
        updates["days"],
        json!([
            {"day": "2025-11-01", "counts": {"Update": 3}},
            {"day": "2025-11-02", "counts": {"Update": 1}},
        ])
    );
    let (_, ada) = get(
        &f.app,
        "tenant:acme",
        &format!("/summary?actor_id=u-1&entity_type=ConnectionProfile&{WEEK}"),
    )
    .await;
    assert_eq!(
        ada["totals"],
        json!([
            {"key": "Update", "label": "Update", "count": 3},
            {"key": "Delete", "label": "Delete", "count": 1},
        ])
    );
    // The team administrator of sales sees the CI key's entry only.
    let (status, sales) = get(&f.app, "team:acme:sales", &format!("/summary?{WEEK}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sales["totals"],
        json!([{"key": "Create", "label": "Create", "count": 1}])
    );
    // Day 2 from its first microsecond: the entry a microsecond earlier is not counted.
    let (_, from_midnight) = get(
        &f.app,
        "tenant:acme",
        "/summary?from=2025-11-02T00:00:00Z&to=2025-11-03T00:00:00Z",
    )
    .await;
    assert_eq!(
        from_midnight["days"],
        json!([{"day": "2025-11-02", "counts": {"Delete": 1, "Update": 1}}])
    );
    // Free text and API keys filter too.
    let (_, ci) = get(
        &f.app,
        "tenant:acme",
        &format!("/summary?api_key=CI%20key&{WEEK}"),
    )
    .await;
    assert_eq!(
        ci["days"],
        json!([{"day": "2025-11-01", "counts": {"Create": 1}}])
    );
}

#[tokio::test]
async fn without_from_a_summary_covers_the_last_thirty_utc_days() {
    let store = MemoryStore::new();
    let now = Utc::now();
    let today = now.duration_trunc(Duration::days(1)).unwrap();
    store
        .record_batch(vec![
            entry("acme", Action::Update, now - Duration::hours(1)),
            entry("acme", Action::Update, today - Duration::days(29)),
            entry(
                "acme",
                Action::Delete,
                today - Duration::days(29) - Duration::seconds(1),
            ),
            entry("acme", Action::Delete, now - Duration::days(40)),
        ])
        .await
        .unwrap();
    let app = admin::router(store.clone())
        .guard(header_guard)
        .into_router();
    let (status, body) = get(&app, "tenant:acme", "/summary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["totals"],
        json!([{"key": "Update", "label": "Update", "count": 2}])
    );
    let from: DateTime<Utc> = body["from"].as_str().unwrap().parse().unwrap();
    let to: DateTime<Utc> = body["to"].as_str().unwrap().parse().unwrap();
    assert_eq!(from, today - Duration::days(29));
    assert!(
        to >= now && to - now < Duration::minutes(1),
        "{to} vs {now}"
    );
    // A `from` in the future counts nothing, and says so.
    let later = (now + Duration::days(2)).format("%Y-%m-%dT%H:%M:%SZ");
    let (status, body) = get(&app, "tenant:acme", &format!("/summary?from={later}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["days"], json!([]));
    assert_eq!(body["totals"], json!([]));
}

#[tokio::test]
async fn past_twenty_keys_the_rest_add_up_under_other() {
    let store = MemoryStore::new();
    // Actor i has i + 1 entries: 25 actors, 325 entries on one day.
    let entries: Vec<AuditEntry> = (0..25u32)
        .flat_map(|i| {
            (0..=i).map(move |j| {
                AuditEntry::builder(Action::Update)
                    .tenant("acme")
                    .actor(Actor::user(format!("u{i:02}"), format!("User {i}")))
                    .occurred_at(day(3) + Duration::seconds(i64::from(i * 100 + j)))
                    .build()
            })
        })
        .collect();
    store.record_batch(entries).await.unwrap();
    let app = admin::router(store).guard(header_guard).into_router();
    let (_, body) = get(&app, "tenant:acme", &format!("/summary?by=actor&{WEEK}")).await;
    let totals = body["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 21);
    assert_eq!(
        totals[0],
        json!({"key": "u24", "label": "User 24", "count": 25})
    );
    assert_eq!(totals[19]["key"], "u05");
    // u00..u04: 1 + 2 + 3 + 4 + 5.
    assert_eq!(
        totals[20],
        json!({"key": "(other)", "label": "(other)", "count": 15})
    );
    let counts = body["days"][0]["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 21);
    assert_eq!(counts["(other)"], 15);
    assert_eq!(counts["u05"], 6);
}

#[tokio::test]
async fn bad_summary_parameters_are_400s_naming_them() {
    let f = fixture().await;
    for (uri, parameter, says) in [
        ("/summary?by=team", "by", "action, actor, entity_type"),
        ("/summary?by=actor&by=action", "by", "more than once"),
        ("/summary?limit=5", "limit", "counts every matching entry"),
        ("/summary?order=asc", "order", "counts every matching entry"),
        ("/summary?cursor=x", "cursor", "counts every matching entry"),
        ("/summary?colour=red", "colour", "unknown parameter"),
        ("/summary?from=yesterday", "from", "RFC 3339"),
        ("/summary?outcome=maybe", "outcome", "success"),
        (
            "/summary?from=2025-11-02T00:00:00Z&to=2025-11-01T00:00:00Z",
            "to",
            "later",
        ),
    ] {
        let (status, body) = get(&f.app, "tenant:acme", uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_parameter", "{uri}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{uri}: {body}"
        );
    }
    // No scope, no summary.
    for uri in ["/summary", "/actors", "/facets"] {
        let (status, body) = get(&f.app, "nobody", uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(body["error"], "access_denied");
    }
    // A team administrator naming another team.
    let (status, _) = get(&f.app, "team:acme:sales", "/summary?team=ops").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn actors_are_listed_most_recent_first_with_their_latest_name() {
    let f = fixture().await;
    let (status, body) = get(&f.app, "tenant:acme", "/actors").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"items": [
            {
                "actor_id": "u-2", "actor_name": "Bob <bob@acme.example>", "actor_kind": "user",
                "count": 1, "last_seen": "2025-11-04T12:00:00.000000Z",
            },
            {
                "actor_id": "u-1", "actor_name": "Ada <ada@acme.example>", "actor_kind": "user",
                "count": 4, "last_seen": "2025-11-02T00:00:00.000000Z",
            },
            {
                "actor_id": "k-1", "actor_name": "CI key", "actor_kind": "api_key",
                "count": 1, "last_seen": "2025-11-01T23:59:59.999999Z",
            },
        ]})
    );
    let ids = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["actor_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, by_email) = get(&f.app, "tenant:acme", "/actors?q=ADA%40ACME").await;
    assert_eq!(ids(&by_email), ["u-1"]);
    let (_, by_id) = get(&f.app, "tenant:acme", "/actors?q=k-").await;
    assert_eq!(ids(&by_id), ["k-1"]);
    let (_, one) = get(&f.app, "tenant:acme", "/actors?limit=1").await;
    assert_eq!(ids(&one), ["u-2"]);
    let (_, sales) = get(&f.app, "team:acme:sales", "/actors").await;
    assert_eq!(ids(&sales), ["k-1"]);
    let (_, globex) = get(&f.app, "tenant:globex", "/actors?q=acme").await;
    assert_eq!(ids(&globex), Vec::<String>::new());
    for (uri, parameter) in [
        ("/actors?limit=0", "limit"),
        ("/actors?limit=101", "limit"),
        ("/actors?limit=many", "limit"),
        ("/actors?q=a&q=b", "q"),
        ("/actors?action=Update", "action"),
        ("/actors?q=a%00b", "q"),
    ] {
        let (status, body) = get(&f.app, "tenant:acme", uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    }
}

#[tokio::test]
async fn facets_offer_the_configured_and_present_values_of_the_scope() {
    let f = fixture().await;
    let (status, body) = get(&f.app, "tenant:acme", "/facets").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["entity_types"],
        json!([
            "ApiKey",
            "ConnectionProfile",
            "Invoice",
            "Tenant",
            "Webhook"
        ])
    );
    let actions: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let well_known: Vec<String> = Action::well_known()
        .map(|a| a.as_str().to_owned())
        .collect();
    assert_eq!(&actions[..well_known.len()], well_known.as_slice());
    assert_eq!(&actions[well_known.len()..], ["Approve", "Refund"]);
    assert_eq!(body["teams"], json!(["ops", "sales"]));
    assert_eq!(body["api_keys"], json!([{"id": "k-1", "name": "CI key"}]));
    // Nothing of globex's, and a team administrator's teams are theirs.
    let (_, globex) = get(&f.app, "tenant:globex", "/facets").await;
    assert_eq!(
        globex["entity_types"],
        json!(["ConnectionProfile", "GlobexThing", "Webhook"])
    );
    assert_eq!(
        globex["api_keys"],
        json!([{"id": "g-key", "name": "Globex key"}])
    );
    let (_, ops) = get(&f.app, "team:acme:ops", "/facets").await;
    assert_eq!(ops["teams"], json!(["ops"]));
    assert_eq!(ops["api_keys"], json!([]));
    let (status, body) = get(&f.app, "tenant:acme", "/facets?entity_type=ApiKey").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameter"], "entity_type");
}

#[tokio::test]
async fn each_answer_is_recorded_as_a_read_and_reads_are_left_out_unless_asked() {
    let f = fixture().await;
    get(
        &f.app,
        "tenant:acme",
        &format!("/summary?by=actor&action=Update&{WEEK}"),
    )
    .await;
    get(&f.app, "tenant:acme", "/actors?q=ada").await;
    get(&f.app, "tenant:acme", "/facets").await;
    let reads = log_reads(&f.store).await;
    assert_eq!(reads.len(), 3);
    for (read, endpoint) in reads.iter().zip(["summary", "actors", "facets"]) {
        assert_eq!(read.action, Action::Read);
        assert_eq!(read.tenant_id.as_deref(), Some("acme"));
        assert_eq!(read.metadata["endpoint"], endpoint);
    }
    assert_eq!(reads[0].route.as_deref(), Some("/summary"));
    assert_eq!(reads[0].metadata["by"], "actor");
    assert_eq!(reads[0].metadata["filter"]["action"], json!(["Update"]));
    assert_eq!(reads[1].metadata["q"], "ada");
    // The reads are on today, not in November: a summary of today counts them only with
    // `reads=include`, and the actor list and facets leave them out.
    let (_, hidden) = get(&f.app, "tenant:acme", "/summary").await;
    assert_eq!(hidden["totals"], json!([]));
    let (_, shown) = get(&f.app, "tenant:acme", "/summary?reads=include").await;
    assert_eq!(shown["totals"][0]["key"], "Read");
    assert!(shown["totals"][0]["count"].as_u64().unwrap() >= 4);
    let (_, facets) = get(&f.app, "tenant:acme", "/facets").await;
    assert!(
        !facets["entity_types"]
            .as_array()
            .unwrap()
            .contains(&json!("AuditLog")),
        "{facets}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_three_endpoints() {
    let f = fixture().await;
    let (status, doc) = get(&f.app, "nobody", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let summary = &doc["paths"]["/summary"]["get"];
    let names: Vec<&str> = summary["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "by");
    assert!(names.contains(&"entity_type") && names.contains(&"from"));
    assert!(!names.contains(&"order") && !names.contains(&"limit"));
    assert_eq!(
        summary["parameters"][0]["schema"]["enum"],
        json!(["action", "actor", "entity_type"])
    );
    assert!(doc["paths"]["/actors"]["get"]["responses"]["200"].is_object());
    assert!(doc["paths"]["/facets"]["get"]["responses"]["200"].is_object());
    // The response schemas resolve.
    let reference = summary["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = reference.rsplit('/').next().unwrap();
    assert!(doc["components"]["schemas"][name]["properties"]["totals"].is_object());
}

/// A store whose listing and export fail: what answers must come from its grouped methods.
#[derive(Clone)]
struct GroupedOnly(MemoryStore);

#[async_trait::async_trait]
impl AuditSink for GroupedOnly {
    async fn record(&self, entry: AuditEntry) -> Result<(), audit_core::SinkError> {
        self.0.record(entry).await
    }
}

#[async_trait::async_trait]
impl AuditStore for GroupedOnly {
    async fn query(
        &self,
        _: &AuditQuery,
    ) -> Result<audit_core::store::Page, audit_core::store::StoreError> {
        Err(audit_core::store::StoreError::Unavailable(
            "rows were read".into(),
        ))
    }

    async fn get(
        &self,
        _: &Scope,
        _: uuid::Uuid,
    ) -> Result<Option<AuditEntry>, audit_core::store::StoreError> {
        Err(audit_core::store::StoreError::Unavailable(
            "rows were read".into(),
        ))
    }

    fn export(
        &self,
        _: &AuditQuery,
    ) -> futures_util::stream::BoxStream<'static, Result<AuditEntry, audit_core::store::StoreError>>
    {
        futures_util::stream::once(async {
            Err(audit_core::store::StoreError::Unavailable(
                "rows were read".into(),
            ))
        })
        .boxed()
    }

    async fn summary(
        &self,
        query: &AuditQuery,
        by: audit_core::store::SummaryBy,
    ) -> Result<audit_core::store::Summary, audit_core::store::StoreError> {
        self.0.summary(query, by).await
    }

    async fn actors(
        &self,
        query: &AuditQuery,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<audit_core::store::ActorSeen>, audit_core::store::StoreError> {
        self.0.actors(query, text, limit).await
    }

    async fn facets(
        &self,
        query: &AuditQuery,
        limit: u32,
    ) -> Result<audit_core::store::Facets, audit_core::store::StoreError> {
        self.0.facets(query, limit).await
    }
}

#[tokio::test]
async fn the_endpoints_ask_the_store_s_grouped_questions_and_read_no_rows() {
    let inner = MemoryStore::new();
    inner.record_batch(seed()).await.unwrap();
    let app = admin::router(GroupedOnly(inner.clone()))
        .guard(header_guard)
        .into_router();
    let (status, body) = get(&app, "tenant:acme", &format!("/summary?by=actor&{WEEK}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totals"][0]["label"], "Ada <ada@acme.example>");
    for uri in ["/actors", "/facets"] {
        let (status, body) = get(&app, "tenant:acme", uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    // The listing does read rows, and says the store is unavailable.
    let (status, _) = get(&app, "tenant:acme", "/entries").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // A store without grouped methods of its own answers through its export: here, failing.
    #[derive(Clone)]
    struct Plain(GroupedOnly);
    #[async_trait::async_trait]
    impl AuditSink for Plain {
        async fn record(&self, entry: AuditEntry) -> Result<(), audit_core::SinkError> {
            self.0.record(entry).await
        }
    }
    #[async_trait::async_trait]
    impl AuditStore for Plain {
        async fn query(
            &self,
            q: &AuditQuery,
        ) -> Result<audit_core::store::Page, audit_core::store::StoreError> {
            self.0.query(q).await
        }
        async fn get(
            &self,
            s: &Scope,
            id: uuid::Uuid,
        ) -> Result<Option<AuditEntry>, audit_core::store::StoreError> {
            self.0.get(s, id).await
        }
        fn export(
            &self,
            q: &AuditQuery,
        ) -> futures_util::stream::BoxStream<
            'static,
            Result<AuditEntry, audit_core::store::StoreError>,
        > {
            self.0.export(q)
        }
    }
    let app = admin::router(Plain(GroupedOnly(inner)))
        .guard(header_guard)
        .into_router();
    let (status, body) = get(&app, "tenant:acme", "/summary").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "store_unavailable");
}
