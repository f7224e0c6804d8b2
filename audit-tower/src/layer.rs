//! [`AuditLayer`], [`AuditService`] and [`ResponseFuture`]: capture.
//!
//! In the flow **request → layer** → entry → sink → store → admin router, this is where entries
//! are born. For a request it records, the layer captures what the request tells before the inner
//! service runs (the route's derivation, the caller, the client address, header values) and puts
//! an [`AuditContext`] into the extensions so the handler can add to it. When the response is
//! ready the entry is built from the capture, the handler's additions and the response, and
//! either written before the response is returned (the default) or, with
//! [`AuditLayer::buffered`], queued for a writer task that builds and stores entries in batches
//! off the request path. Requests it does not record pass through untouched.
//!
//! Put the layer with `Router::layer`, so it runs after routing and sees the matched route.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use audit_core::{
    Action, Actor, ApiKeyRef, AuditEntry, AuditSink, Limits, REDACTED, Redactor, TenantRef,
};
use axum::extract::MatchedPath;
use http::{Extensions, HeaderMap, HeaderName, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::capture::{Caller, Capture, KeyCapture, ResponseFacts, Segment, now};
use crate::client_ip::ClientIpConfig;
use crate::context::AuditContext;
use crate::delivery::{Buffered, Queue, Reserve};
use crate::resolve::{ResolveActor, ResolveApiKey, ResolveTenant, fingerprint_bytes};
use crate::route::{RouteRule, Routes, is_safe, raw_segment_from_end};

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
    /// The buffered queue, when the layer delivers that way.
    pub queue: Option<Arc<Queue>>,
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
                queue: None,
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
        self.with(|c| {
            c.routes.set_redactor(redactor.clone());
            c.redactor = redactor;
        })
    }

    /// The field bounds (default: [`Limits::default`]).
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|c| c.limits = limits)
    }

    /// Delivers entries through a bounded queue instead of before each response; see
    /// [`Buffered`] and the [delivery module](crate::delivery).
    ///
    /// The default (without this) is synchronous: the response waits until the sink has the
    /// entry. Buffered, a recorded request takes a queue slot before its handler runs (and is
    /// refused with `503` and `Retry-After` when none is free), its response returns as soon as
    /// the capture is queued, and a writer task on the Tokio runtime stores entries in batches,
    /// retrying failures. It needs Tokio's time driver (`#[tokio::main]` enables it). Call
    /// [`flush`](Self::flush) before the process exits.
    ///
    /// ```
    /// use audit_core::MemorySink;
    /// use audit_tower::{AuditLayer, Buffered};
    /// use axum::{Router, routing::post};
    ///
    /// # async fn run() {
    /// let sink = MemorySink::new();
    /// let audit = AuditLayer::new(sink.clone()).buffered(Buffered::new(10_000));
    /// let app: Router = Router::new()
    ///     .route("/tenants", post(|| async { "created" }))
    ///     .layer(audit.clone());
    /// // ... serve `app` with graceful shutdown, then:
    /// audit.flush().await;
    /// # }
    /// ```
    pub fn buffered(self, settings: Buffered) -> Self {
        let sink = self.config.sink.clone();
        self.with(|c| c.queue = Some(Arc::new(Queue::new(settings, sink))))
    }

    /// Waits until every entry queued so far is stored (buffered mode; returns at once
    /// otherwise). While the sink keeps failing this keeps waiting, so bound it with
    /// `tokio::time::timeout` at shutdown.
    pub async fn flush(&self) {
        if let Some(queue) = &self.config.queue {
            queue.flush().await;
        }
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
    ResBody: Default,
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
        let Some(capture) = capture(&self.config, &req) else {
            return ResponseFuture::passthrough(inner.call(req));
        };
        let queue = match &self.config.queue {
            Some(queue) => match queue.reserve() {
                Reserve::Taken => Some(queue.clone()),
                Reserve::Full => return ResponseFuture::refused(),
                Reserve::NoRuntime => None,
            },
            None => None,
        };
        let context = match &queue {
            Some(queue) => queue.context(&self.config, capture),
            None => AuditContext::new(self.config.clone(), capture),
        };
        req.extensions_mut().insert(context.clone());
        // Made before the inner service is called: if `call` itself panics, dropping it
        // still settles the entry and gives its queue slot back.
        let pending = Pending {
            context,
            config: self.config.clone(),
            queue,
            done: false,
        };
        ResponseFuture {
            state: State::Running {
                future: inner.call(req),
                pending: Some(pending),
            },
        }
    }
}

