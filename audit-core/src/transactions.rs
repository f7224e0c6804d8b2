//! [`Transactions`]: a database that opens a transaction per request, in which the request's
//! change and its audit entry commit together.

use async_trait::async_trait;

use crate::{AuditEntry, SinkError};

/// Opens the transactions that `audit_tower::TransactionLayer` hands to handlers, and commits
/// each with the request's audit entry in it, so the change and its entry are stored together
/// or not at all, whatever happens to the process.
///
/// `audit-seaorm` implements it for a SeaORM connection (`SeaOrmTransactions`); implement it
/// for another database the same way: `begin` opens a transaction, `commit` inserts the entry
/// through it (skipping an id already stored, as any sink does) and commits.
#[async_trait]
pub trait Transactions: Send + Sync + 'static {
    /// The transaction a handler changes data through.
    type Transaction: Send + Sync + 'static;

    /// Opens a transaction.
    async fn begin(&self) -> Result<Self::Transaction, SinkError>;

    /// Inserts `entry` (when there is one) through `transaction`, then commits it.
    async fn commit(
        &self,
        transaction: Self::Transaction,
        entry: Option<&AuditEntry>,
    ) -> Result<(), SinkError>;

    /// Rolls `transaction` back.
    async fn rollback(&self, transaction: Self::Transaction) -> Result<(), SinkError>;
}
