//! The conformance suite: what every [`AuditStore`] + [`AuditSink`] must do, as tests written
//! once and run against each store (feature `test-suite`).
//!
//! Each case is an async function of a store. Cases work in tenants of their own (fresh
//! UUIDv7s), so one store, or one database, can serve every case at once. [`store_suite!`](crate::store_suite)
//! makes one `#[tokio::test]` per case:
//!
//! ```ignore
//! // In a test file of your crate, with tokio (features "macros", "rt-multi-thread") as a
//! // dev-dependency. The expression makes the store; it is evaluated inside each async test,
//! // so it may `.await`, and may `return` to skip the case.
//! crate::store_suite!(my_store::Store::connect("...").await.unwrap());
//! ```
//!
//! The cases compare every answer with [`AuditQuery::matches`], the reference semantics, and
//! check the contract the [`store`](super) module documents: idempotent writes, microsecond
//! times, keyset pages in both orders across equal timestamps, scopes that hold in `query`,
//! `get` and `export`, literal free text, and clear errors for bad input.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // a failed unwrap is a failed test

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::StreamExt;
use serde_json::json;

use super::{AuditQuery, AuditStore, Cursor, MAX_LIMIT, MAX_TEXT_CHARS, Order, Scope, StoreError};
use crate::{Action, Actor, ActorKind, ApiKeyRef, AuditEntry, AuditSink, Change, Outcome};

/// Runs every case of the suite against stores made by an expression: one `#[tokio::test]` per
/// case, named after it. Put it in a module of its own per store.
///
/// The expression is evaluated inside each (async) test, so it may `.await`; a `return` in it
/// skips the case (for a database that is not configured). See the [module](self) docs.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@cases $make; every_field_round_trips, every_filter_alone_and_combined_matches_the_reference, free_text_is_literal_and_case_insensitive, free_text_never_matches_across_columns, free_text_finds_long_texts_in_order, time_range_is_half_open, nanosecond_timestamps_page_like_any_other, timestamps_of_any_precision_sort_and_filter, paging_across_equal_timestamps_in_both_orders, scope_isolation_in_query_get_and_export, tenant_ids_compare_exactly, reinserting_is_a_no_op, batches_of_any_size_store_each_entry_once, a_batch_larger_than_one_statement_is_stored_whole, export_streams_every_match_in_chunks, bad_input_is_a_clear_error, unscoped_queries_see_every_tenant, erasing_an_actor_replaces_their_personal_fields_only, a_purge_deletes_its_tenants_older_entries_only_and_records_itself, a_legal_hold_suspends_purges_until_lifted, summaries_count_per_utc_day_and_key_within_scope, actors_are_listed_latest_first_within_scope, facets_list_what_is_present_in_scope_bounded, grouped_questions_refuse_bad_input_clearly, team_filter_and_hidden_log_reads_apply_inside_the_query, a_bulk_change_is_found_by_each_id_it_names);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make;
                $crate::store::suite::$case(&store).await;
            }
        )*
    };
}

/// Runs the intent cases (stores that are also an [`IntentStore`](crate::IntentStore)) against
/// stores made by an expression, as [`store_suite!`](crate::store_suite) does.
#[macro_export]
macro_rules! intent_suite {
    ($make:expr) => {
        $crate::store_suite!(@cases $make; intents_become_entries_of_unknown_outcome_once);
    };
}

/// The names of the cases [`store_suite!`](crate::store_suite) runs, in order.
pub const CASES: &[&str] = &[
    "every_field_round_trips",
    "every_filter_alone_and_combined_matches_the_reference",
    "free_text_is_literal_and_case_insensitive",
    "free_text_never_matches_across_columns",
    "free_text_finds_long_texts_in_order",
    "time_range_is_half_open",
    "nanosecond_timestamps_page_like_any_other",
    "timestamps_of_any_precision_sort_and_filter",
    "paging_across_equal_timestamps_in_both_orders",
    "scope_isolation_in_query_get_and_export",
    "tenant_ids_compare_exactly",
    "reinserting_is_a_no_op",
    "batches_of_any_size_store_each_entry_once",
    "a_batch_larger_than_one_statement_is_stored_whole",
    "export_streams_every_match_in_chunks",
    "bad_input_is_a_clear_error",
    "unscoped_queries_see_every_tenant",
    "erasing_an_actor_replaces_their_personal_fields_only",
    "a_purge_deletes_its_tenants_older_entries_only_and_records_itself",
    "a_legal_hold_suspends_purges_until_lifted",
    "summaries_count_per_utc_day_and_key_within_scope",
    "actors_are_listed_latest_first_within_scope",
    "facets_list_what_is_present_in_scope_bounded",
    "grouped_questions_refuse_bad_input_clearly",
    "team_filter_and_hidden_log_reads_apply_inside_the_query",
    "a_bulk_change_is_found_by_each_id_it_names",
];

/// The store's type, for messages.
fn name<S>() -> &'static str {
    std::any::type_name::<S>()
}

/// A tenant id no other case uses.
pub fn tenant() -> String {
    format!("t-{}", uuid::Uuid::now_v7())
}

/// Every page of `query`, followed by cursor; checks that no page past the first is empty and
/// that no page is longer than the limit.
pub async fn all_pages<S: AuditStore + ?Sized>(store: &S, query: &AuditQuery) -> Vec<AuditEntry> {
    let mut query = query.clone();
    let mut out = Vec::new();
    for page_number in 0..10_000 {
        let page = store.query(&query).await.expect("query");
        assert!(page.items.len() <= query.limit as usize);
        if page_number > 0 {
            assert!(!page.items.is_empty(), "a cursor led to an empty page");
        }
        out.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return out,
        }
    }
    panic!("paging did not end");
}

/// `entries` in the order a store lists them.
pub fn sorted(mut entries: Vec<AuditEntry>, order: Order) -> Vec<AuditEntry> {
    entries.sort_by_key(|e| (e.occurred_at, e.id));
    if order == Order::Desc {
        entries.reverse();
    }
    entries
}

/// The ids of `entries`, in order.
pub fn ids(entries: &[AuditEntry]) -> Vec<uuid::Uuid> {
    entries.iter().map(|e| e.id).collect()
}

/// How many entries of `tenant` the store holds.
async fn stored<S: AuditStore>(store: &S, tenant: &str) -> u64 {
    store
        .export(&AuditQuery::new(Scope::tenant(tenant)))
        .map(|e| e.unwrap())
        .count()
        .await as u64
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn invalid_parameter(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::InvalidQuery { parameter, message }) => {
            assert!(!message.is_empty());
            parameter
        }
        other => panic!("expected InvalidQuery, got {other:?}"),
    }
}

/// Entity names (and details) chosen to catch LIKE wildcards and quoting: each search term
/// has a decoy that an unescaped pattern would match.
const NAMES: [&str; 12] = [
    "100% done",
    "1000 done",
    "under_score",
    "underXscore",
    "back\\slash",
    "backslash",
    "O'Brien",
    "\"double\" quoted",
    "'; DROP TABLE audit_log; --",
    "Salesforce Prod",
    "naïve",
    "plain",
];

/// A varied dataset in one tenant: every filter column cycles with a different period, and
/// pairs of entries share a timestamp.
fn dataset(t: &str, n: usize) -> Vec<AuditEntry> {
    let actions = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Custom("Approve".into()),
    ];
    let kinds = [
        ActorKind::User,
        ActorKind::ApiKey,
        ActorKind::System,
        ActorKind::Anonymous,
    ];
    let types = ["ConnectionProfile", "ApiKey", "Tenant"];
    let outcomes = [Outcome::Success, Outcome::Failure, Outcome::Denied];
    (0..n)
        .map(|i| {
            let mut builder = AuditEntry::builder(actions[i % 4].clone())
                .tenant(t)
                .entity(types[i % 3], format!("e{}", i % 7))
                .entity_name(NAMES[i % NAMES.len()])
                .outcome(outcomes[(i / 2) % 3])
                .occurred_at(base_time() + Duration::milliseconds((i / 2) as i64));
            if i % 6 != 5 {
                builder = builder.api_key(ApiKeyRef::new(
                    format!("k{}", i % 6),
                    format!("key {}", i % 6),
                ));
            }
            if i % 3 != 2 {
                builder = builder.team(format!("team{}", i % 2));
            }
            if i.is_multiple_of(5) {
                builder = builder.details(NAMES[(i / 5) % NAMES.len()]);
            }
            let mut entry = builder.build();
            entry.actor_kind = kinds[i % 4];
            entry.actor_id = Some(format!("u{}", i % 5));
            entry.actor_name = Some(format!("User {}", i % 5));
            if i % 4 != 3 {
                entry.request_id = Some(format!("req-{}", i % 9));
            }
            if i % 3 != 1 {
                entry.trace_id = Some(trace(i % 5));
            }
            if i % 10 == 9 {
                // A bulk change: no id of its own, three named (one named nowhere else).
                entry.entity_id = None;
                crate::BulkChange::of([
                    format!("e{}", (i + 1) % 7),
                    format!("e{}", (i + 4) % 7),
                    format!("bulk-only-{}", (i / 10) % 2),
                ])
                .reason("suite")
                .apply(&mut entry);
            }
            entry
        })
        .collect()
}

