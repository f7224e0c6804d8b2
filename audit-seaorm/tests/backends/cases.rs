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

/// `tenant`'s chain, verified; panics when the store cannot read it.
async fn verified(b: &Backend, tenant: &str) -> audit_core::chain::ChainReport {
    b.store.verify_chain(Some(tenant)).await.unwrap()
}

/// Runs `sql` as it is (only literals of the test's own making in it).
async fn raw(b: &Backend, sql: String) {
    let db = b.store.connection();
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
}

/// Every way of writing links its entries once, in order, and the chain of a tenant written
/// by several writers at once neither forks nor breaks.
pub async fn every_write_path_extends_the_chain(b: &Backend) {
    let t = tenant();
    let entry = |n: usize| {
        AuditEntry::builder(Action::Update)
            .tenant(&t)
            .entity("Tenant", n.to_string())
            .build()
    };
    b.store.record(entry(0)).await.unwrap();
    let batch: Vec<AuditEntry> = (1..4).map(entry).collect();
    b.store.record_batch(batch.clone()).await.unwrap();
    // A retried batch is not linked again, and its new entries follow.
    let mut retried = batch.clone();
    retried.push(entry(4));
    b.store.record_batch(retried).await.unwrap();
    let db = b.store.connection();
    let txn = db.begin().await.unwrap();
    let fifth = entry(5);
    insert_entry(&txn, &fifth).await.unwrap();
    // Twice in the caller's transaction: the second finds it stored and rolls back only
    // its own savepoint.
    insert_entry(&txn, &fifth).await.unwrap();
    txn.commit().await.unwrap();
    // An entry the store alters to fit (a NUL replaced, a name cut to its column) is linked as
    // it reads back.
    let mut altered = entry(6);
    altered.details = Some("a\0b".into());
    altered.entity_name = Some("n".repeat(300));
    b.store.record(altered).await.unwrap();
    // A rolled-back entry leaves no link and no gap.
    let txn = db.begin().await.unwrap();
    insert_entry(&txn, &entry(99)).await.unwrap();
    txn.rollback().await.unwrap();
    let report = verified(b, &t).await;
    assert_eq!(report.broken, None, "{}", b.name);
    assert_eq!((report.checked, report.unchained), (7, 0), "{}", b.name);

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = b.store.clone();
            let entries: Vec<AuditEntry> = (0..25).map(|n| entry(100 * (w + 1) + n)).collect();
            tokio::spawn(async move {
                for part in entries.chunks(5) {
                    store.record_batch(part.to_vec()).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let report = verified(b, &t).await;
    assert_eq!(report.broken, None, "{}", b.name);
    assert_eq!(report.checked, 107, "{}", b.name);
    assert_eq!(stored_rows(b, &t).await, 107);
    // Another tenant's chain is its own.
    let other = tenant();
    b.store
        .record(AuditEntry::builder(Action::Create).tenant(&other).build())
        .await
        .unwrap();
    assert_eq!(verified(b, &other).await.checked, 1);
}

/// A fresh tenant with six chained entries, and their ids in order.
async fn chained(b: &Backend) -> (String, Vec<uuid::Uuid>) {
    let t = tenant();
    let entries: Vec<AuditEntry> = (0..6)
        .map(|n| {
            AuditEntry::builder(Action::Update)
                .actor(audit_core::Actor::user("u-1", "ada@example.com"))
                .tenant(&t)
                .entity("ConnectionProfile", format!("p-{n}"))
                .changes(vec![Change::new("port", json!(n), json!(n + 1))])
                .build()
        })
        .collect();
    b.store.record_batch(entries.clone()).await.unwrap();
    assert!(verified(b, &t).await.is_intact());
    (t, ids(&entries))
}

/// Each kind of tampering with the stored rows is found, at the entry where it happened.
pub async fn tampering_breaks_the_chain_where_it_happened(b: &Backend) {
    use audit_core::chain::ChainBreak;
    use audit_seaorm::sea_orm::sea_query::Expr;
    let db = b.store.connection();
    let set = |column: entity::Column, value: &str, id: uuid::Uuid| {
        entity::Entity::update_many()
            .col_expr(column, Expr::value(value.to_owned()))
            .filter(entity::Column::Id.eq(id))
            .exec(db)
    };

    // A changed field.
    let (t, ids) = chained(b).await;
    set(entity::Column::EntityName, "forged", ids[2])
        .await
        .unwrap();
    let broken = verified(b, &t).await.broken;
    assert!(
        matches!(broken, Some(ChainBreak::Hash { seq: 3, .. })),
        "{}: {broken:?}",
        b.name
    );

    // A changed personal field.
    let (t, ids) = chained(b).await;
    set(entity::Column::ActorName, "mallory@example.com", ids[1])
        .await
        .unwrap();
    let broken = verified(b, &t).await.broken;
    assert!(
        matches!(broken, Some(ChainBreak::Personal { seq: 2, .. })),
        "{}: {broken:?}",
        b.name
    );

    // A deleted middle row, its link with it.
    let (t, ids) = chained(b).await;
    entity::Entity::delete_by_id(ids[2]).exec(db).await.unwrap();
    let broken = verified(b, &t).await.broken;
    assert!(
        matches!(
            broken,
            Some(ChainBreak::Sequence {
                found: 4,
                expected: 3,
                ..
            })
        ),
        "{}: {broken:?}",
        b.name
    );

    // Two rows swapped (their links renumbered to look in order).
    let (t, _) = chained(b).await;
    let key = format!("tenant_id = '{t}'");
    raw(
        b,
        format!("UPDATE audit_log SET chain_seq = -2 WHERE {key} AND chain_seq = 2"),
    )
    .await;
    raw(
        b,
        format!("UPDATE audit_log SET chain_seq = 2 WHERE {key} AND chain_seq = 3"),
    )
    .await;
    raw(
        b,
        format!("UPDATE audit_log SET chain_seq = 3 WHERE {key} AND chain_seq = -2"),
    )
    .await;
    let broken = verified(b, &t).await.broken;
    assert!(
        matches!(broken, Some(ChainBreak::Hash { seq: 2, .. })),
        "{}: {broken:?}",
        b.name
    );

    // A forged row inserted around the store.
    let (t, ids) = chained(b).await;
    let mut forged = entity::Entity::find_by_id(ids[3])
        .one(db)
        .await
        .unwrap()
        .unwrap();
    forged.id = uuid::Uuid::now_v7();
    forged.entity_name = Some("forged".into());
    (
        forged.chain_seq,
        forged.chain_hash,
        forged.chain_personal,
        forged.chain_salt,
    ) = (None, None, None, None);
    entity::Entity::insert(entity::ActiveModel::from(forged.clone()))
        .exec_without_returning(db)
        .await
        .unwrap();
    let broken = verified(b, &t).await.broken;
    assert_eq!(
        broken,
        Some(ChainBreak::Unchained { id: forged.id }),
        "{}",
        b.name
    );

    // The newest rows cut off: the head still knows how far the chain went.
    let (t, ids) = chained(b).await;
    for id in &ids[4..] {
        entity::Entity::delete_by_id(*id).exec(db).await.unwrap();
    }
    let broken = verified(b, &t).await.broken;
    assert_eq!(
        broken,
        Some(ChainBreak::Truncated { last: 4, head: 6 }),
        "{}",
        b.name
    );

    // The newest rows cut off and the head moved back to hide it: only a checkpoint taken
    // before, signed with a key kept elsewhere, shows the cut.
    let (t, ids) = chained(b).await;
    let report = verified(b, &t).await;
    let key = audit_core::checkpoint::CheckpointKey::generate();
    let signed =
        audit_core::checkpoint::Checkpoint::now(Some(t.clone()), report.last.0, report.last.1)
            .sign(&key);
    signed.verify(&key.public_hex()).unwrap();
    let kept = b.store.chain_page(Some(&t), 3, 1).await.unwrap();
    for id in &ids[4..] {
        entity::Entity::delete_by_id(*id).exec(db).await.unwrap();
    }
    let hash = kept[0].1.hash.0.to_vec();
    audit_seaorm::sea_orm::ConnectionTrait::execute_raw(
        db,
        Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                audit_seaorm::sea_orm::DbBackend::Postgres => {
                    "UPDATE audit_chain_head SET seq = 4, hash = $1 WHERE chain_key = $2"
                }
                _ => "UPDATE audit_chain_head SET seq = 4, hash = ? WHERE chain_key = ?",
            },
            [hash.into(), format!("t:{t}").into()],
        ),
    )
    .await
    .unwrap();
    assert!(verified(b, &t).await.is_intact(), "{}", b.name);
    let report = b
        .store
        .verify_chain_against(Some(&t), &signed.checkpoint)
        .await
        .unwrap();
    assert_eq!(
        report.broken,
        Some(ChainBreak::Truncated { last: 4, head: 6 }),
        "{}",
        b.name
    );

    // A changed sequence number.
    let (t, _) = chained(b).await;
    raw(
        b,
        format!("UPDATE audit_log SET chain_seq = 10 WHERE tenant_id = '{t}' AND chain_seq = 6"),
    )
    .await;
    let broken = verified(b, &t).await.broken;
    assert!(
        matches!(
            broken,
            Some(ChainBreak::Sequence {
                found: 10,
                expected: 6,
                ..
            })
        ),
        "{}: {broken:?}",
        b.name
    );
}

/// After an erasure the chain still verifies; a personal field written over the marker
/// afterwards breaks it, since the salt that would have covered it is gone.
pub async fn an_erased_actor_leaves_the_chain_verifiable(b: &Backend) {
    use audit_core::chain::ChainBreak;
    use audit_seaorm::sea_orm::sea_query::Expr;
    let t = tenant();
    // An actor of this case's own: cases run at once on one database.
    let person = format!("u-{}", uuid::Uuid::now_v7());
    let entries: Vec<AuditEntry> = (0..6)
        .map(|n| {
            let mut entry = AuditEntry::builder(Action::Update)
                .actor(audit_core::Actor::user(&person, "ada@example.com"))
                .tenant(&t)
                .entity("ConnectionProfile", format!("p-{n}"))
                .build();
            entry.ip = Some("203.0.113.9".parse().unwrap());
            entry
        })
        .collect();
    b.store.record_batch(entries.clone()).await.unwrap();
    let ids = ids(&entries);
    let db = b.store.connection();
    assert_eq!(b.store.erase_actor(&person).await.unwrap(), 6, "{}", b.name);
    let report = verified(b, &t).await;
    assert_eq!((report.broken, report.checked), (None, 6), "{}", b.name);
    let stored = entity::Entity::find_by_id(ids[1])
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.actor_name.as_deref(),
        Some(audit_core::chain::ERASED)
    );
    assert_eq!(stored.chain_salt, None);
    assert!(stored.chain_personal.is_some());

    entity::Entity::update_many()
        .col_expr(
            entity::Column::ActorName,
            Expr::value("mallory@example.com"),
        )
        .filter(entity::Column::Id.eq(ids[1]))
        .exec(db)
        .await
        .unwrap();
    let broken = verified(b, &t).await.broken;
    assert!(
        matches!(broken, Some(ChainBreak::Personal { seq: 2, .. })),
        "{}: {broken:?}",
        b.name
    );
}

