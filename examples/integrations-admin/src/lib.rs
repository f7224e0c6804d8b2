//! An integrations-admin API whose whole audit log comes from one `AuditLayer`.
//!
//! Read [`router`] first: the audit wiring is the `.layer(AuditLayer::new(..))` line, the admin
//! router nested at `/admin/audit-log`, and the `AuditContext` calls in [`handlers`] that name
//! objects and record their before and after values.
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
pub mod handlers;
pub mod model;
pub mod retention;
pub mod seed;

use std::sync::Arc;

use audit_core::AuditSink;
use audit_seaorm::{SeaOrmStore, SeaOrmTransactions};
use audit_tower::admin::Access;
use audit_tower::{AuditLayer, TransactionLayer};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Schema};

pub use seed::{Demo, DemoTenant, DemoUser, SeedError, seed_demo};

/// What every handler shares: the database and the audit store in it.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The service's database (the same pool the audit store uses).
    pub db: DatabaseConnection,
    /// The audit log, in the same database.
    pub store: SeaOrmStore,
    /// The SHA-256 (hex) of `DEMO_ADMIN_TOKEN`, a bearer token that acts as the demo
    /// administrator while the process runs with it set. Kept in memory only: a token that was
    /// stored as a session would outlive the variable.
    pub demo_admin_token_hash: Option<String>,
    /// How the JetStream forwarder this process runs is doing, for the audit log's
    /// `GET /health` (set by [`start_audit`] when it starts one).
    pub forwarder_health: Option<ForwarderHealth>,
    /// How long the audit log keeps each tenant's entries, by plan (see [`retention`]); a
    /// shared handle that plan changes update.
    pub retention: audit_core::retention::RetentionPolicy,
    /// Where the service signs checkpoints to (see [`CheckpointSchedule`]): a tenant's export
    /// from the audit log ends with its newest one.
    pub checkpoint_file: Option<std::path::PathBuf>,
}

/// Reports a running forwarder's health (see [`audit_nats::RunningForwarder::health`]).
#[derive(Clone)]
pub struct ForwarderHealth(pub Arc<dyn Fn() -> audit_core::PartHealth + Send + Sync>);

