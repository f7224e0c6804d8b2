//! Streaming exports keep memory bounded: exporting 200,000 entries through the admin router
//! grows the process's resident memory by less than 64 MiB, in every format.
//!
//! The entries are written by a child process (this same test binary, running the ignored
//! `seed_only` test), so the measuring process never held them and freed heap from seeding
//! cannot hide growth. Resident memory is sampled from `/proc/self/status` while the body is
//! consumed frame by frame (anonymous memory: see `rss_bytes`), and the peak is compared with the level before the request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::process::Command;

use audit_core::{Action, Actor, ApiKeyRef, AuditEntry, Change};
use audit_seaorm::SeaOrmStore;
use audit_tower::admin::{self, Access};
use axum::Router;
use axum::body::Body;
use chrono::{Duration, TimeZone, Utc};
use http::Request;
use http::request::Parts;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const ENTRIES: usize = 200_000;
const LIMIT_BYTES: u64 = 64 * 1024 * 1024;
const SEED_ENV: &str = "AUDIT_EXPORT_MEMORY_SEED_URL";

fn url_for(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("audit.db").display())
}

/// Anonymous resident memory of this process (heap, stacks), from `/proc/self/status`
/// (`RssAnon`, in KiB). File-backed pages are left out on purpose: SQLite memory-maps its
/// database file, and mapped pages of the file are the kernel's page cache, shared and
/// reclaimable, not memory the export holds.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn entry(i: usize) -> AuditEntry {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    AuditEntry::builder(if i.is_multiple_of(3) {
        Action::Update
    } else {
        Action::Create
    })
    .tenant("acme")
    .team("ops")
    .actor(Actor::user(
        format!("user-{}", i % 50),
        format!("user{}@acme.example", i % 50),
    ))
    .api_key(ApiKeyRef::new("k1", "CI deployer"))
    .entity("ConnectionProfile", i.to_string())
    .entity_name(format!("Salesforce production profile {i}"))
    .details("host and timeout changed by the nightly configuration sync")
    .changes(vec![
        Change::new(
            "host",
            json!("crm.internal.example"),
            json!("crm2.internal.example"),
        ),
        Change::new("timeout_ms", json!(30_000), json!(45_000)),
    ])
    .metadata("region", "eu-west-1")
    .occurred_at(base + Duration::milliseconds(i64::try_from(i).unwrap() * 10))
    .ip("10.1.2.3".parse().unwrap())
    .build()
}

/// Run by the test below in a child process; does nothing on its own.
#[tokio::test]
#[ignore = "a helper: the export memory test runs it in a child process"]
async fn seed_only() {
    let Ok(url) = std::env::var(SEED_ENV) else {
        return;
    };
    let store = SeaOrmStore::connect(&url).await.unwrap();
    let mut batch = Vec::with_capacity(5_000);
    for i in 0..ENTRIES {
        batch.push(entry(i));
        if batch.len() == 5_000 {
            store.insert_batch(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.insert_batch(&batch).await.unwrap();
}

async fn measure(app: &Router, format: &str) -> (u64, u64, usize) {
    let before = rss_bytes().unwrap();
    let request = Request::get(format!("/export.{format}?entity_type=ConnectionProfile"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.into_body();
    let (mut peak, mut bytes, mut newlines, mut frames) = (before, 0u64, 0usize, 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            newlines += data.iter().filter(|b| **b == b'\n').count();
        }
        frames += 1;
        if frames.is_multiple_of(16) {
            peak = peak.max(rss_bytes().unwrap());
        }
    }
    peak = peak.max(rss_bytes().unwrap());
    (peak.saturating_sub(before), bytes, newlines)
}

#[test]
fn exporting_200_000_entries_grows_memory_by_less_than_64_mib() {
    if rss_bytes().is_none() {
        eprintln!("SKIPPED: /proc/self/status is not available on this system");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = url_for(dir.path());
    // Its output is kept apart, so its own test summary does not mix with this one's.
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["seed_only", "--exact", "--ignored", "--test-threads=1"])
        .env(SEED_ENV, &url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "seeding failed: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SeaOrmStore::connect(&url).await.unwrap();
        let app: Router = admin::router(store)
            .guard(|_: &Parts| Access::tenant("acme"))
            .into_router();
        // Warm up connections and lazily built state with a small export first.
        let warm_up = Request::get("/export.csv?entity_id=1")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(warm_up).await.unwrap();
        response.into_body().collect().await.unwrap();

        for format in ["json", "ndjson", "csv"] {
            let (growth, bytes, newlines) = measure(&app, format).await;
            let expected_lines = match format {
                "json" => ENTRIES + 2, // "[" + one line per entry + "]"
                "csv" => ENTRIES + 1,  // the header row
                _ => ENTRIES,
            };
            // Recorded exports are `AuditLog` entries, so the filter keeps them out.
            assert_eq!(newlines, expected_lines, "{format}");
            println!(
                "export memory: {format}: {ENTRIES} entries, {:.1} MiB streamed, \
                 resident memory grew by {:.1} MiB at most",
                bytes as f64 / 1048576.0,
                growth as f64 / 1048576.0
            );
            assert!(
                growth < LIMIT_BYTES,
                "{format}: resident memory grew by {growth} bytes while exporting"
            );
            assert!(
                bytes > 64 * 1024 * 1024,
                "the export should outsize the bound"
            );
        }
    });
}
