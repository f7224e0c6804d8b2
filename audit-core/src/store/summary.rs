//! Grouped questions to a store: how many entries per UTC day and per action, actor or entity
//! type ([`Summary`]), which actors were seen ([`ActorSeen`]), and which values a viewer can
//! offer in its pickers ([`Facets`]).
//!
//! Each answer is counted by the store's own query (`GROUP BY` in SQL), never by reading the
//! entries one by one, and each is bounded: a summary has one count per day and key that
//! occurs, the lists of actors and facet values at most the limit asked for. The reference
//! semantics are the `tally` functions here, over the entries that [`AuditQuery::matches`];
//! every store answers what they answer (the conformance suite compares them).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuditQuery, MAX_TEXT_CHARS, StoreError};
use crate::action::Action;
use crate::entry::{ActorKind, AuditEntry};
use crate::parse::ParseError;

/// The most actors [`AuditStore::actors`](super::AuditStore::actors) lists at once.
pub const MAX_ACTORS: u32 = 100;
/// How many actors an actor list shows when the caller does not say.
pub const DEFAULT_ACTORS: u32 = 20;
/// The most values each list of [`Facets`] holds.
pub const MAX_FACET_VALUES: u32 = 200;

/// What a [`Summary`] counts entries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryBy {
    /// The action's text form (the default).
    #[default]
    Action,
    /// The actor's id.
    Actor,
    /// The entity type.
    EntityType,
}

impl SummaryBy {
    /// Every key a summary can count by, in the order the admin API lists them.
    pub const ALL: [SummaryBy; 3] = [SummaryBy::Action, SummaryBy::Actor, SummaryBy::EntityType];

    /// The text form: `action`, `actor` or `entity_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryBy::Action => "action",
            SummaryBy::Actor => "actor",
            SummaryBy::EntityType => "entity_type",
        }
    }

    /// The key of `entry`: its action's text form, its actor id or its entity type (`None`
    /// for an entry without an actor id or an entity type).
    pub fn key_of(self, entry: &AuditEntry) -> Option<String> {
        match self {
            SummaryBy::Action => Some(entry.action.as_str().to_owned()),
            SummaryBy::Actor => entry.actor_id.clone(),
            SummaryBy::EntityType => entry.entity_type.clone(),
        }
    }
}

impl std::fmt::Display for SummaryBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SummaryBy {
    type Err = ParseError;

    /// Reads `action`, `actor` or `entity_type` (any case); the error, for the parameter
    /// `by`, lists them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SummaryBy::ALL
            .into_iter()
            .find(|by| by.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseError::new("by", s, "expected one of: action, actor, entity_type"))
    }
}

/// How many entries of one UTC day have one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DayCount {
    /// The day, in UTC.
    pub day: NaiveDate,
    /// The key (see [`SummaryBy::key_of`]); `None` for entries without one.
    pub key: Option<String>,
    /// How many entries.
    pub count: u64,
}

/// Entries counted per UTC day and per key: the answer of
/// [`AuditStore::summary`](super::AuditStore::summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// What the entries were counted by.
    pub by: SummaryBy,
    /// One count per day and key that occur, by day (ascending), then key (`None` first,
    /// then by the key's text, bytewise).
    pub counts: Vec<DayCount>,
}

impl Summary {
    /// A summary of these counts, put in the order [`counts`](Self::counts) documents, with
    /// counts of the same day and key added together and zero counts left out. Stores build
    /// their answer with it, whatever order their query returned rows in.
    pub fn new(by: SummaryBy, counts: impl IntoIterator<Item = DayCount>) -> Self {
        let mut merged: BTreeMap<(NaiveDate, Option<String>), u64> = BTreeMap::new();
        for DayCount { day, key, count } in counts {
            *merged.entry((day, key)).or_default() += count;
        }
        Summary {
            by,
            counts: merged
                .into_iter()
                .filter(|(_, count)| *count > 0)
                .map(|((day, key), count)| DayCount { day, key, count })
                .collect(),
        }
    }