impl std::fmt::Debug for ForwarderHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ForwarderHealth").field(&(self.0)()).finish()
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Connecting or migrating the audit store failed.
    #[error("audit store: {0}")]
    Audit(#[from] audit_core::store::StoreError),
    /// Creating the service's tables failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// Connecting to NATS, or setting up the stream or the forwarder, failed.
    #[error("audit delivery through JetStream: {0}")]
    Nats(#[from] audit_nats::NatsError),
    /// The alert webhook's URL is not HTTP, or alerting could not start.
    #[error("audit alerts: {0}")]
    Alerts(#[from] audit_alerts::AlertError),
}

/// Connects to `database_url` (SQLite, PostgreSQL or MySQL), creates the audit table and the
/// service's tables when missing.
pub async fn connect(database_url: &str) -> Result<AppState, SetupError> {
    connect_with(database_url, None).await
}

/// [`connect`], with the audit store on a connection of its own to `audit_url`, which must
/// reach the same database (handlers that record in their own transaction write the entry
/// through the service's connection). A separate pool keeps the log's writes from waiting
/// behind the service's queries, and lets a test take the store away on its own.
pub async fn connect_with(
    database_url: &str,
    audit_url: Option<&str>,
) -> Result<AppState, SetupError> {
    let (store, db) = match audit_url {
        Some(audit_url) => {
            let store = SeaOrmStore::connect(audit_url).await?;
            (store, sea_orm::Database::connect(database_url).await?)
        }
        None => {
            let store = SeaOrmStore::connect(database_url).await?;
            let db = store.connection().clone();
            (store, db)
        }
    };
    let schema = Schema::new(db.get_database_backend());
    let mut tables = vec![
        schema.create_table_from_entity(model::tenant::Entity),
        schema.create_table_from_entity(model::user::Entity),
        schema.create_table_from_entity(model::session::Entity),
        schema.create_table_from_entity(model::api_key::Entity),
        schema.create_table_from_entity(model::connection_profile::Entity),
        schema.create_table_from_entity(model::mapping_config::Entity),
        schema.create_table_from_entity(model::extraction_cursor::Entity),
    ];
    for table in &mut tables {
        db.execute(table.if_not_exists()).await?;
    }
    // A database made before profiles could be deactivated gets the column.
    if db
        .execute_unprepared("SELECT active FROM connection_profiles WHERE 1 = 0")
        .await
        .is_err()
    {
        db.execute_unprepared(
            "ALTER TABLE connection_profiles ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE",
        )
        .await?;
    }
    Ok(AppState {
        db,
        store,
        demo_admin_token_hash: None,
        forwarder_health: None,
        retention: audit_core::retention::RetentionPolicy::new(
            audit_core::retention::Period::Days(365),
        ),
        checkpoint_file: None,
    })
}

/// `/admin/audit-log/` → `/admin/audit-log`, keeping the query: a shared viewer link keeps its
/// filters.
async fn viewer_without_slash(uri: axum::http::Uri) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let target = match uri.query() {
        Some(query) => format!("/admin/audit-log?{query}"),
        None => "/admin/audit-log".to_owned(),
    };
    // A parsed URI's query holds only characters a header value may hold.
    let location = HeaderValue::try_from(target)
        .unwrap_or_else(|_| HeaderValue::from_static("/admin/audit-log"));
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// The audit log viewer and API, for administrators of the caller's tenant and for the
/// platform operator (every tenant, and the entries of none); its reads are recorded by the
/// same layer as every change.
fn admin_router(state: &AppState, audit: &AuditLayer) -> Router<AppState> {
    let mut admin = audit_tower::admin::router(state.store.clone())
        .recorded_by(audit)
        .retention(state.retention.clone())
        // What the viewer offers before any entry of a type exists, in readable words.
        .entity_types([
            "Tenant",
            "ConnectionProfile",
            "MappingConfig",
            "ApiKey",
            "ExtractionCursor",
            "User",
        ])
        // Signed out, the viewer goes to the sign-in page, which comes back after.
        .sign_in_url("/login")
        .sign_out_url("/logout");
    if let Some(file) = state.checkpoint_file.clone() {
        admin = admin.checkpoints(move |tenant| latest_checkpoint(&file, tenant));
    }
    if let Some(ForwarderHealth(report)) = state.forwarder_health.clone() {
        admin = admin.health_part("forwarder", move || report());
    }
    admin
        .guard(
            |parts: &axum::http::request::Parts| match parts.extensions.get::<auth::Caller>() {
                // Every tenant's entries and those of none (failed logins for unknown e-mails,
                // unknown credentials).
                Some(caller) if caller.role == auth::OPERATOR => Access::All,
                Some(caller) if caller.role == auth::ADMINISTRATOR => {
                    Access::tenant(&caller.tenant_id)
                }
                Some(_) => Access::denied("The audit log is for administrators."),
                None => {
                    Access::denied("Sign in at /login as an administrator to read the audit log.")
                }
            },
        )
        .into_router()
}

/// The service's routes, audited by [`audit_layer`].
pub fn router(state: AppState) -> Router {
    let audit = audit_layer(&state, &AuditOptions::default());
    router_with(state, audit)
}

/// How the service's audit layer delivers entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Each response waits until its entry is stored (the layer's default).
    #[default]
    Synchronous,
    /// Responses return at once; a writer stores entries in batches.
    Buffered,
}

impl std::str::FromStr for Delivery {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "synchronous" | "sync" => Ok(Delivery::Synchronous),
            "buffered" => Ok(Delivery::Buffered),
            other => Err(format!(
                "unknown delivery {other:?}: use `synchronous` or `buffered`"
            )),
        }
    }
}

/// How the service's audit layer is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// Synchronous or buffered.
    pub delivery: Delivery,
    /// The queue's slots (the layer's default, 8,192, unless set).
    pub queue_capacity: Option<usize>,
    /// Publish entries to JetStream at this NATS URL instead of writing them to the database.
    pub nats_url: Option<String>,
    /// With JetStream: whether this process also runs a forwarder into its database (default
    /// yes; `AUDIT_FORWARDER=off` leaves that to `integrations-admin forward` processes).
    pub forwarder: bool,
    /// Alerts on sensitive actions (see [`alert_rules`]); `None` raises none.
    pub alerts: Option<AlertOptions>,
}

