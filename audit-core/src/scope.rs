//! Work done later, on another task, on behalf of whoever started it: a background job's
//! entries name the job and the person or key behind it.
//!
//! A [`JobScope`] carries a job's name and the actor, tenant, team, API key, request id and
//! trace id of the request that started it. [`InAuditScope::in_audit_scope`] makes it current while a
//! future runs (on whatever task or runtime polls it), and every
//! [`AuditEntry::builder`](crate::AuditEntry::builder) called meanwhile starts from it:
//!
//! - `actor_kind` is [`ActorKind::System`]: the job acted, not the person;
//! - `actor_id` and `actor_name` are the originating actor's, so "what did this person cause"
//!   finds the job's entries too, and erasing that actor erases them there as well;
//! - the tenant, team and API key are the originating request's;
//! - `metadata.job` is the job's name, `metadata.on_behalf_of` the originating actor's kind,
//!   and `request_id` and `trace_id` the originating request's.
//!
//! The builder's own setters override any of it. A future the job spawns runs outside the
//! scope unless it is wrapped too: [`InAuditScope::in_current_audit_scope`] carries the
//! current one along.
//!
//! ```
//! use audit_core::scope::{InAuditScope, JobScope};
//! use audit_core::{Action, Actor, ActorKind, AuditEntry};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let scope = JobScope::new("extraction-run")
//!     .actor(Actor::user("u-7", "ada@acme.example"))
//!     .tenant("acme");
//! let entry = async {
//!     AuditEntry::builder(Action::Execute)
//!         .entity("ExtractionCursor", "c-1")
//!         .build()
//! }
//! .in_audit_scope(scope)
//! .await;
//! assert_eq!(entry.actor_kind, ActorKind::System);
//! assert_eq!(entry.actor_id.as_deref(), Some("u-7"));
//! assert_eq!(entry.metadata["job"], "extraction-run");
//! # });
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::entry::{Actor, ActorKind, ApiKeyRef, AuditEntry};

/// The job an entry is made in, and who started it. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobScope {
    job: String,
    actor: Option<Actor>,
    tenant_id: Option<String>,
    team_id: Option<String>,
    api_key: Option<ApiKeyRef>,
    request_id: Option<String>,
    trace_id: Option<String>,
}

thread_local! {
    /// The scope of the future being polled on this thread, if any.
    static CURRENT: RefCell<Option<JobScope>> = const { RefCell::new(None) };
}

impl JobScope {
    /// The scope of the job `job` (its name, as entries should show it), started by nobody in
    /// particular until [`actor`](Self::actor) says who.
    pub fn new(job: impl Into<String>) -> Self {
        Self {
            job: job.into(),
            ..Self::default()
        }
    }

    /// Who started the job.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The tenant it works in.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The team within the tenant.
    pub fn team(mut self, team_id: impl Into<String>) -> Self {
        self.team_id = Some(team_id.into());
        self
    }

    /// The API key the starting request used.
    pub fn api_key(mut self, key: ApiKeyRef) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The id of the request that started it, so its entries and the job's can be found
    /// together.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The W3C trace id of the request that started it (32 hexadecimal digits), so that the
    /// job's entries are found from that request's trace too. An entry built in the scope
    /// checks it like [`AuditEntryBuilder::trace_id`](crate::AuditEntryBuilder::trace_id).
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The actor who started it.
    pub fn started_by(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }

    /// The scope of the future being polled on this thread, if it runs in one.
    pub fn current() -> Option<JobScope> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Writes the scope into a new entry: see the [module docs](self).
    pub(crate) fn apply(&self, entry: &mut AuditEntry) {
        entry.actor_kind = ActorKind::System;
        if let Some(actor) = &self.actor {
            entry.actor_id.clone_from(&actor.id);
            entry.actor_name.clone_from(&actor.name);
            entry.metadata.insert(
                "on_behalf_of".to_owned(),
                serde_json::Value::from(actor.kind.as_str()),
            );
        }
        entry.tenant_id.clone_from(&self.tenant_id);
        entry.team_id.clone_from(&self.team_id);
        if let Some(key) = &self.api_key {
            entry.api_key_id.clone_from(&key.id);
            entry.api_key_name.clone_from(&key.name);
        }
        entry.request_id.clone_from(&self.request_id);
        entry.trace_id.clone_from(&self.trace_id);
        entry
            .metadata
            .insert("job".to_owned(), serde_json::Value::from(self.job.as_str()));
    }
}

