//! [`ResponseFuture`]: runs the inner service, then finishes the request's entry: queued for
//! the writer, and (synchronous delivery) stored before the response is returned.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use audit_core::{AuditEntry, IntentStore};
use http::Response;
use pin_project_lite::pin_project;

use crate::capture::{ResponseFacts, response_facts};
use crate::config::Config;
use crate::context::AuditContext;
use crate::delivery::{Queue, Write, write};
use crate::grpc;

/// Stores a request's intent before its handler runs: `true` once stored; `false` when the
/// store kept failing (three attempts over about 75 ms), and the request is then refused.
pub(crate) type IntentWrite = Pin<Box<dyn Future<Output = bool> + Send>>;

/// The intent write for `intent`.
pub(crate) fn store_intent(intent: AuditEntry, store: Arc<dyn IntentStore>) -> IntentWrite {
    Box::pin(async move {
        let mut pause = std::time::Duration::from_millis(25);
        for attempt in 1..=3 {
            match store.record_intents(std::slice::from_ref(&intent)).await {
                Ok(()) => return true,
                Err(error) if attempt == 3 => {
                    tracing::error!(%error, entry_id = %intent.id, "audit: the intent could not be stored; the request is refused with 503 before its handler runs");
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        false
    })
}

/// A recorded request while its inner service runs.
pub(crate) struct Pending {
    context: AuditContext,
    config: Arc<Config>,
    /// The buffered queue in which this request holds a slot, if any.
    queue: Option<Arc<Queue>>,
    /// Whether the request is a gRPC call, whose outcome is its `grpc-status`.
    grpc: bool,
    /// Whether its entry waits for the response's trailers, when its head has no status.
    defer: bool,
    /// Whether the inner service finished, so the entry was handled.
    done: bool,
}

impl Pending {
    pub fn new(
        context: AuditContext,
        config: Arc<Config>,
        queue: Option<Arc<Queue>>,
        grpc: bool,
        defer: bool,
    ) -> Self {
        Pending {
            context,
            config,
            queue,
            grpc,
            defer: grpc && defer,
            done: false,
        }
    }

    /// Queues the entry, or (without a queue) starts writing it; what the response must wait
    /// for, if anything.
    fn finish<B>(self, response: Option<&Response<B>>) -> Option<InFlight> {
        let mut facts = response_facts(&self.config, response);
        if let (true, Some(response)) = (self.grpc, response) {
            // A gRPC call whose status is not in the response's head came through a service
            // that does not read trailers (`AuditLayer` rather than `AuditLayer::grpc`).
            let status = grpc::status(response.headers()).unwrap_or_else(grpc::unread);
            grpc::apply(&mut facts, status, &self.config);
        }
        self.finish_with(facts)
    }

    /// [`finish`](Self::finish) with the response's facts already known.
    #[inline]
    fn finish_with(mut self, facts: ResponseFacts) -> Option<InFlight> {
        self.done = true;
        match self.settle(facts)? {
            Settled::Queued(queue, seq) => Some(InFlight::waiting(Box::pin(async move {
                queue.wait_stored(seq).await;
            }))),
            Settled::Direct(entry) => Some(InFlight::writing(write(*entry, self.config.clone()))),
        }
    }

    /// Queues the entry with `facts`, or returns it for writing now when there is no queue;
    /// `None` when nothing is left to wait for.
    fn settle(&mut self, facts: ResponseFacts) -> Option<Settled> {
        match self.queue.take() {
            Some(queue) => {
                if !self.context.park(facts) {
                    queue.give_back();
                    return None;
                }
                let seq = queue.push(self.context.clone());
                queue.synchronous().then_some(Settled::Queued(queue, seq))
            }
            None => self
                .context
                .finish(Some(facts))
                .map(|entry| Settled::Direct(Box::new(entry))),
        }
    }
}

/// Where a finished request's entry went.
enum Settled {
    /// Into the synchronous queue, as this sequence number.
    Queued(Arc<Queue>, u64),
    /// Nowhere yet: there is no queue (no Tokio runtime), so it is written directly.
    Direct(Box<AuditEntry>),
}

impl Drop for Pending {
    /// A request dropped before its response (the client went away, a timeout fired) may have
    /// changed something already, so its entry is still recorded: as a `failure` with no
    /// status. It is queued like any other; without a queue, its write is spawned on the
    /// current runtime, since there is no response left to wait for.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(Settled::Direct(entry)) = self.settle(ResponseFacts::default()) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(write(*entry, self.config.clone()))),
                Err(_) => tracing::error!(
                    entry_id = %entry.id,
                    "audit: a request was cancelled outside a Tokio runtime; its entry is lost"
                ),
            }
        }
    }
}

/// A gRPC call whose response has started without its status: the entry waits for the
/// trailers, which [`AuditBody`](crate::AuditBody) hands to [`finish`](Self::finish). Dropped
/// without them (the body failed, or was dropped before its end), the entry is still recorded,
/// as a `failure`.
pub(crate) struct Deferred {
    pending: Option<Pending>,
    /// What the response's head told (its status, the caller in its extensions).
    facts: ResponseFacts,
}

impl Deferred {
    /// Finishes the entry with the status in `trailers` (`None`: the body ended without
    /// them); what the trailers must wait for before they are passed on, if anything.
    pub fn finish(&mut self, trailers: Option<&http::HeaderMap>) -> Option<InFlight> {
        let pending = self.pending.take()?;
        let status = trailers
            .and_then(grpc::status)
            .unwrap_or_else(grpc::no_status);
        let mut facts = std::mem::take(&mut self.facts);
        grpc::apply(&mut facts, status, &pending.config);
        pending.finish_with(facts)
    }

    /// Whether the entry was finished.
    pub fn is_finished(&self) -> bool {
        self.pending.is_none()
    }

