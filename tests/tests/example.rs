//! The example service over real TCP, on every backend: each tracked action leaves the entry a
//! user of the audit log expects, and no secret reaches the audit table.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use audit_core::{Action, ActorKind, AuditEntry, Outcome};

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_seaorm::sea_orm::EntityTrait;
use audit_tests::{Backend, RunningExample, start_example};
use chrono::{DateTime, Utc};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

struct Session {
    client: Client,
    base: String,
    auth: (&'static str, String),
}

impl Session {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(self.auth.0, &self.auth.1);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn login(app: &RunningExample, email: &str, password: &str) -> (StatusCode, Value) {
    let response = Client::new()
        .post(format!("{}/login", app.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn user_session(app: &RunningExample, email: &str, password: &str) -> Session {
    let (status, body) = login(app, email, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    Session {
        client: Client::new(),
        base: app.base.clone(),
        auth: ("authorization", format!("Bearer {token}")),
    }
}

/// The newest entry of `tenant` with this action on this entity type.
async fn newest(
    app: &RunningExample,
    tenant: &str,
    action: Action,
    entity_type: &str,
) -> AuditEntry {
    let query = AuditQuery::new(Scope::tenant(tenant))
        .action(action.clone())
        .entity_type(entity_type)
        .limit(1);
    let page = app.state.store.query(&query).await.unwrap();
    page.items
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {action} {entity_type} entry"))
}

fn assert_recent(entry: &AuditEntry, since: DateTime<Utc>) {
    assert!(
        entry.occurred_at >= since - chrono::Duration::milliseconds(5),
        "{entry:?}"
    );
    assert!(entry.occurred_at <= Utc::now(), "{entry:?}");
    assert_eq!(entry.ip, Some("127.0.0.1".parse().unwrap()));
}

fn change<'a>(entry: &'a AuditEntry, field: &str) -> (&'a Value, &'a Value) {
    let c = entry
        .changes
        .iter()
        .find(|c| c.field == field)
        .unwrap_or_else(|| panic!("no change of {field}: {entry:?}"));
    (&c.old, &c.new)
}

/// The example on a backend, its first tenant's administrator signed in, its API key at hand.
struct Acme {
    app: RunningExample,
    admin: Session,
    key: Session,
    /// When the administrator had signed in.
    start: DateTime<Utc>,
}

async fn acme(backend: Backend) -> Option<Acme> {
    let app = start_example(backend).await?;
    let tenant = &app.demo.tenants[0];
    let admin = user_session(&app, &tenant.admin.email, &tenant.admin.password).await;
    let key = Session {
        client: Client::new(),
        base: app.base.clone(),
        auth: ("x-api-key", tenant.api_key.0.clone()),
    };
    Some(Acme {
        start: Utc::now(),
        app,
        admin,
        key,
    })
}

/// Signing in is a `Login`; a wrong password a denied `LoginFailed` naming the address tried.
async fn logins(a: &Acme) {
    let Acme { app, start, .. } = a;
    let start = *start;
    let acme = &app.demo.tenants[0];
    let e = newest(app, "acme", Action::Login, "User").await;
    assert_recent(&e, start - chrono::Duration::seconds(5));
    assert_eq!(
        (e.actor_kind, e.actor_name.as_deref()),
        (ActorKind::User, Some(acme.admin.email.as_str()))
    );
    assert_eq!(e.outcome, Outcome::Success);
    let (status, _) = login(app, &acme.admin.email, "wrong-password-123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let e = newest(app, "acme", Action::LoginFailed, "User").await;
    assert_recent(&e, start);
    assert_eq!(
        (e.actor_kind, e.actor_name.as_deref()),
        (ActorKind::Anonymous, Some(acme.admin.email.as_str()))
    );
    assert_eq!((e.outcome, e.status), (Outcome::Denied, Some(401)));
}

/// Creating, updating, toggling and deactivating a tenant are recorded with the values they changed.
async fn tenant_changes(a: &Acme) {
    let Acme {
        app, admin, start, ..
    } = a;
    let start = *start;
    let acme = &app.demo.tenants[0];
    let (status, created) = admin
        .send(
            Method::POST,
            "/tenants",
            Some(json!({"name": "Initech", "plan": "pro"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let e = newest(app, "acme", Action::Create, "Tenant").await;
    assert_recent(&e, start);
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (created["id"].as_str(), Some("Initech"))
    );
    assert_eq!(change(&e, "plan"), (&Value::Null, &json!("pro")));
    assert_eq!(
        (e.actor_name.as_deref(), e.api_key_name.as_deref()),
        (Some(acme.admin.email.as_str()), None)
    );

    let (status, _) = admin
        .send(
            Method::PUT,
            "/tenants/acme",
            Some(json!({"plan": "enterprise-plus"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let e = newest(app, "acme", Action::Update, "Tenant").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some("acme"), Some("Acme Logistics"))
    );
    assert_eq!(
        change(&e, "plan"),
        (&json!("enterprise"), &json!("enterprise-plus"))
    );
    assert_eq!(e.changes.len(), 1);

    assert_eq!(
        admin
            .send(Method::POST, "/tenants/acme/toggle-active", None)
            .await
            .0,
        StatusCode::OK
    );
    let e = newest(app, "acme", Action::ToggleActive, "Tenant").await;
    assert_eq!(change(&e, "active"), (&json!(true), &json!(false)));
    assert_eq!(
        admin
            .send(Method::POST, "/tenants/acme/toggle-active", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        admin
            .send(Method::POST, "/tenants/acme/deactivate", None)
            .await
            .0,
        StatusCode::OK
    );
    let e = newest(app, "acme", Action::Deactivate, "Tenant").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some("acme"), Some("Acme Logistics"))
    );
    assert_eq!(change(&e, "active"), (&json!(true), &json!(false)));
}

/// Profiles changed through the API key name the key as the actor, and their secrets are redacted.
async fn profile_changes(a: &Acme) {
    let Acme {
        app,
        admin,
        key,
        start,
    } = a;
    let start = *start;
    let acme = &app.demo.tenants[0];
    let (status, profile) = key
        .send(
            Method::POST,
            "/connection-profiles",
            Some(json!({"name": "HubSpot", "kind": "hubspot", "host": "api.hubspot.example", "client_secret": "cs-created-0001"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    let id = profile["id"].as_str().unwrap().to_owned();
    let e = newest(app, "acme", Action::Create, "ConnectionProfile").await;
    assert_recent(&e, start);
    assert_eq!(
        (e.actor_kind, e.actor_name.as_deref()),
        (ActorKind::ApiKey, Some(acme.api_key.1.as_str()))
    );
    assert_eq!(e.api_key_name.as_deref(), Some(acme.api_key.1.as_str()));
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some(id.as_str()), Some("HubSpot"))
    );
    // A created secret: none before, hidden after.
    assert_eq!(
        change(&e, "client_secret"),
        (&Value::Null, &json!("[REDACTED]"))
    );
    assert_eq!(
        change(&e, "host"),
        (&Value::Null, &json!("api.hubspot.example"))
    );

    let update = json!({"host": "eu.hubspot.example", "client_secret": "cs-rotated-0002"});
    assert_eq!(
        admin
            .send(
                Method::PUT,
                &format!("/connection-profiles/{id}"),
                Some(update)
            )
            .await
            .0,
        StatusCode::OK
    );
    let e = newest(app, "acme", Action::Update, "ConnectionProfile").await;
    assert_eq!(e.entity_name.as_deref(), Some("HubSpot"));
    assert_eq!(
        change(&e, "host"),
        (&json!("api.hubspot.example"), &json!("eu.hubspot.example"))
    );
    assert_eq!(
        change(&e, "client_secret"),
        (&json!("[REDACTED]"), &json!("[REDACTED]"))
    );
    assert_eq!(e.changes.len(), 2);

    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/connection-profiles/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let e = newest(app, "acme", Action::Delete, "ConnectionProfile").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some(id.as_str()), Some("HubSpot"))
    );
    assert_eq!(
        change(&e, "host"),
        (&json!("eu.hubspot.example"), &Value::Null)
    );
}

/// A mapping update is written in the handler's own transaction, once.
async fn mapping_changes(a: &Acme) {
    let Acme {
        app, admin, start, ..
    } = a;
    let start = *start;
    let (status, mapping) = admin
        .send(
            Method::POST,
            "/mapping-configs",
            Some(json!({"name": "Invoices", "mapping": {"inv_no": "InvoiceNo"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mid = mapping["id"].as_str().unwrap().to_owned();
    let e = newest(app, "acme", Action::Create, "MappingConfig").await;
    assert_eq!(
        change(&e, "mapping.inv_no"),
        (&Value::Null, &json!("InvoiceNo"))
    );
    let body = json!({"mapping": {"inv_no": "InvoiceNumber", "due": "DueDate"}});
    assert_eq!(
        admin
            .send(Method::PUT, &format!("/mapping-configs/{mid}"), Some(body))
            .await
            .0,
        StatusCode::OK
    );
    let updates = app
        .state
        .store
        .query(
            &AuditQuery::new(Scope::tenant("acme"))
                .action(Action::Update)
                .entity_id(mid.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        updates.items.len(),
        1,
        "the transactional entry is written once, not again by the layer"
    );
    let e = &updates.items[0];
    assert_recent(e, start);
    assert_eq!(e.entity_name.as_deref(), Some("Invoices"));
    assert_eq!(
        change(e, "mapping.inv_no"),
        (&json!("InvoiceNo"), &json!("InvoiceNumber"))
    );
    assert_eq!(change(e, "mapping.due"), (&Value::Null, &json!("DueDate")));
    assert_eq!(e.route.as_deref(), Some("/mapping-configs/{id}"));
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/mapping-configs/{mid}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let e = newest(app, "acme", Action::Delete, "MappingConfig").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some(mid.as_str()), Some("Invoices"))
    );
}

/// API keys are created, revoked and deleted on the record, their secret nowhere in it.
async fn api_key_changes(a: &Acme) -> Value {
    let Acme { app, admin, .. } = a;
    let (status, created_key) = admin
        .send(
            Method::POST,
            "/api-keys",
            Some(json!({"name": "nightly-export"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let kid = created_key["id"].as_str().unwrap().to_owned();
    let e = newest(app, "acme", Action::Create, "ApiKey").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some(kid.as_str()), Some("nightly-export"))
    );
    assert!(
        e.details
            .as_deref()
            .is_some_and(|d| d.starts_with("key sk_live_")),
        "{e:?}"
    );
    assert_eq!(
        admin
            .send(Method::POST, &format!("/api-keys/{kid}/revoke"), None)
            .await
            .0,
        StatusCode::OK
    );
    let e = newest(app, "acme", Action::Revoke, "ApiKey").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some(kid.as_str()), Some("nightly-export"))
    );
    assert_eq!(change(&e, "revoked"), (&json!(false), &json!(true)));
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/api-keys/{kid}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let e = newest(app, "acme", Action::Delete, "ApiKey").await;
    assert_eq!(e.entity_id.as_deref(), Some(kid.as_str()));
    created_key
}

/// Resetting and deleting extraction cursors are recorded with what moved.
async fn cursor_changes(a: &Acme) {
    let Acme {
        app, admin, key, ..
    } = a;
    let acme = &app.demo.tenants[0];
    let (status, _) = key
        .send(
            Method::POST,
            "/extraction-cursors/ec-acme-0/reset",
            Some(json!({"position": "2026-11-20"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let e = newest(app, "acme", Action::Reset, "ExtractionCursor").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some("ec-acme-0"), Some("Orders since last sync"))
    );
    assert_eq!(
        e.details.as_deref(),
        Some("cursor moved from \"2026-11-20T00:00:00Z\" to \"2026-11-20\"")
    );
    assert_eq!(e.api_key_name.as_deref(), Some(acme.api_key.1.as_str()));
    assert_eq!(
        admin
            .send(Method::DELETE, "/extraction-cursors/ec-acme-1", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let e = newest(app, "acme", Action::Delete, "ExtractionCursor").await;
    assert_eq!(
        (e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Some("ec-acme-1"), Some("Customers delta"))
    );
}

/// "Run now" answers 202 and is recorded as the caller's `Start`; the background run then
/// records `Execute` as the system acting for the caller, with the caller's key and request.
async fn cursor_run(a: &Acme) {
    let Acme { app, key, .. } = a;
    let acme = &app.demo.tenants[0];
    let (status, body) = key
        .send(Method::POST, "/extraction-cursors/ec-acme-0/run", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["job"], "extraction-run");
    let request = newest(app, "acme", Action::Start, "ExtractionCursor").await;
    assert_eq!(request.status, Some(202));
    assert_eq!(request.actor_kind, ActorKind::ApiKey);
    assert_eq!(request.entity_id.as_deref(), Some("ec-acme-0"));
    // The run ends on its own task: wait for its entry, bounded.
    let query = AuditQuery::new(Scope::tenant("acme"))
        .action(Action::Execute)
        .entity_type("ExtractionCursor")
        .limit(1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let run = loop {
        let page = app.state.store.query(&query).await.unwrap();
        if let Some(entry) = page.items.into_iter().next() {
            break entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run's Execute entry never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(run.actor_kind, ActorKind::System);
    assert_eq!(run.actor_id, request.actor_id);
    assert_eq!(run.actor_name, request.actor_name);
    assert_eq!(run.api_key_id, request.api_key_id);
    assert_eq!(run.api_key_name.as_deref(), Some(acme.api_key.1.as_str()));
    assert_eq!(run.tenant_id.as_deref(), Some("acme"));
    assert_eq!(run.request_id, request.request_id);
    assert_eq!(run.metadata["job"], "extraction-run");
    assert_eq!(run.metadata["on_behalf_of"], "api_key");
    assert_eq!(run.outcome, Outcome::Success);
    assert_eq!(run.entity_id.as_deref(), Some("ec-acme-0"));
    assert!(run.occurred_at >= request.occurred_at, "{run:?}");
    let (_, new) = change(&run, "position");
    assert!(new.as_str().is_some_and(|p| p.starts_with("20")), "{run:?}");
}

/// A bulk deactivation is one entry naming each profile it changed, with the filter, reason
/// and count; each profile's history in the admin API shows it. Bad requests are a 400 that
/// changes nothing.
async fn profiles_bulk_deactivated(a: &Acme) {
    let Acme { app, admin, .. } = a;
    let (status, body) = admin
        .send(
            Method::PUT,
            "/connection-profiles/cp-acme-0",
            Some(json!({"host": "login2.salesforce.example"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for bad in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": (0..1001).map(|i| format!("cp-{i}")).collect::<Vec<_>>()}),
        json!({"ids": ["cp-acme-1"], "reason": "x".repeat(501)}),
        json!({"ids": ["cp-acme-1\u{0}"]}),
        json!({"kind": "salesforce", "everything": true}),
    ] {
        let (status, body) = admin
            .send(
                Method::POST,
                "/connection-profiles/bulk-deactivate",
                Some(bad.clone()),
            )
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
        assert_ne!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
    let (status, body) = admin
        .send(
            Method::POST,
            "/connection-profiles/bulk-deactivate",
            Some(json!({"kind": "salesforce", "ids": ["cp-acme-0", "cp-globex-0"], "reason": "provider sunset"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"deactivated": 1, "ids": ["cp-acme-0"]}));
    for (id, active) in [("cp-acme-0", false), ("cp-acme-1", true)] {
        let (_, profile) = admin
            .send(Method::GET, &format!("/connection-profiles/{id}"), None)
            .await;
        assert_eq!(profile["active"], active, "{profile}");
    }
    let e = newest(app, "acme", Action::Deactivate, "ConnectionProfile").await;
    assert_eq!(e.entity_id, None);
    assert_eq!(e.status, Some(200));
    assert_eq!(
        e.details.as_deref(),
        Some("deactivated 1 connection profiles")
    );
    assert_eq!(
        e.metadata["bulk"],
        json!({"count": 1, "entity_ids": ["cp-acme-0"], "filter": "2 ids kind=salesforce", "reason": "provider sunset"})
    );
    // The refused requests left entries of their own, naming nothing.
    let refused = app
        .state
        .store
        .query(
            &AuditQuery::new(Scope::tenant("acme"))
                .action(Action::Deactivate)
                .outcome(Outcome::Failure),
        )
        .await
        .unwrap();
    assert!(!refused.items.is_empty());
    assert!(
        refused
            .items
            .iter()
            .all(|e| !e.metadata.contains_key("bulk"))
    );

    // The profile's history: its own update and the bulk change, newest first.
    let (status, page) = admin
        .send(
            Method::GET,
            "/admin/audit-log/entries?entity_id=cp-acme-0&entity_type=ConnectionProfile",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(&actions[..2], ["Deactivate", "Update"], "{page}");
    assert_eq!(items[0]["id"], e.id.to_string());
    // Nothing names the other profile, nor the other tenant's.
    for id in ["cp-acme-1", "cp-globex-0"] {
        let (_, page) = admin
            .send(
                Method::GET,
                &format!("/admin/audit-log/entries?entity_id={id}&action=Deactivate"),
                None,
            )
            .await;
        assert_eq!(page["items"], json!([]), "{id}: {page}");
    }
    // Done again, nothing is left to deactivate: an entry that names nothing.
    let (status, body) = admin
        .send(
            Method::POST,
            "/connection-profiles/bulk-deactivate",
            Some(json!({"kind": "salesforce"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deactivated"], 0);
}

/// A member's admin-only change is refused and recorded as denied.
async fn member_refused(a: &Acme) {
    let Acme { app, .. } = a;
    let acme = &app.demo.tenants[0];
    let member = user_session(app, &acme.member.email, &acme.member.password).await;
    let (status, body) = member
        .send(Method::POST, "/api-keys/k-acme-ci/revoke", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let e = newest(app, "acme", Action::Revoke, "ApiKey").await;
    assert_eq!((e.outcome, e.status), (Outcome::Denied, Some(403)));
    assert_eq!(
        (e.actor_name.as_deref(), e.entity_id.as_deref()),
        (Some(acme.member.email.as_str()), Some("k-acme-ci"))
    );
}

/// A refused or failed change's entry says why: the error's code and message, as the client
/// got them, in `details`, whether the handler refused it, axum refused the body, or the
/// request's transaction was rolled back.
async fn failures_say_why(a: &Acme) {
    let Acme { app, admin, .. } = a;
    let acme = &app.demo.tenants[0];
    let member = user_session(app, &acme.member.email, &acme.member.password).await;
    member
        .send(Method::POST, "/api-keys/k-acme-ci/revoke", None)
        .await;
    let e = newest(app, "acme", Action::Revoke, "ApiKey").await;
    assert_eq!(
        e.details.as_deref(),
        Some("forbidden: this change needs the Administrator role")
    );

    // JSON of the wrong shape: axum's 422, in the service's format and in the entry.
    let (status, body) = admin
        .send(
            Method::PUT,
            "/mapping-configs/mc-acme-0",
            Some(json!({"name": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let e = newest(app, "acme", Action::Update, "MappingConfig").await;
    assert_eq!((e.outcome, e.status), (Outcome::Failure, Some(422)));
    let details = e.details.clone().unwrap_or_default();
    assert!(details.starts_with("invalid: "), "{details}");
    assert_eq!(
        details["invalid: ".len()..],
        body["message"].as_str().unwrap()[..],
        "{details}"
    );

    // Refused inside the request's transaction, which is rolled back.
    let (status, body) = admin
        .send(
            Method::PUT,
            "/connection-profiles/cp-acme-1",
            Some(json!({"host": "h".repeat(300)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let e = newest(app, "acme", Action::Update, "ConnectionProfile").await;
    assert_eq!((e.outcome, e.status), (Outcome::Failure, Some(400)));
    assert_eq!(
        e.details.as_deref(),
        Some(format!("invalid: {}", body["message"].as_str().unwrap()).as_str())
    );
    assert!(e.details.as_deref().unwrap().contains("host"));
}

/// A method a known route does not take is a 405, recorded with the route's entity type.
async fn method_not_allowed(a: &Acme) {
    let Acme { app, admin, .. } = a;
    let (status, _) = admin.send(Method::DELETE, "/tenants", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let e = newest(app, "acme", Action::Delete, "Tenant").await;
    assert_eq!(
        (e.outcome, e.status, e.route.as_deref()),
        (Outcome::Failure, Some(405), Some("/tenants"))
    );
    let (status, _) = admin
        .send(Method::DELETE, "/admin/audit-log/entries", None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let page = app
        .state
        .store
        .query(
            &AuditQuery::new(Scope::tenant("acme"))
                .action(Action::Delete)
                .limit(1),
        )
        .await
        .unwrap();
    let e = &page.items[0];
    assert_eq!(e.entity_type.as_deref(), Some("AuditLog"), "{e:?}");
}

/// The one entry of the request on `/connection-profiles/{entity_id}`, of any tenant or none.
async fn only_entry_of(app: &RunningExample, entity_id: &str) -> AuditEntry {
    let page = app
        .state
        .store
        .query(&AuditQuery::new(Scope::All).entity_id(entity_id))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    page.items.into_iter().next().unwrap()
}

/// The stored row of `entry`, as text: every column.
async fn stored_row(app: &RunningExample, entry: &AuditEntry) -> String {
    let row = audit_seaorm::entity::Entity::find_by_id(entry.id)
        .one(app.state.store.connection())
        .await
        .unwrap()
        .unwrap();
    format!("{row:?}")
}

/// A change refused by authentication (a revoked key, an unknown key, a malformed
/// `Authorization` header, a bad bearer token) is a 401 with one `denied` entry, which names
/// the credential by its fingerprint (the revoked key by its id and name), never by itself.
async fn refused_credentials(a: &Acme) {
    let Acme { app, admin, .. } = a;
    let (status, created) = admin
        .send(
            Method::POST,
            "/api-keys",
            Some(json!({"name": "retired-sync"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (revoked, revoked_id) = (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    );
    let (status, _) = admin
        .send(
            Method::POST,
            &format!("/api-keys/{revoked_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The fingerprints are the first 12 hex digits of each credential's SHA-256.
    let unknown_key = "sk_live_not_a_key_0000000000000000";
    let basic = "Basic dXNlcjpwYXNzd29yZA==";
    let bad_token = "tok_not_a_session_0000000000000000";
    let cases = [
        ("x-api-key", revoked.clone(), "refused-revoked"),
        ("x-api-key", unknown_key.to_owned(), "refused-unknown"),
        ("authorization", basic.to_owned(), "refused-basic"),
        (
            "authorization",
            format!("Bearer {bad_token}"),
            "refused-bearer",
        ),
    ];
    for (header, value, id) in &cases {
        let response = Client::new()
            .delete(format!("{}/connection-profiles/{id}", app.base))
            .header(*header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{id}: {body}");
    }

    let e = only_entry_of(app, "refused-revoked").await;
    assert_eq!((e.outcome, e.status), (Outcome::Denied, Some(401)));
    assert_eq!(
        (e.api_key_id.as_deref(), e.api_key_name.as_deref()),
        (Some(revoked_id.as_str()), Some("retired-sync"))
    );
    assert_eq!(e.tenant_id.as_deref(), Some("acme"), "in its tenant's log");
    assert_eq!(e.details.as_deref(), Some("revoked API key"));

    let e = only_entry_of(app, "refused-unknown").await;
    assert_eq!((e.outcome, e.status), (Outcome::Denied, Some(401)));
    assert_eq!(e.api_key_id.as_deref(), Some("sha256:4b00d88d932a"));
    assert_eq!(
        (e.actor_kind, e.tenant_id.as_deref()),
        (ActorKind::ApiKey, None)
    );
    assert_eq!(e.details.as_deref(), Some("unknown API key"));

    let e = only_entry_of(app, "refused-basic").await;
    assert_eq!((e.outcome, e.status), (Outcome::Denied, Some(401)));
    assert_eq!(e.metadata["fingerprint"], "sha256:9c06d532edf0");
    assert_eq!(e.details.as_deref(), Some("malformed Authorization header"));

    let e = only_entry_of(app, "refused-bearer").await;
    assert_eq!((e.outcome, e.status), (Outcome::Denied, Some(401)));
    assert_eq!(e.metadata["fingerprint"], "sha256:13374850e38e");
    assert_eq!(
        (e.actor_kind, e.tenant_id.as_deref()),
        (ActorKind::Anonymous, None)
    );
    assert_eq!(
        e.details.as_deref(),
        Some("unknown or expired session token")
    );

    for (_, value, id) in &cases {
        let row = stored_row(app, &only_entry_of(app, id).await).await;
        for secret in [value.as_str(), &value[value.len() - 16..]] {
            assert!(!row.contains(secret), "{secret} stored in {row}");
        }
    }
}

/// A failed login for an e-mail no account has belongs to no tenant: the operator sees it in
/// the audit log, a tenant's administrator does not.
async fn operator_sees_failed_logins_of_no_tenant(a: &Acme) {
    let Acme { app, admin, .. } = a;
    let (status, _) = login(app, "nobody@nowhere.example", "guess-123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let operator = &app.demo.operator;
    let operator = user_session(app, &operator.email, &operator.password).await;
    let path = "/admin/audit-log/entries?action=LoginFailed&limit=1000";
    let tried = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor_name"] == "nobody@nowhere.example")
            .cloned()
            .collect::<Vec<_>>()
    };
    let (status, page) = operator.send(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let seen = tried(&page);
    assert_eq!(seen.len(), 1, "{page}");
    assert_eq!(seen[0]["tenant_id"], Value::Null);
    assert_eq!(seen[0]["outcome"], "denied");
    // The operator reads every tenant's entries too.
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["tenant_id"] == "globex"),
        "{page}"
    );
    let (status, page) = admin.send(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(tried(&page).is_empty(), "{page}");
    assert!(!page["items"].as_array().unwrap().is_empty(), "{page}");
}

/// What a backend's columns would refuse (a 256-byte `host` on MySQL's `varchar(255)`, a NUL on
/// PostgreSQL) is a 400 naming the field, and changes nothing; text up to the columns' size,
/// in any script, is taken.
async fn hostile_input(a: &Acme) {
    let Acme { admin, .. } = a;
    let objects = [
        "/connection-profiles/cp-acme-0",
        "/mapping-configs/mc-acme-0",
        "/tenants/acme",
        "/extraction-cursors/ec-acme-0",
        "/connection-profiles",
        "/mapping-configs",
        "/api-keys",
    ];
    let mut before = Vec::new();
    for path in objects {
        before.push(admin.send(Method::GET, path, None).await);
    }
    let long = "h".repeat(256);
    let cases = [
        (
            Method::POST,
            "/connection-profiles",
            json!({"name": "Long host", "host": long}),
            "host",
        ),
        (
            Method::PUT,
            "/connection-profiles/cp-acme-0",
            json!({"host": long}),
            "host",
        ),
        (
            Method::PUT,
            "/connection-profiles/cp-acme-0",
            json!({"username": "a\u{0}b"}),
            "username",
        ),
        (
            Method::POST,
            "/mapping-configs",
            json!({"name": "Nul\u{0}name"}),
            "name",
        ),
        (
            Method::PUT,
            "/mapping-configs/mc-acme-0",
            json!({"mapping": {"a\u{0}": "b"}}),
            "mapping",
        ),
        (
            Method::PUT,
            "/mapping-configs/mc-acme-0",
            json!({"mapping": {"a": "b\u{0}"}}),
            "mapping",
        ),
        (
            Method::PUT,
            "/tenants/acme",
            json!({"name": "Acme\u{0}"}),
            "name",
        ),
        (Method::PUT, "/tenants/acme", json!({"plan": long}), "plan"),
        (
            Method::POST,
            "/tenants",
            json!({"name": "Initech", "plan": long}),
            "plan",
        ),
        (
            Method::POST,
            "/api-keys",
            json!({"name": "ci\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            "/extraction-cursors/ec-acme-0/reset",
            json!({"position": "\u{0}"}),
            "position",
        ),
        (
            Method::POST,
            "/login",
            json!({"email": "admin@acme.example\u{0}", "password": "x"}),
            "email",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = admin.send(method.clone(), path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "invalid", "{method} {path}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{field}`")),
            "{method} {path}: {answer}"
        );
    }
    for (path, before) in objects.iter().zip(&before) {
        assert_eq!(
            &admin.send(Method::GET, path, None).await,
            before,
            "{path} changed"
        );
    }
    // An id no column could hold is not looked up: a 404, not the database's error.
    for path in [
        "/connection-profiles/%00",
        "/mapping-configs/a%00b",
        "/api-keys/%00",
    ] {
        let (status, answer) = admin.send(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        let (status, answer) = admin.send(Method::DELETE, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    // The limits are the columns': 255 bytes of host, and any script, are stored.
    let host = "h".repeat(255);
    let (status, created) = admin
        .send(
            Method::POST,
            "/connection-profiles",
            Some(json!({"name": "Zürich 東京 🚀", "host": host})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, read) = admin
        .send(
            Method::GET,
            &format!("/connection-profiles/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (&read["name"], &read["host"]),
        (&json!("Zürich 東京 🚀"), &json!(host))
    );
}

/// Reads are answered, record nothing, and return no secret or its hash.
async fn reads_record_nothing(a: &Acme) {
    let Acme { app, admin, .. } = a;
    let count = |app: &RunningExample| {
        let store = app.state.store.clone();
        async move {
            store
                .query(&AuditQuery::new(Scope::tenant("acme")).limit(1000))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    let before = count(app).await;
    for path in [
        "/tenants/acme",
        "/api-keys/k-acme-ci",
        "/extraction-cursors/ec-acme-0",
        "/connection-profiles/cp-acme-0",
        "/mapping-configs/mc-acme-0",
        "/api-keys",
        "/connection-profiles",
    ] {
        let (status, body) = admin.send(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("key_hash")
                && !text.contains("client_secret")
                && !text.contains("demo-secret"),
            "{path}: {text}"
        );
    }
    assert_eq!(
        admin.send(Method::GET, "/tenants/globex", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        count(app).await,
        before,
        "GET requests must not be recorded"
    );
}

/// No secret the requests above carried (passwords, keys, tokens, connection secrets) is in any
/// column of any row.
async fn no_secret_reaches_the_audit_table(backend: Backend) {
    let Some(a) = acme(backend).await else {
        return;
    };
    logins(&a).await;
    profile_changes(&a).await;
    let created_key = api_key_changes(&a).await;
    let Acme { app, admin, .. } = &a;
    let token = admin.auth.1.trim_start_matches("Bearer ").to_owned();
    let mut secrets = vec![
        token,
        created_key["key"].as_str().unwrap().to_owned(),
        "cs-created-0001".into(),
        "cs-rotated-0002".into(),
        "wrong-password-123".into(),
    ];
    for t in &app.demo.tenants {
        secrets.extend([
            t.admin.password.clone(),
            t.member.password.clone(),
            t.api_key.0.clone(),
        ]);
    }
    secrets.extend(["demo-secret-acme-0".into(), "demo-secret-globex-1".into()]);
    let rows = audit_seaorm::entity::Entity::find()
        .all(app.state.store.connection())
        .await
        .unwrap();
    assert!(rows.len() > 40, "{}", rows.len());
    for row in &rows {
        let text = format!("{row:?}");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "secret {secret} found in {text}"
            );
        }
    }
}

/// `GET /admin/audit-log/verify`: an administrator verifies their own tenant's chain, and
/// an entry edited in the database breaks it there.
async fn the_log_verifies_and_an_edited_entry_breaks_it(backend: Backend) {
    use audit_seaorm::sea_orm::sea_query::Expr;
    use audit_seaorm::sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let Some(app) = start_example(backend).await else {
        return;
    };
    let acme = &app.demo.tenants[0];
    let admin = user_session(&app, &acme.admin.email, &acme.admin.password).await;
    let (status, report) = admin
        .send(Method::GET, "/admin/audit-log/verify", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["tenant_id"], "acme");
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["checked"].as_u64().unwrap() > 15, "{report}");
    assert_eq!(report["last"]["hash"].as_str().unwrap().len(), 64);

    // Another tenant's chain, or a parameter it does not take, is refused.
    let (status, _) = admin
        .send(Method::GET, "/admin/audit-log/verify?tenant=globex", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .send(
            Method::GET,
            "/admin/audit-log/verify?tenant=acme&limit=1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // One of acme's entries edited in place.
    let db = app.state.store.connection();
    let third: uuid::Uuid = audit_seaorm::entity::Entity::find()
        .select_only()
        .column(audit_seaorm::entity::Column::Id)
        .filter(audit_seaorm::entity::Column::TenantId.eq("acme"))
        .order_by_asc(audit_seaorm::entity::Column::Id)
        .offset(2)
        .limit(1)
        .into_tuple()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    audit_seaorm::entity::Entity::update_many()
        .col_expr(
            audit_seaorm::entity::Column::Details,
            Expr::value("nothing happened"),
        )
        .filter(audit_seaorm::entity::Column::Id.eq(third))
        .exec(db)
        .await
        .unwrap();
    let (status, report) = admin
        .send(Method::GET, "/admin/audit-log/verify", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["broken"]["reason"], "hash", "{report}");
    assert_eq!(report["broken"]["id"], third.to_string(), "{report}");
}

async fn admins_see_only_their_own_tenant(backend: Backend) {
    let Some(app) = start_example(backend).await else {
        return;
    };
    let (acme, globex) = (&app.demo.tenants[0], &app.demo.tenants[1]);
    let acme_admin = user_session(&app, &acme.admin.email, &acme.admin.password).await;
    let globex_admin = user_session(&app, &globex.admin.email, &globex.admin.password).await;

    let (status, page) = acme_admin
        .send(Method::GET, "/admin/audit-log/entries?limit=1000", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert!(items.len() > 15, "{}", items.len());
    assert!(
        items.iter().all(|e| e["tenant_id"] == "acme"),
        "an acme admin saw another tenant's entry"
    );

    // An entry of the other tenant is 404 by id, and absent from every export.
    let (_, other) = globex_admin
        .send(Method::GET, "/admin/audit-log/entries?limit=1", None)
        .await;
    let other_id = other["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(other["items"][0]["tenant_id"], "globex");
    let (status, body) = acme_admin
        .send(
            Method::GET,
            &format!("/admin/audit-log/entries/{other_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        globex_admin
            .send(
                Method::GET,
                &format!("/admin/audit-log/entries/{other_id}"),
                None
            )
            .await
            .0,
        StatusCode::OK
    );
    for format in ["csv", "json", "ndjson"] {
        let (status, body) = acme_admin
            .send(
                Method::GET,
                &format!("/admin/audit-log/export.{format}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let text = body.to_string();
        assert!(
            !text.contains("globex") && !text.contains(&other_id),
            "{format} export leaked another tenant"
        );
        assert!(text.contains("acme"), "{format} export is empty");
    }

    // Members and callers without a session are refused.
    let member = user_session(&app, &acme.member.email, &acme.member.password).await;
    let (status, body) = member
        .send(Method::GET, "/admin/audit-log/entries", None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("access_denied"))
    );
    let anonymous = Client::new()
        .get(format!("{}/admin/audit-log/entries", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The reads themselves are in the reader's log.
    let reads = app
        .state
        .store
        .query(&AuditQuery::new(Scope::tenant("acme")).action(Action::Export))
        .await
        .unwrap();
    assert_eq!(reads.items.len(), 3);
    assert!(
        reads
            .items
            .iter()
            .all(|e| e.actor_name.as_deref() == Some(acme.admin.email.as_str()))
    );
}

/// `DEMO_ADMIN_TOKEN` acts as the demo administrator only while the process runs with it: it
/// is kept in memory, never stored as a session that would outlive the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_token_works_only_while_it_is_set() {
    let app = start_example(Backend::Sqlite).await.unwrap();
    let mut with_token = app.state.clone();
    with_token.demo_admin_token_hash = Some(integrations_admin::auth::sha256_hex("t0k3n"));
    let (addr, server) = audit_tests::serve(integrations_admin::router(with_token)).await;
    let get = |base: String| async move {
        Client::new()
            .get(format!("{base}/admin/audit-log/entries"))
            .header("authorization", "Bearer t0k3n")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get(format!("http://{addr}")).await, StatusCode::OK);
    server.abort();
    // The same database, served without the variable: the token means nothing.
    assert_eq!(get(app.base.clone()).await, StatusCode::UNAUTHORIZED);
    let sessions = integrations_admin::model::session::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
}

/// 32 clients at once change objects in transactions that read, then write (a mapping in the
/// handler's own transaction, a connection profile in the request's): every request is
/// answered 2xx (on SQLite, none finds the database locked; on PostgreSQL and MySQL none is a
/// deadlock's victim) and every change has its entry.
async fn concurrent_transactional_updates_all_succeed_with_their_entries(backend: Backend) {
    const CLIENTS: usize = 32;
    const EACH: usize = 10;
    let Some(app) = start_example(backend).await else {
        return;
    };
    let admin = &app.demo.tenants[0].admin;
    let auth = user_session(&app, &admin.email, &admin.password).await.auth;
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (base, auth) = (app.base.clone(), auth.clone());
        clients.push(tokio::spawn(async move {
            let http = Client::new();
            let mut refused = Vec::new();
            for n in 0..EACH {
                let name = format!("c{client}-n{n}");
                let path = match n % 2 {
                    0 => "/mapping-configs/mc-acme-0",
                    _ => "/connection-profiles/cp-acme-0",
                };
                let response = http
                    .put(format!("{base}{path}"))
                    .header(auth.0, &auth.1)
                    .json(&json!({"name": name}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                if !status.is_success() {
                    refused.push(format!(
                        "{path} {name}: {status} {}",
                        response.text().await.unwrap()
                    ));
                }
            }
            refused
        }));
    }
    let mut refused = Vec::new();
    for client in clients {
        refused.extend(client.await.unwrap());
    }
    assert!(
        refused.is_empty(),
        "{} of {} refused, such as {:?}",
        refused.len(),
        CLIENTS * EACH,
        refused.first()
    );
    for (entity_id, parity) in [("mc-acme-0", 0), ("cp-acme-0", 1)] {
        let page = app
            .state
            .store
            .query(
                &AuditQuery::new(Scope::tenant("acme"))
                    .action(Action::Update)
                    .entity_id(entity_id)
                    .limit(1000),
            )
            .await
            .unwrap();
        let mut named: Vec<String> = page
            .items
            .iter()
            .filter(|e| e.outcome == Outcome::Success)
            .filter_map(|e| e.entity_name.clone())
            .filter(|name| name.starts_with('c'))
            .collect();
        named.sort();
        let mut sent: Vec<String> = (0..CLIENTS)
            .flat_map(|c| {
                (0..EACH)
                    .filter(move |n| n % 2 == parity)
                    .map(move |n| format!("c{c}-n{n}"))
            })
            .collect();
        sent.sort();
        assert_eq!(named, sent, "{entity_id}: one entry for every change");
    }
}

/// Every error the example answers, axum's rejections and the router's included, is JSON
/// `{"error": code, "message": text}` with `Content-Type: application/json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_a_code_and_a_message() {
    let app = start_example(Backend::Sqlite).await.unwrap();
    let admin = &app.demo.tenants[0].admin;
    let auth = user_session(&app, &admin.email, &admin.password).await.auth;
    let http = Client::new();
    let url = |path: &str| format!("{}{path}", app.base);
    let json_body = |text: &str| {
        http.post(url("/mapping-configs"))
            .header(auth.0, &auth.1)
            .header("content-type", "application/json")
            .body(text.to_owned())
    };
    let cases = [
        (
            "a body that is not JSON",
            json_body("{\"name\": "),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            "a field out of bounds",
            json_body(&json!({"name": "x".repeat(201)}).to_string()),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            "a path segment that is not UTF-8",
            http.get(url("/connection-profiles/%FF"))
                .header(auth.0, &auth.1),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            "no credentials",
            http.post(url("/mapping-configs"))
                .json(&json!({"name": "x"})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "a member's admin-only change",
            http.post(url("/api-keys/k-acme-ci/revoke"))
                .header("x-api-key", &app.demo.tenants[0].api_key.0),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "an unknown route",
            http.get(url("/no-such-thing")).header(auth.0, &auth.1),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "an unknown object",
            http.get(url("/mapping-configs/nope"))
                .header(auth.0, &auth.1),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "a method the route does not take",
            http.patch(url("/tenants")).header(auth.0, &auth.1),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "a body past the limit",
            json_body(&json!({"name": "x", "mapping": {"a": "b".repeat(300 * 1024)}}).to_string()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "a body that is not declared JSON",
            http.post(url("/mapping-configs"))
                .header(auth.0, &auth.1)
                .header("content-type", "text/plain")
                .body("{\"name\": \"x\"}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "JSON of the wrong shape",
            json_body("{\"name\": 5}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "a required field missing",
            http.post(url("/api-keys"))
                .header(auth.0, &auth.1)
                .json(&json!({"title": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
    ];
    for (case, request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{case}");
        let allow = response.headers().get("allow").cloned();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{case}"
        );
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], code, "{case}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{case}: {body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{case}: {body}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(allow.is_some(), "{case}: the Allow header is kept");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_with_a_trailing_slash_keeps_its_filters() {
    let app = start_example(Backend::Sqlite).await.unwrap();
    let admin = &app.demo.tenants[0].admin;
    let auth = user_session(&app, &admin.email, &admin.password).await.auth;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, location) in [
        (
            "/admin/audit-log/?entity_type=ApiKey&action=Revoke",
            "/admin/audit-log?entity_type=ApiKey&action=Revoke",
        ),
        ("/admin/audit-log/", "/admin/audit-log"),
    ] {
        let response = client
            .get(format!("{}{path}", app.base))
            .header(auth.0, &auth.1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()["location"], location);
    }
}

/// Signed out, the viewer's page is served (it holds no data) and tells the browser where to
/// sign in, while its data answers 401; signing out ends the session, is recorded, and sends
/// the browser back to the sign-in page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_signs_in_and_out_through_the_services_pages() {
    let app = start_example(Backend::Sqlite).await.unwrap();
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/admin/audit-log", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#""sign_in_url":"/login""#), "{html}");
    assert!(html.contains(r#""sign_out_url":"/logout""#));
    assert!(html.contains("Connection profile") || html.contains("ConnectionProfile"));
    let data = client
        .get(format!("{}/admin/audit-log/entries", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(data.status(), StatusCode::UNAUTHORIZED);
    let login = client
        .get(format!(
            "{}/login?next=/admin/audit-log%3Faction%3DRevoke",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login.contains("get(\"next\")"),
        "the sign-in page follows ?next="
    );

    let admin = &app.demo.tenants[0].admin;
    let session = user_session(&app, &admin.email, &admin.password).await;
    let token = session.auth.1.trim_start_matches("Bearer ").to_owned();
    let cookie = format!("ia_session={token}");
    let viewer_data = || {
        client
            .get(format!("{}/admin/audit-log/entries?limit=1", app.base))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(viewer_data().await.unwrap().status(), StatusCode::OK);
    let out = client
        .get(format!("{}/logout", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()["location"], "/login");
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        viewer_data().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let e = newest(&app, "acme", Action::Logout, "User").await;
    assert_eq!(
        (e.outcome, e.entity_id.as_deref(), e.actor_name.as_deref()),
        (
            Outcome::Success,
            Some(admin.id.as_str()),
            Some(admin.email.as_str())
        )
    );
    // Signing out twice, or signed out, changes nothing and records nothing more.
    let again = client
        .get(format!("{}/logout", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(newest(&app, "acme", Action::Logout, "User").await.id, e.id);
}

/// A test per case and backend that runs `$check` on the example with Acme's administrator
/// signed in: `sqlite::$case`, `postgres::$case`, `mysql::$case`.
macro_rules! acme_cases {
    ($($case:ident => $check:ident),* $(,)?) => {
        $(
            async fn $case(backend: Backend) {
                if let Some(acme) = acme(backend).await {
                    $check(&acme).await;
                }
            }
        )*
    };
}

acme_cases!(
    logins_and_failed_logins_are_recorded => logins,
    tenant_changes_are_recorded_with_old_and_new_values => tenant_changes,
    connection_profile_changes_name_the_api_key_and_redact_secrets => profile_changes,
    a_mapping_update_is_recorded_once_in_the_handlers_transaction => mapping_changes,
    api_keys_are_recorded_without_their_secret => api_key_changes,
    extraction_cursor_resets_and_deletes_are_recorded => cursor_changes,
    a_background_run_is_recorded_as_the_system_acting_for_the_caller => cursor_run,
    a_bulk_deactivation_is_one_entry_each_profile_finds => profiles_bulk_deactivated,
    a_members_refused_change_is_recorded_as_denied => member_refused,
    a_failures_entry_says_why => failures_say_why,
    reads_are_answered_and_record_nothing => reads_record_nothing,
    a_method_a_route_does_not_take_is_recorded_with_its_entity => method_not_allowed,
    refused_credentials_are_recorded_as_denied_with_their_fingerprint => refused_credentials,
    the_operator_sees_failed_logins_of_no_tenant => operator_sees_failed_logins_of_no_tenant,
    what_a_column_would_refuse_is_a_400_that_changes_nothing => hostile_input,
);

macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(audit_tests::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(audit_tests::Backend::Postgres).await } )* }
        mod mysql { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(audit_tests::Backend::Mysql).await } )* }
    };
}

on_every_backend!(
    logins_and_failed_logins_are_recorded,
    tenant_changes_are_recorded_with_old_and_new_values,
    connection_profile_changes_name_the_api_key_and_redact_secrets,
    a_mapping_update_is_recorded_once_in_the_handlers_transaction,
    api_keys_are_recorded_without_their_secret,
    extraction_cursor_resets_and_deletes_are_recorded,
    a_background_run_is_recorded_as_the_system_acting_for_the_caller,
    a_bulk_deactivation_is_one_entry_each_profile_finds,
    a_members_refused_change_is_recorded_as_denied,
    a_failures_entry_says_why,
    reads_are_answered_and_record_nothing,
    a_method_a_route_does_not_take_is_recorded_with_its_entity,
    refused_credentials_are_recorded_as_denied_with_their_fingerprint,
    the_operator_sees_failed_logins_of_no_tenant,
    what_a_column_would_refuse_is_a_400_that_changes_nothing,
    concurrent_transactional_updates_all_succeed_with_their_entries,
    no_secret_reaches_the_audit_table,
    admins_see_only_their_own_tenant,
    the_log_verifies_and_an_edited_entry_breaks_it,
);