    /// The reference semantics: `entries` counted by `by` per UTC day of their `occurred_at`.
    /// The caller selects the entries (with [`AuditQuery::matches`]).
    pub fn tally<'a>(by: SummaryBy, entries: impl IntoIterator<Item = &'a AuditEntry>) -> Self {
        Summary::new(
            by,
            entries.into_iter().map(|entry| DayCount {
                day: entry.occurred_at.date_naive(),
                key: by.key_of(entry),
                count: 1,
            }),
        )
    }

    /// The total of each key over every day, largest first (ties by key, as in
    /// [`counts`](Self::counts)).
    pub fn totals(&self) -> Vec<(Option<String>, u64)> {
        let mut totals: BTreeMap<Option<&str>, u64> = BTreeMap::new();
        for count in &self.counts {
            *totals.entry(count.key.as_deref()).or_default() += count.count;
        }
        let mut totals: Vec<(Option<String>, u64)> = totals
            .into_iter()
            .map(|(key, count)| (key.map(str::to_owned), count))
            .collect();
        // Stable: equal totals keep the keys' order.
        totals.sort_by_key(|(_, count)| Reverse(*count));
        totals
    }

    /// How many entries were counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|count| count.count).sum()
    }
}

/// One actor seen in a scope: an item of
/// [`AuditStore::actors`](super::AuditStore::actors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorSeen {
    /// The actor's id.
    pub actor_id: String,
    /// The actor name of the actor's latest entry (`None` when that entry has none).
    pub actor_name: Option<String>,
    /// The actor kind of the actor's latest entry.
    pub actor_kind: ActorKind,
    /// How many entries the actor has.
    pub count: u64,
    /// When the actor's latest entry occurred.
    pub last_seen: DateTime<Utc>,
}

impl ActorSeen {
    /// The reference semantics of [`AuditStore::actors`](super::AuditStore::actors): the
    /// actors of `entries` (those with an actor id) whose id or name contains `text`
    /// (case-insensitive, literally; see [`actor_text_matches`]), each with the name and kind
    /// of its latest entry (by `(occurred_at, id)`), most recently seen first (ties by
    /// id), at most `limit`. The caller selects the entries (with [`AuditQuery::matches`]).
    pub fn tally<'a>(
        entries: impl IntoIterator<Item = &'a AuditEntry>,
        text: Option<&str>,
        limit: u32,
    ) -> Vec<ActorSeen> {
        let needle = text
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase);
        let mut actors: HashMap<&str, (ActorSeen, Uuid)> = HashMap::new();
        for entry in entries {
            let Some(actor_id) = entry.actor_id.as_deref() else {
                continue;
            };
            if let Some(needle) = &needle
                && !actor_text_matches(entry, needle)
            {
                continue;
            }
            let latest = (entry.occurred_at, entry.id);
            actors
                .entry(actor_id)
                .and_modify(|(seen, id)| {
                    seen.count += 1;
                    if latest > (seen.last_seen, *id) {
                        seen.actor_name.clone_from(&entry.actor_name);
                        seen.actor_kind = entry.actor_kind;
                        seen.last_seen = entry.occurred_at;
                        *id = entry.id;
                    }
                })
                .or_insert_with(|| {
                    (
                        ActorSeen {
                            actor_id: actor_id.to_owned(),
                            actor_name: entry.actor_name.clone(),
                            actor_kind: entry.actor_kind,
                            count: 1,
                            last_seen: entry.occurred_at,
                        },
                        entry.id,
                    )
                });
        }
        let mut actors: Vec<ActorSeen> = actors.into_values().map(|(seen, _)| seen).collect();
        sort_actors(&mut actors);
        actors.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        actors
    }
}

/// Puts actors in the order an actor list has: most recently seen first, ties by id.
pub fn sort_actors(actors: &mut [ActorSeen]) {
    actors.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then_with(|| a.actor_id.cmp(&b.actor_id))
    });
}

/// Whether `entry`'s actor id or actor name contains `lowered` (already lower-cased) as a
/// literal substring, ignoring case.
pub fn actor_text_matches(entry: &AuditEntry, lowered: &str) -> bool {
    [&entry.actor_id, &entry.actor_name]
        .into_iter()
        .flatten()
        .any(|field| field.to_lowercase().contains(lowered))
}

