//! Capture, end to end: requests through a real axum router under `AuditLayer`, and the entries
//! they leave in a `MemoryStore`.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

use std::net::SocketAddr;

use audit_core::{
    Action, Actor, ActorKind, ApiKeyRef, AuditEntry, MemoryStore, Outcome, TenantRef,
};
use audit_tower::{AuditContext, AuditLayer, ClientIpConfig, ClientIpSource, RouteRule};
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// How the layer records an API key it does not know: `sha256:` and the first twelve hex digits
/// of the key's SHA-256.
fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

const KEY_SECRET: &str = "sk_live_9f8e7d6c5b4a39281706";
const PASSWORD: &str = "correct-horse-battery-staple";

/// Authentication outside the audit layer: `Authorization: Bearer <user id>` becomes an actor
/// and a tenant in the request extensions; a wrong token is a 401.
async fn bearer_auth(mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    match user.as_deref() {
        Some("forbidden") => return StatusCode::FORBIDDEN.into_response(),
        Some("bad") => return StatusCode::UNAUTHORIZED.into_response(),
        Some(id) => {
            req.extensions_mut()
                .insert(Actor::user(id, format!("{id}@example.com")));
            req.extensions_mut()
                .insert(TenantRef::new("acme").with_team("ops"));
        }
        None => {}
    }
    next.run(req).await
}

async fn ok() -> &'static str {
    "ok"
}

async fn update_profile(audit: AuditContext, body: String) -> StatusCode {
    let after: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let before = json!({"name": "CRM", "host": "crm.internal", "password": "old-password-value"});
    audit
        .entity_name("CRM")
        .details("profile updated")
        .changes(&before, &after);
    StatusCode::NO_CONTENT
}

fn app(sink: &MemoryStore) -> Router {
    let tracked = [
        (Method::POST, "/tenants"),
        (Method::PUT, "/tenants/{id}"),
        (Method::POST, "/tenants/{id}/deactivate"),
        (Method::POST, "/tenants/{id}/toggle-active"),
        (Method::POST, "/connection-profiles"),
        (Method::DELETE, "/connection-profiles/{id}"),
        (Method::POST, "/mapping-configs"),
        (Method::PUT, "/mapping-configs/{id}"),
        (Method::DELETE, "/mapping-configs/{id}"),
        (Method::POST, "/api-keys"),
        (Method::POST, "/api-keys/{id}/revoke"),
        (Method::DELETE, "/api-keys/{id}"),
        (Method::POST, "/extraction-cursors/{id}/reset"),
        (Method::DELETE, "/extraction-cursors/{id}"),
    ];
    let mut router = Router::new()
        .route("/connection-profiles/{id}", put(update_profile).get(ok))
        .route("/tenants", get(ok));
    for (method, path) in tracked {
        let handler = axum::routing::on(method.try_into().unwrap(), ok);
        router = router.route(path, handler);
    }
    router = router
        .route("/login", post(|| async { StatusCode::UNAUTHORIZED }))
        .route(
            "/boom",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/missing-context",
            post(|_: AuditContext| async { "never" }),
        );
    router
        .layer(
            AuditLayer::new(sink.clone())
                .api_key_with(|raw: &str| {
                    (raw == KEY_SECRET).then(|| ApiKeyRef::new("key-1", "deploy-bot"))
                })
                .rule(
                    RouteRule::new(Method::POST, "/login")
                        .action(Action::LoginFailed)
                        .entity_type("User"),
                ),
        )
        .layer(middleware::from_fn(bearer_auth))
}

fn request(method: Method, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .extension(ConnectInfo(
            "198.51.100.7:40000".parse::<SocketAddr>().unwrap(),
        ))
}

async fn send(app: &Router, req: Request) -> (StatusCode, String) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn only(sink: &MemoryStore) -> AuditEntry {
    let entries = sink.take();
    assert_eq!(
        entries.len(),
        1,
        "expected exactly one entry, got {entries:#?}"
    );
    entries.into_iter().next().unwrap()
}

