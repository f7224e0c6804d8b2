//! [`GrpcAuditLayer`]: the audit layer for services that answer gRPC calls, whose status
//! comes in the response's trailers.
//!
//! It records what [`AuditLayer`] records, and wraps each response's body in an
//! [`AuditBody`] so that a gRPC call's entry is finished from its `grpc-status`. The body type
//! changes, which is why it is a layer of its own: an axum router's body is then boxed once
//! more per response, a cost [`AuditLayer`] spares HTTP services.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::body::AuditBody;
use crate::future::ResponseFuture;
use crate::layer::AuditLayer;
use crate::service::{Wiring, start};

/// [`AuditLayer`] for gRPC services (tonic's, or any served over HTTP/2 with trailers): made
/// by [`AuditLayer::grpc`], sharing that layer's settings and queue.
///
/// ```
/// use audit_core::MemoryStore;
/// use audit_tower::AuditLayer;
///
/// let audit = AuditLayer::new(MemoryStore::new());
/// let grpc_layer = audit.grpc();
/// // tonic::transport::Server::builder().layer(grpc_layer).add_service(..)
/// // ... and after the server stops, `audit.flush().await`.
/// # let _ = grpc_layer;
/// ```
#[derive(Clone, Debug)]
pub struct GrpcAuditLayer {
    wiring: Arc<Wiring>,
}

impl GrpcAuditLayer {
    pub(crate) fn new(wiring: Arc<Wiring>) -> Self {
        GrpcAuditLayer { wiring }
    }
}

impl<S> Layer<S> for GrpcAuditLayer {
    type Service = GrpcAuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcAuditService {
            inner,
            wiring: self.wiring.clone(),
        }
    }
}

/// The service made by [`GrpcAuditLayer`].
#[derive(Clone)]
pub struct GrpcAuditService<S> {
    inner: S,
    wiring: Arc<Wiring>,
}

impl<S> GrpcAuditService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for GrpcAuditService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcAuditService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcAuditService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<AuditBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        GrpcResponseFuture {
            inner: start(&mut self.inner, &self.wiring, req, true),
        }
    }
}

pin_project! {
    /// The response future of [`GrpcAuditService`]: as [`ResponseFuture`], with the body
    /// wrapped in an [`AuditBody`].
    pub struct GrpcResponseFuture<F, B, E> {
        #[pin]
        inner: ResponseFuture<F, B, E>,
    }
}

impl<F, B, E> std::fmt::Debug for GrpcResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<AuditBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.project().inner;
        let result = ready!(inner.as_mut().poll(cx));
        let deferred = inner.take_deferred();
        Poll::Ready(result.map(|response| {
            response.map(|body| match deferred {
                Some(deferred) => AuditBody::deferred(body, deferred),
                None => AuditBody::passthrough(body),
            })
        }))
    }
}

impl AuditLayer {
    /// This layer for gRPC services: a [`GrpcAuditLayer`] with the same settings, delivering
    /// through the same queue (so [`flush`](Self::flush) and [`stats`](Self::stats) cover
    /// both).
    ///
    /// A gRPC call (`POST /package.Service/Method`, `content-type: application/grpc`) is
    /// recorded from its method's name: `UpdateProfile` on `ConnectionProfiles` is `Update` on
    /// a `ConnectionProfile`; methods that read (`Get…`, `List…`, `Watch…`, `Search…`, see
    /// [`GRPC_READ_VERBS`](crate::GRPC_READ_VERBS)) are not recorded; a [`RouteRule`](crate::RouteRule)
    /// on the call's path (`RouteRule::new(Method::POST, "/pkg.Reports/GetReport")`) overrides
    /// both. Its outcome comes from `grpc-status`: `0` is a success, `7`
    /// (`PERMISSION_DENIED`) and `16` (`UNAUTHENTICATED`) are denied, any other is a failure,
    /// whose name and `grpc-message` become the entry's details; the code is kept in its
    /// metadata as `grpc_status`. The API key header is read from the call's metadata, the
    /// client address from the TCP peer (tonic's `TcpConnectInfo`, with the `tonic` feature),
    /// and handlers reach the entry through the [`AuditContext`](crate::AuditContext) in the
    /// request's extensions (`request.extensions()` in tonic).
    ///
    /// Any other request through it is recorded as [`AuditLayer`] would, its body passed
    /// through. Put it inside a gRPC-Web translation layer, not outside.
    pub fn grpc(&self) -> GrpcAuditLayer {
        GrpcAuditLayer::new(self.wiring())
    }
}
