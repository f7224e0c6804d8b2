//! [`AuditStore`]: the query side of storage, and the query, cursor and page types it speaks.
//!
//! In the flow request → layer → entry → sink → **store** → admin router, a store answers the
//! admin screens' questions: a [`Scope`] chosen by the admin router's access guard, filters, a
//! time range, free text and an opaque keyset [`Cursor`]. Everything here is plain data with no
//! database or HTTP in it, so every store (`audit-seaorm`, or your own) validates a query the
//! same way ([`AuditQuery::validate`]) and an HTTP layer can turn [`StoreError::InvalidQuery`]
//! into a 400 that names the parameter.
//!
//! Paging is by keyset on `(occurred_at, id)`: a page never counts the whole table, and the
//! 1000th page costs what the first does.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use futures_core::stream::BoxStream;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::action::Action;
use crate::entry::{ActorKind, AuditEntry, Outcome};

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
    /// [`AuditStore::get`].
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

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Order {
    type Err = StoreError;

    /// Reads `desc` or `asc` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("desc") {
            Ok(Order::Desc)
        } else if s.eq_ignore_ascii_case("asc") {
            Ok(Order::Asc)
        } else {
            Err(StoreError::invalid("order", "expected `desc` or `asc`"))
        }
    }
}

/// A question to an [`AuditStore`]: a scope, filters, a time range, free text, an order, a page
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
    /// Entity ids.
    pub entity_ids: Vec<String>,
    /// Outcomes.
    pub outcomes: Vec<Outcome>,
    /// Only entries that occurred at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only entries that occurred strictly before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Free text, matched case-insensitively and literally (no wildcards) as a substring of the
    /// entity name, details, actor name, entity id or API key name. Surrounding whitespace is
    /// ignored; a blank text matches everything.
    pub q: Option<String>,
    /// Newest first (default) or oldest first.
    pub order: Order,
    /// The page size, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]). [`AuditStore::export`]
    /// validates it too but is not bounded by it.
    pub limit: u32,
    /// Where to continue: the [`Page::next_cursor`] of the previous page of the same query.
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
            outcomes: Vec::new(),
            from: None,
            to: None,
            q: None,
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

    /// Adds an entity id to the entity id filter.
    pub fn entity_id(mut self, entity_id: impl Into<String>) -> Self {
        self.entity_ids.push(entity_id.into());
        self
    }

    /// Adds an outcome to the outcome filter.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcomes.push(outcome);
        self
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

    /// Free text; see [`AuditQuery::q`].
    pub fn text(mut self, q: impl Into<String>) -> Self {
        self.q = Some(q.into());
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
    pub fn search_text(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
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
        if let Some(q) = self.search_text() {
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
            if cursor.order != self.order {
                return Err(StoreError::invalid(
                    "cursor",
                    format!(
                        "this cursor continues a `{}` listing but the query asks for `{}`; \
                         start again without a cursor",
                        cursor.order, self.order
                    ),
                ));
            }
            if cursor.query != self.fingerprint() {
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
            || !any_eq(&self.entity_ids, &entry.entity_id)
            || !(self.actions.is_empty() || self.actions.contains(&entry.action))
            || !(self.actor_kinds.is_empty() || self.actor_kinds.contains(&entry.actor_kind))
            || !(self.outcomes.is_empty() || self.outcomes.contains(&entry.outcome))
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
        if let Some(q) = self.search_text() {
            let q = q.to_lowercase();
            let hit = [
                &entry.entity_name,
                &entry.details,
                &entry.actor_name,
                &entry.entity_id,
                &entry.api_key_name,
            ]
            .into_iter()
            .flatten()
            .any(|field| field.to_lowercase().contains(&q));
            if !hit {
                return false;
            }
        }
        true
    }

    /// A stable 32-bit digest of everything that selects entries (all but limit and cursor).
    /// Filter values are sorted first, so their order does not matter.
    fn fingerprint(&self) -> u32 {
        let mut h = Fnv::new();
        match &self.scope {
            Scope::All => h.tag(0),
            Scope::Tenant(tenant) => {
                h.tag(1);
                h.text(tenant);
            }
            Scope::Team { tenant, team } => {
                h.tag(2);
                h.text(tenant);
                h.text(team);
            }
        }
        let mut list = |tag: u8, values: Vec<&str>| {
            let mut values = values;
            values.sort_unstable();
            values.dedup();
            h.tag(tag);
            h.bytes(&(values.len() as u64).to_be_bytes());
            for value in values {
                h.text(value);
            }
        };
        list(10, self.entity_types.iter().map(String::as_str).collect());
        list(11, self.actions.iter().map(Action::as_str).collect());
        list(12, self.actor_ids.iter().map(String::as_str).collect());
        list(13, self.actor_kinds.iter().map(|k| k.as_str()).collect());
        list(14, self.api_keys.iter().map(String::as_str).collect());
        list(15, self.entity_ids.iter().map(String::as_str).collect());
        list(16, self.outcomes.iter().map(|o| o.as_str()).collect());
        for (tag, bound) in [(20, self.from), (21, self.to)] {
            h.tag(tag);
            match bound {
                Some(at) => h.bytes(&at.timestamp_micros().to_be_bytes()),
                None => h.tag(0),
            }
        }
        h.tag(30);
        h.text(self.search_text().unwrap_or(""));
        h.tag(match self.order {
            Order::Desc => 40,
            Order::Asc => 41,
        });
        h.finish32()
    }
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

/// FNV-1a, 64 bits: stable across processes and versions, unlike `std`'s hashers. Used only to
/// recognise cursors, never for security.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn tag(&mut self, tag: u8) {
        self.bytes(&[tag]);
    }
    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_be_bytes());
        self.bytes(text.as_bytes());
    }
    fn finish32(&self) -> u32 {
        // Fold both halves so every input bit counts.
        (self.0 >> 32) as u32 ^ self.0 as u32
    }
}

