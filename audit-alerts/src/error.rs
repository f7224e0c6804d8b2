//! [`AlertError`]: why alerting could not be set up, and [`NotifyError`]: why a notifier could
//! not deliver an alert.

/// Why alerting could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A rule cannot be evaluated (a threshold of zero entries, say).
    #[error("alert rule {rule:?}: {why}")]
    InvalidRule {
        /// The rule's name.
        rule: String,
        /// What is wrong with it.
        why: String,
    },
    /// The background task needs a Tokio runtime, and none is running on this thread.
    #[error("alerting must be started inside a Tokio runtime")]
    NoRuntime,
    /// The webhook's URL is not an HTTP URL, or its client could not be built.
    #[error("alert webhook: {0}")]
    Webhook(String),
}

/// Why a notifier could not deliver an alert.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The alert could not be serialised.
    #[error("alert could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The receiver answered with a status other than 2xx.
    #[error("the receiver answered {status} after {attempts} attempts")]
    Status {
        /// The last status.
        status: u16,
        /// How many requests were sent.
        attempts: u32,
    },
    /// No answer: the connection failed or the request timed out.
    #[error("no answer from the receiver after {attempts} attempts: {source}")]
    Unreachable {
        /// How many requests were sent.
        attempts: u32,
        /// The last failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A notifier's own failure.
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}
