//! [`AuditEntry`], the record this project is about, and the small types it is made of. Entries
//! are flat so every filter column can be indexed; JSON is used only where the shape is open
//! (`changes`, `metadata`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::action::Action;
use crate::bound::Limits;
use crate::change::Change;
use crate::parse::ParseError;
use crate::redact::Redactor;

/// Who performed an action, by kind.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorKind {
    /// A signed-in person.
    User,
    /// A machine caller authenticated by an API key.
    ApiKey,
    /// The service itself: a background job, retention, a migration.
    System,
    /// Nobody could be identified (for example a failed login).
    #[default]
    Anonymous,
}

impl ActorKind {
    /// The text form: `user`, `api_key`, `system` or `anonymous`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// How an audited request ended.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The action took effect.
    #[default]
    Success,
    /// The action was attempted and failed (a 4xx other than 401/403, or a 5xx).
    Failure,
    /// The caller was not allowed to do it (401 or 403).
    Denied,
    /// Not known: the entry was stored as an intent before the handler ran, and the process
    /// stopped before the request finished, so whether the action took effect is not known.
    Unknown,
}

impl Outcome {
    /// The text form: `success`, `failure`, `denied` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Unknown => "unknown",
        }
    }

    /// The outcome an HTTP status code stands for: 401 and 403 are `denied`, any other status
    /// of 400 or more is `failure`, everything else `success`.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Outcome::Denied,
            400.. => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

impl FromStr for ActorKind {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(ActorKind::User),
            "api_key" => Ok(ActorKind::ApiKey),
            "system" => Ok(ActorKind::System),
            "anonymous" => Ok(ActorKind::Anonymous),
            _ => Err(ParseError::new(
                "actor_kind",
                s,
                "expected one of: user, api_key, system, anonymous",
            )),
        }
    }
}

impl FromStr for Outcome {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "denied" => Ok(Outcome::Denied),
            "unknown" => Ok(Outcome::Unknown),
            _ => Err(ParseError::new(
                "outcome",
                s,
                "expected one of: success, failure, denied, unknown",
            )),
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one who acted: a kind, an id and a display name.
///
/// Authentication middleware can put an `Actor` into the request extensions (or, when it runs
/// inside the audit layer, the response extensions) and the layer picks it up with no further
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Actor {
    /// What kind of caller this is.
    pub kind: ActorKind,
    /// A stable id (user id, API key id).
    pub id: Option<String>,
    /// A display name (email, API key name).
    pub name: Option<String>,
}

impl Actor {
    /// A signed-in user with its id and display name.
    pub fn user(id: impl Into<String>, name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::User,
            id: Some(id.into()),
            name: Some(name.into()),
        }
    }

    /// A caller authenticated by an API key, by the key's id and name (never the secret).
    pub fn api_key(id: impl Into<String>, name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::ApiKey,
            id: Some(id.into()),
            name: Some(name.into()),
        }
    }

    /// The service itself, under a name such as `"retention"` or `"scheduler"`.
    pub fn system(name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::System,
            id: None,
            name: Some(name.into()),
        }
    }

    /// Nobody identified.
    pub fn anonymous() -> Self {
        Actor::default()
    }

    /// An anonymous caller that gave a name, such as the email of a failed login attempt.
    pub fn anonymous_named(name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::Anonymous,
            id: None,
            name: Some(name.into()),
        }
    }
}

/// The API key a request used: its id and name, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiKeyRef {
    /// The key's id, or `sha256:<12 hex digits>` for a key the application did not recognise.
    pub id: Option<String>,
    /// The key's display name.
    pub name: Option<String>,
}

impl ApiKeyRef {
    /// A key known to the application.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        ApiKeyRef {
            id: Some(id.into()),
            name: Some(name.into()),
        }
    }
}

/// The tenant (and optionally the team within it) an entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TenantRef {
    /// The tenant's id.
    pub tenant_id: String,
    /// The team's id, if the action happened within a team.
    pub team_id: Option<String>,
}

impl TenantRef {
    /// A tenant with no team.
    pub fn new(tenant_id: impl Into<String>) -> Self {
        TenantRef {
            tenant_id: tenant_id.into(),
            team_id: None,
        }
    }

    /// The same tenant, within a team.
    pub fn with_team(mut self, team_id: impl Into<String>) -> Self {
        self.team_id = Some(team_id.into());
        self
    }
}

