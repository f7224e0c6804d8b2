//! [`AuditQuery`]: what a caller asks a store, within which [`Scope`], and the checks every
//! store runs on it before touching its backend ([`AuditQuery::validate`]).

use std::hash::Hasher;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use fnv::FnvHasher;
use serde::{Deserialize, Serialize};

use super::{Cursor, StoreError};
use crate::action::Action;
use crate::entry::{ActorKind, AuditEntry, Outcome};
use crate::parse::ParseError;

/// The page size used when a query does not set one.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page size a query may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// The longest free-text search accepted, in characters (after trimming).
pub const MAX_TEXT_CHARS: usize = 200;
/// The most values one multi-select filter may hold.
pub const MAX_FILTER_VALUES: usize = 100;
/// The longest value of a text filter (entity type, actor id, ...), in bytes.
pub const MAX_FILTER_VALUE_LEN: usize = 255;
/// The entity type of the log's own entries: reads and exports of the log are recorded as
/// [`Action::Read`] and [`Action::Export`] on it (see [`AuditQuery::hide_log_reads`]).
pub const AUDIT_LOG_ENTITY: &str = "AuditLog";

/// Which entries a caller may see. Every store applies it inside its query, so an entry outside
/// the scope is never read, counted or exported.
///
/// Deliberately not `#[non_exhaustive]`: a new kind of scope must fail to compile in every store
/// rather than fall into a catch-all arm that might show too much.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every entry of every tenant (a platform operator), including entries with no tenant.
    All,
    /// The entries of one tenant (an organisation administrator).
    Tenant(String),
    /// The entries of one team within one tenant (a team administrator).
    Team {
        /// The tenant's id.
        tenant: String,
        /// The team's id within the tenant.
        team: String,
    },
}

impl Scope {
    /// The scope of one tenant.
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Scope::Tenant(tenant.into())
    }

    /// The scope of one team within a tenant.
    pub fn team(tenant: impl Into<String>, team: impl Into<String>) -> Self {
        Scope::Team {
            tenant: tenant.into(),
            team: team.into(),
        }
    }

    /// Checks the scope's ids like filter values (at most [`MAX_FILTER_VALUE_LEN`] bytes, no
    /// control characters), so an id taken from a request can never reach a database as
    /// something it refuses. [`AuditQuery::validate`] calls this; stores call it in
    /// [`AuditStore::get`](super::AuditStore::get).
    pub fn validate(&self) -> Result<(), StoreError> {
        match self {
            Scope::All => Ok(()),
            Scope::Tenant(tenant) => check_values("scope", std::slice::from_ref(tenant)),
            Scope::Team { tenant, team } => {
                check_values("scope", std::slice::from_ref(tenant))?;
                check_values("scope", std::slice::from_ref(team))
            }
        }
    }

    /// Whether `entry` lies within this scope.
    ///
    /// ```
    /// use audit_core::{Action, AuditEntry, store::Scope};
    ///
    /// let entry = AuditEntry::builder(Action::Create).tenant("acme").team("ops").build();
    /// assert!(Scope::All.contains(&entry));
    /// assert!(Scope::tenant("acme").contains(&entry));
    /// assert!(Scope::team("acme", "ops").contains(&entry));
    /// assert!(!Scope::team("acme", "sales").contains(&entry));
    /// assert!(!Scope::tenant("globex").contains(&entry));
    /// ```
    pub fn contains(&self, entry: &AuditEntry) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(tenant) => entry.tenant_id.as_deref() == Some(tenant.as_str()),
            Scope::Team { tenant, team } => {
                entry.tenant_id.as_deref() == Some(tenant.as_str())
                    && entry.team_id.as_deref() == Some(team.as_str())
            }
        }
    }
}

/// The order of a page: newest first (the default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Newest first: descending `(occurred_at, id)`.
    #[default]
    Desc,
    /// Oldest first: ascending `(occurred_at, id)`.
    Asc,
}

