//! [`AuditLayer`], [`AuditService`] and [`ResponseFuture`]: capture.
//!
//! In the flow **request → layer** → entry → sink → store → admin router, this is where entries
//! are born. For a request it records, the layer drafts the entry before the inner service runs
//! (so the handler can enrich it through [`AuditContext`]), finishes it from the response, and
//! waits for the sink before returning the response. Requests it does not record pass through
//! untouched.
//!
//! Put the layer with `Router::layer`, so it runs after routing and sees the matched route.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use audit_core::{Action, Actor, ActorKind, AuditEntry, AuditSink, Limits, Outcome, Redactor};
use axum::extract::MatchedPath;
use http::{Extensions, HeaderMap, HeaderName, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::client_ip::ClientIpConfig;
use crate::context::AuditContext;
use crate::resolve::{ResolveActor, ResolveApiKey, ResolveTenant, fingerprint};
use crate::route::{RouteRule, Routes, is_safe, segment_from_end};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// API key values longer than this are not looked up (they are still fingerprinted).
const MAX_API_KEY_BYTES: usize = 512;

/// Records one audit entry for every mutating request on a matched route.
///
/// `AuditLayer::new(sink)` is all the default behaviour needs: `POST`, `PUT`, `PATCH` and
/// `DELETE` on matched routes are recorded, with the action and entity derived from the route,
/// the actor, tenant and API key read from the extensions, and the client address from the TCP
/// peer. The builder methods change each of those.
///
/// ```
/// use audit_core::MemorySink;
/// use audit_tower::AuditLayer;
/// use axum::{Router, routing::post};
///
/// let sink = MemorySink::new();
/// let app: Router = Router::new()
///     .route("/api-keys/{id}/revoke", post(|| async { "revoked" }))
///     .layer(AuditLayer::new(sink.clone()));
/// ```
///
/// The raw API key, the `Authorization` and `Cookie` headers, query strings and bodies are never
/// read into an entry.
#[derive(Clone)]
pub struct AuditLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLayer")
            .field("api_key_header", &self.config.api_key_header)
            .field("client_ip", &self.config.client_ip)
            .field("redactor", &self.config.redactor)
            .field("limits", &self.config.limits)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    pub sink: Arc<dyn AuditSink>,
    pub actor: Option<Arc<dyn ResolveActor>>,
    pub tenant: Option<Arc<dyn ResolveTenant>>,
    pub api_key: Option<Arc<dyn ResolveApiKey>>,
    pub api_key_header: Option<HeaderName>,
    pub client_ip: ClientIpConfig,
    pub routes: Routes,
    pub record_safe_methods: bool,
    pub redactor: Redactor,
    pub limits: Limits,
}