/// `n` chained entries of `tenant` that occurred `days_ago` days ago.
fn aged(tenant: &str, days_ago: i64, n: usize) -> Vec<AuditEntry> {
    let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    (0..n)
        .map(|i| {
            let mut entry = AuditEntry::builder(Action::Update)
                .tenant(tenant)
                .entity("ConnectionProfile", format!("p-{i}"))
                .build();
            entry.occurred_at = at + chrono::Duration::milliseconds(i as i64);
            entry
        })
        .collect()
}

/// Moves `tenant`'s recorded chain start to `seq` and `hash`, around the store.
async fn move_start(b: &Backend, tenant: &str, seq: u64, hash: [u8; 32]) {
    use audit_seaorm::sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let update = Query::update()
        .table(Alias::new("audit_chain_start"))
        .value(Alias::new("seq"), seq as i64)
        .value(Alias::new("hash"), hash.to_vec())
        .and_where(Expr::col(Alias::new("chain_key")).eq(format!("t:{tenant}")))
        .to_owned();
    let db = b.store.connection();
    let done = db.execute(&update).await.unwrap();
    assert_eq!(done.rows_affected(), 1);
}

/// A purge leaves the chain verifiable from its new start while writers extend it and a
/// verification runs; a start moved or altered around the store does not verify.
pub async fn a_purged_chain_verifies_from_its_start_and_a_forged_start_does_not(b: &Backend) {
    use audit_core::chain::ChainBreak;
    use audit_core::retention::PurgeRequest;
    let t = tenant();
    b.store.record_batch(aged(&t, 40, 100)).await.unwrap();
    b.store.record_batch(aged(&t, 1, 5)).await.unwrap();
    // Writers append while the purge deletes in batches of 10, and a verification runs.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (store, t) = (b.store.clone(), t.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    store.record_batch(aged(&t, 0, 5)).await.unwrap();
                }
            })
        })
        .collect();
    let verifying = {
        let (store, t) = (b.store.clone(), t.clone());
        tokio::spawn(async move { store.verify_chain(Some(&t)).await.unwrap() })
    };
    let before = chrono::Utc::now() - chrono::Duration::days(30);
    let report = b
        .store
        .purge(&PurgeRequest::new(Some(&t), before).batch(10))
        .await
        .unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let during = verifying.await.unwrap();
    assert_eq!(during.broken, None, "{}: verified during the purge", b.name);
    assert_eq!((report.matched, report.deleted), (100, 100), "{}", b.name);
    assert_eq!(report.chain_start, 100);
    let after = verified(b, &t).await;
    assert_eq!(after.broken, None, "{}", b.name);
    // 5 recent, 100 written meanwhile, and the purge's own entry.
    assert_eq!((after.start, after.checked), (100, 106), "{}", b.name);
    assert_eq!(stored_rows(b, &t).await, 106);
    assert_eq!(b.store.chain_start(Some(&t)).await.unwrap().0, 100);

    // The oldest entry kept, deleted around the store with the start moved past it: no purge
    // vouches for that start.
    let first = b.store.chain_page(Some(&t), 100, 1).await.unwrap();
    let (entry, link) = &first[0];
    assert_eq!(link.seq, 101);
    entity::Entity::delete_by_id(entry.id)
        .exec(b.store.connection())
        .await
        .unwrap();
    move_start(b, &t, 101, link.hash.0).await;
    assert_eq!(
        verified(b, &t).await.broken,
        Some(ChainBreak::Unattested { start: 101 }),
        "{}",
        b.name
    );

    // A start whose hash was altered: the first entry kept no longer follows it.
    let other = tenant();
    b.store.record_batch(aged(&other, 40, 3)).await.unwrap();
    b.store.record_batch(aged(&other, 1, 2)).await.unwrap();
    b.store
        .purge(&PurgeRequest::new(Some(&other), before))
        .await
        .unwrap();
    assert!(verified(b, &other).await.is_intact());
    move_start(b, &other, 3, [7; 32]).await;
    let broken = verified(b, &other).await.broken;
    assert!(
        matches!(broken, Some(ChainBreak::Hash { seq: 4, .. })),
        "{}: {broken:?}",
        b.name
    );
}

