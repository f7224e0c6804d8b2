//! [`AuditLayer`]: what to record and how, as a tower [`Layer`].
//!
//! Put the layer with `Router::layer`, so it runs after routing and sees the matched route.
//! Authentication can run outside it (and put an [`Actor`](audit_core::Actor) into the request
//! extensions) or inside it (and put one into the response extensions); both are read.

use std::sync::Arc;

use audit_core::{Action, AuditSink, IntentStore, Limits, Redactor};
use chrono::{DateTime, Utc};
use http::HeaderName;
use tower::Layer;

use crate::client_ip::ClientIpConfig;
use crate::config::Config;
use crate::delivery::{Buffered, DeliveryStats, Queue, Synchronous};
use crate::resolve::{ResolveActor, ResolveApiKey, ResolveTenant};
use crate::route::RouteRule;
use crate::service::{AuditService, Wiring};

/// Records one audit entry for every mutating request on a matched route.
///
/// `AuditLayer::new(sink)` is all the default behaviour needs: `POST`, `PUT`, `PATCH` and
/// `DELETE` on matched routes are recorded, with the action and entity derived from the route,
/// the actor, tenant and API key read from the extensions, and the client address from the TCP
/// peer. The builder methods change each of those.
///
/// ```
/// use audit_core::MemoryStore;
/// use audit_tower::AuditLayer;
/// use axum::{Router, routing::post};
///
/// let sink = MemoryStore::new();
/// let app: Router = Router::new()
///     .route("/api-keys/{id}/revoke", post(|| async { "revoked" }))
///     .layer(AuditLayer::new(sink.clone()));
/// ```
///
/// The raw API key, the `Authorization` and `Cookie` headers, query strings and bodies are never
/// read into an entry.
#[derive(Clone, Debug)]
pub struct AuditLayer {
    config: Arc<Config>,
    /// The queue entries go through to the sink, shared by the layer's clones.
    queue: Arc<Queue>,
}

