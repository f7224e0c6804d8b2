//! [`SeaOrmTransactions`]: SeaORM transactions for `audit_tower::TransactionLayer`, committed
//! with the request's audit entry in them.

use async_trait::async_trait;
use audit_core::{AuditEntry, SinkError, Transactions};
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::error::{sink_error, store_error};
use crate::write::insert_entry;

/// Opens a transaction on a SeaORM connection for each request that asks for one, and commits
/// it with the request's audit entry inserted into `audit_log` through it: the change and its
/// entry are stored together or not at all. The connection must reach the database that holds
/// the `audit_log` table.
///
/// ```no_run
/// use audit_seaorm::{SeaOrmStore, SeaOrmTransactions};
/// use audit_seaorm::sea_orm::{ConnectionTrait, DatabaseTransaction};
/// use audit_tower::{AuditLayer, Transaction, TransactionLayer};
/// use axum::{Router, routing::post};
///
/// async fn revoke(txn: Transaction<DatabaseTransaction>) -> Result<&'static str, String> {
///     txn.execute_unprepared("UPDATE api_keys SET revoked = TRUE WHERE id = 'k-1'")
///         .await
///         .map_err(|e| e.to_string())?;
///     Ok("revoked") // the layer commits the update and its entry together
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SeaOrmStore::connect("sqlite://app.db?mode=rwc").await?;
/// let app: Router = Router::new()
///     .route("/api-keys/{id}/revoke", post(revoke))
///     .layer(TransactionLayer::new(SeaOrmTransactions::new(store.connection().clone())))
///     .layer(AuditLayer::new(store));
/// # let _ = app;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SeaOrmTransactions {
    db: DatabaseConnection,
}

impl SeaOrmTransactions {
    /// Transactions on `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        SeaOrmTransactions { db }
    }
}

#[async_trait]
impl Transactions for SeaOrmTransactions {
    type Transaction = DatabaseTransaction;

    /// On SQLite the transaction begins `IMMEDIATE`: it will write (the entry, at least), and a
    /// deferred one that reads first cannot take the write lock once another connection has
    /// written since its read; SQLite answers "database is locked" at once, without waiting.
    /// An immediate one waits for the lock up front, in the busy timeout.
    async fn begin(&self) -> Result<DatabaseTransaction, SinkError> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(|e| sink_error(store_error(e)))
    }

    async fn commit(
        &self,
        transaction: DatabaseTransaction,
        entry: Option<&AuditEntry>,
    ) -> Result<(), SinkError> {
        if let Some(entry) = entry {
            insert_entry(&transaction, entry)
                .await
                .map_err(sink_error)?;
        }
        transaction
            .commit()
            .await
            .map_err(|e| sink_error(store_error(e)))
    }

    async fn rollback(&self, transaction: DatabaseTransaction) -> Result<(), SinkError> {
        transaction
            .rollback()
            .await
            .map_err(|e| sink_error(store_error(e)))
    }
}