impl Order {
    /// The text form: `desc` or `asc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Desc => "desc",
            Order::Asc => "asc",
        }
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Order {
    type Err = ParseError;

    /// Reads `desc` or `asc` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("desc") {
            Ok(Order::Desc)
        } else if s.eq_ignore_ascii_case("asc") {
            Ok(Order::Asc)
        } else {
            Err(ParseError::new("order", s, "expected `desc` or `asc`"))
        }
    }
}

/// A question to an [`AuditStore`](super::AuditStore): a scope, filters, a time range, free text, an order, a page
/// size and where to continue.
///
/// Every multi-select filter matches an entry whose field equals any of its values; an empty
/// filter matches everything. Filters combine with AND. There is no `Default`: a query always
/// starts from an explicit [`Scope`], so forgetting one cannot mean "everything".
///
/// ```
/// use audit_core::{Action, store::{AuditQuery, Scope}};
/// use chrono::{TimeZone, Utc};
///
/// let query = AuditQuery::new(Scope::tenant("acme"))
///     .entity_type("ConnectionProfile")
///     .action(Action::Update)
///     .action(Action::Delete)
///     .from(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
///     .text("salesforce")
///     .limit(50);
/// query.validate().unwrap();
/// assert!(AuditQuery::new(Scope::All).limit(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuditQuery {
    /// Which entries the caller may see at all.
    pub scope: Scope,
    /// Entity types, e.g. `ConnectionProfile`.
    pub entity_types: Vec<String>,
    /// Actions.
    pub actions: Vec<Action>,
    /// Actor ids.
    pub actor_ids: Vec<String>,
    /// Actor kinds.
    pub actor_kinds: Vec<ActorKind>,
    /// API keys: each value matches an entry's `api_key_id` or its `api_key_name`.
    pub api_keys: Vec<String>,
    /// Entity ids: each matches an entry's `entity_id`, or an id a bulk change names
    /// ([`BulkChange`](crate::BulkChange)).
    pub entity_ids: Vec<String>,
    /// Request ids (`x-request-id`, or the entry's own id when the request had none): the
    /// entries one request left, with those of the background jobs it started
    /// ([`JobScope`](crate::scope::JobScope)).
    pub request_ids: Vec<String>,
    /// W3C trace ids, 32 lowercase hexadecimal digits each: the entries of the requests (and
    /// of the background jobs they started) that belong to those traces.
    pub trace_ids: Vec<String>,
    /// Outcomes.
    pub outcomes: Vec<Outcome>,
    /// Team ids, within the scope: a team filter narrows a tenant's (or every tenant's) log to
    /// those teams' entries; an entry without a team matches no team filter.
    pub teams: Vec<String>,
    /// Leaves out the log's own reads: entries of [`Action::Read`] on [`AUDIT_LOG_ENTITY`],
    /// which every listing of the log adds. Exports of the log stay. Applied inside the
    /// store's query like any filter, so pages stay full.
    pub hide_log_reads: bool,
    /// Only entries that occurred at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only entries that occurred strictly before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Free text, matched case-insensitively and literally (no wildcards) as a substring of one
    /// of the entry's searched fields: action, entity type, entity id, entity name, actor id,
    /// actor name, API key name, client address, request id, trace id, details, and each
    /// change's field name, old value and new value (as redacted when the entry was made),
    /// within the first [`SEARCH_TEXT_BYTES`](Self::SEARCH_TEXT_BYTES) of
    /// [`search_text`](Self::search_text). A match never spans two fields. Surrounding
    /// whitespace is ignored ([`trimmed_text`](Self::trimmed_text)); a blank text matches
    /// everything. The admin API calls it `q`.
    pub text: Option<String>,
    /// Newest first (default) or oldest first.
    pub order: Order,
    /// The page size, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    /// [`AuditStore::export`](super::AuditStore::export) validates it too but is not bounded by
    /// it.
    pub limit: u32,
    /// Where to continue: the [`Page::next_cursor`](super::Page::next_cursor) of the previous
    /// page of the same query.
    pub cursor: Option<Cursor>,
}

