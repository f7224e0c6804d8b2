//! The cases only a SQL store has: column capacities, its own transactions, migrations, SQL
//! modes and statement sizes. What every store must do is `audit-core`'s store suite.

use audit_core::store::{AuditQuery, AuditStore, Scope};
use audit_core::{Action, AuditEntry, AuditSink, Change};
use audit_seaorm::sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Statement,
    TransactionTrait,
};
use audit_seaorm::{entity, insert_entry};
use futures_util::StreamExt;
use serde_json::json;

use crate::support::{Backend, ids, tenant};

/// How many rows of `tenant` are stored, counted directly in the table.
async fn stored_rows(b: &Backend, tenant: &str) -> u64 {
    entity::Entity::find()
        .filter(entity::Column::TenantId.eq(tenant))
        .count(b.store.connection())
        .await
        .unwrap()
}

/// NUL, which PostgreSQL refuses in text and JSON, is replaced; texts longer than their column
/// are cut to it with the truncation marker.
pub async fn nul_is_replaced_and_texts_are_cut_to_their_columns(b: &Backend) {
    let t = tenant();
    let mut entry = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .metadata("note\0", "a\0b")
        .changes(vec![Change::new("x", json!("\0"), json!(null))])
        .build();
    entry.user_agent = Some("evil\0agent".into());
    entry.entity_name = Some("n".repeat(1000));
    entry.actor_id = Some("é".repeat(300));
    b.store.record(entry.clone()).await.unwrap();
    let stored = b
        .store
        .get(&Scope::tenant(&t), entry.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.user_agent.as_deref(), Some("evil\u{FFFD}agent"));
    assert_eq!(stored.metadata["note\u{FFFD}"], json!("a\u{FFFD}b"));
    assert_eq!(stored.changes[0].old, json!("\u{FFFD}"));
    let name = stored.entity_name.unwrap();
    assert!(name.len() <= 255 && name.ends_with(audit_core::TRUNCATION_MARKER));
    assert!(stored.actor_id.unwrap().len() <= 255);
}

/// `insert_entry` skips an id the table holds, like the store's own writes.
pub async fn insert_entry_skips_a_stored_id(b: &Backend) {
    let t = tenant();
    let first = AuditEntry::builder(Action::Create).tenant(&t).build();
    b.store.record(first.clone()).await.unwrap();
    insert_entry(b.store.connection(), &first).await.unwrap();
    let mut altered = first.clone();
    altered.details = Some("tampered".into());
    insert_entry(b.store.connection(), &altered).await.unwrap();
    assert_eq!(stored_rows(b, &t).await, 1, "{}", b.name);
    let stored = b.store.get(&Scope::tenant(&t), first.id).await.unwrap();
    assert_eq!(stored, Some(first));
}

/// Free text works whatever the session's SQL mode: MySQL's `NO_BACKSLASH_ESCAPES` changes what
/// `'\\'` means, so the pattern's escape character must not be a backslash.
pub async fn free_text_works_under_any_sql_mode(b: &Backend) {
    if b.store.connection().get_database_backend() != DbBackend::MySql {
        return;
    }
    let mut options = audit_seaorm::sea_orm::ConnectOptions::new(b.url.clone());
    options.max_connections(1).min_connections(1);
    let db = audit_seaorm::sea_orm::Database::connect(options)
        .await
        .unwrap();
    db.execute_unprepared("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        .await
        .unwrap();
    let store = audit_seaorm::SeaOrmStore::new(db);
    let t = tenant();
    let entry = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity_name("50% off!")
        .build();
    store.record(entry.clone()).await.unwrap();
    for term in ["50%", "off!", "% OFF"] {
        let page = store
            .query(&AuditQuery::new(Scope::tenant(&t)).text(term))
            .await
            .unwrap();
        assert_eq!(ids(&page.items), vec![entry.id], "{term:?}");
    }
}

/// An action name that is not valid (built directly, or written into the table by another
/// tool) never makes a page, an entry or an export unreadable.
pub async fn every_stored_action_reads_back_as_a_valid_name(b: &Backend) {
    let t = tenant();
    let invalid = AuditEntry::builder(Action::Custom("Foo! bar".into()))
        .tenant(&t)
        .build();
    b.store.record(invalid.clone()).await.unwrap();
    let stored = b.store.get(&Scope::tenant(&t), invalid.id).await.unwrap();
    assert_eq!(
        stored.map(|e| e.action),
        Some(Action::Custom("Foobar".into())),
        "{}",
        b.name
    );

    let by_hand = AuditEntry::builder(Action::Create).tenant(&t).build();
    b.store.record(by_hand.clone()).await.unwrap();
    entity::Entity::update_many()
        .col_expr(
            entity::Column::Action,
            audit_seaorm::sea_orm::sea_query::Expr::value("Not valid!"),
        )
        .filter(entity::Column::Id.eq(by_hand.id))
        .exec(b.store.connection())
        .await
        .unwrap();
    let page = b
        .store
        .query(&AuditQuery::new(Scope::tenant(&t)))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2, "{}", b.name);
    assert!(
        page.items
            .iter()
            .any(|e| e.action == Action::Custom("Not valid!".into())),
        "{}: {:?}",
        b.name,
        page.items
    );
    let exported = b
        .store
        .export(&AuditQuery::new(Scope::tenant(&t)))
        .collect::<Vec<_>>()
        .await;
    assert!(exported.iter().all(Result::is_ok), "{}", b.name);
    assert_eq!(exported.len(), 2);
}