/// The routes of `app`, each with the action, entity type and entity id it records.
fn tracked() -> Vec<(
    Method,
    &'static str,
    Action,
    &'static str,
    Option<&'static str>,
)> {
    vec![
        (Method::POST, "/tenants", Action::Create, "Tenant", None),
        (
            Method::PUT,
            "/tenants/t-1",
            Action::Update,
            "Tenant",
            Some("t-1"),
        ),
        (
            Method::POST,
            "/tenants/t-1/deactivate",
            Action::Deactivate,
            "Tenant",
            Some("t-1"),
        ),
        (
            Method::POST,
            "/tenants/t-1/toggle-active",
            Action::ToggleActive,
            "Tenant",
            Some("t-1"),
        ),
        (
            Method::POST,
            "/connection-profiles",
            Action::Create,
            "ConnectionProfile",
            None,
        ),
        (
            Method::PUT,
            "/connection-profiles/cp-9",
            Action::Update,
            "ConnectionProfile",
            Some("cp-9"),
        ),
        (
            Method::DELETE,
            "/connection-profiles/cp-9",
            Action::Delete,
            "ConnectionProfile",
            Some("cp-9"),
        ),
        (
            Method::POST,
            "/mapping-configs",
            Action::Create,
            "MappingConfig",
            None,
        ),
        (
            Method::PUT,
            "/mapping-configs/42",
            Action::Update,
            "MappingConfig",
            Some("42"),
        ),
        (
            Method::DELETE,
            "/mapping-configs/42",
            Action::Delete,
            "MappingConfig",
            Some("42"),
        ),
        (Method::POST, "/api-keys", Action::Create, "ApiKey", None),
        (
            Method::POST,
            "/api-keys/k%2F7/revoke",
            Action::Revoke,
            "ApiKey",
            Some("k/7"),
        ),
        (
            Method::DELETE,
            "/api-keys/k7",
            Action::Delete,
            "ApiKey",
            Some("k7"),
        ),
        (
            Method::POST,
            "/extraction-cursors/c1/reset",
            Action::Reset,
            "ExtractionCursor",
            Some("c1"),
        ),
        (
            Method::DELETE,
            "/extraction-cursors/c1",
            Action::Delete,
            "ExtractionCursor",
            Some("c1"),
        ),
    ]
}

/// Sends `method path` as the signed-in user `u-17`, or with the API key alone.
async fn send_as(app: &Router, method: &Method, path: &str, by_key: bool) -> StatusCode {
    let req = request(method.clone(), path).header("user-agent", "audit-test/1.0");
    let req = if by_key {
        req.header("x-api-key", KEY_SECRET)
    } else {
        req.header("authorization", "Bearer u-17")
    };
    send(app, req.body("{}".into()).unwrap()).await.0
}

#[tokio::test]
async fn every_tracked_route_leaves_one_entry_with_its_action_entity_and_id() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    for (method, path, action, entity_type, entity_id) in tracked() {
        let status = send_as(&app, &method, path, false).await;
        assert!(status.is_success(), "{method} {path}: {status}");
        let e = only(&sink);
        let what = format!("{method} {path}");
        assert_eq!(e.action, action, "{what}");
        assert_eq!(e.entity_type.as_deref(), Some(entity_type), "{what}");
        assert_eq!(e.entity_id.as_deref(), entity_id, "{what}");
        assert_eq!(e.method.as_deref(), Some(method.as_str()), "{what}");
        assert_eq!(e.outcome, Outcome::Success, "{what}");
        let no_content = path == "/connection-profiles/cp-9" && method == Method::PUT;
        assert_eq!(e.status, Some(if no_content { 204 } else { 200 }), "{what}");
        assert_eq!(e.ip, Some("198.51.100.7".parse().unwrap()), "{what}");
        assert_eq!(e.user_agent.as_deref(), Some("audit-test/1.0"), "{what}");
        // The template, never the path with its ids.
        assert!(
            e.route
                .as_deref()
                .is_some_and(|r| !r.contains("t-1") && !r.contains("42")),
            "{what}"
        );
    }
}

/// Sends every tracked route's request as the user or by key, and checks each entry it leaves.
async fn each_tracked_entry(by_key: bool, check: impl Fn(&AuditEntry, &str)) {
    let sink = MemoryStore::new();
    let app = app(&sink);
    for (method, path, ..) in tracked() {
        assert!(send_as(&app, &method, path, by_key).await.is_success());
        check(&only(&sink), &format!("{method} {path}"));
    }
}