/// The `n`th trace id of the data sets: 32 lowercase hexadecimal digits.
fn trace(n: usize) -> String {
    format!("4bf92f3577b34da6a3ce929d0e0e{n:04x}")
}

/// Checks `query` against the reference semantics ([`AuditQuery::matches`]) in both orders
/// and through several pages; returns how many entries matched.
async fn check<S: AuditStore>(store: &S, data: &[AuditEntry], query: AuditQuery) -> usize {
    let mut count = None;
    for order in [Order::Desc, Order::Asc] {
        let query = query.clone().order(order).limit(7);
        let expected = sorted(
            data.iter().filter(|e| query.matches(e)).cloned().collect(),
            order,
        );
        let got = all_pages(store, &query).await;
        assert_eq!(
            ids(&got),
            ids(&expected),
            "{}: {query:?} returned the wrong entries",
            name::<S>()
        );
        assert_eq!(got, expected);
        count = Some(expected.len());
    }
    count.unwrap_or(0)
}

/// Every field of an entry, a full one and a minimal one, reads back exactly as recorded.
pub async fn every_field_round_trips<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let mut full = AuditEntry::builder(Action::ToggleActive)
        .actor(Actor::user("u-1", "ann@example.com"))
        .api_key(ApiKeyRef::new("k-1", "CI deployer"))
        .tenant(&t)
        .team("ops")
        .entity("ConnectionProfile", "42")
        .entity_name("Salesforce prod — naïve ünïcödé 😀")
        .details("toggled \"active\" for 'prod'")
        .changes(vec![
            Change::new("active", json!(true), json!(false)),
            Change::new("mapping.qty", json!({"a": [1, 2.5, null]}), json!("amount")),
        ])
        .outcome(Outcome::Denied)
        .ip("2001:db8::1".parse().unwrap())
        .metadata("region", "eu-west")
        .metadata("nested", json!({"k": [true, 1]}))
        .occurred_at(base_time())
        .build();
    full.status = Some(403);
    full.user_agent = Some("Mozilla/5.0 (X11)".into());
    full.request_id = Some("req-7".into());
    full.trace_id = Some(trace(7));
    full.method = Some("POST".into());
    full.route = Some("/connection-profiles/{id}/toggle-active".into());
    let minimal = AuditEntry::builder(Action::Custom("Approve".into()))
        .tenant(&t)
        .occurred_at(base_time() + Duration::microseconds(1))
        .build();
    store.record(full.clone()).await.unwrap();
    store.record(minimal.clone()).await.unwrap();

    let scope = Scope::tenant(&t);
    assert_eq!(
        store.get(&scope, full.id).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store.get(&scope, minimal.id).await.unwrap(),
        Some(minimal.clone())
    );
    let page = store.query(&AuditQuery::new(scope)).await.unwrap();
    assert_eq!(page.items, vec![minimal, full], "{}", name::<S>());
    assert_eq!(page.next_cursor, None);
}

/// Every filter, alone and combined, selects what [`AuditQuery::matches`] selects, in both orders, across pages.
pub async fn every_filter_alone_and_combined_matches_the_reference<S: AuditStore + AuditSink>(
    store: &S,
) {
    let t = tenant();
    let data = dataset(&t, 84);
    store.record_batch(data.clone()).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    let total = data.len();
    assert_eq!(check(store, &data, q()).await, total);

    // Each filter alone narrows to a proper, non-empty subset.
    let alone = [
        q().entity_type("ApiKey"),
        q().action(Action::Delete),
        q().action(Action::Custom("Approve".into())),
        q().actor_id("u3"),
        q().actor_kind(ActorKind::System),
        q().api_key("k2"),
        q().api_key("key 4"),
        q().entity_id("e5"),
        q().entity_id("bulk-only-1"),
        q().request_id("req-2"),
        q().trace_id(trace(2)),
        q().outcome(Outcome::Denied),
        q().from(base_time() + Duration::milliseconds(10)),
        q().to(base_time() + Duration::milliseconds(10)),
        q().text("prod"),
        AuditQuery::new(Scope::team(&t, "team1")),
    ];
    for query in alone {
        let n = check(store, &data, query.clone()).await;
        assert!(n > 0 && n < total, "{query:?} matched {n} of {total}");
    }
    // Multi-select values are ORed; filters are ANDed.
    let combined = [
        q().entity_type("ApiKey").entity_type("Tenant"),
        q().action(Action::Create).action(Action::Update),
        q().entity_type("ConnectionProfile").action(Action::Create),
        q().actor_id("u1").actor_id("u2").outcome(Outcome::Success),
        q().actor_kind(ActorKind::User)
            .actor_kind(ActorKind::ApiKey)
            .api_key("k0")
            .api_key("key 1"),
        q().entity_id("e1")
            .entity_id("e2")
            .entity_type("Tenant")
            .from(base_time() + Duration::milliseconds(3))
            .to(base_time() + Duration::milliseconds(40)),
        q().outcome(Outcome::Failure)
            .outcome(Outcome::Denied)
            .text("o"),
        q().request_id("req-1")
            .request_id("req-4")
            .action(Action::Update)
            .text("req-4"),
        q().trace_id(trace(1))
            .trace_id(trace(3))
            .outcome(Outcome::Success),
        q().trace_id(trace(4))
            .request_id("req-5")
            .text(&trace(4)[24..]),
        AuditQuery::new(Scope::team(&t, "team0"))
            .action(Action::Delete)
            .action(Action::Create)
            .text("DONE"),
    ];
    for query in combined {
        let n = check(store, &data, query.clone()).await;
        assert!(n > 0 && n < total, "{query:?} matched {n} of {total}");
    }
    // A filter that matches nothing.
    assert_eq!(check(store, &data, q().entity_type("Nope")).await, 0);
    assert_eq!(
        check(
            store,
            &data,
            q().entity_type("ApiKey")
                .entity_id("e0")
                .action(Action::Update)
        )
        .await,
        data.iter()
            .filter(|e| e.entity_type.as_deref() == Some("ApiKey")
                && (e.entity_id.as_deref() == Some("e0") || crate::BulkChange::names(e, "e0"))
                && e.action == Action::Update)
            .count()
    );
    // An id that only bulk changes name finds exactly those.
    let bulk_only: Vec<&AuditEntry> = data
        .iter()
        .filter(|e| crate::BulkChange::names(e, "bulk-only-0"))
        .collect();
    assert!(!bulk_only.is_empty());
    assert_eq!(
        check(store, &data, q().entity_id("bulk-only-0")).await,
        bulk_only.len()
    );
}

/// Free text is a literal substring (no wildcards, no SQL), case-insensitive for ASCII, over the searched columns.
pub async fn free_text_is_literal_and_case_insensitive<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let data = dataset(&t, 48);
    store.record_batch(data.clone()).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    // Term → the only entity name it may match (its decoy must not).
    for (term, only) in [
        ("100%", "100% done"),
        ("under_", "under_score"),
        ("k\\s", "back\\slash"),
        ("O'Brien", "O'Brien"),
        ("\"double\"", "\"double\" quoted"),
        ("'; DROP TABLE audit_log; --", "'; DROP TABLE audit_log; --"),
        ("SALESFORCE prod", "Salesforce Prod"),
        ("naïve", "naïve"),
    ] {
        let got = all_pages(store, &q().text(term)).await;
        assert!(!got.is_empty(), "{}: {term:?} found nothing", name::<S>());
        assert!(
            got.iter()
                .all(|e| e.entity_name.as_deref() == Some(only)
                    || e.details.as_deref() == Some(only)),
            "{}: {term:?} matched something other than {only:?}",
            name::<S>()
        );
        check(store, &data, q().text(term)).await;
    }
    // Wildcards alone match nothing, where an unescaped pattern would match everything.
    for term in ["%", "_", "\\", "%%", "\\%", "!", "!%", "!_"] {
        let n = check(store, &data, q().text(term)).await;
        assert!(
            n < data.len(),
            "{}: {term:?} matched everything",
            name::<S>()
        );
    }
    // Non-ASCII text always matches itself, whatever the backend's case folding covers.
    let accented = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity_name("Émile Zola")
        .build();
    store.record(accented.clone()).await.unwrap();
    // (Whether `é` finds `É` depends on the backend and its locale, so it is not asserted.)
    for term in ["Émile", "Émile ZOLA", "mile zo"] {
        let got = all_pages(store, &q().text(term)).await;
        assert_eq!(ids(&got), vec![accented.id], "{}: {term:?}", name::<S>());
    }
    // `!` is the pattern's escape character: as text, it is matched like any other.
    let bang = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity_name("a!b_c")
        .build();
    let decoy = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity_name("a!bXc")
        .build();
    store
        .record_batch(vec![bang.clone(), decoy.clone()])
        .await
        .unwrap();
    for term in ["!b_", "A!B_C", "!"] {
        let got = all_pages(store, &q().text(term)).await;
        let expected = if term == "!" {
            vec![decoy.id, bang.id]
        } else {
            vec![bang.id]
        };
        assert_eq!(ids(&got), expected, "{}: {term:?}", name::<S>());
    }
    let mut data = data;
    data.extend([accented, bang, decoy]);
    // Searched columns: actor name, entity id, API key name, details.
    assert!(check(store, &data, q().text("user 3")).await > 0);
    assert!(check(store, &data, q().text("E6")).await > 0);
    assert!(check(store, &data, q().text("KEY 2")).await > 0);
    // The table survived the SQL fragment.
    assert_eq!(stored(store, &t).await, data.len() as u64);
}

