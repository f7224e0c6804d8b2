//! [`Evaluator`]: runs the rules over entries one at a time, keeping each threshold's counts in
//! bounded memory.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use audit_core::AuditEntry;
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::alert::{Alert, Crossed};
use crate::error::AlertError;
use crate::rule::{Key, Rule, Threshold};

/// The keys a threshold tracks at most, by default: past it the least recently seen is
/// forgotten.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// The entry ids remembered by default, so that an entry delivered twice (a writer's retried
/// batch) is evaluated once.
pub const DEFAULT_REMEMBERED_IDS: usize = 16_384;

/// Runs [`Rule`]s over entries and says which alerts they raise.
///
/// The alerting sink runs one in its background task; use one directly to evaluate entries
/// read from somewhere else (a JetStream consumer, an export). Memory is bounded: each
/// threshold tracks at most [`max_keys`](Self::max_keys) keys (the least recently seen is
/// forgotten first, and counted in [`evicted`](Self::evicted)), each with at most its count of
/// entries; and the ids of the last [`remember`](Self::remember) entries, so that an entry given
/// twice is evaluated once.
///
/// ```
/// use std::time::Duration;
/// use audit_alerts::{Evaluator, Per, Rule, Threshold};
/// use audit_core::{Action, Actor, AuditEntry};
///
/// let rule = Rule::new("failed-logins")
///     .action(Action::LoginFailed)
///     .threshold(Threshold::new(3, Duration::from_secs(60)).per(Per::Actor));
/// let mut evaluator = Evaluator::new(vec![rule])?;
/// let attempt = || AuditEntry::builder(Action::LoginFailed)
///     .actor(Actor::anonymous_named("ann@example.com"))
///     .build();
/// assert!(evaluator.evaluate(&attempt()).is_empty());
/// assert!(evaluator.evaluate(&attempt()).is_empty());
/// let alerts = evaluator.evaluate(&attempt());
/// assert_eq!(alerts.len(), 1);
/// assert_eq!(alerts[0].entries.len(), 3);
/// # Ok::<(), audit_alerts::AlertError>(())
/// ```
#[derive(Debug)]
pub struct Evaluator {
    rules: Vec<(Rule, Option<Counts>)>,
    max_keys: usize,
    seen: RecentIds,
    evicted: u64,
}

impl Evaluator {
    /// An evaluator of `rules`; refuses a threshold whose count or window is zero, or whose
    /// window does not fit a time span.
    pub fn new(rules: Vec<Rule>) -> Result<Self, AlertError> {
        let mut checked = Vec::with_capacity(rules.len());
        for rule in rules {
            let counts = match rule.threshold {
                Some(threshold) => Some(Counts::new(&rule, threshold)?),
                None => None,
            };
            checked.push((rule, counts));
        }
        Ok(Evaluator {
            rules: checked,
            max_keys: DEFAULT_MAX_KEYS,
            seen: RecentIds::new(DEFAULT_REMEMBERED_IDS),
            evicted: 0,
        })
    }

    /// Tracks at most `keys` keys per threshold (at least one); default [`DEFAULT_MAX_KEYS`].
    #[must_use]
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys.max(1);
        self
    }

    /// Remembers the last `ids` entry ids (zero: none); default [`DEFAULT_REMEMBERED_IDS`].
    #[must_use]
    pub fn remember(mut self, ids: usize) -> Self {
        self.seen = RecentIds::new(ids);
        self
    }

    /// How many keys thresholds have forgotten to stay within [`max_keys`](Self::max_keys).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The alerts `entry` raises: one for each rule without a threshold that it matches, and one
    /// for each threshold it completes. An entry whose id was evaluated recently raises none.
    pub fn evaluate(&mut self, entry: &AuditEntry) -> Vec<Alert> {
        if !self.seen.insert(entry.id) {
            return Vec::new();
        }
        let mut alerts = Vec::new();
        for (rule, counts) in &mut self.rules {
            if !rule.matches(entry) {
                continue;
            }
            match counts {
                None => alerts.push(Alert::new(
                    rule.name.clone(),
                    rule.reason.clone().unwrap_or_else(|| describe(entry)),
                    None,
                    vec![entry.clone()],
                )),
                Some(counts) => {
                    let (fired, evicted) = counts.add(entry, self.max_keys);
                    self.evicted += evicted;
                    if let Some((key, entries)) = fired {
                        let threshold = counts.threshold;
                        let reason = rule.reason.clone().unwrap_or_else(|| {
                            format!(
                                "{} {} entries of {} {} within {} s",
                                threshold.count(),
                                entries[0].action,
                                threshold.by(),
                                key,
                                threshold.window().as_secs()
                            )
                        });
                        let crossed = Crossed {
                            count: threshold.count(),
                            window_seconds: threshold.window().as_secs(),
                            per: threshold.by(),
                            key,
                        };
                        alerts.push(Alert::new(
                            rule.name.clone(),
                            reason,
                            Some(crossed),
                            entries,
                        ));
                    }
                }
            }
        }
        alerts
    }
}

