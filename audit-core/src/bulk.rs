//! [`BulkChange`]: one entry for a change of many objects at once (deactivating 500 connection
//! profiles, deleting a team's keys), which still answers "what happened to object X".
//!
//! The entry names the objects' type (`entity_type`) and no single `entity_id`; its metadata key
//! [`BULK_KEY`] holds what the change applied to: the filter or the reason an administrator
//! gave, how many objects changed, and their ids, up to [`Limits::bulk_ids`]. A filter by entity
//! id ([`AuditQuery::entity_id`](crate::store::AuditQuery::entity_id)) finds the entry for any of
//! those ids, as it finds an object's own entries; the SQL store keeps the ids in a table of
//! their own so that this is an indexed look-up.
//!
//! ```
//! use audit_core::{Action, AuditEntry, BulkChange, store::{AuditQuery, Scope}};
//!
//! let entry = AuditEntry::builder(Action::Deactivate)
//!     .tenant("acme")
//!     .entity_type("ConnectionProfile")
//!     .bulk(
//!         BulkChange::of(["cp-1", "cp-2", "cp-3"])
//!             .filter("status=active provider=salesforce")
//!             .reason("provider sunset"),
//!     )
//!     .build();
//!
//! let bulk = BulkChange::read(&entry).expect("a bulk entry");
//! assert_eq!(bulk.changed(), 3);
//! assert!(AuditQuery::new(Scope::tenant("acme")).entity_id("cp-2").matches(&entry));
//! ```
//!
//! [`Limits::bulk_ids`]: crate::Limits::bulk_ids

use serde_json::{Map, Value};

use crate::bound::{Limits, truncate};
use crate::entry::AuditEntry;

/// The metadata key of a bulk change: an object with `count`, `entity_ids`, and optionally
/// `filter`, `reason` and `entity_ids_truncated` (`true` when more objects changed than ids are
/// kept).
pub const BULK_KEY: &str = "bulk";

/// A change of many objects, recorded as one entry; see the [module](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct BulkChange {
    count: u64,
    entity_ids: Vec<String>,
    filter: Option<String>,
    reason: Option<String>,
    truncated: bool,
}

impl BulkChange {
    /// A change of the objects with these ids; the count is their number (set another with
    /// [`count`](Self::count) when only some ids are given).
    pub fn of<I>(ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let entity_ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        BulkChange {
            count: entity_ids.len() as u64,
            entity_ids,
            ..BulkChange::default()
        }
    }

    /// A change of every object a filter selected, `count` of them, with no ids named.
    pub fn matching(filter: impl Into<String>, count: u64) -> Self {
        BulkChange {
            count,
            filter: Some(filter.into()),
            ..BulkChange::default()
        }
    }

    /// The filter that selected the objects, as the caller gave it.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Why the change was made.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// How many objects changed, when it is more than the ids given.
    pub fn count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// How many objects changed.
    pub fn changed(&self) -> u64 {
        self.count
    }

    /// The ids of the objects that changed, as kept (at most [`Limits::bulk_ids`]).
    pub fn entity_ids(&self) -> &[String] {
        &self.entity_ids
    }

