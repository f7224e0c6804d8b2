//! `SeaOrmStore` on every backend: SQLite always (a temporary file), PostgreSQL and
//! MySQL/MariaDB when `AUDIT_TEST_POSTGRES_URL` / `AUDIT_TEST_MYSQL_URL` are set. Each backend
//! runs `audit-core`'s store suite (what every store must do) and the SQL-only cases of
//! `cases.rs`. A skipped backend prints a notice; under `CI=true` a missing URL fails the run
//! instead.
//!
//! Tests run in parallel against one shared database per server, so each case works in
//! tenants of its own (a fresh UUID) instead of dropping tables.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod cases;
mod support;

/// For every case, one test per backend: `sqlite::case`, `postgres::case`, `mysql::case`,
/// beside the store suite's cases in the same modules.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            audit_core::store_suite!(crate::support::sqlite().await);
            audit_core::intent_suite!(crate::support::sqlite().await);
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::support::sqlite().await;
                    crate::cases::$case(&backend).await;
                }
            )*
        }
        mod postgres {
            audit_core::store_suite!({
                let Some(backend) = crate::support::postgres().await else {
                    return;
                };
                backend
            });
            audit_core::intent_suite!({
                let Some(backend) = crate::support::postgres().await else {
                    return;
                };
                backend
            });
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = crate::support::postgres().await {
                        crate::cases::$case(&backend).await;
                    }
                }
            )*
        }
        mod mysql {
            audit_core::store_suite!({
                let Some(backend) = crate::support::mysql().await else {
                    return;
                };
                backend
            });
            audit_core::intent_suite!({
                let Some(backend) = crate::support::mysql().await else {
                    return;
                };
                backend
            });
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = crate::support::mysql().await {
                        crate::cases::$case(&backend).await;
                    }
                }
            )*
        }
    };
}

suite!(
    nul_is_replaced_and_texts_are_cut_to_their_columns,
    insert_entry_skips_a_stored_id,
    free_text_works_under_any_sql_mode,
    every_stored_action_reads_back_as_a_valid_name,
    batches_of_escape_heavy_json_fit_a_statement,
    insert_entries_follow_the_callers_transaction,
    insert_entry_commits_and_rolls_back_with_the_transaction,
    migration_is_idempotent,
    every_write_path_extends_the_chain,
    tampering_breaks_the_chain_where_it_happened,
    an_erased_actor_leaves_the_chain_verifiable,
    a_purged_chain_verifies_from_its_start_and_a_forged_start_does_not,
    entries_stored_before_the_buckets_are_found_after_migrating,
    free_text_finds_every_searched_field,
    entries_stored_before_the_search_text_are_found_after_migrating,
    a_bulk_changes_ids_are_indexed_rows_until_purged,
);

/// One integer pragma read through `db`.
async fn sqlite_pragma(db: &audit_seaorm::sea_orm::DatabaseConnection, pragma: &str) -> i64 {
    use audit_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA {pragma}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// SQLite-only: the store opens files in WAL mode with a busy timeout, memory-mapped.
#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout() {
    use audit_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = support::sqlite().await;
    let db = backend.store.connection();
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    let mode: String = row.try_get_by_index(0).unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sqlite_pragma(db, "busy_timeout").await, 5000);
    // Scans of one tenant read pages all over the file: memory-mapped, with a 64 MiB cache.
    // Checkpoints every 10,000 WAL pages, and a WAL cut back to 64 MiB after one.
    for (pragma, expected) in [
        ("mmap_size", 268_435_456_i64),
        ("cache_size", -65_536),
        ("wal_autocheckpoint", 10_000),
        ("journal_size_limit", 67_108_864),
        // Statement journals (and temporary tables) in memory: 2 is MEMORY.
        ("temp_store", 2),
    ] {
        assert_eq!(sqlite_pragma(db, pragma).await, expected, "PRAGMA {pragma}");
    }
}

