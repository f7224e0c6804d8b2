//! [`AuditSink`]: where finished entries go, and [`TracingSink`], a sink that logs them.
//! [`MemoryStore`](crate::MemoryStore) is a sink too; `audit-seaorm` provides the database one.

use std::sync::Arc;

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

/// Emits one `tracing` event per entry, at `INFO` on the target `audit`.
///
/// The event's `entry` field holds the whole entry as JSON, in the same form the admin API and
/// the exports use, so a field added to [`AuditEntry`] appears in the log with no change here;
/// `entry_id`, `action` and `tenant_id` are fields of their own for filtering. Route the
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
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        let json = serde_json::to_string(&entry).map_err(|e| SinkError::Backend(Box::new(e)))?;
        tracing::info!(
            target: "audit",
            entry_id = %entry.id,
            action = entry.action.as_str(),
            tenant_id = entry.tenant_id.as_deref(),
            entry = %json,
            "audit entry"
        );
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::Action;
    use std::sync::Mutex;

    #[tokio::test]
    async fn arc_dyn_sinks_are_sinks() {
        let memory = crate::MemoryStore::new();
        let shared: Arc<dyn AuditSink> = Arc::new(memory.clone());
        shared.record(AuditEntry::new(Action::Login)).await.unwrap();
        assert_eq!(memory.len(), 1);
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_tracing_sink_logs_every_field_of_the_entry() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let entry = AuditEntry::builder(Action::Revoke)
            .tenant("acme")
            .entity("ApiKey", "k-7")
            .entity_name("CI deploy key")
            .build();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(TracingSink.record(entry.clone())).unwrap();
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains(" audit: audit entry"), "{text}");
        assert!(text.contains(&format!("entry_id={}", entry.id)), "{text}");
        let json = serde_json::to_string(&entry).unwrap();
        assert!(text.contains(&format!("entry={json}")), "{text}");
    }
}
