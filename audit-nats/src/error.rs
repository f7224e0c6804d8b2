//! [`NatsError`]: what can go wrong setting up JetStream delivery.

/// Setting up a [`JetStreamSink`](crate::JetStreamSink) or a [`Forwarder`](crate::Forwarder)
/// failed. (Publishing and forwarding errors are retried; they surface as
/// [`SinkError`](audit_core::SinkError)s and in the forwarder's stats.)
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The settings cannot work (a stream name with a `.`, no replicas, ...).
    #[error("invalid JetStream settings: {0}")]
    Settings(String),
    /// The NATS server could not be reached.
    #[error("cannot connect to NATS at {0}: {1}")]
    Connect(String, String),
    /// The stream could not be found or created (JetStream disabled on the server, a stream
    /// of that name with other subjects, too few servers for the replicas, ...).
    #[error("JetStream stream {0:?}: {1}")]
    Stream(String, String),
    /// The durable consumer could not be created or read.
    #[error("JetStream consumer {0:?}: {1}")]
    Consumer(String, String),
}