/// An API key seen in a scope, as [`Facets`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ApiKeyFacet {
    /// The key's id.
    pub id: String,
    /// The API key name of the key's latest entry (by `(occurred_at, id)`), as for an actor;
    /// `None` when that entry has none.
    pub name: Option<String>,
}

/// What a viewer can offer in its pickers: the values present in a scope, each list sorted
/// (bytewise) and at most as long as the limit asked for. When a list has more values than
/// the limit, it keeps the values of the most entries (ties by value). The answer of
/// [`AuditStore::facets`](super::AuditStore::facets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    /// Entity types.
    pub entity_types: Vec<String>,
    /// Actions.
    pub actions: Vec<Action>,
    /// Team ids.
    pub teams: Vec<String>,
    /// API keys, by id.
    pub api_keys: Vec<ApiKeyFacet>,
}

impl Facets {
    /// The reference semantics of [`AuditStore::facets`](super::AuditStore::facets) over the
    /// entries the caller selected (with [`AuditQuery::matches`]).
    pub fn tally<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>, limit: u32) -> Self {
        let mut entity_types: HashMap<&str, u64> = HashMap::new();
        let mut actions: HashMap<&str, u64> = HashMap::new();
        let mut teams: HashMap<&str, u64> = HashMap::new();
        // Per key: its count, and the name and `(occurred_at, id)` of its latest entry.
        type Latest<'e> = (u64, Option<&'e str>, (DateTime<Utc>, Uuid));
        let mut keys: HashMap<&str, Latest<'_>> = HashMap::new();
        for entry in entries {
            if let Some(t) = entry.entity_type.as_deref() {
                *entity_types.entry(t).or_default() += 1;
            }
            *actions.entry(entry.action.as_str()).or_default() += 1;
            if let Some(team) = entry.team_id.as_deref() {
                *teams.entry(team).or_default() += 1;
            }
            if let Some(id) = entry.api_key_id.as_deref() {
                let at = (entry.occurred_at, entry.id);
                let (count, name, latest) =
                    keys.entry(id)
                        .or_insert((0, entry.api_key_name.as_deref(), at));
                *count += 1;
                if at > *latest {
                    *name = entry.api_key_name.as_deref();
                    *latest = at;
                }
            }
        }
        let owned = |counts: HashMap<&str, u64>| -> Vec<(String, u64)> {
            counts
                .into_iter()
                .map(|(value, count)| (value.to_owned(), count))
                .collect()
        };
        let names: HashMap<&str, Option<&str>> =
            keys.iter().map(|(id, (_, name, _))| (*id, *name)).collect();
        let key_counts: Vec<(String, u64)> = keys
            .iter()
            .map(|(id, (count, _, _))| ((*id).to_owned(), *count))
            .collect();
        Facets {
            entity_types: most_frequent(owned(entity_types), limit),
            actions: most_frequent(owned(actions), limit)
                .into_iter()
                .map(|a| Action::from_str(&a).unwrap_or(Action::Custom(a)))
                .collect(),
            teams: most_frequent(owned(teams), limit),
            api_keys: most_frequent(key_counts, limit)
                .into_iter()
                .map(|id| ApiKeyFacet {
                    name: names.get(id.as_str()).copied().flatten().map(str::to_owned),
                    id,
                })
                .collect(),
        }
    }
}

/// Of `(value, count)` pairs, the values of the `limit` largest counts (ties by value), sorted
/// by value: how every list of [`Facets`] is bounded. Stores that count in their query use it
/// on the rows they read.
pub fn most_frequent(mut counts: Vec<(String, u64)>, limit: u32) -> Vec<String> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut values: Vec<String> = counts.into_iter().map(|(value, _)| value).collect();
    values.sort();
    values
}

