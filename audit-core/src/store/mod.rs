//! The query side of storage: [`AuditStore`] and the [`AuditQuery`], [`Cursor`] and [`Page`]
//! it speaks.
//!
//! A store answers the admin screens' questions: a [`Scope`] chosen by an access guard,
//! filters, a time range, free text and an opaque keyset [`Cursor`]. Everything here is plain
//! data, so every store validates a query the same way ([`AuditQuery::validate`]) and an HTTP
//! layer turns [`StoreError::InvalidQuery`] into a 400 that names the parameter. Paging is by
//! keyset on `(occurred_at, id)`: a page never counts the whole table, and the 1000th page
//! costs what the first does.
//!
//! # Implement your own store
//!
//! A store is a type that implements [`AuditSink`](crate::AuditSink) (the layer writes to it)
//! and [`AuditStore`] (the admin router reads from it). The contract, which
//! [`MemoryStore`](crate::MemoryStore) implements in a few dozen lines:
//!
//! - **Writes are idempotent on the entry id**: recording an id that is already stored does
//!   nothing, so a retried batch never duplicates an entry.
//! - **`occurred_at` is kept to the microsecond**: what cursors carry and every SQL backend
//!   stores, so an entry built with nanoseconds pages like any other.
//! - **Every query is validated first** with [`AuditQuery::validate`], and an invalid one
//!   changes nothing and returns that error.
//! - **The scope is applied inside the backend query**, never by filtering results, and
//!   [`AuditStore::get`] answers `None` for an entry outside the scope.
//! - **Semantics are [`AuditQuery::matches`]**: filters, half-open time range and literal,
//!   case-insensitive free text.
//! - **Pages follow the keyset** `(occurred_at, id)` in the query's order, fetch one row more
//!   than the limit to know whether there is a next page, and end with a
//!   [`Cursor::after`] the last entry; [`AuditStore::export`] streams every match in the same
//!   order, in bounded chunks.
//! - **Summaries, actor lists and facets are counted in the backend query** (`GROUP BY`), with
//!   the semantics of [`Summary::tally`], [`ActorSeen::tally`] and [`Facets::tally`] over the
//!   matching entries; days are UTC days, and every list is bounded by its limit.
//!
//! The `test-suite` feature ships all of this as tests, one per behaviour, written once and
//! run on `MemoryStore` and on `audit-seaorm`'s store on SQLite, PostgreSQL and MySQL. Run it
//! on yours from a test file; each case makes a fresh store, or works in tenants of its own
//! when the store is shared:
//!
//! ```ignore
//! // tests/store_suite.rs, with `audit-core = { features = ["test-suite"] }` and tokio as
//! // dev-dependencies.
//! audit_core::store_suite!(my_crate::MyStore::connect("...").await.unwrap());
//! ```
//!
//! See the [`suite`] module (feature `test-suite`) for the list of behaviours.

mod cursor;
mod page;
mod query;
#[cfg(feature = "test-suite")]
pub mod suite;
mod summary;

use std::sync::Arc;

use async_trait::async_trait;
use futures_core::stream::BoxStream;
use uuid::Uuid;

use crate::entry::AuditEntry;

pub use cursor::Cursor;
pub use page::{Page, StoreError};

