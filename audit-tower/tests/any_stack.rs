//! The layer on a plain tower stack, without axum's router: the route from a rule's template
//! or from a `RouteTemplate` the service sets, and the warning when neither gives one.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use audit_core::{Action, MemoryStore, Outcome};
use audit_tower::{AuditContext, AuditLayer, RouteRule, RouteTemplate};
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

/// A hand-written service: `404` for `/missing/...`, else `200`, naming the object through
/// the `AuditContext` when the layer gave one.
async fn handler(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    if let Some(audit) = req.extensions().get::<AuditContext>() {
        audit.entity_name("named by the handler");
    }
    let status = if req.uri().path().starts_with("/missing") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    Ok(response)
}

fn request(method: Method, path: &str) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::default())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("192.0.2.7:5000".parse::<SocketAddr>().unwrap()));
    req
}

async fn call<S>(service: &mut S, req: Request<Body>) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    service
        .ready()
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_rule_template_gives_the_route_and_the_derivation() {
    let sink = MemoryStore::new();
    let audit = AuditLayer::new(sink.clone())
        .rule(RouteRule::any_method("/tenants/{id}"))
        .rule(RouteRule::new(Method::POST, "/api-keys/{id}/revoke"))
        .rule(RouteRule::new(Method::POST, "/tenants/{tid}/teams").entity_type("Team"));
    let mut service = ServiceBuilder::new()
        .layer(audit)
        .service(tower::service_fn(handler));

    assert_eq!(
        call(&mut service, request(Method::PUT, "/tenants/acme")).await,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &mut service,
            request(Method::POST, "/api-keys/k%2042/revoke")
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        call(&mut service, request(Method::POST, "/tenants/acme/teams")).await,
        StatusCode::OK
    );
    // A path no template matches (an empty segment is not an id) records nothing.
    call(&mut service, request(Method::PUT, "/tenants/")).await;
    call(&mut service, request(Method::PUT, "/tenants/acme/extra")).await;

    let entries = sink.entries();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.action.clone(),
                e.entity_type.as_deref(),
                e.entity_id.as_deref(),
                e.route.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                Action::Update,
                Some("Tenant"),
                Some("acme"),
                Some("/tenants/{id}")
            ),
            (
                Action::Revoke,
                Some("ApiKey"),
                Some("k 42"),
                Some("/api-keys/{id}/revoke")
            ),
            (
                Action::Create,
                Some("Team"),
                None,
                Some("/tenants/{tid}/teams")
            ),
        ]
    );
    let first = &entries[0];
    assert_eq!(first.entity_name.as_deref(), Some("named by the handler"));
    assert_eq!(first.ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(first.outcome, Outcome::Success);
}

#[tokio::test]
async fn a_route_template_in_the_extensions_gives_the_route() {
    let sink = MemoryStore::new();
    // The service's own router names the template, outside the audit layer.
    let name_route = |mut req: Request<Body>| {
        let path = req.uri().path().to_owned();
        if let Some(id) = path.strip_prefix("/missing/") {
            assert!(!id.is_empty());
            req.extensions_mut()
                .insert(RouteTemplate::new("/missing/{id}"));
        } else {
            req.extensions_mut()
                .insert(RouteTemplate::from("/connection-profiles/{id}"));
        }
        req
    };
    let mut service = ServiceBuilder::new()
        .map_request(name_route)
        .layer(AuditLayer::new(sink.clone()))
        .service(tower::service_fn(handler));

    call(
        &mut service,
        request(Method::DELETE, "/connection-profiles/cp-1"),
    )
    .await;
    assert_eq!(
        call(&mut service, request(Method::PATCH, "/missing/m-1")).await,
        StatusCode::NOT_FOUND
    );
    // Safe methods pass through unrecorded, as under axum.
    call(
        &mut service,
        request(Method::GET, "/connection-profiles/cp-1"),
    )
    .await;

    let entries = sink.entries();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert_eq!(
        (
            entries[0].action.clone(),
            entries[0].entity_type.as_deref(),
            entries[0].entity_id.as_deref()
        ),
        (Action::Delete, Some("ConnectionProfile"), Some("cp-1"))
    );
    assert_eq!(
        (
            entries[1].action.clone(),
            entries[1].outcome,
            entries[1].status
        ),
        (Action::Update, Outcome::Failure, Some(404))
    );
}

/// Everything written through the subscriber, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn a_request_without_a_route_is_warned_about_once_per_shape() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sink = MemoryStore::new();
    let audit = AuditLayer::new(sink.clone()).rule(RouteRule::any_method("/tenants/{id}"));
    let mut service = ServiceBuilder::new()
        .layer(audit.clone())
        .service(tower::service_fn(handler));

    for path in ["/webhooks/w-1", "/webhooks/w-2", "/webhooks/0195f0c2"] {
        assert_eq!(
            call(&mut service, request(Method::POST, path)).await,
            StatusCode::OK,
            "served, just not recorded"
        );
    }
    call(&mut service, request(Method::DELETE, "/webhooks/w-1")).await;
    // Reads are never recorded, so they are not warned about.
    call(&mut service, request(Method::GET, "/reports/r-1")).await;
    audit.flush().await;
    assert!(sink.entries().is_empty(), "{:#?}", sink.entries());

    let text = captured.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no route template is known"))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(warnings[0].contains("POST") && warnings[0].contains("/webhooks/{…}"));
    assert!(warnings[1].contains("DELETE"));
    assert!(warnings[0].contains("RouteTemplate") && warnings[0].contains("RouteRule"));
    assert!(!text.contains("w-1"), "ids are not logged: {text}");
}
