//! [`MemoryStore`]: entries kept in memory, both written to and queried, for tests, demos and
//! small tools.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::SubsecRound;
use futures_core::Stream;
use futures_core::stream::BoxStream;
use uuid::Uuid;

use crate::entry::AuditEntry;
use crate::intents::IntentStore;
use crate::retention::{LegalHold, PurgeReport, PurgeRequest};
use crate::sink::{AuditSink, SinkError};
use crate::store::{
    ActorSeen, AuditQuery, AuditStore, Cursor, Facets, Order, Page, Scope, StoreError, Summary,
    SummaryBy,
};

/// Keeps entries in memory: an [`AuditSink`] and an [`AuditStore`] at once, the reference
/// implementation of both, for your own tests and for trying the layer and the admin router
/// out. It holds every entry in memory, so it is not meant for production.
///
/// Clones share the same entries, so keep one clone to inspect what the layer recorded.
/// Like every store it skips an id it already holds and keeps `occurred_at` to the
/// microsecond; queries are validated like every store's, and paging is by keyset on
/// `(occurred_at, id)` with the semantics of [`AuditQuery::matches`].
///
/// ```
/// use audit_core::{Action, AuditEntry, AuditSink, MemoryStore};
/// use audit_core::store::{AuditQuery, AuditStore, Scope};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.record(AuditEntry::builder(Action::Create).tenant("acme").build()).await.unwrap();
/// store.record(AuditEntry::builder(Action::Delete).tenant("globex").build()).await.unwrap();
/// assert_eq!(store.len(), 2);
/// let page = store.query(&AuditQuery::new(Scope::tenant("acme"))).await.unwrap();
/// assert_eq!(page.items.len(), 1);
/// assert!(page.next_cursor.is_none());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Entries>>,
}

/// The entries in arrival order, and their ids, so that a repeated id is found at once; and
/// the intents, with when each was recorded.
#[derive(Debug, Default)]
struct Entries {
    list: Vec<AuditEntry>,
    ids: HashSet<Uuid>,
    intents: Vec<(AuditEntry, std::time::Instant)>,
    /// Legal holds by tenant.
    holds: std::collections::HashMap<Option<String>, LegalHold>,
    /// Tasks waiting for entries ([`MemoryStore::wait_for`](crate::testing)).
    waiters: Vec<std::task::Waker>,
}

impl Entries {
    fn add(&mut self, mut entry: AuditEntry) {
        if self.ids.insert(entry.id) {
            entry.occurred_at = entry.occurred_at.trunc_subsecs(6);
            self.list.push(entry);
            for waiter in self.waiters.drain(..) {
                waiter.wake();
            }
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the entries half-written, so the data is
        // still good after poisoning.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes `waker` when the next entry arrives.
    pub(crate) fn add_waiter(&self, waker: &std::task::Waker) {
        let mut entries = self.lock();
        if !entries.waiters.iter().any(|w| w.will_wake(waker)) {
            entries.waiters.push(waker.clone());
        }
    }

    /// Wakes every task waiting for an entry.
    pub(crate) fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut self.lock().waiters);
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// The intents recorded and not yet cleared or recovered (see [`IntentStore`]).
    pub fn intents(&self) -> Vec<AuditEntry> {
        self.lock().intents.iter().map(|(e, _)| e.clone()).collect()
    }

    /// A copy of every entry recorded so far, in the order they arrived.
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.lock().list.clone()
    }

    /// How many entries were recorded.
    pub fn len(&self) -> usize {
        self.lock().list.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().list.is_empty()
    }

    /// Removes and returns every entry.
    pub fn take(&self) -> Vec<AuditEntry> {
        let mut entries = self.lock();
        entries.ids.clear();
        std::mem::take(&mut entries.list)
    }

    /// The entries matching `query` after its cursor, in its order.
    fn select(&self, query: &AuditQuery) -> Vec<AuditEntry> {
        let after = |entry: &AuditEntry| match &query.cursor {
            None => true,
            Some(cursor) => {
                let key = (entry.occurred_at, entry.id);
                let at = (cursor.occurred_at(), cursor.id());
                match query.order {
                    Order::Desc => key < at,
                    Order::Asc => key > at,
                }
            }
        };
        let mut items: Vec<AuditEntry> = self
            .lock()
            .list
            .iter()
            .filter(|entry| query.matches(entry) && after(entry))
            .cloned()
            .collect();
        items.sort_by(|a, b| {
            let ordering = (a.occurred_at, a.id).cmp(&(b.occurred_at, b.id));
            match query.order {
                Order::Asc => ordering,
                Order::Desc => ordering.reverse(),
            }
        });
        items
    }
}

#[async_trait]
impl AuditSink for MemoryStore {
    async fn record(&self, entry: AuditEntry) -> Result<(), SinkError> {
        self.lock().add(entry);
        Ok(())
    }

    async fn record_batch(&self, batch: Vec<AuditEntry>) -> Result<(), SinkError> {
        let mut entries = self.lock();
        for entry in batch {
            entries.add(entry);
        }
        Ok(())
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn query(&self, query: &AuditQuery) -> Result<Page, StoreError> {
        query.validate()?;
        let mut items = self.select(query);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|last| Cursor::after(query, last))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn get(&self, scope: &Scope, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
        scope.validate()?;
        Ok(self
            .lock()
            .list
            .iter()
            .find(|entry| entry.id == id && scope.contains(entry))
            .cloned())
    }

    fn export(&self, query: &AuditQuery) -> BoxStream<'static, Result<AuditEntry, StoreError>> {
        let items = match query.validate() {
            Ok(()) => self.select(query).into_iter().map(Ok).collect(),
            Err(err) => vec![Err(err)],
        };
        Box::pin(Items(items.into_iter()))
    }

