//! Retention: how long each tenant's entries are kept ([`RetentionPolicy`]), the legal hold
//! that suspends deletion ([`LegalHold`]), and what a purge is asked ([`PurgeRequest`]) and
//! answers ([`PurgeReport`]).
//!
//! A purge deletes a tenant's entries older than a moment, oldest first, in bounded batches,
//! each in a short transaction of its own. Before it deletes anything it records itself as an
//! [`Action::Purge`](crate::Action::Purge) entry in the tenant's own chain, whose metadata
//! names the last entry it deletes ([`PURGE_THROUGH_SEQ`], [`PURGE_THROUGH_HASH`]). The chain
//! then starts after that entry: a verifier begins at the recorded start and accepts it only
//! when a `Purge` entry in the chain vouches for deleting that far, so a prefix deleted around
//! the store is still a broken chain (see `docs/chain.md`).
//!
//! ```
//! use audit_core::retention::{Period, RetentionPolicy};
//!
//! // Kept a year unless the tenant's plan says otherwise.
//! let policy = RetentionPolicy::new(Period::Days(365));
//! policy.set_tenant("acme", Period::Days(90));
//! policy.set_tenant("initech", Period::Forever);
//! assert_eq!(policy.period(Some("acme")), Period::Days(90));
//! assert_eq!(policy.period(Some("globex")), Period::Days(365));
//! assert_eq!("30d".parse::<Period>().unwrap(), Period::Days(30));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::entry::{Actor, AuditEntry};

/// The metadata key of a `Purge` entry that holds the sequence number of the last entry the
/// purge deletes from the tenant's chain.
pub const PURGE_THROUGH_SEQ: &str = "purge_through_seq";
/// The metadata key of a `Purge` entry that holds that entry's hash, in hex.
pub const PURGE_THROUGH_HASH: &str = "purge_through_hash";
/// The metadata key of a `Purge` entry that holds the moment before which entries go.
pub const PURGE_BEFORE: &str = "purge_before";
/// The metadata key of a `Purge` entry that holds how many entries it deletes.
pub const PURGE_ENTRIES: &str = "purge_entries";

/// The longest period a policy accepts in days: 100 years.
pub const MAX_DAYS: u32 = 36_500;

/// Entries a purge deletes per transaction unless told otherwise.
pub const DEFAULT_PURGE_BATCH: u32 = 1_000;

/// How long entries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// This many days (1 to [`MAX_DAYS`]); older entries are purged.
    Days(u32),
    /// Never purged: the default.
    #[default]
    Forever,
}

impl Period {
    /// The number of days, or `None` for [`Period::Forever`].
    pub fn days(self) -> Option<u32> {
        match self {
            Period::Days(days) => Some(days),
            Period::Forever => None,
        }
    }

    /// The moment before which entries fall out of this period at `now`; `None` when
    /// nothing ever does.
    pub fn cutoff(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.days()
            .map(|days| now - Duration::days(i64::from(days)))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Days(1) => f.write_str("1 day"),
            Period::Days(days) => write!(f, "{days} days"),
            Period::Forever => f.write_str("forever"),
        }
    }
}

/// Why a text is not a [`Period`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a retention period: give days from 1 to 36500 (`90` or `90d`) or `forever`")]
pub struct PeriodError(String);

impl FromStr for Period {
    type Err = PeriodError;

    /// `90`, `90d` or `90 days`, or `forever`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("forever") {
            return Ok(Period::Forever);
        }
        let digits = trimmed
            .strip_suffix("days")
            .or_else(|| trimmed.strip_suffix('d'))
            .unwrap_or(trimmed)
            .trim();
        match digits.parse::<u32>() {
            Ok(days @ 1..=MAX_DAYS) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Period::Days(days))
            }
            _ => Err(PeriodError(text.chars().take(40).collect())),
        }
    }
}

/// How long each tenant's entries are kept: a default, and a period per tenant (from its
/// plan, say) that replaces it.
///
/// A cheap handle: clones share one policy, so the service can change a tenant's period when
/// its plan changes while the admin router and the purge schedule read it.
#[derive(Clone, Default)]
pub struct RetentionPolicy {
    inner: Arc<RwLock<PolicyState>>,
}

#[derive(Default)]
struct PolicyState {
    default: Period,
    tenants: HashMap<String, Period>,
}

impl fmt::Debug for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("RetentionPolicy")
            .field("default", &state.default)
            .field("tenants", &state.tenants.len())
            .finish()
    }
}

impl RetentionPolicy {
    /// A policy keeping every tenant's entries for `default` unless a tenant's own period
    /// is set.
    pub fn new(default: Period) -> Self {
        RetentionPolicy {
            inner: Arc::new(RwLock::new(PolicyState {
                default,
                tenants: HashMap::new(),
            })),
        }
    }

