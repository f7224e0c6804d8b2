//! Audit logging for tower and axum services: one layer records who changed what.
//!
//! The project's flow is request → layer → entry → sink → store → admin router. This crate is
//! both ends of it:
//!
//! - [`AuditLayer`] wraps an axum `Router` (with `Router::layer`) and turns every mutating
//!   request on a matched route into an [`AuditEntry`](audit_core::AuditEntry): action and
//!   entity from the route ([`RouteRule`] to override), actor, tenant and API key from
//!   [resolvers](ResolveActor), client address from [`ClientIpConfig`]. It writes the entry to
//!   its sink before the response, or through a [`Buffered`] queue.
//! - [`AuditContext`] lets a handler add what only it knows: the entity's name, a summary, the
//!   before and after values.
//! - [`admin`] (feature `admin`, on by default) is the reading end: a router that lists,
//!   filters, exports and shows the log to administrators, within the scope a guard grants.
//!
//! ```
//! use audit_core::MemoryStore;
//! use audit_tower::{AuditContext, AuditLayer};
//! use axum::{Router, routing::post};
//!
//! async fn revoke(audit: AuditContext) -> &'static str {
//!     audit.entity_name("CI deploy key").details("revoked after the incident");
//!     "revoked"
//! }
//!
//! let store = MemoryStore::new();
//! let app: Router = Router::new()
//!     .route("/api-keys/{id}/revoke", post(revoke))
//!     .layer(AuditLayer::new(store.clone()));
//! ```
//!
//! Where the layer goes: add it with `Router::layer` so it runs after routing (it needs the
//! matched route). On another tower stack, the route comes from a [`RouteTemplate`] the
//! service puts into the extensions, or from the templates of the layer's [`RouteRule`]s; a
//! mutating request with neither is not recorded, and warned about once per shape. gRPC
//! services (tonic) take [`AuditLayer::grpc`], which reads each call's `grpc-status` from its
//! response's trailers; the `tonic` feature reads the client address from tonic's connection
//! info. Authentication can run outside it (put an [`Actor`](audit_core::Actor) into
//! the request extensions) or inside it (put one into the response extensions); both are read.
//!
//! # Trace ids
//!
//! An entry carries the W3C trace id of its request
//! ([`AuditEntry::trace_id`](audit_core::AuditEntry::trace_id)), from a valid `traceparent`
//! header (W3C Trace Context; a malformed or repeated one gives none, never an error). With
//! the `opentelemetry` feature, a request without the header takes the trace id of the current
//! `tracing` span's OpenTelemetry context (`tracing-opentelemetry`), when it has a valid one.
//! Background jobs started through [`AuditContext::job_scope`] carry it too, and the admin
//! router's `trace_id` filter finds a trace's entries.
//!
//! # Health and metrics
//!
//! [`AuditLayer::stats`] returns a [`DeliveryStats`]; the admin router serves the same as
//! `GET /health`. The layer also reports through the [`metrics`] facade, so a service's
//! Prometheus (or other) exporter shows them with no wiring:
//!
//! | name | kind | what |
//! |---|---|---|
//! | `audit_entries_written_total` | counter | entries stored |
//! | `audit_write_failures_total` | counter | failed attempts to store a batch (each is retried) |
//! | `audit_entries_handed_off_total` | counter | synchronous responses that stopped waiting for a failing sink |
//! | `audit_requests_refused_total` | counter | requests refused with `503` before their handler: every queue slot held, or the intent not stored |
//! | `audit_entries_queued` | gauge | entries not yet stored |
//! | `audit_oldest_queued_seconds` | gauge | age of the oldest entry being written |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "admin")]
pub mod admin;
mod body;
mod capture;
mod client_ip;
mod config;
mod context;
mod delivery;
mod extract;
mod failure;
mod future;
mod grpc;
mod grpc_layer;
mod layer;
#[cfg(feature = "opentelemetry")]
mod otel;
mod resolve;
mod route;
mod service;
mod template;
mod transaction;

pub use body::AuditBody;
pub use client_ip::{ClientIpConfig, ClientIpSource};
pub use context::AuditContext;
pub use delivery::{Buffered, DeliveryStats, Synchronous};
pub use extract::MissingAuditContext;
pub use failure::{FailureReason, MAX_CODE_CHARS, MAX_MESSAGE_CHARS};
pub use future::ResponseFuture;
pub use grpc::GRPC_READ_VERBS;
pub use grpc_layer::{GrpcAuditLayer, GrpcAuditService, GrpcResponseFuture};
pub use layer::AuditLayer;
pub use resolve::{ResolveActor, ResolveApiKey, ResolveTenant};
pub use route::{DEFAULT_VERBS, RouteRule};
pub use service::AuditService;
pub use template::RouteTemplate;
pub use transaction::{Transaction, TransactionLayer, TransactionRejection, TransactionService};