#[tokio::test]
async fn a_signed_in_users_change_names_the_user_tenant_and_team() {
    each_tracked_entry(false, |e, what| {
        assert_eq!(e.actor_kind, ActorKind::User, "{what}");
        assert_eq!(e.actor_id.as_deref(), Some("u-17"), "{what}");
        assert_eq!(e.actor_name.as_deref(), Some("u-17@example.com"), "{what}");
        assert_eq!(e.api_key_name, None, "{what}");
        assert_eq!(
            (e.tenant_id.as_deref(), e.team_id.as_deref()),
            (Some("acme"), Some("ops")),
            "{what}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_change_made_with_an_api_key_alone_is_the_keys_doing() {
    each_tracked_entry(true, |e, what| {
        assert_eq!(e.actor_kind, ActorKind::ApiKey, "{what}");
        assert_eq!(e.actor_name.as_deref(), Some("deploy-bot"), "{what}");
        assert_eq!(e.api_key_name.as_deref(), Some("deploy-bot"), "{what}");
        assert_eq!(e.api_key_id.as_deref(), Some("key-1"), "{what}");
        assert_eq!(e.tenant_id, None, "{what}");
    })
    .await;
}

#[tokio::test]
async fn reads_unmatched_routes_and_safe_methods_record_nothing() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    for (method, path) in [
        (Method::GET, "/tenants"),
        (Method::GET, "/connection-profiles/cp-1"),
        (Method::HEAD, "/tenants"),
        (Method::POST, "/no-such-route"),
        (Method::DELETE, "/tenants/t-1/unknown"),
        (Method::OPTIONS, "/tenants"),
    ] {
        let (status, _) = send(&app, request(method.clone(), path).body("".into()).unwrap()).await;
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}");
    }
    assert_eq!(sink.entries(), vec![]);
}

#[tokio::test]
async fn any_method_a_client_sends_leaves_an_action_that_reads_back() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    let long = "A".repeat(70);
    for (method, action) in [
        ("FOO!", "Foo"),
        ("M-SEARCH", "MSearch"),
        ("PURGE", "Purge"),
        ("123", "Custom"),
        ("~*^|", "Custom"),
        (long.as_str(), "Aaaa"),
    ] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _) = send(
            &app,
            request(method.clone(), "/tenants").body("".into()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        let entry = only(&sink);
        assert!(entry.action.is_valid(), "{method}: {:?}", entry.action);
        assert!(
            entry.action.as_str().starts_with(action),
            "{method}: {:?}",
            entry.action
        );
        assert_eq!(entry.outcome, Outcome::Failure);
        // A 405 on a known route names the route's entity, as any method does.
        assert_eq!(entry.entity_type.as_deref(), Some("Tenant"), "{method}");
        assert_eq!(entry.route.as_deref(), Some("/tenants"), "{method}");
        let json = serde_json::to_string(&entry).unwrap();
        let back: AuditEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.action, entry.action, "{method}");
    }
}

#[tokio::test]
async fn denied_and_failed_requests_are_recorded_with_their_outcome() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    let (status, _) = send(
        &app,
        request(Method::POST, "/login").body("".into()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let login = only(&sink);
    assert_eq!(
        (login.action, login.outcome, login.status),
        (Action::LoginFailed, Outcome::Denied, Some(401))
    );
    assert_eq!(login.entity_type.as_deref(), Some("User"));
    assert_eq!(login.actor_kind, ActorKind::Anonymous);

    let (status, _) = send(
        &app,
        request(Method::POST, "/boom").body("".into()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(only(&sink).outcome, Outcome::Failure);
}

#[tokio::test]
async fn a_forbidden_request_stopped_by_auth_inside_the_layer_is_denied() {
    // Authentication inside the layer: a route layer that refuses, and one that names the actor
    // in the response extensions.
    async fn inner_auth(req: Request, next: Next) -> Response {
        if req.headers().contains_key("x-deny") {
            return StatusCode::FORBIDDEN.into_response();
        }
        let mut response = next.run(req).await;
        response
            .extensions_mut()
            .insert(Actor::user("u-inner", "inner@example.com"));
        response
    }
    let sink = MemoryStore::new();
    let app = Router::new()
        .route("/api-keys/{id}/revoke", post(ok))
        .route_layer(middleware::from_fn(inner_auth))
        .layer(AuditLayer::new(sink.clone()));
    let denied = request(Method::POST, "/api-keys/k1/revoke")
        .header("x-deny", "1")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, denied).await.0, StatusCode::FORBIDDEN);
    let e = only(&sink);
    assert_eq!(
        (e.outcome, e.status, e.action),
        (Outcome::Denied, Some(403), Action::Revoke)
    );
    let allowed = request(Method::POST, "/api-keys/k1/revoke")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, allowed).await.0, StatusCode::OK);
    let e = only(&sink);
    assert_eq!(e.actor_id.as_deref(), Some("u-inner"));
    assert_eq!(e.actor_kind, ActorKind::User);
}

#[tokio::test]
async fn denied_by_auth_outside_the_layer_is_not_seen_by_it() {
    // The outer middleware answers 401/403 before the request reaches the layer, so nothing is
    // recorded there; put authentication inside the layer to record refused attempts.
    let sink = MemoryStore::new();
    let app = app(&sink);
    let req = request(Method::POST, "/tenants")
        .header("authorization", "Bearer forbidden")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::FORBIDDEN);
    assert!(sink.is_empty());
}