    /// Sets `tenant`'s period.
    pub fn set_tenant(&self, tenant: impl Into<String>, period: Period) {
        self.write().tenants.insert(tenant.into(), period);
    }

    /// Drops `tenant`'s own period: the default applies again.
    pub fn clear_tenant(&self, tenant: &str) {
        self.write().tenants.remove(tenant);
    }

    /// Changes the default period.
    pub fn set_default(&self, period: Period) {
        self.write().default = period;
    }

    /// The default period.
    pub fn default_period(&self) -> Period {
        self.read().default
    }

    /// The period of `tenant` (`None`: entries without a tenant, which keep the default).
    pub fn period(&self, tenant: Option<&str>) -> Period {
        let state = self.read();
        tenant
            .and_then(|tenant| state.tenants.get(tenant).copied())
            .unwrap_or(state.default)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PolicyState> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PolicyState> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A legal hold on a tenant's log: while it stands, nothing of the tenant is purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegalHold {
    /// The tenant held; `None` for the entries without a tenant.
    pub tenant_id: Option<String>,
    /// Why (a case or matter reference), up to [`MAX_HOLD_REASON`] characters.
    pub reason: String,
    /// Who placed it, if known.
    pub placed_by: Option<String>,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
}

/// The longest reason a legal hold keeps, in characters.
pub const MAX_HOLD_REASON: usize = 500;

impl LegalHold {
    /// A hold on `tenant` placed now for `reason` (cut to [`MAX_HOLD_REASON`] characters).
    pub fn new(tenant: Option<&str>, reason: &str) -> Self {
        LegalHold {
            tenant_id: tenant.map(str::to_owned),
            reason: reason.chars().take(MAX_HOLD_REASON).collect(),
            placed_by: None,
            placed_at: Utc::now(),
        }
    }

    /// Records who placed it.
    pub fn placed_by(mut self, who: impl Into<String>) -> Self {
        self.placed_by = Some(who.into());
        self
    }
}

/// What to purge: one tenant's entries older than a moment.
#[derive(Debug, Clone)]
pub struct PurgeRequest {
    /// The tenant; `None` for the entries without a tenant.
    pub tenant_id: Option<String>,
    /// Entries that occurred before this go.
    pub before: DateTime<Utc>,
    /// Count what would go, delete nothing, record nothing.
    pub dry_run: bool,
    /// The most entries deleted per transaction (1 to 10,000; default
    /// [`DEFAULT_PURGE_BATCH`]); a store may delete fewer to keep each transaction short.
    pub batch: u32,
    /// Who the `Purge` entry names as its actor (default: the system actor `retention`).
    pub actor: Actor,
    /// The period the purge applies, for the `Purge` entry's details.
    pub period: Option<Period>,
}

impl PurgeRequest {
    /// Purges `tenant`'s entries older than `before`.
    pub fn new(tenant: Option<&str>, before: DateTime<Utc>) -> Self {
        PurgeRequest {
            tenant_id: tenant.map(str::to_owned),
            before,
            dry_run: false,
            batch: DEFAULT_PURGE_BATCH,
            actor: Actor::system("retention"),
            period: None,
        }
    }

    /// Purges what `policy` says `tenant` no longer keeps at `now`; `None` when the tenant's
    /// entries are kept forever.
    pub fn by_policy(
        policy: &RetentionPolicy,
        tenant: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let period = policy.period(tenant);
        let before = period.cutoff(now)?;
        let mut request = PurgeRequest::new(tenant, before);
        request.period = Some(period);
        Some(request)
    }

    /// Only counts what would go.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Deletes `batch` entries per transaction (clamped to 1..=10,000).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch.clamp(1, 10_000);
        self
    }

