//! `GET /openapi.json`: an OpenAPI 3.0 document of the admin endpoints. The schemas of the
//! entry, the page and the error body are generated from the types the handlers serialise
//! (`schemars`), the parameters from the table the query parser reads, and every bound from the
//! constant that defines it, so the document cannot drift from what the router does.

use audit_core::store::{
    AuditStore, DEFAULT_LIMIT, MAX_FILTER_VALUE_LEN, MAX_FILTER_VALUES, MAX_LIMIT, MAX_TEXT_CHARS,
    Page,
};
use audit_core::{Action, ActorKind, AuditEntry, AuditSink, Outcome};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::csv::columns;
use super::error::ErrorBody;
use super::handlers::{AppState, Health};
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

/// The schema of a parameter's value. Enumerations are the types' own text forms.
fn schema(kind: ValueType) -> Value {
    let texts = |values: &[&str]| json!({"type": "string", "enum": values});
    match kind {
        ValueType::Text => json!({"type": "string", "maxLength": MAX_FILTER_VALUE_LEN}),
        ValueType::FreeText => json!({"type": "string", "maxLength": MAX_TEXT_CHARS}),
        ValueType::Action => json!({"$ref": "#/components/schemas/Action"}),
        ValueType::ActorKind => texts(&[
            ActorKind::User.as_str(),
            ActorKind::ApiKey.as_str(),
            ActorKind::System.as_str(),
            ActorKind::Anonymous.as_str(),
        ]),
        ValueType::Outcome => texts(&[
            Outcome::Success.as_str(),
            Outcome::Failure.as_str(),
            Outcome::Denied.as_str(),
            Outcome::Unknown.as_str(),
        ]),
        ValueType::DateTime => json!({"type": "string", "format": "date-time"}),
        ValueType::Order => json!({"type": "string", "enum": ["desc", "asc"], "default": "desc"}),
        ValueType::Limit => json!({
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT,
        }),
        ValueType::Cursor => json!({"$ref": "#/components/schemas/Cursor"}),
        ValueType::Reads => {
            json!({"type": "string", "enum": ["hide", "include"], "default": "hide"})
        }
        ValueType::TraceId => json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}),
    }
}

