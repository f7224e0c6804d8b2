//! What the layer keeps of a request it records, and how an [`AuditEntry`] is made from it.
//!
//! In the flow request → **layer → entry** → sink → store → admin router, the layer does as
//! little as it can while the request is in flight: it takes one clock reading, the cached route
//! derivation, reference-counted header values and the peer address into a [`Capture`]; the
//! handler's additions go into [`Edits`]; the response adds its status and whatever its
//! extensions say about the caller ([`ResponseFacts`]). [`build`] turns the three into the
//! entry, with owned, bounded text. In the synchronous mode that happens before the response is
//! returned; in the buffered mode the queue's writer does it, off the request path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit_core::{
    Action, Actor, ActorKind, ApiKeyRef, AuditEntry, Change, Limits, Outcome, TenantRef,
};
use chrono::{DateTime, Utc};
use http::{HeaderValue, Method};
use serde_json::{Map, Value};
use uuid::{Timestamp, Uuid};

use crate::resolve::fingerprint_text;
use crate::route::{Derived, percent_decode};

/// How the request identified an API key.
#[derive(Clone)]
pub(crate) enum KeyCapture {
    /// No key header, or an empty one.
    None,
    /// A key the resolver (or the extensions) knew.
    Known(ApiKeyRef),
    /// An unknown key: the first six bytes of its SHA-256, never the key.
    Fingerprint([u8; 6]),
}

/// The request side of an entry, taken before the inner service runs.
#[derive(Clone)]
pub(crate) struct Capture {
    /// The clock reading the entry's id and time are made from (by [`build`], off the request
    /// path when delivery is buffered).
    pub at: Duration,
    pub derived: Arc<Derived>,
    pub method: Method,
    /// The entity id from the path, as it appears there, when the route has one.
    pub entity_id: Option<Segment>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub key: KeyCapture,
    pub actor: Option<Actor>,
    pub tenant: Option<TenantRef>,
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
}

/// The caller as the response's extensions (or the resolvers over them) name it.
#[derive(Default, Clone)]
pub(crate) struct Caller {
    pub actor: Option<Actor>,
    pub tenant: Option<TenantRef>,
    pub key: Option<ApiKeyRef>,
}

/// The entry made from a request, the handler's edits and (unless the entry is claimed before
/// the response exists) the response, bounded to `limits`.
pub(crate) fn build(
    capture: Capture,
    edits: Edits,
    response: Option<ResponseFacts>,
    limits: &Limits,
) -> AuditEntry {
    let Capture {
        at,
        derived,
        method,
        entity_id,
        ip,
        user_agent,
        request_id,
        key,
        actor,
        tenant,
    } = capture;
    let responded = response.is_some();
    let (status, response_actor, response_tenant, response_key) = match response {
        Some(r) => {
            let caller = r.caller.map(|c| *c).unwrap_or_default();
            (r.status, caller.actor, caller.tenant, caller.key)
        }
        None => (None, None, None, None),
    };

    let key = match (response_key, key) {
        (Some(known), _) | (None, KeyCapture::Known(known)) => Some(known),
        (None, KeyCapture::Fingerprint(bytes)) => Some(ApiKeyRef {
            id: Some(fingerprint_text(&bytes)),
            name: None,
        }),
        (None, KeyCapture::None) => None,
    };
    let actor = edits.actor.or(response_actor).or(actor).or_else(|| {
        // A request authenticated only by its key is the key's doing.
        let key = key
            .as_ref()
            .filter(|k| k.id.is_some() || k.name.is_some())?;
        Some(Actor {
            kind: ActorKind::ApiKey,
            id: key.id.clone(),
            name: key.name.clone(),
        })
    });
    let tenant = edits.tenant.or(response_tenant).or(tenant);
    let outcome = edits
        .outcome
        .unwrap_or_else(|| outcome_of(responded, status));
    let (id, occurred_at) = id_and_time(at);
    let request_id = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= limits.id)
        .map_or_else(
            || {
                let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
                id.hyphenated().encode_lower(&mut text).to_owned()
            },
            str::to_owned,
        );
    let (tenant_id, team_id) = tenant.map_or((None, None), |t| (Some(t.tenant_id), t.team_id));
    let actor = actor.unwrap_or_else(Actor::anonymous);
    let (api_key_id, api_key_name) = key.map_or((None, None), |k| (k.id, k.name));
    let mut entry = AuditEntry {
        id,
        occurred_at,
        tenant_id,
        team_id,
        actor_kind: actor.kind,
        actor_id: actor.id,
        actor_name: actor.name,
        api_key_id,
        api_key_name,
        action: edits.action.unwrap_or_else(|| derived.action.clone()),
        entity_type: edits.entity_type.or_else(|| derived.entity_type.clone()),
        entity_id: edits
            .entity_id
            .or_else(|| entity_id.map(|s| percent_decode(s.as_str()))),
        entity_name: edits.entity_name,
        details: edits.details,
        changes: edits.changes.unwrap_or_default(),
        outcome,
        status,
        ip,
        user_agent: user_agent.map(|v| match v.to_str() {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        }),
        request_id: Some(request_id),
        method: Some(method.as_str().to_owned()),
        route: Some(derived.route.to_string()),
        metadata: edits.metadata,
    };
    entry.bound(limits);
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
    entry.status = status;
    entry.outcome = outcome.unwrap_or_else(|| outcome_of(response.is_some(), status));
    entry.bound(limits);
    entry
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
}
