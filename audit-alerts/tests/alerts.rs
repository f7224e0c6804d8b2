//! The alerting sink end to end: entries through a wrapped `MemoryStore`, rules evaluated in
//! the background, alerts posted to a real HTTP receiver on loopback.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use audit_alerts::{Alert, Alerts, Notifier, NotifyError, Per, Rule, Threshold, WebhookNotifier};
use audit_core::{Action, Actor, AuditEntry, AuditSink, MemoryStore, Outcome, SinkError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every test gives up after this long rather than hang.
const LIMIT: Duration = Duration::from_secs(20);

const SECRET: &str = "test-webhook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// A webhook receiver on 127.0.0.1: answers with the statuses given, in order (then 200), and
/// keeps every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct Script {
    statuses: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn receive(State(script): State<Script>, headers: HeaderMap, body: Bytes) -> StatusCode {
    script.received.lock().unwrap().push(Received {
        headers,
        body,
        at: Instant::now(),
    });
    let status = script.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(statuses: &[u16]) -> Receiver {
    let received = Arc::new(Mutex::new(Vec::new()));
    let script = Script {
        statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
        received: received.clone(),
    };
    let app = axum::Router::new()
        .route("/alerts", axum::routing::post(receive))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/alerts"),
        received,
    }
}

impl Receiver {
    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Keeps the alerts it is given.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Alert>>>);

#[async_trait]
impl Notifier for Collect {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }
}

impl Collect {
    fn alerts(&self) -> Vec<Alert> {
        self.0.lock().unwrap().clone()
    }
}

fn at(minute: i64, second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
        + TimeDelta::minutes(minute)
        + TimeDelta::seconds(second)
}

fn failed_login(email: &str, ip: [u8; 4], when: DateTime<Utc>) -> AuditEntry {
    AuditEntry::builder(Action::LoginFailed)
        .actor(Actor::anonymous_named(email))
        .entity_type("User")
        .ip(IpAddr::from(ip))
        .outcome(Outcome::Failure)
        .occurred_at(when)
        .build()
}

