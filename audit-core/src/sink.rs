//! [`AuditSink`]: where finished entries go.
//!
//! In the flow request → layer → entry → **sink** → store → admin router, the layer hands each
//! entry to a sink. This crate ships two: [`MemorySink`] for tests and [`TracingSink`] for
//! services that ship logs elsewhere; `audit-seaorm` provides the database one.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::entry::AuditEntry;

/// Why a sink could not take entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The backend is unreachable or refused the write; retrying later may succeed.
    #[error("audit sink unavailable: {0}")]
    Unavailable(String),
    /// The backend failed with its own error.
    #[error("audit sink failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Receives finished audit entries.
///
/// Implementations must be idempotent on [`AuditEntry::id`]: a retried entry is stored once.
/// Delivery is at least once: when a batch fails, `audit-tower`'s buffered writer retries the
/// whole batch, including entries the sink stored before it failed (the default
/// [`record_batch`](Self::record_batch) stops at the first error, after storing the ones
/// before it), so a sink that does not skip ids it already holds stores those twice.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Stores one entry.
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError>;

    /// Stores several entries; backends override this with one round trip. The default records
    /// them one by one and stops at the first error.
    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        for entry in entries {
            self.record(entry).await?;
        }
        Ok(())
    }

    /// Stores borrowed entries; a writer that retries a failed batch calls this, so it keeps
    /// the batch for the next attempt. The default clones them into
    /// [`record_batch`](Self::record_batch); sinks that can write from borrowed entries (a
    /// database insert, say) override it to spare the copy.
    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        self.record_batch(entries.to_vec()).await
    }
}

#[async_trait]
impl<S: AuditSink + ?Sized> AuditSink for Arc<S> {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        (**self).record(entry).await
    }

    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        (**self).record_batch(entries).await
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        (**self).record_slice(entries).await
    }
}

/// Keeps entries in memory: for your own tests and for trying the layer out.
///
/// Clones share the same entries, so keep one clone to inspect what the layer recorded.
///
/// ```
/// use audit_core::{Action, AuditEntry, AuditSink, MemorySink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = MemorySink::new();
/// sink.clone().record(AuditEntry::new(Action::Create)).await.unwrap();
/// assert_eq!(sink.entries().len(), 1);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    entries: Arc<Mutex<Vec<AuditEntry>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<AuditEntry>> {
        // A panic while holding the lock cannot leave the Vec half-written, so the data is
        // still good after poisoning.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of every entry recorded so far, in the order they arrived.
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.lock().clone()
    }

    /// How many entries were recorded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Removes and returns every entry.
    pub fn take(&self) -> Vec<AuditEntry> {
        std::mem::take(&mut *self.lock())
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        let mut entries = self.lock();
        if !entries.iter().any(|e| e.id == entry.id) {
            entries.push(entry);
        }
        Ok(())
    }

    async fn record_batch(&self, batch: Vec<AuditEntry>) -> Result<(), SinkError> {
        let mut entries = self.lock();
        for entry in batch {
            if !entries.iter().any(|e| e.id == entry.id) {
                entries.push(entry);
            }
        }
        Ok(())
    }
}

/// Emits one structured `tracing` event per entry, at `INFO` on the target `audit`.
///
/// Every column is a field of the event; `changes` and `metadata` are JSON text. Route the
/// `audit` target to its own layer or file with your subscriber's filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl TracingSink {
    /// A new tracing sink.
    pub fn new() -> Self {
        TracingSink
    }
}

#[async_trait]
impl AuditSink for TracingSink {
    async fn record(&self, e: AuditEntry) -> Result<(), SinkError> {
        let changes = serde_json::to_string(&e.changes).unwrap_or_default();
        let metadata = serde_json::to_string(&e.metadata).unwrap_or_default();
        tracing::info!(
            target: "audit",
            id = %e.id,
            occurred_at = %e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            tenant_id = e.tenant_id.as_deref(),
            team_id = e.team_id.as_deref(),
            actor_kind = e.actor_kind.as_str(),
            actor_id = e.actor_id.as_deref(),
            actor_name = e.actor_name.as_deref(),
            api_key_id = e.api_key_id.as_deref(),
            api_key_name = e.api_key_name.as_deref(),
            action = e.action.as_str(),
            entity_type = e.entity_type.as_deref(),
            entity_id = e.entity_id.as_deref(),
            entity_name = e.entity_name.as_deref(),
            details = e.details.as_deref(),
            changes = %changes,
            outcome = e.outcome.as_str(),
            status = e.status,
            ip = e.ip.map(tracing::field::display),
            user_agent = e.user_agent.as_deref(),
            request_id = e.request_id.as_deref(),
            method = e.method.as_deref(),
            route = e.route.as_deref(),
            metadata = %metadata,
            "audit entry"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[tokio::test]
    async fn memory_sink_clones_share_state_and_ignore_repeated_ids() {
        let sink = MemorySink::new();
        let writer = sink.clone();
        let entry = AuditEntry::new(Action::Create);
        writer.record(entry.clone()).await.unwrap();
        writer.record(entry.clone()).await.unwrap();
        writer
            .record_batch(vec![entry.clone(), AuditEntry::new(Action::Delete)])
            .await
            .unwrap();
        let entries = sink.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, entry.id);
        assert_eq!(entries[1].action, Action::Delete);
        assert_eq!(sink.take().len(), 2);
        assert!(sink.is_empty());
    }

    #[tokio::test]
    async fn arc_dyn_sinks_are_sinks() {
        let memory = MemorySink::new();
        let shared: Arc<dyn AuditSink> = Arc::new(memory.clone());
        shared.record(AuditEntry::new(Action::Login)).await.unwrap();
        TracingSink
            .record(AuditEntry::new(Action::Login))
            .await
            .unwrap();
        assert_eq!(memory.len(), 1);
    }
}