/// Entries stored before the lookup buckets existed get theirs from the migration, and are
/// then found by actor and by object like any other.
pub async fn entries_stored_before_the_buckets_are_found_after_migrating(b: &Backend) {
    use audit_seaorm::migration::m20261204_000007_bucketed_lookup_indexes::Migration;
    use audit_seaorm::sea_orm::sea_query::Expr;
    use sea_orm_migration::{MigrationTrait, SchemaManager};
    let t = tenant();
    let entries: Vec<AuditEntry> = (0..5)
        .map(|n| {
            AuditEntry::builder(Action::Update)
                .actor(audit_core::Actor::user(format!("u-{n}"), "ada@example.com"))
                .tenant(&t)
                .entity("ConnectionProfile", format!("p-{n}"))
                .build()
        })
        .collect();
    b.store.record_batch(entries.clone()).await.unwrap();
    let db = b.store.connection();
    let by = |query: AuditQuery| async move { b.store.query(&query).await.unwrap().items };
    assert_eq!(
        by(AuditQuery::new(Scope::tenant(&t)).actor_id("u-3"))
            .await
            .len(),
        1
    );
    // As an older version stored them.
    entity::Entity::update_many()
        .col_expr(
            entity::Column::ActorBucket,
            Expr::value(Option::<i16>::None),
        )
        .col_expr(
            entity::Column::EntityBucket,
            Expr::value(Option::<i16>::None),
        )
        .filter(entity::Column::TenantId.eq(&t))
        .exec(db)
        .await
        .unwrap();
    assert!(
        by(AuditQuery::new(Scope::tenant(&t)).actor_id("u-3"))
            .await
            .is_empty()
    );
    Migration.up(&SchemaManager::new(db)).await.unwrap();
    for (n, entry) in entries.iter().enumerate() {
        let actor = by(AuditQuery::new(Scope::tenant(&t)).actor_id(format!("u-{n}"))).await;
        assert_eq!(ids(&actor), vec![entry.id], "{}: actor u-{n}", b.name);
        let object = by(AuditQuery::new(Scope::tenant(&t)).entity_id(format!("p-{n}"))).await;
        assert_eq!(ids(&object), vec![entry.id], "{}: object p-{n}", b.name);
    }
    let both = by(AuditQuery::new(Scope::tenant(&t))
        .actor_id("u-1")
        .actor_id("u-4"))
    .await;
    assert_eq!(both.len(), 2, "{}", b.name);
}

