//! [`AuditContext`]: how a handler enriches, corrects or vetoes its own audit entry.
//!
//! The layer drafts an entry before the handler runs (actor, API key, address, action and
//! entity from the route) and puts an `AuditContext` into the request extensions. The handler
//! extracts it and adds what only it knows: the entity's name, a summary, the before and after
//! values. When the response is ready the layer finishes the entry.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use audit_core::{Action, Actor, AuditEntry, IntentStore, Outcome, REDACTED, TenantRef, diff};
use serde::Serialize;
use serde_json::Value;

use crate::capture::{Capture, Edits, KeyCapture, ResponseFacts, build, fill, finish_released};
use crate::config::Config;

/// The audit entry of the current request, as the handler sees it.
///
/// Extract it in a handler on a route under [`AuditLayer`](crate::AuditLayer). Every method
/// takes `&self`; clones share the same entry. Values given here win over what the layer
/// derived.
///
/// ```
/// use audit_tower::AuditContext;
/// use axum::Json;
/// use serde_json::{json, Value};
///
/// async fn update_profile(audit: AuditContext, Json(body): Json<Value>) -> &'static str {
///     let before = json!({"name": "CRM", "password": "old"}); // loaded from the database
///     audit.entity_name("CRM");
///     audit.details("renamed and rotated the password");
///     audit.changes(&before, &body); // `password` is stored as "[REDACTED]"
///     "ok"
/// }
/// # let _ = update_profile;
/// ```
///
/// The layer drafts entries only for requests it records (mutating methods on matched routes,
/// and routes a rule selects). In a handler that also serves `GET`, extract
/// `Option<AuditContext>`.
#[derive(Clone)]
pub struct AuditContext {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditContext").finish_non_exhaustive()
    }
}

struct Inner {
    config: Arc<Config>,
    draft: Mutex<Draft>,
}

/// The entry as it stands while its request runs.
struct Draft {
    /// The request side of the entry; `None` once the entry was skipped or claimed.
    pub capture: Option<Capture>,
    /// What the handler said so far; allocated by its first edit, so a request whose handler
    /// adds nothing keeps the draft small.
    pub edits: Option<Box<Edits>>,
    /// An entry that was claimed, could not be stored, and was given back.
    pub released: Option<Box<AuditEntry>>,
    /// The response side, once the response is ready (buffered delivery).
    pub response: Option<ResponseFacts>,
    /// The entry [`AuditContext::record_with`] last stored: a later call stores it again (same
    /// id), in case the transaction of the first one rolled back and the handler retried.
    pub written: Option<Box<AuditEntry>>,
}

impl Draft {
    /// The draft of a request that has just been captured.
    fn fresh(capture: Capture) -> Self {
        Draft {
            capture: Some(capture),
            edits: None,
            released: None,
            response: None,
            written: None,
        }
    }

    /// Makes a finished draft the fresh draft of `capture`, in place.
    fn reset(&mut self, capture: Capture) {
        self.capture = Some(capture);
        self.edits = None;
        self.released = None;
        self.response = None;
        self.written = None;
    }

    fn live(&self) -> bool {
        self.capture.is_some() || self.released.is_some()
    }
}

impl AuditContext {
    /// A context that nothing records: what a handler says through it is dropped,
    /// [`claim`](Self::claim) returns `None` and [`record_with`](Self::record_with) stores
    /// nothing. For calling a handler that extracts an `AuditContext` outside the audit layer:
    /// a unit test of the handler, or a benchmark's baseline without auditing. Put it into the
    /// request extensions where the layer would have put its own:
    ///
    /// ```
    /// use audit_tower::AuditContext;
    /// use axum::{Router, extract::Request, middleware, routing::post};
    ///
    /// async fn revoke(audit: AuditContext) -> &'static str {
    ///     audit.entity_name("CI deploy key");
    ///     "revoked"
    /// }
    ///
    /// let unaudited: Router = Router::new()
    ///     .route("/api-keys/{id}/revoke", post(revoke))
    ///     .layer(middleware::map_request(|mut req: Request| async move {
    ///         req.extensions_mut().insert(AuditContext::detached());
    ///         req
    ///     }));
    /// ```
    pub fn detached() -> Self {
        // Never written to: a detached draft has no capture, so there is no entry to deliver.
        static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
        let config = CONFIG
            .get_or_init(|| Arc::new(Config::new(Arc::new(audit_core::TracingSink::new()))))
            .clone();
        AuditContext {
            inner: Arc::new(Inner {
                config,
                draft: Mutex::new(Draft {
                    capture: None,
                    edits: None,
                    released: None,
                    response: None,
                    written: None,
                }),
            }),
        }
    }

