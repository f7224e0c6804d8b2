//! Asserting, in a service's own tests, the entries its requests leave behind: [`Expected`]
//! describes an entry, and [`MemoryStore`] finds it ([`MemoryStore::find`]), asserts it
//! ([`MemoryStore::expect_one`], [`MemoryStore::expect_none`]) and waits for it
//! ([`MemoryStore::wait_for`]). A failed assertion prints every entry the store holds, so the
//! test's output shows what was recorded instead.
//!
//! ```
//! use audit_core::testing::Expected;
//! use audit_core::{Action, AuditEntry, AuditSink, MemoryStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store
//!     .record(AuditEntry::builder(Action::Revoke).entity("ApiKey", "k-1").build())
//!     .await
//!     .unwrap();
//! let entry = store.expect_one(&Expected::action(Action::Revoke).entity("ApiKey", "k-1"));
//! assert_eq!(entry.entity_id.as_deref(), Some("k-1"));
//! store.expect_none(&Expected::action(Action::Delete));
//! # });
//! ```

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use crate::entry::{AuditEntry, Outcome};
use crate::memory::MemoryStore;
use crate::{Action, ActorKind};

/// What an entry should say: every part given must match, the others are not looked at.
/// Actions compare by name ignoring ASCII case (`Action::Custom("archive".into())` matches
/// `Archive`), like the admin API's filter; the rest exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    action: Option<Action>,
    entity_type: Option<String>,
    entity_id: Option<String>,
    actor_id: Option<String>,
    actor_kind: Option<ActorKind>,
    tenant_id: Option<String>,
    outcome: Option<Outcome>,
    status: Option<u16>,
}

impl Expected {
    /// Any entry.
    pub fn any() -> Self {
        Self::default()
    }

    /// An entry of `action`.
    pub fn action(action: Action) -> Self {
        Self::any().with_action(action)
    }

    /// Also of `action`.
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// On the entity of type `entity_type` and id `id`.
    pub fn entity(mut self, entity_type: impl Into<String>, id: impl Into<String>) -> Self {
        self.entity_type = Some(entity_type.into());
        self.entity_id = Some(id.into());
        self
    }

    /// On an entity of type `entity_type`, whatever its id.
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> Self {
        self.entity_type = Some(entity_type.into());
        self
    }

    /// By the actor with id `actor_id`.
    pub fn actor(mut self, actor_id: impl Into<String>) -> Self {
        self.actor_id = Some(actor_id.into());
        self
    }

    /// By an actor of `kind` (a user, an API key, the system, an anonymous caller).
    pub fn actor_kind(mut self, kind: ActorKind) -> Self {
        self.actor_kind = Some(kind);
        self
    }

    /// In tenant `tenant_id`.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// With `outcome`.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Answered with HTTP status `status`.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Whether `entry` says everything this expects.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let same = |want: &Option<String>, got: &Option<String>| {
            want.as_ref().is_none_or(|want| got.as_ref() == Some(want))
        };
        self.action
            .as_ref()
            .is_none_or(|action| action.as_str().eq_ignore_ascii_case(entry.action.as_str()))
            && same(&self.entity_type, &entry.entity_type)
            && same(&self.entity_id, &entry.entity_id)
            && same(&self.actor_id, &entry.actor_id)
            && same(&self.tenant_id, &entry.tenant_id)
            && self.actor_kind.is_none_or(|kind| kind == entry.actor_kind)
            && self.outcome.is_none_or(|outcome| outcome == entry.outcome)
            && self
                .status
                .is_none_or(|status| entry.status == Some(status))
    }
}

impl fmt::Display for Expected {
    /// Reads like the entry it describes: `Revoke on ApiKey k-1 by u-1 in acme (success)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            Some(action) => write!(f, "{action}")?,
            None => f.write_str("any action")?,
        }
        match (&self.entity_type, &self.entity_id) {
            (Some(t), Some(id)) => write!(f, " on {t} {id}")?,
            (Some(t), None) => write!(f, " on a {t}")?,
            _ => {}
        }
        if let Some(actor) = &self.actor_id {
            write!(f, " by {actor}")?;
        }
        if let Some(kind) = &self.actor_kind {
            write!(f, " by a {}", kind.as_str())?;
        }
        if let Some(tenant) = &self.tenant_id {
            write!(f, " in {tenant}")?;
        }
        match (&self.outcome, self.status) {
            (Some(outcome), Some(status)) => write!(f, " ({}, {status})", outcome.as_str()),
            (Some(outcome), None) => write!(f, " ({})", outcome.as_str()),
            (None, Some(status)) => write!(f, " ({status})"),
            (None, None) => Ok(()),
        }
    }
}

