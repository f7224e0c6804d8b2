//! Batches of every size keep a bounded number of prepared insert statements on a connection:
//! SQLx prepares and caches each distinct SQL text (100 per connection), and on PostgreSQL a
//! prepared 1,000-row insert holds about 9 MiB of the server's memory.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use audit_core::{Action, AuditEntry, AuditSink};
use audit_seaorm::SeaOrmStore;
use audit_seaorm::sea_orm::{ConnectOptions, ConnectionTrait, Database, Statement};
use audit_tests::{Backend, fresh_db};

#[tokio::test]
async fn batches_of_every_size_keep_few_prepared_statements_on_postgres() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    // One connection, so every batch goes through the session the assertions read.
    let mut options = ConnectOptions::new(db.url.clone());
    options.max_connections(1).min_connections(1);
    let conn = Database::connect(options).await.unwrap();
    let store = SeaOrmStore::new(conn.clone());
    store.migrate().await.unwrap();

    for size in (1..=120).chain(990..=1000) {
        let batch: Vec<AuditEntry> = (0..size)
            .map(|i| {
                AuditEntry::builder(Action::Create)
                    .tenant("acme")
                    .entity("Widget", i.to_string())
                    .build()
            })
            .collect();
        store.record_batch(batch).await.unwrap();
    }

    let one = |sql: &'static str| {
        let conn = conn.clone();
        async move {
            let row = conn
                .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let stored = one("SELECT count(*) FROM audit_log").await;
    assert_eq!(stored, (1..=120).chain(990..=1000).sum::<i64>());
    // 131 distinct batch sizes, nine statement sizes: 1, 2, 5, 10, 20, 50 and 100 rows (the
    // padded last rows of a batch), 900 (batches of 990–999) and 1,000.
    let inserts = one("SELECT count(*) FROM pg_prepared_statements \
         WHERE statement LIKE 'INSERT INTO \"audit_log\"%'")
    .await;
    assert_eq!(inserts, 9, "prepared insert statements");
    // The session's memory, where the server lets this role read it (PostgreSQL 14 on, as a
    // superuser or with pg_read_all_stats): about 30 MiB with the fixed sizes, while each size a
    // statement of its own held over 100 MiB.
    let readable = one(
        "SELECT (current_setting('server_version_num')::int >= 140000 \
           AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
             OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')))::int::bigint",
    )
    .await;
    if readable == 1 {
        let bytes = one("SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts").await;
        let mib = bytes / (1024 * 1024);
        println!("{inserts} prepared insert statements; the session holds {mib} MiB");
        assert!(mib < 48, "the server session holds {mib} MiB");
    }
}