#[tokio::test]
async fn client_ip_ignores_spoofed_headers_and_walks_trusted_proxies() {
    let sink = MemoryStore::new();
    let route = || Router::new().route("/tenants", post(ok));
    let spoofable = route().layer(
        AuditLayer::new(sink.clone())
            .client_ip(ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, [])),
    );
    let spoofed = request(Method::POST, "/tenants")
        .header("x-forwarded-for", "6.6.6.6")
        .body("".into())
        .unwrap();
    send(&spoofable, spoofed).await;
    assert_eq!(only(&sink).ip, Some("198.51.100.7".parse().unwrap()));

    let behind_proxies = route().layer(AuditLayer::new(sink.clone()).client_ip(
        ClientIpConfig::forwarded(
            ClientIpSource::XForwardedFor,
            [
                "198.51.100.0/24".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
        ),
    ));
    let chained = request(Method::POST, "/tenants")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.5")
        .body("".into())
        .unwrap();
    send(&behind_proxies, chained).await;
    assert_eq!(only(&sink).ip, Some("203.0.113.9".parse().unwrap()));

    // Garbage headers of every kind: no panic, no 500, the peer address.
    let garbage: Vec<Vec<u8>> = vec![
        b"\xff\xfe\xfd".to_vec(),
        b"300.1.1.1".to_vec(),
        "x,".repeat(5000).into_bytes(),
        b"for=\"[::1".to_vec(),
        vec![b'a'; 60_000],
    ];
    for value in garbage {
        let req = request(Method::POST, "/tenants")
            .header("x-forwarded-for", value.as_slice())
            .header("user-agent", value.as_slice())
            .header("x-request-id", value.as_slice())
            .header("x-api-key", value.as_slice())
            .body("".into())
            .unwrap();
        assert_eq!(send(&behind_proxies, req).await.0, StatusCode::OK);
        let e = only(&sink);
        assert_eq!(e.ip, Some("198.51.100.7".parse().unwrap()));
        assert!(e.user_agent.as_ref().is_some_and(|ua| ua.len() <= 512));
        assert!(e.request_id.as_ref().is_some_and(|id| id.len() <= 128));
        assert!(
            e.api_key_id
                .as_ref()
                .is_some_and(|id| id.starts_with("sha256:") && id.len() == 19)
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_the_entries() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    let body = json!({"name": "CRM", "host": "crm2.internal", "password": PASSWORD}).to_string();
    let req = request(
        Method::PUT,
        "/connection-profiles/cp-1?token=query-secret-123",
    )
    .header("x-api-key", KEY_SECRET)
    .header("cookie", "session=cookie-secret-456")
    .body(body.into())
    .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::NO_CONTENT);
    let unknown = request(Method::POST, "/tenants")
        .header("x-api-key", "sk_unknown_key_abcdef123456")
        .header("authorization", "Bearer u-1")
        .body(json!({"password": PASSWORD}).to_string().into())
        .unwrap();
    send(&app, unknown).await;
    let entries = sink.entries();
    assert_eq!(entries.len(), 2);
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        KEY_SECRET,
        PASSWORD,
        "old-password-value",
        "query-secret-123",
        "cookie-secret-456",
        "sk_unknown_key_abcdef123456",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    let profile = &entries[0];
    assert_eq!(profile.entity_name.as_deref(), Some("CRM"));
    assert_eq!(profile.details.as_deref(), Some("profile updated"));
    let fields: Vec<(&str, &Value, &Value)> = profile
        .changes
        .iter()
        .map(|c| (c.field.as_str(), &c.old, &c.new))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("host", &json!("crm.internal"), &json!("crm2.internal")),
            ("password", &json!("[REDACTED]"), &json!("[REDACTED]")),
        ]
    );
    // The unknown key is known only by its fingerprint.
    assert_eq!(
        entries[1].api_key_id.as_deref(),
        Some(fingerprint(b"sk_unknown_key_abcdef123456").as_str())
    );
    assert_eq!(entries[1].api_key_name, None);
    assert_eq!(entries[1].actor_id.as_deref(), Some("u-1"));
}