/// Where the next page of a listing starts: an opaque text token.
///
/// It holds the `(occurred_at, id)` of the last entry of the page, the order, and a digest of
/// the query, so a cursor used with the other order or with another scope or other filters is
/// rejected by [`AuditQuery::validate`] instead of silently skipping entries. The text is
/// base64url with a checksum, so a mistyped or altered token is a clear
/// [`StoreError::InvalidQuery`] on `cursor`.
///
/// A cursor is not a credential: the scope is applied by the store on every page, so a forged
/// cursor can at most move within what the caller may see anyway.
///
/// ```
/// use audit_core::{Action, AuditEntry, store::{AuditQuery, Cursor, Scope}};
///
/// let query = AuditQuery::new(Scope::tenant("acme"));
/// let last = AuditEntry::builder(Action::Create).tenant("acme").build();
/// let cursor = Cursor::after(&query, &last);
/// let text = cursor.to_string();
/// assert_eq!(text.parse::<Cursor>().unwrap(), cursor);
/// assert!(query.clone().cursor(cursor.clone()).validate().is_ok());
/// // The same cursor with another tenant's query is refused.
/// assert!(AuditQuery::new(Scope::tenant("globex")).cursor(cursor).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    occurred_at_micros: i64,
    id: Uuid,
    order: Order,
    query: u32,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BYTES: usize = 1 + 1 + 8 + 16 + 4 + 4;

impl Cursor {
    /// The cursor that continues `query` after `last`, the last entry of a page.
    pub fn after(query: &AuditQuery, last: &AuditEntry) -> Self {
        Cursor {
            occurred_at_micros: last.occurred_at.timestamp_micros(),
            id: last.id,
            order: query.order,
            query: query.fingerprint(),
        }
    }

    /// When the last entry of the previous page occurred.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.occurred_at_micros).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// [`occurred_at`](Self::occurred_at) in microseconds since the Unix epoch.
    pub fn occurred_at_micros(&self) -> i64 {
        self.occurred_at_micros
    }

    /// The id of the last entry of the previous page.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The order of the listing this cursor continues.
    pub fn order(&self) -> Order {
        self.order
    }