/// Checks an actor list's text and limit: at most [`MAX_TEXT_CHARS`] characters and no
/// control characters (parameter `q`), a limit of 1 to [`MAX_ACTORS`] (parameter `limit`);
/// and the query itself ([`AuditQuery::validate`]).
pub fn validate_actors(
    query: &AuditQuery,
    text: Option<&str>,
    limit: u32,
) -> Result<(), StoreError> {
    query.validate()?;
    if let Some(text) = text.map(str::trim) {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(StoreError::invalid(
                "q",
                format!("at most {MAX_TEXT_CHARS} characters, got {chars}"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "q",
                "must not contain control characters",
            ));
        }
    }
    check_limit(limit, MAX_ACTORS)
}

/// Checks a facet list's limit: 1 to [`MAX_FACET_VALUES`] (parameter `limit`); and the query
/// itself ([`AuditQuery::validate`]).
pub fn validate_facets(query: &AuditQuery, limit: u32) -> Result<(), StoreError> {
    query.validate()?;
    check_limit(limit, MAX_FACET_VALUES)
}

fn check_limit(limit: u32, max: u32) -> Result<(), StoreError> {
    if limit == 0 || limit > max {
        return Err(StoreError::invalid(
            "limit",
            format!("must be between 1 and {max}, got {limit}"),
        ));
    }
    Ok(())
}