impl AuditQuery {
    /// A query for the first page of everything in `scope`, newest first, 100 entries a page.
    pub fn new(scope: Scope) -> Self {
        AuditQuery {
            scope,
            entity_types: Vec::new(),
            actions: Vec::new(),
            actor_ids: Vec::new(),
            actor_kinds: Vec::new(),
            api_keys: Vec::new(),
            entity_ids: Vec::new(),
            request_ids: Vec::new(),
            trace_ids: Vec::new(),
            outcomes: Vec::new(),
            teams: Vec::new(),
            hide_log_reads: false,
            from: None,
            to: None,
            text: None,
            order: Order::Desc,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }

    /// Adds an entity type to the entity type filter.
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> Self {
        self.entity_types.push(entity_type.into());
        self
    }

    /// Adds an action to the action filter.
    pub fn action(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// Adds an actor id to the actor filter.
    pub fn actor_id(mut self, actor_id: impl Into<String>) -> Self {
        self.actor_ids.push(actor_id.into());
        self
    }

    /// Adds an actor kind to the actor kind filter.
    pub fn actor_kind(mut self, kind: ActorKind) -> Self {
        self.actor_kinds.push(kind);
        self
    }

    /// Adds an API key id or name to the API key filter.
    pub fn api_key(mut self, id_or_name: impl Into<String>) -> Self {
        self.api_keys.push(id_or_name.into());
        self
    }

    /// Adds an entity id to the entity id filter: the object's own entries, and the bulk
    /// changes that name it.
    pub fn entity_id(mut self, entity_id: impl Into<String>) -> Self {
        self.entity_ids.push(entity_id.into());
        self
    }

    /// Adds a request id to the request id filter.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_ids.push(request_id.into());
        self
    }

    /// Adds a trace id (32 lowercase hexadecimal digits) to the trace id filter.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_ids.push(trace_id.into());
        self
    }

