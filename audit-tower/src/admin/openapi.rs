//! `GET /openapi.json`: an OpenAPI 3.0 document of the admin endpoints, made from the same
//! parameter table the parser uses.

use audit_core::{Action, AuditSink, AuditStore};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::csv::COLUMNS;
use super::handlers::AppState;
use super::params::{PARAMETERS, ValueType};
use super::response::common_headers;

/// Serves the document made by [`document`].
pub(crate) async fn serve<S: AuditStore + AuditSink>(State(shared): AppState<S>) -> Response {
    let mut response = Response::new(Body::from(shared.openapi.clone()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    common_headers(headers);
    response
}

fn schema(kind: ValueType) -> Value {
    match kind {
        ValueType::Text => json!({"type": "string", "maxLength": 255}),
        ValueType::Action => json!({
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
            "description": format!(
                "Well-known actions: {}; any other name of this pattern is a custom action.",
                Action::well_known().map(|a| a.as_str().to_owned()).collect::<Vec<_>>().join(", ")
            ),
        }),
        ValueType::ActorKind => {
            json!({"type": "string", "enum": ["user", "api_key", "system", "anonymous"]})
        }
        ValueType::Outcome => json!({"type": "string", "enum": ["success", "failure", "denied"]}),
        ValueType::DateTime => json!({"type": "string", "format": "date-time"}),
        ValueType::Order => json!({"type": "string", "enum": ["desc", "asc"], "default": "desc"}),
        ValueType::Limit => {
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
        }
        ValueType::Cursor => json!({"type": "string"}),
    }
}

fn parameters(list: bool) -> Vec<Value> {
    PARAMETERS
        .iter()
        .filter(|p| list || !p.list_only)
        .map(|p| {
            let schema = if p.repeatable {
                json!({"type": "array", "items": schema(p.kind), "maxItems": 100})
            } else {
                schema(p.kind)
            };
            json!({
                "name": p.name,
                "in": "query",
                "required": false,
                "description": p.description,
                "schema": schema,
                "style": "form",
                "explode": true,
            })
        })
        .collect()
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

fn export_operation(summary: &str, media_type: &str, schema: Value) -> Value {
    json!({
        "get": {
            "summary": summary,
            "description": "Every entry matching the filters, in the requested order, streamed; \
                with no `to`, up to the moment the export started. The download is recorded as \
                an `Export` of the `AuditLog`.",
            "parameters": parameters(false),
            "responses": {
                "200": {
                    "description": "The file, with a `Content-Disposition: attachment` name.",
                    "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                    "content": {media_type: {"schema": schema}},
                },
                "400": error_response("A parameter is malformed or unknown; `parameter` names it."),
                "403": error_response("The guard denied access."),
            },
        }
    })
}

/// The document, serialised once.
pub(crate) fn document() -> Bytes {
    let entry_ref = || json!({"$ref": "#/components/schemas/AuditEntry"});
    let nullable_text = || json!({"type": "string", "nullable": true});
    let doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Audit log",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read, filter and export the audit log. Every read and export is \
                itself recorded. Paths are relative to where the admin router is mounted.",
        },
        "paths": {
            "/entries": {
                "get": {
                    "summary": "One page of entries, newest first by default",
                    "parameters": parameters(true),
                    "responses": {
                        "200": {
                            "description": "A page; follow `next_cursor` for the next one.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}},
                        },
                        "400": error_response("A parameter is malformed or unknown; `parameter` names it."),
                        "403": error_response("The guard denied access."),
                    },
                }
            },
            "/entries/{id}": {
                "get": {
                    "summary": "One entry with its field-level changes",
                    "parameters": [{
                        "name": "id", "in": "path", "required": true,
                        "schema": {"type": "string", "format": "uuid"},
                    }],
                    "responses": {
                        "200": {
                            "description": "The entry.",
                            "content": {"application/json": {"schema": entry_ref()}},
                        },
                        "400": error_response("The id is not a UUID."),
                        "403": error_response("The guard denied access."),
                        "404": error_response("No such entry within your scope."),
                    },
                }
            },
            "/export.csv": export_operation(
                "Export as CSV (RFC 4180, formulas neutralised)",
                "text/csv",
                json!({"type": "string", "description": format!("Header row: {}", COLUMNS.join(","))}),
            ),
            "/export.json": export_operation(
                "Export as one JSON array",
                "application/json",
                json!({"type": "array", "items": entry_ref()}),
            ),
            "/export.ndjson": export_operation(
                "Export as newline-delimited JSON, one entry per line",
                "application/x-ndjson",
                entry_ref(),
            ),
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3 document.", "content": {"application/json": {}}}},
                }
            },
            "/": {
                "get": {
                    "summary": "The viewer page",
                    "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "enum": ["invalid_parameter", "access_denied", "not_found", "store_unavailable", "store_error"]},
                        "parameter": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
                "Page": {
                    "type": "object",
                    "required": ["items", "next_cursor"],
                    "properties": {
                        "items": {"type": "array", "items": entry_ref()},
                        "next_cursor": nullable_text(),
                    },
                },
                "Change": {
                    "type": "object",
                    "required": ["field", "old", "new"],
                    "properties": {
                        "field": {"type": "string"},
                        "old": {"description": "Any JSON value; null when the field did not exist."},
                        "new": {"description": "Any JSON value; null when the field no longer exists."},
                    },
                },
                "AuditEntry": {
                    "type": "object",
                    "required": ["id", "occurred_at", "actor_kind", "action", "changes", "outcome", "metadata"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "tenant_id": nullable_text(),
                        "team_id": nullable_text(),
                        "actor_kind": schema(ValueType::ActorKind),
                        "actor_id": nullable_text(),
                        "actor_name": nullable_text(),
                        "api_key_id": nullable_text(),
                        "api_key_name": nullable_text(),
                        "action": {"type": "string"},
                        "entity_type": nullable_text(),
                        "entity_id": nullable_text(),
                        "entity_name": nullable_text(),
                        "details": nullable_text(),
                        "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
                        "outcome": schema(ValueType::Outcome),
                        "status": {"type": "integer", "nullable": true},
                        "ip": nullable_text(),
                        "user_agent": nullable_text(),
                        "request_id": nullable_text(),
                        "method": nullable_text(),
                        "route": nullable_text(),
                        "metadata": {"type": "object", "additionalProperties": true},
                    },
                },
            }
        },
    });
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}