/// Where the service's alerts go: always to the log (a `WARN` event on the target
/// `audit::alert`), and to a webhook when one is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertOptions {
    /// A webhook that receives every alert as signed JSON.
    pub webhook: Option<AlertWebhook>,
}

/// A webhook for alerts: its URL and the secret its requests are signed with (see
/// `audit_alerts::webhook` for the scheme a receiver verifies).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertWebhook {
    /// Where alerts are posted (`http://`).
    pub url: String,
    /// The HMAC-SHA256 key shared with the receiver.
    pub secret: String,
}

impl std::fmt::Debug for AlertWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertWebhook")
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl AlertOptions {
    /// From `AUDIT_ALERT_WEBHOOK_URL` and `AUDIT_ALERT_WEBHOOK_SECRET`, which go together;
    /// neither set means alerts go to the log only.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let webhook = match (
            var("AUDIT_ALERT_WEBHOOK_URL"),
            var("AUDIT_ALERT_WEBHOOK_SECRET"),
        ) {
            (Some(url), Some(secret)) => Some(AlertWebhook {
                url: url.trim().to_owned(),
                secret,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "AUDIT_ALERT_WEBHOOK_URL needs AUDIT_ALERT_WEBHOOK_SECRET, the key \
                            its requests are signed with"
                        .to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "AUDIT_ALERT_WEBHOOK_SECRET is set without AUDIT_ALERT_WEBHOOK_URL".to_owned(),
                );
            }
        };
        Ok(AlertOptions { webhook })
    }
}

/// The service's alert rules: an API key revoked or deleted (each one), and failed logins,
/// five within ten minutes for one account (the e-mail address tried) or from one client
/// address.
pub fn alert_rules() -> Vec<audit_alerts::Rule> {
    use audit_alerts::{Per, Rule, Threshold};
    use audit_core::{Action, Outcome};
    let five_in_ten_minutes =
        |per: Per| Threshold::new(5, std::time::Duration::from_secs(10 * 60)).per(per);
    vec![
        Rule::new("api-key-revoked")
            .action(Action::Revoke)
            .entity_type("ApiKey")
            .outcome(Outcome::Success)
            .reason("an API key was revoked"),
        Rule::new("api-key-deleted")
            .action(Action::Delete)
            .entity_type("ApiKey")
            .outcome(Outcome::Success)
            .reason("an API key was deleted"),
        Rule::new("failed-logins-per-account")
            .action(Action::LoginFailed)
            .threshold(five_in_ten_minutes(Per::Actor)),
        Rule::new("failed-logins-per-ip")
            .action(Action::LoginFailed)
            .threshold(five_in_ten_minutes(Per::Ip)),
    ]
}

impl AuditOptions {
    /// From `AUDIT_DELIVERY` (`synchronous`, the default, or `buffered`),
    /// `AUDIT_QUEUE_CAPACITY` (a number of slots), `AUDIT_NATS_URL`, `AUDIT_FORWARDER`
    /// (`on`, the default, or `off`) and [`AlertOptions::from_env`]: the service started from
    /// the environment always alerts, to the log at least.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let delivery = match var("AUDIT_DELIVERY") {
            Some(text) => text.trim().parse()?,
            None => Delivery::default(),
        };
        let queue_capacity = match var("AUDIT_QUEUE_CAPACITY") {
            Some(text) => Some(text.trim().parse().map_err(|_| {
                format!("AUDIT_QUEUE_CAPACITY must be a number of slots, not {text:?}")
            })?),
            None => None,
        };
        let forwarder = match var("AUDIT_FORWARDER").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(format!(
                    "AUDIT_FORWARDER must be `on` or `off`, not {other:?}"
                ));
            }
        };
        Ok(AuditOptions {
            delivery,
            queue_capacity,
            nats_url: var("AUDIT_NATS_URL").map(|url| url.trim().to_owned()),
            forwarder,
            alerts: Some(AlertOptions::from_env()?),
        })
    }
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            delivery: Delivery::Synchronous,
            queue_capacity: None,
            nats_url: None,
            forwarder: true,
            alerts: None,
        }
    }
}