/// Free text never matches across two columns, and refuses control characters.
pub async fn free_text_never_matches_across_columns<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let limits = crate::Limits {
        details: 10_000,
        ..Default::default()
    };
    let entry = |details: String| {
        let mut e = AuditEntry::builder(Action::Update)
            .tenant(&t)
            .team("ops")
            .entity("Thing", "eps")
            .entity_name("alpha")
            .details(details)
            .api_key(ApiKeyRef::new("k", "zeta"))
            .limits(limits)
            .build();
        e.actor_name = Some("delta".into());
        e
    };
    // One with short texts, one whose texts are long (PostgreSQL searches those in the table
    // rather than in its covering index).
    let short = entry("beta gamma".into());
    let long = entry(format!("{} beta gamma", "x".repeat(2500)));
    store
        .record_batch(vec![short.clone(), long.clone()])
        .await
        .unwrap();
    let mut both = ids(&sorted(vec![short, long], Order::Desc));
    both.sort();
    for scope in [Scope::tenant(&t), Scope::team(&t, "ops")] {
        let q = || AuditQuery::new(scope.clone());
        for term in ["beta gamma", "ta ga", "ALPHA", "zeta", "eps", "delta"] {
            let mut got = ids(&all_pages(store, &q().text(term)).await);
            got.sort();
            assert_eq!(got, both, "{}: {term:?}", name::<S>());
        }
        // Each of these spans the end of one column and the start of the next.
        for term in [
            "alphabeta",
            "alpha beta",
            "gammadelta",
            "gamma delta",
            "deltaeps",
            "epszeta",
            "eps zeta",
            "alpha%beta",
            "alpha_beta",
        ] {
            let got = all_pages(store, &q().text(term)).await;
            assert!(
                got.is_empty(),
                "{}: {term:?} matched across columns",
                name::<S>()
            );
        }
        // A separator, whatever a backend uses between columns, cannot be typed.
        for term in ["alpha\u{1f}beta", "alpha\nbeta", "alpha\tbeta"] {
            assert_eq!(invalid_parameter(store.query(&q().text(term)).await), "q");
        }
    }
}

/// Free text finds matches in long texts as in short ones, in keyset order.
pub async fn free_text_finds_long_texts_in_order<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let limits = crate::Limits {
        details: 10_000,
        ..Default::default()
    };
    // Details that bring the searched texts of `e` (and its tenant and team) to `total` bytes,
    // with `word` at the end: 2,000 and less is PostgreSQL's covering index, more is not.
    let fill = |e: &AuditEntry, total: usize, word: &str| {
        let used: usize = [
            &e.tenant_id,
            &e.team_id,
            &e.entity_name,
            &e.actor_name,
            &e.entity_id,
            &e.api_key_name,
        ]
        .iter()
        .map(|v| v.as_deref().map_or(0, str::len))
        .sum();
        format!("{}{word}", "x".repeat(total - used - word.len()))
    };
    let mut data = Vec::new();
    for i in 0..36 {
        let mut e = AuditEntry::builder(Action::Update)
            .tenant(&t)
            .entity("Thing", format!("e{i}"))
            .entity_name(format!("thing {i}"))
            .occurred_at(base_time() + Duration::milliseconds((i / 2) as i64))
            .limits(limits)
            .build();
        if i % 4 < 2 {
            e.team_id = Some("ops".into());
        }
        let word = if i % 3 == 2 { "hay" } else { "needle" };
        e.details = Some(match i % 6 {
            0 | 1 => fill(&e, 2000, word),
            2 | 3 => fill(&e, 2001, word),
            4 => fill(&e, 3000, word),
            _ => format!("short {word}"),
        });
        data.push(e);
    }
    store.record_batch(data.clone()).await.unwrap();
    for scope in [Scope::tenant(&t), Scope::team(&t, "ops")] {
        let q = || AuditQuery::new(scope.clone());
        let n = check(store, &data, q().text("NEEDLE")).await;
        assert!(n > 5, "{}: {n}", name::<S>());
        check(store, &data, q().text("hay")).await;
        check(store, &data, q().text("xneedle")).await;
        check(
            store,
            &data,
            q().text("needle")
                .from(base_time() + Duration::milliseconds(3))
                .to(base_time() + Duration::milliseconds(15)),
        )
        .await;
        assert_eq!(check(store, &data, q().text("nowhere")).await, 0);
    }
}

/// `from` and `to` select `[from, to)`, to the microsecond.
pub async fn time_range_is_half_open<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let at = |ms: i64| base_time() + Duration::milliseconds(ms);
    let entries: Vec<AuditEntry> = (0..5)
        .map(|i| {
            AuditEntry::builder(Action::Create)
                .tenant(&t)
                .occurred_at(at(i))
                .build()
        })
        .collect();
    store.record_batch(entries.clone()).await.unwrap();
    let q = AuditQuery::new(Scope::tenant(&t))
        .from(at(1))
        .to(at(3))
        .order(Order::Asc);
    let got = all_pages(store, &q).await;
    assert_eq!(ids(&got), ids(&entries[1..3]), "{}", name::<S>());
    // One microsecond either side of an entry.
    let q = AuditQuery::new(Scope::tenant(&t))
        .from(at(2) - Duration::microseconds(1))
        .to(at(2) + Duration::microseconds(1));
    assert_eq!(ids(&all_pages(store, &q).await), vec![entries[2].id]);
    let q = AuditQuery::new(Scope::tenant(&t))
        .from(at(2) + Duration::microseconds(1))
        .to(at(3));
    assert!(all_pages(store, &q).await.is_empty());
}

/// Entries built directly (or deserialised) may carry nanoseconds; the store keeps
/// microseconds, as its cursors do, so paging one at a time still visits each entry once.
pub async fn nanosecond_timestamps_page_like_any_other<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + Duration::nanoseconds(1_234_567);
    let data: Vec<AuditEntry> = (0..3)
        .map(|_| {
            let mut entry = AuditEntry::builder(Action::Create).tenant(&t).build();
            entry.occurred_at = at;
            entry
        })
        .collect();
    store.record_batch(data.clone()).await.unwrap();
    for order in [Order::Desc, Order::Asc] {
        let paged = all_pages(
            store,
            &AuditQuery::new(Scope::tenant(&t)).order(order).limit(1),
        )
        .await;
        let mut got = ids(&paged);
        got.sort();
        let mut want = ids(&data);
        want.sort();
        assert_eq!(got, want, "{} {order:?}", name::<S>());
        assert!(
            paged
                .iter()
                .all(|e| e.occurred_at == at - Duration::nanoseconds(567)),
            "{}",
            name::<S>()
        );
    }
}

/// Times of whole seconds, milliseconds and microseconds sort and filter as time.
pub async fn timestamps_of_any_precision_sort_and_filter<S: AuditStore + AuditSink>(store: &S) {
    // Whole seconds, milliseconds and microseconds: SQLite keeps text whose fraction has 0, 3
    // or 6 digits, which must still sort and compare as time.
    let t = tenant();
    let t0 = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
    let offsets_us = [
        0, 1, 999, 1_000, 1_001, 100_000, 100_001, 999_999, 1_000_000, 1_500_000, 1_500_001,
        59_999_999, 60_000_000,
    ];
    let data: Vec<AuditEntry> = offsets_us
        .iter()
        .rev()
        .map(|us| {
            AuditEntry::builder(Action::Create)
                .tenant(&t)
                .occurred_at(t0 + Duration::microseconds(*us))
                .build()
        })
        .collect();
    store.record_batch(data.clone()).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    assert_eq!(check(store, &data, q()).await, data.len());
    for (from, to) in [
        (0, 1_000),
        (1, 1_001),
        (999, 100_000),
        (1_000, 1_000_000),
        (100_001, 1_500_001),
        (1_000_000, 60_000_000),
    ] {
        let n = check(
            store,
            &data,
            q().from(t0 + Duration::microseconds(from))
                .to(t0 + Duration::microseconds(to)),
        )
        .await;
        assert!(n > 0, "{}: [{from}, {to}) matched nothing", name::<S>());
    }
}

