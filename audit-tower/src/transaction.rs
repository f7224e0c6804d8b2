//! [`TransactionLayer`]: a database transaction per request, handed to the handler as the
//! [`Transaction`] extractor and committed with the request's audit entry in it.
//!
//! Put it inside the [`AuditLayer`](crate::AuditLayer) (add it to the router first, the audit
//! layer after), so the request's [`AuditContext`] exists when it runs. A handler that extracts
//! [`Transaction`] opens the transaction and changes data through it. When the handler's
//! response is a success (below 400), the layer claims the entry as the response finishes it,
//! inserts it through the transaction and commits: the change and its entry are stored together
//! or not at all, even if the process dies at any point. Any other response rolls the
//! transaction back, and the audit layer records the attempt as usual. If the commit fails,
//! nothing was changed: the response becomes `503 Service Unavailable` and the entry is given
//! back to the audit layer, which records the attempt as a failure. Requests whose handler
//! never extracts the transaction pass through untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use audit_core::{AuditEntry, Outcome, SinkError, Transactions};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response as AxumResponse};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::context::AuditContext;

/// A [`Layer`] that gives each request a database transaction of its own; see the
/// [module docs](self).
///
/// ```
/// use audit_core::{AuditEntry, MemoryStore, SinkError, Transactions};
/// use audit_tower::{AuditLayer, Transaction, TransactionLayer};
/// use axum::{Router, routing::post};
///
/// // A stand-in database: `audit-seaorm` provides `SeaOrmTransactions` for SeaORM.
/// #[derive(Clone)]
/// struct Db;
/// struct Txn;
/// #[async_trait::async_trait]
/// impl Transactions for Db {
///     type Transaction = Txn;
///     async fn begin(&self) -> Result<Txn, SinkError> { Ok(Txn) }
///     async fn commit(&self, _: Txn, _: Option<&AuditEntry>) -> Result<(), SinkError> { Ok(()) }
///     async fn rollback(&self, _: Txn) -> Result<(), SinkError> { Ok(()) }
/// }
///
/// async fn revoke(txn: Transaction<Txn>) -> &'static str {
///     // change your tables through `&*txn`
///     "revoked"
/// }
///
/// let app: Router = Router::new()
///     .route("/api-keys/{id}/revoke", post(revoke))
///     .layer(TransactionLayer::new(Db))
///     .layer(AuditLayer::new(MemoryStore::new()));
/// ```
pub struct TransactionLayer<T> {
    source: Arc<T>,
}

impl<T: Transactions> TransactionLayer<T> {
    /// A layer that opens its transactions with `source`.
    pub fn new(source: T) -> Self {
        TransactionLayer {
            source: Arc::new(source),
        }
    }
}

impl<T> Clone for TransactionLayer<T> {
    fn clone(&self) -> Self {
        TransactionLayer {
            source: self.source.clone(),
        }
    }
}

impl<T> std::fmt::Debug for TransactionLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionLayer").finish_non_exhaustive()
    }
}

impl<S, T> Layer<S> for TransactionLayer<T> {
    type Service = TransactionService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        TransactionService {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service made by [`TransactionLayer`].
pub struct TransactionService<S, T> {
    inner: S,
    source: Arc<T>,
}

impl<S: Clone, T> Clone for TransactionService<S, T> {
    fn clone(&self) -> Self {
        TransactionService {
            inner: self.inner.clone(),
            source: self.source.clone(),
        }
    }
}

impl<S, T> std::fmt::Debug for TransactionService<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionService").finish_non_exhaustive()
    }
}

/// A boxed future, as the service returns.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the layer and the extractor share for one request.
struct Slot<X> {
    begin: Box<dyn Fn() -> BoxFuture<Result<X, SinkError>> + Send + Sync>,
    open: Mutex<Option<Arc<X>>>,
}

/// The slot as it sits in the request extensions.
struct SlotHandle<X>(Arc<Slot<X>>);