    pub(crate) fn new(config: Arc<Config>, capture: Capture) -> Self {
        AuditContext {
            inner: Arc::new(Inner {
                config,
                draft: Mutex::new(Draft::fresh(capture)),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Draft> {
        // Every write below leaves the draft whole, so a poisoned lock still holds good data.
        self.inner.draft.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The finished entry, or `None` when the handler skipped or claimed it.
    pub(crate) fn finish(&self, response: Option<ResponseFacts>) -> Option<AuditEntry> {
        let limits = &self.inner.config.limits;
        let mut draft = self.lock();
        let edits = draft.edits.take();
        if let Some(released) = draft.released.take() {
            let edits = edits.map(|e| *e).unwrap_or_default();
            return Some(finish_released(*released, edits, response, limits));
        }
        let capture = draft.capture.take()?;
        drop(draft);
        Some(build(capture, edits, response, limits))
    }

    /// Keeps the response side for the writer of the buffered queue; `false` when there is no
    /// entry to write.
    pub(crate) fn park(&self, response: ResponseFacts) -> bool {
        let mut draft = self.lock();
        draft.response = Some(response);
        draft.live()
    }

    /// Turns `slot` into the entry of a context the queue held, with its parked response;
    /// `None` when there is no entry to write, else whether the entry has an intent to clear
    /// once it is stored.
    pub(crate) fn finish_queued(&self, slot: &mut AuditEntry) -> Option<bool> {
        let limits = &self.inner.config.limits;
        let mut draft = self.lock();
        let response = Some(draft.response.take().unwrap_or_default());
        let edits = draft.edits.take();
        if let Some(released) = draft.released.take() {
            let edits = edits.map(|e| *e).unwrap_or_default();
            *slot = finish_released(*released, edits, response, limits);
            return Some(false);
        }
        let capture = draft.capture.take()?;
        drop(draft);
        let intent = capture.id.is_some();
        fill(slot, capture, edits, response, limits);
        Some(intent)
    }

    /// The intent to store before the handler runs, and where, when the request's route asks
    /// for one: the entry as the request stands, with the outcome `unknown`.
    pub(crate) fn intent(&self) -> Option<(AuditEntry, Arc<dyn IntentStore>)> {
        let store = self.inner.config.intents.clone()?;
        let capture = self.lock().capture.clone()?;
        capture.id?;
        let mut entry = build(capture, None, None, &self.inner.config.limits);
        entry.outcome = Outcome::Unknown;
        entry.status = None;
        Some((entry, store))
    }

    /// Where the layer stores intents, if it does.
    pub(crate) fn intent_store(&self) -> Option<&Arc<dyn IntentStore>> {
        self.inner.config.intents.as_ref()
    }

    /// A context for `capture` in `recycled`'s allocation, when no one else holds it any more
    /// (the buffered queue reuses finished contexts, sparing the allocator a large block per
    /// request); a new one otherwise.
    pub(crate) fn reuse(
        mut recycled: AuditContext,
        config: &Arc<Config>,
        capture: Capture,
    ) -> Self {
        match Arc::get_mut(&mut recycled.inner) {
            Some(inner) if Arc::ptr_eq(&inner.config, config) => {
                let draft = inner.draft.get_mut().unwrap_or_else(|p| p.into_inner());
                draft.reset(capture);
                recycled
            }
            _ => AuditContext::new(config.clone(), capture),
        }
    }

    /// When the request was captured, while its entry is still to be written.
    pub(crate) fn captured_at(&self) -> Option<std::time::Duration> {
        self.lock().capture.as_ref().map(|c| c.at)
    }

    /// Whether this is the last handle on the context, so it can be reused.
    pub(crate) fn is_unique(&mut self) -> bool {
        Arc::get_mut(&mut self.inner).is_some()
    }

    /// Takes the caller that middleware inside the layer has named in the request extensions
    /// since the layer ran (an `Actor`, `TenantRef` or `ApiKeyRef`), so an entry the handler
    /// claims or records itself carries it, as the layer's own entry would.
    pub(crate) fn learn_caller(&self, extensions: &http::Extensions) {
        let actor = extensions.get::<Actor>();
        let tenant = extensions.get::<TenantRef>();
        let key = extensions.get::<audit_core::ApiKeyRef>();
        if actor.is_none() && tenant.is_none() && key.is_none() {
            return;
        }
        let mut draft = self.lock();
        let Some(capture) = draft.capture.as_mut() else {
            return;
        };
        if let Some(actor) = actor {
            capture.actor = Some(actor.clone());
        }
        if let Some(tenant) = tenant {
            capture.tenant = Some(tenant.clone());
        }
        if let Some(key) = key {
            capture.key = KeyCapture::Known(key.clone());
        }
    }

    fn edit(&self, f: impl FnOnce(&mut Edits)) {
        let mut draft = self.lock();
        // A written entry may be written again (a retried transaction), with what is said now.
        if draft.live() || draft.written.is_some() {
            f(draft.edits.get_or_insert_default());
        }
    }

    /// A tenant that counts only when neither the request nor the response names one (the
    /// admin router's reads fall back to the scope they were granted).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn fallback_tenant(&self, tenant: TenantRef) {
        self.edit(|e| e.fallback_tenant = Some(tenant));
    }

    /// The scope of a background job this request starts, named `job`: the caller, tenant,
    /// team, API key, request id and trace id as this request's entry has them so far. Run the job in it
    /// ([`InAuditScope::in_audit_scope`](audit_core::scope::InAuditScope::in_audit_scope)) and
    /// the entries it builds name the job and act on this caller's behalf:
    ///
    /// ```
    /// use audit_core::scope::InAuditScope;
    /// use audit_core::{Action, AuditEntry};
    /// use audit_tower::AuditContext;
    ///
    /// async fn run_now(audit: AuditContext) -> &'static str {
    ///     let job = async {
    ///         // ... the work; then, as the system acting for the caller:
    ///         let _entry = AuditEntry::builder(Action::Execute)
    ///             .entity("ExtractionCursor", "c-1")
    ///             .build();
    ///     };
    ///     tokio::spawn(job.in_audit_scope(audit.job_scope("extraction-run")));
    ///     "started"
    /// }
    /// ```
    ///
    /// A context that records nothing ([`detached`](Self::detached), a skipped or claimed
    /// entry) gives the job's name alone.
    pub fn job_scope(&self, job: impl Into<String>) -> audit_core::scope::JobScope {
        let mut scope = audit_core::scope::JobScope::new(job);
        let mut draft = self.lock();
        if let Some(capture) = draft.capture.as_mut() {
            // Without an `x-request-id`, an entry's request id is its own id: fix it now, so
            // that the job's entries and this request's name the same request.
            if capture.request_id.is_none() && capture.id.is_none() {
                capture.id = Some(crate::capture::id_and_time(capture.at).0);
            }
        }
        let entry = match (&draft.capture, &draft.released) {
            (Some(capture), _) => build(
                capture.clone(),
                draft.edits.clone(),
                None,
                &self.inner.config.limits,
            ),
            (None, Some(released)) => (**released).clone(),
            (None, None) => return scope,
        };
        drop(draft);
        if entry.actor_kind != audit_core::ActorKind::Anonymous
            || entry.actor_id.is_some()
            || entry.actor_name.is_some()
        {
            scope = scope.actor(Actor {
                kind: entry.actor_kind,
                id: entry.actor_id,
                name: entry.actor_name,
            });
        }
        if let Some(tenant) = entry.tenant_id {
            scope = scope.tenant(tenant);
        }
        if let Some(team) = entry.team_id {
            scope = scope.team(team);
        }
        if entry.api_key_id.is_some() || entry.api_key_name.is_some() {
            scope = scope.api_key(audit_core::ApiKeyRef {
                id: entry.api_key_id,
                name: entry.api_key_name,
            });
        }
        if let Some(request_id) = entry.request_id {
            scope = scope.request_id(request_id);
        }
        if let Some(trace_id) = entry.trace_id {
            scope = scope.trace_id(trace_id);
        }
        scope
    }

    /// The display name of the object acted on (`Salesforce prod`).
    pub fn entity_name(&self, name: impl Into<String>) -> &Self {
        let name = name.into();
        self.edit(|e| e.entity_name = Some(name));
        self
    }

    /// The id of the object acted on, for routes whose path does not carry it (a `POST` that
    /// creates it, say).
    pub fn entity_id(&self, id: impl ToString) -> &Self {
        let id = id.to_string();
        self.edit(|e| e.entity_id = Some(id));
        self
    }

    /// The kind of object acted on, instead of the one derived from the route.
    pub fn entity_type(&self, entity_type: impl Into<String>) -> &Self {
        let entity_type = entity_type.into();
        self.edit(|e| e.entity_type = Some(entity_type));
        self
    }

    /// A short human summary of what happened; credentials inside it are redacted (see
    /// [`Redactor::redact_text`](audit_core::Redactor::redact_text)).
    pub fn details(&self, details: impl Into<String>) -> &Self {
        let details = details.into();
        // Credentials inside the text (a connection URL, a token) are redacted.
        let details = self
            .inner
            .config
            .redactor
            .redact_text(&details)
            .unwrap_or(details);
        self.edit(|e| e.details = Some(details));
        self
    }

    /// The action, instead of the one derived from the route.
    pub fn action(&self, action: Action) -> &Self {
        self.edit(|e| e.action = Some(action));
        self
    }

    /// The actor, instead of what the resolvers found (for example the user a login just
    /// authenticated, or the email a failed login tried).
    pub fn actor(&self, actor: Actor) -> &Self {
        self.edit(|e| e.actor = Some(actor));
        self
    }

    /// The tenant (and team), instead of what the resolvers found.
    pub fn tenant(&self, tenant: TenantRef) -> &Self {
        self.edit(|e| e.tenant = Some(tenant));
        self
    }

    /// The outcome, instead of the one that follows from the response status.
    pub fn outcome(&self, outcome: Outcome) -> &Self {
        self.edit(|e| e.outcome = Some(outcome));
        self
    }

    /// Field-level changes between two states of the object, redacted by the layer's
    /// [`Redactor`](audit_core::Redactor). Use `&None::<T>` (or `serde_json::Value::Null`) for
    /// the missing side of a creation or deletion.
    ///
    /// A value that cannot be serialised to JSON (a map with non-string keys, say) is recorded
    /// as a single change of the field `"<unserialisable>"` and logged.
    pub fn changes<B: Serialize + ?Sized, A: Serialize + ?Sized>(
        &self,
        before: &B,
        after: &A,
    ) -> &Self {
        let changes = match (serde_json::to_value(before), serde_json::to_value(after)) {
            (Ok(before), Ok(after)) => {
                let mut changes = diff(&before, &after);
                self.inner.config.redactor.redact_changes(&mut changes);
                changes
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "audit: the values given to AuditContext::changes could not be serialised");
                vec![audit_core::Change::new(
                    "<unserialisable>",
                    Value::Null,
                    Value::Null,
                )]
            }
        };
        self.edit(|e| e.changes = Some(changes));
        self
    }

    /// Changes for a created object: every field from `null` to its value.
    pub fn created<A: Serialize + ?Sized>(&self, after: &A) -> &Self {
        self.changes(&Value::Null, after)
    }

    /// Changes for a deleted object: every field from its value to `null`.
    pub fn deleted<B: Serialize + ?Sized>(&self, before: &B) -> &Self {
        self.changes(before, &Value::Null)
    }

    /// One application-specific metadata key; sensitive keys are redacted.
    pub fn metadata<V: Serialize + ?Sized>(&self, key: impl Into<String>, value: &V) -> &Self {
        let key = key.into();
        let redactor = &self.inner.config.redactor;
        let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
        if redactor.is_sensitive_key(&key) {
            value = Value::String(REDACTED.to_owned());
        } else {
            redactor.redact_value(&mut value);
        }
        self.edit(|e| {
            e.metadata.insert(key, value);
        });
        self
    }

    /// Records the request as a change of many objects at once
    /// ([`BulkChange`](audit_core::BulkChange)): the filter or reason (credentials inside them
    /// redacted, as in [`details`](Self::details)), the count and the ids, which a filter by
    /// entity id then finds. Set the objects' type with [`entity_type`](Self::entity_type)
    /// when the route does not give it.
    ///
    /// ```
    /// use audit_core::{Action, BulkChange};
    /// use audit_tower::AuditContext;
    ///
    /// async fn bulk_deactivate(audit: AuditContext) {
    ///     let ids = vec!["cp-1".to_owned(), "cp-2".to_owned()];
    ///     // ... deactivate them ...
    ///     audit
    ///         .action(Action::Deactivate)
    ///         .entity_type("ConnectionProfile")
    ///         .bulk(BulkChange::of(ids).filter("kind=salesforce").reason("provider sunset"));
    /// }
    /// ```
    pub fn bulk(&self, bulk: audit_core::BulkChange) -> &Self {
        let redactor = &self.inner.config.redactor;
        let mut bulk = bulk;
        if let Some(clean) = bulk.filter_text().and_then(|t| redactor.redact_text(t)) {
            bulk = bulk.filter(clean);
        }
        if let Some(clean) = bulk.reason_text().and_then(|t| redactor.redact_text(t)) {
            bulk = bulk.reason(clean);
        }
        let value = bulk.to_value();
        self.edit(|e| {
            e.metadata.insert(audit_core::BULK_KEY.to_owned(), value);
        });
        self
    }

    /// Records nothing for this request.
    pub fn skip(&self) {
        let mut draft = self.lock();
        draft.capture = None;
        draft.released = None;
        draft.written = None;
    }

    /// Takes the entry as it stands, so the caller can store it itself (in its own database
    /// transaction, say); the layer then records nothing. Returns `None` when the entry was
    /// skipped or already claimed.
    ///
    /// The entry's outcome is `success` and its status unset: the response does not exist yet.
    /// If storing it fails, give it back with [`release`](Self::release) so the layer records it.
    pub fn claim(&self) -> Option<AuditEntry> {
        let mut draft = self.lock();
        let limits = &self.inner.config.limits;
        let edits = draft.edits.as_deref().cloned().unwrap_or_default();
        if let Some(released) = draft.released.take() {
            // What the handler added since the failed attempt counts too.
            return Some(finish_released(*released, edits, None, limits));
        }
        let capture = draft.capture.take()?;
        Some(build(capture, Some(Box::new(edits)), None, limits))
    }

    /// Takes the entry as `response` finishes it (its status and outcome, a caller named in its
    /// extensions), so the caller can store it itself, as
    /// [`TransactionLayer`](crate::TransactionLayer) does in the request's transaction; the
    /// layer then records nothing. Returns `None` when the entry was skipped or already
    /// claimed. If storing it fails, give it back with [`release`](Self::release).
    pub fn claim_with_response<B>(&self, response: &http::Response<B>) -> Option<AuditEntry> {
        let facts = crate::capture::response_facts(&self.inner.config, Some(response));
        let mut draft = self.lock();
        let limits = &self.inner.config.limits;
        let edits = draft.edits.take().map(|e| *e).unwrap_or_default();
        if let Some(released) = draft.released.take() {
            return Some(finish_released(*released, edits, Some(facts), limits));
        }
        let capture = draft.capture.take()?;
        Some(build(capture, Some(Box::new(edits)), Some(facts), limits))
    }

    /// The entry the last successful [`record_with`](Self::record_with) stored, with the
    /// handler's additions since.
    fn rewrite(&self) -> Option<AuditEntry> {
        let draft = self.lock();
        let written = draft.written.as_deref()?.clone();
        let edits = draft.edits.as_deref().cloned().unwrap_or_default();
        Some(finish_released(
            written,
            edits,
            None,
            &self.inner.config.limits,
        ))
    }

    /// Claims the entry and stores it with `write` (typically an insert inside the handler's own
    /// database transaction), so the change and its audit entry commit or roll back together.
    /// The layer then records nothing. If `write` fails, the entry is given back and the layer
    /// records it when the response is ready, so a failed attempt is still in the log.
    ///
    /// Called again after a successful call, it stores the same entry (same id) again: a
    /// handler that retries its transaction (after a serialization failure, say) calls it in
    /// every attempt, and whichever attempt commits carries the entry. Stores must skip an id
    /// they already hold, as `audit-seaorm` does. Does nothing and returns `Ok(())` when the
    /// entry was skipped or claimed with [`claim`](Self::claim). `audit-seaorm` wraps this as
    /// `audit.record_in(&txn)`.
    ///
    /// ```
    /// use audit_core::AuditEntry;
    /// use audit_tower::AuditContext;
    ///
    /// async fn handler(audit: AuditContext) -> Result<(), std::io::Error> {
    ///     // let txn = db.begin().await?; ...change data...
    ///     audit
    ///         .record_with(|entry: AuditEntry| async move {
    ///             // insert `entry` through `txn` here
    ///             let _ = entry;
    ///             Ok::<(), std::io::Error>(())
    ///         })
    ///         .await?;
    ///     // txn.commit().await?;
    ///     Ok(())
    /// }
    /// # let _ = handler;
    /// ```
    pub async fn record_with<F, Fut, E>(&self, write: F) -> Result<(), E>
    where
        F: FnOnce(AuditEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let Some(entry) = self.claim().or_else(|| self.rewrite()) else {
            return Ok(());
        };
        let kept = entry.clone();
        match write(entry).await {
            Ok(()) => {
                self.lock().written = Some(Box::new(kept));
                Ok(())
            }
            Err(error) => {
                self.release(kept);
                Err(error)
            }
        }
    }

    /// Gives back an entry taken with [`claim`](Self::claim) that could not be stored; the layer
    /// records it when the response is ready.
    pub fn release(&self, entry: AuditEntry) {
        let mut draft = self.lock();
        if !draft.live() {
            draft.released = Some(Box::new(entry));
        }
    }
}