use crate::chain::{ChainHash, ChainLink, ChainReport};
use crate::retention::{LegalHold, PurgeReport, PurgeRequest};
pub use query::{
    AUDIT_LOG_ENTITY, AuditQuery, DEFAULT_LIMIT, MAX_FILTER_VALUE_LEN, MAX_FILTER_VALUES,
    MAX_LIMIT, MAX_TEXT_CHARS, Order, SUPPORTED_YEARS, Scope,
};
pub use summary::{
    ActorSeen, ApiKeyFacet, DEFAULT_ACTORS, DayCount, Facets, MAX_ACTORS, MAX_FACET_VALUES,
    Summary, SummaryBy, actor_text_matches, most_frequent, sort_actors, uncursored,
    validate_actors, validate_facets,
};

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

    /// [`export`](Self::export), with each entry's link in its tenant's hash chain (`None`
    /// for an entry with no link), so that an export carries the proof (see
    /// [`chain::linked_json`](crate::chain::linked_json)). The default: `export` with no
    /// links, for a store that keeps no chain.
    fn export_linked(
        &self,
        query: &AuditQuery,
    ) -> BoxStream<'static, Result<(AuditEntry, Option<ChainLink>), StoreError>> {
        Box::pin(Unlinked(self.export(query)))
    }

    /// Where `tenant`'s chain starts when a purge shortened it: the number and hash of the
    /// last entry deleted. `Ok(None)` when the chain starts at its first entry, or this store
    /// keeps no chain (the default).
    async fn chain_start(
        &self,
        tenant: Option<&str>,
    ) -> Result<Option<(u64, ChainHash)>, StoreError> {
        let _ = tenant;
        Ok(None)
    }

    /// Verifies `tenant`'s hash chain (`None`: the entries without a tenant); see
    /// [`chain`](crate::chain). `Ok(None)` when this store keeps no chain, the default.
    async fn verify_chain(&self, tenant: Option<&str>) -> Result<Option<ChainReport>, StoreError> {
        let _ = tenant;
        Ok(None)
    }

    /// Erases the personal fields of every entry whose actor is `actor_id` (see
    /// [`chain::erase_personal`](crate::chain::erase_personal)): the actor name and the user
    /// agent become [`ERASED`](crate::chain::ERASED), the IP address goes, and a store that
    /// keeps a chain drops the salt of their digest, so the chain still verifies. Returns how
    /// many entries it changed (an entry erased before is not counted again); `Ok(None)` when
    /// this store cannot erase, the default. The caller records the erasure itself as an
    /// [`Action::Erase`](crate::Action::Erase) entry.
    async fn erase_actor(&self, actor_id: &str) -> Result<Option<u64>, StoreError> {
        let _ = actor_id;
        Ok(None)
    }

    /// Deletes the request's tenant's entries older than its `before`, oldest first, in
    /// batches of `request.batch`, unless a [`LegalHold`] stands on the tenant (checked again
    /// before every batch); a dry run only counts. A store that keeps a chain records the
    /// purge as an [`Action::Purge`](crate::Action::Purge) entry before deleting anything
    /// and leaves the chain verifiable from its new start (see
    /// [`retention`](crate::retention)). `Ok(None)` when this store cannot purge, the
    /// default.
    async fn purge(&self, request: &PurgeRequest) -> Result<Option<PurgeReport>, StoreError> {
        let _ = request;
        Ok(None)
    }

    /// The legal hold on `tenant`, if one stands (default: `Ok(None)`; a store that cannot
    /// purge holds nothing).
    async fn legal_hold(&self, tenant: Option<&str>) -> Result<Option<LegalHold>, StoreError> {
        let _ = tenant;
        Ok(None)
    }

    /// Places `hold` on `tenant` (replacing one that stands), or with `None` lifts the hold
    /// on it. Returns `false` when this store cannot hold, the default.
    async fn set_legal_hold(
        &self,
        tenant: Option<&str>,
        hold: Option<&LegalHold>,
    ) -> Result<bool, StoreError> {
        let _ = (tenant, hold);
        Ok(false)
    }

    /// The entries matching `query` (its scope, filters, time range and text; not its
    /// cursor, limit or order) counted per UTC day of their `occurred_at` and per key of
    /// `by`: [`Summary::tally`] of them. A store counts in its own query (`GROUP BY`); the
    /// default reads every match through [`export`](Self::export), which answers the same
    /// but costs what reading them costs.
    async fn summary(&self, query: &AuditQuery, by: SummaryBy) -> Result<Summary, StoreError> {
        query.validate()?;
        let mut counts = Vec::new();
        let mut entries = self.export(&uncursored(query));
        while let Some(entry) = next(&mut entries).await {
            let entry = entry?;
            counts.push(DayCount {
                day: entry.occurred_at.date_naive(),
                key: by.key_of(&entry),
                count: 1,
            });
            if counts.len() >= 4096 {
                counts = Summary::new(by, counts).counts;
            }
        }
        Ok(Summary::new(by, counts))
    }

    /// The actors of the entries matching `query` (cursor, limit and order aside) whose
    /// actor id or actor name contains `text` (case-insensitive, literally), most recently
    /// seen first, at most `limit` (1 to [`MAX_ACTORS`]): [`ActorSeen::tally`] of them.
    /// Checked with [`validate_actors`]. The default reads every match through
    /// [`export`](Self::export).
    async fn actors(
        &self,
        query: &AuditQuery,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ActorSeen>, StoreError> {
        validate_actors(query, text, limit)?;
        let mut matched = Vec::new();
        let mut entries = self.export(&uncursored(query));
        while let Some(entry) = next(&mut entries).await {
            matched.push(entry?);
        }
        Ok(ActorSeen::tally(&matched, text, limit))
    }

    /// The entity types, actions, teams and API keys of the entries matching `query`
    /// (cursor, limit and order aside), each list at most `limit` (1 to
    /// [`MAX_FACET_VALUES`]) long: [`Facets::tally`] of them. Checked with
    /// [`validate_facets`]. The default reads every match through [`export`](Self::export).
    async fn facets(&self, query: &AuditQuery, limit: u32) -> Result<Facets, StoreError> {
        validate_facets(query, limit)?;
        let mut matched = Vec::new();
        let mut entries = self.export(&uncursored(query));
        while let Some(entry) = next(&mut entries).await {
            matched.push(entry?);
        }
        Ok(Facets::tally(&matched, limit))
    }
}

