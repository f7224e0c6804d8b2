//! The data endpoints: list, one entry, and the three exports.

use std::sync::Arc;

use audit_core::store::Scope;
use audit_core::{Action, AuditSink, AuditStore, Outcome};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use http::StatusCode;
use http::request::Parts;
use serde_json::json;
use uuid::Uuid;

use super::error::AdminError;
use super::export::{self, Format};
use super::guard::AdminGuard;
use super::params::{self, Endpoint};
use super::record::Read;
use super::response::json_response;
use super::viewer;
use crate::client_ip::ClientIpConfig;

/// What every handler shares.
pub(crate) struct Shared<S> {
    pub store: S,
    pub guard: Arc<dyn AdminGuard>,
    pub client_ip: ClientIpConfig,
    pub viewer: viewer::Page,
    pub openapi: Bytes,
}

pub(crate) type AppState<S> = State<Arc<Shared<S>>>;

impl<S: AuditStore + AuditSink> Shared<S> {
    /// The caller's scope, or a 403 (recorded as a denied read).
    async fn scope(&self, parts: &Parts) -> Result<Scope, AdminError> {
        match self.guard.check(parts).scope() {
            Ok(scope) => Ok(scope),
            Err(message) => {
                Read::new(Action::Read, None)
                    .outcome(Outcome::Denied, StatusCode::FORBIDDEN)
                    .details("access to the audit log denied")
                    .write(self, parts, None)
                    .await;
                Err(AdminError::AccessDenied(message))
            }
        }
    }

    pub(crate) async fn write(&self, entry: audit_core::AuditEntry) {
        let id = entry.id;
        if let Err(error) = self.store.record(entry).await {
            tracing::error!(%error, entry_id = %id, "audit admin: could not record a read of the log");
        }
    }

    pub(crate) fn client_ip(&self) -> &ClientIpConfig {
        &self.client_ip
    }
}

/// `GET /entries`
pub(crate) async fn list<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let query = params::parse(parts.uri.query(), scope.clone(), Endpoint::List)?;
    let page = shared.store.query(&query).await?;
    Read::new(Action::Read, None)
        .details(format!("listed {} audit entries", page.items.len()))
        .metadata("endpoint", json!("entries"))
        .metadata("filter", params::filter_json(&query))
        .metadata("limit", json!(query.limit))
        .metadata("continued", json!(query.cursor.is_some()))
        .metadata("returned", json!(page.items.len()))
        .write(&shared, &parts, Some(&scope))
        .await;
    Ok(json_response(StatusCode::OK, &page))
}

/// `GET /entries/{id}`
pub(crate) async fn entry<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    id: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let Path(text) = id.map_err(|_| AdminError::invalid("id", "not a valid path segment"))?;
    let id = Uuid::try_parse(&text).map_err(|_| {
        AdminError::invalid(
            "id",
            "expected an entry id (a UUID such as 0190c0de-7a2b-7cc3-9e1f-1234567890ab)",
        )
    })?;
    let entry = shared
        .store
        .get(&scope, id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_string()))?;
    Read::new(Action::Read, Some(id.to_string()))
        .details("read one audit entry")
        .metadata("endpoint", json!("entry"))
        .write(&shared, &parts, Some(&scope))
        .await;
    Ok(json_response(StatusCode::OK, &entry))
}

/// `GET /export.csv`
pub(crate) async fn export_csv<S: AuditStore + AuditSink>(
    state: AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    export(state, parts, Format::Csv).await
}

/// `GET /export.json`
pub(crate) async fn export_json<S: AuditStore + AuditSink>(
    state: AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    export(state, parts, Format::Json).await
}

/// `GET /export.ndjson`
pub(crate) async fn export_ndjson<S: AuditStore + AuditSink>(
    state: AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    export(state, parts, Format::Ndjson).await
}

async fn export<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
    format: Format,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let mut query = params::parse(parts.uri.query(), scope.clone(), Endpoint::Export)?;
    let filter = params::filter_json(&query);
    // An export with no end ends when it starts: otherwise, oldest first, it would go on to
    // read what is written while it streams (its own `Export` entry among them), and on a
    // busy log might never catch up. One that starts later than that has nothing to export.
    let started = Utc::now();
    let mut entries = match (query.from, query.to) {
        (Some(from), None) if from >= started => stream::empty().boxed(),
        (_, None) => {
            query.to = Some(started);
            shared.store.export(&query)
        }
        _ => shared.store.export(&query),
    };
    // Wait for the first entry, so a store that fails at once is a proper error status rather
    // than an aborted download.
    let first = entries.next().await;
    let first = match first {
        Some(Err(error)) => return Err(error.into()),
        other => other,
    };
    Read::new(Action::Export, None)
        .details(format!(
            "exported the audit log as {}",
            format.extension().to_uppercase()
        ))
        .metadata("endpoint", json!("export"))
        .metadata("format", json!(format.extension()))
        .metadata("filter", filter)
        .write(&shared, &parts, Some(&scope))
        .await;
    let file_stem = format!("audit-log-{}", started.format("%Y%m%dT%H%M%SZ"));
    let entries = stream::iter(first).chain(entries).boxed();
    Ok(export::response(format, &file_stem, entries))
}
