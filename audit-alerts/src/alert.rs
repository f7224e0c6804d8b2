//! [`Alert`]: what a notifier receives, and what the webhook sends as its JSON body.

use audit_core::AuditEntry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rule::Per;

/// A rule that fired, with the entries that fired it.
///
/// Its JSON (serde) form is the webhook's body; each entry is in the entry's own serialised
/// form, as the admin API and the exports show it:
///
/// ```json
/// {
///   "id": "0196…",
///   "raised_at": "2026-03-01T10:00:00.000000Z",
///   "rule": "failed-logins-per-account",
///   "reason": "5 LoginFailed entries of actor ann@example.com within 600 s",
///   "threshold": {"count": 5, "window_seconds": 600, "per": "actor", "key": "ann@example.com"},
///   "entries": [{"id": "…", "action": "LoginFailed", …}, …]
/// }
/// ```
///
/// `threshold` is `null` for a rule that fires per entry, whose `entries` hold that one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Alert {
    /// A fresh UUIDv7: a receiver that gets the same alert twice (a retried delivery whose
    /// answer was lost) can tell.
    pub id: Uuid,
    /// When the rule fired, by the evaluating process's clock.
    #[serde(with = "micros")]
    pub raised_at: DateTime<Utc>,
    /// The rule's name.
    pub rule: String,
    /// What happened, for people: the rule's reason, or a sentence made from the entry or the
    /// threshold.
    pub reason: String,
    /// The threshold crossed, for a rule with one.
    pub threshold: Option<Crossed>,
    /// The entries that fired the rule, oldest first.
    pub entries: Vec<AuditEntry>,
}

/// The threshold an [`Alert`] crossed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Crossed {
    /// How many entries fired it.
    pub count: usize,
    /// Within how many seconds.
    pub window_seconds: u64,
    /// What the entries were counted by.
    pub per: Per,
    /// The key's value: the actor, the address or the tenant (empty for [`Per::All`]).
    pub key: String,
}

impl Alert {
    pub(crate) fn new(
        rule: String,
        reason: String,
        threshold: Option<Crossed>,
        entries: Vec<AuditEntry>,
    ) -> Alert {
        Alert {
            id: Uuid::now_v7(),
            raised_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
            rule,
            reason,
            threshold,
            entries,
        }
    }
}

/// Times written like the entries' own: RFC 3339 with six fractional digits.
mod micros {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}