/// The ids of the entries of `tenant` whose free text matches `term`.
async fn found(b: &Backend, tenant: &str, term: &str) -> Vec<uuid::Uuid> {
    let page = b
        .store
        .query(&AuditQuery::new(Scope::tenant(tenant)).text(term))
        .await
        .unwrap();
    let mut found = ids(&page.items);
    found.sort();
    found
}

/// Free text finds an entry by every searched field, in any case and literally, never by a
/// redacted secret's real value, and no longer by an erased actor's name or address.
pub async fn free_text_finds_every_searched_field(b: &Backend) {
    let t = tenant();
    let mut key = AuditEntry::builder(Action::Custom("RotateSecret".into()))
        .tenant(&t)
        .actor(audit_core::Actor::user("u-4711", "Zoë Quill"))
        .api_key(audit_core::ApiKeyRef::new("k-1", "CI deployer"))
        .entity("SigningKey", "sk-93")
        .entity_name("Release signing")
        .details("rotated after the audit")
        .changes(vec![
            Change::new("expiresAt", json!("2026-01-31"), json!("2027-01-31")),
            Change::new("password", json!("hunter2-secret"), json!("s3cr3t-new")),
            Change::new("weight", json!(17), json!(1234)),
        ])
        .build();
    key.ip = Some("198.51.100.23".parse().unwrap());
    key.request_id = Some("req-7f3a9c".into());
    // A second entry, so that a search that matched everything would show.
    let mut other = AuditEntry::builder(Action::Update)
        .tenant(&t)
        .actor(audit_core::Actor::user("u-1", "Bob"))
        .entity("Invoice", "inv-1")
        .entity_name("50%_off and 100% sure")
        .build();
    other.ip = Some("192.0.2.1".parse().unwrap());
    b.store
        .record_batch(vec![key.clone(), other.clone()])
        .await
        .unwrap();
    for term in [
        "rotatesecret",    // action
        "SIGNINGKEY",      // entity type
        "sk-93",           // entity id
        "release SIGN",    // entity name
        "u-4711",          // actor id
        "zoë quill",       // actor name
        "ci deployer",     // API key name
        "198.51.100.23",   // client address
        "REQ-7F3A",        // request id
        "after the audit", // details
        "expiresat",       // a changed field's name
        "2026-01-31",      // an old value
        "2027-01",         // a new value
        "1234",            // a new value that is not a string
        "password",        // a redacted field's name
        "[redacted]",      // what it shows
    ] {
        assert_eq!(found(b, &t, term).await, vec![key.id], "{}: {term}", b.name);
    }
    for term in ["hunter2", "s3cr3t", "u-4711 zoë", "sk-93 release", "null"] {
        assert!(found(b, &t, term).await.is_empty(), "{}: {term}", b.name);
    }
    // Surrounding whitespace, any kind, is ignored.
    assert_eq!(
        found(b, &t, " sk-93\u{a0}").await,
        vec![key.id],
        "{}",
        b.name
    );
    // Non-ASCII letters fold on every backend.
    assert_eq!(found(b, &t, "ZOË").await, vec![key.id], "{}", b.name);
    // `%` and `_` are literal.
    assert_eq!(found(b, &t, "50%_off").await, vec![other.id], "{}", b.name);
    assert_eq!(found(b, &t, "100%").await, vec![other.id], "{}", b.name);
    assert!(found(b, &t, "50_").await.is_empty(), "{}", b.name);
    assert!(found(b, &t, "r%t").await.is_empty(), "{}", b.name);
    // An erased actor's name and address are found no more; the id still is.
    b.store.erase_actor("u-4711").await.unwrap();
    assert!(found(b, &t, "zoë").await.is_empty(), "{}", b.name);
    assert!(found(b, &t, "198.51.100").await.is_empty(), "{}", b.name);
    assert_eq!(found(b, &t, "u-4711").await, vec![key.id], "{}", b.name);
    assert_eq!(verified(b, &t).await.broken, None, "{}", b.name);
}

