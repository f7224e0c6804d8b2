//! The demo history a first start seeds: made of real requests through the service's router,
//! so it agrees with the objects in the database and with what the layer records.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

use std::collections::{HashMap, HashSet};

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_core::{Action, AuditEntry, Outcome};
use audit_seaorm::sea_orm::{ConnectionTrait, Statement};
use chrono::Utc;

async fn seeded() -> (
    tempfile::TempDir,
    integrations_admin::AppState,
    integrations_admin::Demo,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
    let state = integrations_admin::connect(&url).await.unwrap();
    let demo = integrations_admin::seed_demo(&state)
        .await
        .unwrap()
        .unwrap();
    (dir, state, demo)
}

async fn all_entries(state: &integrations_admin::AppState) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let mut query = AuditQuery::new(Scope::All).limit(1000);
    loop {
        let page = state.store.query(&query).await.unwrap();
        entries.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query = query.cursor(cursor),
            None => return entries,
        }
    }
}

/// The ids of the rows of `table` in the service's database.
async fn ids(state: &integrations_admin::AppState, table: &str) -> HashSet<String> {
    let backend = state.db.get_database_backend();
    let rows = state
        .db
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT id FROM {table}"),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "id").unwrap())
        .collect()
}

#[tokio::test]
async fn the_demo_history_is_what_the_layer_recorded_of_real_requests() {
    let (_dir, state, demo) = seeded().await;
    let entries = all_entries(&state).await;
    assert!(entries.len() >= 45, "{} entries", entries.len());

    // Spread over the past days, none in the future, each from a request of its own.
    let now = Utc::now();
    let days: HashSet<_> = entries.iter().map(|e| e.occurred_at.date_naive()).collect();
    assert!(days.len() >= 6, "{days:?}");
    assert!(entries.iter().all(|e| e.occurred_at <= now));
    let requests: HashSet<_> = entries.iter().map(|e| e.request_id.clone()).collect();
    assert_eq!(requests.len(), entries.len(), "one entry per request");
    assert!(
        entries
            .iter()
            .all(|e| e.route.is_some() && e.ip.is_some() && e.user_agent.is_some())
    );

    // Every object an entry names exists, or an entry says it was deleted.
    let deleted: HashSet<_> = entries
        .iter()
        .filter(|e| e.action == Action::Delete && e.outcome == Outcome::Success)
        .filter_map(|e| e.entity_id.clone())
        .collect();
    let tables = [
        ("ConnectionProfile", "connection_profiles"),
        ("MappingConfig", "mapping_configs"),
        ("ApiKey", "api_keys"),
        ("ExtractionCursor", "extraction_cursors"),
        ("Tenant", "tenants"),
        ("User", "users"),
    ];
    let mut existing = HashMap::new();
    for (entity, table) in tables {
        existing.insert(entity, ids(&state, table).await);
    }
    for e in &entries {
        let (Some(entity), Some(id)) = (e.entity_type.as_deref(), e.entity_id.as_deref()) else {
            continue;
        };
        let known = existing
            .get(entity)
            .unwrap_or_else(|| panic!("unexpected type {entity}"));
        assert!(
            known.contains(id) || deleted.contains(id),
            "{} {entity} {id} names no object",
            e.action
        );
    }

    // Each object is created at most once, and every successful update changes something.
    let mut created = HashSet::new();
    for e in entries.iter().filter(|e| e.action == Action::Create) {
        assert!(created.insert(e.entity_id.clone()), "created twice: {e:?}");
    }
    for e in entries
        .iter()
        .filter(|e| e.outcome == Outcome::Success)
        .filter(|e| {
            matches!(
                e.action,
                Action::Update | Action::Reset | Action::Revoke | Action::ToggleActive
            )
        })
    {
        assert!(
            !e.changes.is_empty(),
            "an update that changes nothing: {e:?}"
        );
    }
    // A created secret shows as set, never as a value, and never as one replaced.
    let profile = entries
        .iter()
        .find(|e| {
            e.action == Action::Create && e.entity_type.as_deref() == Some("ConnectionProfile")
        })
        .unwrap();
    let secret = profile
        .changes
        .iter()
        .find(|c| c.field == "client_secret")
        .unwrap();
    assert_eq!(
        (secret.old.clone(), secret.new.clone()),
        (serde_json::Value::Null, serde_json::json!("[REDACTED]"))
    );

    // What the history promises to show: sign-ins and failed ones, the CI key's work, a
    // member refused, a revoked key refused with its name, an unknown key as a fingerprint,
    // failed sign-ins of unknown addresses with no tenant.
    let acme = &demo.tenants[0];
    let has = |f: &dyn Fn(&AuditEntry) -> bool| entries.iter().any(f);
    assert!(has(
        &|e| e.action == Action::Login && e.actor_id.as_deref() == Some(acme.admin.id.as_str())
    ));
    assert!(has(
        &|e| e.action == Action::LoginFailed && e.tenant_id.as_deref() == Some("acme")
    ));
    assert!(has(&|e| e.action == Action::Reset
        && e.api_key_name.as_deref() == Some(acme.api_key.1.as_str())));
    assert!(has(
        &|e| e.action == Action::Revoke && e.outcome == Outcome::Denied
    ));
    assert!(has(&|e| e.outcome == Outcome::Denied
        && e.api_key_name.as_deref() == Some("warehouse-export")
        && e.tenant_id.as_deref() == Some("acme")));
    assert!(has(&|e| e.outcome == Outcome::Denied
        && e.tenant_id.is_none()
        && e.api_key_id
            .as_deref()
            .is_some_and(|k| k.starts_with("sha256:"))));
    let strangers = entries
        .iter()
        .filter(|e| e.action == Action::LoginFailed && e.tenant_id.is_none())
        .count();
    assert_eq!(strangers, 3);
    // No secret of the history is in the log.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        "hs-demo-acme-7f3a",
        "rotated-acme-4411",
        "Summer2026",
        "password1",
        "sk_live_guessed",
    ] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }
}