/// The audit layer of the service, delivering into the store. Keep a clone to
/// [`flush`](AuditLayer::flush) at shutdown.
pub fn audit_layer(state: &AppState, options: &AuditOptions) -> AuditLayer {
    audit_layer_into(state.store.clone(), state, options)
}

/// The audit layer of the service, delivering into `sink` as `options` say.
fn audit_layer_into(sink: impl AuditSink, state: &AppState, options: &AuditOptions) -> AuditLayer {
    use audit_tower::{Buffered, RouteRule, Synchronous};
    // Creating a tenant also provisions it outside this database (in a real service, a billing
    // account), so no transaction can hold the whole change with its entry: the layer stores
    // an intent before the handler runs. A process that dies mid-request leaves an entry whose
    // outcome is `unknown` (once `recover_intents` runs at the next start), never a tenant
    // without an entry.
    let layer = AuditLayer::new(sink)
        .intents(state.store.clone())
        .rule(RouteRule::new(axum::http::Method::POST, "/tenants").intent())
        // Signing out is a GET (a link in the viewer), recorded like a change.
        .rule(
            RouteRule::new(axum::http::Method::GET, "/logout")
                .action(audit_core::Action::Logout)
                .entity_type("User"),
        );
    match (options.delivery, options.queue_capacity) {
        (Delivery::Synchronous, None) => layer,
        (Delivery::Synchronous, Some(slots)) => layer.synchronous(Synchronous::new(slots)),
        (Delivery::Buffered, None) => layer.buffered(Buffered::default()),
        (Delivery::Buffered, Some(slots)) => layer.buffered(Buffered::new(slots)),
    }
}

/// The service's audit pipeline as `options` say: its layer and, with JetStream, the
/// forwarder this process runs.
#[derive(Debug)]
pub struct Audit {
    /// The layer to put around the routes (see [`router_with`]).
    pub layer: AuditLayer,
    /// The forwarder from JetStream into the database, when this process runs one: stop it
    /// after the layer's last entries are flushed.
    pub forwarder: Option<audit_nats::RunningForwarder>,
    /// The alerting task, when `options.alerts` asks for alerts: flush it after the layer.
    pub alerts: Option<audit_alerts::Alerts>,
}

/// Sets up the audit pipeline: without `nats_url`, the layer writes into the database; with
/// it, the layer publishes to JetStream (stream `AUDIT`, created when missing) and, unless
/// `options.forwarder` is off, a forwarder writes the stream into the database. With
/// `options.alerts`, the layer's sink is wrapped in an `AlertingSink` running
/// [`alert_rules`]: entries are evaluated once stored (with JetStream, once published).
/// Sets `state.forwarder_health`, so call it before [`router_with`].
pub async fn start_audit(
    state: &mut AppState,
    options: &AuditOptions,
) -> Result<Audit, SetupError> {
    let Some(url) = options.nats_url.as_deref() else {
        let (layer, alerts) = alerting_layer(state.store.clone(), state, options)?;
        return Ok(Audit {
            layer,
            forwarder: None,
            alerts,
        });
    };
    let jetstream = jetstream(url).await?;
    let stream = audit_nats::StreamSettings::default();
    let sink = audit_nats::JetStreamSink::new(jetstream.clone(), stream.clone()).await?;
    let forwarder = match options.forwarder {
        true => {
            let running = forwarder(&jetstream, state).await?;
            state.forwarder_health = Some(ForwarderHealth(Arc::new(running.health())));
            Some(running)
        }
        false => None,
    };
    let (layer, alerts) = alerting_layer(sink, state, options)?;
    Ok(Audit {
        layer,
        forwarder,
        alerts,
    })
}

/// The audit layer into `sink`, wrapped for alerts when `options` asks for them: every alert
/// is logged, and posted to the webhook when one is set.
fn alerting_layer(
    sink: impl AuditSink,
    state: &AppState,
    options: &AuditOptions,
) -> Result<(AuditLayer, Option<audit_alerts::Alerts>), SetupError> {
    let Some(alerts) = &options.alerts else {
        return Ok((audit_layer_into(sink, state, options), None));
    };
    let mut builder = audit_alerts::Alerts::builder().notifier(audit_alerts::TracingNotifier);
    for rule in alert_rules() {
        builder = builder.rule(rule);
    }
    if let Some(webhook) = &alerts.webhook {
        builder = builder.notifier(audit_alerts::WebhookNotifier::new(
            &webhook.url,
            &webhook.secret,
        )?);
    }
    let sink = builder.wrap(sink)?;
    let handle = sink.alerts().clone();
    Ok((audit_layer_into(sink, state, options), Some(handle)))
}