/// One audited action: who did what to which object, when, from where, and how it ended.
///
/// The serialised form uses the snake_case field names listed here; `actor_kind` and `outcome`
/// are lower-case text, `action` PascalCase text, `ip` the usual text form of an address.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// A UUIDv7 made at capture time: ids sort by time, and a retried insert is idempotent.
    pub id: Uuid,
    /// When it happened, in UTC, to the microsecond; written as RFC 3339 with six fractional
    /// digits, so the text sorts like the time.
    #[serde(with = "micros")]
    #[cfg_attr(feature = "schema", schemars(with = "DateTime<Utc>"))]
    pub occurred_at: DateTime<Utc>,
    /// The tenant the action belongs to.
    pub tenant_id: Option<String>,
    /// The team within the tenant.
    pub team_id: Option<String>,
    /// What kind of caller acted.
    pub actor_kind: ActorKind,
    /// The caller's id (user id, API key id).
    pub actor_id: Option<String>,
    /// The caller's display name (email, API key name).
    pub actor_name: Option<String>,
    /// The id of the API key used, if any.
    pub api_key_id: Option<String>,
    /// The name of the API key used, if any; never the key itself.
    pub api_key_name: Option<String>,
    /// What was done.
    pub action: Action,
    /// The kind of object acted on, e.g. `ConnectionProfile`.
    pub entity_type: Option<String>,
    /// The object's id.
    pub entity_id: Option<String>,
    /// The object's display name, e.g. `Salesforce prod`.
    pub entity_name: Option<String>,
    /// A short human summary.
    pub details: Option<String>,
    /// Field-level old and new values, sensitive fields redacted.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status of the response, for entries made from requests.
    pub status: Option<u16>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`, bounded.
    pub user_agent: Option<String>,
    /// The request id (`x-request-id`, or the entry id when the request carried none).
    pub request_id: Option<String>,
    /// The W3C trace id of the request's trace (its `traceparent` header, or the current
    /// OpenTelemetry span's), 32 lowercase hexadecimal digits: the link between the entry and
    /// the request's trace. Always serialised (`null` without one), so every CSV row has the
    /// same columns; read as `null` when missing, so entries written before it existed still
    /// read back. See [`trace`](crate::trace).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The HTTP method.
    pub method: Option<String>,
    /// The matched route template (`/api-keys/{id}/revoke`), never the raw path.
    pub route: Option<String>,
    /// The application's own keys; sensitive keys redacted.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Now, to the microsecond, as entries store it.
pub(crate) fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl AuditEntry {
    /// An entry for `action` with a fresh UUIDv7 id, the current time, an anonymous actor and
    /// a `success` outcome; everything else empty.
    pub fn new(action: Action) -> Self {
        AuditEntry::with_id(Uuid::now_v7(), now_micros(), action)
    }

    /// An entry for `action` with this id and time, an anonymous actor and a `success` outcome;
    /// everything else empty. Stores expect ids that sort by time (UUIDv7) and times to the
    /// microsecond, as [`new`](Self::new) makes them.
    pub fn with_id(id: Uuid, occurred_at: DateTime<Utc>, action: Action) -> Self {
        AuditEntry {
            id,
            occurred_at,
            tenant_id: None,
            team_id: None,
            actor_kind: ActorKind::Anonymous,
            actor_id: None,
            actor_name: None,
            api_key_id: None,
            api_key_name: None,
            action,
            entity_type: None,
            entity_id: None,
            entity_name: None,
            details: None,
            changes: Vec::new(),
            outcome: Outcome::Success,
            status: None,
            ip: None,
            user_agent: None,
            request_id: None,
            trace_id: None,
            method: None,
            route: None,
            metadata: serde_json::Map::new(),
        }
    }

    /// A builder for entries made outside HTTP: background jobs, system actions, imports.
    /// Inside a [`JobScope`](crate::scope::JobScope) it starts from the scope: the job's name
    /// and who started it (see [`scope`](crate::scope)).
    ///
    /// ```
    /// use audit_core::{Action, Actor, AuditEntry};
    ///
    /// let entry = AuditEntry::builder(Action::Reset)
    ///     .actor(Actor::system("nightly-sync"))
    ///     .tenant("acme")
    ///     .entity("ExtractionCursor", "42")
    ///     .entity_name("Orders cursor")
    ///     .details("cursor rewound after a failed run")
    ///     .build();
    /// assert_eq!(entry.actor_name.as_deref(), Some("nightly-sync"));
    /// assert_eq!(entry.entity_type.as_deref(), Some("ExtractionCursor"));
    /// ```
    pub fn builder(action: Action) -> AuditEntryBuilder {
        let mut entry = AuditEntry::new(action);
        if let Some(scope) = crate::scope::JobScope::current() {
            scope.apply(&mut entry);
        }
        AuditEntryBuilder {
            entry,
            redactor: Redactor::default(),
            limits: Limits::default(),
        }
    }

    /// Sets the actor fields from an [`Actor`].
    pub fn set_actor(&mut self, actor: Actor) {
        self.actor_kind = actor.kind;
        self.actor_id = actor.id;
        self.actor_name = actor.name;
    }

    /// Truncates every free-text field and the open JSON fields to `limits`, so that one request
    /// cannot write an oversized row. Idempotent.
    pub fn bound(&mut self, limits: &Limits) {
        limits.apply(self);
    }
}