/// `query` as a summary, actor list or facet list reads it: its cursor dropped (they count
/// every match; limit and order do not apply either).
pub fn uncursored(query: &AuditQuery) -> AuditQuery {
    let mut query = query.clone();
    query.cursor = None;
    query
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Actor, ApiKeyRef};
    use chrono::{Duration, TimeZone};

    fn at(day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, day, h, m, s).unwrap()
    }

    #[test]
    fn by_parses_in_any_case_and_lists_the_valid_values() {
        assert_eq!("ACTOR".parse::<SummaryBy>().unwrap(), SummaryBy::Actor);
        assert_eq!(
            "entity_type".parse::<SummaryBy>().unwrap(),
            SummaryBy::EntityType
        );
        let err = "team".parse::<SummaryBy>().unwrap_err();
        assert_eq!(err.what(), "by");
        assert!(err.to_string().contains("action, actor, entity_type"));
        assert_eq!(SummaryBy::default(), SummaryBy::Action);
    }

    #[test]
    fn a_tally_counts_per_utc_day_and_key_and_totals_largest_first() {
        let e = |action: Action, when: DateTime<Utc>| {
            AuditEntry::builder(action).occurred_at(when).build()
        };
        let last_micro = at(2, 0, 0, 0) - Duration::microseconds(1);
        let entries = [
            e(Action::Update, at(1, 0, 0, 0)),
            e(Action::Update, last_micro),
            e(Action::Create, at(2, 0, 0, 0)),
            e(Action::Update, at(2, 9, 0, 0)),
            e(Action::Delete, at(1, 12, 0, 0)),
        ];
        let summary = Summary::tally(SummaryBy::Action, &entries);
        let day = |d: u32| NaiveDate::from_ymd_opt(2030, 1, d).unwrap();
        let count = |d: u32, key: &str, count: u64| DayCount {
            day: day(d),
            key: Some(key.to_owned()),
            count,
        };
        assert_eq!(
            summary.counts,
            [
                count(1, "Delete", 1),
                count(1, "Update", 2),
                count(2, "Create", 1),
                count(2, "Update", 1),
            ]
        );
        assert_eq!(
            summary.totals(),
            [
                (Some("Update".to_owned()), 3),
                (Some("Create".to_owned()), 1),
                (Some("Delete".to_owned()), 1),
            ]
        );
        assert_eq!(summary.total(), 5);
        let by_actor = Summary::tally(SummaryBy::Actor, &entries);
        assert_eq!(by_actor.totals(), [(None, 5)]);
    }

    #[test]
    fn actors_take_their_latest_name_and_kind_and_filter_on_id_or_name() {
        let e = |id: &str, name: &str, when: DateTime<Utc>| {
            AuditEntry::builder(Action::Update)
                .actor(Actor::user(id, name))
                .occurred_at(when)
                .build()
        };
        let mut renamed = e("u-1", "Ada <ada@old.example>", at(3, 0, 0, 0));
        renamed.actor_kind = ActorKind::ApiKey;
        let entries = [
            e("u-1", "Ada <ada@acme.example>", at(1, 0, 0, 0)),
            renamed,
            e("u-2", "Bob", at(2, 0, 0, 0)),
            AuditEntry::builder(Action::Read)
                .occurred_at(at(4, 0, 0, 0))
                .build(),
        ];
        let all = ActorSeen::tally(&entries, None, 10);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].actor_id, "u-1");
        assert_eq!(all[0].actor_name.as_deref(), Some("Ada <ada@old.example>"));
        assert_eq!(all[0].actor_kind, ActorKind::ApiKey);
        assert_eq!(all[0].count, 2);
        assert_eq!(all[0].last_seen, at(3, 0, 0, 0));
        assert_eq!(all[1].actor_id, "u-2");
        assert_eq!(ActorSeen::tally(&entries, None, 1).len(), 1);
        let bob = ActorSeen::tally(&entries, Some(" BO "), 10);
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].actor_id, "u-2");
        let acme = ActorSeen::tally(&entries, Some("@acme"), 10);
        assert_eq!(acme.len(), 1);
        assert_eq!(acme[0].count, 1, "only the entries that match count");
        assert_eq!(ActorSeen::tally(&entries, Some("u-"), 10).len(), 2);
    }

    #[test]
    fn facets_keep_the_most_frequent_values_sorted() {
        let e = |t: &str, team: &str, key: (&str, &str)| {
            AuditEntry::builder(Action::Create)
                .entity(t, "1")
                .team(team)
                .api_key(ApiKeyRef::new(key.0, key.1))
                .occurred_at(at(1, 0, 0, 0))
                .build()
        };
        let mut renamed = e("B", "t1", ("k1", "new"));
        renamed.occurred_at = at(2, 0, 0, 0);
        let entries = [
            renamed,
            e("B", "t2", ("k1", "old")),
            e("A", "t1", ("k2", "two")),
            e("C", "t1", ("k2", "two")),
            e("C", "t3", ("k2", "two")),
            e("C", "t3", ("k3", "three")),
        ];
        let facets = Facets::tally(&entries, 200);
        assert_eq!(facets.entity_types, ["A", "B", "C"]);
        assert_eq!(facets.actions, [Action::Create]);
        assert_eq!(facets.teams, ["t1", "t2", "t3"]);
        assert_eq!(
            facets.api_keys,
            [
                ApiKeyFacet {
                    id: "k1".into(),
                    name: Some("new".into())
                },
                ApiKeyFacet {
                    id: "k2".into(),
                    name: Some("two".into())
                },
                ApiKeyFacet {
                    id: "k3".into(),
                    name: Some("three".into())
                },
            ]
        );
        let two = Facets::tally(&entries, 2);
        assert_eq!(two.entity_types, ["B", "C"]);
        assert_eq!(two.teams, ["t1", "t3"]);
        assert_eq!(two.api_keys.len(), 2);
        assert_eq!(two.api_keys[0].id, "k1");
        assert_eq!(two.api_keys[1].id, "k2");
    }

    #[test]
    fn limits_and_text_are_checked() {
        let q = AuditQuery::new(super::super::Scope::tenant("acme"));
        validate_actors(&q, None, 1).unwrap();
        validate_actors(&q, Some("ada"), MAX_ACTORS).unwrap();
        for (text, limit, parameter) in [
            (None, 0, "limit"),
            (None, MAX_ACTORS + 1, "limit"),
            (Some("a\u{0}b"), 5, "q"),
        ] {
            match validate_actors(&q, text, limit) {
                Err(StoreError::InvalidQuery { parameter: p, .. }) => assert_eq!(p, parameter),
                other => panic!("expected InvalidQuery, got {other:?}"),
            }
        }
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(validate_actors(&q, Some(&long), 5).is_err());
        validate_facets(&q, MAX_FACET_VALUES).unwrap();
        assert!(validate_facets(&q, MAX_FACET_VALUES + 1).is_err());
        assert!(validate_facets(&q, 0).is_err());
    }
}
