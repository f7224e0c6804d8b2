//! The admin router: list, filter, page, inspect and export the audit log, with access control,
//! an OpenAPI document and a viewer page (feature `admin`, on by default).
//!
//! Administrators and auditors ask an [`AuditStore`] questions through HTTP, within the
//! [`Scope`](audit_core::store::Scope) a pluggable [`AdminGuard`] grants them, and every read
//! and export they make is itself recorded, so the log shows who looked at it.
//!
//! | endpoint | what it answers |
//! |---|---|
//! | `GET /` | the viewer page (HTML, no build step): table, filters, details, export buttons |
//! | `GET /entries` | one page of entries as JSON: `{"items": [...], "next_cursor": ...}` |
//! | `GET /entries/{id}` | one entry, with its `changes`; 404 when it is outside your scope |
//! | `GET /export.csv`, `/export.json`, `/export.ndjson` | every matching entry, streamed as a file (with no `to`, up to the moment it started); in JSON and NDJSON each entry with its `"chain"` link, and a tenant's file with where its chain starts and its latest checkpoint ([`AdminRouter::checkpoints`]) |
//! | `GET /verify` | the caller's tenant's hash chain checked (operators name a tenant) |
//! | `POST /erase` | `{"actor_id": …}` as JSON: that person's personal data erased from every entry of theirs, keeping the chain verifiable (operators only; recorded as `Erase`) |
//! | `GET /retention` | how long the caller's tenant's entries are kept ([`AdminRouter::retention`]) and the legal hold on it, if any |
//! | `POST /purge` | `{"tenant": …, "dry_run": …}` as JSON: what the retention policy no longer keeps of the tenant deleted, or counted (operators only; recorded as `Purge`) |
//! | `POST /legal-hold` | `{"tenant": …, "hold": true, "reason": …}` as JSON: purges of the tenant suspended until `"hold": false` (operators only) |
//! | `GET /summary` | entries per UTC day and per `by=action` (default), `actor` or `entity_type`, for the filters (default: the last 30 days): `{"by", "from", "to", "days": [{"day", "counts"}], "totals": [{"key", "label", "count"}]}` |
//! | `GET /actors` | the actors seen, most recently first, `q` matching a part of their id, name or e-mail, `limit` 1 to 100 (default 20) |
//! | `GET /facets` | what the viewer's pickers offer: entity types, actions, teams and API keys |
//! | `GET /openapi.json` | an OpenAPI 3 document of these endpoints |
//!
//! The list and export endpoints take the filters `entity_type`, `action`, `actor_id`,
//! `actor_kind`, `api_key`, `entity_id`, `outcome`, `team` (each repeatable: values combine
//! with OR), `from` and `to` (RFC 3339; the range is `[from, to)`), `q` (free text), `reads`
//! (`hide`, the default, leaves out the log's own reads; `include` shows them) and `order`
//! (`desc`, the default, or `asc`); the list also takes `limit` (1 to 1000, default 100) and
//! `cursor`. A bad or unknown parameter is a 400 whose JSON body names it; a value outside a
//! closed set (an action neither well-known nor named with [`AdminRouter::actions`], an actor
//! kind, outcome, order) is a 400 listing the valid values. A team administrator naming
//! another team is a 403.
//!
//! # Access
//!
//! Nothing is shown until you configure a guard: the default, [`DenyAll`], answers every data
//! endpoint with 403. A guard is any `Fn(&http::request::Parts) -> Access`; its answer becomes
//! the store query's scope (applied inside the query, never by filtering results), so a tenant
//! administrator cannot list, export or even confirm the existence of another tenant's entries.
//! The viewer page and the OpenAPI document hold no data and are served to everyone; the page
//! shows the guard's message when the data endpoints answer 403.
//!
//! # Recording reads
//!
//! A successful list or fetch is recorded as [`Action::Read`](audit_core::Action::Read) and an
//! export as [`Action::Export`](audit_core::Action::Export), on entity type `AuditLog`, with the
//! filter in the entry's `metadata`; a request the guard denies is recorded as `Read` with the
//! outcome `denied`. These entries are made by the capture of an
//! [`AuditLayer`] (give the router your service's with
//! [`AdminRouter::recorded_by`]): the same resolvers name the actor, tenant and API key, the
//! same client address configuration and redaction apply, and the entries go to the same sink.
//! Without a tenant from the request, the tenant (and team) of the granted scope is used, so a
//! tenant administrator sees their own reads in their own log. A failure to record is logged,
//! never turned into a failed request.
//!
//! ```
//! use audit_core::{MemoryStore, TenantRef};
//! use audit_tower::admin::{self, Access};
//! use axum::Router;
//!
//! /// Set by your authentication middleware.
//! #[derive(Clone)]
//! struct IsAdmin(bool);
//!
//! let store = MemoryStore::new(); // or audit_seaorm::SeaOrmStore
//! let audit_admin = admin::router(store)
//!     // Only administrators, and each only to their own tenant: being signed in is not enough.
//!     .guard(|parts: &http::request::Parts| {
//!         let admin = parts.extensions.get::<IsAdmin>().is_some_and(|a| a.0);
//!         match (admin, parts.extensions.get::<TenantRef>()) {
//!             (true, Some(tenant)) => Access::tenant(&tenant.tenant_id),
//!             _ => Access::denied("The audit log is for administrators."),
//!         }
//!     })
//!     .into_router();
//! let app: Router = Router::new().nest("/admin/audit-log", audit_admin);
//! // The viewer is at GET /admin/audit-log.
//! ```

