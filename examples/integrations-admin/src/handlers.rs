//! The configuration API. Every mutating route is audited by the one `AuditLayer` in
//! `lib.rs`; handlers only add what the layer cannot know: the object's name and its values
//! before and after the change.

use audit_core::{Action, Actor, TenantRef};
use audit_tower::{AuditContext, Transaction};
use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, ModelTrait, QueryFilter, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Caller, new_secret, password_hash, sha256_hex};
use crate::error::ApiError;
use crate::model::{
    api_key, connection_profile, extraction_cursor, mapping_config, session, tenant, user,
};

type ApiResult<T> = Result<T, ApiError>;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The longest text a column of the service's tables holds on every backend: MySQL's
/// `varchar(255)` counts characters, and a character is at least a byte.
pub const MAX_COLUMN_BYTES: usize = 255;

/// A required one-line text: 1 to `max` bytes, not blank, no control characters (PostgreSQL
/// stores no NUL, and a line break in a name would forge lines in a log or a CSV cell).
fn bounded(field: &'static str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!(
            "`{field}` must be 1 to {max} bytes of text without control characters"
        )));
    }
    Ok(())
}

/// An optional one-line text: at most `max` bytes, no control characters; may be empty.
fn bounded_or_empty(field: &'static str, value: &str, max: usize) -> ApiResult<()> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!(
            "`{field}` must be at most {max} bytes of text without control characters"
        )));
    }
    Ok(())
}

/// Whether `id`, from a path, can name a stored object: ids are short text, so anything else
/// is a 404 without asking the database (which may refuse it: PostgreSQL takes no NUL).
fn possible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_COLUMN_BYTES && !id.chars().any(char::is_control)
}

// ---------------------------------------------------------------------------------------------
// Login

/// `POST /login` body.
#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
}

/// Signs in. The layer records `Login` (the route's verb); a failure is turned into
/// `LoginFailed` with the attempted email as the actor's name — never the password.
pub async fn login(
    State(state): State<AppState>,
    audit: AuditContext,
    Json(body): Json<Login>,
) -> ApiResult<([(axum::http::HeaderName, String); 1], Json<Value>)> {
    audit.entity_type("User");
    if body.email.chars().any(char::is_control) {
        return Err(ApiError::Invalid(
            "`email` must be text without control characters".into(),
        ));
    }
    let email: String = body.email.chars().take(254).collect();
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?;
    let user = match found {
        Some(user) if user.password_hash == password_hash(&user.salt, &body.password) => user,
        other => {
            audit
                .action(Action::LoginFailed)
                .actor(Actor::anonymous_named(email));
            if let Some(user) = other {
                // The attempt is shown in the tenant's log, next to its changes.
                audit
                    .tenant(TenantRef::new(user.tenant_id))
                    .entity_id(user.id);
            }
            return Err(ApiError::BadLogin);
        }
    };
    let token = new_secret("tok_");
    session::ActiveModel {
        token_hash: Set(sha256_hex(&token)),
        user_id: Set(user.id.clone()),
    }
    .insert(&state.db)
    .await?;
    audit
        .actor(Actor::user(user.id.clone(), user.email.clone()))
        .tenant(TenantRef::new(user.tenant_id.clone()))
        .entity_id(&user.id)
        .entity_name(&user.email);
    // The cookie is for the browser (the audit viewer); API clients use the token.
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/",
        crate::auth::SESSION_COOKIE
    );
    let body =
        json!({"token": token, "user_id": user.id, "tenant_id": user.tenant_id, "role": user.role});
    Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(body)))
}

/// `GET /logout`: ends the session of the request's cookie or bearer token and sends the
/// browser to `/login`. Recorded as `Logout` of the user (a route rule: `GET` is otherwise not
/// recorded); without a session nothing happens and nothing is recorded.
pub async fn logout(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    audit: AuditContext,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let ended = match crate::auth::session_token(&headers) {
        Some(token) => {
            session::Entity::delete_by_id(sha256_hex(token))
                .exec(&state.db)
                .await?
                .rows_affected
                > 0
        }
        None => false,
    };
    match caller {
        Some(Extension(caller)) if ended => {
            if let Some(id) = &caller.user_id {
                audit.entity_id(id);
            }
            audit.entity_name(&caller.name);
        }
        _ => audit.skip(),
    }
    let expired = format!(
        "{}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/",
        crate::auth::SESSION_COOKIE
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (axum::http::header::LOCATION, "/login".to_owned()),
            (axum::http::header::SET_COOKIE, expired),
        ],
    )
        .into_response())
}