/// Pages of any size visit each entry once across runs of equal timestamps, in both orders; cursors survive their text form; an exactly full last page has no cursor.
pub async fn paging_across_equal_timestamps_in_both_orders<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let same = base_time();
    // 23 entries at one instant, between entries before and after it.
    let mut entries = Vec::new();
    entries.push(
        AuditEntry::builder(Action::Create)
            .tenant(&t)
            .occurred_at(same - Duration::microseconds(1))
            .build(),
    );
    for _ in 0..23 {
        entries.push(
            AuditEntry::builder(Action::Update)
                .tenant(&t)
                .occurred_at(same)
                .build(),
        );
    }
    entries.push(
        AuditEntry::builder(Action::Delete)
            .tenant(&t)
            .occurred_at(same + Duration::microseconds(1))
            .build(),
    );
    // Stored in an order unrelated to the ids.
    let mut shuffled = entries.clone();
    shuffled.reverse();
    shuffled.swap(3, 17);
    store.record_batch(shuffled).await.unwrap();

    for order in [Order::Desc, Order::Asc] {
        let expected = sorted(entries.clone(), order);
        for limit in [1, 5, 7, 23, 24, 25, 26] {
            let query = AuditQuery::new(Scope::tenant(&t)).order(order).limit(limit);
            let got = all_pages(store, &query).await;
            assert_eq!(
                ids(&got),
                ids(&expected),
                "{}: order {order}, limit {limit}",
                name::<S>()
            );
        }
        // A page boundary inside the run of equal timestamps.
        let first = store
            .query(&AuditQuery::new(Scope::tenant(&t)).order(order).limit(10))
            .await
            .unwrap();
        assert_eq!(first.items[9].occurred_at, same);
        let cursor = first.next_cursor.clone().unwrap();
        assert_eq!(cursor.id(), first.items[9].id);
        let second = store
            .query(
                &AuditQuery::new(Scope::tenant(&t))
                    .order(order)
                    .limit(10)
                    .cursor(cursor),
            )
            .await
            .unwrap();
        assert_eq!(second.items[0].occurred_at, same);
        assert_eq!(ids(&second.items), ids(&expected[10..20]));
        // The cursor also survives its text form.
        let text = second.next_cursor.unwrap().to_string();
        let third = store
            .query(
                &AuditQuery::new(Scope::tenant(&t))
                    .order(order)
                    .limit(10)
                    .cursor(text.parse().unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(ids(&third.items), ids(&expected[20..]));
        assert_eq!(third.next_cursor, None);
    }
    // An exactly full last page has no cursor.
    let page = store
        .query(&AuditQuery::new(Scope::tenant(&t)).limit(25))
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (25, None));
}

/// A scope holds in `query`, `get` and `export`: no filter widens it, and an entry outside it is `None`.
pub async fn scope_isolation_in_query_get_and_export<S: AuditStore + AuditSink>(store: &S) {
    let a = tenant();
    let other = tenant();
    let mk = |tenant: &str, team: Option<&str>| {
        let mut builder = AuditEntry::builder(Action::Update)
            .tenant(tenant)
            .entity("Secret", "shared-id")
            .entity_name("shared name");
        if let Some(team) = team {
            builder = builder.team(team);
        }
        builder.build()
    };
    let a_ops = mk(&a, Some("ops"));
    let a_sales = mk(&a, Some("sales"));
    let a_none = mk(&a, None);
    let b_ops = mk(&other, Some("ops"));
    let no_tenant = AuditEntry::builder(Action::Update)
        .entity("Secret", "shared-id")
        .build();
    store
        .record_batch(vec![
            a_ops.clone(),
            a_sales.clone(),
            a_none.clone(),
            b_ops.clone(),
            no_tenant.clone(),
        ])
        .await
        .unwrap();

    let scope_a = Scope::tenant(&a);
    let listed = all_pages(store, &AuditQuery::new(scope_a.clone()).text("shared")).await;
    let listed: HashSet<_> = ids(&listed).into_iter().collect();
    assert_eq!(listed, HashSet::from([a_ops.id, a_sales.id, a_none.id]));
    // Filters cannot widen a scope.
    let filtered = all_pages(
        store,
        &AuditQuery::new(scope_a.clone()).entity_id("shared-id"),
    )
    .await;
    assert!(
        filtered
            .iter()
            .all(|e| e.tenant_id.as_deref() == Some(a.as_str()))
    );

    let team = Scope::team(&a, "ops");
    assert_eq!(
        ids(&all_pages(store, &AuditQuery::new(team.clone())).await),
        vec![a_ops.id]
    );

    for (scope, id, visible) in [
        (&scope_a, a_ops.id, true),
        (&scope_a, b_ops.id, false),
        (&scope_a, no_tenant.id, false),
        (&team, a_ops.id, true),
        (&team, a_sales.id, false),
        (&team, a_none.id, false),
        (&team, b_ops.id, false),
        (&Scope::All, b_ops.id, true),
        (&Scope::All, no_tenant.id, true),
    ] {
        let got = store.get(scope, id).await.unwrap();
        assert_eq!(
            got.is_some(),
            visible,
            "{}: get {id} in {scope:?}",
            name::<S>()
        );
    }
    assert_eq!(
        store.get(&scope_a, uuid::Uuid::now_v7()).await.unwrap(),
        None
    );

    let exported: Vec<AuditEntry> = store
        .export(&AuditQuery::new(Scope::tenant(&other)))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(ids(&exported), vec![b_ops.id]);
    let exported: Vec<AuditEntry> = store
        .export(&AuditQuery::new(team))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(ids(&exported), vec![a_ops.id]);
}

/// Tenant ids and filter values compare exactly: case and trailing spaces count.
pub async fn tenant_ids_compare_exactly<S: AuditStore + AuditSink>(store: &S) {
    // Tenants whose ids differ only in case or trailing space are different tenants.
    let base = tenant();
    let variants = [base.clone(), base.to_uppercase(), format!("{base} ")];
    let entries: Vec<AuditEntry> = variants
        .iter()
        .map(|t| AuditEntry::builder(Action::Create).tenant(t).build())
        .collect();
    store.record_batch(entries.clone()).await.unwrap();
    for (t, entry) in variants.iter().zip(&entries) {
        let got = all_pages(store, &AuditQuery::new(Scope::tenant(t))).await;
        assert_eq!(ids(&got), vec![entry.id], "{}: tenant {t:?}", name::<S>());
        for other in &entries {
            let visible = store.get(&Scope::tenant(t), other.id).await.unwrap();
            assert_eq!(visible.is_some(), other.id == entry.id);
        }
    }
    // Filter values compare exactly too.
    let t = tenant();
    let e = AuditEntry::builder(Action::Create)
        .tenant(&t)
        .entity_type("ApiKey")
        .build();
    store.record(e).await.unwrap();
    let q = AuditQuery::new(Scope::tenant(&t));
    assert_eq!(
        all_pages(store, &q.clone().entity_type("apikey"))
            .await
            .len(),
        0
    );
    assert_eq!(
        all_pages(store, &q.clone().entity_type("ApiKey "))
            .await
            .len(),
        0
    );
    assert_eq!(all_pages(store, &q.entity_type("ApiKey")).await.len(), 1);
}

/// Recording an id the store holds does nothing, even with other content.
pub async fn reinserting_is_a_no_op<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let first = AuditEntry::builder(Action::Create).tenant(&t).build();
    store.record(first.clone()).await.unwrap();
    store.record(first.clone()).await.unwrap();
    // A changed copy under the same id does not overwrite the stored entry.
    let mut altered = first.clone();
    altered.details = Some("tampered".into());
    store.record(altered).await.unwrap();
    let others: Vec<AuditEntry> = (0..3)
        .map(|_| AuditEntry::builder(Action::Update).tenant(&t).build())
        .collect();
    let mut batch = vec![first.clone(), others[0].clone(), others[0].clone()];
    batch.extend(others.iter().cloned());
    store.record_batch(batch.clone()).await.unwrap();
    store.record_batch(batch).await.unwrap();
    store.record_batch(Vec::new()).await.unwrap();
    assert_eq!(stored(store, &t).await, 4, "{}", name::<S>());
    let stored = store.get(&Scope::tenant(&t), first.id).await.unwrap();
    assert_eq!(stored, Some(first));
}

/// Erasing an actor replaces the actor name, IP address and user agent of every entry of
/// theirs, in every tenant, with the erasure's marker, touches nothing else, and counts each
/// entry once.
pub async fn erasing_an_actor_replaces_their_personal_fields_only<S: AuditStore + AuditSink>(
    store: &S,
) {
    let (t, other_tenant) = (tenant(), tenant());
    let person = format!("u-{}", uuid::Uuid::now_v7());
    let by = |tenant: &str, actor: &str, n: usize| {
        let mut entry = AuditEntry::builder(Action::Update)
            .actor(Actor::user(actor, format!("{actor}@example.com")))
            .tenant(tenant)
            .entity("ConnectionProfile", format!("p-{n}"))
            .build();
        entry.ip = Some("203.0.113.9".parse().unwrap());
        entry.user_agent = Some("curl/8.5.0".into());
        entry
    };
    let mut entries: Vec<AuditEntry> = (0..3).map(|n| by(&t, &person, n)).collect();
    entries.push(by(&other_tenant, &person, 3));
    entries.push(by(&t, "u-someone-else", 4));
    store.record_batch(entries.clone()).await.unwrap();
    let Some(erased) = store.erase_actor(&person).await.unwrap() else {
        return; // this store cannot erase
    };
    assert_eq!(erased, 4, "{}", name::<S>());
    assert_eq!(store.erase_actor(&person).await.unwrap(), Some(0));
    for entry in &entries {
        let stored = store.get(&Scope::All, entry.id).await.unwrap().unwrap();
        let mut expected = entry.clone();
        if entry.actor_id.as_deref() == Some(person.as_str()) {
            crate::chain::erase_personal(&mut expected);
        }
        assert_eq!(stored, expected, "{}", name::<S>());
    }
}

