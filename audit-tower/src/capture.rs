//! What the layer keeps of a request it records ([`Capture`]), what the handler adds
//! ([`Edits`]) and what the response tells ([`ResponseFacts`]), and how the three become an
//! [`AuditEntry`] ([`fill`]).
//!
//! The request path does as little as it can: one clock reading, the cached route derivation,
//! reference-counted header values, the client address and the caller. Owned, bounded text is
//! made by [`fill`]: before the response in the synchronous mode, on the writer in the
//! buffered one, where it writes into the buffers of the entries of the previous batch.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit_core::trace::{TRACE_ID_LEN, TraceId};
use audit_core::{
    Action, Actor, ActorKind, ApiKeyRef, AuditEntry, Change, Limits, Outcome, REDACTED, TenantRef,
};
use chrono::{DateTime, Utc};
use http::header::USER_AGENT;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use serde_json::{Map, Value};
use uuid::{Timestamp, Uuid};

use crate::config::Config;
use crate::failure::FailureReason;
use crate::grpc::{self, GrpcOutcome};
use crate::resolve::{KeyFingerprint, fingerprint};
use crate::route::{Derived, percent_decode, raw_segment_from_end};
use crate::template::RouteTemplate;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C Trace Context's header: `version-traceid-parentid-flags`.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// API key values longer than this are not looked up (they are still fingerprinted).
const MAX_API_KEY_BYTES: usize = 512;

/// How the request identified an API key.
#[derive(Clone)]
pub(crate) enum KeyCapture {
    /// No key header, or an empty one.
    None,
    /// A key the resolver (or the extensions) knew.
    Known(ApiKeyRef),
    /// An unknown key: a short digest of it, never the key.
    Fingerprint(KeyFingerprint),
}

/// The request side of an entry, taken before the inner service runs.
#[derive(Clone)]
pub(crate) struct Capture {
    /// The clock reading the entry's id and time are made from.
    pub at: Duration,
    pub derived: Arc<Derived>,
    pub method: Method,
    /// The entity id from the path, as it appears there, when the route has one.
    pub entity_id: Option<Segment>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Header>,
    pub request_id: Option<HeaderValue>,
    /// The trace id of a valid `traceparent` header (or, with the `opentelemetry` feature and
    /// no such header, of the current span).
    pub trace_id: Option<TraceId>,
    pub key: KeyCapture,
    pub actor: Option<Actor>,
    pub tenant: Option<TenantRef>,
    /// The entry's id, when it is fixed before the handler runs (its intent carries it).
    pub id: Option<Uuid>,
}

/// The request side of `req`'s entry, or `None` when the layer does not record it.
///
/// The route comes from, in order: a gRPC call's path, axum's matched route, a
/// [`RouteTemplate`] in the extensions, the rules' templates. (Under axum, a gRPC call is
/// looked for only on routes that end in a parameter, which spares HTTP routes the check.) A request with none is not
/// recorded, and warned about.
pub(crate) fn capture<B>(config: &Config, req: &Request<B>) -> Option<Capture> {
    let (method, path, extensions) = (req.method(), req.uri().path(), req.extensions());
    let derived = if let Some(route) = extensions.get::<axum::extract::MatchedPath>() {
        let route = route.as_str();
        // Under axum a gRPC service is routed by a catch-all (`/pkg.Service/{*rest}`, as
        // tonic's routes are): only a route ending in a parameter can be one.
        if route.ends_with('}') && grpc::is_call(method, path, req.headers()) {
            config.routes.derive_grpc(path)
        } else {
            config.routes.derive(method, route)
        }
    } else if grpc::is_call(method, path, req.headers()) {
        config.routes.derive_grpc(path)
    } else if let Some(template) = extensions.get::<RouteTemplate>() {
        config.routes.derive(method, template.as_str())
    } else if let Some(template) = config.routes.find_template(path) {
        config.routes.derive(method, template)
    } else {
        // A safe method is recorded only by a rule, and no rule's template matched.
        if !crate::route::is_safe(method) {
            config.routes.warn_unrouted(method, path);
        }
        return None;
    };
    if derived.skip {
        return None;
    }
    Some(capture_with(
        config,
        derived,
        req.method(),
        req.uri().path(),
        req.headers(),
        req.extensions(),
    ))
}