/// `GET /login`: a sign-in form for the browser, which then opens the audit viewer.
pub async fn login_page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("login.html"))
}

// ---------------------------------------------------------------------------------------------
// Tenants (administrators only)

/// `POST /tenants` and `PUT /tenants/{id}` body.
#[derive(Deserialize)]
pub struct TenantInput {
    name: Option<String>,
    plan: Option<String>,
}

fn tenant_json(t: &tenant::Model) -> Value {
    json!({"name": t.name, "plan": t.plan, "active": t.active})
}

/// `GET /tenants`: the caller's own tenant.
pub async fn list_tenants(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let tenants = tenant::Entity::find_by_id(caller.tenant_id)
        .all(&state.db)
        .await?;
    Ok(Json(json!(tenants)))
}

/// `GET /tenants/{id}`: the caller's own tenant only.
pub async fn get_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(own_tenant(&state, &caller, &id).await?)))
}

/// `POST /tenants`.
pub async fn create_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Json(input): Json<TenantInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let name = input.name.unwrap_or_default();
    bounded("name", &name, 200)?;
    let plan = input.plan.unwrap_or_else(|| "starter".into());
    bounded("plan", &plan, 50)?;
    let model = tenant::ActiveModel {
        id: Set(new_id()),
        name: Set(name),
        plan: Set(plan),
        active: Set(true),
    }
    .insert(&state.db)
    .await?;
    crate::retention::apply_plan(&state.retention, &model.id, &model.plan);
    audit
        .entity_id(&model.id)
        .entity_name(&model.name)
        .created(&tenant_json(&model));
    Ok((StatusCode::CREATED, Json(json!(model))))
}

async fn own_tenant(state: &AppState, caller: &Caller, id: &str) -> ApiResult<tenant::Model> {
    if id != caller.tenant_id {
        return Err(ApiError::NotFound("tenant"));
    }
    tenant::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("tenant"))
}

/// `PUT /tenants/{id}`.
pub async fn update_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
    Json(input): Json<TenantInput>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let before = own_tenant(&state, &caller, &id).await?;
    audit.entity_name(&before.name);
    let mut model = before.clone().into_active_model();
    if let Some(name) = input.name {
        bounded("name", &name, 200)?;
        model.name = Set(name);
    }
    if let Some(plan) = input.plan {
        bounded("plan", &plan, 50)?;
        model.plan = Set(plan);
    }
    let after = model.update(&state.db).await?;
    crate::retention::apply_plan(&state.retention, &after.id, &after.plan);
    audit
        .entity_name(&after.name)
        .changes(&tenant_json(&before), &tenant_json(&after));
    Ok(Json(json!(after)))
}

async fn set_active(
    state: &AppState,
    caller: &Caller,
    audit: &AuditContext,
    id: &str,
    active: impl FnOnce(bool) -> bool,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let before = own_tenant(state, caller, id).await?;
    audit.entity_name(&before.name);
    let mut model = before.clone().into_active_model();
    model.active = Set(active(before.active));
    let after = model.update(&state.db).await?;
    audit.changes(&tenant_json(&before), &tenant_json(&after));
    Ok(Json(json!(after)))
}

/// `POST /tenants/{id}/deactivate`.
pub async fn deactivate_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_active(&state, &caller, &audit, &id, |_| false).await
}

/// `POST /tenants/{id}/toggle-active`.
pub async fn toggle_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_active(&state, &caller, &audit, &id, |active| !active).await
}

// ---------------------------------------------------------------------------------------------
// Connection profiles

/// `POST /connection-profiles` and `PUT /connection-profiles/{id}` body.
#[derive(Deserialize)]
pub struct ProfileInput {
    name: Option<String>,
    kind: Option<String>,
    host: Option<String>,
    username: Option<String>,
    client_secret: Option<String>,
}

impl ProfileInput {
    /// Refuses what the `connection_profiles` table would not hold.
    fn check(&self) -> ApiResult<()> {
        if let Some(name) = &self.name {
            bounded("name", name, 200)?;
        }
        if let Some(kind) = &self.kind {
            bounded("kind", kind, 50)?;
        }
        for (field, value) in [
            ("host", &self.host),
            ("username", &self.username),
            ("client_secret", &self.client_secret),
        ] {
            if let Some(value) = value {
                bounded_or_empty(field, value, MAX_COLUMN_BYTES)?;
            }
        }
        Ok(())
    }
}