/// `n` entries of `tenant` that occurred `days_ago` days ago, a millisecond apart.
fn aged(tenant: &str, days_ago: i64, n: usize) -> Vec<AuditEntry> {
    let at = Utc::now() - Duration::days(days_ago);
    (0..n)
        .map(|i| {
            let mut entry = AuditEntry::builder(Action::Update)
                .actor(Actor::user("u-1", "ada@example.com"))
                .tenant(tenant)
                .entity("ConnectionProfile", format!("p-{days_ago}-{i}"))
                .build();
            entry.occurred_at = at + Duration::milliseconds(i as i64);
            entry
        })
        .collect()
}

/// A purge deletes its tenant's entries older than its cutoff (a dry run only counts them),
/// in batches smaller than the whole, leaves newer entries and other tenants alone, records
/// itself as a `Purge` entry in the tenant's log, and, where the store keeps a chain, leaves it
/// verifiable from its new start.
pub async fn a_purge_deletes_its_tenants_older_entries_only_and_records_itself<
    S: AuditStore + AuditSink,
>(
    store: &S,
) {
    use crate::retention::{PURGE_ENTRIES, PurgeRequest};
    let (t, other) = (tenant(), tenant());
    let old = aged(&t, 40, 7);
    let recent = aged(&t, 2, 3);
    let other_old = aged(&other, 40, 4);
    store.record_batch(old.clone()).await.unwrap();
    store.record_batch(recent.clone()).await.unwrap();
    store.record_batch(other_old.clone()).await.unwrap();
    let before = Utc::now() - Duration::days(30);
    let request = PurgeRequest::new(Some(&t), before).batch(3);
    let Some(dry) = store.purge(&request.clone().dry_run(true)).await.unwrap() else {
        return; // this store cannot purge
    };
    assert_eq!(
        (dry.matched, dry.deleted, dry.dry_run),
        (7, 0, true),
        "{}",
        name::<S>()
    );
    assert_eq!(stored(store, &t).await, 10, "a dry run deleted entries");
    let report = store.purge(&request).await.unwrap().unwrap();
    assert_eq!((report.matched, report.deleted), (7, 7), "{}", name::<S>());
    assert!(report.held.is_none());
    let left = all_pages(store, &AuditQuery::new(Scope::tenant(&t))).await;
    let purge = left
        .iter()
        .find(|e| e.action == Action::Purge)
        .expect("the purge's own entry");
    assert_eq!(Some(purge.id), report.entry_id);
    assert_eq!(purge.metadata[PURGE_ENTRIES], json!(7));
    let mut kept: Vec<uuid::Uuid> = left
        .iter()
        .filter(|e| e.action != Action::Purge)
        .map(|e| e.id)
        .collect();
    kept.sort();
    let mut expected = ids(&recent);
    expected.sort();
    assert_eq!(kept, expected, "{}", name::<S>());
    assert_eq!(
        stored(store, &other).await,
        4,
        "another tenant's entries went"
    );
    // Nothing more to go: no second `Purge` entry.
    let again = store.purge(&request).await.unwrap().unwrap();
    assert_eq!((again.matched, again.deleted, again.entry_id), (0, 0, None));
    assert_eq!(stored(store, &t).await, 4);
    if let Some(chain) = store.verify_chain(Some(&t)).await.unwrap() {
        assert!(chain.is_intact(), "{}: {:?}", name::<S>(), chain.broken);
        assert_eq!((chain.start, chain.checked), (7, 4), "{}", name::<S>());
        assert_eq!(report.chain_start, 7);
    }
}

/// While a legal hold stands on a tenant, a purge deletes nothing and says so; lifted, the
/// purge goes ahead. A hold on one tenant does not hold another.
pub async fn a_legal_hold_suspends_purges_until_lifted<S: AuditStore + AuditSink>(store: &S) {
    use crate::retention::{LegalHold, PurgeRequest};
    let (t, other) = (tenant(), tenant());
    store.record_batch(aged(&t, 40, 3)).await.unwrap();
    store.record_batch(aged(&other, 40, 2)).await.unwrap();
    let hold = LegalHold::new(Some(&t), "matter 2026-114: preserve everything")
        .placed_by("legal@example.com");
    if !store.set_legal_hold(Some(&t), Some(&hold)).await.unwrap() {
        return; // this store cannot hold
    }
    let found = store.legal_hold(Some(&t)).await.unwrap().expect("the hold");
    assert_eq!(found.reason, hold.reason);
    assert_eq!(found.tenant_id.as_deref(), Some(t.as_str()));
    assert_eq!(found.placed_by.as_deref(), Some("legal@example.com"));
    assert!(store.legal_hold(Some(&other)).await.unwrap().is_none());
    let before = Utc::now() - Duration::days(30);
    let held = store
        .purge(&PurgeRequest::new(Some(&t), before))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.deleted, 0);
    assert_eq!(held.held.map(|h| h.reason), Some(hold.reason.clone()));
    assert_eq!(stored(store, &t).await, 3, "{}", name::<S>());
    let free = store
        .purge(&PurgeRequest::new(Some(&other), before))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(free.deleted, 2, "a hold on one tenant held another");
    assert!(store.set_legal_hold(Some(&t), None).await.unwrap());
    assert!(store.legal_hold(Some(&t)).await.unwrap().is_none());
    let lifted = store
        .purge(&PurgeRequest::new(Some(&t), before))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lifted.deleted, 3, "{}", name::<S>());
}

/// Batches of sizes that are not a statement size: the last rows are padded with repeats of
/// one of them, which every backend must skip, so each entry is stored once.
pub async fn batches_of_any_size_store_each_entry_once<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let sizes = [3usize, 37, 99, 101, 731, 999];
    let mut ids = Vec::new();
    for size in sizes {
        let batch: Vec<AuditEntry> = (0..size)
            .map(|i| {
                AuditEntry::builder(Action::Create)
                    .tenant(&t)
                    .entity("Row", format!("{size}-{i}"))
                    .build()
            })
            .collect();
        ids.extend(batch.iter().map(|e| e.id));
        store.record_batch(batch).await.unwrap();
    }
    assert_eq!(
        stored(store, &t).await,
        sizes.iter().sum::<usize>() as u64,
        "{}",
        name::<S>()
    );
    let mut stored: Vec<uuid::Uuid> = store
        .export(&AuditQuery::new(Scope::tenant(&t)).order(Order::Asc))
        .map(|e| e.unwrap().id)
        .collect()
        .await;
    stored.sort();
    ids.sort();
    assert_eq!(stored, ids, "{}", name::<S>());
}

/// A batch of thousands of entries is stored whole.
pub async fn a_batch_larger_than_one_statement_is_stored_whole<S: AuditStore + AuditSink>(
    store: &S,
) {
    let t = tenant();
    let entries: Vec<AuditEntry> = (0..2500)
        .map(|i| {
            AuditEntry::builder(Action::Create)
                .tenant(&t)
                .entity("Row", i.to_string())
                .occurred_at(base_time() + Duration::microseconds(i))
                .build()
        })
        .collect();
    store.record_batch(entries.clone()).await.unwrap();
    assert_eq!(stored(store, &t).await, 2500, "{}", name::<S>());
}

/// An export streams every match in the query's order, honours filters, continues from a cursor and stops when dropped.
pub async fn export_streams_every_match_in_chunks<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    // More than two export chunks, with runs of equal timestamps across chunk boundaries.
    let entries: Vec<AuditEntry> = (0..2300)
        .map(|i| {
            AuditEntry::builder(if i % 10 == 0 {
                Action::Delete
            } else {
                Action::Update
            })
            .tenant(&t)
            .occurred_at(base_time() + Duration::microseconds(i / 7))
            .build()
        })
        .collect();
    store.record_batch(entries.clone()).await.unwrap();
    for order in [Order::Desc, Order::Asc] {
        let query = AuditQuery::new(Scope::tenant(&t)).order(order).limit(3);
        let exported: Vec<AuditEntry> = store.export(&query).map(|r| r.unwrap()).collect().await;
        assert_eq!(
            ids(&exported),
            ids(&sorted(entries.clone(), order)),
            "{}",
            name::<S>()
        );
    }
    // Filters apply.
    let query = AuditQuery::new(Scope::tenant(&t)).action(Action::Delete);
    let exported: Vec<AuditEntry> = store.export(&query).map(|r| r.unwrap()).collect().await;
    assert_eq!(exported.len(), 230);
    assert!(exported.iter().all(|e| e.action == Action::Delete));
    // An export can continue a listing from its cursor.
    let query = AuditQuery::new(Scope::tenant(&t)).limit(100);
    let first = store.query(&query).await.unwrap();
    let rest: Vec<AuditEntry> = store
        .export(&query.clone().cursor(first.next_cursor.unwrap()))
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(first.items.len() + rest.len(), entries.len());
    assert!(
        rest.iter()
            .all(|e| !first.items.iter().any(|f| f.id == e.id))
    );
    // Taking a few entries reads no further than needed, and ends cleanly.
    let few: Vec<_> = store.export(&query).take(5).collect().await;
    assert_eq!(few.len(), 5);
}