    /// Adds an outcome to the outcome filter.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcomes.push(outcome);
        self
    }

    /// Adds a team id to the team filter.
    pub fn team(mut self, team: impl Into<String>) -> Self {
        self.teams.push(team.into());
        self
    }

    /// Leaves out (`true`) or keeps (`false`, the default) the log's own reads; see the
    /// [`hide_log_reads`](#structfield.hide_log_reads) field.
    pub fn hide_log_reads(mut self, hide: bool) -> Self {
        self.hide_log_reads = hide;
        self
    }

    /// Whether `entry` is one of the log's own reads: [`Action::Read`] on
    /// [`AUDIT_LOG_ENTITY`].
    ///
    /// ```
    /// use audit_core::{Action, AuditEntry, store::{AuditQuery, AUDIT_LOG_ENTITY}};
    ///
    /// let read = AuditEntry::builder(Action::Read).entity(AUDIT_LOG_ENTITY, "x").build();
    /// let export = AuditEntry::builder(Action::Export).entity(AUDIT_LOG_ENTITY, "x").build();
    /// assert!(AuditQuery::is_log_read(&read));
    /// assert!(!AuditQuery::is_log_read(&export));
    /// ```
    pub fn is_log_read(entry: &AuditEntry) -> bool {
        entry.action == Action::Read && entry.entity_type.as_deref() == Some(AUDIT_LOG_ENTITY)
    }

    /// Only entries at or after `from`.
    pub fn from(mut self, from: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self
    }

    /// Only entries strictly before `to`.
    pub fn to(mut self, to: DateTime<Utc>) -> Self {
        self.to = Some(to);
        self
    }

    /// Free text; see the [`text`](#structfield.text) field.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The order of the page.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Continue after `cursor`.
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// The free text to search for: trimmed, and `None` when blank.
    pub fn trimmed_text(&self) -> Option<&str> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
    }

    /// Checks every bound a store relies on, so all stores reject the same input with the same
    /// [`StoreError::InvalidQuery`] naming the parameter: the limit's range, the free text's
    /// length, filter sizes, control characters (which some databases refuse in text), the time
    /// range, and that the cursor was made by this same query (same scope, filters, range, text
    /// and order; only the limit may change between pages).
    pub fn validate(&self) -> Result<(), StoreError> {
        self.scope.validate()?;
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(StoreError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}, got {}", self.limit),
            ));
        }
        if let Some(q) = self.trimmed_text() {
            let chars = q.chars().count();
            if chars > MAX_TEXT_CHARS {
                return Err(StoreError::invalid(
                    "q",
                    format!("at most {MAX_TEXT_CHARS} characters, got {chars}"),
                ));
            }
            if q.chars().any(char::is_control) {
                return Err(StoreError::invalid(
                    "q",
                    "must not contain control characters",
                ));
            }
        }
        check_values("entity_type", &self.entity_types)?;
        check_values("actor_id", &self.actor_ids)?;
        check_values("api_key", &self.api_keys)?;
        check_values("entity_id", &self.entity_ids)?;
        check_values("request_id", &self.request_ids)?;
        check_count("trace_id", self.trace_ids.len())?;
        for trace_id in &self.trace_ids {
            trace_id.parse::<crate::trace::TraceId>()?;
        }
        check_values("team", &self.teams)?;
        check_count("action", self.actions.len())?;
        // Parsed actions are always clean, but `Action::Custom` can be built directly.
        let actions: Vec<String> = self.actions.iter().map(|a| a.as_str().to_owned()).collect();
        check_values("action", &actions)?;
        check_count("actor_kind", self.actor_kinds.len())?;
        check_count("outcome", self.outcomes.len())?;
        for (parameter, time) in [("from", self.from), ("to", self.to)] {
            if let Some(time) = time
                && !within_supported_years(time)
            {
                return Err(StoreError::invalid(
                    parameter,
                    format!(
                        "must fall in the years {} to {}",
                        SUPPORTED_YEARS.start(),
                        SUPPORTED_YEARS.end()
                    ),
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to <= from
        {
            return Err(StoreError::invalid(
                "to",
                "must be later than `from` (the range is [from, to))",
            ));
        }
        if let Some(cursor) = &self.cursor {
            if cursor.order() != self.order {
                return Err(StoreError::invalid(
                    "cursor",
                    format!(
                        "this cursor continues a `{}` listing but the query asks for `{}`; \
                         start again without a cursor",
                        cursor.order(),
                        self.order
                    ),
                ));
            }
            if cursor.query_digest() != self.digest() {
                return Err(StoreError::invalid(
                    "cursor",
                    "this cursor belongs to a different query (scope, filters, range or text \
                     changed); start again without a cursor",
                ));
            }
        }
        Ok(())
    }

    /// Whether `entry` answers this query, cursor aside: the reference semantics every store
    /// implements in its own query language. Useful for in-memory stores and as a test oracle.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        fn any_eq(values: &[String], field: &Option<String>) -> bool {
            values.is_empty() || field.as_ref().is_some_and(|f| values.contains(f))
        }
        if !self.scope.contains(entry)
            || !any_eq(&self.entity_types, &entry.entity_type)
            || !any_eq(&self.actor_ids, &entry.actor_id)
            || !(any_eq(&self.entity_ids, &entry.entity_id)
                || crate::BulkChange::ids_of(entry)
                    .any(|id| self.entity_ids.iter().any(|e| e == id)))
            || !any_eq(&self.request_ids, &entry.request_id)
            || !any_eq(&self.trace_ids, &entry.trace_id)
            || !(self.actions.is_empty() || self.actions.contains(&entry.action))
            || !(self.actor_kinds.is_empty() || self.actor_kinds.contains(&entry.actor_kind))
            || !(self.outcomes.is_empty() || self.outcomes.contains(&entry.outcome))
            || !any_eq(&self.teams, &entry.team_id)
            || (self.hide_log_reads && Self::is_log_read(entry))
        {
            return false;
        }
        // An empty filter matches anything, so one `any_eq` suffices for both columns.
        if !(any_eq(&self.api_keys, &entry.api_key_id)
            || any_eq(&self.api_keys, &entry.api_key_name))
        {
            return false;
        }
        if self.from.is_some_and(|from| entry.occurred_at < from)
            || self.to.is_some_and(|to| entry.occurred_at >= to)
        {
            return false;
        }
        if let Some(q) = self.search_term()
            && !Self::search_text(entry).contains(&q)
        {
            return false;
        }
        true
    }

    /// The most bytes [`search_text`](Self::search_text) keeps: what a database's bounded text
    /// column (MySQL's `TEXT`) holds.
    pub const SEARCH_TEXT_BYTES: usize = 65_535;

    /// What free text searches in `entry`: its searched fields (see the
    /// [`text`](#structfield.text) field), each lower-cased, one a line, cut to
    /// [`SEARCH_TEXT_BYTES`](Self::SEARCH_TEXT_BYTES) at a character boundary. A string value of a
    /// change is its text; another value its JSON; `null` is left out. Fields are separated by
    /// a line break, which a search term cannot contain (it may hold no control character), so
    /// a term never matches across two fields.
    ///
    /// Stores that cannot search every field at once keep this text with each entry; it is
    /// derived from the entry as made, so it holds only what the entry shows: a redacted
    /// secret appears as `[REDACTED]`.
    ///
    /// ```
    /// use audit_core::{Action, AuditEntry, Change, store::AuditQuery};
    /// use serde_json::json;
    ///
    /// let entry = AuditEntry::builder(Action::Update)
    ///     .entity("ApiKey", "k9")
    ///     .changes(vec![Change::new("Label", json!("Old"), json!(7))])
    ///     .build();
    /// assert_eq!(AuditQuery::search_text(&entry), "update\napikey\nk9\nlabel\nold\n7");
    /// ```
    pub fn search_text(entry: &AuditEntry) -> String {
        let mut text = String::with_capacity(256);
        let mut push = |field: &str| {
            if text.len() >= Self::SEARCH_TEXT_BYTES {
                return;
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&field.to_lowercase());
        };
        push(entry.action.as_str());
        let ip = entry.ip.map(|ip| ip.to_string());
        for field in [
            &entry.entity_type,
            &entry.entity_id,
            &entry.entity_name,
            &entry.actor_id,
            &entry.actor_name,
            &entry.api_key_name,
            &ip,
            &entry.request_id,
            &entry.trace_id,
            &entry.details,
        ]
        .into_iter()
        .flatten()
        {
            push(field);
        }
        for change in &entry.changes {
            push(&change.field);
            for value in [&change.old, &change.new] {
                match value {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(value) => push(value),
                    other => push(&other.to_string()),
                }
            }
        }
        if text.len() > Self::SEARCH_TEXT_BYTES {
            text.truncate(text.floor_char_boundary(Self::SEARCH_TEXT_BYTES));
        }
        text
    }

    /// The free text as [`search_text`](Self::search_text) holds it: trimmed and lower-cased;
    /// `None` when blank.
    pub fn search_term(&self) -> Option<String> {
        self.trimmed_text().map(str::to_lowercase)
    }

    /// A stable 32-bit digest of everything that selects entries (all but limit and cursor),
    /// carried by cursors so that one cannot continue another query. Filter values are sorted
    /// first, so their order does not matter. FNV-1a: stable across processes and versions,
    /// unlike `std`'s hashers; it recognises cursors and protects nothing.
    pub(crate) fn digest(&self) -> u32 {
        let mut h = FnvHasher::default();
        let text = |h: &mut FnvHasher, text: &str| {
            h.write(&(text.len() as u64).to_be_bytes());
            h.write(text.as_bytes());
        };
        match &self.scope {
            Scope::All => h.write_u8(0),
            Scope::Tenant(tenant) => {
                h.write_u8(1);
                text(&mut h, tenant);
            }
            Scope::Team { tenant, team } => {
                h.write_u8(2);
                text(&mut h, tenant);
                text(&mut h, team);
            }
        }
        let mut list = |tag: u8, mut values: Vec<&str>| {
            values.sort_unstable();
            values.dedup();
            h.write_u8(tag);
            h.write(&(values.len() as u64).to_be_bytes());
            for value in values {
                text(&mut h, value);
            }
        };
        list(10, self.entity_types.iter().map(String::as_str).collect());
        list(11, self.actions.iter().map(Action::as_str).collect());
        list(12, self.actor_ids.iter().map(String::as_str).collect());
        list(13, self.actor_kinds.iter().map(|k| k.as_str()).collect());
        list(14, self.api_keys.iter().map(String::as_str).collect());
        list(15, self.entity_ids.iter().map(String::as_str).collect());
        list(16, self.outcomes.iter().map(|o| o.as_str()).collect());
        // Written only when set, so the digests of queries without them (and the cursors
        // made before they existed) stay as they were.
        if !self.teams.is_empty() {
            list(17, self.teams.iter().map(String::as_str).collect());
        }
        if !self.request_ids.is_empty() {
            list(19, self.request_ids.iter().map(String::as_str).collect());
        }
        if !self.trace_ids.is_empty() {
            list(22, self.trace_ids.iter().map(String::as_str).collect());
        }
        if self.hide_log_reads {
            h.write_u8(18);
        }
        for (tag, bound) in [(20, self.from), (21, self.to)] {
            h.write_u8(tag);
            match bound {
                Some(at) => h.write(&at.timestamp_micros().to_be_bytes()),
                None => h.write_u8(0),
            }
        }
        h.write_u8(30);
        text(&mut h, self.trimmed_text().unwrap_or(""));
        h.write_u8(match self.order {
            Order::Desc => 40,
            Order::Asc => 41,
        });
        fold(h.finish())
    }
}