/// `Revoke on ApiKey "CI deploy key" (k-7) by ann@example.com: success`.
fn describe(entry: &AuditEntry) -> String {
    let mut text = entry.action.to_string();
    if let Some(entity_type) = &entry.entity_type {
        text.push_str(" on ");
        text.push_str(entity_type);
    }
    match (&entry.entity_name, &entry.entity_id) {
        (Some(name), Some(id)) => text.push_str(&format!(" {name:?} ({id})")),
        (Some(name), None) => text.push_str(&format!(" {name:?}")),
        (None, Some(id)) => text.push_str(&format!(" {id}")),
        (None, None) => {}
    }
    if let Some(actor) = entry.actor_name.as_ref().or(entry.actor_id.as_ref()) {
        text.push_str(" by ");
        text.push_str(actor);
    }
    text.push_str(": ");
    text.push_str(entry.outcome.as_str());
    text
}

/// One threshold's counts, per key, least recently seen first out.
#[derive(Debug)]
struct Counts {
    threshold: Threshold,
    window: TimeDelta,
    keys: HashMap<String, KeyCounts>,
    /// Keys by when they were last seen (a number that only grows), for eviction.
    order: BTreeMap<u64, String>,
    next: u64,
}

#[derive(Debug)]
struct KeyCounts {
    seen: u64,
    shown: String,
    /// The newest matching entries, at most the threshold's count, oldest first.
    entries: VecDeque<AuditEntry>,
    /// No alert for this key for entries before this time.
    quiet_until: Option<DateTime<Utc>>,
}

impl Counts {
    fn new(rule: &Rule, threshold: Threshold) -> Result<Counts, AlertError> {
        let invalid = |why: &str| AlertError::InvalidRule {
            rule: rule.name.clone(),
            why: why.to_owned(),
        };
        if threshold.count() == 0 {
            return Err(invalid("a threshold's count must be at least 1"));
        }
        if threshold.window().is_zero() {
            return Err(invalid("a threshold's window must be longer than zero"));
        }
        let window = TimeDelta::from_std(threshold.window())
            .map_err(|_| invalid("a threshold's window is too long"))?;
        Ok(Counts {
            threshold,
            window,
            keys: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        })
    }

    /// Counts `entry`; returns the key and entries of an alert when it completes the
    /// threshold, and how many keys were forgotten to make room.
    fn add(
        &mut self,
        entry: &AuditEntry,
        max_keys: usize,
    ) -> (Option<(String, Vec<AuditEntry>)>, u64) {
        let Some(Key { tracked, shown }) = self.threshold.by().key(entry) else {
            return (None, 0);
        };
        let mut evicted = 0;
        let seen = self.next;
        self.next += 1;
        let counts = match self.keys.get_mut(&tracked) {
            Some(counts) => {
                self.order.remove(&counts.seen);
                counts
            }
            None => {
                while self.keys.len() >= max_keys {
                    let Some((_, oldest)) = self.order.pop_first() else {
                        break;
                    };
                    self.keys.remove(&oldest);
                    evicted += 1;
                }
                self.keys.entry(tracked.clone()).or_insert(KeyCounts {
                    seen,
                    shown,
                    entries: VecDeque::new(),
                    quiet_until: None,
                })
            }
        };
        counts.seen = seen;
        self.order.insert(seen, tracked);

        // Entries mostly come in time order; one that does not goes to its place.
        let at = counts
            .entries
            .iter()
            .rposition(|e| e.occurred_at <= entry.occurred_at)
            .map_or(0, |i| i + 1);
        counts.entries.insert(at, entry.clone());
        while counts.entries.len() > self.threshold.count() {
            counts.entries.pop_front();
        }
        let (Some(oldest), Some(newest)) = (counts.entries.front(), counts.entries.back()) else {
            return (None, evicted);
        };
        let newest = newest.occurred_at;
        let complete = counts.entries.len() == self.threshold.count()
            && newest - oldest.occurred_at < self.window
            && counts.quiet_until.is_none_or(|quiet| newest >= quiet);
        if !complete {
            return (None, evicted);
        }
        counts.quiet_until = Some(newest + self.window);
        let fired = counts.entries.iter().cloned().collect();
        (Some((counts.shown.clone(), fired)), evicted)
    }
}

