//! [`AlertingSink`]: a sink that stores through another, then hands what it stored to a
//! background task that evaluates the rules and calls the notifiers; [`Alerts`], the handle to
//! that task (its counts, and `flush`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use audit_core::{AuditEntry, AuditSink, SinkError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::alert::Alert;
use crate::error::AlertError;
use crate::evaluate::{DEFAULT_MAX_KEYS, DEFAULT_REMEMBERED_IDS, Evaluator};
use crate::notify::Notifier;
use crate::rule::Rule;

/// The hand-off queue's slots by default: each holds the entries of one call to the sink.
pub const DEFAULT_CAPACITY: usize = 1_024;

/// Deliveries that may run at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Wraps a sink: stores through it, then has the stored entries evaluated for alerts off the
/// request path.
///
/// Every method of [`AuditSink`] is forwarded to the inner sink as called (a batch stays a
/// batch, a slice a slice); its result is returned unchanged. Only when the inner sink has
/// stored the entries are copies offered to a bounded queue, without waiting: when the queue
/// is full they are not evaluated, and counted as `dropped` ([`Alerts::stats`]). So alerting
/// never delays, fails or changes a write; entries the inner sink refused raise no alert (the
/// writer retries them, and they are evaluated once stored).
///
/// Made by [`Alerts::builder`]; clones share the inner sink's clone and the same task.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use audit_alerts::{Alerts, Rule, TracingNotifier};
/// use audit_core::{Action, AuditEntry, AuditSink, MemoryStore};
///
/// let store = MemoryStore::new();
/// let sink = Alerts::builder()
///     .rule(Rule::new("api-key-revoked").action(Action::Revoke).entity_type("ApiKey"))
///     .notifier(TracingNotifier)
///     .wrap(store.clone())?;
/// sink.record(AuditEntry::builder(Action::Revoke).entity("ApiKey", "k-7").build()).await?;
/// sink.alerts().flush().await;
/// assert_eq!(store.len(), 1);
/// assert_eq!(sink.alerts().stats().fired, 1);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct AlertingSink<S> {
    inner: S,
    alerts: Alerts,
}

impl<S> AlertingSink<S> {
    /// The handle to the alerting task: counts, and [`flush`](Alerts::flush).
    pub fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: AuditSink> AuditSink for AlertingSink<S> {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        let copy = entry.clone();
        self.inner.record(entry).await?;
        self.alerts.offer(vec![copy]);
        Ok(())
    }

    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        let copy = entries.clone();
        self.inner.record_batch(entries).await?;
        self.alerts.offer(copy);
        Ok(())
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        self.inner.record_slice(entries).await?;
        self.alerts.offer(entries.to_vec());
        Ok(())
    }
}

/// What the queue carries to the task.
#[derive(Debug)]
enum Message {
    Entries(Vec<AuditEntry>),
    /// Answered once everything queued before it is evaluated and delivered.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    evaluated: AtomicU64,
    fired: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    evicted: AtomicU64,
}

/// What alerting has done since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AlertStats {
    /// Entries the rules were run over.
    pub evaluated: u64,
    /// Alerts raised.
    pub fired: u64,
    /// Deliveries that succeeded: one per alert and notifier.
    pub delivered: u64,
    /// Deliveries that failed for good (after the notifier's own retries).
    pub failed: u64,
    /// Entries stored but not evaluated, because the queue was full.
    pub dropped: u64,
    /// Keys thresholds forgot to stay within their bound (see [`Evaluator::max_keys`]).
    pub evicted: u64,
}