/// One line per entry, as a failed assertion prints them.
fn listing(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "  (none)".to_owned();
    }
    let text = |value: &Option<String>| value.as_deref().unwrap_or("-").to_owned();
    entries
        .iter()
        .map(|e| {
            format!(
                "  {} {} on {} {} by {} in {} ({}, {}) {} {}",
                e.occurred_at.format("%H:%M:%S%.6f"),
                e.action,
                text(&e.entity_type),
                text(&e.entity_id),
                text(&e.actor_id),
                text(&e.tenant_id),
                e.outcome.as_str(),
                e.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                text(&e.method),
                text(&e.route),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl MemoryStore {
    /// The entries that match `expected`, in the order they arrived.
    pub fn find(&self, expected: &Expected) -> Vec<AuditEntry> {
        self.entries()
            .into_iter()
            .filter(|entry| expected.matches(entry))
            .collect()
    }

    /// The one entry that matches `expected`.
    ///
    /// # Panics
    ///
    /// When none or several match, with every entry the store holds in the message.
    #[track_caller]
    pub fn expect_one(&self, expected: &Expected) -> AuditEntry {
        let all = self.entries();
        let mut found: Vec<&AuditEntry> = all.iter().filter(|e| expected.matches(e)).collect();
        match (found.pop(), found.is_empty()) {
            (Some(entry), true) => entry.clone(),
            (None, _) => panic!(
                "no audit entry is {expected}; the store holds {}:\n{}",
                all.len(),
                listing(&all)
            ),
            (Some(_), false) => panic!(
                "{} audit entries are {expected}, expected one; the store holds {}:\n{}",
                found.len() + 1,
                all.len(),
                listing(&all)
            ),
        }
    }

    /// Asserts that no entry matches `expected`.
    ///
    /// # Panics
    ///
    /// When one does, with every entry the store holds in the message.
    #[track_caller]
    pub fn expect_none(&self, expected: &Expected) {
        let all = self.entries();
        let found = all.iter().filter(|e| expected.matches(e)).count();
        assert!(
            found == 0,
            "{found} audit entries are {expected}, expected none; the store holds {}:\n{}",
            all.len(),
            listing(&all)
        );
    }

    /// Waits until an entry matching `expected` is stored, and returns the first one: for a
    /// layer in buffered mode, whose writer stores entries after the response (in synchronous
    /// mode, the default, the entry is stored before the response is sent). Any async runtime
    /// will do; the timeout is kept by a thread of its own.
    ///
    /// # Panics
    ///
    /// When `timeout` passes first, with every entry the store holds in the message.
    #[track_caller]
    pub fn wait_for(
        &self,
        expected: &Expected,
        timeout: Duration,
    ) -> impl Future<Output = AuditEntry> + Send + '_ {
        let caller = std::panic::Location::caller();
        let expected = expected.clone();
        async move {
            let expired = Arc::new(AtomicBool::new(false));
            let timer = Timer::start(self.clone(), timeout, expired.clone());
            let found = poll_fn(|cx| {
                if let Some(entry) = self.first_matching(&expected) {
                    return Poll::Ready(Some(entry));
                }
                if expired.load(Ordering::Acquire) {
                    return Poll::Ready(None);
                }
                self.add_waiter(cx.waker());
                // An entry stored between the look and the registration woke nobody.
                match self.first_matching(&expected) {
                    Some(entry) => Poll::Ready(Some(entry)),
                    None => Poll::Pending,
                }
            })
            .await;
            timer.stop();
            match found {
                Some(entry) => entry,
                None => {
                    let all = self.entries();
                    panic!(
                        "no audit entry was {expected} within {timeout:?} (waited at {caller}); \
                         the store holds {}:\n{}",
                        all.len(),
                        listing(&all)
                    )
                }
            }
        }
    }

    fn first_matching(&self, expected: &Expected) -> Option<AuditEntry> {
        self.entries().into_iter().find(|e| expected.matches(e))
    }
}

/// The thread that ends a [`MemoryStore::wait_for`]: it sleeps for the timeout (or until
/// stopped), then marks it expired and wakes the waiting task.
struct Timer {
    stopped: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

impl Timer {
    fn start(store: MemoryStore, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        let handle = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            expired.store(true, Ordering::Release);
            store.wake_waiters();
        });
        Self {
            stopped,
            thread: handle.thread().clone(),
        }
    }

    fn stop(self) {
        self.stopped.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditSink;

    fn entry(action: Action, id: &str) -> AuditEntry {
        AuditEntry::builder(action)
            .tenant("acme")
            .entity("ApiKey", id)
            .build()
    }

    #[tokio::test]
    async fn finds_and_asserts_by_each_part() {
        let store = MemoryStore::new();
        store.record(entry(Action::Revoke, "k-1")).await.unwrap();
        store.record(entry(Action::Delete, "k-2")).await.unwrap();
        assert_eq!(store.find(&Expected::any()).len(), 2);
        assert_eq!(store.find(&Expected::any().entity_type("ApiKey")).len(), 2);
        let revoked = store.expect_one(&Expected::action(Action::Revoke).tenant("acme"));
        assert_eq!(revoked.entity_id.as_deref(), Some("k-1"));
        // Actions by name, in any case.
        store.expect_one(&Expected::action(Action::Custom("revoke".into())));
        store.expect_none(&Expected::action(Action::Revoke).entity("ApiKey", "k-2"));
        store.expect_none(&Expected::any().actor("u-1"));
        store.expect_none(&Expected::any().outcome(Outcome::Failure));
        store.expect_none(&Expected::any().status(500));
    }

    #[tokio::test]
    async fn a_failed_assertion_lists_what_was_recorded() {
        let store = MemoryStore::new();
        store.record(entry(Action::Revoke, "k-1")).await.unwrap();
        store.record(entry(Action::Revoke, "k-2")).await.unwrap();
        let message = |f: Box<dyn FnOnce() + std::panic::UnwindSafe>| {
            let panic = std::panic::catch_unwind(f).expect_err("the assertion fails");
            panic.downcast_ref::<String>().cloned().unwrap_or_default()
        };
        let s = store.clone();
        let none = message(Box::new(move || {
            s.expect_one(&Expected::action(Action::Delete).entity("ApiKey", "k-9"));
        }));
        assert!(
            none.starts_with("no audit entry is Delete on ApiKey k-9; the store holds 2:"),
            "{none}"
        );
        assert!(none.contains("Revoke on ApiKey k-1 by - in acme"), "{none}");
        assert!(none.contains("Revoke on ApiKey k-2"), "{none}");
        let s = store.clone();
        let two = message(Box::new(move || {
            s.expect_one(&Expected::action(Action::Revoke));
        }));
        assert!(
            two.starts_with("2 audit entries are Revoke, expected one"),
            "{two}"
        );
        let s = store.clone();
        let some = message(Box::new(move || {
            s.expect_none(&Expected::any().tenant("acme"))
        }));
        assert!(
            some.starts_with("2 audit entries are any action in acme"),
            "{some}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_for_an_entry_stored_later_and_gives_up_at_the_timeout() {
        let store = MemoryStore::new();
        let writer = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.record(entry(Action::Revoke, "k-1")).await.unwrap();
        });
        let found = store
            .wait_for(&Expected::action(Action::Revoke), Duration::from_secs(10))
            .await;
        assert_eq!(found.entity_id.as_deref(), Some("k-1"));
        // Already there: at once.
        store
            .wait_for(&Expected::action(Action::Revoke), Duration::ZERO)
            .await;
        let s = store.clone();
        let gave_up = tokio::spawn(async move {
            s.wait_for(&Expected::action(Action::Delete), Duration::from_millis(50))
                .await
        })
        .await
        .expect_err("the wait panics");
        let message = gave_up
            .into_panic()
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.starts_with("no audit entry was Delete within 50ms"),
            "{message}"
        );
        assert!(message.contains("Revoke on ApiKey k-1"), "{message}");
    }
}