/// The values recorded in the audit log; `client_secret` is included on purpose: the layer's
/// redactor replaces it by its name.
fn profile_json(p: &connection_profile::Model) -> Value {
    json!({"name": p.name, "kind": p.kind, "host": p.host, "username": p.username, "client_secret": p.client_secret})
}

/// `GET /connection-profiles`.
pub async fn list_profiles(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let rows = connection_profile::Entity::find()
        .filter(connection_profile::Column::TenantId.eq(caller.tenant_id))
        .all(&state.db)
        .await?;
    Ok(Json(json!(rows)))
}

async fn find_profile(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
) -> ApiResult<connection_profile::Model> {
    if !possible_id(id) {
        return Err(ApiError::NotFound("connection profile"));
    }
    connection_profile::Entity::find_by_id(id)
        .filter(connection_profile::Column::TenantId.eq(caller.tenant_id.as_str()))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("connection profile"))
}

/// `GET /connection-profiles/{id}`.
pub async fn get_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(find_profile(&state.db, &caller, &id).await?)))
}

/// `POST /connection-profiles`. Connection profiles change in the transaction the
/// `TransactionLayer` opens for the request, which commits with the request's audit entry:
/// the profile and its entry are stored together or not at all, even if the process is killed.
pub async fn create_profile(
    txn: Transaction<DatabaseTransaction>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Json(input): Json<ProfileInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = input.name.clone().unwrap_or_default();
    bounded("name", &name, 200)?;
    input.check()?;
    let model = connection_profile::ActiveModel {
        id: Set(new_id()),
        tenant_id: Set(caller.tenant_id.clone()),
        name: Set(name),
        kind: Set(input.kind.unwrap_or_else(|| "rest".into())),
        host: Set(input.host.unwrap_or_default()),
        username: Set(input.username.unwrap_or_default()),
        client_secret: Set(input.client_secret.unwrap_or_default()),
        active: Set(true),
    }
    .insert(&*txn)
    .await?;
    audit
        .entity_id(&model.id)
        .entity_name(&model.name)
        .created(&profile_json(&model));
    Ok((StatusCode::CREATED, Json(json!(model))))
}

/// `PUT /connection-profiles/{id}`, in the request's transaction.
pub async fn update_profile(
    txn: Transaction<DatabaseTransaction>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
    Json(input): Json<ProfileInput>,
) -> ApiResult<Json<Value>> {
    let before = find_profile(&*txn, &caller, &id).await?;
    audit.entity_name(&before.name);
    input.check()?;
    let mut model = before.clone().into_active_model();
    if let Some(name) = input.name {
        model.name = Set(name);
    }
    if let Some(kind) = input.kind {
        model.kind = Set(kind);
    }
    if let Some(host) = input.host {
        model.host = Set(host);
    }
    if let Some(username) = input.username {
        model.username = Set(username);
    }
    if let Some(secret) = input.client_secret {
        model.client_secret = Set(secret);
    }
    let after = model.update(&*txn).await?;
    audit
        .entity_name(&after.name)
        .changes(&profile_json(&before), &profile_json(&after));
    Ok(Json(json!(after)))
}

/// `POST /connection-profiles/bulk-deactivate` body: which of the caller's active profiles to
/// deactivate (these ids, or every one of a connector kind, or both), and why.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkDeactivateInput {
    ids: Option<Vec<String>>,
    kind: Option<String>,
    reason: Option<String>,
}

/// The most ids one bulk request may name.
const MAX_BULK_IDS: usize = 1000;

