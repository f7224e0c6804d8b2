//! [`MemorySink`] as an [`AuditStore`]: the query side for tests and trials.
//!
//! In the flow request → layer → entry → sink → **store** → admin router, this lets the entries
//! a [`MemorySink`] collected be listed, fetched and exported through the same trait a database
//! store implements, with the reference semantics of [`AuditQuery::matches`]. It holds every
//! entry in memory already, so it is meant for tests, demos and small tools, not production.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures_core::Stream;
use futures_core::stream::BoxStream;
use uuid::Uuid;

use crate::entry::AuditEntry;
use crate::sink::MemorySink;
use crate::store::{AuditQuery, AuditStore, Cursor, Order, Page, Scope, StoreError};

impl MemorySink {
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

/// Lists, fetches and exports what the sink holds. Queries are validated like every store's;
/// paging is by keyset on `(occurred_at, id)`.
///
/// ```
/// use audit_core::{Action, AuditEntry, AuditSink, AuditStore, MemorySink};
/// use audit_core::store::{AuditQuery, Scope};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = MemorySink::new();
/// sink.record(AuditEntry::builder(Action::Create).tenant("acme").build()).await.unwrap();
/// sink.record(AuditEntry::builder(Action::Delete).tenant("globex").build()).await.unwrap();
/// let page = sink.query(&AuditQuery::new(Scope::tenant("acme"))).await.unwrap();
/// assert_eq!(page.items.len(), 1);
/// assert!(page.next_cursor.is_none());
/// # });
/// ```
#[async_trait]
impl AuditStore for MemorySink {
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
        Ok(self
            .lock()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Action, AuditSink};
    use chrono::{Duration, TimeZone, Utc};
    use std::future::poll_fn;

    async fn seeded() -> MemorySink {
        let sink = MemorySink::new();
        let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for i in 0..25 {
            let tenant = if i % 5 == 0 { "globex" } else { "acme" };
            // Pairs share a timestamp, so the id breaks ties.
            let entry = AuditEntry::builder(Action::Update)
                .tenant(tenant)
                .occurred_at(base + Duration::seconds(i / 2))
                .build();
            sink.record(entry).await.unwrap();
        }
        sink
    }

    async fn all(stream: &mut BoxStream<'static, Result<AuditEntry, StoreError>>) -> Vec<Uuid> {
        let mut ids = Vec::new();
        while let Some(item) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            ids.push(item.unwrap().id);
        }
        ids
    }

    #[tokio::test]
    async fn pages_follow_the_keyset_in_both_orders_and_match_the_export() {
        let sink = seeded().await;
        for order in [Order::Desc, Order::Asc] {
            let query = AuditQuery::new(Scope::tenant("acme")).order(order).limit(3);
            let mut paged = Vec::new();
            let mut next = query.clone();
            loop {
                let page = sink.query(&next).await.unwrap();
                paged.extend(page.items.iter().map(|e| e.id));
                match page.next_cursor {
                    Some(cursor) => next = query.clone().cursor(cursor),
                    None => break,
                }
            }
            assert_eq!(paged.len(), 20);
            let exported = all(&mut sink.export(&query)).await;
            assert_eq!(exported, paged);
            let mut sorted = paged.clone();
            sorted.sort();
            if order == Order::Desc {
                sorted.reverse();
            }
            // UUIDv7 ids made in sequence sort like their timestamps here.
            assert_eq!(paged, sorted);
        }
    }

    #[tokio::test]
    async fn scope_applies_to_get_and_invalid_queries_fail() {
        let sink = seeded().await;
        let globex = sink
            .entries()
            .into_iter()
            .find(|e| e.tenant_id.as_deref() == Some("globex"))
            .unwrap();
        assert!(
            sink.get(&Scope::tenant("acme"), globex.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(sink.get(&Scope::All, globex.id).await.unwrap().is_some());
        let bad = AuditQuery::new(Scope::All).limit(0);
        assert!(sink.query(&bad).await.unwrap_err().is_invalid_query());
        let mut stream = sink.export(&bad);
        let first = poll_fn(|cx| stream.as_mut().poll_next(cx)).await.unwrap();
        assert!(first.unwrap_err().is_invalid_query());
    }
}
