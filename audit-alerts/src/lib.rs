//! Alerts on sensitive audit entries, raised off the request path.
//!
//! In the project's flow, request → layer → entry → sink → store → admin router, this crate
//! sits at the sink: [`AlertingSink`] wraps the sink the layer writes to, and once that sink
//! has stored a batch, hands copies to a bounded queue. A background task runs the [`Rule`]s
//! over them and gives each [`Alert`] to the [`Notifier`]s: a signed [`WebhookNotifier`], a
//! [`TracingNotifier`], or your own. A request never waits for a rule or a notifier, and
//! alerting never fails a write: when the queue is full, entries go unevaluated and are
//! counted ([`AlertStats::dropped`]).
//!
//! A rule matches entries on action, entity type, outcome and actor, and fires per matching
//! entry, or, with a [`Threshold`], once when enough of them for one key (an account, a client
//! address, a tenant) fall within a window of their own times.
//!
//! ```
//! use std::time::Duration;
//! use audit_alerts::{Alerts, Per, Rule, Threshold, TracingNotifier, WebhookNotifier};
//! use audit_core::{Action, AuditEntry, AuditSink, MemoryStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new(); // or audit_seaorm's store, or a JetStream sink
//! let sink = Alerts::builder()
//!     .rule(Rule::new("api-key-revoked").action(Action::Revoke).entity_type("ApiKey"))
//!     .rule(
//!         Rule::new("failed-logins-per-ip")
//!             .action(Action::LoginFailed)
//!             .threshold(Threshold::new(5, Duration::from_secs(600)).per(Per::Ip)),
//!     )
//!     .notifier(TracingNotifier)
//!     .notifier(WebhookNotifier::new("http://127.0.0.1:9000/alerts", "a shared secret")?)
//!     .wrap(store.clone())?;
//! let alerts = sink.alerts().clone(); // counts, and `flush` at shutdown
//! // audit_tower::AuditLayer::new(sink) records through it.
//! sink.record(AuditEntry::builder(Action::Create).entity("ApiKey", "k-8").build()).await?;
//! alerts.flush().await;
//! assert_eq!((alerts.stats().evaluated, alerts.stats().fired), (1, 0));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
//!
//! The webhook's body is the [`Alert`] as JSON, signed with HMAC-SHA256 over
//! `timestamp.body`; [`webhook`] specifies the headers, and [`verify`] checks them.
//!
//! Thresholds count what one process sees: behind several instances, each counts its own
//! entries. Counting across them means evaluating one stream of all entries, such as a
//! JetStream consumer feeding an [`Evaluator`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alert;
mod error;
mod evaluate;
mod notify;
mod rule;
mod sink;
pub mod webhook;

pub use alert::{Alert, Crossed};
pub use error::{AlertError, NotifyError};
pub use evaluate::{DEFAULT_MAX_KEYS, DEFAULT_REMEMBERED_IDS, Evaluator};
pub use notify::{Notifier, TracingNotifier};
pub use rule::{Per, Rule, Threshold};
pub use sink::{
    AlertStats, AlertingSink, Alerts, AlertsBuilder, DEFAULT_CAPACITY, DEFAULT_MAX_IN_FLIGHT,
};
pub use webhook::{WebhookNotifier, WebhookStats, signature, verify};