fn revoke(key: &str) -> AuditEntry {
    AuditEntry::builder(Action::Revoke)
        .tenant("acme")
        .actor(Actor::user("u-1", "admin@acme.example"))
        .entity("ApiKey", key)
        .entity_name("CI deploy key")
        .build()
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_webhook_posts_the_alert_as_json_signed_over_timestamp_and_body() {
    let receiver = receiver(&[]).await;
    let store = MemoryStore::new();
    let sink = Alerts::builder()
        .rule(
            Rule::new("api-key-revoked")
                .action(Action::Revoke)
                .entity_type("ApiKey"),
        )
        .notifier(WebhookNotifier::new(&receiver.url, SECRET).unwrap())
        .wrap(store.clone())
        .unwrap();
    let entry = revoke("k-7");
    sink.record(entry.clone()).await.unwrap();
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.headers["content-type"], "application/json");

    // The signature, computed here from the scheme alone.
    let timestamp = request.headers["x-audit-timestamp"].to_str().unwrap();
    let sent: i64 = timestamp.parse().unwrap();
    assert!((Utc::now().timestamp() - sent).abs() < 60, "{timestamp}");
    let mut signed = timestamp.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&request.body);
    assert_eq!(
        request.headers["x-audit-signature"].to_str().unwrap(),
        format!("sha256={}", hmac_hex(SECRET, &signed))
    );
    // Another secret, or the same body with another time, does not verify.
    assert_ne!(
        request.headers["x-audit-signature"].to_str().unwrap(),
        format!("sha256={}", hmac_hex("other", &signed))
    );
    assert!(audit_alerts::verify(
        SECRET.as_bytes(),
        timestamp,
        &request.body,
        request.headers["x-audit-signature"].to_str().unwrap(),
        Duration::from_secs(300),
    ));
    assert!(!audit_alerts::verify(
        SECRET.as_bytes(),
        &(sent - 1).to_string(),
        &request.body,
        request.headers["x-audit-signature"].to_str().unwrap(),
        Duration::from_secs(300),
    ));

    // The body: the rule, the reason, no threshold, and the entry in its own serde form.
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["rule"], "api-key-revoked");
    assert_eq!(
        body["reason"],
        "Revoke on ApiKey \"CI deploy key\" (k-7) by admin@acme.example: success"
    );
    assert!(body["threshold"].is_null());
    assert!(body["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert_eq!(body["entries"], serde_json::json!([entry]));
    let alert: Alert = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(alert.entries, vec![entry.clone()]);

    let stats = sink.alerts().stats();
    assert_eq!(
        (stats.evaluated, stats.fired, stats.delivered, stats.failed),
        (1, 1, 1, 0)
    );
    assert_eq!(store.entries(), vec![entry]);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_until_it_takes_the_alert() {
    let receiver = receiver(&[500, 500, 200]).await;
    let webhook = WebhookNotifier::new(&receiver.url, SECRET)
        .unwrap()
        .attempts(5)
        .base_delay(Duration::from_millis(100));
    let sink = Alerts::builder()
        .rule(Rule::new("revoked").action(Action::Revoke))
        .notifier(webhook.clone())
        .wrap(MemoryStore::new())
        .unwrap();
    sink.record(revoke("k-1")).await.unwrap();
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "the receiver saw three attempts");
    // 100 ms after the first failure, 200 ms after the second.
    let waits: Vec<Duration> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(waits[0] >= Duration::from_millis(100), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(200), "{waits:?}");
    // One alert, sent three times, each attempt signed anew.
    let ids: Vec<String> = requests
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].to_string())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for request in &requests {
        let timestamp = request.headers["x-audit-timestamp"].to_str().unwrap();
        let mut signed = format!("{timestamp}.").into_bytes();
        signed.extend_from_slice(&request.body);
        assert_eq!(
            request.headers["x-audit-signature"].to_str().unwrap(),
            format!("sha256={}", hmac_hex(SECRET, &signed))
        );
    }

    let stats = webhook.stats();
    assert_eq!(
        (
            stats.attempts,
            stats.failed_attempts,
            stats.delivered,
            stats.given_up
        ),
        (3, 2, 1, 0)
    );
    let stats = sink.alerts().stats();
    assert_eq!((stats.delivered, stats.failed), (1, 0));
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_on_and_a_refusal_is_not_retried() {
    let down = receiver(&[500, 503, 502, 500]).await;
    let refusing = receiver(&[401, 401]).await;
    let webhook = |url: &str| {
        WebhookNotifier::new(url, SECRET)
            .unwrap()
            .attempts(3)
            .base_delay(Duration::from_millis(10))
    };
    let (to_down, to_refusing) = (webhook(&down.url), webhook(&refusing.url));
    let sink = Alerts::builder()
        .rule(Rule::new("revoked").action(Action::Revoke))
        .notifier(to_down.clone())
        .notifier(to_refusing.clone())
        .wrap(MemoryStore::new())
        .unwrap();
    sink.record(revoke("k-1")).await.unwrap();
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();

    assert_eq!(down.requests().len(), 3, "bounded attempts");
    assert_eq!(refusing.requests().len(), 1, "a 401 is final");
    let down = to_down.stats();
    assert_eq!(
        (down.attempts, down.failed_attempts, down.given_up),
        (3, 3, 1)
    );
    let refusing = to_refusing.stats();
    assert_eq!(
        (
            refusing.attempts,
            refusing.failed_attempts,
            refusing.given_up
        ),
        (1, 1, 1)
    );
    let stats = sink.alerts().stats();
    assert_eq!((stats.fired, stats.delivered, stats.failed), (1, 0, 2));
}