/// Runs futures in a [`JobScope`]; implemented for every future.
pub trait InAuditScope: Future + Sized {
    /// This future, with `scope` current whenever it is polled.
    fn in_audit_scope(self, scope: JobScope) -> Scoped<Self> {
        Scoped {
            scope: Some(scope),
            inner: Box::pin(self),
        }
    }

    /// This future in the scope current now, if any: for a future a job spawns.
    fn in_current_audit_scope(self) -> Scoped<Self> {
        Scoped {
            scope: JobScope::current(),
            inner: Box::pin(self),
        }
    }
}

impl<F: Future> InAuditScope for F {}

/// A future run in a [`JobScope`]; see [`InAuditScope`].
#[must_use = "futures do nothing unless polled"]
pub struct Scoped<F> {
    scope: Option<JobScope>,
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Puts the previous scope back when dropped, so a panicking poll leaves the thread as it was.
struct Restore(Option<JobScope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let previous = CURRENT.with(|current| current.replace(this.scope.clone()));
        let _restore = Restore(previous);
        this.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn scope() -> JobScope {
        JobScope::new("extraction-run")
            .actor(Actor::user("u-7", "ada@acme.example"))
            .tenant("acme")
            .team("ops")
            .api_key(ApiKeyRef::new("k-1", "CI deployer"))
            .request_id("req-1")
            .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
    }

    #[tokio::test]
    async fn an_entry_made_in_a_scope_names_the_job_and_who_started_it() {
        let entry = async { AuditEntry::builder(Action::Execute).build() }
            .in_audit_scope(scope())
            .await;
        assert_eq!(entry.actor_kind, ActorKind::System);
        assert_eq!(entry.actor_id.as_deref(), Some("u-7"));
        assert_eq!(entry.actor_name.as_deref(), Some("ada@acme.example"));
        assert_eq!(entry.tenant_id.as_deref(), Some("acme"));
        assert_eq!(entry.team_id.as_deref(), Some("ops"));
        assert_eq!(entry.api_key_id.as_deref(), Some("k-1"));
        assert_eq!(entry.api_key_name.as_deref(), Some("CI deployer"));
        assert_eq!(entry.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            entry.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(entry.metadata["job"], "extraction-run");
        assert_eq!(entry.metadata["on_behalf_of"], "user");
        // Outside, nothing of it.
        let outside = AuditEntry::builder(Action::Execute).build();
        assert_eq!(outside.actor_kind, ActorKind::Anonymous);
        assert!(outside.metadata.is_empty());
        assert!(JobScope::current().is_none());
    }

    #[tokio::test]
    async fn explicit_values_win_and_spawned_futures_carry_the_scope_when_asked() {
        let (explicit, carried, lost) = async {
            let explicit = AuditEntry::builder(Action::Execute)
                .tenant("globex")
                .actor(Actor::system("scheduler"))
                .build();
            let carried = tokio::spawn(
                async { AuditEntry::builder(Action::Update).build() }.in_current_audit_scope(),
            )
            .await
            .unwrap();
            let lost = tokio::spawn(async { AuditEntry::builder(Action::Update).build() })
                .await
                .unwrap();
            (explicit, carried, lost)
        }
        .in_audit_scope(scope())
        .await;
        assert_eq!(explicit.tenant_id.as_deref(), Some("globex"));
        assert_eq!(explicit.actor_id, None);
        assert_eq!(explicit.actor_name.as_deref(), Some("scheduler"));
        assert_eq!(explicit.metadata["job"], "extraction-run");
        assert_eq!(carried.actor_id.as_deref(), Some("u-7"));
        assert_eq!(carried.metadata["job"], "extraction-run");
        assert!(lost.metadata.get("job").is_none());
    }

    #[tokio::test]
    async fn scopes_nest_and_unwind() {
        let inner = JobScope::new("inner");
        let (during, after) = async {
            let during = async { JobScope::current() }
                .in_audit_scope(inner.clone())
                .await;
            (during, JobScope::current())
        }
        .in_audit_scope(scope())
        .await;
        assert_eq!(during, Some(inner));
        assert_eq!(after, Some(scope()));
        assert!(JobScope::current().is_none());
    }
}