/// Entries stored before `search_text` existed get theirs from the migration, and free text
/// then finds them like any other.
pub async fn entries_stored_before_the_search_text_are_found_after_migrating(b: &Backend) {
    use audit_seaorm::migration::m20261206_000009_search_text::Migration;
    use audit_seaorm::sea_orm::sea_query::Expr;
    use sea_orm_migration::{MigrationTrait, SchemaManager};
    let t = tenant();
    let entries: Vec<AuditEntry> = (0..7)
        .map(|n| {
            AuditEntry::builder(Action::Update)
                .tenant(&t)
                .entity("ConnectionProfile", format!("p-{n}"))
                .changes(vec![Change::new(
                    "host",
                    json!(format!("db-{n}.internal")),
                    json!(null),
                )])
                .build()
        })
        .collect();
    b.store.record_batch(entries.clone()).await.unwrap();
    let db = b.store.connection();
    // As an older version stored them.
    entity::Entity::update_many()
        .col_expr(
            entity::Column::SearchText,
            Expr::value(Option::<String>::None),
        )
        .filter(entity::Column::TenantId.eq(&t))
        .exec(db)
        .await
        .unwrap();
    assert!(found(b, &t, "db-3.internal").await.is_empty(), "{}", b.name);
    Migration.up(&SchemaManager::new(db)).await.unwrap();
    for (n, entry) in entries.iter().enumerate() {
        let by_change = found(b, &t, &format!("DB-{n}.internal")).await;
        assert_eq!(by_change, vec![entry.id], "{}: db-{n}", b.name);
    }
    assert_eq!(
        found(b, &t, "connectionprofile").await.len(),
        7,
        "{}",
        b.name
    );
    assert_eq!(verified(b, &t).await.broken, None, "{}", b.name);
}