    fn to_bytes(&self) -> [u8; CURSOR_BYTES] {
        let mut out = [0u8; CURSOR_BYTES];
        out[0] = CURSOR_VERSION;
        out[1] = match self.order {
            Order::Desc => 0,
            Order::Asc => 1,
        };
        out[2..10].copy_from_slice(&self.occurred_at_micros.to_be_bytes());
        out[10..26].copy_from_slice(self.id.as_bytes());
        out[26..30].copy_from_slice(&self.query.to_be_bytes());
        let sum = checksum(&out[..30]);
        out[30..].copy_from_slice(&sum.to_be_bytes());
        out
    }
}

fn checksum(bytes: &[u8]) -> u32 {
    let mut h = Fnv::new();
    h.bytes(b"audit-cursor");
    h.bytes(bytes);
    h.finish32()
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64url::encode(&self.to_bytes()))
    }
}

/// The years a query's times (`from`, `to` and a cursor's) may fall in: what every backend
/// can store and compare (MySQL's `DATETIME` range).
pub const SUPPORTED_YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

fn within_supported_years(time: DateTime<Utc>) -> bool {
    SUPPORTED_YEARS.contains(&time.year())
}

impl FromStr for Cursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || {
            StoreError::invalid(
                "cursor",
                "not a cursor issued by this service (malformed or altered); use the \
                 `next_cursor` of the previous page as it is, or start without one",
            )
        };
        // A real cursor is 46 characters; refuse anything far off before decoding.
        if s.len() > 64 {
            return Err(malformed());
        }
        let bytes = base64url::decode(s).ok_or_else(malformed)?;
        if bytes.len() != CURSOR_BYTES || bytes[0] != CURSOR_VERSION {
            return Err(malformed());
        }
        let (payload, sum) = bytes.split_at(30);
        if u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]) != checksum(payload) {
            return Err(malformed());
        }
        let order = match payload[1] {
            0 => Order::Desc,
            1 => Order::Asc,
            _ => return Err(malformed()),
        };
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&payload[2..10]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&payload[10..26]);
        let mut query = [0u8; 4];
        query.copy_from_slice(&payload[26..30]);
        let occurred_at_micros = i64::from_be_bytes(micros);
        // The checksum catches mistakes, not forgeries: a time no store can compare (MySQL
        // and PostgreSQL refuse it, SQLite would compare its text wrongly) is refused here.
        if !DateTime::from_timestamp_micros(occurred_at_micros).is_some_and(within_supported_years)
        {
            return Err(malformed());
        }
        Ok(Cursor {
            occurred_at_micros,
            id: Uuid::from_bytes(id),
            order,
            query: u32::from_be_bytes(query),
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Unpadded base64url, just enough for cursors.
mod base64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            }
        }
        out
    }

    fn value(c: u8) -> Option<u32> {
        ALPHABET
            .iter()
            .position(|&a| a == c)
            .and_then(|p| u32::try_from(p).ok())
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let bytes = text.as_bytes();
        if bytes.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                n |= value(*c)? << (18 - 6 * i);
            }
            let produced = chunk.len() - 1;
            let all = n.to_be_bytes();
            out.extend_from_slice(&all[1..1 + produced]);
            // Non-canonical text (stray low bits) would decode to the same bytes as the real
            // token; refusing it keeps one token per cursor.
            let used_bits = 8 * produced;
            let mask = (1u32 << (24 - used_bits)) - 1;
            if n & mask != 0 {
                return None;
            }
        }
        Some(out)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The entries, in the query's order.
    pub items: Vec<AuditEntry>,
    /// Where the next page starts, or `None` when this page is the last.
    pub next_cursor: Option<Cursor>,
}

