//! The retention endpoints: how long a tenant's entries are kept (`GET /retention`), a purge
//! on demand (`POST /purge`) and legal holds (`POST /legal-hold`).

use audit_core::retention::{LegalHold, PurgeRequest};
use audit_core::store::{AuditStore, Scope};
use audit_core::{Action, AuditSink};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use http::StatusCode;
use http::request::Parts;
use serde_json::json;

use super::error::AdminError;
use super::handlers::{AppState, json_body, only_tenant_param, tenant_of_scope};
use super::response::json_response;

/// The answer of an endpoint whose store cannot do what it asks.
fn not_supported(what: &str) -> Response {
    json_response(
        StatusCode::NOT_IMPLEMENTED,
        &json!({"error": "not_supported", "message": format!("this store cannot {what}")}),
    )
}

/// A `tenant` of a request body: a tenant id, or `null` for the entries without a tenant.
fn body_tenant(tenant: Option<String>) -> Result<Option<String>, AdminError> {
    if let Some(tenant) = &tenant {
        Scope::tenant(tenant.as_str())
            .validate()
            .map_err(|_| AdminError::invalid("tenant", "not a tenant id"))?;
    }
    Ok(tenant)
}

fn operators_only(scope: &Scope, what: &str) -> Result<(), AdminError> {
    if *scope == Scope::All {
        Ok(())
    } else {
        Err(AdminError::AccessDenied(format!("{what} is for operators")))
    }
}

/// `GET /retention[?tenant=ID]`: how long the tenant's entries are kept and whether a legal
/// hold stands. Anyone who may read a tenant's log may read this of it; operators name the
/// tenant (none: the entries without a tenant).
pub(crate) async fn retention<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    let asked = only_tenant_param(&parts, "/retention")?;
    let tenant = tenant_of_scope(&scope, asked, true)?;
    let period = shared.retention.period(tenant.as_deref());
    let hold = shared.store.legal_hold(tenant.as_deref()).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "tenant_id": tenant,
            "days": period.days(),
            "kept": period.to_string(),
            "legal_hold": hold,
        }),
    ))
}

/// `POST /purge` with `{"tenant": …, "dry_run": …}` (operators only): deletes what the
/// retention policy no longer keeps of the tenant, or with `dry_run` says how many entries
/// would go. Recorded as `Purge` (a dry run as `Read`).
pub(crate) async fn purge<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    operators_only(&scope, "purging the log")?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Purge {
        #[serde(default)]
        tenant: Option<String>,
        #[serde(default)]
        dry_run: bool,
    }
    let Purge { tenant, dry_run } = json_body(
        &parts,
        &body,
        "/purge",
        "{\"tenant\": \"…\", \"dry_run\": true}",
    )?;
    let tenant = body_tenant(tenant)?;
    let period = shared.retention.period(tenant.as_deref());
    let Some(request) = PurgeRequest::by_policy(&shared.retention, tenant.as_deref(), Utc::now())
    else {
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "tenant_id": tenant,
                "kept": period.to_string(),
                "dry_run": dry_run,
                "matched": 0,
                "deleted": 0,
                "message": "this tenant's entries are kept forever: nothing to purge",
            }),
        ));
    };
    let Some(report) = shared.store.purge(&request.dry_run(dry_run)).await? else {
        return Ok(not_supported("purge entries"));
    };
    let record = shared.read(&parts, if dry_run { Action::Read } else { Action::Purge });
    record
        .details(match (dry_run, &report.held) {
            (_, Some(_)) => "purge refused: the log is on legal hold".to_owned(),
            (true, None) => format!("{} audit entries would be purged", report.matched),
            (false, None) => format!("purged {} audit entries", report.deleted),
        })
        .metadata("endpoint", "purge")
        .metadata("dry_run", &dry_run)
        .metadata("before", &report.before)
        .metadata("matched", &report.matched)
        .metadata("deleted", &report.deleted);
    let recorded_in = tenant.as_deref().map(Scope::tenant);
    shared
        .record(&parts, record, recorded_in.as_ref(), StatusCode::OK)
        .await;
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    body["kept"] = json!(period.to_string());
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /legal-hold` with `{"tenant": …, "hold": true, "reason": "…"}` to place a hold, or
/// `"hold": false` to lift it (operators only). Recorded as `Create` or `Delete` of the
/// tenant's `LegalHold`, in the tenant's own log.
pub(crate) async fn legal_hold<S: AuditStore + AuditSink>(
    State(shared): AppState<S>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, AdminError> {
    let scope = shared.scope(&parts).await?;
    operators_only(&scope, "placing or lifting a legal hold")?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Hold {
        #[serde(default)]
        tenant: Option<String>,
        hold: bool,
        #[serde(default)]
        reason: Option<String>,
    }
    let Hold {
        tenant,
        hold,
        reason,
    } = json_body(
        &parts,
        &body,
        "/legal-hold",
        "{\"tenant\": \"…\", \"hold\": true, \"reason\": \"…\"}",
    )?;
    let tenant = body_tenant(tenant)?;
    let standing = shared.store.legal_hold(tenant.as_deref()).await?;
    let placed = if hold {
        let reason = reason.unwrap_or_default();
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > audit_core::retention::MAX_HOLD_REASON {
            return Err(AdminError::invalid(
                "reason",
                "a legal hold needs a reason (a case or matter reference) of 1 to 500 characters",
            ));
        }
        Some(LegalHold::new(tenant.as_deref(), reason))
    } else {
        None
    };
    if !shared
        .store
        .set_legal_hold(tenant.as_deref(), placed.as_ref())
        .await?
    {
        return Ok(not_supported("hold entries"));
    }
    let record = shared.read(&parts, if hold { Action::Create } else { Action::Delete });
    record
        .entity_type("LegalHold")
        .entity_id(tenant.as_deref().unwrap_or("-"))
        .entity_name("Legal hold")
        .metadata("endpoint", "legal-hold");
    match (&placed, &standing) {
        (Some(placed), _) => {
            record
                .details(format!("placed a legal hold: {}", placed.reason))
                .created(placed);
        }
        (None, Some(lifted)) => {
            record
                .details(format!("lifted the legal hold: {}", lifted.reason))
                .deleted(lifted);
        }
        (None, None) => {
            record.details("lifted a legal hold that did not stand");
        }
    }
    let recorded_in = tenant.as_deref().map(Scope::tenant);
    shared
        .record(&parts, record, recorded_in.as_ref(), StatusCode::OK)
        .await;
    Ok(json_response(
        StatusCode::OK,
        &json!({"tenant_id": tenant, "legal_hold": placed}),
    ))
}
