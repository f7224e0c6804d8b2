//! How [`SeaOrmStore::connect_with`](crate::SeaOrmStore::connect_with) opens its connections:
//! what a committed entry survives. They only concern the pool the store opens itself: with
//! [`SeaOrmStore::new`](crate::SeaOrmStore::new) your own connection settings apply, and an
//! entry written in your transaction ([`record_in`](crate::record_in),
//! [`insert_entry`](crate::insert_entry)) is as durable as that transaction's commit.

use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteSynchronous;

/// How durable a commit is on a SQLite database file opened by
/// [`SeaOrmStore::connect`](crate::SeaOrmStore::connect) or
/// [`connect_with`](crate::SeaOrmStore::connect_with): SQLite's
/// [`synchronous`](https://www.sqlite.org/pragma.html#pragma_synchronous) setting in WAL mode.
///
/// PostgreSQL and MySQL decide this on the server (`synchronous_commit`,
/// `innodb_flush_log_at_trx_commit`), so the setting does not concern them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteDurability {
    /// `synchronous = NORMAL`, the default and what SQLite recommends for WAL mode. A commit is
    /// written to the WAL file but not flushed to disk: a committed entry survives a crash of
    /// the process, while an operating-system crash or a power cut can lose the last commits
    /// (those since the last checkpoint) but never corrupts the database. A commit does not
    /// wait for a disk flush, which makes single-entry commits (`record`) about 1.7 times
    /// faster; batches of 100 and more gain nothing measurable, since their cost is writing the
    /// pages, which checkpoints flush in either mode.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit flushes the WAL to disk before it returns, so a
    /// committed entry survives a power cut too, at the cost of one `fsync` per commit. Choose
    /// it when losing the last commits to a power cut is not acceptable; batches of 100 entries
    /// or more cost the same as with `Normal`.
    Full,
}

impl SqliteDurability {
    /// SQLite's `synchronous` setting for this durability.
    pub(crate) fn synchronous(self) -> SqliteSynchronous {
        match self {
            SqliteDurability::Normal => SqliteSynchronous::Normal,
            SqliteDurability::Full => SqliteSynchronous::Full,
        }
    }
}

/// How [`SeaOrmStore::connect_with`](crate::SeaOrmStore::connect_with) opens its connections;
/// [`Default`] is what [`SeaOrmStore::connect`](crate::SeaOrmStore::connect) uses.
///
/// ```
/// use audit_seaorm::{SqliteDurability, StoreOptions};
///
/// let options = StoreOptions::new().sqlite_durability(SqliteDurability::Full);
/// assert_eq!(options.sqlite_durability, SqliteDurability::Full);
/// assert_eq!(StoreOptions::default().sqlite_durability, SqliteDurability::Normal);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// How durable a commit is on a SQLite file; [`SqliteDurability::Normal`] unless set.
    /// Ignored for in-memory SQLite, PostgreSQL and MySQL.
    pub sqlite_durability: SqliteDurability,
    /// PostgreSQL and MySQL: how long an operation waits for a connection, and for a new
    /// connection to open, before it fails; 1 s unless set. While the server refuses
    /// connections, SQLx tries again with pauses of up to a fifth of this, so it also bounds
    /// how long after the server is back the store notices.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_durability: SqliteDurability::Normal,
            acquire_timeout: Duration::from_secs(1),
        }
    }
}

impl StoreOptions {
    /// The defaults: see each setter.
    pub fn new() -> Self {
        StoreOptions::default()
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`sqlite_durability`](Self::sqlite_durability).
    pub fn sqlite_durability(mut self, durability: SqliteDurability) -> Self {
        self.sqlite_durability = durability;
        self
    }
}