/// Bad input (limits, long or control-character text, altered or foreign cursors, SQL fragments) is a clear `InvalidQuery` naming the parameter, and changes nothing.
pub async fn bad_input_is_a_clear_error<S: AuditStore + AuditSink>(store: &S) {
    let t = tenant();
    let other = tenant();
    let entries: Vec<AuditEntry> = (0..5)
        .map(|_| AuditEntry::builder(Action::Create).tenant(&t).build())
        .collect();
    store.record_batch(entries).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t)).limit(2);

    assert_eq!(invalid_parameter(store.query(&q().limit(0)).await), "limit");
    assert_eq!(
        invalid_parameter(store.query(&q().limit(MAX_LIMIT + 1)).await),
        "limit"
    );
    assert_eq!(
        invalid_parameter(store.query(&q().limit(u32::MAX)).await),
        "limit"
    );
    assert_eq!(
        invalid_parameter(store.query(&q().text("x".repeat(MAX_TEXT_CHARS + 1))).await),
        "q"
    );
    assert_eq!(invalid_parameter(store.query(&q().text("a\0b")).await), "q");
    for trace_id in ["req-1", "4BF92F3577B34DA6A3CE929D0E0E4736", &"0".repeat(32)] {
        assert_eq!(
            invalid_parameter(store.query(&q().trace_id(trace_id)).await),
            "trace_id"
        );
    }

    let cursor = store.query(&q()).await.unwrap().next_cursor.unwrap();
    // Tampered: every single-character change of the text.
    let text = cursor.to_string();
    for i in [0, 5, text.len() / 2, text.len() - 1] {
        let mut bytes = text.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            invalid_parameter(altered.parse::<Cursor>().map_err(StoreError::from)),
            "cursor"
        );
    }
    assert_eq!(
        invalid_parameter("' OR 1=1 --".parse::<Cursor>().map_err(StoreError::from)),
        "cursor"
    );
    // Foreign: another tenant's query, other filters, the other order.
    for foreign in [
        AuditQuery::new(Scope::tenant(&other)),
        AuditQuery::new(Scope::All),
        q().action(Action::Create),
        q().order(Order::Asc),
    ] {
        let query = foreign.limit(2).cursor(cursor.clone());
        assert_eq!(invalid_parameter(store.query(&query).await), "cursor");
        let mut export = store.export(&query);
        let first = export.next().await.unwrap();
        assert_eq!(invalid_parameter(first), "cursor");
        assert!(export.next().await.is_none());
    }
    // The same cursor with its own query still works.
    let page = store.query(&q().cursor(cursor)).await.unwrap();
    assert_eq!(page.items.len(), 2, "{}", name::<S>());

    // Text full of SQL and LIKE syntax is just text.
    for text in [
        "'",
        "\"",
        "\\",
        "%'; DELETE FROM audit_log; --",
        "_%_",
        ") OR (1=1",
        "\\' OR '1'='1",
    ] {
        let got = store.query(&q().text(text)).await.unwrap();
        assert!(got.items.is_empty(), "{}: {text:?}", name::<S>());
    }
    assert_eq!(stored(store, &t).await, 5);
}

/// `Scope::All` sees every tenant, and entries with none.
pub async fn unscoped_queries_see_every_tenant<S: AuditStore + AuditSink>(store: &S) {
    // Other tests write to the same database, so narrow by a unique entity id.
    let marker = tenant();
    let entries: Vec<AuditEntry> = [Some(tenant()), Some(tenant()), None]
        .into_iter()
        .map(|t| {
            let mut builder = AuditEntry::builder(Action::Update).entity("Marker", &marker);
            if let Some(t) = t {
                builder = builder.tenant(t);
            }
            builder.build()
        })
        .collect();
    store.record_batch(entries.clone()).await.unwrap();
    let got = all_pages(
        store,
        &AuditQuery::new(Scope::All).entity_id(&marker).limit(2),
    )
    .await;
    assert_eq!(
        ids(&got),
        ids(&sorted(entries, Order::Desc)),
        "{}",
        name::<S>()
    );
}

/// A tenant's entries over three UTC days, two of them a microsecond either side of midnight
/// (entity id `boundary`): actions, actors (one renamed, one with no actor), entity types,
/// teams and API keys vary with different periods.
fn summary_dataset(t: &str) -> Vec<AuditEntry> {
    let day = Utc.with_ymd_and_hms(2030, 6, 1, 0, 0, 0).unwrap();
    let actions = [
        Action::Create,
        Action::Update,
        Action::Update,
        Action::Delete,
        Action::Custom("Approve".into()),
    ];
    let types = ["ConnectionProfile", "ApiKey", "Tenant"];
    let mut entries: Vec<AuditEntry> = (0..60)
        .map(|i| {
            let mut builder = AuditEntry::builder(actions[i % 5].clone())
                .tenant(t)
                .entity(types[i % 3], format!("e{}", i % 4))
                .occurred_at(day + Duration::minutes(71 * i as i64) + Duration::microseconds(7));
            if i % 4 != 3 {
                builder = builder.team(format!("team{}", i % 2));
            }
            if i % 6 != 5 {
                builder = builder.api_key(ApiKeyRef::new(
                    format!("k{}", i % 3),
                    format!("key {}", i % 3),
                ));
            }
            let mut entry = builder.build();
            if i % 7 != 6 {
                let actor = i % 4;
                // u1 renamed itself half-way through.
                let name = if actor == 1 && i >= 30 {
                    "Bea <bea@new.example>".to_owned()
                } else {
                    format!("User {actor} <u{actor}@acme.example>")
                };
                entry.actor_id = Some(format!("u{actor}"));
                entry.actor_name = Some(name);
                entry.actor_kind = if actor == 3 {
                    ActorKind::ApiKey
                } else {
                    ActorKind::User
                };
            }
            entry
        })
        .collect();
    let midnight = day + Duration::days(1);
    for at in [midnight - Duration::microseconds(1), midnight] {
        entries.push(
            AuditEntry::builder(Action::Revoke)
                .tenant(t)
                .actor(Actor::user("u9", "Edge"))
                .entity("ApiKey", "boundary")
                .occurred_at(at)
                .build(),
        );
    }
    entries
}

/// A summary counts per UTC day and per action, actor or entity type exactly what
/// [`Summary::tally`](super::Summary::tally) counts of the matching entries: within the scope
/// only, with every filter applied, cursor and limit ignored, days cut at midnight UTC.
pub async fn summaries_count_per_utc_day_and_key_within_scope<S: AuditStore + AuditSink>(
    store: &S,
) {
    use super::{Summary, SummaryBy};
    let t = tenant();
    let other = tenant();
    let data = summary_dataset(&t);
    store.record_batch(data.clone()).await.unwrap();
    store.record_batch(summary_dataset(&other)).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    let day = Utc.with_ymd_and_hms(2030, 6, 1, 0, 0, 0).unwrap();
    let queries = [
        q(),
        q().action(Action::Update)
            .action(Action::Custom("Approve".into())),
        q().entity_type("ApiKey"),
        q().actor_id("u1"),
        q().actor_kind(ActorKind::ApiKey),
        q().api_key("k2"),
        q().outcome(Outcome::Success),
        q().from(day + Duration::hours(20))
            .to(day + Duration::hours(50)),
        q().text("bea@new"),
        AuditQuery::new(Scope::team(&t, "team1")),
        q().limit(1).order(Order::Asc),
    ];
    for query in queries {
        for by in SummaryBy::ALL {
            let expected = Summary::tally(by, data.iter().filter(|e| query.matches(e)));
            let got = store.summary(&query, by).await.unwrap();
            assert_eq!(got, expected, "{}: {by} of {query:?}", name::<S>());
        }
    }
    // The whole tenant by action: every entry counted once, on three days.
    let all = store.summary(&q(), SummaryBy::Action).await.unwrap();
    assert_eq!(all.total(), data.len() as u64);
    let mut days: Vec<_> = all.counts.iter().map(|c| c.day).collect();
    days.dedup();
    assert_eq!(days.len(), 3, "{}: {:?}", name::<S>(), all.counts);
    // A microsecond before midnight and midnight itself fall on two days.
    let edge = store
        .summary(&q().entity_id("boundary"), SummaryBy::Actor)
        .await
        .unwrap();
    let first = day.date_naive();
    assert_eq!(
        edge.counts,
        [
            super::DayCount {
                day: first,
                key: Some("u9".into()),
                count: 1
            },
            super::DayCount {
                day: first.succ_opt().unwrap(),
                key: Some("u9".into()),
                count: 1
            },
        ],
        "{}",
        name::<S>()
    );
    // Entries without an actor are counted under no key.
    let by_actor = store.summary(&q(), SummaryBy::Actor).await.unwrap();
    assert!(by_actor.totals().iter().any(|(key, _)| key.is_none()));
    // Nothing of another tenant, and an empty summary for nothing.
    let none = store
        .summary(&q().entity_type("Nothing"), SummaryBy::Action)
        .await
        .unwrap();
    assert!(none.counts.is_empty());
}