/// Why a store could not answer.
///
/// [`InvalidQuery`](StoreError::InvalidQuery) is the caller's fault (an HTTP layer answers 400
/// naming the parameter); every other variant is the store's (a 500 or 503).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A query parameter is out of bounds or malformed.
    #[error("invalid query parameter `{parameter}`: {message}")]
    InvalidQuery {
        /// The parameter's name: `scope`, `limit`, `q`, `cursor`, `to`, `order`, `entity_type`,
        /// `action`, `actor_id`, `actor_kind`, `api_key`, `entity_id` or `outcome`.
        parameter: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The backend is unreachable or timed out; retrying later may succeed.
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be read back as an entry.
    #[error("stored audit entry {id} is unreadable: {message}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// What could not be read.
        message: String,
    },
    /// The backend failed with its own error.
    #[error("audit store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// An [`InvalidQuery`](StoreError::InvalidQuery) error.
    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::InvalidQuery {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// Whether the caller's input caused this error (an HTTP 400), rather than the store.
    pub fn is_invalid_query(&self) -> bool {
        matches!(self, StoreError::InvalidQuery { .. })
    }
}

/// The query side of storage: list, fetch and export entries within a [`Scope`].
///
/// Implementations validate every query with [`AuditQuery::validate`] before touching the
/// backend, apply the scope inside the backend query, and page by keyset on `(occurred_at, id)`
/// in the query's order, without counting the whole table.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// One page of the entries matching `query`, after `query.cursor` if set.
    async fn query(&self, query: &AuditQuery) -> Result<Page, StoreError>;

    /// The entry with this id, if it exists within `scope`. An entry outside the scope is
    /// `None`, exactly like one that does not exist.
    async fn get(&self, scope: &Scope, id: Uuid) -> Result<Option<AuditEntry>, StoreError>;

    /// Every entry matching `query` (after `query.cursor`, if set), in its order, read in
    /// bounded chunks so the memory held does not grow with the result. `query.limit` is
    /// validated but does not cap the stream; use `StreamExt::take` for that. An invalid query
    /// yields one error and ends.
    fn export(&self, query: &AuditQuery) -> BoxStream<'static, Result<AuditEntry, StoreError>>;
}

#[async_trait]
impl<S: AuditStore + ?Sized> AuditStore for Arc<S> {
    async fn query(&self, query: &AuditQuery) -> Result<Page, StoreError> {
        (**self).query(query).await
    }

    async fn get(&self, scope: &Scope, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
        (**self).get(scope, id).await
    }

