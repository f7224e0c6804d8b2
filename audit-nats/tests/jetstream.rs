//! The sink and the forwarder against the NATS server of `AUDIT_TEST_NATS_URL` (started by
//! `.ci/run`). Each test has a stream (and subject prefix) of its own, deleted at the end.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::stream::StorageType;
use async_trait::async_trait;
use audit_core::{Action, AuditEntry, AuditSink, MemoryStore, SinkError};
use audit_nats::{Forwarder, ForwarderSettings, JetStreamSink, RunningForwarder, StreamSettings};
use audit_test_support::nats_url;
use audit_tower::AuditLayer;
use axum::Router;
use axum::routing::post;
use tower::ServiceExt;

/// JetStream on the shared server, a stream of the test's own, and a sink into it.
async fn setup() -> Option<(Context, StreamSettings, JetStreamSink)> {
    let url = nats_url()?;
    let client = async_nats::connect(url).await.unwrap();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let settings = StreamSettings {
        name: format!("TEST_{tag}"),
        subject_prefix: format!("test-{tag}"),
        storage: StorageType::Memory,
        ..StreamSettings::default()
    };
    let context = async_nats::jetstream::new(client);
    let sink = JetStreamSink::new(context.clone(), settings.clone())
        .await
        .unwrap();
    Some((context, settings, sink))
}

async fn cleanup(context: &Context, settings: &StreamSettings) {
    context.delete_stream(&settings.name).await.unwrap();
}

/// A forwarder with the default settings, running.
async fn forwarder(
    context: &Context,
    settings: &StreamSettings,
    sink: impl AuditSink,
) -> RunningForwarder {
    Forwarder::new(context, settings, sink, ForwarderSettings::default())
        .await
        .unwrap()
        .spawn()
}

/// The forwarders' durable consumer, to read its state.
async fn consumer(context: &Context, settings: &StreamSettings) -> PullConsumer {
    context
        .get_stream(&settings.name)
        .await
        .unwrap()
        .get_consumer("audit-forwarder")
        .await
        .unwrap()
}

fn entries(count: usize) -> Vec<AuditEntry> {
    (0..count)
        .map(|i| {
            let mut builder = AuditEntry::builder(Action::Update)
                .entity("ConnectionProfile", format!("cp-{i}"))
                .details(format!("entry {i}"));
            // A trace id crosses the stream like every other field.
            if i % 2 == 0 {
                builder = builder.trace_id(format!("4bf92f3577b34da6a3ce929d{i:08x}"));
            }
            match i % 3 {
                0 => builder.tenant("acme.eu"),
                1 => builder.tenant("globex"),
                _ => builder,
            }
            .build()
        })
        .collect()
}

/// Waits until `store` holds `count` entries (10 s at most).
async fn until_stored(store: &MemoryStore, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} entries stored after 10 s",
            store.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn sorted(mut entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
    entries.sort_by_key(|e| e.id);
    entries
}

#[tokio::test]
async fn entries_go_to_their_subject_once_and_arrive_in_the_store_as_sent() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    let sent = entries(300);
    sink.record_slice(&sent[..200]).await.unwrap();
    // A retried batch: JetStream drops the 50 ids it already has.
    sink.record_slice(&sent[150..]).await.unwrap();
    let stats = sink.stats();
    assert_eq!((stats.published, stats.duplicates), (350, 50));
    let mut stream = context.get_stream(&settings.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 300);

    // Subjects: prefix, tenant (encoded; `~` for none), entity type.
    let first = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        first.subject.as_str(),
        format!("{}.acme%2Eeu.ConnectionProfile", settings.subject_prefix)
    );
    let third = stream.get_raw_message(3).await.unwrap();
    assert_eq!(
        third.subject.as_str(),
        format!("{}.~.ConnectionProfile", settings.subject_prefix)
    );
    let headers = first.headers;
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
        Some(sent[0].id.to_string())
    );

    let store = MemoryStore::new();
    let forwarder = forwarder(&context, &settings, store.clone()).await;
    until_stored(&store, 300).await;
    assert_eq!(forwarder.stats().forwarded, 300);
    forwarder.stop().await.unwrap();
    assert!(sent.iter().any(|e| e.trace_id.is_some()));
    assert_eq!(sorted(store.entries()), sorted(sent));
    cleanup(&context, &settings).await;
}

