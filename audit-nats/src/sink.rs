//! [`JetStreamSink`]: entries published to a JetStream stream, acknowledged before the writer
//! reports them stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_trait::async_trait;
use audit_core::{AuditEntry, AuditSink, SinkError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use crate::error::NatsError;
use crate::metric;

/// The stream the entries go into, and how it is created when it does not exist.
///
/// An existing stream is used as it is: these settings apply only when
/// [`JetStreamSink::new`] (or [`Forwarder::new`](crate::Forwarder::new)) creates it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    /// The stream's name. Default `AUDIT`.
    pub name: String,
    /// The first token of every entry's subject: entries go to
    /// `{prefix}.{tenant}.{entity type}`, and the stream takes `{prefix}.>`. Default `audit`.
    pub subject_prefix: String,
    /// Copies kept on different servers of a cluster (1 to 5). Default 1; 3 on a cluster
    /// survives the loss of one server.
    pub replicas: usize,
    /// When JetStream deletes entries. Default [`RetentionPolicy::Limits`]: kept until
    /// `max_age` or `max_bytes`, whoever reads them, so a forwarder, a SIEM bridge and an alert
    /// rule can each read every entry. [`RetentionPolicy::WorkQueue`] deletes an entry once
    /// one consumer acknowledged it (then only the forwarder may read the stream).
    pub retention: RetentionPolicy,
    /// How long entries are kept in the stream. Default 7 days: the forwarders' store is the
    /// log; the stream is the way to it (and a week of slack when the store is down).
    pub max_age: Duration,
    /// The stream's size limit in bytes; `-1` (the default) for none.
    pub max_bytes: i64,
    /// How long JetStream remembers an entry id to drop a second publish of it. Default
    /// 2 minutes (JetStream's own default); a publish retried later than that is stored twice
    /// in the stream, and the forwarder's store still keeps it once.
    pub duplicate_window: Duration,
    /// Files (default) or memory.
    pub storage: StorageType,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: "AUDIT".to_owned(),
            subject_prefix: "audit".to_owned(),
            replicas: 1,
            retention: RetentionPolicy::Limits,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(120),
            storage: StorageType::File,
        }
    }
}

impl StreamSettings {
    /// The stream's configuration when it is created.
    pub fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            num_replicas: self.replicas,
            retention: self.retention,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            duplicate_window: self.duplicate_window,
            storage: self.storage,
            description: Some("tower-audit entries, one JSON message per entry".to_owned()),
            ..Default::default()
        }
    }

    /// The subject of `entry`: `{prefix}.{tenant}.{entity type}`. Each token is the value with
    /// every byte other than ASCII letters, digits, `-` and `_` percent-encoded (so a `.` in a
    /// tenant id cannot add a token); an entry without a tenant (or entity type) has `~` as that token.
    ///
    /// ```
    /// use audit_core::{Action, AuditEntry};
    /// use audit_nats::StreamSettings;
    ///
    /// let entry = AuditEntry::builder(Action::Update)
    ///     .entity_type("ConnectionProfile")
    ///     .tenant("acme.eu")
    ///     .build();
    /// let subject = StreamSettings::default().subject(&entry);
    /// assert_eq!(subject, "audit.acme%2Eeu.ConnectionProfile");
    /// ```
    pub fn subject(&self, entry: &AuditEntry) -> String {
        let tenant = match entry.tenant_id.as_deref() {
            None | Some("") => "~".into(),
            Some(tenant) => token(tenant),
        };
        let entity = match entry.entity_type.as_deref() {
            None | Some("") => "~".into(),
            Some(entity) => token(entity),
        };
        format!("{}.{tenant}.{entity}", self.subject_prefix)
    }

    /// Checks what would make every publish fail.
    fn validate(&self) -> Result<(), NatsError> {
        if self.name.is_empty() || self.name.contains(['.', '*', '>', ' ', '/', '\\']) {
            return Err(NatsError::Settings(format!(
                "stream name {:?} must be non-empty, without `.`, `*`, `>`, `/`, `\\` or spaces",
                self.name
            )));
        }
        let prefix_ok = !self.subject_prefix.is_empty()
            && self
                .subject_prefix
                .split('.')
                .all(|t| !t.is_empty() && !t.contains(['*', '>', ' ']));
        if !prefix_ok {
            return Err(NatsError::Settings(format!(
                "subject prefix {:?} must be dot-separated tokens without wildcards or spaces",
                self.subject_prefix
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(NatsError::Settings(format!(
                "replicas must be 1 to 5, not {}",
                self.replicas
            )));
        }
        Ok(())
    }
}

/// Bytes kept as they are in a subject token.
const TOKEN: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

fn token(value: &str) -> String {
    utf8_percent_encode(value, TOKEN).to_string()
}

/// Publishes each entry to JetStream as JSON, with the entry id as `Nats-Msg-Id`, and returns
/// once JetStream has acknowledged every entry of the call.
///
/// Used as the audit layer's sink, a response waits for its entry's acknowledgement (one round
/// trip to the NATS server, which has stored the entry on its replicas); a batch's entries are
/// all published before any acknowledgement is awaited, so the entries of concurrent requests
/// share the round trip. A retried entry (same id) within the stream's duplicate window is
/// dropped by JetStream. Publishing does not need the database: a [`Forwarder`](crate::Forwarder)
/// writes the stream's entries into the store.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use audit_nats::{JetStreamSink, StreamSettings};
///
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let sink = JetStreamSink::new(async_nats::jetstream::new(client), StreamSettings::default()).await?;
/// // audit_tower::AuditLayer::new(sink) ...
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JetStreamSink {
    context: Context,
    settings: Arc<StreamSettings>,
    counters: Arc<SinkCounters>,
}

#[derive(Default)]
struct SinkCounters {
    published: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
}

/// What a [`JetStreamSink`] has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Entries JetStream acknowledged as stored.
    pub published: u64,
    /// Of those, entries JetStream had already (a retried publish, dropped).
    pub duplicates: u64,
    /// Calls that failed (no acknowledgement in time, no connection, stream missing).
    pub failures: u64,
}

impl std::fmt::Debug for JetStreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamSink")
            .field("stream", &self.settings.name)
            .field("subject_prefix", &self.settings.subject_prefix)
            .finish_non_exhaustive()
    }
}