/// Connects to NATS at `url` (a comma-separated list for a cluster) and opens JetStream.
pub async fn jetstream(url: &str) -> Result<async_nats::jetstream::Context, SetupError> {
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    let client = async_nats::connect(servers)
        .await
        .map_err(|e| audit_nats::NatsError::Connect(url.to_owned(), e.to_string()))?;
    Ok(async_nats::jetstream::new(client))
}

/// Starts a forwarder of the `AUDIT` stream into `state`'s store (durable consumer
/// `audit-forwarder`, shared by every forwarder of the service).
pub async fn forwarder(
    jetstream: &async_nats::jetstream::Context,
    state: &AppState,
) -> Result<audit_nats::RunningForwarder, SetupError> {
    let forwarder = audit_nats::Forwarder::new(
        jetstream,
        &audit_nats::StreamSettings::default(),
        state.store.clone(),
        audit_nats::ForwarderSettings::default(),
    )
    .await?;
    Ok(forwarder.spawn())
}

/// The service's routes, audited by `audit`.
pub fn router_with(state: AppState, audit: AuditLayer) -> Router {
    use handlers::*;
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout))
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/tenants/{id}", get(get_tenant).put(update_tenant))
        .route("/tenants/{id}/deactivate", post(deactivate_tenant))
        .route("/tenants/{id}/toggle-active", post(toggle_tenant))
        .route(
            "/connection-profiles",
            get(list_profiles).post(create_profile),
        )
        .route(
            "/connection-profiles/bulk-deactivate",
            post(bulk_deactivate_profiles),
        )
        .route(
            "/connection-profiles/{id}",
            get(get_profile).put(update_profile).delete(delete_profile),
        )
        .route("/mapping-configs", get(list_mappings).post(create_mapping))
        .route(
            "/mapping-configs/{id}",
            get(get_mapping).put(update_mapping).delete(delete_mapping),
        )
        .route("/api-keys", get(list_keys).post(create_key))
        .route("/api-keys/{id}", get(get_key).delete(delete_key))
        .route("/api-keys/{id}/revoke", post(revoke_key))
        .route("/extraction-cursors", get(list_cursors))
        .route(
            "/extraction-cursors/{id}",
            get(get_cursor).delete(delete_cursor),
        )
        .route("/extraction-cursors/{id}/reset", post(reset_cursor))
        .route("/extraction-cursors/{id}/run", post(run_cursor))
        // Administrators read their own tenant's log, the operator every tenant's; everyone
        // else is refused.
        .nest("/admin/audit-log", admin_router(&state, &audit))
        .route("/admin/audit-log/", get(viewer_without_slash))
        // Layers run from the last added (outermost) to the first: the error format, the body
        // limit, identification, audit, the error format again (for what the layer records),
        // authentication, the transaction, then the handler.
        //
        // A transaction per request for the handlers that ask for one (connection profiles),
        // committed with the request's entry in it. Inside the audit layer, which it needs.
        .layer(TransactionLayer::new(SeaOrmTransactions::new(
            state.db.clone(),
        )))
        // Authentication inside the audit layer: a request it refuses with 401 is recorded as
        // `denied`.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // axum's rejections (a body that is not JSON, 413, 415, 422) in the service's error
        // format, with the reason the audit layer writes into the entry's `details`.
        .layer(middleware::from_fn(error::json_errors))
        // The whole audit wiring: every POST/PUT/PATCH/DELETE above leaves one entry in the
        // store, authenticated or not.
        .layer(audit)
        // Identification outside it, refusing nothing: the caller found from the credentials
        // is in the request extensions when the layer captures the request (and stores a new
        // tenant's intent, before the handler runs).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::identify,
        ))
        // Bodies past 256 KiB are refused with 413 before a handler reads them.
        .layer(DefaultBodyLimit::max(error::MAX_BODY_BYTES))
        // Every error the service answers is `{"error", "message"}` JSON, axum's rejections,
        // 404 and 405 included.
        .layer(middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Signed checkpoints of every chain of `state`'s log that verifies, and the reports of those
/// that do not (which are not signed).
pub async fn sign_checkpoints(
    state: &AppState,
    key: &audit_core::checkpoint::CheckpointKey,
) -> Result<
    (
        Vec<audit_core::checkpoint::SignedCheckpoint>,
        Vec<audit_core::chain::ChainReport>,
    ),
    audit_core::store::StoreError,
> {
    let mut signed = Vec::new();
    let mut broken = Vec::new();
    for report in state.store.verify_chains().await? {
        if report.is_intact() {
            let (seq, hash) = report.last;
            signed.push(
                audit_core::checkpoint::Checkpoint::now(report.tenant_id, seq, hash).sign(key),
            );
        } else {
            broken.push(report);
        }
    }
    Ok((signed, broken))
}

/// The newest checkpoint of `tenant`'s chain in `file` (one signed checkpoint a line, as the
/// schedule writes them); lines that are not checkpoints are skipped. The signature is left to
/// whoever verifies the export with the public key.
pub fn latest_checkpoint(
    file: &std::path::Path,
    tenant: Option<&str>,
) -> Option<audit_core::checkpoint::SignedCheckpoint> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|value| audit_core::checkpoint::SignedCheckpoint::from_json(&value).ok())
        .filter(|signed| signed.checkpoint.tenant_id.as_deref() == tenant)
        .max_by_key(|signed| signed.checkpoint.seq)
}

