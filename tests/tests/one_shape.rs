//! The entry has one shape: its fields, named once below, are the keys of its JSON form, the
//! columns of a CSV export, the properties of the OpenAPI schema the admin router serves, and
//! the columns of the `audit_log` table, in the same order where there is an order.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use audit_core::{Action, AuditEntry, MemoryStore};
use audit_seaorm::entity;
use audit_seaorm::sea_orm::{EntityName, IdenStatic, Iterable};
use audit_tower::admin::{self, Access};
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Every field of an audit entry, in declaration order.
const FIELDS: [&str; 24] = [
    "id",
    "occurred_at",
    "tenant_id",
    "team_id",
    "actor_kind",
    "actor_id",
    "actor_name",
    "api_key_id",
    "api_key_name",
    "action",
    "entity_type",
    "entity_id",
    "entity_name",
    "details",
    "changes",
    "outcome",
    "status",
    "ip",
    "user_agent",
    "request_id",
    "trace_id",
    "method",
    "route",
    "metadata",
];

async fn get(uri: &str) -> Vec<u8> {
    let app: axum::Router = admin::router(MemoryStore::new())
        .guard(|_: &http::request::Parts| Access::All)
        .into_router();
    let response = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[test]
fn the_json_form_has_every_field_in_order() {
    let entry = AuditEntry::new(Action::Create);
    let text = serde_json::to_string(&entry).unwrap();
    let mut at = 0;
    for field in FIELDS {
        let found = text[at..]
            .find(&format!("\"{field}\":"))
            .unwrap_or_else(|| panic!("{field} missing or out of order in {text}"));
        at += found;
    }
    assert_eq!(
        serde_json::to_value(&entry)
            .unwrap()
            .as_object()
            .unwrap()
            .len(),
        FIELDS.len()
    );
    assert_eq!(AuditEntry::field_names(), FIELDS);
}

#[tokio::test]
async fn a_csv_export_has_one_column_per_field_in_order() {
    let csv = get("/export.csv").await;
    let header = String::from_utf8(csv).unwrap();
    let header = header.lines().next().unwrap().to_owned();
    assert_eq!(header, FIELDS.join(","));
}

#[tokio::test]
async fn the_openapi_schema_names_every_field_and_requires_them() {
    let doc: Value = serde_json::from_slice(&get("/openapi.json").await).unwrap();
    let schema = &doc["components"]["schemas"]["AuditEntry"];
    let mut properties: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    properties.sort_unstable();
    let mut fields = FIELDS.to_vec();
    fields.sort_unstable();
    assert_eq!(properties, fields);
    // Every field is in every entry the API returns (null when empty).
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, fields);
}

#[test]
fn the_table_has_one_column_per_field_in_order() {
    let columns: Vec<&str> = entity::Column::iter().map(|c| c.as_str()).collect();
    // The entry's fields, then the store's own: its link in the hash chain, the lookup
    // buckets of its actor and object ids, and the text free text searches.
    let (fields, store) = columns.split_at(FIELDS.len());
    assert_eq!(fields, FIELDS);
    assert_eq!(
        store,
        [
            "chain_seq",
            "chain_hash",
            "chain_personal",
            "chain_salt",
            "actor_bucket",
            "entity_bucket",
            "search_text"
        ]
    );
    assert_eq!(entity::Entity.table_name(), "audit_log");
}
