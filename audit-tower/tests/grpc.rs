//! gRPC, end to end: a tonic server on 127.0.0.1 under `AuditLayer::grpc`, called by a tonic
//! client over TCP, and the entries it leaves in a `MemoryStore`.
//!
//! The messages and the service are written by hand (`prost::Message` derives, a
//! `tower::Service` over `tonic::server::Grpc`), so no `protoc` is needed.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose: a failure is a failed test

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use audit_core::{Action, ActorKind, ApiKeyRef, AuditEntry, MemoryStore, Outcome};
use audit_tower::{AuditContext, AuditLayer};
use futures_util::{Stream, StreamExt, stream};
use http::HeaderName;
use http::uri::PathAndQuery;
use serde_json::Value;
use tonic::body::Body;
use tonic::client::Grpc as Client;
use tonic::server::{Grpc, NamedService};
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct UpdateProfileRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteProfilesRequest {
    #[prost(string, repeated, tag = "1")]
    ids: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Profile {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
}

const SERVICE: &str = "pkg.ConnectionProfiles";
const UPDATE: &str = "/pkg.ConnectionProfiles/UpdateProfile";
const DELETE: &str = "/pkg.ConnectionProfiles/DeleteProfiles";
const GET: &str = "/pkg.ConnectionProfiles/GetProfile";
const KEY_SECRET: &str = "sk_live_ci_0123456789";

/// `UpdateProfile`: names the profile through the `AuditContext` tonic hands it in the
/// request's extensions; `locked` is refused with `PERMISSION_DENIED`.
async fn update_profile(
    request: Request<UpdateProfileRequest>,
) -> Result<Response<Profile>, Status> {
    let audit = request.extensions().get::<AuditContext>().cloned();
    let message = request.into_inner();
    if message.id == "locked" {
        return Err(Status::permission_denied("profile locked is read-only"));
    }
    if let Some(audit) = audit {
        audit.entity_id(&message.id).entity_name(&message.name);
    }
    Ok(Response::new(Profile {
        id: message.id,
        name: message.name,
    }))
}

type Deletions = Pin<Box<dyn Stream<Item = Result<Profile, Status>> + Send>>;

/// `DeleteProfiles`, server streaming: one message per deleted profile; an unknown id ends the
/// stream with `NOT_FOUND`, which travels in the trailers after the messages; an id starting
/// with `slow` leaves the stream open after its message.
async fn delete_profiles(
    request: Request<DeleteProfilesRequest>,
) -> Result<Response<Deletions>, Status> {
    let items: Vec<Result<Profile, Status>> = request
        .into_inner()
        .ids
        .into_iter()
        .map(|id| {
            if id.starts_with("missing") {
                Err(Status::not_found(format!("profile {id} not found: café")))
            } else {
                Ok(Profile {
                    id,
                    name: String::new(),
                })
            }
        })
        .collect();
    let slow = items
        .iter()
        .any(|item| item.as_ref().is_ok_and(|p| p.id.starts_with("slow")));
    let deletions = stream::iter(items);
    Ok(Response::new(if slow {
        Box::pin(deletions.chain(stream::pending()))
    } else {
        Box::pin(deletions)
    }))
}

/// The service as tonic's generated code would make it.
#[derive(Clone)]
struct Profiles;

impl NamedService for Profiles {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl tower::Service<http::Request<Body>> for Profiles {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            let response = match path.as_str() {
                UPDATE => {
                    let codec = ProstCodec::<Profile, UpdateProfileRequest>::default();
                    let handler = tower::service_fn(update_profile);
                    Grpc::new(codec).unary(handler, req).await
                }
                GET => {
                    let codec = ProstCodec::<Profile, UpdateProfileRequest>::default();
                    let handler =
                        tower::service_fn(|r: Request<UpdateProfileRequest>| async move {
                            Ok::<_, Status>(Response::new(Profile {
                                id: r.into_inner().id,
                                name: "CRM".into(),
                            }))
                        });
                    Grpc::new(codec).unary(handler, req).await
                }
                DELETE => {
                    let codec = ProstCodec::<Profile, DeleteProfilesRequest>::default();
                    let handler = tower::service_fn(delete_profiles);
                    Grpc::new(codec).server_streaming(handler, req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

/// A server on an ephemeral port under the audit layer, and a client connected to it.
async fn start(sink: &MemoryStore) -> (AuditLayer, Client<Channel>, SocketAddr) {
    let audit = AuditLayer::new(sink.clone())
        .api_key_with(|raw: &str| (raw == KEY_SECRET).then(|| ApiKeyRef::new("k-1", "CI deploy")))
        .entity_id_header(HeaderName::from_static("x-entity-id"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = Server::builder()
        .layer(audit.grpc())
        .add_service(Profiles)
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (audit, Client::new(channel), addr)
}

fn with_key<M>(message: M) -> Request<M> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", KEY_SECRET.parse().unwrap());
    request
}

async fn update(client: &mut Client<Channel>, id: &str) -> Result<Profile, Status> {
    client.ready().await.unwrap();
    let message = UpdateProfileRequest {
        id: id.into(),
        name: "CRM".into(),
    };
    let codec = ProstCodec::<UpdateProfileRequest, Profile>::default();
    client
        .unary(with_key(message), PathAndQuery::from_static(UPDATE), codec)
        .await
        .map(Response::into_inner)
}

fn only(sink: &MemoryStore) -> AuditEntry {
    let entries = sink.entries();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    entries.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_successful_update_is_recorded_with_its_key_address_and_status() {
    let sink = MemoryStore::new();
    let (_audit, mut client, _) = start(&sink).await;

    let profile = update(&mut client, "p-1").await.unwrap();
    assert_eq!(profile.id, "p-1");

    // Synchronous delivery: the call's trailers waited for the entry.
    let entry = only(&sink);
    assert_eq!(entry.action, Action::Update);
    assert_eq!(entry.entity_type.as_deref(), Some("ConnectionProfile"));
    assert_eq!(entry.entity_id.as_deref(), Some("p-1"));
    assert_eq!(entry.entity_name.as_deref(), Some("CRM"));
    assert_eq!(entry.outcome, Outcome::Success);
    assert_eq!(entry.details, None);
    assert_eq!(entry.metadata.get("grpc_status"), Some(&Value::from(0)));
    assert_eq!(entry.route.as_deref(), Some(UPDATE));
    assert_eq!(entry.method.as_deref(), Some("POST"));
    assert_eq!(entry.status, Some(200));
    assert_eq!(
        (entry.api_key_id.as_deref(), entry.api_key_name.as_deref()),
        (Some("k-1"), Some("CI deploy"))
    );
    assert_eq!(entry.actor_kind, ActorKind::ApiKey);
    assert_eq!(entry.ip, Some("127.0.0.1".parse().unwrap()));
    assert!(
        entry
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("tonic")),
        "{:?}",
        entry.user_agent
    );
}

#[tokio::test]
async fn a_refused_call_is_denied() {
    let sink = MemoryStore::new();
    let (_audit, mut client, _) = start(&sink).await;

    let status = update(&mut client, "locked").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let entry = only(&sink);
    assert_eq!(entry.outcome, Outcome::Denied);
    assert_eq!(entry.action, Action::Update);
    assert_eq!(
        entry.details.as_deref(),
        Some("PERMISSION_DENIED: profile locked is read-only")
    );
    assert_eq!(entry.metadata.get("grpc_status"), Some(&Value::from(7)));
}

#[tokio::test]
async fn a_status_in_the_trailers_after_messages_is_the_outcome() {
    let sink = MemoryStore::new();
    let (_audit, mut client, _) = start(&sink).await;

    client.ready().await.unwrap();
    let mut request = with_key(DeleteProfilesRequest {
        ids: vec!["p-1".into(), "missing-9".into()],
    });
    request
        .metadata_mut()
        .insert("x-entity-id", "p-1".parse().unwrap());
    let codec = ProstCodec::<DeleteProfilesRequest, Profile>::default();
    let mut deleted = client
        .server_streaming(request, PathAndQuery::from_static(DELETE), codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.message().await.unwrap().unwrap().id, "p-1");
    // The response's head said nothing of the outcome: nothing is stored until the trailers.
    let status = deleted.message().await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let entry = only(&sink);
    assert_eq!(entry.action, Action::Delete);
    assert_eq!(entry.entity_type.as_deref(), Some("ConnectionProfile"));
    assert_eq!(entry.entity_id.as_deref(), Some("p-1"), "from the metadata");
    assert_eq!(entry.outcome, Outcome::Failure);
    assert_eq!(entry.status, Some(200));
    assert_eq!(
        entry.details.as_deref(),
        Some("NOT_FOUND: profile missing-9 not found: café")
    );
    assert_eq!(entry.metadata.get("grpc_status"), Some(&Value::from(5)));
}

#[tokio::test]
async fn reads_and_unknown_methods_of_reading_services_are_not_recorded() {
    let sink = MemoryStore::new();
    let (audit, mut client, _) = start(&sink).await;

    client.ready().await.unwrap();
    let codec = ProstCodec::<UpdateProfileRequest, Profile>::default();
    let message = UpdateProfileRequest {
        id: "p-1".into(),
        name: String::new(),
    };
    let profile = client
        .unary(with_key(message), PathAndQuery::from_static(GET), codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(profile.name, "CRM");
    audit.flush().await;
    assert!(sink.entries().is_empty(), "{:#?}", sink.entries());

    // A write that follows is recorded, so the read was seen and passed over.
    update(&mut client, "p-2").await.unwrap();
    assert_eq!(only(&sink).entity_id.as_deref(), Some("p-2"));
}

#[tokio::test]
async fn a_call_abandoned_before_its_status_is_recorded_as_a_failure() {
    let sink = MemoryStore::new();
    let (_audit, mut client, _) = start(&sink).await;

    client.ready().await.unwrap();
    let codec = ProstCodec::<DeleteProfilesRequest, Profile>::default();
    let request = with_key(DeleteProfilesRequest {
        ids: vec!["slow-1".into()],
    });
    let mut deleted = client
        .server_streaming(request, PathAndQuery::from_static(DELETE), codec)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.message().await.unwrap().unwrap().id, "slow-1");
    assert!(sink.entries().is_empty(), "no status yet, so no entry yet");
    // The client gives up: the stream is reset, the server drops the response body.
    drop(deleted);
    let entry = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(entry) = sink.entries().into_iter().next() {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the abandoned call's entry");
    assert_eq!(entry.action, Action::Delete);
    assert_eq!(entry.outcome, Outcome::Failure);
    assert_eq!(entry.status, Some(200));
    assert_eq!(
        entry.details.as_deref(),
        Some("cancelled: the response was dropped before its grpc-status")
    );
    assert_eq!(entry.metadata.get("grpc_status"), None);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sink.entries().len(), 1);
}
