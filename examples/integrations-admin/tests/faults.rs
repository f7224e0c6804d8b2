//! Fault tests against the running binary: the process killed with SIGKILL under load (SQLite
//! and PostgreSQL); on PostgreSQL, the audit store's connection cut under load and restored, in
//! both delivery modes, and shutdown under load on SIGTERM and on Ctrl-C. Real processes, real signals, real sockets, loopback only; each test bounded to a
//! couple of thousand requests and a few seconds of outage.
//!
//! What a test checks afterwards is what an auditor would: every request answered `2xx` left
//! its row and exactly one entry; no entry is duplicated; a request refused with `503` changed
//! nothing. `FAULTS_DEBUG=1` prints the service's log and the moment the database came back.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use audit_test_support::{Backend, TcpProxy, fresh_db};
use support::{
    API_KEYS, PROFILES, Service, TENANTS, Tally, health, killed_under_two_loads, load,
    one_at_a_time, postgres_addr, verify,
};

/// 32 clients, 2,000 `POST /api-keys` (recorded through the layer's queue), while the store's
/// connection is cut for 3 s.
/// Buffered, with a queue of 256 slots so the outage fills it: requests are refused with `503`
/// before their handler runs, and once the database is back the refusals stop within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_store_outage_loses_nothing_and_refusals_stop_within_a_second() {
    let _alone = one_at_a_time().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let (service, _proxy, tally, restored) = store_outage(
        &db.url,
        &[
            ("AUDIT_DELIVERY", "buffered"),
            ("AUDIT_QUEUE_CAPACITY", "256"),
            ("RUST_LOG", "info,sqlx=warn,tower_http=warn"),
        ],
    )
    .await;
    assert!(
        !tally.refused.is_empty(),
        "the outage never filled the queue: {tally:?}"
    );
    assert!(
        tally.last_created.is_some_and(|at| at > restored),
        "nothing was created after the database came back: {tally:?}"
    );
    let delivery = &health(service.base()).await["delivery"];
    assert_eq!(delivery["refused"], tally.refused.len());
    assert!(
        delivery["failed_attempts"].as_u64().unwrap() > 0,
        "{delivery}"
    );
    let last_refusal = tally.refused.iter().max().copied().unwrap();
    let refusing_after = last_refusal.saturating_duration_since(restored);
    // Stopped first, so that `FAULTS_DEBUG=1` shows the service's log whatever follows.
    service.stop("TERM");
    assert!(
        refusing_after < Duration::from_secs(1),
        "refusals went on for {refusing_after:?} after the database came back"
    );
    verify(&db.url, API_KEYS, &tally).await;
    eprintln!(
        "buffered outage: {} created, {} refused, refusals ended {:?} after the restore",
        tally.created.len(),
        tally.refused.len(),
        refusing_after
    );
}

/// The same outage in the synchronous mode: responses wait up to the mode's wait, then hand
/// their entry to the writer; once the database is back every `2xx` has its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_store_outage_loses_nothing() {
    let _alone = one_at_a_time().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let (service, _proxy, tally, restored) =
        store_outage(&db.url, &[("AUDIT_DELIVERY", "synchronous")]).await;
    assert!(tally.refused.is_empty(), "{tally:?}");
    assert!(
        tally.last_created.is_some_and(|at| at > restored),
        "nothing was created after the database came back: {tally:?}"
    );
    // Responses waited for the store during the outage, then left their entries to the writer.
    let delivery = &health(service.base()).await["delivery"];
    assert!(delivery["handed_off"].as_u64().unwrap() > 0, "{delivery}");
    // Entries handed off during the outage are stored by the writer; stopping flushes them.
    service.stop("TERM");
    verify(&db.url, API_KEYS, &tally).await;
}

/// Shutdown under load, buffered: on SIGTERM and on Ctrl-C the server stops taking requests,
/// answers those it has, and the writer stores every queued entry before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_nothing() {
    let _alone = one_at_a_time().await;
    for signal in ["TERM", "INT"] {
        let Some(db) = fresh_db(Backend::Postgres).await else {
            return;
        };
        let service = Service::start(&[
            ("DATABASE_URL", db.url.as_str()),
            ("AUDIT_DELIVERY", "buffered"),
        ]);
        let base = service.base().to_owned();
        let running = load(&base, API_KEYS, 4_000, 32, Duration::ZERO);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            tokio::task::spawn_blocking(move || service.stop(signal))
                .await
                .unwrap();
        };
        let (tally, ()) = tokio::join!(running, stop);
        assert!(
            tally.created.len() > 100,
            "SIG{signal}: too few requests before the stop to mean anything: {tally:?}"
        );
        verify(&db.url, API_KEYS, &tally).await;
    }
}

/// SIGKILL under load, three times on the same database, on SQLite and on PostgreSQL, in the
/// default (synchronous) mode. Connection profiles are created in the request's transaction,
/// which commits with the request's entry in it; tenants are created after an intent is
/// stored, which the next start turns into an entry of outcome `unknown` if the request never
/// finished. Either way, however the process dies, no committed object lacks its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_no_committed_change_lacks_its_entry() {
    let _alone = one_at_a_time().await;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = fresh_db(backend).await else {
            continue;
        };
        let (mut profiles, mut tenants) = (Tally::default(), Tally::default());
        for round in 0..3u64 {
            let service = Service::start(&[("DATABASE_URL", db.url.as_str())]);
            let (p, t) = killed_under_two_loads(
                service,
                PROFILES,
                TENANTS,
                Duration::from_millis(500 + 200 * round),
            )
            .await;
            assert!(
                p.created.len() > 5 && t.created.len() > 5,
                "{backend:?}: too few requests before the kill to mean anything: {p:?} {t:?}"
            );
            profiles.add(p);
            tenants.add(t);
        }
        // The next start recovers the intents the last kill left.
        Service::start(&[("DATABASE_URL", db.url.as_str())]).stop("TERM");
        verify(&db.url, PROFILES, &profiles).await;
        let outcomes = verify(&db.url, TENANTS, &tenants).await;
        eprintln!(
            "{backend:?}: 3 kills; {} profiles and {} tenants answered, {} requests cut off; \
             tenant entries by outcome: {outcomes:?}",
            profiles.created.len(),
            tenants.created.len(),
            profiles.unanswered + tenants.unanswered,
        );
    }
}

/// Starts the service on `url` with `env`, its audit store reaching the database through a
/// proxy, and runs 32 clients making 2,000 `POST /api-keys` while the proxy drops the store's
/// connections for 3 s. Returns the service and the proxy (both still running), what the
/// clients saw and when the database came back.
async fn store_outage(url: &str, env: &[(&str, &str)]) -> (Service, TcpProxy, Tally, Instant) {
    let proxy = TcpProxy::start(postgres_addr(url)).await;
    let through = support::through(url, proxy.addr());
    let mut all = vec![
        ("DATABASE_URL", url),
        ("AUDIT_DATABASE_URL", through.as_str()),
    ];
    all.extend_from_slice(env);
    let service = Service::start(&all);
    let running = load(
        service.base(),
        API_KEYS,
        2_000,
        32,
        Duration::from_millis(16),
    );
    let outage = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.cut().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.restore().await;
        if std::env::var("FAULTS_DEBUG").is_ok() {
            eprintln!("restored at {:?}", chrono::Utc::now());
        }
        Instant::now()
    };
    let (tally, restored) = tokio::join!(running, outage);
    (service, proxy, tally, restored)
}