/// SQLite-only: `synchronous` follows the chosen durability on every connection the store
/// opens (NORMAL = 1 by default, FULL = 2), and writes go through a connection of their own.
#[tokio::test]
async fn sqlite_durability_sets_synchronous() {
    use audit_core::store::{AuditQuery, AuditStore, Scope};
    use audit_core::{Action, AuditEntry, AuditSink};
    use audit_seaorm::{SeaOrmStore, SqliteDurability, StoreOptions};
    for (options, expected) in [
        (None, 1),
        (Some(StoreOptions::new()), 1),
        (
            Some(StoreOptions::new().sqlite_durability(SqliteDurability::Normal)),
            1,
        ),
        (
            Some(StoreOptions::new().sqlite_durability(SqliteDurability::Full)),
            2,
        ),
    ] {
        let file = support::TempFile::new();
        let store = match options.clone() {
            None => SeaOrmStore::connect(&file.url()).await.unwrap(),
            Some(options) => SeaOrmStore::connect_with(&file.url(), options)
                .await
                .unwrap(),
        };
        // Every connection of the read pool, held at once so that each is a different one.
        let pool = store.connection().get_sqlite_connection_pool();
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut conn = pool.acquire().await.unwrap();
            let level: i64 = audit_seaorm::sea_orm::sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(level, expected, "{options:?}");
            let mode: String = audit_seaorm::sea_orm::sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            held.push(conn);
        }
        // The writer does not need a connection of the read pool.
        let t = support::tenant();
        store
            .record(AuditEntry::builder(Action::Create).tenant(&t).build())
            .await
            .unwrap();
        drop(held);
        let page = store
            .query(&AuditQuery::new(Scope::tenant(&t)))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
    }
}

/// SQLite-only: a user's own migrator can run the migration, and `connect` afterwards (with
/// its own bookkeeping table) finds everything in place.
#[tokio::test]
async fn the_migration_runs_from_a_users_own_migrator() {
    use audit_seaorm::sea_orm::Database;
    use sea_orm_migration::prelude::*;

    struct AppMigrator;
    #[async_trait::async_trait]
    impl MigratorTrait for AppMigrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                Box::new(audit_seaorm::migration::m20260101_000001_create_audit_log::Migration),
                Box::new(audit_seaorm::migration::m20261122_000002_free_text_index::Migration),
                Box::new(audit_seaorm::migration::m20261130_000003_mysql_exact_text::Migration),
            ]
        }
    }

    let file = support::TempFile::new();
    let db = Database::connect(file.url()).await.unwrap();
    AppMigrator::up(&db, None).await.unwrap();
    AppMigrator::up(&db, None).await.unwrap();
    drop(db);
    let store = audit_seaorm::SeaOrmStore::connect(&file.url())
        .await
        .unwrap();
    audit_core::store::suite::reinserting_is_a_no_op(&support::Backend::from_store(
        "sqlite",
        file.url(),
        store,
    ))
    .await;
}

/// MySQL-only: a table created some other way (here from the entity, under a case- and
/// accent-insensitive default collation) is converted by the migration, so one tenant's scope
/// never matches another tenant whose id differs only in case, accents or trailing spaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_made_elsewhere_compares_tenants_exactly_on_mysql() {
    use audit_core::store::{AuditQuery, AuditStore, Scope};
    use audit_core::{Action, AuditEntry, AuditSink};
    use audit_seaorm::sea_orm::{ConnectionTrait, Database, DbBackend, Schema};

    let Some(base) = audit_test_support::server_url(audit_test_support::Backend::Mysql) else {
        return;
    };
    let name = format!("audit_collation_{}", uuid::Uuid::now_v7().simple());
    let server = Database::connect(&base).await.unwrap();
    server
        .execute_unprepared(&format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ))
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let url = format!("{prefix}/{name}");
    let db = Database::connect(&url).await.unwrap();
    let table =
        Schema::new(DbBackend::MySql).create_table_from_entity(audit_seaorm::entity::Entity);
    db.execute(&table).await.unwrap();
    drop(db);

    let store = audit_seaorm::SeaOrmStore::connect(&url).await.unwrap();
    let tenants = ["acme", "ACME", "Acmé", "acme "];
    for tenant in tenants {
        let entry = AuditEntry::builder(Action::Create).tenant(tenant).build();
        store.record(entry).await.unwrap();
    }
    for tenant in tenants {
        let page = store
            .query(&AuditQuery::new(Scope::tenant(tenant)))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "{tenant:?}: {:?}", page.items);
        assert_eq!(page.items[0].tenant_id.as_deref(), Some(tenant));
    }
    server
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}
