//! The `audit_log` table as a SeaORM entity: one row is one
//! [`AuditEntry`](audit_core::AuditEntry), one column per field of its serialised form, under
//! the same name. `changes` and `metadata` are JSON (JSONB on PostgreSQL, JSON on MySQL, text on
//! SQLite); `action`, `actor_kind` and `outcome` hold the text forms from `audit-core`.
//!
//! The four `chain_` columns are not fields of the entry but the store's proof about it: its
//! link in its tenant's hash chain (see `crate::chain`).
//!
//! `actor_bucket` and `entity_bucket` are not fields either: each spreads the ids of one column
//! over [`BUCKETS`] values, so that the indexes that find an actor's or an object's entries take
//! inserts at a bounded number of places (see
//! [`m20261204_000007_bucketed_lookup_indexes`](crate::migration::m20261204_000007_bucketed_lookup_indexes)).
//!
//! `search_text` is not a field either: it is the text free text searches, derived from the
//! entry when the row is written (see
//! [`m20261206_000009_search_text`](crate::migration::m20261206_000009_search_text)).
//!
//! Adding a field to the entry means adding its column here and in a new migration; entries
//! become rows through the serialised form, and `convert::from_model`, which builds the entry
//! field by field, stops compiling until it reads the new one. The table is created by
//! [`Migrator`](crate::migration::Migrator); the column list here and the migrations must agree
//! (a test compares them with the entry's fields).

use sea_orm::entity::prelude::*;

/// One stored audit entry.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// The entry's UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// When it happened (UTC, microseconds).
    pub occurred_at: DateTimeUtc,
    /// The tenant.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ID))", nullable)]
    pub tenant_id: Option<String>,
    /// The team within the tenant.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ID))", nullable)]
    pub team_id: Option<String>,
    /// `user`, `api_key`, `system` or `anonymous`.
    #[sea_orm(column_type = "String(StringLen::N(capacity::KIND))")]
    pub actor_kind: String,
    /// The caller's id.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ID))", nullable)]
    pub actor_id: Option<String>,
    /// The caller's display name.
    #[sea_orm(column_type = "String(StringLen::N(capacity::NAME))", nullable)]
    pub actor_name: Option<String>,
    /// The API key's id.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ID))", nullable)]
    pub api_key_id: Option<String>,
    /// The API key's name.
    #[sea_orm(column_type = "String(StringLen::N(capacity::NAME))", nullable)]
    pub api_key_name: Option<String>,
    /// The action's text form.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ACTION))")]
    pub action: String,
    /// The kind of object acted on.
    #[sea_orm(column_type = "String(StringLen::N(capacity::NAME))", nullable)]
    pub entity_type: Option<String>,
    /// The object's id.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ID))", nullable)]
    pub entity_id: Option<String>,
    /// The object's display name.
    #[sea_orm(column_type = "String(StringLen::N(capacity::NAME))", nullable)]
    pub entity_name: Option<String>,
    /// A short human summary.
    #[sea_orm(column_type = "Text", nullable)]
    pub details: Option<String>,
    /// The field-level changes, a JSON array of `{field, old, new}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub changes: Json,
    /// `success`, `failure` or `denied`.
    #[sea_orm(column_type = "String(StringLen::N(capacity::KIND))")]
    pub outcome: String,
    /// The HTTP status.
    pub status: Option<i32>,
    /// The client address, as text.
    #[sea_orm(column_type = "String(StringLen::N(capacity::IP))", nullable)]
    pub ip: Option<String>,
    /// The client's user agent.
    #[sea_orm(column_type = "Text", nullable)]
    pub user_agent: Option<String>,
    /// The request id.
    #[sea_orm(column_type = "String(StringLen::N(capacity::ID))", nullable)]
    pub request_id: Option<String>,
    /// The W3C trace id, 32 lowercase hexadecimal digits (added by
    /// [`m20261208_000012_trace_id`](crate::migration::m20261208_000012_trace_id)).
    #[sea_orm(column_type = "String(StringLen::N(capacity::TRACE_ID))", nullable)]
    pub trace_id: Option<String>,
    /// The HTTP method.
    #[sea_orm(column_type = "String(StringLen::N(capacity::METHOD))", nullable)]
    pub method: Option<String>,
    /// The matched route template.
    #[sea_orm(column_type = "Text", nullable)]
    pub route: Option<String>,
    /// The application's own keys, a JSON object.
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    /// The entry's number in its tenant's hash chain (`NULL` for entries stored before the
    /// chain began). This and the three columns after it are the store's proof about the
    /// entry, not fields of it: see `crate::chain` and `docs/chain.md`.
    pub chain_seq: Option<i64>,
    /// SHA-256 over the entry's canonical encoding, its number, the previous entry's hash and
    /// `chain_personal`.
    #[sea_orm(column_type = "Binary(32)", nullable)]
    pub chain_hash: Option<Vec<u8>>,
    /// The salted digest of the entry's personal fields.
    #[sea_orm(column_type = "Binary(32)", nullable)]
    pub chain_personal: Option<Vec<u8>>,
    /// The digest's salt; `NULL` once the personal fields are erased.
    #[sea_orm(column_type = "Binary(16)", nullable)]
    pub chain_salt: Option<Vec<u8>>,
    /// [`bucket`] of `actor_id` (`NULL` without one): the lookup index's second column.
    #[sea_orm(column_type = "SmallInteger", nullable)]
    pub actor_bucket: Option<i16>,
    /// [`bucket`] of `entity_id` (`NULL` without one): the lookup index's second column.
    #[sea_orm(column_type = "SmallInteger", nullable)]
    pub entity_bucket: Option<i16>,
    /// What free text searches: [`AuditQuery::search_text`](audit_core::store::AuditQuery::search_text)
    /// of the entry as stored (lower-cased, redacted like the entry, bounded). `NULL` only in a
    /// row written by a store that predates it and after migration 9 ran.
    #[sea_orm(column_type = "Text", nullable)]
    pub search_text: Option<String>,
}

/// `audit_log` has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Column capacities, in characters, shared by the migration (which declares them) and the
/// store (which cuts values to them in bytes, so a value always fits on every backend).
pub(crate) mod capacity {
    /// Ids: tenant, team, actor, API key, entity, request.
    pub const ID: u32 = 255;
    /// Names: actor, API key, entity; the entity type.
    pub const NAME: u32 = 255;
    /// The action's text form.
    pub const ACTION: u32 = 64;
    /// `actor_kind` and `outcome`.
    pub const KIND: u32 = 16;
    /// The client address.
    pub const IP: u32 = 64;
    /// The HTTP method.
    pub const METHOD: u32 = 32;
    /// The trace id: always 32 hexadecimal digits.
    pub const TRACE_ID: u32 = 32;
    /// `TEXT` columns (details, user agent, route): MySQL's `TEXT` holds 65,535 bytes.
    pub const TEXT: u32 = 65_535;
}

/// How many buckets [`bucket`] spreads ids over.
pub const BUCKETS: u64 = 64;

/// The bucket of an actor or entity id: FNV-1a (64-bit) of its UTF-8 bytes, modulo [`BUCKETS`].
/// Stored with each row; a lookup by id asks for the id and its bucket, so that the index that
/// starts with (`tenant_id`, bucket) serves it.
pub fn bucket(id: &str) -> i16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Below 64: fits.
    (hash % BUCKETS) as i16
}