    /// The filter that selected the objects.
    pub fn filter_text(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// Why the change was made.
    pub fn reason_text(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Whether more objects changed than ids are kept.
    pub fn ids_truncated(&self) -> bool {
        self.truncated || (self.entity_ids.len() as u64) < self.count
    }

    /// Writes this change into `entry`'s metadata under [`BULK_KEY`], replacing what was there.
    pub fn apply(self, entry: &mut AuditEntry) {
        entry.metadata.insert(BULK_KEY.to_owned(), self.to_value());
    }

    /// The bulk change recorded in `entry`, if its metadata holds one.
    pub fn read(entry: &AuditEntry) -> Option<BulkChange> {
        BulkChange::from_value(entry.metadata.get(BULK_KEY)?)
    }

    /// The ids a bulk change in `entry` names, without copying them; empty for other entries.
    pub fn ids_of(entry: &AuditEntry) -> impl Iterator<Item = &str> {
        entry
            .metadata
            .get(BULK_KEY)
            .and_then(|bulk| bulk.get("entity_ids"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// Whether `entry` records a bulk change that names `id`.
    pub fn names(entry: &AuditEntry, id: &str) -> bool {
        BulkChange::ids_of(entry).any(|named| named == id)
    }

    /// The metadata form written under [`BULK_KEY`].
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("count".into(), Value::from(self.count));
        map.insert(
            "entity_ids".into(),
            Value::Array(self.entity_ids.iter().cloned().map(Value::String).collect()),
        );
        if self.ids_truncated() {
            map.insert("entity_ids_truncated".into(), Value::Bool(true));
        }
        if let Some(filter) = &self.filter {
            map.insert("filter".into(), Value::String(filter.clone()));
        }
        if let Some(reason) = &self.reason {
            map.insert("reason".into(), Value::String(reason.clone()));
        }
        Value::Object(map)
    }

    /// Reads the metadata form: an object with a non-negative integer `count` and an array
    /// `entity_ids` of strings; anything else is not a bulk change.
    fn from_value(value: &Value) -> Option<BulkChange> {
        let map = value.as_object()?;
        let count = map.get("count")?.as_u64()?;
        let entity_ids = map
            .get("entity_ids")?
            .as_array()?
            .iter()
            .map(|id| id.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(BulkChange {
            count,
            entity_ids,
            filter: text("filter"),
            reason: text("reason"),
            truncated: map.get("entity_ids_truncated") == Some(&Value::Bool(true)),
        })
    }

    /// Cuts this change to `limits`: ids to the id bound (an id cut short would name another
    /// object, so one longer than the bound is left out and counted as not kept), at most
    /// `limits.bulk_ids` of them, each once; the filter and reason to the details bound.
    fn bound(&mut self, limits: &Limits) {
        let mut seen = std::collections::HashSet::with_capacity(self.entity_ids.len());
        let before = self.entity_ids.len();
        self.entity_ids
            .retain(|id| id.len() <= limits.id && seen.insert(id.clone()));
        if self.entity_ids.len() < before.min(limits.bulk_ids) {
            self.truncated = true;
        }
        if self.entity_ids.len() > limits.bulk_ids {
            self.entity_ids.truncate(limits.bulk_ids);
            self.truncated = true;
        }
        self.count = self.count.max(self.entity_ids.len() as u64);
        for text in [&mut self.filter, &mut self.reason].into_iter().flatten() {
            truncate(text, limits.details);
        }
    }
}

/// Takes a bulk change out of `metadata` for bounding on its own (its ids may need more room
/// than the rest of the metadata is given); `None` when there is none, or the key holds
/// something else, which then stays as ordinary metadata.
pub(crate) fn take(metadata: &mut Map<String, Value>, limits: &Limits) -> Option<Value> {
    let mut bulk = BulkChange::from_value(metadata.get(BULK_KEY)?)?;
    metadata.remove(BULK_KEY);
    bulk.bound(limits);
    Some(bulk.to_value())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::Action;
    use serde_json::json;

    fn built(bulk: BulkChange) -> AuditEntry {
        AuditEntry::builder(Action::Deactivate)
            .entity_type("ConnectionProfile")
            .bulk(bulk)
            .build()
    }

    #[test]
    fn the_metadata_form_reads_back() {
        let entry = built(
            BulkChange::of(["a", "b"])
                .filter("status=active")
                .reason("sunset"),
        );
        assert_eq!(
            entry.metadata[BULK_KEY],
            json!({"count": 2, "entity_ids": ["a", "b"], "filter": "status=active", "reason": "sunset"})
        );
        let read = BulkChange::read(&entry).unwrap();
        assert_eq!(read.changed(), 2);
        assert_eq!(read.entity_ids(), ["a", "b"]);
        assert_eq!(read.filter_text(), Some("status=active"));
        assert_eq!(read.reason_text(), Some("sunset"));
        assert!(!read.ids_truncated());
        assert!(BulkChange::names(&entry, "b"));
        assert!(!BulkChange::names(&entry, "c"));
    }

    #[test]
    fn ids_are_bounded_in_number_and_length_and_kept_once() {
        let limits = Limits::default();
        let many: Vec<String> = (0..limits.bulk_ids + 50)
            .map(|i| format!("id-{i}"))
            .collect();
        let entry = built(BulkChange::of(many.clone()));
        let read = BulkChange::read(&entry).unwrap();
        assert_eq!(read.entity_ids().len(), limits.bulk_ids);
        assert_eq!(read.changed(), many.len() as u64);
        assert!(read.ids_truncated());
        assert_eq!(
            entry.metadata[BULK_KEY]["entity_ids_truncated"],
            json!(true)
        );
        // The ids kept more than the rest of the metadata may hold; the entry keeps them all.
        assert!(entry.metadata[BULK_KEY].to_string().len() > limits.metadata);
        assert!(!entry.metadata.contains_key("truncated"));

        let long = "x".repeat(limits.id + 1);
        let entry = built(BulkChange::of(["a".to_owned(), long, "a".to_owned()]));
        let read = BulkChange::read(&entry).unwrap();
        assert_eq!(read.entity_ids(), ["a"]);
        assert!(read.ids_truncated());
        assert_eq!(read.changed(), 3);
    }

    #[test]
    fn a_filter_alone_names_no_ids() {
        let entry = built(BulkChange::matching("team=ops", 40).reason("offboarding"));
        let read = BulkChange::read(&entry).unwrap();
        assert_eq!(read.changed(), 40);
        assert!(read.entity_ids().is_empty());
        assert!(read.ids_truncated());
        assert_eq!(BulkChange::ids_of(&entry).count(), 0);
    }

    #[test]
    fn other_values_under_the_key_stay_ordinary_metadata() {
        let entry = AuditEntry::builder(Action::Update)
            .metadata(BULK_KEY, json!("yes"))
            .build();
        assert_eq!(entry.metadata[BULK_KEY], json!("yes"));
        assert!(BulkChange::read(&entry).is_none());
        assert_eq!(BulkChange::ids_of(&entry).count(), 0);
        let entry = AuditEntry::builder(Action::Update)
            .metadata(BULK_KEY, json!({"count": 1, "entity_ids": [1]}))
            .build();
        assert!(BulkChange::read(&entry).is_none());
    }
}