/// `POST /connection-profiles/bulk-deactivate` (administrators): deactivates the caller's
/// active profiles that match, in the request's transaction, recorded as one `Deactivate` entry of
/// `ConnectionProfile` naming each profile (so each profile's history shows it), with the
/// filter, the reason and the count.
pub async fn bulk_deactivate_profiles(
    txn: Transaction<DatabaseTransaction>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Json(input): Json<BulkDeactivateInput>,
) -> ApiResult<Json<Value>> {
    audit
        .action(Action::Deactivate)
        .entity_type("ConnectionProfile");
    caller.require_admin()?;
    if input.ids.is_none() && input.kind.is_none() {
        return Err(ApiError::Invalid(
            "give `ids` (a list of profile ids), `kind` (a connector kind), or both".into(),
        ));
    }
    let mut filter = Vec::new();
    let mut select = connection_profile::Entity::find()
        .filter(connection_profile::Column::TenantId.eq(caller.tenant_id.as_str()))
        .filter(connection_profile::Column::Active.eq(true));
    if let Some(ids) = &input.ids {
        if ids.is_empty() || ids.len() > MAX_BULK_IDS {
            return Err(ApiError::Invalid(format!(
                "`ids` must list 1 to {MAX_BULK_IDS} profile ids"
            )));
        }
        for id in ids {
            bounded("ids", id, MAX_COLUMN_BYTES)?;
        }
        select = select.filter(connection_profile::Column::Id.is_in(ids.iter().cloned()));
        filter.push(format!("{} ids", ids.len()));
    }
    if let Some(kind) = &input.kind {
        bounded("kind", kind, 50)?;
        select = select.filter(connection_profile::Column::Kind.eq(kind.as_str()));
        filter.push(format!("kind={kind}"));
    }
    if let Some(reason) = &input.reason {
        bounded("reason", reason, 500)?;
    }
    let matched: Vec<String> = select
        .all(&*txn)
        .await?
        .into_iter()
        .map(|profile| profile.id)
        .collect();
    if !matched.is_empty() {
        connection_profile::Entity::update_many()
            .col_expr(
                connection_profile::Column::Active,
                sea_orm::sea_query::Expr::value(false),
            )
            .filter(connection_profile::Column::TenantId.eq(caller.tenant_id.as_str()))
            .filter(connection_profile::Column::Id.is_in(matched.iter().cloned()))
            .exec(&*txn)
            .await?;
    }
    let mut bulk = audit_core::BulkChange::of(matched.clone()).filter(filter.join(" "));
    if let Some(reason) = input.reason {
        bulk = bulk.reason(reason);
    }
    audit
        .details(format!("deactivated {} connection profiles", matched.len()))
        .bulk(bulk);
    Ok(Json(json!({"deactivated": matched.len(), "ids": matched})))
}

/// `DELETE /connection-profiles/{id}`, in the request's transaction.
pub async fn delete_profile(
    txn: Transaction<DatabaseTransaction>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let before = find_profile(&*txn, &caller, &id).await?;
    audit
        .entity_name(&before.name)
        .deleted(&profile_json(&before));
    before.delete(&*txn).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Mapping configs

/// `POST /mapping-configs` and `PUT /mapping-configs/{id}` body.
#[derive(Deserialize)]
pub struct MappingInput {
    name: Option<String>,
    mapping: Option<Value>,
}

fn mapping_json(m: &mapping_config::Model) -> Value {
    json!({"name": m.name, "mapping": m.mapping})
}

/// `GET /mapping-configs`.
pub async fn list_mappings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let rows = mapping_config::Entity::find()
        .filter(mapping_config::Column::TenantId.eq(caller.tenant_id))
        .all(&state.db)
        .await?;
    Ok(Json(json!(rows)))
}

async fn find_mapping<C: sea_orm::ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: &str,
) -> ApiResult<mapping_config::Model> {
    if !possible_id(id) {
        return Err(ApiError::NotFound("mapping config"));
    }
    mapping_config::Entity::find_by_id(id)
        .filter(mapping_config::Column::TenantId.eq(caller.tenant_id.as_str()))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("mapping config"))
}

/// `GET /mapping-configs/{id}`.
pub async fn get_mapping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(find_mapping(&state.db, &caller, &id).await?)))
}

fn check_mapping(mapping: &Value) -> ApiResult<()> {
    if !mapping.is_object() {
        return Err(ApiError::Invalid(
            "`mapping` must be a JSON object of source field → target field".into(),
        ));
    }
    if mapping.to_string().len() > 64 * 1024 {
        return Err(ApiError::Invalid("`mapping` is limited to 64 KiB".into()));
    }
    if has_nul(mapping) {
        return Err(ApiError::Invalid(
            "`mapping` must not contain NUL characters".into(),
        ));
    }
    Ok(())
}