/// The rows naming `tenant`'s objects in `audit_entity_ref`, counted directly.
async fn entity_refs(b: &Backend, tenant: &str) -> i64 {
    let db = b.store.connection();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                DbBackend::Postgres => {
                    "SELECT COUNT(*) AS n FROM audit_entity_ref WHERE tenant_id = $1"
                }
                _ => "SELECT COUNT(*) AS n FROM audit_entity_ref WHERE tenant_id = ?",
            },
            [tenant.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// A bulk change's ids are rows of their own, written with the entry (in its transaction, once
/// on a retry), found through their index, and deleted with the entry by a purge.
pub async fn a_bulk_changes_ids_are_indexed_rows_until_purged(b: &Backend) {
    use audit_core::BulkChange;
    use audit_core::retention::PurgeRequest;
    let t = tenant();
    let bulk = |n: usize, days_ago: i64| {
        let mut entry = AuditEntry::builder(Action::Deactivate)
            .tenant(&t)
            .entity_type("ConnectionProfile")
            .bulk(BulkChange::of((0..n).map(|i| format!("cp-{days_ago}-{i}"))).reason("test"))
            .build();
        entry.occurred_at = chrono::Utc::now() - chrono::Duration::days(days_ago);
        entry
    };
    // 250 ids take three statements (100, 100, 50).
    let old = bulk(250, 40);
    b.store.record(old.clone()).await.unwrap();
    assert_eq!(entity_refs(b, &t).await, 250, "{}", b.name);
    b.store.record(old.clone()).await.unwrap();
    assert_eq!(
        entity_refs(b, &t).await,
        250,
        "{}: a retry wrote rows again",
        b.name
    );

    // In a caller's transaction: rolled back, no rows; committed, its rows.
    let mine = bulk(7, 2);
    let txn = b.store.connection().begin().await.unwrap();
    insert_entry(&txn, &mine).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(entity_refs(b, &t).await, 250, "{}", b.name);
    let txn = b.store.connection().begin().await.unwrap();
    insert_entry(&txn, &mine).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(entity_refs(b, &t).await, 257, "{}", b.name);
    let found = b
        .store
        .query(&AuditQuery::new(Scope::tenant(&t)).entity_id("cp-2-3"))
        .await
        .unwrap();
    assert_eq!(ids(&found.items), vec![mine.id], "{}", b.name);

    // The look-up reads the index, among a few thousand rows of other objects.
    let many: Vec<AuditEntry> = (0..5).map(|_| bulk(1000, 3)).collect();
    b.store.record_batch(many).await.unwrap();
    let db = b.store.connection();
    let lookup = format!(
        "SELECT entry_id FROM audit_entity_ref WHERE entity_id IN ('cp-2-3') \
         AND tenant_id = '{t}' ORDER BY entry_id DESC LIMIT 1000"
    );
    // Each backend's plan, as text: PostgreSQL's lines, MySQL's chosen keys, SQLite's details.
    let (statistics, explain, column) = match db.get_database_backend() {
        DbBackend::Postgres => (Some("ANALYZE audit_entity_ref"), "EXPLAIN", "QUERY PLAN"),
        DbBackend::MySql => (Some("ANALYZE TABLE audit_entity_ref"), "EXPLAIN", "key"),
        _ => (None, "EXPLAIN QUERY PLAN", "detail"),
    };
    if let Some(statistics) = statistics {
        raw(b, statistics.into()).await;
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("{explain} {lookup}"),
        ))
        .await
        .unwrap();
    let plan = rows
        .iter()
        .map(|r| {
            r.try_get::<Option<String>>("", column)
                .unwrap()
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.contains("audit_entity_ref_lookup"),
        "{}: the look-up does not use its index: {plan}",
        b.name
    );

    // A purge of the old entries deletes their rows and no others.
    let before = chrono::Utc::now() - chrono::Duration::days(30);
    let report = b
        .store
        .purge(&PurgeRequest::new(Some(&t), before))
        .await
        .unwrap();
    assert_eq!(report.deleted, 1, "{}", b.name);
    assert_eq!(entity_refs(b, &t).await, 5007, "{}", b.name);
    let gone = b
        .store
        .query(&AuditQuery::new(Scope::tenant(&t)).entity_id("cp-40-0"))
        .await
        .unwrap();
    assert!(gone.items.is_empty(), "{}", b.name);
}