#[tokio::test]
async fn request_ids_come_from_the_header_or_the_entry() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    let req = request(Method::POST, "/tenants")
        .header("x-request-id", "req-123")
        .body("".into())
        .unwrap();
    send(&app, req).await;
    assert_eq!(only(&sink).request_id.as_deref(), Some("req-123"));
    send(
        &app,
        request(Method::POST, "/tenants").body("".into()).unwrap(),
    )
    .await;
    let e = only(&sink);
    assert_eq!(e.request_id, Some(e.id.to_string()));
    assert_eq!(e.id.get_version_num(), 7);
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn trace_ids_come_from_a_valid_traceparent_only() {
    let sink = MemoryStore::new();
    let app = app(&sink);
    let traced = |values: &[&str]| {
        let mut req = request(Method::POST, "/tenants");
        for value in values {
            req = req.header("traceparent", *value);
        }
        req.body("".into()).unwrap()
    };
    for value in [
        format!("00-{TRACE}-00f067aa0ba902b7-01"),
        format!("00-{TRACE}-00f067aa0ba902b7-00"),
        format!("01-{TRACE}-00f067aa0ba902b7-01-and-more"),
    ] {
        let (status, _) = send(&app, traced(&[&value])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(only(&sink).trace_id.as_deref(), Some(TRACE), "{value}");
    }
    let upper = TRACE.to_uppercase();
    let valid = format!("00-{TRACE}-00f067aa0ba902b7-01");
    for values in [
        vec![format!("00-{}-00f067aa0ba902b7-01", &TRACE[2..])],
        vec![format!("00-{TRACE}ab-00f067aa0ba902b7-01")],
        vec![format!("00-{upper}-00f067aa0ba902b7-01")],
        vec![format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32))],
        vec![format!("00-{TRACE}-0000000000000000-01")],
        vec![format!("ff-{TRACE}-00f067aa0ba902b7-01")],
        vec![format!("00-{TRACE}-00f067aa0ba902b7")],
        vec![format!("00-{TRACE}")],
        vec![format!("00-{TRACE}-00f067aa0ba902b7-01-extra")],
        vec!["garbage".to_owned()],
        vec![String::new()],
        // Two headers are no valid header.
        vec![valid.clone(), valid.clone()],
    ] {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let (status, _) = send(&app, traced(&values)).await;
        assert_eq!(status, StatusCode::OK, "{values:?}");
        let entry = only(&sink);
        assert_eq!(entry.trace_id, None, "{values:?}");
        assert_eq!(entry.outcome, Outcome::Success);
    }
    // A value that is not even text.
    let req = request(Method::POST, "/tenants")
        .header(
            "traceparent",
            http::HeaderValue::from_bytes(b"00-\xff\xfe").unwrap(),
        )
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
    assert_eq!(only(&sink).trace_id, None);
    // No header: no trace id.
    send(
        &app,
        request(Method::POST, "/tenants").body("".into()).unwrap(),
    )
    .await;
    assert_eq!(only(&sink).trace_id, None);
}

#[tokio::test]
async fn a_job_started_by_a_traced_request_carries_its_trace_id() {
    use audit_core::AuditSink;
    use audit_core::scope::InAuditScope;
    let sink = MemoryStore::new();
    let jobs = MemoryStore::new();
    let job_sink = jobs.clone();
    let app = Router::new()
        .route(
            "/extraction-cursors/{id}/run",
            post(move |audit: AuditContext| {
                let jobs = job_sink.clone();
                async move {
                    let entry = async { AuditEntry::builder(Action::Execute).build() }
                        .in_audit_scope(audit.job_scope("extraction-run"))
                        .await;
                    jobs.record(entry).await.unwrap();
                    StatusCode::ACCEPTED
                }
            }),
        )
        .layer(AuditLayer::new(sink.clone()));
    let req = request(Method::POST, "/extraction-cursors/c-1/run")
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::ACCEPTED);
    let request_entry = only(&sink);
    let job_entry = only(&jobs);
    assert_eq!(request_entry.trace_id.as_deref(), Some(TRACE));
    assert_eq!(job_entry.trace_id.as_deref(), Some(TRACE));
    assert_eq!(job_entry.request_id, request_entry.request_id);
}