impl AuditLayer {
    /// A layer that hands entries to `sink`.
    pub fn new<S: AuditSink>(sink: S) -> Self {
        let sink: Arc<dyn AuditSink> = Arc::new(sink);
        AuditLayer {
            queue: Arc::new(Queue::new(Synchronous::default(), sink.clone())),
            config: Arc::new(Config::new(sink)),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Finds the actor with `resolver` when the extensions hold no [`Actor`](audit_core::Actor).
    ///
    /// ```
    /// use audit_core::{Actor, MemoryStore};
    /// use audit_tower::AuditLayer;
    /// use http::{Extensions, HeaderMap};
    ///
    /// // A gateway in front of the service puts the signed-in user's id in a header.
    /// let layer = AuditLayer::new(MemoryStore::new()).actor_with(|h: &HeaderMap, _: &Extensions| {
    ///     let id = h.get("x-user-id")?.to_str().ok()?;
    ///     Some(Actor::user(id, id))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn actor_with(self, resolver: impl ResolveActor) -> Self {
        self.with(|c| c.actor = Some(Arc::new(resolver)))
    }

    /// Finds the tenant with `resolver` when the extensions hold no
    /// [`TenantRef`](audit_core::TenantRef).
    pub fn tenant_with(self, resolver: impl ResolveTenant) -> Self {
        self.with(|c| c.tenant = Some(Arc::new(resolver)))
    }

    /// Maps the API key header's value to the key's id and name with `resolver`. Unknown keys
    /// are recorded as a fingerprint only (`sha256:` and 12 hex digits of the key's SHA-256).
    ///
    /// ```
    /// use audit_core::{ApiKeyRef, MemoryStore};
    /// use audit_tower::AuditLayer;
    ///
    /// let layer = AuditLayer::new(MemoryStore::new())
    ///     .api_key_with(|raw: &str| (raw == "sk_live_ci").then(|| ApiKeyRef::new("k-1", "CI deploy")));
    /// # let _ = layer;
    /// ```
    pub fn api_key_with(self, resolver: impl ResolveApiKey) -> Self {
        self.with(|c| c.api_key = Some(Arc::new(resolver)))
    }

    /// The header that carries API keys (default `x-api-key`).
    pub fn api_key_header(self, header: HeaderName) -> Self {
        self.with(|c| c.api_key_header = Some(header))
    }

    /// Ignores API key headers; keys are then known only from the extensions.
    pub fn no_api_key_header(self) -> Self {
        self.with(|c| c.api_key_header = None)
    }

    /// Reads the entity id from this request header when the route does not carry one: for
    /// gRPC calls, whose paths name no object, the header is a metadata key the client sends
    /// (`x-entity-id`, say). The handler's [`AuditContext::entity_id`](crate::AuditContext::entity_id)
    /// wins over it.
    ///
    /// # Warning
    /// The client chooses the header's value: prefer the handler's, which names the object it
    /// actually changed.
    pub fn entity_id_header(self, header: HeaderName) -> Self {
        self.with(|c| c.entity_id_header = Some(header))
    }

    /// Where the client address comes from (default: the TCP peer).
    pub fn client_ip(self, config: ClientIpConfig) -> Self {
        self.with(|c| c.client_ip = config)
    }

    /// Adds an explicit rule for one route; later rules win over earlier ones.
    pub fn rule(self, rule: RouteRule) -> Self {
        self.with(|c| {
            c.routes.add_rule(rule);
            c.record_safe_methods = c.routes.has_safe_method_rules();
        })
    }

    /// Recognises a trailing path segment as a verb (`/invoices/{id}/approve` → `Approve`).
    pub fn verb(self, segment: impl Into<String>, action: Action) -> Self {
        self.with(|c| c.routes.add_verb(segment.into(), action))
    }

    /// The redaction rules for changes and metadata (default: [`Redactor::default`]).
    pub fn redactor(self, redactor: Redactor) -> Self {
        self.with(|c| {
            c.routes.set_redactor(redactor.clone());
            c.redactor = redactor;
        })
    }

    /// Stores intents in `store` for the routes whose [`RouteRule::intent`] asks for one: the
    /// entry, with the outcome `unknown`, is written there before the handler runs, and
    /// removed once the final entry is stored. Run `store`'s
    /// [`recover_intents`](audit_core::IntentStore::recover_intents) when the service starts,
    /// so intents left by a process that died become entries.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::{AuditLayer, RouteRule};
    /// use http::Method;
    ///
    /// let store = MemoryStore::new();
    /// // Refunds happen at the payment provider: no transaction holds them with their entry.
    /// let layer = AuditLayer::new(store.clone())
    ///     .intents(store.clone())
    ///     .rule(RouteRule::new(Method::POST, "/payments/{id}/refund").intent());
    /// # let _ = layer;
    /// ```
    pub fn intents(self, store: impl IntentStore) -> Self {
        let store: Arc<dyn IntentStore> = Arc::new(store);
        self.with(|c| c.intents = Some(store))
    }

    /// Takes entries' times from `clock` instead of the system clock. For demo data spread
    /// over days and for tests of time filters; a service in production keeps the default.
    /// The entry's id is a UUIDv7 of the same instant, so ids still sort like times as long
    /// as the clock does not go backwards.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::AuditLayer;
    /// use chrono::{TimeZone, Utc};
    ///
    /// let layer = AuditLayer::new(MemoryStore::new())
    ///     .clock(|| Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0).unwrap());
    /// # let _ = layer;
    /// ```
    pub fn clock(self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.with(|c| c.clock = Some(Arc::new(clock)))
    }

    /// The field bounds (default: [`Limits::default`]).
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|c| c.limits = limits)
    }

    /// Sets how the synchronous delivery, the default, waits and groups; see [`Synchronous`].
    ///
    /// The response waits until the sink has the entry; entries of concurrent requests are
    /// stored together. When the sink fails, the response waits up to
    /// [`Synchronous::wait`] and then goes out, the entry left to the writer task, which
    /// retries it until stored (counted in [`stats`](Self::stats) as `handed_off`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use audit_core::MemoryStore;
    /// use audit_tower::{AuditLayer, Synchronous};
    ///
    /// let layer = AuditLayer::new(MemoryStore::new())
    ///     .synchronous(Synchronous::default().wait(Duration::from_secs(5)));
    /// # let _ = layer;
    /// ```
    pub fn synchronous(mut self, settings: Synchronous) -> Self {
        self.queue = Arc::new(Queue::new(settings, self.config.sink.clone()));
        self
    }

    /// Delivers entries through a bounded queue without waiting for them; see [`Buffered`].
    ///
    /// The default (without this) is [synchronous](Self::synchronous): the response waits
    /// until the sink has the entry. Buffered, a recorded request takes a queue slot before its
    /// handler runs (and is refused with `503` and `Retry-After` when none is free), its
    /// response returns as soon as the capture is queued, and a writer task on the Tokio
    /// runtime stores entries in batches, retrying failures. It needs Tokio's time driver
    /// (`#[tokio::main]` enables it). Call [`flush`](Self::flush) before the process exits.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::{AuditLayer, Buffered};
    /// use axum::{Router, routing::post};
    ///
    /// # async fn run() {
    /// let sink = MemoryStore::new();
    /// let audit = AuditLayer::new(sink.clone()).buffered(Buffered::new(10_000));
    /// let app: Router = Router::new()
    ///     .route("/tenants", post(|| async { "created" }))
    ///     .layer(audit.clone());
    /// // ... serve `app` with graceful shutdown, then:
    /// audit.flush().await;
    /// # }
    /// ```
    pub fn buffered(mut self, settings: Buffered) -> Self {
        self.queue = Arc::new(Queue::new(settings, self.config.sink.clone()));
        self
    }

    /// Waits until every entry queued so far is stored: in buffered mode, and in synchronous
    /// mode the entries handed to the writer while the sink was failing. While the sink keeps
    /// failing this keeps waiting, so bound it with `tokio::time::timeout` at shutdown.
    pub async fn flush(&self) {
        self.queue.flush().await;
    }

    /// How delivery is doing: entries queued, stored, retried, handed off, requests refused.
    ///
    /// ```
    /// use audit_core::MemoryStore;
    /// use audit_tower::AuditLayer;
    ///
    /// let stats = AuditLayer::new(MemoryStore::new()).stats();
    /// assert_eq!((stats.mode, stats.queued, stats.written), ("synchronous", 0, 0));
    /// ```
    pub fn stats(&self) -> DeliveryStats {
        self.queue.stats()
    }

    /// Records a read the admin router served, through the queue like a request's entry: it
    /// takes a slot even when none is free (the read has happened), and in synchronous mode
    /// this waits for the entry as a response would.
    #[cfg(feature = "admin")]
    pub(crate) async fn record_served(
        &self,
        context: crate::context::AuditContext,
        facts: crate::capture::ResponseFacts,
    ) {
        let queue = &self.queue;
        if !queue.reserve_served() {
            if let Some(entry) = context.finish(Some(facts)) {
                crate::delivery::write(entry, self.config.clone()).await;
            }
            return;
        }
        if !context.park(facts) {
            queue.give_back();
            return;
        }
        let seq = queue.push(context);
        queue.wait_stored(seq).await;
    }

    /// What the layer's services share.
    pub(crate) fn wiring(&self) -> Arc<Wiring> {
        Arc::new(Wiring {
            config: self.config.clone(),
            queue: self.queue.clone(),
        })
    }

    /// The layer's settings, for the admin router's records of its own reads.
    #[cfg(feature = "admin")]
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService::new(inner, self.wiring())
    }
}