/// The request side of an entry whose meaning (`derived`) is already known.
pub(crate) fn capture_with(
    config: &Config,
    derived: Arc<Derived>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Capture {
    let found = Found::in_headers(config, headers);
    let trace_id = found.trace_id();
    let key = match extensions.get::<ApiKeyRef>() {
        Some(known) => KeyCapture::Known(known.clone()),
        None => found
            .api_key
            .map_or(KeyCapture::None, |value| key_from(config, value)),
    };
    let ip = match (found.forwarded, config.client_ip.header()) {
        (Forwarded::Lines(lines, count), _) => config
            .client_ip
            .client_ip_from(lines[..count].iter().flatten().copied(), extensions),
        (Forwarded::Many, Some(header)) => config
            .client_ip
            .client_ip_from(headers.get_all(header).iter(), extensions),
        (Forwarded::Many, None) => config.client_ip.client_ip(headers, extensions),
    };
    let at = config.now();
    Capture {
        id: (derived.intent && config.intents.is_some()).then(|| id_and_time(at).0),
        at,
        method: method.clone(),
        entity_id: match derived.id_from_end {
            Some(n) => raw_segment_from_end(path, n)
                .map(|raw| Segment::new(if derived.id_secret { REDACTED } else { raw })),
            None => id_from_header(config, headers),
        },
        ip,
        user_agent: found.user_agent.map(Header::new),
        request_id: found.request_id.cloned(),
        trace_id,
        key,
        actor: resolve_actor(config, headers, extensions),
        tenant: resolve_tenant(config, headers, extensions),
        derived,
    }
}

/// The entity id in the layer's entity id header, for a route that carries none.
fn id_from_header(config: &Config, headers: &HeaderMap) -> Option<Segment> {
    let value = headers.get(config.entity_id_header.as_ref()?)?;
    value
        .to_str()
        .ok()
        .filter(|id| !id.is_empty())
        .map(Segment::new)
}

/// The headers the layer reads, found in one pass over the request's: cheaper than a hashed
/// look-up each.
struct Found<'a> {
    user_agent: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
    traceparent: Traceparent<'a>,
    api_key: Option<&'a HeaderValue>,
    forwarded: Forwarded<'a>,
}

/// The `traceparent` lines of a request.
#[derive(Clone, Copy)]
enum Traceparent<'a> {
    /// None.
    Absent,
    /// One.
    One(&'a HeaderValue),
    /// More than one: W3C Trace Context takes that as no valid header at all.
    Repeated,
}

/// The lines of the forwarded header the client address comes from, in order.
enum Forwarded<'a> {
    /// This many of them, all there are.
    Lines([Option<&'a HeaderValue>; Forwarded::LINES], usize),
    /// More than fit: read them from the map.
    Many,
}

impl Forwarded<'_> {
    const LINES: usize = 4;
}

impl<'a> Found<'a> {
    fn in_headers(config: &Config, headers: &'a HeaderMap) -> Self {
        let api_key_header = config.api_key_header.as_ref();
        let forwarded_header = config.client_ip.header();
        let mut found = Found {
            user_agent: None,
            request_id: None,
            traceparent: Traceparent::Absent,
            api_key: None,
            forwarded: Forwarded::Lines([None; Forwarded::LINES], 0),
        };
        for (name, value) in headers {
            if name == USER_AGENT {
                found.user_agent.get_or_insert(value);
            } else if name == X_REQUEST_ID {
                found.request_id.get_or_insert(value);
            } else if name == TRACEPARENT {
                found.traceparent = match found.traceparent {
                    Traceparent::Absent => Traceparent::One(value),
                    _ => Traceparent::Repeated,
                };
            } else if Some(name) == api_key_header {
                found.api_key.get_or_insert(value);
            } else if Some(name) == forwarded_header {
                found.forwarded = match found.forwarded {
                    Forwarded::Lines(mut lines, count) if count < Forwarded::LINES => {
                        lines[count] = Some(value);
                        Forwarded::Lines(lines, count + 1)
                    }
                    _ => Forwarded::Many,
                };
            }
        }
        found
    }