/// The actors seen in a scope: each with the name and kind of their latest entry, their count
/// and when last seen, most recently seen first, filtered by a part of their id or name, and
/// never more than the limit; another tenant's actors are never listed.
pub async fn actors_are_listed_latest_first_within_scope<S: AuditStore + AuditSink>(store: &S) {
    use super::ActorSeen;
    let t = tenant();
    let other = tenant();
    let data = summary_dataset(&t);
    store.record_batch(data.clone()).await.unwrap();
    let mut strangers = summary_dataset(&other);
    for entry in &mut strangers {
        entry.actor_id = Some(format!("stranger-{}", entry.id));
        entry.actor_name = Some("User 0 <u0@acme.example>".into());
    }
    store.record_batch(strangers).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    let cases: [(AuditQuery, Option<&str>, u32); 9] = [
        (q(), None, 100),
        (q(), None, 2),
        (q(), None, 1),
        (q(), Some("bea@NEW"), 100),
        (q(), Some("User 1"), 100),
        (q(), Some("u3"), 100),
        (q(), Some("100%_"), 100),
        (q().action(Action::Delete), None, 100),
        (AuditQuery::new(Scope::team(&t, "team0")), Some("acme"), 100),
    ];
    for (query, text, limit) in cases {
        let expected = ActorSeen::tally(data.iter().filter(|e| query.matches(e)), text, limit);
        let got = store.actors(&query, text, limit).await.unwrap();
        assert_eq!(got, expected, "{}: {text:?} in {query:?}", name::<S>());
    }
    let all = store.actors(&q(), None, 100).await.unwrap();
    assert_eq!(all.len(), 5, "{}: {all:?}", name::<S>());
    let bea = all.iter().find(|a| a.actor_id == "u1").unwrap();
    assert_eq!(bea.actor_name.as_deref(), Some("Bea <bea@new.example>"));
    assert_eq!(
        bea.count,
        data.iter()
            .filter(|e| e.actor_id.as_deref() == Some("u1"))
            .count() as u64
    );
    assert!(all.windows(2).all(|w| w[0].last_seen >= w[1].last_seen));
}

/// The values a viewer offers in its pickers: the entity types, actions, teams and API keys
/// present in the scope, sorted, each list cut to the values of the most entries.
pub async fn facets_list_what_is_present_in_scope_bounded<S: AuditStore + AuditSink>(store: &S) {
    use super::{ApiKeyFacet, Facets};
    let t = tenant();
    let other = tenant();
    // Value k of each column occurs k + 1 times, so the most frequent are clear.
    let actions = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Custom("Approve".into()),
        Action::Revoke,
    ];
    let make = |tenant: &str, prefix: &str| -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = (0..5usize)
            .flat_map(|k| std::iter::repeat_n(k, k + 1))
            .enumerate()
            .map(|(i, k)| {
                // Key 3's latest entry (the last of k = 3) carries its new name.
                let name = if k == 3 && i == 9 {
                    format!("{prefix}key {k} renamed")
                } else {
                    format!("{prefix}key {k}")
                };
                AuditEntry::builder(actions[k].clone())
                    .tenant(tenant)
                    .team(format!("{prefix}team{k}"))
                    .entity(format!("{prefix}Type{k}"), "1")
                    .api_key(ApiKeyRef::new(format!("{prefix}k{k}"), name))
                    .occurred_at(base_time() + Duration::seconds(i as i64))
                    .build()
            })
            .collect();
        // An entry with none of them adds nothing but its action.
        entries.push(
            AuditEntry::builder(Action::Revoke)
                .tenant(tenant)
                .occurred_at(base_time())
                .build(),
        );
        entries
    };
    let data = make(&t, "");
    store.record_batch(data.clone()).await.unwrap();
    store.record_batch(make(&other, "x-")).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    for (query, limit) in [
        (q(), 200),
        (q(), 2),
        (q(), 1),
        (AuditQuery::new(Scope::team(&t, "team3")), 200),
        (q().action(Action::Create), 200),
    ] {
        let expected = Facets::tally(data.iter().filter(|e| query.matches(e)), limit);
        let got = store.facets(&query, limit).await.unwrap();
        assert_eq!(got, expected, "{}: {query:?}, {limit}", name::<S>());
    }
    let all = store.facets(&q(), 200).await.unwrap();
    assert_eq!(
        all.entity_types,
        ["Type0", "Type1", "Type2", "Type3", "Type4"]
    );
    assert_eq!(all.teams.len(), 5);
    assert_eq!(all.actions.len(), 5);
    assert!(all.api_keys.contains(&ApiKeyFacet {
        id: "k3".into(),
        name: Some("key 3 renamed".into())
    }));
    let two = store.facets(&q(), 2).await.unwrap();
    assert_eq!(two.entity_types, ["Type3", "Type4"], "{}", name::<S>());
    assert_eq!(two.teams, ["team3", "team4"]);
    assert_eq!(
        two.actions,
        [Action::Custom("Approve".into()), Action::Revoke]
    );
    let ids: Vec<&str> = two.api_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["k3", "k4"]);
}

/// Grouped questions validate like queries: the scope, the limits, the actor text.
pub async fn grouped_questions_refuse_bad_input_clearly<S: AuditStore + AuditSink>(store: &S) {
    use super::{MAX_ACTORS, MAX_FACET_VALUES, SummaryBy};
    let q = || AuditQuery::new(Scope::tenant(tenant()));
    assert_eq!(
        invalid_parameter(
            store
                .summary(&AuditQuery::new(Scope::tenant("a\0")), SummaryBy::Action)
                .await
        ),
        "scope"
    );
    assert_eq!(
        invalid_parameter(store.actors(&q(), None, 0).await),
        "limit"
    );
    assert_eq!(
        invalid_parameter(store.actors(&q(), None, MAX_ACTORS + 1).await),
        "limit"
    );
    assert_eq!(
        invalid_parameter(
            store
                .actors(&q(), Some(&"x".repeat(MAX_TEXT_CHARS + 1)), 5)
                .await
        ),
        "q"
    );
    assert_eq!(
        invalid_parameter(store.actors(&q(), Some("a\nb"), 5).await),
        "q"
    );
    assert_eq!(invalid_parameter(store.facets(&q(), 0).await), "limit");
    assert_eq!(
        invalid_parameter(store.facets(&q(), MAX_FACET_VALUES + 1).await),
        "limit"
    );
    assert!(
        store
            .actors(&q(), None, MAX_ACTORS)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.facets(&q(), MAX_FACET_VALUES).await.unwrap(),
        super::Facets::default()
    );
}

