//! Delivery of tower-audit entries through NATS JetStream, for services on several machines.
//!
//! The project's flow is request → layer → entry → sink → store → admin router. This crate
//! puts JetStream between the sink and the store:
//!
//! - [`JetStreamSink`] is the audit layer's sink: each entry is published as JSON to
//!   `audit.{tenant}.{entity type}` with its id as `Nats-Msg-Id` (JetStream drops a retried
//!   duplicate), and a response goes out once JetStream acknowledged its entry: a service
//!   killed right after answering has lost nothing, and no request waits for the database.
//! - [`Forwarder`] is a durable pull consumer that writes the stream into any
//!   [`AuditSink`](audit_core::AuditSink) (the SQL store), acknowledging entries only once
//!   stored. Several forwarders share the work; a restarted one resumes where it stopped.
//! - Any number of service instances publish into one stream, and other consumers (a SIEM
//!   bridge, alerting) read the same subjects with consumers of their own.
//!
//! ```no_run
//! # async fn run(store: audit_core::MemoryStore) -> Result<(), Box<dyn std::error::Error>> {
//! use audit_nats::{Forwarder, ForwarderSettings, JetStreamSink, StreamSettings};
//!
//! let jetstream = async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await?);
//! let stream = StreamSettings { replicas: 3, ..StreamSettings::default() };
//! // Every instance: the layer publishes.
//! let sink = JetStreamSink::new(jetstream.clone(), stream.clone()).await?;
//! // audit_tower::AuditLayer::new(sink) ...
//! // One or more instances: forwarders write the stream into the store.
//! let forwarder = Forwarder::new(&jetstream, &stream, store, ForwarderSettings::default()).await?;
//! let running = forwarder.spawn();
//! # running.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Metrics
//!
//! Through the [`metrics`] facade, as `audit-tower`'s:
//!
//! | name | kind | what |
//! |---|---|---|
//! | `audit_jetstream_published_total` | counter | entries JetStream acknowledged |
//! | `audit_jetstream_duplicates_total` | counter | of those, ids it already had |
//! | `audit_jetstream_publish_failures_total` | counter | publishes that failed (retried by the layer) |
//! | `audit_forwarder_entries_total` | counter | entries stored and acknowledged by forwarders |
//! | `audit_forwarder_failures_total` | counter | failed attempts to store a batch (retried) |
//! | `audit_forwarder_rejected_total` | counter | messages that were not audit entries |
//! | `audit_forwarder_lag` | gauge | entries in the stream not yet delivered to the forwarder |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod forwarder;
mod sink;

pub use error::NatsError;
pub use forwarder::{Forwarder, ForwarderSettings, ForwarderStats, RunningForwarder};
pub use sink::{JetStreamSink, SinkStats, StreamSettings};

/// The metric names.
pub mod metric {
    /// Counter: entries JetStream acknowledged.
    pub const PUBLISHED: &str = "audit_jetstream_published_total";
    /// Counter: acknowledged entries JetStream already had.
    pub const DUPLICATES: &str = "audit_jetstream_duplicates_total";
    /// Counter: publishes that failed.
    pub const PUBLISH_FAILURES: &str = "audit_jetstream_publish_failures_total";
    /// Counter: entries stored and acknowledged by forwarders.
    pub const FORWARDED: &str = "audit_forwarder_entries_total";
    /// Counter: failed attempts to store a forwarded batch.
    pub const FORWARDER_FAILURES: &str = "audit_forwarder_failures_total";
    /// Counter: messages that were not audit entries.
    pub const FORWARDER_REJECTED: &str = "audit_forwarder_rejected_total";
    /// Gauge: entries not yet delivered to the forwarder.
    pub const FORWARDER_LAG: &str = "audit_forwarder_lag";
}
