//! A three-node JetStream cluster started by the test on loopback ports, a stream with three
//! replicas, and one node killed with SIGKILL while entries are being published: every entry
//! JetStream acknowledged reaches the store, once.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_core::{Action, AuditEntry, AuditSink, MemoryStore};
use audit_nats::{Forwarder, ForwarderSettings, JetStreamSink, StreamSettings};
use audit_test_support::NatsServers;
use uuid::Uuid;

const PUBLISHERS: usize = 8;
const ENTRIES: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_load_loses_no_acknowledged_entry() {
    let Some(mut cluster) = NatsServers::cluster() else {
        return;
    };
    let servers: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let client = async_nats::ConnectOptions::new()
        .connect(servers.clone())
        .await
        .unwrap();
    let context = async_nats::jetstream::new(client);
    let settings = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    // The cluster elects its JetStream leaders a few seconds after it starts, and places a
    // stream of three replicas only once every server has reported to the leader (slower on a
    // loaded machine).
    let started = Instant::now();
    let sink = loop {
        match JetStreamSink::new(context.clone(), settings.clone()).await {
            Ok(sink) => break sink,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(90),
                    "no stream after 90 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let placed_after = started.elapsed();
    let mut stream = context.get_stream(&settings.name).await.unwrap();
    let info = stream.info().await.unwrap();
    let leader = info.cluster.clone().and_then(|c| c.leader).unwrap();
    // Nodes are named n0, n1, n2 by their index.
    let victim: usize = leader.trim_start_matches('n').parse().unwrap();

    // Publishers retry an entry until JetStream acknowledges it, as the layer's writer does;
    // only acknowledged ids are what the service promised to keep.
    let acknowledged = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let failures = Arc::new(Mutex::new(0usize));
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let (sink, acknowledged, failures) = (sink.clone(), acknowledged.clone(), failures.clone());
        publishers.push(tokio::spawn(async move {
            for i in (p..ENTRIES).step_by(PUBLISHERS) {
                let entry = AuditEntry::builder(Action::Update)
                    .entity("ConnectionProfile", format!("cp-{i}"))
                    .tenant(format!("t{}", i % 7))
                    .build();
                let give_up = Instant::now() + Duration::from_secs(60);
                while let Err(error) = sink.record(entry.clone()).await {
                    *failures.lock().unwrap() += 1;
                    assert!(
                        Instant::now() < give_up,
                        "not acknowledged in 60 s: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                acknowledged.lock().unwrap().push(entry.id);
            }
        }));
    }
    // Kill the stream's leader once a third of the entries are in.
    while acknowledged.lock().unwrap().len() < ENTRIES / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = Instant::now();
    cluster.nodes[victim].kill();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let publish_time = killed_at.elapsed();

    let store = MemoryStore::new();
    // The cluster may still be settling after the kill: the consumer's creation is retried
    // as a service's start-up would be.
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let made = Forwarder::new(
            &context,
            &settings,
            store.clone(),
            ForwarderSettings::default(),
        );
        match made.await {
            Ok(forwarder) => break forwarder.spawn(),
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no forwarder after 30 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.len() < ENTRIES {
        assert!(
            Instant::now() < deadline,
            "{} of {ENTRIES} entries forwarded",
            store.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await.unwrap();
    let acknowledged: HashSet<Uuid> = acknowledged.lock().unwrap().iter().copied().collect();
    let stored: Vec<Uuid> = store.entries().iter().map(|e| e.id).collect();
    let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
    assert_eq!(acknowledged.len(), ENTRIES);
    assert_eq!(stored.len(), stored_set.len(), "an entry is stored twice");
    assert_eq!(stored_set, acknowledged);
    // JetStream itself kept one message per id, whatever was retried.
    let info = stream.info().await.expect("stream info after the kill");
    assert_eq!(info.state.messages, ENTRIES as u64);
    eprintln!(
        "cluster: stream of 3 replicas placed {placed_after:?} after the start; leader {leader} killed after {} of {ENTRIES} entries; {} failed publishes \
         retried; the rest published in {publish_time:?}",
        ENTRIES / 3,
        failures.lock().unwrap()
    );
}