#[tokio::test]
async fn handlers_can_skip_override_and_claim() {
    let sink = MemoryStore::new();
    let app = Router::new()
        .route(
            "/tenants/{id}/skip",
            post(|audit: AuditContext| async move {
                audit.skip();
                "skipped"
            }),
        )
        .route(
            "/tenants/{id}/approve",
            post(|audit: AuditContext| async move {
                audit
                    .action(Action::Custom("Approve".into()))
                    .actor(Actor::system("approver"))
                    .tenant(TenantRef::new("t9"))
                    .outcome(Outcome::Failure)
                    .metadata("reason", "policy")
                    .metadata("api_token", &"tok-should-not-appear");
                "ok"
            }),
        )
        .route(
            "/tenants",
            post(|audit: AuditContext| async move {
                let entry = audit.claim().expect("first claim");
                assert!(audit.claim().is_none());
                Json(entry)
            }),
        )
        .layer(AuditLayer::new(sink.clone()));
    use axum::Json;
    send(
        &app,
        request(Method::POST, "/tenants/1/skip")
            .body("".into())
            .unwrap(),
    )
    .await;
    assert!(sink.is_empty());
    send(
        &app,
        request(Method::POST, "/tenants/1/approve")
            .body("".into())
            .unwrap(),
    )
    .await;
    let e = only(&sink);
    assert_eq!(e.action, Action::Custom("Approve".into()));
    assert_eq!(
        (e.actor_kind, e.actor_name.as_deref()),
        (ActorKind::System, Some("approver"))
    );
    assert_eq!(e.tenant_id.as_deref(), Some("t9"));
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.metadata["reason"], "policy");
    assert_eq!(e.metadata["api_token"], "[REDACTED]");
    // A claimed entry is the caller's to store: the layer writes nothing.
    let (status, body) = send(
        &app,
        request(Method::POST, "/tenants").body("".into()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let claimed: AuditEntry = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (claimed.action, claimed.entity_type.as_deref()),
        (Action::Create, Some("Tenant"))
    );
    assert!(sink.is_empty());
}

#[tokio::test]
async fn a_missing_layer_is_a_clear_error() {
    let app = Router::new().route("/x", post(|_: AuditContext| async { "never" }));
    let (status, body) = send(&app, request(Method::POST, "/x").body("".into()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("AuditLayer"), "{body}");
    let optional = Router::new().route(
        "/x",
        get(|audit: Option<AuditContext>| async move { audit.is_some().to_string() }),
    );
    assert_eq!(
        send(
            &optional,
            request(Method::GET, "/x").body("".into()).unwrap()
        )
        .await
        .1,
        "false"
    );
}

#[tokio::test]
async fn a_request_dropped_while_its_entry_is_written_still_leaves_it() {
    /// Takes 200 ms to store an entry.
    struct Slow(MemoryStore);
    #[async_trait::async_trait]
    impl audit_core::AuditSink for Slow {
        async fn record(&self, entry: AuditEntry) -> Result<(), audit_core::SinkError> {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            self.0.record(entry).await
        }
    }
    let sink = MemoryStore::new();
    let app = Router::new()
        .route("/tenants", post(ok))
        .layer(AuditLayer::new(Slow(sink.clone())));
    // The handler answers at once; the client (here, a timeout) gives up while the layer is
    // still writing the entry.
    let request: Request = request(Method::POST, "/tenants").body("".into()).unwrap();
    let outcome =
        tokio::time::timeout(std::time::Duration::from_millis(50), app.oneshot(request)).await;
    assert!(outcome.is_err(), "the request should have timed out");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let entry = only(&sink);
    assert_eq!(entry.action, Action::Create);
    assert_eq!(entry.entity_type.as_deref(), Some("Tenant"));
}

#[tokio::test]
async fn a_secret_in_the_path_is_not_recorded_as_the_entity_id() {
    let sink = MemoryStore::new();
    let app = Router::new()
        .route("/password-resets/{token}", post(ok))
        .route("/api-keys/{id}/revoke", post(ok))
        .route("/api-tokens/{token_id}", axum::routing::delete(ok))
        .layer(AuditLayer::new(sink.clone()));
    let req = request(Method::POST, "/password-resets/rst_S3CRET456")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
    let entry = only(&sink);
    assert_eq!(entry.entity_type.as_deref(), Some("PasswordReset"));
    assert_eq!(entry.entity_id.as_deref(), Some(audit_core::REDACTED));
    assert!(!serde_json::to_string(&entry).unwrap().contains("S3CRET"));
    // An ordinary id parameter is recorded as it is.
    let req = request(Method::POST, "/api-keys/k-7/revoke")
        .body("".into())
        .unwrap();
    send(&app, req).await;
    assert_eq!(only(&sink).entity_id.as_deref(), Some("k-7"));
    // A parameter that names a secret's id is the id, not the secret.
    let req = request(Method::DELETE, "/api-tokens/tok-42")
        .body("".into())
        .unwrap();
    send(&app, req).await;
    assert_eq!(only(&sink).entity_id.as_deref(), Some("tok-42"));
}

#[tokio::test]
async fn a_failing_sink_never_fails_the_request() {
    struct Broken;
    #[async_trait::async_trait]
    impl audit_core::AuditSink for Broken {
        async fn record(&self, _: AuditEntry) -> Result<(), audit_core::SinkError> {
            Err(audit_core::SinkError::Unavailable("disk on fire".into()))
        }
    }
    let layer = AuditLayer::new(Broken).synchronous(
        audit_tower::Synchronous::default().wait(std::time::Duration::from_millis(50)),
    );
    let app = Router::new()
        .route("/tenants", post(ok))
        .layer(layer.clone());
    let (status, body) = send(
        &app,
        request(Method::POST, "/tenants").body("".into()).unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    // The entry is not dropped: the writer keeps it and keeps trying.
    let stats = layer.stats();
    assert_eq!((stats.handed_off, stats.queued), (1, 1));
}

#[tokio::test]
async fn over_real_tcp_the_peer_address_comes_from_connect_info() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sink = MemoryStore::new();
    let app = Router::new()
        .route("/api-keys/{id}/revoke", post(ok))
        .layer(AuditLayer::new(sink.clone()));
    let (addr, server) = audit_test_support::serve(app).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /api-keys/k-3/revoke HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let e = only(&sink);
    assert_eq!(e.ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(
        (e.action, e.entity_id.as_deref()),
        (Action::Revoke, Some("k-3"))
    );
    server.abort();
}

#[tokio::test]
async fn record_with_stores_the_entry_once_and_gives_it_back_on_failure() {
    let sink = MemoryStore::new();
    let written = MemoryStore::new();
    let written_by_handler = written.clone();
    let app = Router::new()
        .route(
            "/mapping-configs/{id}",
            put(move |audit: AuditContext, headers: http::HeaderMap| {
                let written = written_by_handler.clone();
                async move {
                    audit.entity_name("Orders mapping");
                    let fail = headers.contains_key("x-fail");
                    let result = audit
                        .record_with(|entry| async move {
                            if fail {
                                return Err("database is down");
                            }
                            audit_core::AuditSink::record(&written, entry)
                                .await
                                .map_err(|_| "sink")
                        })
                        .await;
                    match result {
                        Ok(()) => StatusCode::OK,
                        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }
            }),
        )
        .layer(AuditLayer::new(sink.clone()));
    let ok_req = request(Method::PUT, "/mapping-configs/m1")
        .header("authorization", "Bearer u1")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, ok_req).await.0, StatusCode::OK);
    assert!(
        sink.is_empty(),
        "the layer must not write a claimed entry a second time"
    );
    let e = only(&written);
    assert_eq!(
        (e.action, e.entity_id.as_deref(), e.entity_name.as_deref()),
        (Action::Update, Some("m1"), Some("Orders mapping"))
    );
    assert_eq!(e.ip, Some("198.51.100.7".parse().unwrap()));
    assert_eq!(e.route.as_deref(), Some("/mapping-configs/{id}"));

    let failing = request(Method::PUT, "/mapping-configs/m1")
        .header("x-fail", "1")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, failing).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(written.is_empty());
    let e = only(&sink);
    assert_eq!((e.outcome, e.status), (Outcome::Failure, Some(503)));
    assert_eq!(e.entity_name.as_deref(), Some("Orders mapping"));
}