impl JetStreamSink {
    /// A sink publishing into the stream of `settings`, created if it does not exist.
    pub async fn new(context: Context, settings: StreamSettings) -> Result<Self, NatsError> {
        ensure_stream(&context, &settings).await?;
        Ok(JetStreamSink {
            context,
            settings: Arc::new(settings),
            counters: Arc::default(),
        })
    }

    /// Connects to the NATS server at `url` (a comma-separated list for a cluster; with the
    /// client's defaults: reconnecting forever) and makes a sink for the stream of `settings`.
    pub async fn connect(url: &str, settings: StreamSettings) -> Result<Self, NatsError> {
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        let client = async_nats::connect(servers)
            .await
            .map_err(|e| NatsError::Connect(url.to_owned(), e.to_string()))?;
        Self::new(jetstream::new(client), settings).await
    }

    /// The stream's settings.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// What this sink (and its clones) published.
    pub fn stats(&self) -> SinkStats {
        SinkStats {
            published: self.counters.published.load(Ordering::Relaxed),
            duplicates: self.counters.duplicates.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
        }
    }

    async fn publish(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        let (mut published, mut duplicates) = (0, 0);
        // Every publish of a chunk goes out before its first acknowledgement is awaited. A
        // chunk stays well under the client's limit of unacknowledged publishes (5,000 by
        // default), which would otherwise wait for acknowledgements nobody awaits yet.
        for chunk in entries.chunks(PIPELINE) {
            let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(chunk.len());
            for entry in chunk {
                let payload =
                    serde_json::to_vec(entry).map_err(|e| SinkError::Backend(e.into()))?;
                let message = PublishMessage::build()
                    .payload(payload.into())
                    .message_id(entry.id.to_string());
                let ack = self
                    .context
                    .send_publish(self.settings.subject(entry), message)
                    .await
                    .map_err(unavailable)?;
                acks.push(ack);
            }
            for ack in acks {
                let ack = ack.await.map_err(unavailable)?;
                published += 1;
                duplicates += u64::from(ack.duplicate);
            }
        }
        self.counters
            .published
            .fetch_add(published, Ordering::Relaxed);
        self.counters
            .duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
        metrics::counter!(metric::PUBLISHED).increment(published);
        metrics::counter!(metric::DUPLICATES).increment(duplicates);
        Ok(())
    }
}

/// Publishes in flight at most, per call.
const PIPELINE: usize = 1_000;

fn unavailable(error: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(format!("JetStream: {error}"))
}

/// Gets the stream, creating it from `settings` when it does not exist.
pub(crate) async fn ensure_stream(
    context: &Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, NatsError> {
    settings.validate()?;
    context
        .get_or_create_stream(settings.config())
        .await
        .map_err(|e| NatsError::Stream(settings.name.clone(), e.to_string()))
}

#[async_trait]
impl AuditSink for JetStreamSink {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.record_slice(std::slice::from_ref(&entry)).await
    }

    async fn record_batch(&self, entries: Vec<AuditEntry>) -> Result<(), SinkError> {
        self.record_slice(&entries).await
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        let result = self.publish(entries).await;
        if result.is_err() {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(metric::PUBLISH_FAILURES).increment(1);
        }
        result
    }
}
