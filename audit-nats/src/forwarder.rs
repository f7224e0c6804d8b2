//! [`Forwarder`]: a durable pull consumer that writes the stream's entries into a store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Stream as Messages};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{AckKind, Context, Message};
use audit_core::{AuditEntry, AuditSink, PartHealth};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::error::NatsError;
use crate::metric;
use crate::sink::{StreamSettings, ensure_stream};

/// How a [`Forwarder`] reads the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderSettings {
    /// The durable consumer's name: forwarders with the same name share the work (each entry
    /// goes to one of them), and a restarted forwarder resumes where the name left off.
    /// Default `audit-forwarder`.
    pub durable_name: String,
    /// Entries stored per write at most: whatever has arrived, up to this many, goes into one
    /// `record_slice` call. Default 500.
    pub max_batch: usize,
    /// How long JetStream waits for an entry's acknowledgement before delivering it again (to
    /// this forwarder or another): how long the entries a dead forwarder held wait for another.
    /// While a write is being retried the forwarder tells JetStream it is still working.
    /// Default 10 s. Applies when the consumer is created.
    pub ack_wait: Duration,
    /// The longest pause between two attempts to store a batch (the first is 25 ms, doubling).
    /// Default 5 s.
    pub max_backoff: Duration,
    /// Only entries on this subject (wildcards allowed, such as `audit.acme.>`); `None` for the
    /// whole stream. Applies when the consumer is created.
    pub filter_subject: Option<String>,
}

impl Default for ForwarderSettings {
    fn default() -> Self {
        ForwarderSettings {
            durable_name: "audit-forwarder".to_owned(),
            max_batch: 500,
            ack_wait: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            filter_subject: None,
        }
    }
}

/// What a forwarder has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForwarderStats {
    /// Entries written into the sink and acknowledged to JetStream.
    pub forwarded: u64,
    /// Entries delivered more than once (a forwarder died or was too slow before
    /// acknowledging them); the sink keeps each id once.
    pub redelivered: u64,
    /// Messages that are not audit entries (not JSON of one): logged, and terminated so
    /// JetStream does not deliver them again.
    pub rejected: u64,
    /// Attempts to store a batch that failed (each is retried).
    pub failed_attempts: u64,
    /// Entries in the stream not yet delivered to this consumer, as of the last delivery.
    pub lag: u64,
    /// Whether the last attempt to store failed (the store is down).
    pub failing: bool,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    redelivered: AtomicU64,
    rejected: AtomicU64,
    failed_attempts: AtomicU64,
    lag: AtomicU64,
    failing: AtomicBool,
}

impl Counters {
    fn stats(&self) -> ForwarderStats {
        ForwarderStats {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            lag: self.lag.load(Ordering::Relaxed),
            failing: self.failing.load(Ordering::Relaxed),
        }
    }
}

/// Drains a JetStream stream of audit entries into a sink (the SQL store), acknowledging
/// each entry only once the sink has stored it.
///
/// A durable pull consumer: a forwarder that stops (or dies) resumes where it left off, and
/// several forwarders with the same [`durable_name`](ForwarderSettings::durable_name) share the
/// entries. Whatever has arrived, up to [`max_batch`](ForwarderSettings::max_batch), is stored
/// in one call; a failing sink is retried with backoff, forever, while JetStream is told the
/// batch is still in progress. An entry delivered twice (its forwarder died between storing
/// and acknowledging) is stored once, since sinks are idempotent on the entry id.
///
/// ```no_run
/// # async fn run(store: audit_core::MemoryStore) -> Result<(), Box<dyn std::error::Error>> {
/// use audit_nats::{Forwarder, ForwarderSettings, StreamSettings};
///
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let jetstream = async_nats::jetstream::new(client);
/// let forwarder = Forwarder::new(&jetstream, &StreamSettings::default(), store, ForwarderSettings::default()).await?;
/// let running = forwarder.spawn();
/// // ... at shutdown: the batch being stored is finished and acknowledged.
/// running.stop().await?;
/// # Ok(()) }
/// ```
pub struct Forwarder<S> {
    consumer: PullConsumer,
    sink: S,
    settings: ForwarderSettings,
    counters: Arc<Counters>,
}