mod csv;
mod error;
mod export;
mod guard;
mod handlers;
mod openapi;
mod params;
mod response;
mod retention;
mod summary;
mod viewer;

use std::sync::Arc;

use audit_core::store::AuditStore;
use audit_core::{AuditSink, PartHealth};
use axum::Router;
use axum::routing::{get, post};

use crate::layer::AuditLayer;

pub use error::AdminError;
pub use guard::{Access, AdminGuard, DenyAll, NO_GUARD_MESSAGE};

/// The entity type under which reads and exports of the log are recorded.
pub const AUDIT_LOG_ENTITY: &str = audit_core::store::AUDIT_LOG_ENTITY;

/// An admin router for `store`, to configure and then turn into an axum `Router` with
/// [`AdminRouter::into_router`]. The same as [`AdminRouter::new`].
pub fn router<S: AuditStore + AuditSink>(store: S) -> AdminRouter<S> {
    AdminRouter::new(store)
}

/// The admin router's configuration: the store, the guard and the layer that records reads.
///
/// See the [module documentation](self) for the endpoints and an example.
pub struct AdminRouter<S> {
    store: Arc<S>,
    guard: Arc<dyn AdminGuard>,
    audit: AuditLayer,
    entity_types: Vec<String>,
    actions: Vec<String>,
    sign_in_url: Option<String>,
    sign_out_url: Option<String>,
    health_parts: Vec<(String, handlers::HealthPart)>,
    retention: audit_core::retention::RetentionPolicy,
    checkpoints: Option<handlers::CheckpointSource>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AdminRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRouter")
            .field("store", &self.store)
            .field("audit", &self.audit)
            .field("entity_types", &self.entity_types)
            .finish_non_exhaustive()
    }
}

impl<S: AuditStore + AuditSink> AdminRouter<S> {
    /// An admin router reading from `store` and recording reads into it with a default
    /// [`AuditLayer`], with the [`DenyAll`] guard: configure a [`guard`](Self::guard) before
    /// anyone can read.
    pub fn new(store: S) -> Self {
        let store = Arc::new(store);
        AdminRouter {
            audit: AuditLayer::new(store.clone()),
            store,
            guard: Arc::new(DenyAll),
            entity_types: Vec::new(),
            actions: Vec::new(),
            sign_in_url: None,
            sign_out_url: None,
            health_parts: Vec::new(),
            retention: audit_core::retention::RetentionPolicy::default(),
            checkpoints: None,
        }
    }

