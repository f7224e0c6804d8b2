//! How long the audit log keeps each tenant's entries: a period per plan, a default for the
//! rest, and the schedule that purges what no plan keeps any more.
//!
//! | plan | kept | as in |
//! |---|---|---|
//! | `free` | 7 days | ShuffleSync Free |
//! | `professional` (`pro`) | 30 days | ShuffleSync Professional |
//! | `enterprise` | 90 days | ShuffleSync Enterprise |
//! | `custom-N` | N days, at most 365 | ShuffleSync's custom retention |
//! | `starter` | 365 days | Krosyn Starter and Pro |
//! | `business` | 3 years (1,095 days) | Krosyn Business |
//! | anything else | `AUDIT_RETENTION_DAYS` (default 365: the Make-style 12 months) | |

use std::time::Duration;

use audit_core::retention::{Period, RetentionPolicy};
use sea_orm::EntityTrait;

use crate::AppState;
use crate::model::tenant;

/// The period `plan` buys, or `None` for a plan with no period of its own (the default
/// applies).
pub fn plan_period(plan: &str) -> Option<Period> {
    let plan = plan.trim().to_ascii_lowercase();
    if let Some(days) = plan.strip_prefix("custom-") {
        return days
            .parse::<u32>()
            .ok()
            .filter(|days| *days >= 1)
            .map(|days| Period::Days(days.min(365)));
    }
    match plan.as_str() {
        "free" => Some(Period::Days(7)),
        "professional" | "pro" => Some(Period::Days(30)),
        "enterprise" => Some(Period::Days(90)),
        "starter" => Some(Period::Days(365)),
        "business" => Some(Period::Days(1_095)),
        _ => None,
    }
}

/// Sets `tenant`'s period in `policy` from its plan (or back to the default).
pub fn apply_plan(policy: &RetentionPolicy, tenant: &str, plan: &str) {
    match plan_period(plan) {
        Some(period) => policy.set_tenant(tenant, period),
        None => policy.clear_tenant(tenant),
    }
}

/// The default period from `AUDIT_RETENTION_DAYS` (days, or `forever`; default 365).
pub fn default_period_from_env() -> Result<Period, String> {
    match std::env::var("AUDIT_RETENTION_DAYS") {
        Ok(text) if !text.trim().is_empty() => text
            .parse()
            .map_err(|e| format!("AUDIT_RETENTION_DAYS: {e}")),
        _ => Ok(Period::Days(365)),
    }
}

/// Loads every tenant's plan into `state.retention`.
pub async fn load_plans(state: &AppState) -> Result<(), sea_orm::DbErr> {
    for tenant in tenant::Entity::find().all(&state.db).await? {
        apply_plan(&state.retention, &tenant.id, &tenant.plan);
    }
    Ok(())
}

/// How often the service purges: `AUDIT_RETENTION_EVERY` seconds (default 86,400: daily;
/// `0` turns the schedule off).
pub fn schedule_from_env() -> Result<Option<Duration>, String> {
    match std::env::var("AUDIT_RETENTION_EVERY") {
        Ok(text) if !text.trim().is_empty() => match text.trim().parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(seconds) => Ok(Some(Duration::from_secs(seconds))),
            Err(_) => Err(format!(
                "AUDIT_RETENTION_EVERY must be a number of seconds (0: never), not {text:?}"
            )),
        },
        _ => Ok(Some(Duration::from_secs(86_400))),
    }
}

/// Purges what `state.retention` no longer keeps, now and then every `every`, until the task
/// is aborted. Each round logs what it deleted; a failed round is logged and retried at the
/// next.
pub fn spawn_schedule(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match state
                .store
                .purge_expired(&state.retention, chrono::Utc::now(), false)
                .await
            {
                Ok(reports) => {
                    for report in reports {
                        if let Some(hold) = &report.held {
                            tracing::info!(tenant = ?report.tenant_id, reason = %hold.reason, "audit: purge suspended by a legal hold");
                        } else if report.deleted > 0 {
                            tracing::info!(tenant = ?report.tenant_id, deleted = report.deleted, before = %report.before, "audit: purged entries past their retention");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "audit: purging the log failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_map_to_the_products_periods() {
        assert_eq!(plan_period("free"), Some(Period::Days(7)));
        assert_eq!(plan_period("Professional"), Some(Period::Days(30)));
        assert_eq!(plan_period("enterprise"), Some(Period::Days(90)));
        assert_eq!(plan_period("starter"), Some(Period::Days(365)));
        assert_eq!(plan_period("business"), Some(Period::Days(1_095)));
        assert_eq!(plan_period("custom-180"), Some(Period::Days(180)));
        assert_eq!(plan_period("custom-5000"), Some(Period::Days(365)));
        assert_eq!(plan_period("custom-0"), None);
        assert_eq!(plan_period("gold"), None);
        let policy = RetentionPolicy::new(Period::Days(365));
        apply_plan(&policy, "acme", "free");
        assert_eq!(policy.period(Some("acme")), Period::Days(7));
        apply_plan(&policy, "acme", "gold");
        assert_eq!(policy.period(Some("acme")), Period::Days(365));
    }
}