/// Builds an [`AuditEntry`] outside HTTP; see [`AuditEntry::builder`].
///
/// [`build`](Self::build) applies redaction to `metadata` and bounds every field, as the layer
/// does for entries made from requests.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuditEntryBuilder {
    entry: AuditEntry,
    redactor: Redactor,
    limits: Limits,
}

impl AuditEntryBuilder {
    /// Who acted.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.entry.set_actor(actor);
        self
    }

    /// The tenant the entry belongs to.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.entry.tenant_id = Some(tenant_id.into());
        self
    }

    /// The team within the tenant.
    pub fn team(mut self, team_id: impl Into<String>) -> Self {
        self.entry.team_id = Some(team_id.into());
        self
    }

    /// The API key used.
    pub fn api_key(mut self, key: ApiKeyRef) -> Self {
        self.entry.api_key_id = key.id;
        self.entry.api_key_name = key.name;
        self
    }

    /// The kind and id of the object acted on.
    pub fn entity(mut self, entity_type: impl Into<String>, entity_id: impl Into<String>) -> Self {
        self.entry.entity_type = Some(entity_type.into());
        self.entry.entity_id = Some(entity_id.into());
        self
    }

    /// The kind of object acted on, without an id.
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> Self {
        self.entry.entity_type = Some(entity_type.into());
        self
    }

    /// The object's display name.
    pub fn entity_name(mut self, name: impl Into<String>) -> Self {
        self.entry.entity_name = Some(name.into());
        self
    }

    /// A short human summary.
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.entry.details = Some(details.into());
        self
    }

    /// Field-level changes, already computed (for example with [`crate::diff`]). They are
    /// redacted again on [`build`](Self::build), so a change to a sensitive field never keeps
    /// its values.
    pub fn changes(mut self, changes: Vec<Change>) -> Self {
        self.entry.changes = changes;
        self
    }

    /// The outcome (default `success`).
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.entry.outcome = outcome;
        self
    }

    /// When it happened (default: when the builder was made), truncated to microseconds.
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.entry.occurred_at = at.trunc_subsecs(6);
        self
    }

    /// The client address, if there was one.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.entry.ip = Some(ip);
        self
    }

    /// The client's `User-Agent`, if there was one (bounded on [`build`](Self::build)).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.entry.user_agent = Some(user_agent.into());
        self
    }

    /// The id of the request the entry belongs to, so that it is found with that request's
    /// other entries (the admin API's `request_id` filter).
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.entry.request_id = Some(request_id.into());
        self
    }

    /// The W3C trace id of the trace the entry belongs to (32 hexadecimal digits, as
    /// [`trace::TraceId`](crate::trace::TraceId) writes it), so that the entry is found from
    /// the trace and the trace from the entry (the admin API's `trace_id` filter). Checked on
    /// [`build`](Self::build): upper-case digits are lowered, and anything that is not a trace
    /// id is dropped.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.entry.trace_id = Some(trace_id.into());
        self
    }

    /// One application-specific metadata key.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.entry.metadata.insert(key.into(), value.into());
        self
    }

    /// Records a change of many objects at once (see [`BulkChange`](crate::BulkChange)): the
    /// filter or reason, the count, and the ids, which a filter by entity id finds.
    pub fn bulk(mut self, bulk: crate::BulkChange) -> Self {
        bulk.apply(&mut self.entry);
        self
    }

    /// The redaction rules applied on build (default: [`Redactor::default`]).
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The field bounds applied on build (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The finished entry: redacted and bounded.
    pub fn build(self) -> AuditEntry {
        let AuditEntryBuilder {
            mut entry,
            redactor,
            limits,
        } = self;
        redactor.redact_changes(&mut entry.changes);
        redactor.redact_map(&mut entry.metadata);
        if let Some(clean) = entry
            .details
            .as_deref()
            .and_then(|d| redactor.redact_text(d))
        {
            entry.details = Some(clean);
        }
        entry.bound(&limits);
        entry
    }
}