    /// Decides who may read how much of the log (default: [`DenyAll`]).
    ///
    /// **Warning:** a guard that answers [`Access::All`] to every request publishes every
    /// tenant's audit log to anyone who can reach the router. Decide from authenticated data
    /// in the request extensions, never from a header the client can set.
    pub fn guard(mut self, guard: impl AdminGuard) -> Self {
        self.guard = Arc::new(guard);
        self
    }

    /// Records reads and exports of the log as `layer` records requests: with its resolvers,
    /// client address configuration, redaction and limits, into its sink (default: a plain
    /// [`AuditLayer`] writing to the store). Give it the layer your service uses.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::{AuditLayer, ClientIpConfig, ClientIpSource, admin};
    ///
    /// let store = MemoryStore::new();
    /// let audit = AuditLayer::new(store.clone()).client_ip(ClientIpConfig::forwarded(
    ///     ClientIpSource::XForwardedFor,
    ///     ["10.0.0.0/8".parse().unwrap()],
    /// ));
    /// let audit_log = admin::router(store).recorded_by(&audit).into_router::<()>();
    /// # let _ = audit_log;
    /// ```
    pub fn recorded_by(mut self, layer: &AuditLayer) -> Self {
        self.audit = layer.clone();
        // The custom actions the layer's verbs and rules record are valid filter values.
        for action in layer.config().routes.custom_actions() {
            if !self.actions.iter().any(|a| a == action.as_str()) {
                self.actions.push(action.as_str().to_owned());
            }
        }
        self
    }

    /// How long each tenant's entries are kept (default: forever): what `GET /retention`
    /// and the viewer show, and what `POST /purge` deletes by. Give it the policy your purge
    /// schedule uses; it is a shared handle, so changing a tenant's period there shows here.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_core::retention::{Period, RetentionPolicy};
    /// use audit_tower::admin;
    ///
    /// let policy = RetentionPolicy::new(Period::Days(365));
    /// policy.set_tenant("acme", Period::Days(90));
    /// let audit_log = admin::router(MemoryStore::new()).retention(policy).into_router::<()>();
    /// # let _ = audit_log;
    /// ```
    pub fn retention(mut self, policy: audit_core::retention::RetentionPolicy) -> Self {
        self.retention = policy;
        self
    }

    /// Where a tenant's exports find the latest signed checkpoint of its chain: `latest` is
    /// asked on each JSON or NDJSON export of one tenant, and its answer ends the file as a
    /// `{"checkpoint": …}` line, which `integrations-admin verify-export` checks with the
    /// public key. Checkpoints are kept apart from the database (read them from where your
    /// signing schedule writes them).
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_core::checkpoint::SignedCheckpoint;
    /// use audit_tower::admin;
    ///
    /// let audit_log = admin::router(MemoryStore::new())
    ///     .checkpoints(|tenant: Option<&str>| -> Option<SignedCheckpoint> {
    ///         let _ = tenant; // look up the newest checkpoint of this tenant's chain
    ///         None
    ///     })
    ///     .into_router::<()>();
    /// # let _ = audit_log;
    /// ```
    pub fn checkpoints(
        mut self,
        latest: impl Fn(Option<&str>) -> Option<audit_core::checkpoint::SignedCheckpoint>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.checkpoints = Some(Arc::new(latest));
        self
    }

