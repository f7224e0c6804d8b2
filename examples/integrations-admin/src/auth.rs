//! Who is calling: bearer tokens for people, `x-api-key` for machines.
//!
//! Two middlewares, on either side of the audit layer. [`identify`], outside it, looks the
//! credentials up and names the caller in the request extensions as an [`Actor`], a
//! [`TenantRef`] and, for keys, an [`ApiKeyRef`] — the three types the layer reads with no
//! configuration — so the layer's capture, and an intent it stores before the handler runs,
//! know who acts. [`authenticate`], inside it, refuses a request without a caller with 401, so
//! the layer records the refusal as `denied` like any other. Authorisation (roles) happens in
//! the handlers, so a change refused for its role is recorded as `denied` too.
//!
//! What a refused request's entry says: an unknown key is the layer's fingerprint of it (the
//! `x-api-key` header is the layer's default), a revoked key its id and name and its tenant, a
//! bad bearer token or a malformed `Authorization` header a fingerprint of what was sent
//! (metadata `fingerprint`). Never the key or the token.

use audit_core::{Actor, ApiKeyRef, TenantRef};
use audit_tower::AuditContext;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::model::{api_key, session, user};

/// The role that may change everything and read the audit log.
pub const ADMINISTRATOR: &str = "Administrator";
/// The role that may change connection profiles, mapping configs and cursors.
pub const MEMBER: &str = "Member";
/// The platform operator: reads every tenant's audit log, and the entries of no tenant
/// (failed logins for unknown e-mails, requests with unknown credentials).
pub const OPERATOR: &str = "Operator";

/// The authenticated caller, in the request extensions of every protected route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's tenant.
    pub tenant_id: String,
    /// `Administrator`, `Member` or `Operator`; API keys act as `Member`.
    pub role: String,
    /// The user's id, for people.
    pub user_id: Option<String>,
    /// The user's email or the key's name.
    pub name: String,
}

impl Caller {
    /// Refuses with 403 unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == ADMINISTRATOR {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this change needs the Administrator role",
            ))
        }
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stored hash of a password.
pub fn password_hash(salt: &str, password: &str) -> String {
    sha256_hex(&format!("{salt}:{password}"))
}

/// A fresh random secret (two UUIDv4s: 244 random bits).
pub fn new_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Routes anyone may call: signing in and out, the health check, and the audit viewer's page
/// and API description, which hold no data (the viewer's data endpoints need a caller; their
/// 401 sends the page to `/login`).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login"
            | "/logout"
            | "/health"
            | "/admin/audit-log"
            | "/admin/audit-log/"
            | "/admin/audit-log/openapi.json"
    )
}

/// `sha256:` and the first 12 hex digits of the SHA-256 of `bytes`: how the audit layer
/// records an unknown API key, and how this service records a credential it refused.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Why a request's credentials were refused.
#[derive(Debug, Clone)]
enum Refusal {
    /// The `x-api-key` header is not a key: empty, too long, not text. The layer fingerprints it.
    MalformedKey,
    /// No key has this hash. The layer fingerprints it.
    UnknownKey,
    /// The key was revoked: it is named in the entry, with its tenant.
    RevokedKey(api_key::Model),
    /// The `Authorization` header is not `Bearer <token>`.
    MalformedAuthorization(String),
    /// No session (or demo token) has this token.
    UnknownToken(String),
}

impl Refusal {
    /// Tells the audit entry what was refused (never the credential itself), and what the
    /// response's extensions carry for the layer.
    fn describe(&self, audit: Option<&AuditContext>, response: &mut Response) {
        let (details, fingerprint) = match self {
            Refusal::MalformedKey => ("the x-api-key header is not an API key", None),
            Refusal::UnknownKey => ("unknown API key", None),
            Refusal::RevokedKey(key) => {
                let extensions = response.extensions_mut();
                extensions.insert(ApiKeyRef::new(key.id.clone(), key.name.clone()));
                extensions.insert(TenantRef::new(key.tenant_id.clone()));
                extensions.insert(Actor::api_key(key.id.clone(), key.name.clone()));
                ("revoked API key", None)
            }
            Refusal::MalformedAuthorization(fingerprint) => {
                ("malformed Authorization header", Some(fingerprint))
            }
            Refusal::UnknownToken(fingerprint) => {
                ("unknown or expired session token", Some(fingerprint))
            }
        };
        if let Some(audit) = audit {
            audit.details(details);
            if let Some(fingerprint) = fingerprint {
                audit.metadata("fingerprint", fingerprint);
            }
        }
    }
}

/// What a request's credentials came to, as [`identify`] leaves it in the request extensions
/// for [`authenticate`].
#[derive(Debug, Clone)]
enum Identified {
    /// A caller, named in the extensions.
    Caller,
    /// No credentials.
    Nobody,
    /// Credentials refused.
    Refused(Refusal),
    /// Looking them up failed (logged): the database's error.
    Failed(String),
}

/// Whether the request's method is safe (the session cookie counts only then).
fn is_safe(req: &Request) -> bool {
    matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    )
}