/// The request side of the entry, or `None` when the request is not recorded.
fn capture<B>(config: &Config, req: &Request<B>) -> Option<Capture> {
    let route = req.extensions().get::<MatchedPath>()?.as_str();
    let derived = config.routes.derive(req.method(), route);
    if derived.skip {
        return None;
    }
    let (headers, extensions) = (req.headers(), req.extensions());
    // The key header's value is used for the lookup and the fingerprint, then dropped.
    let mut key = KeyCapture::None;
    if let Some(value) = config.api_key_header.as_ref().and_then(|h| headers.get(h)) {
        let bytes = value.as_bytes();
        let known = value
            .to_str()
            .ok()
            .filter(|raw| !raw.is_empty() && raw.len() <= MAX_API_KEY_BYTES)
            .and_then(|raw| config.api_key.as_ref()?.resolve_api_key(raw));
        key = match known {
            Some(known) => KeyCapture::Known(known),
            None if !bytes.is_empty() => KeyCapture::Fingerprint(fingerprint_bytes(bytes)),
            None => KeyCapture::None,
        };
    }
    if let Some(known) = extensions.get::<ApiKeyRef>() {
        key = KeyCapture::Known(known.clone());
    }
    Some(Capture {
        at: now(),
        method: req.method().clone(),
        entity_id: derived
            .id_from_end
            .and_then(|n| raw_segment_from_end(req.uri().path(), n))
            .map(|raw| Segment::new(if derived.id_secret { REDACTED } else { raw })),
        ip: config.client_ip.client_ip(headers, extensions),
        user_agent: headers.get(http::header::USER_AGENT).cloned(),
        request_id: headers.get(&X_REQUEST_ID).cloned(),
        key,
        actor: resolve_actor(config, headers, extensions),
        tenant: resolve_tenant(config, headers, extensions),
        derived,
    })
}

fn resolve_actor(config: &Config, headers: &HeaderMap, extensions: &Extensions) -> Option<Actor> {
    extensions
        .get::<Actor>()
        .cloned()
        .or_else(|| config.actor.as_ref()?.resolve_actor(headers, extensions))
}

