//! [`AuditBody`]: a response body that finishes its gRPC call's entry when the call's status
//! passes in the trailers.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::future::{Deferred, InFlight};

pin_project! {
    /// The response body of [`GrpcAuditService`](crate::GrpcAuditService): the inner service's
    /// body, frame for frame. For a gRPC call whose status comes in the trailers, the entry is
    /// finished when the trailers frame passes (with synchronous delivery, once stored, before
    /// the trailers go on to the client), when the body ends without one, fails, or is dropped.
    /// Every other response's body passes through untouched.
    pub struct AuditBody<B> {
        #[pin]
        inner: B,
        call: Option<Box<Call>>,
    }
}

/// A gRPC call waiting for its status.
struct Call {
    /// The entry, until the status (or the end) arrives.
    deferred: Box<Deferred>,
    /// The entry's write, which the trailers wait for.
    wait: Option<InFlight>,
    /// The trailers, held while the entry is written.
    held: Option<HeaderMap>,
    /// Whether the inner body has ended (without trailers).
    ended: bool,
}

impl<B> AuditBody<B> {
    /// `inner`, passed through untouched.
    pub(crate) fn passthrough(inner: B) -> Self {
        AuditBody { inner, call: None }
    }

    /// `inner`, finishing `deferred` from its trailers.
    pub(crate) fn deferred(inner: B, deferred: Box<Deferred>) -> Self {
        AuditBody {
            inner,
            call: Some(Box::new(Call {
                deferred,
                wait: None,
                held: None,
                ended: false,
            })),
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Default> Default for AuditBody<B> {
    fn default() -> Self {
        AuditBody::passthrough(B::default())
    }
}

impl<B> std::fmt::Debug for AuditBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditBody")
            .field("grpc_call", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for AuditBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(call) = this.call.as_deref_mut() else {
            return this.inner.poll_frame(cx);
        };
        loop {
            if let Some(wait) = &mut call.wait {
                ready!(wait.poll(cx));
                call.wait = None;
            }
            if let Some(trailers) = call.held.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if call.ended {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_trailers() {
                    Ok(trailers) => {
                        call.wait = call.deferred.finish(Some(&trailers));
                        call.held = Some(trailers);
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(error)) => {
                    call.deferred.fail();
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    call.wait = call.deferred.finish(None);
                    call.ended = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.call {
            None => self.inner.is_end_stream(),
            // Until the status is read the body is polled on, so its end is seen.
            Some(call) => {
                call.deferred.is_finished()
                    && call.wait.is_none()
                    && call.held.is_none()
                    && (call.ended || self.inner.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