impl<S> std::fmt::Debug for Forwarder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("settings", &self.settings)
            .field("stats", &self.counters.stats())
            .finish_non_exhaustive()
    }
}

impl<S: AuditSink> Forwarder<S> {
    /// A forwarder of the stream of `stream` (created if it does not exist) into `sink`,
    /// through the durable consumer of `settings` (created if it does not exist: explicit
    /// acknowledgements, from the stream's first entry).
    pub async fn new(
        context: &Context,
        stream: &StreamSettings,
        sink: S,
        settings: ForwarderSettings,
    ) -> Result<Self, NatsError> {
        if settings.max_batch == 0 {
            return Err(NatsError::Settings("max_batch must be at least 1".into()));
        }
        let jet_stream = ensure_stream(context, stream).await?;
        let config = pull::Config {
            durable_name: Some(settings.durable_name.clone()),
            description: Some("tower-audit forwarder into the audit store".to_owned()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: settings.ack_wait,
            filter_subject: settings.filter_subject.clone().unwrap_or_default(),
            max_ack_pending: i64::try_from(settings.max_batch.saturating_mul(4)).unwrap_or(-1),
            ..Default::default()
        };
        let consumer = jet_stream
            .get_or_create_consumer(&settings.durable_name, config)
            .await
            .map_err(|e| NatsError::Consumer(settings.durable_name.clone(), e.to_string()))?;
        Ok(Forwarder {
            consumer,
            sink,
            settings,
            counters: Arc::default(),
        })
    }

    /// What the forwarder has done so far.
    pub fn stats(&self) -> ForwarderStats {
        self.counters.stats()
    }

    /// Runs the forwarder on a task of its own; stop it with [`RunningForwarder::stop`].
    pub fn spawn(self) -> RunningForwarder {
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::clone(&self.counters);
        let task = tokio::spawn(self.run(stopped));
        RunningForwarder {
            stop,
            counters,
            task,
        }
    }

    /// Forwards until `stop` turns `true` (or its sender is dropped): the batch being stored
    /// then is finished and acknowledged. Errors only when the consumer cannot be read at all
    /// (it was deleted, say); a NATS server that goes away is waited for.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), NatsError> {
        let mut messages: Option<Messages> = None;
        let mut pause = FIRST_BACKOFF;
        while !*stop.borrow() {
            let stream = match messages.as_mut() {
                Some(stream) => stream,
                None => match self.open().await {
                    Ok(stream) => messages.insert(stream),
                    Err(error) => {
                        tracing::warn!(%error, "audit forwarder: cannot read the consumer; retrying");
                        if sleep_or_stop(pause, &mut stop).await {
                            break;
                        }
                        pause = (pause * 2).min(self.settings.max_backoff);
                        continue;
                    }
                },
            };
            let first = tokio::select! {
                next = stream.next() => next,
                _ = stop.changed() => break,
            };
            let mut batch = match first {
                Some(Ok(message)) => vec![message],
                Some(Err(error)) => {
                    use async_nats::jetstream::consumer::pull::MessagesErrorKind as Kind;
                    match error.kind() {
                        Kind::ConsumerDeleted | Kind::PushBasedConsumer => {
                            return Err(NatsError::Consumer(
                                self.settings.durable_name.clone(),
                                error.to_string(),
                            ));
                        }
                        // A missed heartbeat or a failed pull (the server is away): the
                        // stream recovers once the client reconnects.
                        _ => tracing::debug!(%error, "audit forwarder: pull interrupted"),
                    }
                    continue;
                }
                None => {
                    messages = None;
                    continue;
                }
            };
            pause = FIRST_BACKOFF;
            // Whatever else has already arrived joins the batch.
            while batch.len() < self.settings.max_batch {
                match futures_util::FutureExt::now_or_never(stream.next()) {
                    Some(Some(Ok(message))) => batch.push(message),
                    _ => break,
                }
            }
            self.forward(batch, &mut stop).await;
        }
        Ok(())
    }