    /// Finishes the entry of a call whose response body failed.
    pub fn fail(&mut self) {
        if let Some(pending) = self.pending.take() {
            let mut facts = std::mem::take(&mut self.facts);
            grpc::apply(&mut facts, grpc::body_failed(), &pending.config);
            drop(pending.finish_with(facts));
        }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            let mut facts = std::mem::take(&mut self.facts);
            grpc::apply(&mut facts, grpc::cancelled(), &pending.config);
            // The writer has a queued entry, and a direct write goes on as a task of its own.
            drop(pending.finish_with(facts));
        }
    }
}

/// What a response waits for before it is returned: its entry's write, or (synchronous
/// delivery) the writer storing its entry. If the request is dropped first (the client went
/// away, an outer timeout fired), a write goes on as a task of its own, since the handler's
/// change has happened; a queued entry needs nothing, the writer has it.
pub(crate) struct InFlight {
    future: Option<Write>,
    /// Whether dropping it early must let the future finish on its own.
    detach_on_drop: bool,
}

impl InFlight {
    fn writing(write: Write) -> Self {
        InFlight {
            future: Some(write),
            detach_on_drop: true,
        }
    }

    fn waiting(wait: Write) -> Self {
        InFlight {
            future: Some(wait),
            detach_on_drop: false,
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(future) = &mut self.future {
            ready!(future.as_mut().poll(cx));
            self.future = None;
        }
        Poll::Ready(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(write) = self.future.take() else {
            return;
        };
        if !self.detach_on_drop {
            return;
        }
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
    /// The response future of [`AuditService`](crate::AuditService): runs the inner service,
    /// then records the entry (or queues it, in the [buffered](crate::AuditLayer::buffered)
    /// mode) before yielding the response (or the inner service's error).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        phase: Phase<F, B, E>,
    }
}

pin_project! {
    #[project = PhaseProj]
    enum Phase<F, B, E> {
        Passthrough { #[pin] future: F },
        Refused,
        Running {
            #[pin] future: F,
            pending: Option<Pending>,
            // The request's intent being stored: the inner future is polled only after it is.
            intent: Option<IntentWrite>,
        },
        Writing { write: InFlight, result: Option<Result<Response<B>, E>> },
        // Answered, with a gRPC call whose entry waits for the response's trailers.
        Deferred { deferred: Option<Box<Deferred>> },
        Done,
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            phase: Phase::Passthrough { future },
        }
    }

    /// `503 Service Unavailable` with `Retry-After: 1`, for a request refused because the
    /// buffered queue is full.
    pub(crate) fn refused() -> Self {
        ResponseFuture {
            phase: Phase::Refused,
        }
    }

    pub(crate) fn running(future: F, pending: Pending, intent: Option<IntentWrite>) -> Self {
        ResponseFuture {
            phase: Phase::Running {
                future,
                pending: Some(pending),
                intent,
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
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.phase.as_mut().project() {
                PhaseProj::Passthrough { future } => return future.poll(cx),
                PhaseProj::Refused => {
                    this.phase.set(Phase::Done);
                    let mut response = Response::new(B::default());
                    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    response.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static("1"),
                    );
                    return Poll::Ready(Ok(response));
                }
                PhaseProj::Running {
                    future,
                    pending,
                    intent,
                } => {
                    if let Some(write) = intent {
                        let stored = ready!(write.as_mut().poll(cx));
                        *intent = None;
                        if !stored {
                            // The handler never runs: nothing changed, nothing to record.
                            if let Some(pending) = pending.take() {
                                pending.context.skip();
                                if let Some(queue) = &pending.queue {
                                    queue.count_refusal();
                                }
                            }
                            this.phase.set(Phase::Refused);
                            continue;
                        }
                    }
                    let result = ready!(future.poll(cx));
                    if pending.as_ref().is_some_and(|p| p.defer)
                        && let Some(deferred) = defer_call(pending, &result)
                    {
                        this.phase.set(Phase::Deferred {
                            deferred: Some(deferred),
                        });
                        return Poll::Ready(result);
                    }
                    match pending.take().and_then(|p| p.finish(result.as_ref().ok())) {
                        None => {
                            this.phase.set(Phase::Done);
                            return Poll::Ready(result);
                        }
                        Some(write) => this.phase.set(Phase::Writing {
                            write,
                            result: Some(result),
                        }),
                    }
                }
                PhaseProj::Writing { write, result } => {
                    ready!(write.poll(cx));
                    let result = result.take();
                    this.phase.set(Phase::Done);
                    if let Some(result) = result {
                        return Poll::Ready(result);
                    }
                }
                // Polled after completion, which the Future contract forbids; never ready again.
                PhaseProj::Deferred { .. } | PhaseProj::Done => return Poll::Pending,
            }
        }
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The gRPC call whose entry waits for the response's trailers, once the future has
    /// answered: made when the future was told to defer a gRPC call and the response's head
    /// had no status.
    pub(crate) fn take_deferred(self: Pin<&mut Self>) -> Option<Box<Deferred>> {
        match self.project().phase.project() {
            PhaseProj::Deferred { deferred } => deferred.take(),
            _ => None,
        }
    }
}

/// The call of `pending` as a [`Deferred`], when its response has started without a status
/// (a trailers-only response, an error, has its status in the head, and is finished there).
fn defer_call<B, E>(
    pending: &mut Option<Pending>,
    result: &Result<Response<B>, E>,
) -> Option<Box<Deferred>> {
    let response = result.as_ref().ok()?;
    if grpc::status(response.headers()).is_some() {
        return None;
    }
    let pending = pending.take()?;
    let facts = response_facts(&pending.config, Some(response));
    Some(Box::new(Deferred {
        pending: Some(pending),
        facts,
    }))
}