    /// The trace id of the request's one valid `traceparent` header, if it has one; parsed
    /// only when the header is there, in place. A malformed header (or several) gives none.
    /// Without the header, and with the `opentelemetry` feature, the current span's trace id.
    fn trace_id(&self) -> Option<TraceId> {
        match self.traceparent {
            Traceparent::One(value) => TraceId::from_traceparent(value.as_bytes()),
            Traceparent::Repeated => None,
            #[cfg(feature = "opentelemetry")]
            Traceparent::Absent => crate::otel::current_trace_id(),
            #[cfg(not(feature = "opentelemetry"))]
            Traceparent::Absent => None,
        }
    }
}

/// The key the API key header's `value` names: looked up with the resolver, fingerprinted when
/// unknown. The value is used for both, then dropped.
fn key_from(config: &Config, value: &HeaderValue) -> KeyCapture {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return KeyCapture::None;
    }
    let known = value
        .to_str()
        .ok()
        .filter(|raw| raw.len() <= MAX_API_KEY_BYTES)
        .and_then(|raw| config.api_key.as_ref()?.resolve_api_key(raw));
    match known {
        Some(known) => KeyCapture::Known(known),
        None => KeyCapture::Fingerprint(fingerprint(bytes)),
    }
}

pub(crate) fn resolve_actor(
    config: &Config,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<Actor> {
    extensions
        .get::<Actor>()
        .cloned()
        .or_else(|| config.actor.as_ref()?.resolve_actor(headers, extensions))
}

pub(crate) fn resolve_tenant(
    config: &Config,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<TenantRef> {
    extensions
        .get::<TenantRef>()
        .cloned()
        .or_else(|| config.tenant.as_ref()?.resolve_tenant(headers, extensions))
}

/// A header value: copied when it is short text (an API client's `User-Agent` usually is), so
/// it needs no allocation, or else shared.
#[derive(Clone)]
pub(crate) enum Header {
    Text(Segment),
    Shared(HeaderValue),
}

impl Header {
    fn new(value: &HeaderValue) -> Self {
        match value.to_str() {
            Ok(text) if text.len() <= Segment::INLINE => Header::Text(Segment::new(text)),
            _ => Header::Shared(value.clone()),
        }
    }
}

/// A path segment, kept without an allocation when it is short (ids usually are).
#[derive(Clone)]
pub(crate) enum Segment {
    Inline {
        len: u8,
        bytes: [u8; Segment::INLINE],
    },
    Heap(Box<str>),
}

impl Segment {
    const INLINE: usize = 46;

    pub fn new(text: &str) -> Self {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= Segment::INLINE => {
                let mut bytes = [0; Segment::INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Segment::Inline { len, bytes }
            }
            _ => Segment::Heap(Box::from(text)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `&str`, so always valid.
            Segment::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Segment::Heap(text) => text,
        }
    }
}

/// Now, as time since the Unix epoch.
pub(crate) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// An entry id and its time from one clock reading: a UUIDv7 whose 12 bits after the
/// millisecond hold the microseconds within it (RFC 9562, §6.2, method 3), so ids made here
/// sort like their `occurred_at`.
pub(crate) fn id_and_time(since_epoch: Duration) -> (Uuid, DateTime<Utc>) {
    let (secs, nanos) = (since_epoch.as_secs(), since_epoch.subsec_nanos());
    let micros_in_milli = u128::from(nanos / 1_000 % 1_000);
    let id = Uuid::new_v7(Timestamp::from_unix_time(secs, nanos, micros_in_milli, 12));
    let truncated = nanos / 1_000 * 1_000;
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, truncated))
        .unwrap_or_default();
    (id, at)
}

/// What the handler said through [`AuditContext`](crate::AuditContext); each set value wins over
/// what the layer derived or resolved.
#[derive(Default, Clone)]
pub(crate) struct Edits {
    pub entity_name: Option<String>,
    pub entity_id: Option<String>,
    pub entity_type: Option<String>,
    pub details: Option<String>,
    pub action: Option<Action>,
    pub actor: Option<Actor>,
    pub tenant: Option<TenantRef>,
    /// A tenant to use only when neither the request nor the response names one.
    pub fallback_tenant: Option<TenantRef>,
    pub outcome: Option<Outcome>,
    pub changes: Option<Vec<Change>>,
    pub metadata: Map<String, Value>,
}

/// What the response tells: its status, and the caller as authentication inside the layer
/// put it into the response extensions (boxed, since most responses carry none).
#[derive(Default, Clone)]
pub(crate) struct ResponseFacts {
    /// `None` when the inner service failed instead of responding.
    pub status: Option<u16>,
    pub caller: Option<Box<Caller>>,
    /// Why the request failed, as the response's [`FailureReason`] said (or a gRPC call's
    /// status): bounded and redacted, the entry's details unless the handler gave some.
    pub failure: Option<String>,
    /// A gRPC call's outcome, from its `grpc-status` rather than the HTTP status.
    pub grpc: Option<GrpcOutcome>,
}

/// The caller as the response's extensions (or the resolvers over them) name it.
#[derive(Default, Clone)]
pub(crate) struct Caller {
    pub actor: Option<Actor>,
    pub tenant: Option<TenantRef>,
    pub key: Option<ApiKeyRef>,
}

/// What `response` (or its absence, when the inner service failed) tells.
pub(crate) fn response_facts<B>(config: &Config, response: Option<&Response<B>>) -> ResponseFacts {
    let Some(response) = response else {
        return ResponseFacts::default();
    };
    let status = Some(response.status().as_u16());
    let (headers, extensions) = (response.headers(), response.extensions());
    // Most responses carry no extensions, and then only a resolver could name a caller.
    if extensions.is_empty() && !config.resolves_from_headers() {
        return ResponseFacts {
            status,
            caller: None,
            failure: None,
            grpc: None,
        };
    }
    let failure = extensions.get::<FailureReason>().map(|reason| {
        let details = reason.details();
        config.redactor.redact_text(&details).unwrap_or(details)
    });
    let caller = Caller {
        actor: resolve_actor(config, headers, extensions),
        tenant: resolve_tenant(config, headers, extensions),
        key: extensions.get::<ApiKeyRef>().cloned(),
    };
    let named = caller.actor.is_some() || caller.tenant.is_some() || caller.key.is_some();
    ResponseFacts {
        status,
        caller: named.then(|| Box::new(caller)),
        failure,
        grpc: None,
    }
}

/// Writes `value` into `field`, in `spare`'s buffer when there is one.
fn put(field: &mut Option<String>, spare: Option<String>, value: &str) {
    let mut text = spare.unwrap_or_default();
    text.clear();
    text.push_str(value);
    *field = Some(text);
}

/// Turns `slot` into the entry made from a request, the handler's edits (if it made any) and
/// (unless the entry is claimed before the response exists) the response, bounded to `limits`.
///
/// The text the layer copies (route, method, entity type and id, headers, the caller named by
/// a key) goes into the buffers of the entry `slot` held before, so a writer that fills the
/// same entries batch after batch allocates nothing for them. Fields this function does not
/// set start empty: nothing of the previous entry is kept but its buffers.
pub(crate) fn fill(
    slot: &mut AuditEntry,
    capture: Capture,
    edits: Option<Box<Edits>>,
    response: Option<ResponseFacts>,
    limits: &Limits,
) {
    let Capture {
        at,
        derived,
        method,
        entity_id,
        ip,
        user_agent,
        request_id,
        trace_id,
        key,
        actor,
        tenant,
        id: fixed_id,
    } = capture;
    let mut edits = edits;
    let mut edited = |field: fn(&mut Edits) -> &mut Option<String>| {
        edits.as_deref_mut().and_then(|e| field(e).take())
    };
    let (entity_name, details) = (edited(|e| &mut e.entity_name), edited(|e| &mut e.details));
    let (edited_type, edited_id) = (edited(|e| &mut e.entity_type), edited(|e| &mut e.entity_id));
    let (made_id, occurred_at) = id_and_time(at);
    let id = fixed_id.unwrap_or(made_id);
    let action = edits
        .as_deref_mut()
        .and_then(|e| e.action.take())
        .unwrap_or_else(|| derived.action.clone());
    let mut old = std::mem::replace(slot, AuditEntry::with_id(id, occurred_at, action));
    let entry = slot;

    let responded = response.is_some();
    let (status, caller, failure, grpc) = match response {
        Some(r) => (r.status, r.caller, r.failure, r.grpc),
        None => (None, None, None, None),
    };
    let (caller_actor, caller_tenant, caller_key) = match caller {
        Some(caller) => (caller.actor, caller.tenant, caller.key),
        None => (None, None, None),
    };
    let key = match (caller_key, key) {
        (Some(known), _) | (None, KeyCapture::Known(known)) => {
            entry.api_key_id = known.id;
            entry.api_key_name = known.name;
            true
        }
        (None, KeyCapture::Fingerprint(digest)) => {
            put(
                &mut entry.api_key_id,
                old.api_key_id.take(),
                digest.as_str(),
            );
            true
        }
        (None, KeyCapture::None) => false,
    };
    let edited_actor = edits.as_deref_mut().and_then(|e| e.actor.take());
    match edited_actor.or(caller_actor).or(actor) {
        Some(actor) => entry.set_actor(actor),
        // A request authenticated only by its key is the key's doing.
        None if key && (entry.api_key_id.is_some() || entry.api_key_name.is_some()) => {
            entry.actor_kind = ActorKind::ApiKey;
            if let Some(id) = &entry.api_key_id {
                put(&mut entry.actor_id, old.actor_id.take(), id);
            }
            if let Some(name) = &entry.api_key_name {
                put(&mut entry.actor_name, old.actor_name.take(), name);
            }
        }
        None => {}
    }
    let (edited_tenant, fallback_tenant) = match edits.as_deref_mut() {
        Some(e) => (e.tenant.take(), e.fallback_tenant.take()),
        None => (None, None),
    };
    if let Some(tenant) = edited_tenant
        .or(caller_tenant)
        .or(tenant)
        .or(fallback_tenant)
    {
        entry.tenant_id = Some(tenant.tenant_id);
        entry.team_id = tenant.team_id;
    }
    entry.outcome = edits
        .as_deref()
        .and_then(|e| e.outcome)
        .or(grpc.as_ref().map(|g| g.outcome))
        .unwrap_or_else(|| outcome_of(responded, status));
    entry.status = status;
    entry.ip = ip;

    match edited_type {
        Some(entity_type) => entry.entity_type = Some(entity_type),
        None => {
            if let Some(derived_type) = &derived.entity_type {
                put(&mut entry.entity_type, old.entity_type.take(), derived_type);
            }
        }
    }
    match edited_id {
        Some(entity_id) => entry.entity_id = Some(entity_id),
        None => {
            if let Some(segment) = &entity_id {
                put(
                    &mut entry.entity_id,
                    old.entity_id.take(),
                    &percent_decode(segment.as_str()),
                );
            }
        }
    }
    entry.entity_name = entity_name;
    entry.details = details.or(failure);
    if let Some(edits) = edits {
        let Edits {
            changes, metadata, ..
        } = *edits;
        entry.changes = changes.unwrap_or_default();
        entry.metadata = metadata;
    }
    put_grpc_status(entry, grpc.as_ref());

    match &user_agent {
        Some(Header::Text(text)) => {
            put(&mut entry.user_agent, old.user_agent.take(), text.as_str());
        }
        Some(Header::Shared(value)) => match value.to_str() {
            Ok(text) => put(&mut entry.user_agent, old.user_agent.take(), text),
            Err(_) => {
                entry.user_agent = Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
        },
        None => {}
    }
    let given = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= limits.id);
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    let request_id = match given {
        Some(given) => given,
        None => id.hyphenated().encode_lower(&mut text),
    };
    put(&mut entry.request_id, old.request_id.take(), request_id);
    if let Some(trace_id) = trace_id {
        let mut text = [0; TRACE_ID_LEN];
        put(
            &mut entry.trace_id,
            old.trace_id.take(),
            trace_id.encode_lower(&mut text),
        );
    }
    put(&mut entry.method, old.method.take(), method.as_str());
    put(&mut entry.route, old.route.take(), &derived.route);
    entry.bound(limits);
}

/// The entry made from a request, the handler's edits and the response; see [`fill`].
pub(crate) fn build(
    capture: Capture,
    edits: Option<Box<Edits>>,
    response: Option<ResponseFacts>,
    limits: &Limits,
) -> AuditEntry {
    let mut entry = AuditEntry::with_id(Uuid::nil(), DateTime::UNIX_EPOCH, Action::Create);
    fill(&mut entry, capture, edits, response, limits);
    entry
}

/// The outcome an entry gets unless the handler set one.
fn outcome_of(responded: bool, status: Option<u16>) -> Outcome {
    match (responded, status) {
        (_, Some(status)) => Outcome::from_status(status),
        // Claimed before the response: the handler is storing it, so it is going well.
        (false, None) => Outcome::Success,
        // The inner service failed, or the request was cancelled, before a response.
        (true, None) => Outcome::Failure,
    }
}

/// A released entry (claimed, not stored, given back) finished with the handler's later edits
/// and the response.
pub(crate) fn finish_released(
    mut entry: AuditEntry,
    edits: Edits,
    response: Option<ResponseFacts>,
    limits: &Limits,
) -> AuditEntry {
    let Edits {
        entity_name,
        entity_id,
        entity_type,
        details,
        action,
        actor,
        tenant,
        fallback_tenant: _,
        outcome,
        changes,
        metadata,
    } = edits;
    let set = |field: &mut Option<String>, value: Option<String>| {
        if value.is_some() {
            *field = value;
        }
    };
    set(&mut entry.entity_name, entity_name);
    set(&mut entry.entity_id, entity_id);
    set(&mut entry.entity_type, entity_type);
    set(&mut entry.details, details);
    if entry.details.is_none() {
        entry.details = response.as_ref().and_then(|r| r.failure.clone());
    }
    if let Some(action) = action {
        entry.action = action;
    }
    if let Some(actor) = actor {
        entry.set_actor(actor);
    }
    if let Some(tenant) = tenant {
        entry.tenant_id = Some(tenant.tenant_id);
        entry.team_id = tenant.team_id;
    }
    if let Some(changes) = changes {
        entry.changes = changes;
    }
    entry.metadata.extend(metadata);
    let status = response.as_ref().and_then(|r| r.status);
    let grpc = response.as_ref().and_then(|r| r.grpc.as_ref());
    entry.status = status;
    entry.outcome = outcome
        .or(grpc.map(|g| g.outcome))
        .unwrap_or_else(|| outcome_of(response.is_some(), status));
    put_grpc_status(&mut entry, grpc);
    entry.bound(limits);
    entry
}

/// The metadata key of a gRPC call's status code.
pub(crate) const GRPC_STATUS_KEY: &str = "grpc_status";

/// Records a gRPC call's status code in the entry's metadata.
#[inline]
fn put_grpc_status(entry: &mut AuditEntry, grpc: Option<&GrpcOutcome>) {
    if let Some(code) = grpc.and_then(GrpcOutcome::code) {
        entry
            .metadata
            .insert(GRPC_STATUS_KEY.to_owned(), Value::from(code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_their_text_inline_or_not() {
        for text in [
            "",
            "k-1",
            "0195f0c2-7d1e-7c3a-9d4e-1f2a3b4c5d6e",
            &"é".repeat(23),
            &"x".repeat(47),
        ] {
            assert_eq!(Segment::new(text).as_str(), text);
        }
        assert!(matches!(
            Segment::new(&"x".repeat(46)),
            Segment::Inline { .. }
        ));
        assert!(matches!(Segment::new(&"x".repeat(47)), Segment::Heap(_)));
    }

    #[test]
    fn ids_sort_like_their_times_to_the_microsecond() {
        let made: Vec<_> = (0..2_000).map(|_| id_and_time(now())).collect();
        for pair in made.windows(2) {
            let ((a_id, a_at), (b_id, b_at)) = (pair[0], pair[1]);
            assert!(a_at <= b_at);
            if a_at < b_at {
                assert!(a_id < b_id, "{a_id} at {a_at} sorts after {b_id} at {b_at}");
            }
        }
        let (id, at) = made[0];
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(
            at.timestamp_subsec_nanos() % 1_000,
            0,
            "truncated to microseconds"
        );
        let (secs, nanos) = id.get_timestamp().map(|t| t.to_unix()).unwrap_or_default();
        assert_eq!(
            (secs as i64, nanos / 1_000_000),
            (at.timestamp(), at.timestamp_subsec_millis())
        );
    }

    fn capture(route: &str, ua: &'static str, key: KeyCapture) -> Capture {
        Capture {
            at: now(),
            derived: Arc::new(Derived::fixed(
                Action::Revoke,
                Some("ApiKey".into()),
                route.into(),
            )),
            method: Method::POST,
            entity_id: Some(Segment::new("k%201")),
            ip: None,
            user_agent: Some(Header::new(&HeaderValue::from_static(ua))),
            request_id: None,
            trace_id: None,
            key,
            actor: None,
            tenant: None,
            id: None,
        }
    }

    #[test]
    fn a_refilled_entry_keeps_nothing_of_the_one_before() {
        let limits = Limits::default();
        let mut first = Edits {
            entity_name: Some("old name".into()),
            details: Some("old details".into()),
            tenant: Some(TenantRef::new("acme").with_team("ops")),
            ..Edits::default()
        };
        first.metadata.insert("k".into(), Value::from(1));
        let known = KeyCapture::Known(ApiKeyRef::new("k-1", "deploy"));
        let mut slot = build(
            capture("/api-keys/{id}/revoke", "curl/8", known),
            Some(Box::new(first)),
            Some(ResponseFacts {
                status: Some(403),
                caller: None,
                failure: None,
                grpc: None,
            }),
            &limits,
        );
        assert_eq!(slot.tenant_id.as_deref(), Some("acme"));
        assert_eq!(slot.actor_name.as_deref(), Some("deploy"));
        let previous = slot.id;
        let unknown = KeyCapture::Fingerprint(fingerprint(b"sk_unknown"));
        fill(
            &mut slot,
            capture("/keys/{id}/revoke", "bench", unknown),
            None,
            None,
            &limits,
        );
        let fresh = build(
            capture("/keys/{id}/revoke", "bench", KeyCapture::None),
            None,
            None,
            &limits,
        );
        assert_ne!(slot.id, previous);
        assert_eq!(slot.route.as_deref(), Some("/keys/{id}/revoke"));
        assert_eq!(slot.user_agent.as_deref(), Some("bench"));
        assert_eq!(slot.entity_id.as_deref(), Some("k 1"));
        assert_eq!(slot.outcome, Outcome::Success);
        assert_eq!(slot.status, None);
        assert!(slot.api_key_id.as_deref().unwrap().starts_with("sha256:"));
        assert_eq!(slot.actor_kind, ActorKind::ApiKey);
        assert_eq!(slot.actor_id, slot.api_key_id);
        assert_eq!(slot.actor_name, None);
        for (refilled, fresh) in [
            (&slot.tenant_id, &fresh.tenant_id),
            (&slot.team_id, &fresh.team_id),
            (&slot.entity_name, &fresh.entity_name),
            (&slot.details, &fresh.details),
            (&slot.api_key_name, &fresh.api_key_name),
        ] {
            assert_eq!(refilled, fresh);
        }
        assert!(slot.metadata.is_empty());
    }
}