impl<X> Clone for SlotHandle<X> {
    fn clone(&self) -> Self {
        SlotHandle(self.0.clone())
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for TransactionService<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    T: Transactions,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let context = req.extensions().get::<AuditContext>().cloned();
        let source = self.source.clone();
        let slot = Arc::new(Slot {
            begin: Box::new({
                let source = source.clone();
                move || {
                    let source = source.clone();
                    Box::pin(async move { source.begin().await })
                }
            }),
            open: Mutex::new(None),
        });
        req.extensions_mut().insert(SlotHandle(slot.clone()));
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            let open = slot.open.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(open) = open else {
                return result;
            };
            let Ok(transaction) = Arc::try_unwrap(open) else {
                tracing::error!(
                    "audit: a handler kept its Transaction beyond its response; it is rolled \
                     back when the last handle is dropped, and the request fails"
                );
                if let Some(context) = &context {
                    context.outcome(Outcome::Failure);
                }
                return Ok(unavailable());
            };
            match result {
                Ok(response) if response.status().as_u16() < 400 => {
                    Ok(commit(&*source, transaction, context, response).await)
                }
                other => {
                    if let Err(error) = source.rollback(transaction).await {
                        tracing::warn!(%error, "audit: rolling back a request's transaction failed");
                    }
                    other
                }
            }
        })
    }
}

/// Commits `transaction` with the entry `response` finishes; on failure nothing was changed,
/// so the answer is `503` and the entry goes back to the audit layer as a failure.
async fn commit<T: Transactions, B: Default>(
    source: &T,
    transaction: T::Transaction,
    context: Option<AuditContext>,
    response: Response<B>,
) -> Response<B> {
    let entry = context
        .as_ref()
        .and_then(|c| c.claim_with_response(&response));
    match source.commit(transaction, entry.as_ref()).await {
        Ok(()) => response,
        Err(error) => {
            tracing::error!(%error, "audit: committing a request's change and its entry failed; nothing was changed");
            let answer = unavailable();
            if let (Some(context), Some(entry)) = (context, entry) {
                context.release(failed(entry, answer.status()));
            }
            answer
        }
    }
}

/// The entry of an attempt whose commit failed.
fn failed(mut entry: AuditEntry, status: StatusCode) -> AuditEntry {
    entry.outcome = Outcome::Failure;
    entry.status = Some(status.as_u16());
    entry
}

fn unavailable<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// The request's database transaction, opened when a handler first extracts it; it derefs to
/// the database's own transaction type (`sea_orm::DatabaseTransaction` with `audit-seaorm`).
/// Needs [`TransactionLayer`] on the route. Drop it before the handler returns: the layer
/// commits or rolls back after the response.
pub struct Transaction<X>(Arc<X>);

impl<X> std::ops::Deref for Transaction<X> {
    type Target = X;

    fn deref(&self) -> &X {
        &self.0
    }
}

impl<X> std::fmt::Debug for Transaction<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

/// Why [`Transaction`] could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum TransactionRejection {
    /// The route has no [`TransactionLayer`] (for this transaction type).
    #[error(
        "Transaction is missing: add `.layer(TransactionLayer::new(..))` to this router, before \
         the AuditLayer"
    )]
    Missing,
    /// The database would not open a transaction; nothing was changed.
    #[error("the database is unavailable: {0}")]
    Unavailable(SinkError),
}

impl IntoResponse for TransactionRejection {
    fn into_response(self) -> AxumResponse {
        match self {
            TransactionRejection::Missing => {
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
            TransactionRejection::Unavailable(error) => {
                tracing::error!(%error, "audit: could not open a request's transaction");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; nothing was changed",
                )
                    .into_response()
            }
        }
    }
}

impl<S, X> FromRequestParts<S> for Transaction<X>
where
    S: Send + Sync,
    X: Send + Sync + 'static,
{
    type Rejection = TransactionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<SlotHandle<X>>()
            .cloned()
            .ok_or(TransactionRejection::Missing)?
            .0;
        let open = slot.open.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(open) = open {
            return Ok(Transaction(open));
        }
        let transaction = Arc::new(
            (slot.begin)()
                .await
                .map_err(TransactionRejection::Unavailable)?,
        );
        let mut open = slot.open.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Transaction(open.get_or_insert(transaction).clone()))
    }
}