#[tokio::test]
async fn a_second_attempt_stores_what_the_handler_said_since_the_first() {
    let sink = MemoryStore::new();
    let written = MemoryStore::new();
    let written_by_handler = written.clone();
    let app = Router::new()
        .route(
            "/mapping-configs/{id}",
            put(move |audit: AuditContext| {
                let written = written_by_handler.clone();
                async move {
                    audit.details("first try");
                    let first = audit
                        .record_with(|_| async { Err::<(), _>("deadlock") })
                        .await;
                    assert!(first.is_err());
                    audit.details("second try, after a deadlock");
                    audit
                        .record_with(|entry| async move {
                            audit_core::AuditSink::record(&written, entry).await
                        })
                        .await
                        .unwrap();
                    StatusCode::OK
                }
            }),
        )
        .layer(AuditLayer::new(sink.clone()));
    let req = request(Method::PUT, "/mapping-configs/m1")
        .body("".into())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
    assert!(sink.is_empty(), "the entry was stored by the handler");
    let e = only(&written);
    assert_eq!(e.details.as_deref(), Some("second try, after a deadlock"));
    assert_eq!(e.outcome, Outcome::Success);
}

/// An error type as a service writes one: a status, a JSON body, and the reason for the log.
fn failing(status: StatusCode, code: &'static str, message: &'static str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(audit_tower::FailureReason::new(code, message));
    response
}

