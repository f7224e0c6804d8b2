//! [`IntentStore`]: where an entry is written before its handler runs, so that a process that
//! dies mid-request leaves an entry whose outcome is [`Unknown`](crate::Outcome::Unknown)
//! rather than a change with no entry.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AuditEntry, SinkError};

/// Holds intents: the entries of requests whose handler is about to run, written before it
/// runs. For routes whose changes live outside the service's database (another service, a
/// file, a payment provider), where no transaction can hold the change and its entry together.
///
/// The life of an intent: [`record_intents`](Self::record_intents) before the handler; the
/// request's final entry, with the same id, is then stored through the sink as usual, and
/// [`clear_intents`](Self::clear_intents) removes the intent. If the process dies in between,
/// [`recover_intents`](Self::recover_intents) turns the intent into an entry with the outcome
/// `unknown`; an intent whose final entry was stored after all is just removed, since entries
/// are idempotent on their id. Run recovery when a service starts (with no other instance
/// serving, any age) and, with several instances, now and then for intents older than any
/// request can take.
#[async_trait]
pub trait IntentStore: Send + Sync + 'static {
    /// Stores `intents` (entries with the outcome `unknown`), before their handlers run.
    async fn record_intents(&self, intents: &[AuditEntry]) -> Result<(), SinkError>;

    /// Removes the intents with these ids, whose final entries are stored.
    async fn clear_intents(&self, ids: &[Uuid]) -> Result<(), SinkError>;

    /// Stores every intent older than `older_than` as an entry (unless an entry with its id is
    /// stored already) and removes it; returns how many intents were removed.
    async fn recover_intents(&self, older_than: Duration) -> Result<u64, SinkError>;
}