/// The next item of `stream`.
async fn next<T>(stream: &mut BoxStream<'static, T>) -> Option<T> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
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

    fn export_linked(
        &self,
        query: &AuditQuery,
    ) -> BoxStream<'static, Result<(AuditEntry, Option<ChainLink>), StoreError>> {
        (**self).export_linked(query)
    }

    async fn chain_start(
        &self,
        tenant: Option<&str>,
    ) -> Result<Option<(u64, ChainHash)>, StoreError> {
        (**self).chain_start(tenant).await
    }

    async fn verify_chain(&self, tenant: Option<&str>) -> Result<Option<ChainReport>, StoreError> {
        (**self).verify_chain(tenant).await
    }

    async fn erase_actor(&self, actor_id: &str) -> Result<Option<u64>, StoreError> {
        (**self).erase_actor(actor_id).await
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<Option<PurgeReport>, StoreError> {
        (**self).purge(request).await
    }

    async fn legal_hold(&self, tenant: Option<&str>) -> Result<Option<LegalHold>, StoreError> {
        (**self).legal_hold(tenant).await
    }

    async fn set_legal_hold(
        &self,
        tenant: Option<&str>,
        hold: Option<&LegalHold>,
    ) -> Result<bool, StoreError> {
        (**self).set_legal_hold(tenant, hold).await
    }

    async fn summary(&self, query: &AuditQuery, by: SummaryBy) -> Result<Summary, StoreError> {
        (**self).summary(query, by).await
    }

    async fn actors(
        &self,
        query: &AuditQuery,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ActorSeen>, StoreError> {
        (**self).actors(query, text, limit).await
    }

    async fn facets(&self, query: &AuditQuery, limit: u32) -> Result<Facets, StoreError> {
        (**self).facets(query, limit).await
    }
}

/// An export's entries, each with no link.
struct Unlinked(BoxStream<'static, Result<AuditEntry, StoreError>>);

impl futures_core::Stream for Unlinked {
    type Item = Result<(AuditEntry, Option<ChainLink>), StoreError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0
            .as_mut()
            .poll_next(cx)
            .map(|item| item.map(|entry| entry.map(|entry| (entry, None))))
    }
}
