//! The vocabulary of tower-audit: what an audit entry is, and where entries go.
//!
//! The project's flow is request → layer → entry → sink → store → admin router. This crate
//! owns the middle of it and knows nothing of HTTP or databases:
//!
//! - [`AuditEntry`] (with [`Action`], [`ActorKind`], [`Outcome`], [`Change`]) is the record;
//!   [`AuditEntry::builder`] makes one outside HTTP.
//! - [`diff`] turns before/after values into field-level [`Change`]s and [`Redactor`] keeps
//!   secrets out of them; [`Limits`] bounds every field.
//! - [`AuditSink`] receives entries; [`store::AuditStore`] answers queries over them.
//!   [`MemoryStore`] is both, for tests and trials; [`TracingSink`] logs entries.
//! - [`BulkChange`] records a change of many objects as one entry that each object's history
//!   still finds.
//! - [`scope`] carries who started a background job into the entries the job makes.
//! - [`trace`] reads the W3C trace id that links an entry to its request's trace.
//! - [`testing`] asserts, in a service's own tests, the entries its requests left in a
//!   [`MemoryStore`].
//!
//! `audit-tower` makes entries from requests and serves them to administrators;
//! `audit-seaorm` stores and queries them in a SQL database.
//!
//! Features: `schema` derives JSON Schemas for the entry and the page (`schemars`), for OpenAPI
//! documents; `test-suite` ships the store conformance suite ([`store::suite`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod bound;
mod bulk;
pub mod chain;
mod change;
pub mod checkpoint;
mod entry;
mod fields;
mod health;
mod intents;
mod memory;
mod parse;
mod redact;
pub mod retention;
pub mod scope;
mod sink;
pub mod store;
pub mod testing;
pub mod trace;
mod transactions;

pub use action::{Action, MAX_ACTION_LEN};
pub use bound::{Limits, TRUNCATION_MARKER};
pub use bulk::{BULK_KEY, BulkChange};
pub use change::{Change, diff};
pub use entry::{Actor, ActorKind, ApiKeyRef, AuditEntry, AuditEntryBuilder, Outcome, TenantRef};
pub use health::PartHealth;
pub use intents::IntentStore;
pub use memory::MemoryStore;
pub use parse::ParseError;
pub use redact::{DEFAULT_SENSITIVE, REDACTED, Redactor};
pub use sink::{AuditSink, SinkError, TracingSink};
pub use transactions::Transactions;