impl AuditLayer {
    /// A layer that hands entries to `sink`.
    pub fn new<S: AuditSink>(sink: S) -> Self {
        AuditLayer {
            config: Arc::new(Config {
                sink: Arc::new(sink),
                actor: None,
                tenant: None,
                api_key: None,
                api_key_header: Some(HeaderName::from_static("x-api-key")),
                client_ip: ClientIpConfig::default(),
                routes: Routes::default(),
                record_safe_methods: false,
                redactor: Redactor::default(),
                limits: Limits::default(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Finds the actor with `resolver` (default: an [`Actor`] in the extensions).
    pub fn actor(self, resolver: impl ResolveActor) -> Self {
        self.with(|c| c.actor = Some(Arc::new(resolver)))
    }

    /// Finds the tenant with `resolver` (default: a [`TenantRef`](audit_core::TenantRef) in the
    /// extensions).
    pub fn tenant(self, resolver: impl ResolveTenant) -> Self {
        self.with(|c| c.tenant = Some(Arc::new(resolver)))
    }

    /// Maps the API key header's value to the key's id and name. Unknown keys are recorded as
    /// a fingerprint only.
    pub fn api_key(self, resolver: impl ResolveApiKey) -> Self {
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
        self.with(|c| c.redactor = redactor)
    }

    /// The field bounds (default: [`Limits::default`]).
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|c| c.limits = limits)
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`AuditLayer`].
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AuditService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuditService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The inner service is called right here, not from a later future, so the service that
        // `poll_ready` readied is the one called and no clone is needed.
        let inner = &mut self.inner;
        if is_safe(req.method()) && !self.config.record_safe_methods {
            return ResponseFuture::passthrough(inner.call(req));
        }
        let Some(draft) = draft(&self.config, &req) else {
            return ResponseFuture::passthrough(inner.call(req));
        };
        let context = AuditContext::new(self.config.clone(), draft);
        req.extensions_mut().insert(context.clone());
        ResponseFuture {
            state: State::Running {
                future: inner.call(req),
                pending: Some(Pending {
                    context,
                    config: self.config.clone(),
                }),
            },
        }
    }
}

/// The entry as far as the request tells, or `None` when the request is not recorded.
fn draft<B>(config: &Config, req: &Request<B>) -> Option<Box<AuditEntry>> {
    let route = req.extensions().get::<MatchedPath>()?.as_str();
    let derived = config.routes.derive(req.method(), route);
    if derived.skip {
        return None;
    }
    let (headers, extensions) = (req.headers(), req.extensions());
    let mut entry = Box::new(AuditEntry::new(derived.action.clone()));
    entry.entity_type = derived.entity_type.clone();
    entry.entity_id = derived
        .id_from_end
        .and_then(|n| segment_from_end(req.uri().path(), n));
    entry.route = Some(route.to_owned());
    entry.method = Some(req.method().as_str().to_owned());
    entry.ip = config.client_ip.client_ip(headers, extensions);
    entry.user_agent = headers
        .get(http::header::USER_AGENT)
        .map(|v| match v.to_str() {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        });
    entry.request_id = Some(
        headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= config.limits.id)
            .map_or_else(|| entry.id.to_string(), str::to_owned),
    );
    // The key header's value is used for the lookup and the fingerprint, then dropped.
    if let Some(value) = config.api_key_header.as_ref().and_then(|h| headers.get(h)) {
        let bytes = value.as_bytes();
        let known = value
            .to_str()
            .ok()
            .filter(|raw| !raw.is_empty() && raw.len() <= MAX_API_KEY_BYTES)
            .and_then(|raw| config.api_key.as_ref()?.resolve_api_key(raw));
        match known {
            Some(key) => {
                entry.api_key_id = key.id;
                entry.api_key_name = key.name;
            }
            None if !bytes.is_empty() => entry.api_key_id = Some(fingerprint(bytes)),
            None => {}
        }
    }
    apply_resolvers(config, &mut entry, headers, extensions, false, false);
    Some(entry)
}

/// Fills actor, tenant and API key from the extensions and resolvers of one side (request or
/// response), keeping what the handler set explicitly.
fn apply_resolvers(
    config: &Config,
    entry: &mut AuditEntry,
    headers: &HeaderMap,
    extensions: &Extensions,
    actor_set: bool,
    tenant_set: bool,
) {
    if let Some(key) = extensions.get::<audit_core::ApiKeyRef>() {
        entry.api_key_id = key.id.clone();
        entry.api_key_name = key.name.clone();
    }
    if !actor_set {
        let actor = extensions
            .get::<Actor>()
            .cloned()
            .or_else(|| config.actor.as_ref()?.resolve_actor(headers, extensions));
        if let Some(actor) = actor {
            entry.set_actor(actor);
        } else if entry.actor_kind == ActorKind::Anonymous
            && entry.actor_id.is_none()
            && (entry.api_key_id.is_some() || entry.api_key_name.is_some())
        {
            // A request authenticated only by its key is the key's doing.
            entry.actor_kind = ActorKind::ApiKey;
            entry.actor_id = entry.api_key_id.clone();
            entry.actor_name = entry.api_key_name.clone();
        }
    }
    if !tenant_set {
        let tenant = extensions
            .get::<audit_core::TenantRef>()
            .cloned()
            .or_else(|| config.tenant.as_ref()?.resolve_tenant(headers, extensions));
        if let Some(tenant) = tenant {
            entry.tenant_id = Some(tenant.tenant_id);
            entry.team_id = tenant.team_id;
        }
    }
}

struct Pending {
    context: AuditContext,
    config: Arc<Config>,
}

impl Pending {
    /// The finished entry, or `None` when the handler skipped or claimed it.
    fn finish<B>(self, response: Option<&Response<B>>) -> Option<(Box<AuditEntry>, Arc<Config>)> {
        let mut state = self.context.lock();
        let mut entry = state.draft.take()?;
        let (actor_set, tenant_set, outcome_set) =
            (state.actor_set, state.tenant_set, state.outcome_set);
        drop(state);
        match response {
            Some(response) => {
                apply_resolvers(
                    &self.config,
                    &mut entry,
                    response.headers(),
                    response.extensions(),
                    actor_set,
                    tenant_set,
                );
                entry.status = Some(response.status().as_u16());
                if !outcome_set {
                    entry.outcome = Outcome::from_status(response.status().as_u16());
                }
            }
            None if !outcome_set => entry.outcome = Outcome::Failure,
            None => {}
        }
        entry.bound(&self.config.limits);
        Some((entry, self.config))
    }
}

type Write = Pin<Box<dyn Future<Output = ()> + Send>>;

fn write(entry: Box<AuditEntry>, config: Arc<Config>) -> Write {
    Box::pin(async move {
        let id = entry.id;
        // Through the trait object directly: calling on the `Arc` would box the future twice.
        if let Err(error) = config.sink.as_ref().record(*entry).await {
            tracing::error!(%error, entry_id = %id, "audit: the sink failed to record an entry");
        }
    })
}

pin_project! {
    /// The response future of [`AuditService`]: runs the inner service, then records the
    /// entry before yielding the response (or the inner service's error).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Passthrough { #[pin] future: F },
        Running { #[pin] future: F, pending: Option<Pending> },
        Writing { write: Write, result: Option<Result<Response<B>, E>> },
        Done,
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn passthrough(future: F) -> Self {
        ResponseFuture {
            state: State::Passthrough { future },
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Passthrough { future } => return future.poll(cx),
                StateProj::Running { future, pending } => {
                    let result = ready!(future.poll(cx));
                    match pending.take().and_then(|p| p.finish(result.as_ref().ok())) {
                        None => {
                            this.state.set(State::Done);
                            return Poll::Ready(result);
                        }
                        Some((entry, config)) => this.state.set(State::Writing {
                            write: write(entry, config),
                            result: Some(result),
                        }),
                    }
                }
                StateProj::Writing { write, result } => {
                    ready!(write.as_mut().poll(cx));
                    let result = result.take();
                    this.state.set(State::Done);
                    if let Some(result) = result {
                        return Poll::Ready(result);
                    }
                }
                // Polled after completion, which the Future contract forbids; never ready again.
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}
