//! [`AuditService`]: the service [`AuditLayer`](crate::AuditLayer) wraps around yours.
//!
//! For a request it records, the service captures what the request tells before calling the
//! inner service, puts an [`AuditContext`] into the request extensions, and returns a
//! [`ResponseFuture`] that finishes the entry from the response. Requests it does not record
//! pass through untouched.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use crate::capture::capture;
use crate::config::Config;
use crate::context::AuditContext;
use crate::delivery::{Queue, Reserve};
use crate::future::{Pending, ResponseFuture, store_intent};
use crate::route::is_safe;

/// The service made by [`AuditLayer`](crate::AuditLayer).
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    /// One reference-counted handle, so that cloning the service (axum does, per request)
    /// costs one count.
    wiring: Arc<Wiring>,
}

/// What a service of one layer shares with the others: the settings and the queue.
#[derive(Debug)]
pub(crate) struct Wiring {
    pub config: Arc<Config>,
    pub queue: Arc<Queue>,
}

impl<S> AuditService<S> {
    pub(crate) fn new(inner: S, wiring: Arc<Wiring>) -> Self {
        AuditService { inner, wiring }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        start(&mut self.inner, &self.wiring, req, false)
    }
}

/// Calls `inner` with `req`, recording the request if the layer records it. With
/// `defer_grpc`, a gRPC call's entry waits for the status in its response's trailers (see
/// [`ResponseFuture::take_deferred`]).
#[inline(always)]
pub(crate) fn start<S, ReqBody, ResBody>(
    inner: &mut S,
    wiring: &Wiring,
    mut req: Request<ReqBody>,
    defer_grpc: bool,
) -> ResponseFuture<S::Future, ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    // The inner service is called right here, not from a later future, so the service that
    // `poll_ready` readied is the one called and no clone is needed.
    let Wiring { config, queue } = wiring;
    if is_safe(req.method()) && !config.record_safe_methods {
        return ResponseFuture::passthrough(inner.call(req));
    }
    let Some(capture) = capture(config, &req) else {
        return ResponseFuture::passthrough(inner.call(req));
    };
    let queue = match queue.reserve() {
        Reserve::Taken => Some(queue.clone()),
        Reserve::Full => return ResponseFuture::refused(),
        Reserve::NoRuntime => None,
    };
    let wants_intent = capture.id.is_some();
    let grpc = capture.derived.grpc;
    let context = match &queue {
        Some(queue) => queue.context(config, capture),
        None => AuditContext::new(config.clone(), capture),
    };
    req.extensions_mut().insert(context.clone());
    // The inner service's future is made now and polled only once the intent is stored:
    // axum's handlers (like most services) start their work when first polled.
    let intent = if wants_intent {
        context
            .intent()
            .map(|(entry, store)| store_intent(entry, store))
    } else {
        None
    };
    // Made before the inner service is called: if `call` itself panics, dropping it
    // still settles the entry and gives its queue slot back.
    let pending = Pending::new(context, config.clone(), queue, grpc, defer_grpc);
    ResponseFuture::running(inner.call(req), pending, intent)
}