fn parameters(list: bool) -> Vec<Value> {
    PARAMETERS
        .iter()
        .filter(|p| list || !p.list_only)
        .map(|p| {
            let schema = if p.repeatable {
                json!({"type": "array", "items": schema(p.kind), "maxItems": MAX_FILTER_VALUES})
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

/// The document, serialised once.
pub(crate) fn document() -> Bytes {
    let mut generator = SchemaSettings::openapi3().for_serialize().into_generator();
    let page_ref = Value::from(generator.subschema_for::<Page>());
    let entry_ref = Value::from(generator.subschema_for::<AuditEntry>());
    let error_ref = Value::from(generator.subschema_for::<ErrorBody>());
    let health_ref = Value::from(generator.subschema_for::<Health>());
    let _ = generator.subschema_for::<Action>();
    let grouped = super::summary::openapi_paths(&mut generator, &parameters(false), &error_ref);
    let schemas = generator.take_definitions(true);
    let error_response = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": error_ref}},
        })
    };
    let export_operation = |summary: &str, media_type: &str, schema: Value| {
        json!({
            "get": {
                "summary": summary,
                "description": "Every entry matching the filters, in the requested order, \
                    streamed; with no `to`, up to the moment the export started. The download \
                    is recorded as an `Export` of the `AuditLog`.",
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
    };
    let mut doc = json!({
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
                            "content": {"application/json": {"schema": page_ref}},
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
                            "content": {"application/json": {"schema": entry_ref}},
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
                json!({"type": "string", "description": format!("Header row: {}", columns().join(","))}),
            ),
            "/export.json": export_operation(
                "Export as one JSON array",
                "application/json",
                json!({"type": "array", "items": entry_ref}),
            ),
            "/export.ndjson": export_operation(
                "Export as newline-delimited JSON, one entry per line",
                "application/x-ndjson",
                entry_ref.clone(),
            ),
            "/health": {
                "get": {
                    "summary": "How the recording of the service's requests is doing",
                    "description": "The audit layer's delivery figures: entries queued, stored, \
                        retried, handed off to the writer, requests refused. Not recorded.",
                    "responses": {
                        "200": {
                            "description": "The figures and a one-word status.",
                            "content": {"application/json": {"schema": health_ref}},
                        },
                        "403": error_response("The guard denied access."),
                    },
                }
            },
            "/verify": {
                "get": {
                    "summary": "Verify a tenant's hash chain",
                    "description": "Recomputes every link of the tenant's chain from the stored \
                        entries (see docs/chain.md) and reports how many entries were checked and \
                        the first broken link. A tenant administrator verifies their own tenant; an \
                        operator names it with `tenant` (none: the entries without a tenant).",
                    "parameters": [{
                        "name": "tenant", "in": "query", "required": false,
                        "schema": {"type": "string"},
                    }],
                    "responses": {
                        "200": {
                            "description": "The chain's report: `intact`, `start` (the sequence number the chain starts after: 0, or the last entry a purge deleted), `checked`, `unchained` (entries stored before chaining began), `last` (seq and hash), `broken` (`reason`, `seq`, `id`, `message`, or null).",
                            "content": {"application/json": {}},
                        },
                        "400": error_response("A parameter is malformed or unknown."),
                        "403": error_response("The guard denied access, or the tenant is not the caller's."),
                        "501": error_response("The store keeps no hash chain."),
                    },
                }
            },
            "/erase": {
                "post": {
                    "summary": "Erase a person's personal data",
                    "description": "Replaces the actor name and user agent of every entry whose \
                        actor is `actor_id` with `[ERASED]` and removes its IP address, keeping \
                        the hash chain verifiable (docs/chain.md). Operators only; recorded as an \
                        `Erase` entry.",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["actor_id"],
                            "additionalProperties": false,
                            "properties": {"actor_id": {"type": "string", "minLength": 1, "maxLength": 255}},
                        }}},
                    },
                    "responses": {
                        "200": {
                            "description": "`actor_id` and how many entries were `erased` (an entry erased before is not counted again).",
                            "content": {"application/json": {}},
                        },
                        "400": error_response("The body is not `{\"actor_id\": …}` as JSON, or a parameter was given."),
                        "403": error_response("The guard denied access, or the caller is not an operator."),
                        "501": error_response("The store cannot erase."),
                    },
                }
            },
            "/retention": {
                "get": {
                    "summary": "How long a tenant's entries are kept",
                    "description": "The retention period of the caller's tenant (an operator names \
                        it with `tenant`; none: the entries without a tenant) and the legal hold on \
                        it, if one stands. Not recorded.",
                    "parameters": [{
                        "name": "tenant", "in": "query", "required": false,
                        "schema": {"type": "string"},
                    }],
                    "responses": {
                        "200": {
                            "description": "`tenant_id`, `days` (null: kept forever), `kept` (the period in words), `legal_hold` (`reason`, `placed_by`, `placed_at`, or null).",
                            "content": {"application/json": {}},
                        },
                        "400": error_response("A parameter is malformed or unknown."),
                        "403": error_response("The guard denied access, or the tenant is not the caller's."),
                    },
                }
            },
            "/purge": {
                "post": {
                    "summary": "Purge what the retention policy no longer keeps",
                    "description": "Deletes the tenant's entries older than its retention period, \
                        oldest first, in short batches, unless a legal hold stands; with \
                        `dry_run`, only counts them. The purge records itself as a `Purge` entry \
                        in the tenant's chain, which stays verifiable from its new start. \
                        Operators only; recorded as `Purge` (a dry run as `Read`).",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "tenant": {"type": ["string", "null"], "maxLength": 255},
                                "dry_run": {"type": "boolean", "default": false},
                            },
                        }}},
                    },
                    "responses": {
                        "200": {
                            "description": "`tenant_id`, `kept`, `before`, `dry_run`, `matched` (entries found to go), `deleted`, `held` (the legal hold that stopped it, or null), `chain_start`, `entry_id` (the `Purge` entry).",
                            "content": {"application/json": {}},
                        },
                        "400": error_response("The body is not the JSON above, or a parameter was given."),
                        "403": error_response("The guard denied access, or the caller is not an operator."),
                        "501": error_response("The store cannot purge."),
                    },
                }
            },
            "/legal-hold": {
                "post": {
                    "summary": "Place or lift a legal hold",
                    "description": "With `hold: true` and a `reason`, suspends every purge of the \
                        tenant's entries (a purge under way stops before its next batch); with \
                        `hold: false`, lifts it. Operators only; recorded in the tenant's log as \
                        `Create` or `Delete` of its `LegalHold`.",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["hold"],
                            "additionalProperties": false,
                            "properties": {
                                "tenant": {"type": ["string", "null"], "maxLength": 255},
                                "hold": {"type": "boolean"},
                                "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                            },
                        }}},
                    },
                    "responses": {
                        "200": {
                            "description": "`tenant_id` and the `legal_hold` now standing (null once lifted).",
                            "content": {"application/json": {}},
                        },
                        "400": error_response("The body is not the JSON above (a hold needs a reason), or a parameter was given."),
                        "403": error_response("The guard denied access, or the caller is not an operator."),
                        "501": error_response("The store cannot hold entries."),
                    },
                }
            },
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
        "components": {"schemas": schemas},
    });
    if let (Some(paths), Value::Object(grouped)) = (doc["paths"].as_object_mut(), grouped) {
        paths.extend(grouped);
    }
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}