    /// The service's entity types: what the viewer offers in its entity type filter (besides
    /// the types present in the log), and the spellings the `entity_type` filter matches in
    /// any case or style (`connection-profile` finds `ConnectionProfile`). The filter stays
    /// open: a type not named here is searched as given, so the entries of a type the service
    /// no longer has remain findable.
    pub fn entity_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.entity_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// The service's own (custom) actions, as it records them: with the well-known actions,
    /// the values the `action` filter accepts (in any case) and the viewer offers. The verbs
    /// and rules of the layer given to [`recorded_by`](Self::recorded_by) are added. Any
    /// other value is taken only where the caller's log holds it (an action a route derived,
    /// `POST /flows/{id}/archive`); otherwise it is a 400 listing the valid ones, so a
    /// misspelt action is not an empty result.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::admin;
    ///
    /// let audit_log = admin::router(MemoryStore::new())
    ///     .actions(["Approve", "Refund"])
    ///     .into_router::<()>();
    /// # let _ = audit_log;
    /// ```
    pub fn actions<I, T>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// Where the viewer sends a visitor who is signed out: when the data endpoints answer
    /// `401`, the page goes to `url` with `next=` its own address and query added (`?next=`,
    /// or `&next=` when `url` has a query), so the sign-in page can come back to the same
    /// filters. Without it the page says the visitor is signed out. Give a path on the same
    /// site, such as `/login`; the sign-in page should check that `next` is a local path
    /// before following it.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::admin;
    ///
    /// let audit_log = admin::router(MemoryStore::new())
    ///     .sign_in_url("/login")
    ///     .sign_out_url("/logout")
    ///     .into_router::<()>();
    /// # let _ = audit_log;
    /// ```
    pub fn sign_in_url(mut self, url: impl Into<String>) -> Self {
        self.sign_in_url = Some(url.into());
        self
    }

    /// Where the viewer's "Sign out" link leads; without it the page shows none.
    pub fn sign_out_url(mut self, url: impl Into<String>) -> Self {
        self.sign_out_url = Some(url.into());
        self
    }

    /// Adds a part of the pipeline to `GET /health`: `report` is called on each request and
    /// its result shown under `name`; a degraded part makes the status `degraded`.
    /// `audit_nats::RunningForwarder::health` gives one for a JetStream forwarder.
    ///
    /// ```
    /// use audit_core::{MemoryStore, PartHealth};
    /// use audit_tower::admin;
    ///
    /// let audit_log = admin::router(MemoryStore::new())
    ///     .health_part("archive", || PartHealth {
    ///         degraded: false,
    ///         details: serde_json::json!({"last_run": "2026-12-01T00:00:00Z"}),
    ///     })
    ///     .into_router::<()>();
    /// # let _ = audit_log;
    /// ```
    pub fn health_part(
        mut self,
        name: impl Into<String>,
        report: impl Fn() -> PartHealth + Send + Sync + 'static,
    ) -> Self {
        self.health_parts.push((name.into(), Arc::new(report)));
        self
    }

    /// The axum router, to mount with `Router::nest("/admin/audit-log", ..)` (any prefix
    /// works; the viewer finds its endpoints relative to its own address).
    pub fn into_router<T>(self) -> Router<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        let vocabulary = params::Vocabulary::new(&self.actions, &self.entity_types);
        let shared = Arc::new(handlers::AdminState {
            viewer: viewer::ViewerPage::new(&viewer::ViewerSettings {
                entity_types: &self.entity_types,
                vocabulary: Some(&vocabulary),
                sign_in_url: self.sign_in_url.as_deref(),
                sign_out_url: self.sign_out_url.as_deref(),
            }),
            vocabulary,
            openapi: openapi::document(),
            store: self.store,
            guard: self.guard,
            audit: self.audit,
            health_parts: self.health_parts,
            retention: self.retention,
            checkpoints: self.checkpoints,
        });
        Router::new()
            .route("/", get(viewer::page::<S>))
            .route("/openapi.json", get(openapi::serve::<S>))
            .route("/entries", get(handlers::list::<S>))
            .route("/entries/{id}", get(handlers::entry::<S>))
            .route("/export.csv", get(handlers::export_csv::<S>))
            .route("/export.json", get(handlers::export_json::<S>))
            .route("/export.ndjson", get(handlers::export_ndjson::<S>))
            .route("/health", get(handlers::health::<S>))
            .route("/verify", get(handlers::verify::<S>))
            .route("/erase", post(handlers::erase::<S>))
            .route("/retention", get(retention::retention::<S>))
            .route("/purge", post(retention::purge::<S>))
            .route("/legal-hold", post(retention::legal_hold::<S>))
            .route("/summary", get(summary::summary::<S>))
            .route("/actors", get(summary::actors::<S>))
            .route("/facets", get(summary::facets::<S>))
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .with_state(shared)
    }
}
