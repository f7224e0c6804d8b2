//! The vocabulary of tower-audit: what an audit entry is, and where entries go.
//!
//! The flow of the project is request → layer → entry → sink → store → admin router. This crate
//! owns the middle of it and knows nothing of HTTP or databases:
//!
//! - [`AuditEntry`] (with [`Action`], [`ActorKind`], [`Outcome`], [`Change`]) is the record;
//!   [`AuditEntry::builder`] makes one outside HTTP.
//! - [`diff`] turns before/after values into field-level [`Change`]s and [`Redactor`] keeps
//!   secrets out of them; [`Limits`] bounds every field.
//! - [`AuditSink`] receives entries; [`MemorySink`] and [`TracingSink`] are ready-made sinks.
//!   [`MemorySink`] is also an [`AuditStore`], for tests and trials of the admin router.
//!
//! `audit-tower` makes entries from requests; `audit-seaorm` stores and queries them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod bound;
mod change;
mod entry;
mod memory_store;
mod redact;
mod sink;
pub mod store;

pub use action::{Action, MAX_ACTION_LEN, ParseActionError};
pub use bound::{Limits, TRUNCATION_MARKER, json_str_len, json_text_len, truncate};
pub use change::{Change, diff};
pub use entry::{
    Actor, ActorKind, ApiKeyRef, AuditEntry, AuditEntryBuilder, Outcome, ParseEnumError, TenantRef,
    now_micros,
};
pub use redact::{DEFAULT_SENSITIVE, REDACTED, Redactor};
pub use sink::{AuditSink, MemorySink, SinkError, TracingSink};
pub use store::{AuditQuery, AuditStore, Cursor, Order, Page, Scope, StoreError};
