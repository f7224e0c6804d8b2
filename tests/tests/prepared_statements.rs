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

    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT \
               (SELECT count(*) FROM pg_prepared_statements \
                 WHERE statement LIKE 'INSERT INTO \"audit_log\"%') AS inserts, \
               (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)::bigint AS bytes, \
               (SELECT count(*) FROM audit_log) AS stored",
        ))
        .await
        .unwrap()
        .unwrap();
    let inserts: i64 = row.try_get("", "inserts").unwrap();
    let bytes: i64 = row.try_get("", "bytes").unwrap();
    let stored: i64 = row.try_get("", "stored").unwrap();
    assert_eq!(stored, (1..=120).chain(990..=1000).sum::<i64>());
    // 131 distinct batch sizes, at most ten statement shapes.
    assert!(inserts <= 10, "{inserts} prepared insert statements");
    // About 20 MiB with the shapes; each size a statement of its own held over 100 MiB.
    let mib = bytes / (1024 * 1024);
    println!("{inserts} prepared insert statements; the session holds {mib} MiB");
    assert!(mib < 48, "the server session holds {mib} MiB");
}
