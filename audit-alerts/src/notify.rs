//! [`Notifier`]: where alerts go, and [`TracingNotifier`], which logs them.

use std::sync::Arc;

use async_trait::async_trait;

use crate::alert::Alert;
use crate::error::NotifyError;

/// Delivers alerts: a webhook, a chat message, a pager.
///
/// Called from the alerting sink's background task, never from a request; several deliveries
/// may run at once, so a slow notifier holds up only its own. A notifier that retries does so
/// inside [`notify`](Self::notify), and returns the final result.
///
/// ```
/// use async_trait::async_trait;
/// use audit_alerts::{Alert, Notifier, NotifyError};
///
/// /// Prints each alert's reason.
/// struct Print;
///
/// #[async_trait]
/// impl Notifier for Print {
///     async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
///         println!("{}: {}", alert.rule, alert.reason);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Delivers `alert`.
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError>;
}

#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        (**self).notify(alert).await
    }
}

/// Emits one `tracing` event per alert, at `WARN` on the target `audit::alert`.
///
/// The event's fields: `alert_id`, `rule`, `reason`, `count`, `window_seconds` and `key` (for a
/// threshold), `entry_ids`, and `alert`, the whole alert as JSON (the webhook's body).
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use audit_alerts::{Alerts, Rule, TracingNotifier};
/// use audit_core::{Action, MemoryStore};
///
/// let sink = Alerts::builder()
///     .rule(Rule::new("api-key-revoked").action(Action::Revoke))
///     .notifier(TracingNotifier)
///     .wrap(MemoryStore::new())?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingNotifier;

#[async_trait]
impl Notifier for TracingNotifier {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let json = serde_json::to_string(alert)?;
        let entry_ids: Vec<String> = alert.entries.iter().map(|e| e.id.to_string()).collect();
        let threshold = alert.threshold.as_ref();
        tracing::warn!(
            target: "audit::alert",
            alert_id = %alert.id,
            rule = alert.rule.as_str(),
            reason = alert.reason.as_str(),
            count = threshold.map(|t| t.count),
            window_seconds = threshold.map(|t| t.window_seconds),
            key = threshold.map(|t| t.key.as_str()),
            entry_ids = %entry_ids.join(","),
            alert = %json,
            "audit alert"
        );
        Ok(())
    }
}
