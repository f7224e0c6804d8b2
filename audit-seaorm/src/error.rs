//! SeaORM errors as `audit-core` errors.
//!
//! In the flow request → layer → entry → sink → **store** → admin router, a lost connection is
//! reported as "unavailable" (a sink may retry or spool; an HTTP layer may answer 503) and
//! anything else as a backend failure, with the database's error as its source.

use audit_core::{SinkError, StoreError};
use sea_orm::DbErr;

/// A database error as a [`StoreError`].
pub(crate) fn store_error(err: DbErr) -> StoreError {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::Unavailable(err.to_string()),
        other => StoreError::Backend(Box::new(other)),
    }
}

/// A [`StoreError`] met while writing, as a [`SinkError`].
pub(crate) fn sink_error(err: StoreError) -> SinkError {
    match err {
        StoreError::Unavailable(message) => SinkError::Unavailable(message),
        other => SinkError::Backend(Box::new(other)),
    }
}