/// The handle to a running alerting task: its counts, and [`flush`](Self::flush).
///
/// The task stops when the last [`AlertingSink`] and handle of it are dropped, after it has
/// evaluated what was queued and finished its deliveries.
#[derive(Debug, Clone)]
pub struct Alerts {
    queue: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

impl Alerts {
    /// Rules, notifiers and bounds for an [`AlertingSink`].
    pub fn builder() -> AlertsBuilder {
        AlertsBuilder {
            rules: Vec::new(),
            notifiers: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            max_keys: DEFAULT_MAX_KEYS,
            remember: DEFAULT_REMEMBERED_IDS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> AlertStats {
        let c = &self.counters;
        AlertStats {
            evaluated: c.evaluated.load(Ordering::Relaxed),
            fired: c.fired.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
        }
    }

    /// Waits until every entry queued before the call is evaluated and every alert raised so
    /// far has been delivered or given up on. Call it at shutdown, after the audit layer's own
    /// `flush`, with a timeout: a webhook that keeps failing takes its retries' time.
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Queues stored entries for evaluation without waiting; counts them dropped when the
    /// queue is full.
    fn offer(&self, entries: Vec<AuditEntry>) {
        if entries.is_empty() {
            return;
        }
        let count = entries.len() as u64;
        if self.queue.try_send(Message::Entries(entries)).is_err() {
            self.counters.dropped.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// Sets up an [`AlertingSink`]: see [`Alerts::builder`].
#[must_use]
pub struct AlertsBuilder {
    rules: Vec<Rule>,
    notifiers: Vec<Arc<dyn Notifier>>,
    capacity: usize,
    max_keys: usize,
    remember: usize,
    max_in_flight: usize,
}

impl std::fmt::Debug for AlertsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsBuilder")
            .field("rules", &self.rules)
            .field("notifiers", &self.notifiers.len())
            .field("capacity", &self.capacity)
            .field("max_keys", &self.max_keys)
            .field("remember", &self.remember)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl AlertsBuilder {
    /// Adds a rule; an entry is evaluated against every rule, and may raise several alerts.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds a notifier; every alert goes to every notifier.
    pub fn notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifiers.push(Arc::new(notifier));
        self
    }

    /// The hand-off queue's slots (at least one), each the entries of one call to the sink;
    /// default [`DEFAULT_CAPACITY`].
    pub fn capacity(mut self, slots: usize) -> Self {
        self.capacity = slots.max(1);
        self
    }

    /// The keys each threshold tracks at most; default [`DEFAULT_MAX_KEYS`]. See
    /// [`Evaluator::max_keys`].
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// The entry ids remembered to evaluate a repeated entry once; default
    /// [`DEFAULT_REMEMBERED_IDS`]. See [`Evaluator::remember`].
    pub fn remember(mut self, ids: usize) -> Self {
        self.remember = ids;
        self
    }

    /// Deliveries that may run at once (at least one); default [`DEFAULT_MAX_IN_FLIGHT`]. When
    /// that many are running, evaluation waits for one to finish, and the queue fills.
    pub fn max_in_flight(mut self, deliveries: usize) -> Self {
        self.max_in_flight = deliveries.max(1);
        self
    }

    /// Starts the background task on the current Tokio runtime and wraps `inner`.
    ///
    /// Fails when a rule cannot be evaluated or no runtime is running.
    pub fn wrap<S: AuditSink>(self, inner: S) -> Result<AlertingSink<S>, AlertError> {
        let evaluator = Evaluator::new(self.rules)?
            .max_keys(self.max_keys)
            .remember(self.remember);
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let (queue, received) = mpsc::channel(self.capacity);
        let counters = Arc::new(Counters::default());
        runtime.spawn(run(
            received,
            evaluator,
            self.notifiers,
            counters.clone(),
            self.max_in_flight,
        ));
        Ok(AlertingSink {
            inner,
            alerts: Alerts { queue, counters },
        })
    }
}

/// The background task: evaluates what the queue brings, and delivers the alerts.
async fn run(
    mut queue: mpsc::Receiver<Message>,
    mut evaluator: Evaluator,
    notifiers: Vec<Arc<dyn Notifier>>,
    counters: Arc<Counters>,
    max_in_flight: usize,
) {
    let mut deliveries = JoinSet::new();
    while let Some(message) = queue.recv().await {
        match message {
            Message::Entries(entries) => {
                for entry in &entries {
                    counters.evaluated.fetch_add(1, Ordering::Relaxed);
                    for alert in evaluator.evaluate(entry) {
                        counters.fired.fetch_add(1, Ordering::Relaxed);
                        let alert = Arc::new(alert);
                        for notifier in &notifiers {
                            while let Some(done) = deliveries.try_join_next() {
                                reap(done, &counters);
                            }
                            while deliveries.len() >= max_in_flight {
                                if let Some(done) = deliveries.join_next().await {
                                    reap(done, &counters);
                                }
                            }
                            deliveries.spawn(deliver(
                                notifier.clone(),
                                alert.clone(),
                                counters.clone(),
                            ));
                        }
                    }
                }
                counters
                    .evicted
                    .store(evaluator.evicted(), Ordering::Relaxed);
            }
            Message::Flush(done) => {
                while let Some(finished) = deliveries.join_next().await {
                    reap(finished, &counters);
                }
                let _ = done.send(());
            }
        }
    }
    while let Some(finished) = deliveries.join_next().await {
        reap(finished, &counters);
    }
}

async fn deliver(notifier: Arc<dyn Notifier>, alert: Arc<Alert>, counters: Arc<Counters>) {
    match notifier.notify(&alert).await {
        Ok(()) => {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                target: "audit::alert",
                alert_id = %alert.id,
                rule = alert.rule.as_str(),
                error = %e,
                "audit alert not delivered"
            );
        }
    }
}

/// A delivery that panicked counts as failed (one that returned has counted itself).
fn reap(finished: Result<(), tokio::task::JoinError>, counters: &Counters) {
    if finished.is_err() {
        counters.failed.fetch_add(1, Ordering::Relaxed);
    }
}