/// The last ids seen, at most `cap`.
#[derive(Debug)]
struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> RecentIds {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Whether `id` is new; remembers it.
    fn insert(&mut self, id: Uuid) -> bool {
        if self.cap == 0 {
            return true;
        }
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rule::Per;
    use audit_core::{Action, Actor};

    fn failed(name: &str, minute: i64) -> AuditEntry {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        AuditEntry::builder(Action::LoginFailed)
            .actor(Actor::anonymous_named(name))
            .occurred_at(start + TimeDelta::minutes(minute))
            .build()
    }

    fn five_in_ten() -> Evaluator {
        Evaluator::new(vec![
            Rule::new("logins")
                .action(Action::LoginFailed)
                .threshold(Threshold::new(5, Duration::from_secs(600)).per(Per::Actor)),
        ])
        .unwrap()
    }

    #[test]
    fn a_fired_key_stays_quiet_for_a_window_then_fires_again() {
        let mut evaluator = five_in_ten();
        let fired: Vec<usize> = (0..20)
            .map(|minute| evaluator.evaluate(&failed("ann", minute)).len())
            .collect();
        // Minutes 0-4 fire at 4; quiet until 14; minutes 10-14 are five within ten: 14 fires.
        let at: Vec<usize> = (0..20).filter(|m| fired[*m] == 1).collect();
        assert_eq!(at, vec![4, 14]);
    }

    #[test]
    fn entries_out_of_order_are_counted_by_their_time() {
        let mut evaluator = five_in_ten();
        for minute in [9, 0, 3, 6] {
            assert!(evaluator.evaluate(&failed("ann", minute)).is_empty());
        }
        // 0, 3, 6, 9, 12: the oldest and newest are twelve minutes apart.
        assert!(evaluator.evaluate(&failed("ann", 12)).is_empty());
        // 3, 6, 7, 9, 12: nine minutes.
        let alerts = evaluator.evaluate(&failed("ann", 7));
        assert_eq!(alerts.len(), 1);
        let minutes: Vec<i64> = alerts[0]
            .entries
            .iter()
            .map(|e| (e.occurred_at - alerts[0].entries[0].occurred_at).num_minutes())
            .collect();
        assert_eq!(minutes, vec![0, 3, 4, 6, 9]);
    }

    #[test]
    fn keys_are_bounded_and_the_least_recently_seen_go_first() {
        let mut evaluator = five_in_ten().max_keys(2);
        for minute in 0..4 {
            evaluator.evaluate(&failed("ann", minute));
        }
        evaluator.evaluate(&failed("bob", 0));
        // A third key forgets ann, the least recently seen.
        evaluator.evaluate(&failed("cy", 0));
        assert_eq!(evaluator.evicted(), 1);
        assert!(evaluator.evaluate(&failed("ann", 5)).is_empty());
    }

    #[test]
    fn an_entry_given_twice_counts_once() {
        let mut evaluator =
            Evaluator::new(vec![Rule::new("every").action(Action::LoginFailed)]).unwrap();
        let entry = failed("ann", 0);
        assert_eq!(evaluator.evaluate(&entry).len(), 1);
        assert!(evaluator.evaluate(&entry).is_empty());
    }

    #[test]
    fn a_threshold_of_nothing_is_refused() {
        for threshold in [
            Threshold::new(0, Duration::from_secs(1)),
            Threshold::new(1, Duration::ZERO),
        ] {
            let err = Evaluator::new(vec![Rule::new("bad").threshold(threshold)]).unwrap_err();
            assert!(err.to_string().contains("bad"), "{err}");
        }
    }
}
