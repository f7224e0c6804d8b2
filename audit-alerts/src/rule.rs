//! [`Rule`]: which entries raise an alert, and [`Threshold`]: how many of them, within which
//! window, make one.

use std::fmt;
use std::time::Duration;

use audit_core::{ActorKind, AuditEntry, Outcome};
use heck::ToUpperCamelCase;
use serde::{Deserialize, Serialize};

/// Which entries an alert is about, and when it fires.
///
/// A rule matches an entry on any subset of action, entity type, outcome, actor id and actor
/// kind. Values of one field combine with OR, fields with AND, and a field left out matches
/// anything, as the admin API's filters do; values are compared as it compares them: actions
/// by name in any case (`revoke` is `Revoke`), entity types in any case or separator style
/// (`api-key`, `api_key` and `APIKEY` are `ApiKey`), actor ids exactly.
///
/// Without a [`threshold`](Self::threshold) a rule fires once per matching entry; with one, once
/// when enough matching entries of one key fall within the window.
///
/// ```
/// use std::time::Duration;
/// use audit_alerts::{Per, Rule, Threshold};
/// use audit_core::{Action, AuditEntry};
///
/// let revoked = Rule::new("api-key-revoked").action(Action::Revoke).entity_type("api-key");
/// let entry = AuditEntry::builder(Action::Revoke).entity("ApiKey", "k-7").build();
/// assert!(revoked.matches(&entry));
///
/// let guessing = Rule::new("failed-logins-per-ip")
///     .action("loginfailed")
///     .threshold(Threshold::new(5, Duration::from_secs(600)).per(Per::Ip));
/// assert!(!guessing.matches(&entry));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) reason: Option<String>,
    actions: Vec<String>,
    /// Each entity type as given and in UpperCamelCase, the admin API's two spellings.
    entity_types: Vec<(String, String)>,
    outcomes: Vec<Outcome>,
    actor_ids: Vec<String>,
    actor_kinds: Vec<ActorKind>,
    pub(crate) threshold: Option<Threshold>,
}

impl Rule {
    /// A rule named `name` (it names the alerts it raises) that matches every entry until
    /// narrowed.
    pub fn new(name: impl Into<String>) -> Self {
        Rule {
            name: name.into(),
            reason: None,
            actions: Vec::new(),
            entity_types: Vec::new(),
            outcomes: Vec::new(),
            actor_ids: Vec::new(),
            actor_kinds: Vec::new(),
            threshold: None,
        }
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the alert says happened, for people (`"an API key was revoked"`); by default a
    /// sentence made from the entry or the threshold.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Matches entries of this action, by name in any case: an [`Action`](audit_core::Action)
    /// or its text. Repeat for several.
    pub fn action(mut self, action: impl fmt::Display) -> Self {
        self.actions.push(action.to_string());
        self
    }

    /// Matches entries of this entity type, in any case or separator style. Repeat for several.
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> Self {
        let given = entity_type.into();
        let camel = given.to_upper_camel_case();
        self.entity_types.push((given, camel));
        self
    }

    /// Matches entries of this outcome. Repeat for several.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcomes.push(outcome);
        self
    }

    /// Matches entries of the actor with this id (compared exactly). Repeat for several.
    pub fn actor(mut self, actor_id: impl Into<String>) -> Self {
        self.actor_ids.push(actor_id.into());
        self
    }

    /// Matches entries of this kind of actor. Repeat for several.
    pub fn actor_kind(mut self, kind: ActorKind) -> Self {
        self.actor_kinds.push(kind);
        self
    }

    /// Fires only when `threshold` is crossed, instead of once per matching entry.
    pub fn threshold(mut self, threshold: Threshold) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Whether `entry` is one this rule counts (or, without a threshold, alerts on).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let action = entry.action.as_str();
        (self.actions.is_empty() || self.actions.iter().any(|a| a.eq_ignore_ascii_case(action)))
            && (self.entity_types.is_empty()
                || entry.entity_type.as_deref().is_some_and(|t| {
                    self.entity_types.iter().any(|(given, camel)| {
                        t.eq_ignore_ascii_case(given) || t.eq_ignore_ascii_case(camel)
                    })
                }))
            && (self.outcomes.is_empty() || self.outcomes.contains(&entry.outcome))
            && (self.actor_ids.is_empty()
                || entry
                    .actor_id
                    .as_ref()
                    .is_some_and(|id| self.actor_ids.contains(id)))
            && (self.actor_kinds.is_empty() || self.actor_kinds.contains(&entry.actor_kind))
    }
}

/// How many matching entries of one key, within how long, fire an alert.
///
/// The window is measured on the entries' own times (`occurred_at`), not on the clock of the
/// process evaluating them, so a late or replayed batch is judged by when things happened.
/// `count` entries of one key fall within the window when the newest is less than `window`
/// after the oldest. Once fired, a key does not fire again until `window` has passed since the
/// entry that fired it.
///
/// ```
/// use std::time::Duration;
/// use audit_alerts::{Per, Threshold};
///
/// let five_in_ten_minutes = Threshold::new(5, Duration::from_secs(600)).per(Per::Actor);
/// assert_eq!(five_in_ten_minutes.count(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Threshold {
    count: usize,
    window: Duration,
    per: Per,
}