fn resolve_tenant(
    config: &Config,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<TenantRef> {
    extensions
        .get::<TenantRef>()
        .cloned()
        .or_else(|| config.tenant.as_ref()?.resolve_tenant(headers, extensions))
}

/// What the response (or its absence, when the inner service failed) tells.
fn response_facts<B>(config: &Config, response: Option<&Response<B>>) -> ResponseFacts {
    let Some(response) = response else {
        return ResponseFacts::default();
    };
    let (headers, extensions) = (response.headers(), response.extensions());
    let caller = Caller {
        actor: resolve_actor(config, headers, extensions),
        tenant: resolve_tenant(config, headers, extensions),
        key: extensions.get::<ApiKeyRef>().cloned(),
    };
    let named = caller.actor.is_some() || caller.tenant.is_some() || caller.key.is_some();
    ResponseFacts {
        status: Some(response.status().as_u16()),
        caller: named.then(|| Box::new(caller)),
    }
}

/// A recorded request while its inner service runs.
struct Pending {
    context: AuditContext,
    config: Arc<Config>,
    /// The buffered queue in which this request holds a slot, if any.
    queue: Option<Arc<Queue>>,
    /// Whether the inner service finished, so the entry was handled.
    done: bool,
}

impl Pending {
    /// Queues the entry (buffered) or returns it for writing now (synchronous); `None` when
    /// there is nothing to write now.
    fn finish<B>(mut self, response: Option<&Response<B>>) -> Option<(AuditEntry, Arc<Config>)> {
        self.done = true;
        let facts = response_facts(&self.config, response);
        self.settle(facts)
    }

    /// Queues the entry with `facts` (buffered) or returns it for writing now.
    fn settle(&mut self, facts: ResponseFacts) -> Option<(AuditEntry, Arc<Config>)> {
        match self.queue.take() {
            Some(queue) => {
                if self.context.park(facts) {
                    queue.push(self.context.clone());
                } else {
                    queue.give_back();
                }
                None
            }
            None => {
                let entry = self.context.finish(Some(facts))?;
                Some((entry, self.config.clone()))
            }
        }
    }
}

impl Drop for Pending {
    /// A request dropped before its response (the client went away, a timeout fired) may have
    /// changed something already, so its entry is still recorded: as a `failure` with no
    /// status. Buffered, it is queued like any other; synchronous, its write is spawned on the
    /// current runtime, since there is no response left to wait for.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some((entry, config)) = self.settle(ResponseFacts::default()) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(write(entry, config))),
                Err(_) => tracing::error!(
                    entry_id = %entry.id,
                    "audit: a request was cancelled outside a Tokio runtime; its entry is lost"
                ),
            }
        }
    }
}

type Write = Pin<Box<dyn Future<Output = ()> + Send>>;

fn write(entry: AuditEntry, config: Arc<Config>) -> Write {
    Box::pin(async move {
        let id = entry.id;
        // Through the trait object directly: calling on the `Arc` would box the future twice.
        if let Err(error) = config.sink.as_ref().record(entry).await {
            tracing::error!(%error, entry_id = %id, "audit: the sink failed to record an entry");
        }
    })
}

/// An entry being written before its response is returned. If the request is dropped first
/// (the client went away, an outer timeout fired), the write goes on as a task of its own:
/// the handler's change has happened, so its entry must still be stored.
struct InFlight(Option<Write>);

impl InFlight {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(write) = &mut self.0 {
            ready!(write.as_mut().poll(cx));
            self.0 = None;
        }
        Poll::Ready(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(write) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(write)),
            Err(_) => tracing::error!(
                "audit: a request was cancelled outside a Tokio runtime while its entry was \
                 being written; the entry may be lost"
            ),
        }
    }
}

pin_project! {
    /// The response future of [`AuditService`]: runs the inner service, then records the
    /// entry (or queues it, in the [buffered](AuditLayer::buffered) mode) before yielding the
    /// response (or the inner service's error).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Passthrough { #[pin] future: F },
        Refused { response: Option<Response<B>> },
        Running { #[pin] future: F, pending: Option<Pending> },
        Writing { write: InFlight, result: Option<Result<Response<B>, E>> },
        Done,
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn passthrough(future: F) -> Self {
        ResponseFuture {
            state: State::Passthrough { future },
        }
    }

    /// `503 Service Unavailable` with `Retry-After: 1`, for a request refused because the
    /// buffered queue is full.
    fn refused() -> Self
    where
        B: Default,
    {
        let mut response = Response::new(B::default());
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        ResponseFuture {
            state: State::Refused {
                response: Some(response),
            },
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
                StateProj::Refused { response } => match response.take() {
                    Some(response) => return Poll::Ready(Ok(response)),
                    None => return Poll::Pending,
                },
                StateProj::Running { future, pending } => {
                    let result = ready!(future.poll(cx));
                    match pending.take().and_then(|p| p.finish(result.as_ref().ok())) {
                        None => {
                            this.state.set(State::Done);
                            return Poll::Ready(result);
                        }
                        Some((entry, config)) => this.state.set(State::Writing {
                            write: InFlight(Some(write(entry, config))),
                            result: Some(result),
                        }),
                    }
                }
                StateProj::Writing { write, result } => {
                    ready!(write.poll(cx));
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