/// Where and how often the service signs checkpoints of its chains: from
/// `AUDIT_CHECKPOINT_KEY` (the key's 64 hex digits, see `integrations-admin checkpoint-key`),
/// `AUDIT_CHECKPOINT_FILE` (the file they are appended to, as NDJSON; keep it away from the
/// database) and `AUDIT_CHECKPOINT_EVERY` (seconds, default 3,600). `None` unless both the key
/// and the file are set.
pub struct CheckpointSchedule {
    /// The signing key.
    pub key: audit_core::checkpoint::CheckpointKey,
    /// The file checkpoints are appended to.
    pub file: std::path::PathBuf,
    /// The time between two rounds (the first is at start).
    pub every: std::time::Duration,
}

impl CheckpointSchedule {
    /// The schedule the environment asks for, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (Some(key), Some(file)) = (var("AUDIT_CHECKPOINT_KEY"), var("AUDIT_CHECKPOINT_FILE"))
        else {
            return Ok(None);
        };
        let key = audit_core::checkpoint::CheckpointKey::from_hex(&key)
            .map_err(|e| format!("AUDIT_CHECKPOINT_KEY: {e}"))?;
        let every = match var("AUDIT_CHECKPOINT_EVERY") {
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| {
                    format!("AUDIT_CHECKPOINT_EVERY must be a number of seconds, not {text:?}")
                })?,
            None => std::time::Duration::from_secs(3_600),
        };
        Ok(Some(CheckpointSchedule {
            key,
            file: file.into(),
            every,
        }))
    }

    /// Signs checkpoints of `state`'s chains now and then every `every`, appending them to
    /// the file, until the task is aborted. A chain that does not verify is not signed and is
    /// logged as an error; a failed round is logged and retried at the next.
    pub fn spawn(self, state: AppState) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.every);
            loop {
                ticks.tick().await;
                if let Err(e) = self.round(&state).await {
                    tracing::error!(error = %e, "audit: signing checkpoints failed");
                }
            }
        })
    }

    async fn round(&self, state: &AppState) -> Result<(), Box<dyn std::error::Error>> {
        use std::io::Write;
        let (signed, broken) = sign_checkpoints(state, &self.key).await?;
        for report in broken {
            tracing::error!(
                tenant = ?report.tenant_id,
                broken = ?report.broken,
                "audit: a hash chain does not verify; no checkpoint signed for it"
            );
        }
        let mut lines = String::new();
        for checkpoint in &signed {
            lines.push_str(&checkpoint.to_json().to_string());
            lines.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)?;
        file.write_all(lines.as_bytes())?;
        file.sync_data()?;
        Ok(())
    }
}