    async fn open(&self) -> Result<Messages, NatsError> {
        self.consumer
            .stream()
            .max_messages_per_batch(self.settings.max_batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .map_err(|e| NatsError::Consumer(self.settings.durable_name.clone(), e.to_string()))
    }

    /// Stores `messages`' entries, then acknowledges them. Gives up (leaving them to be
    /// delivered again) only when asked to stop while the sink is failing.
    async fn forward(&self, messages: Vec<Message>, stop: &mut watch::Receiver<bool>) {
        let mut entries = Vec::with_capacity(messages.len());
        let mut accepted = Vec::with_capacity(messages.len());
        for message in messages {
            if let Ok(info) = message.info() {
                self.counters.lag.store(info.pending, Ordering::Relaxed);
                metrics::gauge!(metric::FORWARDER_LAG).set(info.pending as f64);
                if info.delivered > 1 {
                    self.counters.redelivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            match serde_json::from_slice::<AuditEntry>(&message.payload) {
                Ok(entry) => {
                    entries.push(entry);
                    accepted.push(message);
                }
                Err(error) => {
                    tracing::error!(%error, subject = %message.subject, "audit forwarder: a message is not an audit entry; terminated");
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(metric::FORWARDER_REJECTED).increment(1);
                    if let Err(error) = message.ack_with(AckKind::Term).await {
                        tracing::warn!(%error, "audit forwarder: terminating a message failed");
                    }
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        let mut pause = FIRST_BACKOFF;
        loop {
            match self.sink.record_slice(&entries).await {
                Ok(()) => break,
                Err(error) => {
                    self.counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(metric::FORWARDER_FAILURES).increment(1);
                    if !self.counters.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(%error, entries = entries.len(), "audit forwarder: the store failed; retrying until it takes the batch");
                    }
                    // Still working on them: JetStream restarts their acknowledgement wait.
                    for message in &accepted {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    if sleep_or_stop(pause, stop).await {
                        return;
                    }
                    pause = (pause * 2).min(self.settings.max_backoff);
                }
            }
        }
        if self.counters.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("audit forwarder: the store takes entries again");
        }
        for message in &accepted {
            // A lost acknowledgement means one more delivery, which the sink stores once.
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "audit forwarder: an acknowledgement was not sent");
            }
        }
        let count = accepted.len() as u64;
        self.counters.forwarded.fetch_add(count, Ordering::Relaxed);
        metrics::counter!(metric::FORWARDED).increment(count);
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Sleeps for `pause`; `true` when asked to stop meanwhile.
async fn sleep_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// A forwarder running on its own task.
#[derive(Debug)]
pub struct RunningForwarder {
    stop: watch::Sender<bool>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<Result<(), NatsError>>,
}

impl RunningForwarder {
    /// What the forwarder has done so far.
    pub fn stats(&self) -> ForwarderStats {
        self.counters.stats()
    }

    /// A function reporting the forwarder's health, for the admin router's
    /// `health_part("forwarder", ...)`: degraded while the store is failing.
    pub fn health(&self) -> impl Fn() -> PartHealth + Send + Sync + 'static {
        let counters = Arc::clone(&self.counters);
        move || {
            let stats = counters.stats();
            PartHealth {
                degraded: stats.failing,
                details: serde_json::to_value(stats).unwrap_or_default(),
            }
        }
    }

    /// Whether the forwarder's task has ended (stopped, or its consumer is gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the forwarder: the batch being stored is finished and acknowledged first.
    pub async fn stop(self) -> Result<(), NatsError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| NatsError::Consumer("forwarder task".into(), e.to_string()))?
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.stats().fmt(f)
    }
}