/// Whether a NUL is in any key or string of `value` (PostgreSQL's JSON types refuse `\u0000`).
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// `POST /mapping-configs`.
pub async fn create_mapping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Json(input): Json<MappingInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = input.name.unwrap_or_default();
    bounded("name", &name, 200)?;
    let mapping = input.mapping.unwrap_or_else(|| json!({}));
    check_mapping(&mapping)?;
    let model = mapping_config::ActiveModel {
        id: Set(new_id()),
        tenant_id: Set(caller.tenant_id.clone()),
        name: Set(name),
        mapping: Set(mapping),
    }
    .insert(&state.db)
    .await?;
    audit
        .entity_id(&model.id)
        .entity_name(&model.name)
        .created(&mapping_json(&model));
    Ok((StatusCode::CREATED, Json(json!(model))))
}

/// `PUT /mapping-configs/{id}`: the change and its audit entry are written in one transaction,
/// so they commit or roll back together. On SQLite it begins `IMMEDIATE`, holding the write
/// lock from the start: a deferred transaction that reads, then writes, fails with "database is
/// locked" when another connection wrote in between, without waiting.
pub async fn update_mapping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
    Json(input): Json<MappingInput>,
) -> ApiResult<Json<Value>> {
    let txn = state
        .db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    let before = find_mapping(&txn, &caller, &id).await?;
    let mut model = before.clone().into_active_model();
    if let Some(name) = input.name {
        bounded("name", &name, 200)?;
        model.name = Set(name);
    }
    if let Some(mapping) = input.mapping {
        check_mapping(&mapping)?;
        model.mapping = Set(mapping);
    }
    let after = model.update(&txn).await?;
    audit
        .entity_name(&after.name)
        .changes(&mapping_json(&before), &mapping_json(&after));
    // Written in the same transaction: no change without its entry, no entry without its change.
    audit.record_with(audit_seaorm::record_in(&txn)).await?;
    txn.commit().await?;
    Ok(Json(json!(after)))
}

/// `DELETE /mapping-configs/{id}`.
pub async fn delete_mapping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let before = find_mapping(&state.db, &caller, &id).await?;
    audit
        .entity_name(&before.name)
        .deleted(&mapping_json(&before));
    before.delete(&state.db).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// API keys (administrators only)

/// `POST /api-keys` body.
#[derive(Deserialize)]
pub struct KeyInput {
    name: String,
}

/// `GET /api-keys`.
pub async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let rows = api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(caller.tenant_id))
        .all(&state.db)
        .await?;
    Ok(Json(json!(rows)))
}

/// `POST /api-keys`: the secret is in this response and nowhere else.
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Json(input): Json<KeyInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    bounded("name", &input.name, 100)?;
    let secret = new_secret("sk_live_");
    let model = api_key::ActiveModel {
        id: Set(new_id()),
        tenant_id: Set(caller.tenant_id.clone()),
        name: Set(input.name),
        prefix: Set(secret.chars().take(12).collect()),
        key_hash: Set(sha256_hex(&secret)),
        revoked: Set(false),
    }
    .insert(&state.db)
    .await?;
    audit
        .entity_id(&model.id)
        .entity_name(&model.name)
        .details(format!("key {}… created", model.prefix))
        .created(&json!({"name": model.name, "prefix": model.prefix}));
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": model.id, "name": model.name, "prefix": model.prefix, "key": secret})),
    ))
}

async fn find_key(state: &AppState, caller: &Caller, id: &str) -> ApiResult<api_key::Model> {
    if !possible_id(id) {
        return Err(ApiError::NotFound("API key"));
    }
    api_key::Entity::find_by_id(id)
        .filter(api_key::Column::TenantId.eq(caller.tenant_id.as_str()))
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("API key"))
}

/// `GET /api-keys/{id}`: name, prefix and state; never the secret.
pub async fn get_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(find_key(&state, &caller, &id).await?)))
}

/// `POST /api-keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let before = find_key(&state, &caller, &id).await?;
    audit.entity_name(&before.name);
    let mut model = before.clone().into_active_model();
    model.revoked = Set(true);
    let after = model.update(&state.db).await?;
    audit.changes(
        &json!({"revoked": before.revoked}),
        &json!({"revoked": after.revoked}),
    );
    Ok(Json(json!(after)))
}

/// `DELETE /api-keys/{id}`.
pub async fn delete_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let before = find_key(&state, &caller, &id).await?;
    audit
        .entity_name(&before.name)
        .deleted(&json!({"name": before.name, "prefix": before.prefix}));
    before.delete(&state.db).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Extraction cursors