/// Looks the request's credentials up and, for a caller, names it in `req`'s extensions as an
/// [`Actor`], a [`TenantRef`], an [`ApiKeyRef`] for a key, and a [`Caller`].
async fn look_up(state: &AppState, req: &mut Request) -> Identified {
    // Headers only: a `&Request` held across an await would make this future not `Send`.
    let found = lookup(state, req.headers(), is_safe(req)).await;
    match found {
        Ok(Some((caller, key))) => {
            let actor = match (&caller.user_id, &key) {
                (Some(id), _) => Actor::user(id.clone(), caller.name.clone()),
                (None, Some(key)) => {
                    Actor::api_key(key.id.clone().unwrap_or_default(), caller.name.clone())
                }
                (None, None) => Actor::anonymous(),
            };
            let extensions = req.extensions_mut();
            extensions.insert(actor);
            extensions.insert(TenantRef::new(caller.tenant_id.clone()));
            if let Some(key) = key {
                extensions.insert(key);
            }
            extensions.insert(caller);
            Identified::Caller
        }
        Ok(None) => Identified::Nobody,
        Err(Refused::Credentials(refusal)) => Identified::Refused(refusal),
        Err(Refused::Error(error)) => {
            tracing::error!(%error, "looking up a request's credentials failed");
            Identified::Failed(error.to_string())
        }
    }
}

/// Middleware *outside* the audit layer: finds who is calling and names them in the request
/// extensions, refusing nothing, so the layer's capture (and an intent it stores before the
/// handler runs) has the actor and tenant. [`authenticate`], inside the layer, refuses.
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let identified = look_up(&state, &mut req).await;
    req.extensions_mut().insert(identified);
    next.run(req).await
}

/// Middleware *inside* the audit layer: answers 401 unless [`identify`] (or, without it, this
/// middleware itself) found a caller, so the layer records the refusal as `denied`; routes
/// anyone may call (`/login`, `/health`) pass without credentials.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let identified = match req.extensions_mut().remove::<Identified>() {
        Some(identified) => identified,
        None => look_up(&state, &mut req).await,
    };
    match identified {
        Identified::Caller => next.run(req).await,
        Identified::Nobody if is_public(req.uri().path()) => next.run(req).await,
        Identified::Nobody => ApiError::Unauthorized.into_response(),
        Identified::Refused(refusal) => {
            let mut response = ApiError::Unauthorized.into_response();
            refusal.describe(req.extensions().get::<AuditContext>(), &mut response);
            response
        }
        Identified::Failed(error) => {
            ApiError::Database(sea_orm::DbErr::Custom(error)).into_response()
        }
    }
}

/// Why [`lookup`] named no caller.
#[derive(Debug)]
enum Refused {
    /// The credentials are refused.
    Credentials(Refusal),
    /// Looking them up failed.
    Error(ApiError),
}

impl From<sea_orm::DbErr> for Refused {
    fn from(error: sea_orm::DbErr) -> Self {
        Refused::Error(ApiError::Database(error))
    }
}

/// The name of the cookie `POST /login` sets for the browser (the audit viewer).
pub const SESSION_COOKIE: &str = "ia_session";

/// The session cookie's token, if the request carries one.
fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| token)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

/// The session token a request carries: the browser's cookie, or a bearer token.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    session_cookie(headers).or_else(|| {
        headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
    })
}

/// The user `DEMO_ADMIN_TOKEN` acts as: the first demo tenant's administrator.
const DEMO_ADMIN: &str = "u-acme-admin";

async fn caller_for_token(state: &AppState, token: &str) -> Result<Caller, Refused> {
    let unknown = || Refused::Credentials(Refusal::UnknownToken(fingerprint(token.as_bytes())));
    let hash = sha256_hex(token);
    let user_id = if state.demo_admin_token_hash.as_deref() == Some(hash.as_str()) {
        DEMO_ADMIN.to_owned()
    } else {
        session::Entity::find_by_id(hash)
            .one(&state.db)
            .await?
            .ok_or_else(unknown)?
            .user_id
    };
    let user = user::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .ok_or_else(unknown)?;
    Ok(Caller {
        tenant_id: user.tenant_id,
        role: user.role,
        user_id: Some(user.id),
        name: user.email,
    })
}

/// Finds the caller. The session cookie counts only on safe methods (the viewer's reads):
/// changes need an `Authorization` or `x-api-key` header, which another site cannot make a
/// browser send, so cookies open no cross-site request forgery.
async fn lookup(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    safe: bool,
) -> Result<Option<(Caller, Option<ApiKeyRef>)>, Refused> {
    if let Some(token) = session_cookie(headers).filter(|_| safe) {
        return caller_for_token(state, token)
            .await
            .map(|caller| Some((caller, None)));
    }
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(|| {
                Refused::Credentials(Refusal::MalformedAuthorization(fingerprint(
                    value.as_bytes(),
                )))
            })?;
        return caller_for_token(state, token)
            .await
            .map(|caller| Some((caller, None)));
    }
    if let Some(value) = headers.get("x-api-key") {
        let raw = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(Refused::Credentials(Refusal::MalformedKey))?;
        let key = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(sha256_hex(raw)))
            .one(&state.db)
            .await?
            .ok_or(Refused::Credentials(Refusal::UnknownKey))?;
        if key.revoked {
            return Err(Refused::Credentials(Refusal::RevokedKey(key)));
        }
        let caller = Caller {
            tenant_id: key.tenant_id.clone(),
            role: MEMBER.to_owned(),
            user_id: None,
            name: key.name.clone(),
        };
        return Ok(Some((caller, Some(ApiKeyRef::new(key.id, key.name)))));
    }
    Ok(None)
}