/// JSON columns travel as JSON text, where a control character takes six bytes: statements are
/// sized by that text, so a batch of such entries (padded, too) stays under MySQL's
/// `max_allowed_packet` (16 MiB by default on MariaDB).
pub async fn batches_of_escape_heavy_json_fit_a_statement(b: &Backend) {
    let t = tenant();
    let control = "\u{1}".repeat(70_000);
    let batch: Vec<AuditEntry> = (0..23)
        .map(|i| {
            let mut entry = AuditEntry::builder(Action::Update)
                .tenant(&t)
                .entity("Row", i.to_string())
                .build();
            // Set after `build`, which would bound it.
            entry.changes = vec![Change::new("blob", json!(control), json!(null))];
            entry
        })
        .collect();
    b.store.record_batch(batch).await.unwrap();
    assert_eq!(stored_rows(b, &t).await, 23, "{}", b.name);
}

/// `insert_entries` opens no transaction of its own: in a caller's transaction, a batch of
/// several statements goes (or stays) with it.
pub async fn insert_entries_follow_the_callers_transaction(b: &Backend) {
    // A multi-statement batch inside a caller's transaction goes with the transaction.
    let t2 = tenant();
    let more: Vec<AuditEntry> = (0..1500)
        .map(|_| AuditEntry::builder(Action::Create).tenant(&t2).build())
        .collect();
    let txn = b.store.connection().begin().await.unwrap();
    audit_seaorm::insert_entries(&txn, &more).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(stored_rows(b, &t2).await, 0);
    audit_seaorm::insert_entries(b.store.connection(), &more)
        .await
        .unwrap();
    assert_eq!(stored_rows(b, &t2).await, 1500);
}

pub async fn insert_entry_commits_and_rolls_back_with_the_transaction(b: &Backend) {
    let t = tenant();
    let db = b.store.connection();
    // A table of the application's own, changed in the same transaction as the entry.
    let table = format!("app_items_{}", b.name.to_ascii_lowercase());
    let backend = db.get_database_backend();
    let create = format!("CREATE TABLE IF NOT EXISTS {table} (id VARCHAR(64) PRIMARY KEY)");
    db.execute_unprepared(&create).await.unwrap();
    let item_exists = |id: String| {
        let table = table.clone();
        async move {
            let placeholder = if backend == DbBackend::Postgres {
                "$1"
            } else {
                "?"
            };
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    format!("SELECT COUNT(*) AS n FROM {table} WHERE id = {placeholder}"),
                    [id.into()],
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap() == 1
        }
    };
    let insert_item = |id: String| {
        let placeholder = if backend == DbBackend::Postgres {
            "$1"
        } else {
            "?"
        };
        Statement::from_sql_and_values(
            backend,
            format!("INSERT INTO {table} (id) VALUES ({placeholder})"),
            [id.into()],
        )
    };

    // Rolled back: neither the change nor the entry.
    let gone_item = format!("{t}-rollback");
    let gone = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity("Item", &gone_item)
        .build();
    let txn = db.begin().await.unwrap();
    txn.execute_raw(insert_item(gone_item.clone()))
        .await
        .unwrap();
    insert_entry(&txn, &gone).await.unwrap();
    // Visible inside the transaction.
    let inside = entity::Entity::find_by_id(gone.id).one(&txn).await.unwrap();
    assert!(inside.is_some());
    txn.rollback().await.unwrap();
    assert!(!item_exists(gone_item).await);
    assert_eq!(
        b.store.get(&Scope::tenant(&t), gone.id).await.unwrap(),
        None
    );

    // Dropped without commit: the same as a rollback.
    let dropped = AuditEntry::builder(Action::Create).tenant(&t).build();
    {
        let txn = db.begin().await.unwrap();
        insert_entry(&txn, &dropped).await.unwrap();
    }
    assert_eq!(
        b.store.get(&Scope::tenant(&t), dropped.id).await.unwrap(),
        None
    );

    // Committed: both.
    let kept_item = format!("{t}-commit");
    let kept = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity("Item", &kept_item)
        .build();
    let txn = db.begin().await.unwrap();
    txn.execute_raw(insert_item(kept_item.clone()))
        .await
        .unwrap();
    insert_entry(&txn, &kept).await.unwrap();
    txn.commit().await.unwrap();
    assert!(item_exists(kept_item).await);
    assert_eq!(
        b.store.get(&Scope::tenant(&t), kept.id).await.unwrap(),
        Some(kept)
    );
}

pub async fn migration_is_idempotent(b: &Backend) {
    b.store.migrate().await.unwrap();
    b.store.migrate().await.unwrap();
    // Connecting again runs the migration again, harmlessly.
    let again = audit_seaorm::SeaOrmStore::connect(&b.url).await.unwrap();
    let t = tenant();
    again
        .record(AuditEntry::builder(Action::Create).tenant(&t).build())
        .await
        .unwrap();
    assert_eq!(stored_rows(b, &t).await, 1);
}