/// `POST /extraction-cursors/{id}/reset` body (optional).
#[derive(Deserialize, Default)]
pub struct ResetInput {
    position: Option<String>,
}

/// `GET /extraction-cursors`.
pub async fn list_cursors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let rows = extraction_cursor::Entity::find()
        .filter(extraction_cursor::Column::TenantId.eq(caller.tenant_id))
        .all(&state.db)
        .await?;
    Ok(Json(json!(rows)))
}

async fn find_cursor(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<extraction_cursor::Model> {
    if !possible_id(id) {
        return Err(ApiError::NotFound("extraction cursor"));
    }
    extraction_cursor::Entity::find_by_id(id)
        .filter(extraction_cursor::Column::TenantId.eq(caller.tenant_id.as_str()))
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("extraction cursor"))
}

/// `GET /extraction-cursors/{id}`.
pub async fn get_cursor(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(find_cursor(&state, &caller, &id).await?)))
}

/// `POST /extraction-cursors/{id}/reset`: back to the start, or to `position`.
pub async fn reset_cursor(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
    body: Option<Json<ResetInput>>,
) -> ApiResult<Json<Value>> {
    let input = body.map(|Json(b)| b).unwrap_or_default();
    let before = find_cursor(&state, &caller, &id).await?;
    audit.entity_name(&before.name);
    let mut model = before.clone().into_active_model();
    let position = input.position.unwrap_or_default();
    bounded_or_empty("position", &position, 200)?;
    model.position = Set(position);
    let after = model.update(&state.db).await?;
    audit
        .details(format!(
            "cursor moved from {:?} to {:?}",
            before.position, after.position
        ))
        .changes(
            &json!({"position": before.position}),
            &json!({"position": after.position}),
        );
    Ok(Json(json!(after)))
}

/// The name a run's entries give its job (`metadata.job`).
pub const EXTRACTION_JOB: &str = "extraction-run";

/// `POST /extraction-cursors/{id}/run`: runs the extraction now, in the background, and
/// answers 202 at once. The request is recorded as `Start` on the cursor, by the caller (the
/// route alone would say `Execute`, which is what the run does); the run itself, when it is
/// done, as `Execute` on the cursor by the system acting for the caller
/// (`actor_kind` `system`, the caller's id and name, their API key, `metadata.job`), through
/// the job scope the request hands to the spawned task.
pub async fn run_cursor(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    use audit_core::scope::InAuditScope;
    let cursor = find_cursor(&state, &caller, &id).await?;
    audit.entity_name(&cursor.name).action(Action::Start);
    let scope = audit.job_scope(EXTRACTION_JOB);
    let answer = json!({"job": EXTRACTION_JOB, "cursor": cursor.id});
    tokio::spawn(run_extraction(state, cursor).in_audit_scope(scope));
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// The extraction run: here it only moves the cursor to now. Its entry is made in the job's
/// scope, so it names the job and whoever started it.
async fn run_extraction(state: AppState, cursor: extraction_cursor::Model) {
    use audit_core::{AuditEntry, AuditSink, Change, Outcome};
    let position = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut model = cursor.clone().into_active_model();
    model.position = Set(position);
    let entry = AuditEntry::builder(Action::Execute)
        .entity("ExtractionCursor", &cursor.id)
        .entity_name(&cursor.name);
    let entry = match model.update(&state.db).await {
        Ok(after) => entry
            .details(format!(
                "extraction run moved the cursor from {:?} to {:?}",
                cursor.position, after.position
            ))
            .changes(vec![Change::new(
                "position",
                json!(cursor.position),
                json!(after.position),
            )]),
        Err(e) => entry
            .outcome(Outcome::Failure)
            .details(format!("extraction run failed: {e}")),
    };
    if let Err(e) = state.store.record(entry.build()).await {
        tracing::error!(error = %e, cursor = %cursor.id, "the extraction run's audit entry was not stored");
    }
}

/// `DELETE /extraction-cursors/{id}`.
pub async fn delete_cursor(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    audit: AuditContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let before = find_cursor(&state, &caller, &id).await?;
    audit
        .entity_name(&before.name)
        .deleted(&json!({"name": before.name, "position": before.position}));
    before.delete(&state.db).await?;
    Ok(StatusCode::NO_CONTENT)
}
