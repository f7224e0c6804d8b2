//! Alerts from the running service: the binary, started with its webhook pointed at a receiver
//! on loopback, posts a signed alert when an API key is revoked through its HTTP API, and one
//! for each threshold five failed logins cross.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Service, TOKEN};

const SECRET: &str = "alert-test-secret";

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    received.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

/// A webhook receiver on 127.0.0.1: its URL, and what it gets.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/alerts", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The alerts received whose rule is `rule`, once there are `count` of them (at most 20 s).
async fn alerts_of(received: &Received, rule: &str, count: usize) -> Vec<(HeaderMap, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts: Vec<(HeaderMap, Value)> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, body)| {
                // Every request is signed: HMAC-SHA256 of "timestamp.body" under the secret.
                let timestamp = headers["x-audit-timestamp"].to_str().unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                assert_eq!(
                    headers["x-audit-signature"].to_str().unwrap(),
                    format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
                );
                (
                    headers.clone(),
                    serde_json::from_slice::<Value>(body).unwrap(),
                )
            })
            .filter(|(_, alert)| alert["rule"] == rule)
            .collect();
        if alerts.len() >= count || Instant::now() > deadline {
            return alerts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_api_key_posts_a_signed_alert_naming_the_revocation() {
    let (url, received) = receiver().await;
    let service = tokio::task::spawn_blocking(move || {
        Service::start(&[
            ("AUDIT_ALERT_WEBHOOK_URL", url.as_str()),
            ("AUDIT_ALERT_WEBHOOK_SECRET", SECRET),
        ])
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let base = service.base();

    let created: Value = client
        .post(format!("{base}/api-keys"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "alert-test key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let revoked = client
        .post(format!("{base}/api-keys/{key_id}/revoke"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    let alerts = alerts_of(&received, "api-key-revoked", 1).await;
    assert_eq!(alerts.len(), 1, "{:?}", received.lock().unwrap());
    let (_, alert) = &alerts[0];
    assert_eq!(alert["reason"], "an API key was revoked");
    assert!(alert["threshold"].is_null());
    let entry = &alert["entries"][0];
    assert_eq!(entry["action"], "Revoke");
    assert_eq!(entry["entity_type"], "ApiKey");
    assert_eq!(entry["entity_id"], key_id.as_str());
    assert_eq!(entry["entity_name"], "alert-test key");
    assert_eq!(entry["outcome"], "success");
    assert_eq!(entry["route"], "/api-keys/{id}/revoke");
    // Creating the key raised nothing.
    assert_eq!(received.lock().unwrap().len(), 1);

    // Five wrong passwords for one account, from one address: one alert per threshold.
    for _ in 0..5 {
        let refused = client
            .post(format!("{base}/login"))
            .json(&json!({"email": "member@acme.example", "password": "wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }
    let per_account = alerts_of(&received, "failed-logins-per-account", 1).await;
    assert_eq!(per_account.len(), 1);
    assert_eq!(per_account[0].1["threshold"]["key"], "member@acme.example");
    assert_eq!(per_account[0].1["entries"].as_array().unwrap().len(), 5);
    let per_ip = alerts_of(&received, "failed-logins-per-ip", 1).await;
    assert_eq!(per_ip.len(), 1);
    assert_eq!(per_ip[0].1["threshold"]["key"], "127.0.0.1");
    service.stop("TERM");
}