impl Threshold {
    /// `count` matching entries within `window`, over all entries until [`per`](Self::per)
    /// splits them by key. Both must be more than zero (checked when the alerting sink is
    /// built).
    pub fn new(count: usize, window: Duration) -> Self {
        Threshold {
            count,
            window,
            per: Per::All,
        }
    }

    /// Counts the entries of each key apart.
    pub fn per(mut self, per: Per) -> Self {
        self.per = per;
        self
    }

    /// How many entries fire the alert.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Within how long.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// What the entries are counted by.
    pub fn by(&self) -> Per {
        self.per
    }
}

/// What a [`Threshold`] counts entries by. An entry without a value for the key (a failed login
/// with no client address, counted per IP) is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Per {
    /// All matching entries together.
    All,
    /// The account acting: the actor's id, or its name when it has none (the e-mail address a
    /// failed login attempted). An id and a name that read the same are different keys.
    Actor,
    /// The client's address.
    Ip,
    /// The tenant.
    Tenant,
}

impl Per {
    /// The text form: `all`, `actor`, `ip` or `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Per::All => "all",
            Per::Actor => "actor",
            Per::Ip => "ip",
            Per::Tenant => "tenant",
        }
    }

    /// `entry`'s key, if it has one.
    pub(crate) fn key(self, entry: &AuditEntry) -> Option<Key> {
        match self {
            Per::All => Some(Key::new("")),
            Per::Actor => match (&entry.actor_id, &entry.actor_name) {
                (Some(id), _) => Some(Key::tagged('i', id)),
                (None, Some(name)) => Some(Key::tagged('n', name)),
                (None, None) => None,
            },
            Per::Ip => entry.ip.map(|ip| Key::new(&ip.to_string())),
            Per::Tenant => entry.tenant_id.as_deref().map(Key::new),
        }
    }
}

impl fmt::Display for Per {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key's value: what the alert shows, and what it is tracked by (an actor id and an actor
/// name that read the same stay apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) tracked: String,
    pub(crate) shown: String,
}

impl Key {
    fn new(value: &str) -> Key {
        Key {
            tracked: value.to_owned(),
            shown: value.to_owned(),
        }
    }

    fn tagged(tag: char, value: &str) -> Key {
        Key {
            tracked: format!("{tag}:{value}"),
            shown: value.to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use audit_core::{Action, Actor};

    #[test]
    fn fields_combine_with_and_values_with_or() {
        let entry = AuditEntry::builder(Action::Revoke)
            .actor(Actor::user("u1", "ann@example.com"))
            .entity("ApiKey", "k1")
            .outcome(Outcome::Success)
            .build();
        assert!(Rule::new("any").matches(&entry));
        assert!(Rule::new("r").action("REVOKE").matches(&entry));
        assert!(
            Rule::new("r")
                .action(Action::Delete)
                .action(Action::Revoke)
                .matches(&entry)
        );
        assert!(!Rule::new("r").action(Action::Delete).matches(&entry));
        for spelling in ["ApiKey", "apikey", "api-key", "api_key", "API_KEY"] {
            assert!(
                Rule::new("r").entity_type(spelling).matches(&entry),
                "{spelling}"
            );
        }
        assert!(!Rule::new("r").entity_type("Tenant").matches(&entry));
        assert!(
            Rule::new("r")
                .action(Action::Revoke)
                .entity_type("ApiKey")
                .outcome(Outcome::Success)
                .actor("u1")
                .actor_kind(ActorKind::User)
                .matches(&entry)
        );
        assert!(!Rule::new("r").actor("U1").matches(&entry));
        assert!(!Rule::new("r").outcome(Outcome::Denied).matches(&entry));
        assert!(
            !Rule::new("r")
                .action(Action::Revoke)
                .entity_type("Tenant")
                .matches(&entry)
        );
        assert!(!Rule::new("r").actor_kind(ActorKind::System).matches(&entry));
    }

    #[test]
    fn an_actor_is_its_id_or_else_its_name_and_the_two_never_meet() {
        let by_id = AuditEntry::builder(Action::LoginFailed)
            .actor(Actor::user("x", "someone"))
            .build();
        let by_name = AuditEntry::builder(Action::LoginFailed)
            .actor(Actor::anonymous_named("x"))
            .build();
        let nobody = AuditEntry::builder(Action::LoginFailed).build();
        let id = Per::Actor.key(&by_id).unwrap();
        let name = Per::Actor.key(&by_name).unwrap();
        assert_eq!((id.shown.as_str(), name.shown.as_str()), ("x", "x"));
        assert_ne!(id, name);
        assert_eq!(Per::Actor.key(&nobody), None);
        assert_eq!(Per::Ip.key(&nobody), None);
        assert_eq!(Per::Tenant.key(&nobody), None);
        assert!(Per::All.key(&nobody).is_some());
    }
}