#[tokio::test]
async fn a_failures_entry_says_why_bounded_and_without_secrets() {
    let sink = MemoryStore::new();
    let app = Router::new()
        .route(
            "/connection-profiles/{id}",
            put(|| async {
                failing(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_host",
                    "cannot reach postgres://app:hunter2@db.internal/app",
                )
            }),
        )
        .route(
            "/tenants/{id}",
            put(|audit: AuditContext| async move {
                audit.details("the handler's own words");
                failing(StatusCode::CONFLICT, "conflict", "the name is taken")
            }),
        )
        .route(
            "/api-keys",
            post(|| async { failing(StatusCode::BAD_REQUEST, "too_long", "x") }),
        )
        .layer(AuditLayer::new(sink.clone()));

    let (status, _) = send(
        &app,
        request(Method::PUT, "/connection-profiles/cp-1")
            .body("{}".into())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let entry = only(&sink);
    assert_eq!(entry.outcome, Outcome::Failure);
    assert_eq!(
        entry.details.as_deref(),
        Some("invalid_host: cannot reach postgres://app:[REDACTED]@db.internal/app")
    );
    assert!(!serde_json::to_string(&entry).unwrap().contains("hunter2"));

    send(
        &app,
        request(Method::PUT, "/tenants/t-1")
            .body("{}".into())
            .unwrap(),
    )
    .await;
    assert_eq!(
        only(&sink).details.as_deref(),
        Some("the handler's own words")
    );

    // The code alone when the message is short.
    send(
        &app,
        request(Method::POST, "/api-keys")
            .body("{}".into())
            .unwrap(),
    )
    .await;
    assert_eq!(only(&sink).details.as_deref(), Some("too_long: x"));
}

#[tokio::test]
async fn the_products_verbs_and_unknown_words_after_an_id_act_on_the_object() {
    let sink = MemoryStore::new();
    let app = Router::new()
        .route("/flows/{id}/clone", post(ok))
        .route("/flows/{id}/archive", post(ok))
        .route("/users/{id}/password", put(ok))
        .route("/tenants/{id}/teams", post(ok))
        .layer(AuditLayer::new(sink.clone()));
    let cases = [
        (
            Method::POST,
            "/flows/f-1/clone",
            Action::Clone,
            "Flow",
            Some("f-1"),
        ),
        (
            Method::POST,
            "/flows/f-2/archive",
            Action::Custom("Archive".into()),
            "Flow",
            Some("f-2"),
        ),
        (
            Method::PUT,
            "/users/u-1/password",
            Action::ChangePassword,
            "User",
            Some("u-1"),
        ),
        (
            Method::POST,
            "/tenants/t-1/teams",
            Action::Create,
            "Team",
            None,
        ),
    ];
    for (method, path, action, entity, id) in cases {
        let (status, _) = send(&app, request(method, path).body("{}".into()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let entry = only(&sink);
        assert_eq!(entry.action, action, "{path}");
        assert_eq!(entry.entity_type.as_deref(), Some(entity), "{path}");
        assert_eq!(entry.entity_id.as_deref(), id, "{path}");
    }
}

#[tokio::test]
async fn a_layer_given_a_clock_dates_its_entries_by_it() {
    use chrono::{TimeZone, Utc};
    use std::sync::{Arc, Mutex};

    let sink = MemoryStore::new();
    let at = Arc::new(Mutex::new(
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0).unwrap(),
    ));
    let clock = at.clone();
    let app = Router::new()
        .route("/tenants", post(ok))
        .layer(AuditLayer::new(sink.clone()).clock(move || *clock.lock().unwrap()));
    send(
        &app,
        request(Method::POST, "/tenants").body("{}".into()).unwrap(),
    )
    .await;
    *at.lock().unwrap() = Utc.with_ymd_and_hms(2026, 11, 5, 17, 0, 0).unwrap();
    send(
        &app,
        request(Method::POST, "/tenants").body("{}".into()).unwrap(),
    )
    .await;
    let mut times: Vec<_> = sink
        .entries()
        .iter()
        .map(|e| (e.occurred_at, e.id))
        .collect();
    times.sort();
    assert_eq!(
        times
            .iter()
            .map(|(t, _)| t.to_rfc3339())
            .collect::<Vec<_>>(),
        ["2026-11-02T09:30:00+00:00", "2026-11-05T17:00:00+00:00"]
    );
    // The ids are UUIDv7 of the same instants, so they sort like the times.
    assert!(times[0].1 < times[1].1);
    assert_eq!(
        times[0].1.get_timestamp().unwrap().to_unix().0,
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0)
            .unwrap()
            .timestamp() as u64
    );
}