#[tokio::test]
async fn a_restarted_forwarder_resumes_where_it_stopped() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    let store = MemoryStore::new();
    let start = || forwarder(&context, &settings, store.clone());
    sink.record_slice(&entries(100)).await.unwrap();
    let first = start().await;
    until_stored(&store, 100).await;
    first.stop().await.unwrap();

    sink.record_slice(&entries(40)).await.unwrap();
    let second = start().await;
    until_stored(&store, 140).await;
    // Only what came after the stop: the durable consumer remembers the first 100.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(second.stats().forwarded, 40);
    assert_eq!(second.stats().redelivered, 0);
    second.stop().await.unwrap();
    assert_eq!(store.len(), 140);
    cleanup(&context, &settings).await;
}

#[tokio::test]
async fn forwarders_with_one_name_share_the_entries() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    let store = MemoryStore::new();
    let small_batches = ForwarderSettings {
        max_batch: 20,
        ..ForwarderSettings::default()
    };
    let mut running = Vec::new();
    for _ in 0..2 {
        let forwarder = Forwarder::new(&context, &settings, store.clone(), small_batches.clone())
            .await
            .unwrap();
        running.push(forwarder.spawn());
    }
    for chunk in entries(1_000).chunks(50) {
        sink.record_slice(chunk).await.unwrap();
    }
    until_stored(&store, 1_000).await;
    let counts: Vec<u64> = running.iter().map(|r| r.stats().forwarded).collect();
    assert_eq!(counts.iter().sum::<u64>(), 1_000, "{counts:?}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "one forwarder did all: {counts:?}"
    );
    for forwarder in running {
        forwarder.stop().await.unwrap();
    }
    cleanup(&context, &settings).await;
}

/// A store that refuses writes while `down` is set.
#[derive(Clone, Default)]
struct Switchable {
    store: MemoryStore,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl AuditSink for Switchable {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.record_slice(std::slice::from_ref(&entry)).await
    }

    async fn record_slice(&self, entries: &[AuditEntry]) -> Result<(), SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable("down for the test".into()));
        }
        self.store.record_slice(entries).await
    }
}