    /// Names `actor` as the `Purge` entry's actor.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// The `Purge` entry that records this purge before it deletes anything: `entries` go,
    /// and in a store that keeps a chain, `through` is the number and hash of the last entry
    /// of the tenant's chain that goes.
    pub fn record(
        &self,
        entries: u64,
        through: Option<(u64, &crate::chain::ChainHash)>,
    ) -> AuditEntry {
        let kept = self
            .period
            .map(|period| format!(" (kept {period})"))
            .unwrap_or_default();
        let mut builder = AuditEntry::builder(crate::Action::Purge)
            .actor(self.actor.clone())
            .entity_type("AuditLog")
            .entity_name("Audit log")
            .details(format!(
                "purging {entries} audit entries older than {}{kept}",
                self.before
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .metadata(
                PURGE_BEFORE,
                self.before
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            )
            .metadata(PURGE_ENTRIES, entries);
        if let Some((seq, hash)) = through {
            builder = builder
                .metadata(PURGE_THROUGH_SEQ, seq)
                .metadata(PURGE_THROUGH_HASH, hash.to_hex());
        }
        if let Some(days) = self.period.and_then(Period::days) {
            builder = builder.metadata("retention_days", days);
        }
        if let Some(tenant) = &self.tenant_id {
            builder = builder.tenant(tenant.clone());
        }
        builder.build()
    }
}

/// What a purge did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// The tenant; `None` for the entries without a tenant.
    pub tenant_id: Option<String>,
    /// Entries that occurred before this went.
    pub before: DateTime<Utc>,
    /// Whether this was a dry run, which changed nothing.
    pub dry_run: bool,
    /// Entries older than `before` found to go (a dry run's answer). Entries of the chain
    /// go oldest first and only while every entry before them goes, so an old entry stored
    /// after a newer one waits for the next purge.
    pub matched: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// The legal hold that stopped the purge (before it began, or between two batches).
    pub held: Option<LegalHold>,
    /// The sequence number the tenant's chain now starts after (0: it starts at its first
    /// entry).
    pub chain_start: u64,
    /// The `Purge` entry recorded, when anything was deleted.
    pub entry_id: Option<Uuid>,
}

impl PurgeReport {
    /// The report of a purge that has not started.
    pub fn new(request: &PurgeRequest) -> Self {
        PurgeReport {
            tenant_id: request.tenant_id.clone(),
            before: request.before,
            dry_run: request.dry_run,
            matched: 0,
            deleted: 0,
            held: None,
            chain_start: 0,
            entry_id: None,
        }
    }

    /// This report, stopped by `hold`.
    pub fn held_by(mut self, hold: LegalHold) -> Self {
        self.held = Some(hold);
        self
    }
}

/// The sequence number a `Purge` entry vouches for deleting through, if `entry` is one.
pub fn purged_through(entry: &AuditEntry) -> Option<u64> {
    if entry.action != crate::Action::Purge {
        return None;
    }
    entry
        .metadata
        .get(PURGE_THROUGH_SEQ)
        .and_then(serde_json::Value::as_u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn periods_parse_from_days_or_forever_and_refuse_the_rest() {
        assert_eq!("7".parse::<Period>().unwrap(), Period::Days(7));
        assert_eq!(" 30d ".parse::<Period>().unwrap(), Period::Days(30));
        assert_eq!("365 days".parse::<Period>().unwrap(), Period::Days(365));
        assert_eq!("Forever".parse::<Period>().unwrap(), Period::Forever);
        for bad in [
            "0",
            "-1",
            "+5",
            "36501",
            "1.5",
            "d",
            "",
            "ninety",
            "9999999999",
        ] {
            let err = bad.parse::<Period>().unwrap_err();
            assert!(err.to_string().contains("not a retention period"), "{bad}");
        }
    }

    #[test]
    fn a_tenant_period_replaces_the_default_and_clones_share_it() {
        let policy = RetentionPolicy::new(Period::Days(365));
        let shared = policy.clone();
        policy.set_tenant("acme", Period::Days(7));
        assert_eq!(shared.period(Some("acme")), Period::Days(7));
        assert_eq!(shared.period(Some("globex")), Period::Days(365));
        assert_eq!(shared.period(None), Period::Days(365));
        policy.clear_tenant("acme");
        assert_eq!(shared.period(Some("acme")), Period::Days(365));
        assert_eq!(
            RetentionPolicy::default().period(Some("x")),
            Period::Forever
        );
    }

    #[test]
    fn a_policy_request_cuts_off_the_tenants_period_and_forever_purges_nothing() {
        let now = Utc::now();
        let policy = RetentionPolicy::new(Period::Forever);
        policy.set_tenant("acme", Period::Days(30));
        let request = PurgeRequest::by_policy(&policy, Some("acme"), now).unwrap();
        assert_eq!(request.before, now - Duration::days(30));
        assert!(PurgeRequest::by_policy(&policy, Some("globex"), now).is_none());
    }

    #[test]
    fn the_purge_entry_vouches_for_its_end_in_the_tenants_chain() {
        let request = PurgeRequest::new(Some("acme"), Utc::now());
        let entry = request.record(41, Some((41, &crate::chain::ChainHash([7; 32]))));
        assert_eq!(entry.action, crate::Action::Purge);
        assert_eq!(entry.tenant_id.as_deref(), Some("acme"));
        assert_eq!(purged_through(&entry), Some(41));
        assert_eq!(entry.metadata[PURGE_THROUGH_HASH], "07".repeat(32));
        let mut other = entry.clone();
        other.action = crate::Action::Delete;
        assert_eq!(purged_through(&other), None);
    }
}
