//! SeaORM errors as `audit-core` errors: a lost connection is "unavailable" (a sink may retry;
//! an HTTP layer may answer 503), anything else a backend failure, with the database's error as
//! its source.

use audit_core::SinkError;
use audit_core::store::StoreError;
use sea_orm::{DbErr, RuntimeErr, sqlx};

/// A database error as a [`StoreError`].
pub(crate) fn store_error(err: DbErr) -> StoreError {
    if connection_lost(&err) {
        return StoreError::Unavailable(err.to_string());
    }
    StoreError::Backend(Box::new(err))
}

/// Whether `err` says the database could not be reached or went away, rather than that it
/// refused a statement: no connection to be had, a connection reset or closed mid-statement,
/// or a server shutting down.
fn connection_lost(err: &DbErr) -> bool {
    if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
        return true;
    }
    let Some(sqlx_error) = sqlx_error(err) else {
        return false;
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // The SQLSTATE: class 08 is a connection exception on every backend (MySQL reports a
        // server shutting down as 08S01); 57P01–57P03 are PostgreSQL shutting down or
        // restarting.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The SQLx error under a connection, statement or query failure, if SQLx raised it.
pub(crate) fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    let (DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime)) = err else {
        return None;
    };
    match runtime {
        RuntimeErr::SqlxError(error) => Some(error.as_ref()),
        _ => None,
    }
}

/// A [`StoreError`] met while writing, as a [`SinkError`].
pub(crate) fn sink_error(err: StoreError) -> SinkError {
    match err {
        StoreError::Unavailable(message) => SinkError::Unavailable(message),
        other => SinkError::Backend(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn exec(error: sqlx::Error) -> DbErr {
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error)))
    }

    #[test]
    fn a_lost_connection_is_unavailable_and_a_refused_statement_is_not() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for lost in [
            exec(sqlx::Error::Io(reset)),
            exec(sqlx::Error::PoolTimedOut),
            exec(sqlx::Error::PoolClosed),
            exec(sqlx::Error::WorkerCrashed),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
        ] {
            assert!(
                matches!(store_error(lost), StoreError::Unavailable(_)),
                "should be unavailable"
            );
        }
        for refused in [
            exec(sqlx::Error::Protocol("bad packet".into())),
            exec(sqlx::Error::RowNotFound),
            DbErr::Exec(RuntimeErr::Internal("syntax".into())),
            DbErr::Custom("other".into()),
        ] {
            assert!(
                matches!(store_error(refused), StoreError::Backend(_)),
                "should be a backend error"
            );
        }
    }
}