    fn export(&self, query: &AuditQuery) -> BoxStream<'static, Result<AuditEntry, StoreError>> {
        (**self).export(query)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Action, ActorKind, ApiKeyRef, Outcome};
    use chrono::TimeZone;

    fn entry() -> AuditEntry {
        AuditEntry::builder(Action::Update)
            .tenant("acme")
            .team("ops")
            .entity("ConnectionProfile", "42")
            .entity_name("Salesforce Prod")
            .build()
    }

    fn invalid_parameter(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::InvalidQuery { parameter, .. }) => parameter,
            other => panic!("expected InvalidQuery, got {other:?}"),
        }
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let text = base64url::encode(&bytes);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(base64url::decode(&text).unwrap(), bytes, "len {len}");
        }
        assert_eq!(base64url::encode(b"\xfb\xff"), "-_8");
        assert!(base64url::decode("-_9").is_none(), "stray low bits");
        assert!(base64url::decode("A").is_none());
        assert!(base64url::decode("AB=C").is_none());
    }

    #[test]
    fn cursor_round_trips_through_text_and_json() {
        for order in [Order::Desc, Order::Asc] {
            let query = AuditQuery::new(Scope::tenant("acme"))
                .order(order)
                .action(Action::Delete);
            let last = entry();
            let cursor = Cursor::after(&query, &last);
            assert_eq!(cursor.order(), order);
            assert_eq!(cursor.id(), last.id);
            assert_eq!(cursor.occurred_at(), last.occurred_at);
            let text = cursor.to_string();
            assert_eq!(text.len(), 46);
            assert_eq!(text.parse::<Cursor>().unwrap(), cursor);
            let json = serde_json::to_string(&cursor).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), cursor);
            query.clone().cursor(cursor).validate().unwrap();
        }
    }

    #[test]
    fn a_tampered_cursor_is_a_clear_error() {
        let query = AuditQuery::new(Scope::tenant("acme"));
        let text = Cursor::after(&query, &entry()).to_string();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        // Every single-character change is caught.
        for i in 0..text.len() {
            for replacement in alphabet.chars() {
                let mut bytes = text.clone().into_bytes();
                if bytes[i] == replacement as u8 {
                    continue;
                }
                bytes[i] = replacement as u8;
                let altered = String::from_utf8(bytes).unwrap();
                let err = altered.parse::<Cursor>().unwrap_err();
                assert!(err.is_invalid_query(), "{altered}");
            }
        }
        for garbage in [
            "",
            "x",
            "not a cursor",
            "' OR 1=1 --",
            "%00",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &"A".repeat(10_000),
            &text[..text.len() - 1],
            &format!("{text}A"),
            "😀😀😀😀",
        ] {
            let err = garbage.parse::<Cursor>().unwrap_err();
            match err {
                StoreError::InvalidQuery { parameter, message } => {
                    assert_eq!(parameter, "cursor");
                    assert!(message.contains("not a cursor"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn times_outside_the_supported_years_are_a_clear_error() {
        let query = AuditQuery::new(Scope::tenant("acme"));
        // A well-formed cursor (its checksum recomputed, as anyone can) at an absurd time.
        for year in [-200_000, 999, 10_000, 200_000] {
            let at = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
            let mut far = entry();
            far.occurred_at = at;
            let text = Cursor::after(&query, &far).to_string();
            let err = text.parse::<Cursor>().unwrap_err();
            assert!(err.is_invalid_query(), "{year}");
            assert_eq!(
                invalid_parameter(query.clone().from(at).validate()),
                "from",
                "{year}"
            );
            assert_eq!(
                invalid_parameter(query.clone().to(at).validate()),
                "to",
                "{year}"
            );
        }
        for year in [1000, 2026, 9999] {
            let at = Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0).unwrap();
            let mut near = entry();
            near.occurred_at = at;
            let cursor: Cursor = Cursor::after(&query, &near).to_string().parse().unwrap();
            query.clone().cursor(cursor).validate().unwrap();
            query
                .clone()
                .from(at)
                .to(at + chrono::Duration::days(1))
                .validate()
                .unwrap();
        }
    }

    #[test]
    fn a_foreign_cursor_is_refused() {
        let desc = AuditQuery::new(Scope::tenant("acme")).entity_type("Tenant");
        let cursor = Cursor::after(&desc, &entry());
        // The same query, another page size and reordered filter values: accepted.
        desc.clone()
            .cursor(cursor.clone())
            .limit(5)
            .validate()
            .unwrap();
        let two = desc.clone().entity_type("ApiKey");
        let two_reordered = AuditQuery::new(Scope::tenant("acme"))
            .entity_type("ApiKey")
            .entity_type("Tenant");
        let c2 = Cursor::after(&two, &entry());
        two_reordered.cursor(c2).validate().unwrap();

        let other_order = desc.clone().order(Order::Asc).cursor(cursor.clone());
        let err = other_order.validate().unwrap_err();
        assert!(err.to_string().contains("`desc`"), "{err}");
        for foreign in [
            AuditQuery::new(Scope::tenant("globex")).entity_type("Tenant"),
            AuditQuery::new(Scope::All).entity_type("Tenant"),
            AuditQuery::new(Scope::team("acme", "ops")).entity_type("Tenant"),
            AuditQuery::new(Scope::tenant("acme")),
            desc.clone().text("x"),
            desc.clone().actor_kind(ActorKind::User),
            desc.clone()
                .from(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        ] {
            assert_eq!(
                invalid_parameter(foreign.cursor(cursor.clone()).validate()),
                "cursor"
            );
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
        assert_eq!(base().text("   ").search_text(), None);
        assert_eq!(base().text(" Acme ").search_text(), Some("Acme"));
    }

    #[test]
    fn order_parses_and_prints() {
        assert_eq!("desc".parse::<Order>().unwrap(), Order::Desc);
        assert_eq!("ASC".parse::<Order>().unwrap(), Order::Asc);
        assert_eq!(Order::Asc.to_string(), "asc");
        assert!("newest".parse::<Order>().unwrap_err().is_invalid_query());
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
    }
}