#[tokio::test]
async fn entries_are_acknowledged_only_once_the_store_took_them() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    let store = Switchable::default();
    store.down.store(true, Ordering::SeqCst);
    sink.record_slice(&entries(50)).await.unwrap();
    let running = forwarder(&context, &settings, store.clone()).await;
    let health = running.health();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.calls.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the forwarder never tried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut consumer = consumer(&context, &settings).await;
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 50, "delivered, none acknowledged");
    assert!(store.store.is_empty());
    let report = health();
    assert!(report.degraded);
    assert_eq!(report.details["failing"], true);

    store.down.store(false, Ordering::SeqCst);
    until_stored(&store.store, 50).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while consumer.info().await.unwrap().num_ack_pending > 0 {
        assert!(Instant::now() < deadline, "acknowledgements never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = running.stats();
    assert!(stats.failed_attempts >= 3, "{stats:?}");
    assert!(!stats.failing);
    assert!(!health().degraded);
    running.stop().await.unwrap();
    cleanup(&context, &settings).await;
}

#[tokio::test]
async fn a_message_that_is_no_entry_is_rejected_and_not_delivered_again() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    context
        .publish(
            format!("{}.acme.Junk", settings.subject_prefix),
            "not an audit entry".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    sink.record_slice(&entries(5)).await.unwrap();
    let store = MemoryStore::new();
    let running = forwarder(&context, &settings, store.clone()).await;
    until_stored(&store, 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = running.stats();
    assert_eq!((stats.forwarded, stats.rejected), (5, 1));
    running.stop().await.unwrap();
    let mut consumer = consumer(&context, &settings).await;
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    cleanup(&context, &settings).await;
}

/// The layer's responses wait for JetStream: once a response is out, its entry is in the
/// stream, for one request at a time and for many at once.
#[tokio::test]
async fn a_response_goes_out_once_jetstream_has_its_entry() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    let layer = AuditLayer::new(sink.clone());
    let app: Router = Router::new()
        .route("/connection-profiles", post(|| async { "created" }))
        .layer(layer);
    let mut stream = context.get_stream(&settings.name).await.unwrap();
    let request = || {
        http::Request::post("/connection-profiles")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    for n in 1..=10u64 {
        let response = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(stream.info().await.unwrap().state.messages, n);
    }
    let responses =
        futures_util::future::join_all((0..64).map(|_| app.clone().oneshot(request()))).await;
    assert!(
        responses
            .iter()
            .all(|r| r.as_ref().unwrap().status() == 200)
    );
    assert_eq!(stream.info().await.unwrap().state.messages, 74);
    assert_eq!(sink.stats().published, 74);
    cleanup(&context, &settings).await;
}

#[tokio::test]
async fn bad_settings_are_refused_before_anything_is_created() {
    let Some((context, _, _)) = setup().await else {
        return;
    };
    for settings in [
        StreamSettings {
            name: "has.dot".into(),
            ..StreamSettings::default()
        },
        StreamSettings {
            subject_prefix: "audit.>".into(),
            ..StreamSettings::default()
        },
        StreamSettings {
            replicas: 0,
            ..StreamSettings::default()
        },
    ] {
        let error = JetStreamSink::new(context.clone(), settings.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(error, audit_nats::NatsError::Settings(_)),
            "{settings:?}: {error}"
        );
    }
}

/// More entries in one call than the client lets wait for an acknowledgement (5,000): they
/// are published in chunks, not stuck waiting for acknowledgements nobody awaits.
#[tokio::test]
async fn a_batch_over_the_clients_limit_of_pending_acknowledgements_is_published() {
    let Some((context, settings, sink)) = setup().await else {
        return;
    };
    let many = entries(6_000);
    let call = sink.record_slice(&many);
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("publishing 6,000 entries hung")
        .unwrap();
    let mut stream = context.get_stream(&settings.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 6_000);
    cleanup(&context, &settings).await;
}

/// Two service instances (connections of their own) publish into one stream; a forwarder
/// stores everything, and another reader (a SIEM bridge, say) reads one tenant's subjects with
/// a consumer of its own, without taking anything from the forwarder.
#[tokio::test]
async fn instances_share_the_stream_and_other_readers_see_the_same_entries() {
    let Some((context, settings, first)) = setup().await else {
        return;
    };
    let other_client = async_nats::connect(nats_url().unwrap()).await.unwrap();
    let second = JetStreamSink::new(async_nats::jetstream::new(other_client), settings.clone())
        .await
        .unwrap();
    let sent = entries(90);
    first.record_slice(&sent[..45]).await.unwrap();
    second.record_slice(&sent[45..]).await.unwrap();

    let store = MemoryStore::new();
    let running = forwarder(&context, &settings, store.clone()).await;
    until_stored(&store, 90).await;
    running.stop().await.unwrap();

    let siem: PullConsumer = context
        .get_stream(&settings.name)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("siem".into()),
            filter_subject: format!("{}.acme%2Eeu.>", settings.subject_prefix),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut batch = siem.fetch().max_messages(100).messages().await.unwrap();
    while let Some(message) = futures_util::StreamExt::next(&mut batch).await {
        let message = message.unwrap();
        seen.push(serde_json::from_slice::<AuditEntry>(&message.payload).unwrap());
        message.ack().await.unwrap();
    }
    let acme: Vec<AuditEntry> = sent
        .iter()
        .filter(|e| e.tenant_id.as_deref() == Some("acme.eu"))
        .cloned()
        .collect();
    assert_eq!(acme.len(), 30);
    assert_eq!(sorted(seen), sorted(acme));
    assert_eq!(
        store.len(),
        90,
        "the forwarder stored every tenant's entries"
    );
    cleanup(&context, &settings).await;
}
