//! The entries that record reads and exports of the log itself.

use audit_core::store::Scope;
use audit_core::{
    Action, Actor, ApiKeyRef, AuditEntry, AuditSink, AuditStore, Limits, Outcome, TenantRef,
};
use axum::extract::MatchedPath;
use http::StatusCode;
use http::header::USER_AGENT;
use http::request::Parts;
use serde_json::Value;

use super::AUDIT_LOG_ENTITY;
use super::handlers::Shared;

/// A read of the log, about to be recorded.
pub(crate) struct Read {
    entry: AuditEntry,
}

impl Read {
    pub(crate) fn new(action: Action, entity_id: Option<String>) -> Self {
        let mut entry = AuditEntry::new(action);
        entry.entity_type = Some(AUDIT_LOG_ENTITY.to_owned());
        entry.entity_name = Some("Audit log".to_owned());
        entry.entity_id = entity_id;
        entry.status = Some(StatusCode::OK.as_u16());
        Read { entry }
    }

    pub(crate) fn outcome(mut self, outcome: Outcome, status: StatusCode) -> Self {
        self.entry.outcome = outcome;
        self.entry.status = Some(status.as_u16());
        self
    }

    pub(crate) fn details(mut self, details: impl Into<String>) -> Self {
        self.entry.details = Some(details.into());
        self
    }

    pub(crate) fn metadata(mut self, key: &str, value: Value) -> Self {
        self.entry.metadata.insert(key.to_owned(), value);
        self
    }

    /// Fills in who, from where and for which tenant, and records the entry.
    pub(crate) async fn write<S: AuditStore + AuditSink>(
        self,
        shared: &Shared<S>,
        parts: &Parts,
        scope: Option<&Scope>,
    ) {
        let mut entry = self.entry;
        // axum answers HEAD with the GET handler and drops the body: nothing was read.
        if parts.method == http::Method::HEAD && entry.outcome == Outcome::Success {
            return;
        }
        let extensions = &parts.extensions;
        if let Some(actor) = extensions.get::<Actor>() {
            entry.set_actor(actor.clone());
        }
        if let Some(key) = extensions.get::<ApiKeyRef>() {
            entry.api_key_id = key.id.clone();
            entry.api_key_name = key.name.clone();
            if entry.actor_id.is_none() && extensions.get::<Actor>().is_none() {
                entry.set_actor(Actor {
                    kind: audit_core::ActorKind::ApiKey,
                    id: key.id.clone(),
                    name: key.name.clone(),
                });
            }
        }
        match (extensions.get::<TenantRef>(), scope) {
            (Some(tenant), _) => {
                entry.tenant_id = Some(tenant.tenant_id.clone());
                entry.team_id = tenant.team_id.clone();
            }
            (None, Some(Scope::Tenant(tenant))) => entry.tenant_id = Some(tenant.clone()),
            (None, Some(Scope::Team { tenant, team })) => {
                entry.tenant_id = Some(tenant.clone());
                entry.team_id = Some(team.clone());
            }
            (None, Some(Scope::All) | None) => {}
        }
        entry.ip = shared.client_ip().client_ip(&parts.headers, extensions);
        entry.user_agent = parts
            .headers
            .get(USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        entry.request_id = Some(
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map_or_else(|| entry.id.to_string(), str::to_owned),
        );
        entry.method = Some(parts.method.as_str().to_owned());
        entry.route = Some(
            extensions
                .get::<MatchedPath>()
                .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned()),
        );
        entry.bound(&Limits::default());
        shared.write(entry).await;
    }
}