/// Intents: recorded twice, stored once; one completed normally (final entry, intent cleared),
/// one whose final entry was stored before the process died, one left alone. Recovery turns
/// only the last into an entry of outcome `unknown`, keeps the final entry of the second, and
/// leaves no intent behind; young intents are not recovered.
pub async fn intents_become_entries_of_unknown_outcome_once<S>(store: &S)
where
    S: AuditStore + AuditSink + crate::IntentStore,
{
    let t = tenant();
    let intent = |id: &str| {
        AuditEntry::builder(Action::Custom("Refund".into()))
            .tenant(&t)
            .entity("Payment", id)
            .outcome(Outcome::Unknown)
            .build()
    };
    let (left, finished, completed) = (intent("left"), intent("finished"), intent("completed"));
    let all = [left.clone(), finished.clone(), completed.clone()];
    store.record_intents(&all).await.unwrap();
    store.record_intents(&all[..1]).await.unwrap();
    let done = |mut entry: AuditEntry| {
        entry.outcome = Outcome::Success;
        entry.status = Some(200);
        entry
    };
    store.record(done(completed.clone())).await.unwrap();
    store.clear_intents(&[completed.id]).await.unwrap();
    store.record(done(finished.clone())).await.unwrap();
    assert_eq!(stored(store, &t).await, 2, "{}", name::<S>());

    // Younger than an hour: nothing to recover yet.
    assert_eq!(
        store
            .recover_intents(std::time::Duration::from_secs(3_600))
            .await
            .unwrap(),
        0,
        "{}",
        name::<S>()
    );
    let recovered = store
        .recover_intents(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(recovered >= 2, "{} recovered {recovered}", name::<S>());
    let entries = all_pages(store, &AuditQuery::new(Scope::tenant(&t))).await;
    let outcome_of = |id| {
        let found: Vec<&AuditEntry> = entries.iter().filter(|e| e.id == id).collect();
        assert_eq!(found.len(), 1, "{}: entry {id} stored once", name::<S>());
        (found[0].outcome, found[0].status)
    };
    assert_eq!(outcome_of(left.id), (Outcome::Unknown, None));
    assert_eq!(outcome_of(finished.id), (Outcome::Success, Some(200)));
    assert_eq!(outcome_of(completed.id), (Outcome::Success, Some(200)));
    assert_eq!(entries.len(), 3);
    // Nothing is left to recover.
    store
        .recover_intents(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(stored(store, &t).await, 3, "{}", name::<S>());
}

/// The team filter and the hiding of the log's own reads work inside the store's query: each
/// selects what [`AuditQuery::matches`] selects, alone and with other filters, and a page of a
/// log where most entries are reads of the log is still full.
pub async fn team_filter_and_hidden_log_reads_apply_inside_the_query<S: AuditStore + AuditSink>(
    store: &S,
) {
    let t = tenant();
    let mut data = dataset(&t, 42);
    // After the dataset, newest: three reads of the log for each other entry, an export of
    // the log, a read without an entity type and a read of something else.
    let after = base_time() + Duration::seconds(1);
    for i in 0..30 {
        let action = match i % 10 {
            7 => Action::Export,
            _ => Action::Read,
        };
        let mut builder = AuditEntry::builder(action)
            .tenant(&t)
            .occurred_at(after + Duration::milliseconds(i));
        builder = match i % 10 {
            8 => builder,
            9 => builder.entity("Invoice", "i1"),
            _ => builder.entity(super::AUDIT_LOG_ENTITY, "x"),
        };
        if i % 2 == 0 {
            builder = builder.team(format!("team{}", i % 4 / 2));
        }
        data.push(builder.build());
    }
    store.record_batch(data.clone()).await.unwrap();
    let q = || AuditQuery::new(Scope::tenant(&t));
    let total = data.len();
    let hidden = data.iter().filter(|e| AuditQuery::is_log_read(e)).count();
    assert_eq!(hidden, 21);
    assert_eq!(check(store, &data, q()).await, total);
    assert_eq!(
        check(store, &data, q().hide_log_reads(true)).await,
        total - hidden,
        "{}",
        name::<S>()
    );
    for query in [
        q().team("team1"),
        q().team("team0").team("team1"),
        q().team("team1").hide_log_reads(true),
        q().hide_log_reads(true).action(Action::Read),
        q().hide_log_reads(true)
            .entity_type(super::AUDIT_LOG_ENTITY),
        q().hide_log_reads(true).team("team0").text("done"),
        AuditQuery::new(Scope::team(&t, "team0")).hide_log_reads(true),
        // Free text that matches the log's reads, with and without them.
        q().text("auditlog"),
        q().text("read"),
        q().hide_log_reads(true).text("auditlog"),
        q().hide_log_reads(true).text("done"),
    ] {
        let n = check(store, &data, query.clone()).await;
        assert!(n > 0 && n < total, "{query:?} matched {n} of {total}");
    }
    assert_eq!(check(store, &data, q().team("nobody")).await, 0);
    // A team filter in a team scope narrows within it: another team's id finds nothing.
    assert_eq!(
        check(
            store,
            &data,
            AuditQuery::new(Scope::team(&t, "team0")).team("team1")
        )
        .await,
        0
    );
    // The newest 30 entries hold 21 hidden reads: a page of 10 is still 10 entries.
    let page = store
        .query(&q().hide_log_reads(true).limit(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10, "{}", name::<S>());
    assert!(page.items.iter().all(|e| !AuditQuery::is_log_read(e)));
    assert!(page.next_cursor.is_some());
    // Exports leave them out too.
    let exported: Vec<AuditEntry> = store
        .export(&q().hide_log_reads(true))
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(exported.len(), total - hidden, "{}", name::<S>());
}

/// A bulk change is found by the id of each object it names, in its tenant (and team) only,
/// next to those objects' own entries, through paging, export, counts and facets; an id it
/// does not name, or names past the bound, does not find it.
pub async fn a_bulk_change_is_found_by_each_id_it_names<S: AuditStore + AuditSink>(store: &S) {
    use crate::BulkChange;
    let (t, other) = (tenant(), tenant());
    let at = |ms: i64| base_time() + Duration::milliseconds(ms);
    // Ids of this run's own, since an unscoped query sees every run's entries.
    let cp = |i: usize| format!("{t}-cp-{i}");
    let ids: Vec<String> = (0..crate::Limits::default().bulk_ids + 5).map(cp).collect();
    let bulk = AuditEntry::builder(Action::Deactivate)
        .tenant(&t)
        .team("ops")
        .entity_type("ConnectionProfile")
        .bulk(
            BulkChange::of(ids.clone())
                .filter("status=active")
                .reason("provider sunset"),
        )
        .occurred_at(at(5))
        .build();
    let own = |id: &str, ms: i64| {
        AuditEntry::builder(Action::Update)
            .tenant(&t)
            .team("ops")
            .entity("ConnectionProfile", id)
            .occurred_at(at(ms))
            .build()
    };
    let before = own(&cp(7), 1);
    let after = own(&cp(7), 9);
    let elsewhere = AuditEntry::builder(Action::Deactivate)
        .tenant(&other)
        .entity_type("ConnectionProfile")
        .bulk(BulkChange::of([cp(7)]))
        .occurred_at(at(6))
        .build();
    let unrelated = own(&cp(usize::MAX), 7);
    store
        .record_batch(vec![
            before.clone(),
            bulk.clone(),
            after.clone(),
            elsewhere.clone(),
            unrelated.clone(),
        ])
        .await
        .unwrap();

    let q = || AuditQuery::new(Scope::tenant(&t));
    // The stored entry reads back whole, its ids included.
    let read = store
        .get(&Scope::tenant(&t), bulk.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, bulk, "{}", name::<S>());
    let kept = BulkChange::read(&read).unwrap();
    assert_eq!(kept.entity_ids().len(), crate::Limits::default().bulk_ids);
    assert_eq!(kept.changed(), ids.len() as u64);

    for order in [Order::Desc, Order::Asc] {
        let got = all_pages(store, &q().entity_id(cp(7)).order(order).limit(1)).await;
        assert_eq!(
            ids_of(&got),
            ids_of(&sorted(
                vec![before.clone(), bulk.clone(), after.clone()],
                order
            )),
            "{}: {order:?}",
            name::<S>()
        );
    }
    // Any named id, alone or with others, with other filters.
    let got = all_pages(store, &q().entity_id(cp(999)).entity_id(cp(usize::MAX))).await;
    assert_eq!(
        ids_of(&got),
        ids_of(&[unrelated.clone(), bulk.clone()]),
        "{}",
        name::<S>()
    );
    let got = all_pages(
        store,
        &q().entity_id(cp(0))
            .entity_type("ConnectionProfile")
            .action(Action::Deactivate)
            .from(at(5))
            .to(at(6)),
    )
    .await;
    assert_eq!(ids_of(&got), vec![bulk.id], "{}", name::<S>());
    assert!(
        all_pages(store, &q().entity_id(cp(7)).action(Action::Delete))
            .await
            .is_empty()
    );
    // Within the team; not another team's, not another tenant's, not past the bound.
    let got = all_pages(
        store,
        &AuditQuery::new(Scope::team(&t, "ops")).entity_id(cp(3)),
    )
    .await;
    assert_eq!(ids_of(&got), vec![bulk.id], "{}", name::<S>());
    assert!(
        all_pages(
            store,
            &AuditQuery::new(Scope::team(&t, "sales")).entity_id(cp(3))
        )
        .await
        .is_empty()
    );
    let got = all_pages(
        store,
        &AuditQuery::new(Scope::tenant(&other)).entity_id(cp(7)),
    )
    .await;
    assert_eq!(ids_of(&got), vec![elsewhere.id], "{}", name::<S>());
    let past = cp(ids.len() - 1);
    assert!(
        all_pages(store, &q().entity_id(past.as_str()))
            .await
            .is_empty()
    );
    // Unscoped: every tenant's.
    let got = all_pages(
        store,
        &AuditQuery::new(Scope::All)
            .entity_id(cp(7))
            .from(at(0))
            .to(at(10)),
    )
    .await;
    let mut want = vec![before.id, bulk.id, after.id, elsewhere.id];
    want.sort();
    let mut got = ids_of(&got);
    got.sort();
    assert_eq!(got, want, "{}", name::<S>());
    // Export, and the grouped questions, count it too.
    let exported: Vec<AuditEntry> = store
        .export(&q().entity_id(cp(7)))
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(exported.len(), 3, "{}", name::<S>());
    let summary = store
        .summary(&q().entity_id(cp(7)), super::SummaryBy::Action)
        .await
        .unwrap();
    let counted: u64 = summary.counts.iter().map(|c| c.count).sum();
    assert_eq!(counted, 3, "{}: {summary:?}", name::<S>());
    let facets = store.facets(&q().entity_id(cp(7)), 10).await.unwrap();
    assert_eq!(
        facets.actions,
        vec![Action::Deactivate, Action::Update],
        "{}: {facets:?}",
        name::<S>()
    );
}

fn ids_of(entries: &[AuditEntry]) -> Vec<uuid::Uuid> {
    entries.iter().map(|e| e.id).collect()
}