/// A 64-bit FNV digest folded to 32 bits, so every input bit counts.
pub(crate) fn fold(digest: u64) -> u32 {
    (digest >> 32) as u32 ^ digest as u32
}

/// The years a query's times (`from`, `to` and a cursor's) may fall in: what every backend
/// can store and compare (MySQL's `DATETIME` range).
pub const SUPPORTED_YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

pub(crate) fn within_supported_years(time: DateTime<Utc>) -> bool {
    SUPPORTED_YEARS.contains(&time.year())
}

fn check_count(parameter: &str, count: usize) -> Result<(), StoreError> {
    if count > MAX_FILTER_VALUES {
        return Err(StoreError::invalid(
            parameter,
            format!("at most {MAX_FILTER_VALUES} values, got {count}"),
        ));
    }
    Ok(())
}

fn check_values(parameter: &str, values: &[String]) -> Result<(), StoreError> {
    check_count(parameter, values.len())?;
    for value in values {
        if value.len() > MAX_FILTER_VALUE_LEN {
            return Err(StoreError::invalid(
                parameter,
                format!(
                    "each value is at most {MAX_FILTER_VALUE_LEN} bytes, got {}",
                    value.len()
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                parameter,
                "must not contain control characters",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{ActorKind, ApiKeyRef, Outcome};
    use chrono::TimeZone;

    fn invalid_parameter(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::InvalidQuery { parameter, .. }) => parameter,
            other => panic!("expected InvalidQuery, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_parameter() {
        let base = || AuditQuery::new(Scope::tenant("acme"));
        base().validate().unwrap();
        base().limit(1).validate().unwrap();
        base().limit(MAX_LIMIT).validate().unwrap();
        assert_eq!(invalid_parameter(base().limit(0).validate()), "limit");
        assert_eq!(
            invalid_parameter(base().limit(MAX_LIMIT + 1).validate()),
            "limit"
        );
        base().text("x".repeat(MAX_TEXT_CHARS)).validate().unwrap();
        base().text("é".repeat(MAX_TEXT_CHARS)).validate().unwrap();
        base()
            .text(format!("  {}  ", "x".repeat(MAX_TEXT_CHARS)))
            .validate()
            .unwrap();
        assert_eq!(
            invalid_parameter(base().text("x".repeat(MAX_TEXT_CHARS + 1)).validate()),
            "q"
        );
        assert_eq!(invalid_parameter(base().text("a\0b").validate()), "q");
        base()
            .text("100% _off_ \\ 'quoted' \"x\"; DROP TABLE audit_log; --")
            .validate()
            .unwrap();
        assert_eq!(
            invalid_parameter(base().entity_type("x".repeat(256)).validate()),
            "entity_type"
        );
        assert_eq!(
            invalid_parameter(base().entity_id("4\u{0}2").validate()),
            "entity_id"
        );
        let mut many = base();
        many.actor_ids = (0..=MAX_FILTER_VALUES).map(|i| i.to_string()).collect();
        assert_eq!(invalid_parameter(many.validate()), "actor_id");
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(invalid_parameter(base().from(at).to(at).validate()), "to");
        base()
            .from(at)
            .to(at + chrono::Duration::microseconds(1))
            .validate()
            .unwrap();
        assert_eq!(
            invalid_parameter(AuditQuery::new(Scope::tenant("a\0")).validate()),
            "scope"
        );
        assert_eq!(
            invalid_parameter(Scope::team("acme", "x".repeat(300)).validate()),
            "scope"
        );
        assert_eq!(
            invalid_parameter(base().action(Action::Custom("a\nb".into())).validate()),
            "action"
        );
        assert_eq!(base().text("   ").trimmed_text(), None);
        assert_eq!(base().text(" Acme ").trimmed_text(), Some("Acme"));
    }

    #[test]
    fn order_parses_and_prints() {
        assert_eq!("desc".parse::<Order>().unwrap(), Order::Desc);
        assert_eq!("ASC".parse::<Order>().unwrap(), Order::Asc);
        assert_eq!(Order::Asc.to_string(), "asc");
        assert_eq!("newest".parse::<Order>().unwrap_err().what(), "order");
        assert_eq!(Order::default(), Order::Desc);
    }

    #[test]
    fn matches_applies_scope_filters_range_and_text() {
        let e = AuditEntry::builder(Action::Revoke)
            .tenant("acme")
            .team("ops")
            .actor(crate::Actor::user("u1", "Ann@Example.com"))
            .api_key(ApiKeyRef::new("k1", "CI deployer"))
            .entity("ApiKey", "k9")
            .details("100% revoked")
            .outcome(Outcome::Denied)
            .build();
        let q = || AuditQuery::new(Scope::tenant("acme"));
        assert!(q().matches(&e));
        assert!(!AuditQuery::new(Scope::tenant("globex")).matches(&e));
        assert!(!AuditQuery::new(Scope::team("acme", "sales")).matches(&e));
        assert!(
            q().action(Action::Create)
                .action(Action::Revoke)
                .matches(&e)
        );
        assert!(!q().action(Action::Create).matches(&e));
        assert!(q().api_key("CI deployer").matches(&e));
        assert!(q().api_key("k1").matches(&e));
        assert!(!q().api_key("k2").matches(&e));
        assert!(
            q().outcome(Outcome::Denied)
                .actor_kind(ActorKind::User)
                .matches(&e)
        );
        assert!(!q().outcome(Outcome::Success).matches(&e));
        assert!(q().text("ann@EXAMPLE").matches(&e));
        assert!(q().text("100%").matches(&e));
        assert!(!q().text("100_").matches(&e));
        assert!(q().from(e.occurred_at).matches(&e));
        assert!(!q().to(e.occurred_at).matches(&e));
        assert!(q().team("ops").matches(&e));
        assert!(q().team("sales").team("ops").matches(&e));
        assert!(!q().team("sales").matches(&e));
        assert!(q().hide_log_reads(true).matches(&e));
    }

    #[test]
    fn hiding_log_reads_leaves_out_reads_of_the_log_only() {
        let q = AuditQuery::new(Scope::All).hide_log_reads(true);
        let entry = |action: Action, entity_type: Option<&str>| {
            let mut builder = AuditEntry::builder(action);
            if let Some(entity_type) = entity_type {
                builder = builder.entity(entity_type, "1");
            }
            builder.build()
        };
        assert!(!q.matches(&entry(Action::Read, Some(AUDIT_LOG_ENTITY))));
        assert!(q.matches(&entry(Action::Export, Some(AUDIT_LOG_ENTITY))));
        assert!(q.matches(&entry(Action::Read, Some("Invoice"))));
        assert!(q.matches(&entry(Action::Read, None)));
        assert!(q.matches(&entry(Action::Update, Some(AUDIT_LOG_ENTITY))));
        let shown = AuditQuery::new(Scope::All);
        assert!(shown.matches(&entry(Action::Read, Some(AUDIT_LOG_ENTITY))));
        // A cursor of one does not continue the other.
        assert_ne!(q.digest(), shown.digest());
        assert_ne!(shown.clone().team("a").digest(), shown.digest());
        assert_eq!(invalid_parameter(shown.team("a\0b").validate()), "team");
    }

    #[test]
    fn the_trace_id_filter_takes_trace_ids_only_and_matches_them() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let entry = AuditEntry::builder(Action::Update)
            .tenant("acme")
            .trace_id(trace)
            .build();
        let q = || AuditQuery::new(Scope::tenant("acme"));
        assert!(q().trace_id(trace).validate().is_ok());
        assert!(q().trace_id(trace).matches(&entry));
        assert!(q().text(&trace[4..20]).matches(&entry));
        let other = "0af7651916cd43dd8448eb211c80319c";
        assert!(!q().trace_id(other).matches(&entry));
        assert!(q().trace_id(other).trace_id(trace).matches(&entry));
        assert!(
            !q().trace_id(trace)
                .matches(&AuditEntry::new(Action::Update))
        );
        for bad in ["req-1", &trace.to_uppercase(), &"0".repeat(32), &trace[1..]] {
            match q().trace_id(bad).validate() {
                Err(StoreError::InvalidQuery { parameter, .. }) => {
                    assert_eq!(parameter, "trace_id", "{bad:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Only a query with trace ids digests them: cursors of others stay valid.
        assert_eq!(q().digest(), q().digest());
        assert_ne!(q().trace_id(trace).digest(), q().digest());
    }

    #[test]
    fn free_text_searches_every_field_but_never_across_two() {
        let mut e = AuditEntry::builder(Action::Custom("Rotate".into()))
            .tenant("acme")
            .actor(crate::Actor::user("u-417", "Ann"))
            .entity("SigningKey", "k9")
            .ip("192.0.2.77".parse().unwrap())
            .changes(vec![
                crate::Change::new(
                    "Label",
                    serde_json::json!("Blue Moon"),
                    serde_json::json!(42),
                ),
                crate::Change::new(
                    "password",
                    serde_json::json!("hunter2"),
                    serde_json::json!(null),
                ),
            ])
            .build();
        e.request_id = Some("req-5d1f".into());
        let q = |text: &str| AuditQuery::new(Scope::tenant("acme")).text(text);
        for hit in [
            "ROTATE",
            "signingkey",
            "u-417",
            "192.0.2.7",
            "REQ-5D1F",
            "label",
            "blue moon",
            "42",
            "password",
            "[redacted]",
        ] {
            assert!(q(hit).matches(&e), "{hit}");
        }
        for miss in [
            "hunter2",
            "k9 u-417",
            "k9u-417",
            "rotate signingkey",
            "null",
        ] {
            assert!(!q(miss).matches(&e), "{miss}");
        }
        let mut long = e.clone();
        long.details = Some("x".repeat(AuditQuery::SEARCH_TEXT_BYTES));
        long.request_id = Some("the end".into());
        assert!(AuditQuery::search_text(&long).len() <= AuditQuery::SEARCH_TEXT_BYTES);
        assert!(q("the end").matches(&long));
        long.details = None;
        long.changes[0].new = serde_json::json!("é".repeat(AuditQuery::SEARCH_TEXT_BYTES));
        long.changes[1].field = "after the cut".into();
        assert!(!q("after the cut").matches(&long));
    }
}
