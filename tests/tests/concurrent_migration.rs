//! Several replicas of a service starting at once against one empty database: every
//! `SeaOrmStore::connect` succeeds, the schema is created once, and each replica can write.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use audit_core::{Action, AuditEntry, AuditSink};

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_seaorm::SeaOrmStore;
use audit_seaorm::sea_orm::{ConnectionTrait, Statement};
use audit_tests::{Backend, fresh_db};

/// How many replicas start at the same moment.
const REPLICAS: usize = 6;

async fn replicas_migrate_an_empty_database_at_once(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    replicas_migrate(backend, &db.url).await;
}

/// Starts the replicas on the database at `url`, then checks what they left.
async fn replicas_migrate(backend: Backend, url: &str) {
    // Each replica connects (and so migrates) on a thread and runtime of its own, all released
    // together, as separate processes would be.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(REPLICAS));
    let threads: Vec<_> = (0..REPLICAS)
        .map(|replica| {
            let (url, barrier) = (url.to_owned(), barrier.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                barrier.wait();
                runtime.block_on(async move {
                    let store = SeaOrmStore::connect(&url)
                        .await
                        .unwrap_or_else(|e| panic!("{backend:?} replica {replica}: {e}"));
                    store
                        .record(
                            AuditEntry::builder(Action::Create)
                                .tenant("acme")
                                .entity("Replica", replica.to_string())
                                .build(),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("{backend:?} replica {replica}: {e}"));
                })
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let store = SeaOrmStore::connect(url).await.unwrap();
    let page = store
        .query(&AuditQuery::new(Scope::tenant("acme")))
        .await
        .unwrap();
    assert_eq!(
        page.items.len(),
        REPLICAS,
        "{backend:?}: one entry per replica"
    );
    // Each migration is booked once.
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            store.connection().get_database_backend(),
            "SELECT COUNT(*) AS n FROM audit_seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap();
    let booked: i64 = row.try_get("", "n").unwrap();
    let migrations =
        <audit_seaorm::migration::Migrator as sea_orm_migration::MigratorTrait>::migrations();
    assert_eq!(
        booked,
        migrations.len() as i64,
        "{backend:?}: migrations booked"
    );
}

#[tokio::test]
async fn sqlite_replicas_migrate_at_once() {
    replicas_migrate_an_empty_database_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_replicas_migrate_at_once() {
    replicas_migrate_an_empty_database_at_once(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_replicas_migrate_at_once() {
    replicas_migrate_an_empty_database_at_once(Backend::Mysql).await;
}

/// A server whose transactions default to REPEATABLE READ: a replica that waited for the lock
/// must still see what the first one created.
#[tokio::test]
async fn postgres_replicas_migrate_at_once_under_repeatable_read() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let conn = audit_seaorm::sea_orm::Database::connect(&db.url)
        .await
        .unwrap();
    let name: String = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT current_database()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    conn.execute_unprepared(&format!(
        "ALTER DATABASE \"{name}\" SET default_transaction_isolation TO 'repeatable read'"
    ))
    .await
    .unwrap();
    conn.close().await.unwrap();
    replicas_migrate(Backend::Postgres, &db.url).await;
}