#[tokio::test]
async fn five_failed_logins_of_one_account_within_the_window_fire_once() {
    let collect = Collect::default();
    let sink = Alerts::builder()
        .rule(
            Rule::new("failed-logins-per-account")
                .action(Action::LoginFailed)
                .threshold(Threshold::new(5, Duration::from_secs(600)).per(Per::Actor)),
        )
        .notifier(collect.clone())
        .wrap(MemoryStore::new())
        .unwrap();
    let flush = || async {
        tokio::time::timeout(LIMIT, sink.alerts().flush())
            .await
            .unwrap()
    };

    // Four within the window: nothing. Each from its own address, so only the account counts.
    for n in 0..4 {
        sink.record(failed_login(
            "ann@example.com",
            [10, 0, 0, n],
            at(n.into(), 0),
        ))
        .await
        .unwrap();
    }
    flush().await;
    assert!(collect.alerts().is_empty());

    // The fifth, 9 min 59 s after the first: one alert with the five, oldest first.
    sink.record(failed_login("ann@example.com", [10, 0, 0, 9], at(9, 59)))
        .await
        .unwrap();
    // A sixth, in the window just fired: no second alert.
    sink.record(failed_login("ann@example.com", [10, 0, 0, 10], at(10, 30)))
        .await
        .unwrap();
    flush().await;
    let alerts = collect.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.rule, "failed-logins-per-account");
    let crossed = alert.threshold.as_ref().unwrap();
    assert_eq!(
        (
            crossed.count,
            crossed.window_seconds,
            crossed.per,
            crossed.key.as_str()
        ),
        (5, 600, Per::Actor, "ann@example.com")
    );
    let times: Vec<_> = alert.entries.iter().map(|e| e.occurred_at).collect();
    assert_eq!(
        times,
        vec![at(0, 0), at(1, 0), at(2, 0), at(3, 0), at(9, 59)]
    );
    assert_eq!(
        alert.reason,
        "5 LoginFailed entries of actor ann@example.com within 600 s"
    );

    // Five of another account, spread over more than ten minutes: nothing.
    for (n, minute) in [0, 3, 6, 9, 12].into_iter().enumerate() {
        sink.record(failed_login(
            "bob@example.com",
            [10, 0, 1, n as u8],
            at(minute, 0),
        ))
        .await
        .unwrap();
    }
    // Exactly ten minutes from the first to the fifth is not within ten minutes.
    for minute in [0, 1, 2, 3, 10] {
        sink.record(failed_login("cy@example.com", [10, 0, 2, 1], at(minute, 0)))
            .await
            .unwrap();
    }
    flush().await;
    assert_eq!(collect.alerts().len(), 1);
    assert_eq!(sink.alerts().stats().evaluated, 16);
}

#[tokio::test]
async fn failed_logins_are_counted_per_client_address_across_accounts() {
    let collect = Collect::default();
    let sink = Alerts::builder()
        .rule(
            Rule::new("failed-logins-per-ip")
                .action("loginfailed")
                .threshold(Threshold::new(5, Duration::from_secs(600)).per(Per::Ip)),
        )
        .notifier(collect.clone())
        .wrap(MemoryStore::new())
        .unwrap();
    let entries: Vec<AuditEntry> = (0..5)
        .map(|n| failed_login(&format!("user{n}@example.com"), [192, 0, 2, 7], at(n, 0)))
        .collect();
    // One batch, as a buffered writer hands it over.
    sink.record_batch(entries).await.unwrap();
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();
    let alerts = collect.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].threshold.as_ref().unwrap().key, "192.0.2.7");
}

#[tokio::test]
async fn a_rule_on_action_and_entity_type_fires_once_per_matching_entry() {
    let collect = Collect::default();
    let sink = Alerts::builder()
        .rule(
            Rule::new("api-key-revoked")
                .action("revoke")
                .entity_type("api-key")
                .reason("an API key was revoked"),
        )
        .notifier(collect.clone())
        .wrap(MemoryStore::new())
        .unwrap();
    let revocations = [revoke("k-1"), revoke("k-2"), revoke("k-3")];
    let others = [
        AuditEntry::builder(Action::Revoke)
            .entity("Tenant", "t-1")
            .build(),
        AuditEntry::builder(Action::Delete)
            .entity("ApiKey", "k-1")
            .build(),
        AuditEntry::builder(Action::Revoke).build(),
    ];
    for entry in revocations.iter().chain(&others) {
        sink.record(entry.clone()).await.unwrap();
    }
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();
    let alerts = collect.alerts();
    let fired: Vec<&AuditEntry> = alerts.iter().flat_map(|a| &a.entries).collect();
    assert_eq!(fired, revocations.iter().collect::<Vec<_>>());
    assert!(alerts.iter().all(|a| a.reason == "an API key was revoked"
        && a.threshold.is_none()
        && a.entries.len() == 1));
    let stats = sink.alerts().stats();
    assert_eq!((stats.evaluated, stats.fired), (6, 3));
}