    async fn erase_actor(&self, actor_id: &str) -> Result<Option<u64>, StoreError> {
        let mut erased = 0;
        for entry in &mut self.lock().list {
            if entry.actor_id.as_deref() == Some(actor_id) && !crate::chain::is_erased(entry) {
                crate::chain::erase_personal(entry);
                erased += 1;
            }
        }
        Ok(Some(erased))
    }

    /// Deletes, in the order they arrived, the tenant's entries older than `before`, stopping
    /// at the first that is kept (as a chained store does), in one step: a memory store has no
    /// lock to hold briefly.
    async fn purge(&self, request: &PurgeRequest) -> Result<Option<PurgeReport>, StoreError> {
        let mut report = PurgeReport::new(request);
        let mut entries = self.lock();
        let tenant = request.tenant_id.as_deref();
        if let Some(hold) = entries.holds.get(&request.tenant_id) {
            report.held = Some(hold.clone());
            return Ok(Some(report));
        }
        let going: HashSet<Uuid> = entries
            .list
            .iter()
            .filter(|entry| entry.tenant_id.as_deref() == tenant)
            .take_while(|entry| entry.occurred_at < request.before)
            .map(|entry| entry.id)
            .collect();
        report.matched = going.len() as u64;
        if request.dry_run || going.is_empty() {
            return Ok(Some(report));
        }
        entries.list.retain(|entry| !going.contains(&entry.id));
        for id in &going {
            entries.ids.remove(id);
        }
        report.deleted = report.matched;
        let record = request.record(report.deleted, None);
        report.entry_id = Some(record.id);
        entries.add(record);
        Ok(Some(report))
    }

    async fn legal_hold(&self, tenant: Option<&str>) -> Result<Option<LegalHold>, StoreError> {
        Ok(self.lock().holds.get(&tenant.map(str::to_owned)).cloned())
    }

    /// Counts the entries that [`AuditQuery::matches`] where they are, under the lock.
    async fn summary(&self, query: &AuditQuery, by: SummaryBy) -> Result<Summary, StoreError> {
        query.validate()?;
        let entries = self.lock();
        Ok(Summary::tally(
            by,
            entries.list.iter().filter(|entry| query.matches(entry)),
        ))
    }

    async fn actors(
        &self,
        query: &AuditQuery,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ActorSeen>, StoreError> {
        crate::store::validate_actors(query, text, limit)?;
        let entries = self.lock();
        Ok(ActorSeen::tally(
            entries.list.iter().filter(|entry| query.matches(entry)),
            text,
            limit,
        ))
    }

    async fn facets(&self, query: &AuditQuery, limit: u32) -> Result<Facets, StoreError> {
        crate::store::validate_facets(query, limit)?;
        let entries = self.lock();
        Ok(Facets::tally(
            entries.list.iter().filter(|entry| query.matches(entry)),
            limit,
        ))
    }

    async fn set_legal_hold(
        &self,
        tenant: Option<&str>,
        hold: Option<&LegalHold>,
    ) -> Result<bool, StoreError> {
        let key = tenant.map(str::to_owned);
        let mut entries = self.lock();
        match hold {
            Some(hold) => {
                let mut hold = hold.clone();
                hold.tenant_id = key.clone();
                entries.holds.insert(key, hold);
            }
            None => {
                entries.holds.remove(&key);
            }
        }
        Ok(true)
    }
}

/// A stream over entries already in hand.
struct Items(std::vec::IntoIter<Result<AuditEntry, StoreError>>);

impl Stream for Items {
    type Item = Result<AuditEntry, StoreError>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().0.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

#[async_trait]
impl IntentStore for MemoryStore {
    async fn record_intents(&self, intents: &[AuditEntry]) -> Result<(), SinkError> {
        let now = std::time::Instant::now();
        let mut entries = self.lock();
        for intent in intents {
            if !entries.intents.iter().any(|(i, _)| i.id == intent.id) {
                entries.intents.push((intent.clone(), now));
            }
        }
        Ok(())
    }

    async fn clear_intents(&self, ids: &[Uuid]) -> Result<(), SinkError> {
        self.lock().intents.retain(|(i, _)| !ids.contains(&i.id));
        Ok(())
    }

    async fn recover_intents(&self, older_than: std::time::Duration) -> Result<u64, SinkError> {
        let mut entries = self.lock();
        let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut entries.intents)
            .into_iter()
            .partition(|(_, at)| at.elapsed() >= older_than);
        entries.intents = young;
        let recovered = old.len() as u64;
        for (intent, _) in old {
            entries.add(intent);
        }
        Ok(recovered)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::Action;

    #[tokio::test]
    async fn clones_share_entries_and_repeated_ids_are_skipped() {
        let store = MemoryStore::new();
        let writer = store.clone();
        let entry = AuditEntry::new(Action::Create);
        writer.record(entry.clone()).await.unwrap();
        writer.record(entry.clone()).await.unwrap();
        writer
            .record_batch(vec![entry.clone(), AuditEntry::new(Action::Delete)])
            .await
            .unwrap();
        let entries = store.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, entry.id);
        assert_eq!(entries[1].action, Action::Delete);
        assert_eq!(store.take().len(), 2);
        assert!(store.is_empty());
        // Taken entries are gone, ids included: the same entry is stored again.
        writer.record(entry).await.unwrap();
        assert_eq!(store.len(), 1);
    }
}
