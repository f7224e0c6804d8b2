//! Fault tests of delivery through JetStream, against the service binary and a `nats-server`
//! each test starts on a loopback port (its store in a temporary directory), so no run sees
//! another's stream.
//!
//! `FAULTS_DEBUG=1` prints the service's log.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use audit_test_support::{Backend, NatsServers, fresh_db};
use support::{
    API_KEYS, Service, TENANTS, Tally, killed_under_two_loads, load, one_at_a_time,
    until_forwarded, verify, verify_answered,
};

/// SIGKILL under load, twice, with entries published through JetStream and a forwarder in
/// the service, on SQLite and PostgreSQL; then a last start drains the stream. Every request
/// answered `201` has exactly one entry in the database. API keys are entered after their
/// change commits (a kill in between leaves a key whose request got no answer without an
/// entry: the promise is for answered requests); tenants have an intent first, so every
/// tenant, answered or not, has its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_every_answered_request_has_its_entry_once_forwarded() {
    let _alone = one_at_a_time().await;
    let Some(nats) = NatsServers::single() else {
        return;
    };
    let nats_url = nats.urls();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = fresh_db(backend).await else {
            continue;
        };
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("AUDIT_NATS_URL", nats_url.as_str()),
        ];
        let (mut keys, mut tenants) = (Tally::default(), Tally::default());
        for round in 0..2u64 {
            let service = Service::start(&env);
            let (k, t) = killed_under_two_loads(
                service,
                API_KEYS,
                TENANTS,
                Duration::from_millis(500 + 300 * round),
            )
            .await;
            assert!(
                k.created.len() > 5 && t.created.len() > 5,
                "{backend:?}: too few requests before the kill to mean anything: {k:?} {t:?}"
            );
            keys.add(k);
            tenants.add(t);
        }
        // The next start recovers the last kill's intents; its forwarder drains the stream.
        let service = Service::start(&env);
        until_drained(&nats_url).await;
        service.stop("TERM");
        verify_answered(&db.url, API_KEYS, &keys).await;
        let outcomes = verify(&db.url, TENANTS, &tenants).await;
        eprintln!(
            "JetStream, {backend:?}: 2 kills; {} keys and {} tenants answered; tenant entries \
             by outcome: {outcomes:?}",
            keys.created.len(),
            tenants.created.len(),
        );
    }
}

/// A forwarder process killed with SIGKILL while it drains a backlog, then started again:
/// every entry reaches the database, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_killed_mid_batch_loses_and_repeats_nothing() {
    let _alone = one_at_a_time().await;
    let Some(nats) = NatsServers::single() else {
        return;
    };
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let nats_url = nats.urls();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("AUDIT_NATS_URL", nats_url.as_str()),
        ("AUDIT_FORWARDER", "off"),
    ];
    // A backlog in the stream: the service publishes, nothing forwards.
    let service = Service::start(&env);
    let tally = load(service.base(), API_KEYS, 2_000, 32, Duration::ZERO).await;
    service.stop("TERM");
    assert_eq!(tally.created.len(), 2_000, "{tally:?}");

    // Kill the forwarder once it has stored some of the backlog but not all.
    let forwarder = Service::forward(&env);
    let stored = wait_stored_between(&db.url, 1, tally.created.len() as u64 - 1).await;
    forwarder.stop("KILL");
    let forwarder = Service::forward(&env);
    until_forwarded(&db.url, API_KEYS, &tally).await;
    until_drained(&nats_url).await;
    forwarder.stop("TERM");
    verify(&db.url, API_KEYS, &tally).await;
    eprintln!(
        "forwarder killed with {stored} of {} entries stored; restarted, all stored once",
        tally.created.len()
    );
}

/// Waits until the service's forwarder has every entry of the stream stored and
/// acknowledged (30 s at most).
async fn until_drained(nats_url: &str) {
    let client = async_nats::connect(nats_url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = jetstream
        .get_stream("AUDIT")
        .await
        .unwrap()
        .get_consumer("audit-forwarder")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not drained after 30 s: {} pending, {} unacknowledged",
            info.num_pending,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the number of entries until it is within `low..=high`; returns it.
async fn wait_stored_between(url: &str, low: u64, high: u64) -> u64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM audit_log WHERE entity_type = 'ApiKey' AND request_id LIKE 'load-%'",
            ))
            .await
            .unwrap()
            .unwrap();
        let n = row.try_get::<i64>("", "n").unwrap() as u64;
        if (low..=high).contains(&n) {
            return n;
        }
        assert!(
            n < low && std::time::Instant::now() < deadline,
            "{n} entries stored: the forwarder was not caught mid-way"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