/// Holds every delivery until released.
#[derive(Clone)]
struct Stuck(Arc<tokio::sync::Semaphore>);

#[async_trait]
impl Notifier for Stuck {
    async fn notify(&self, _: &Alert) -> Result<(), NotifyError> {
        let _permit = self.0.acquire().await;
        Ok(())
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_evaluations_without_holding_up_the_store() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let store = MemoryStore::new();
    let sink = Alerts::builder()
        .rule(Rule::new("everything"))
        .notifier(Stuck(gate.clone()))
        .capacity(1)
        .max_in_flight(1)
        .wrap(store.clone())
        .unwrap();
    let entries: Vec<AuditEntry> = (0..10).map(|n| revoke(&format!("k-{n}"))).collect();
    for entry in &entries {
        // Each write returns at once, whatever alerting is doing.
        tokio::time::timeout(Duration::from_secs(1), sink.record(entry.clone()))
            .await
            .expect("the store was held up")
            .unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(store.entries(), entries);
    // At most three are out of the store's way: one delivering, one waiting for a delivery
    // slot, one in the queue's slot.
    let dropped = sink.alerts().stats().dropped;
    assert!((7..=9).contains(&dropped), "{dropped} dropped");

    gate.add_permits(100);
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();
    let stats = sink.alerts().stats();
    assert_eq!(stats.dropped, dropped);
    assert_eq!(stats.evaluated + stats.dropped, 10, "{stats:?}");
    assert_eq!(stats.delivered, stats.evaluated);
}

/// Refuses every write.
struct Down;

#[async_trait]
impl AuditSink for Down {
    async fn record(&self, _: AuditEntry) -> Result<(), SinkError> {
        Err(SinkError::Unavailable("down for the test".into()))
    }
    async fn record_batch(&self, _: Vec<AuditEntry>) -> Result<(), SinkError> {
        Err(SinkError::Unavailable("down for the test".into()))
    }
    async fn record_slice(&self, _: &[AuditEntry]) -> Result<(), SinkError> {
        Err(SinkError::Unavailable("down for the test".into()))
    }
}

#[tokio::test]
async fn the_inner_sink_stores_exactly_what_it_is_given_and_only_stored_entries_alert() {
    let collect = Collect::default();
    let store = MemoryStore::new();
    let sink = Alerts::builder()
        .rule(Rule::new("everything"))
        .notifier(collect.clone())
        .wrap(store.clone())
        .unwrap();
    let one = revoke("k-1");
    let batch = vec![
        revoke("k-2"),
        failed_login("a@b.c", [10, 0, 0, 1], at(0, 0)),
    ];
    let slice = vec![revoke("k-3"), revoke("k-4")];
    sink.record(one.clone()).await.unwrap();
    sink.record_batch(batch.clone()).await.unwrap();
    sink.record_slice(&slice).await.unwrap();
    // A retried slice: stored once by the store, evaluated once by alerting.
    sink.record_slice(&slice).await.unwrap();
    tokio::time::timeout(LIMIT, sink.alerts().flush())
        .await
        .unwrap();
    let given: Vec<AuditEntry> = std::iter::once(one).chain(batch).chain(slice).collect();
    assert_eq!(store.entries(), given);
    let alerted: Vec<AuditEntry> = collect
        .alerts()
        .into_iter()
        .flat_map(|a| a.entries)
        .collect();
    assert_eq!(alerted, given);

    // A write the inner sink refuses is refused as it was, and raises nothing.
    let failing = Alerts::builder()
        .rule(Rule::new("everything"))
        .notifier(collect.clone())
        .wrap(Down)
        .unwrap();
    let err = failing.record(revoke("k-5")).await.unwrap_err();
    assert!(matches!(err, SinkError::Unavailable(_)), "{err}");
    assert!(failing.record_batch(vec![revoke("k-6")]).await.is_err());
    assert!(failing.record_slice(&[revoke("k-7")]).await.is_err());
    tokio::time::timeout(LIMIT, failing.alerts().flush())
        .await
        .unwrap();
    assert_eq!(failing.alerts().stats().evaluated, 0);
}

#[test]
fn alerting_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Alerts::builder().wrap(MemoryStore::new()).unwrap_err();
    assert!(matches!(err, audit_alerts::AlertError::NoRuntime), "{err}");
}