/// `occurred_at` as RFC 3339 with exactly six fractional digits (`2026-01-31T08:00:00.000000Z`),
/// read back from any RFC 3339 text.
mod micros {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        at: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_serialises_with_the_documented_text_forms_and_reads_back() {
        let entry = AuditEntry::builder(Action::ToggleActive)
            .actor(Actor::api_key("k1", "ci-deployer"))
            .api_key(ApiKeyRef::new("k1", "ci-deployer"))
            .tenant("acme")
            .team("ops")
            .entity("Tenant", "7")
            .outcome(Outcome::Denied)
            .ip("10.1.2.3".parse().unwrap())
            .build();
        // The field names are checked against the CSV, OpenAPI and table forms in
        // `tests/tests/one_shape.rs`.
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["action"], "ToggleActive");
        assert_eq!(json["actor_kind"], "api_key");
        assert_eq!(json["outcome"], "denied");
        assert_eq!(json["ip"], "10.1.2.3");
        let back: AuditEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
        // Six fractional digits, whatever the time: the text sorts like the time.
        let on_the_second = AuditEntry::builder(Action::Create)
            .occurred_at(DateTime::from_timestamp(1_800_000_000, 0).unwrap())
            .build();
        let json = serde_json::to_value(&on_the_second).unwrap();
        assert_eq!(json["occurred_at"], "2027-01-15T08:00:00.000000Z");
        let back: AuditEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back.occurred_at, on_the_second.occurred_at);
    }

    #[test]
    fn actor_kind_and_outcome_text_forms_round_trip() {
        for kind in [
            ActorKind::User,
            ActorKind::ApiKey,
            ActorKind::System,
            ActorKind::Anonymous,
        ] {
            assert_eq!(kind.to_string().parse::<ActorKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for outcome in [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Denied,
            Outcome::Unknown,
        ] {
            assert_eq!(outcome.to_string().parse::<Outcome>().unwrap(), outcome);
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        }
        assert!("admin".parse::<ActorKind>().is_err());
        assert!("ok".parse::<Outcome>().is_err());
    }

    #[test]
    fn outcome_follows_the_status() {
        assert_eq!(Outcome::from_status(200), Outcome::Success);
        assert_eq!(Outcome::from_status(204), Outcome::Success);
        assert_eq!(Outcome::from_status(302), Outcome::Success);
        assert_eq!(Outcome::from_status(401), Outcome::Denied);
        assert_eq!(Outcome::from_status(403), Outcome::Denied);
        assert_eq!(Outcome::from_status(404), Outcome::Failure);
        assert_eq!(Outcome::from_status(422), Outcome::Failure);
        assert_eq!(Outcome::from_status(503), Outcome::Failure);
    }

    #[test]
    fn builder_redacts_metadata_and_changes_and_keeps_microseconds() {
        let entry = AuditEntry::builder(Action::Update)
            .metadata("client_secret", "s3cr3t-value")
            .metadata("region", "eu")
            .changes(vec![Change::new(
                "password",
                "old-pw".into(),
                "new-pw".into(),
            )])
            .build();
        let text = serde_json::to_string(&entry).unwrap();
        assert!(!text.contains("s3cr3t-value"));
        assert!(!text.contains("old-pw") && !text.contains("new-pw"));
        assert_eq!(entry.metadata["region"], "eu");
        assert_eq!(entry.occurred_at.timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn builder_sets_the_request_fields_and_bounds_them() {
        let entry = AuditEntry::builder(Action::Execute)
            .request_id("req-42")
            .user_agent("x".repeat(10_000))
            .build();
        assert_eq!(entry.request_id.as_deref(), Some("req-42"));
        let agent = entry.user_agent.unwrap_or_default();
        assert!(
            agent.len() <= Limits::default().user_agent,
            "{}",
            agent.len()
        );
        let long = AuditEntry::builder(Action::Execute)
            .request_id("r".repeat(1_000))
            .build();
        assert!(long.request_id.unwrap_or_default().len() <= Limits::default().id);
    }

    #[test]
    fn builder_keeps_a_trace_id_lowered_and_drops_anything_else() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let entry = AuditEntry::builder(Action::Execute).trace_id(trace).build();
        assert_eq!(entry.trace_id.as_deref(), Some(trace));
        let upper = AuditEntry::builder(Action::Execute)
            .trace_id(trace.to_uppercase())
            .build();
        assert_eq!(upper.trace_id.as_deref(), Some(trace));
        for bad in ["", "req-1", &"0".repeat(32), &format!("{trace}00")] {
            let entry = AuditEntry::builder(Action::Execute).trace_id(bad).build();
            assert_eq!(entry.trace_id, None, "{bad:?}");
        }
    }

    #[test]
    fn an_entry_written_before_trace_ids_reads_back_without_one() {
        let entry = AuditEntry::builder(Action::Create).tenant("acme").build();
        let mut json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["trace_id"], serde_json::Value::Null);
        json.as_object_mut().unwrap().remove("trace_id");
        let back: AuditEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
