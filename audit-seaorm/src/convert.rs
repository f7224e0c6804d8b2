//! Between [`AuditEntry`] and a row of `audit_log`.
//!
//! In the flow request → layer → entry → sink → **store** → admin router, entries arrive
//! already bounded by `audit-core`'s `Limits`, but those limits are configurable and the
//! columns are not, so every text is cut again to its column's capacity here. NUL characters,
//! which PostgreSQL refuses in text and in JSON, are replaced with U+FFFD, so a hostile
//! `User-Agent` can never make an audit write fail.

use std::net::IpAddr;

use audit_core::{Action, ActorKind, AuditEntry, Outcome, StoreError, truncate};
use chrono::SubsecRound;
use sea_orm::ActiveValue::Set;
use serde_json::Value;

use crate::entity::{self, capacity};

/// A NUL-free text of at most `max` bytes.
fn clean(text: &str, max: u32) -> String {
    let mut text = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    };
    truncate(&mut text, max as usize);
    text
}

fn clean_opt(text: &Option<String>, max: u32) -> Option<String> {
    text.as_deref().map(|t| clean(t, max))
}

/// Replaces NUL in every string and key of a JSON value.
fn clean_json(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(k.replace('\0', "\u{FFFD}"), v);
                }
            }
            map.values_mut().for_each(clean_json);
        }
        _ => {}
    }
}

/// The row for `entry`, every value set.
pub(crate) fn to_active(entry: &AuditEntry) -> entity::ActiveModel {
    let mut changes = serde_json::to_value(&entry.changes).unwrap_or(Value::Array(Vec::new()));
    clean_json(&mut changes);
    let mut metadata = Value::Object(entry.metadata.clone());
    clean_json(&mut metadata);
    entity::ActiveModel {
        id: Set(entry.id),
        // Microseconds, as the builder makes them and cursors carry them: an entry built
        // directly may hold nanoseconds, which SQLite would keep as text and PostgreSQL and
        // MySQL would drop, so SQLite's keyset comparisons would miss or repeat rows.
        occurred_at: Set(entry.occurred_at.trunc_subsecs(6)),
        tenant_id: Set(clean_opt(&entry.tenant_id, capacity::ID)),
        team_id: Set(clean_opt(&entry.team_id, capacity::ID)),
        actor_kind: Set(entry.actor_kind.as_str().to_owned()),
        actor_id: Set(clean_opt(&entry.actor_id, capacity::ID)),
        actor_name: Set(clean_opt(&entry.actor_name, capacity::NAME)),
        api_key_id: Set(clean_opt(&entry.api_key_id, capacity::ID)),
        api_key_name: Set(clean_opt(&entry.api_key_name, capacity::NAME)),
        // A `Custom` can be built directly with any text; it is stored as the valid name
        // `Action::custom` makes of it, so that every stored action reads back.
        action: Set(if entry.action.is_valid() {
            clean(entry.action.as_str(), capacity::ACTION)
        } else {
            Action::custom(entry.action.as_str()).as_str().to_owned()
        }),
        entity_type: Set(clean_opt(&entry.entity_type, capacity::NAME)),
        entity_id: Set(clean_opt(&entry.entity_id, capacity::ID)),
        entity_name: Set(clean_opt(&entry.entity_name, capacity::NAME)),
        details: Set(clean_opt(&entry.details, capacity::TEXT)),
        changes: Set(changes),
        outcome: Set(entry.outcome.as_str().to_owned()),
        status: Set(entry.status.map(i32::from)),
        ip: Set(entry.ip.map(|ip| ip.to_string())),
        user_agent: Set(clean_opt(&entry.user_agent, capacity::TEXT)),
        request_id: Set(clean_opt(&entry.request_id, capacity::ID)),
        method: Set(clean_opt(&entry.method, capacity::METHOD)),
        route: Set(clean_opt(&entry.route, capacity::TEXT)),
        metadata: Set(metadata),
    }
}

/// The entry a row holds; a value the entry types cannot hold is [`StoreError::Corrupt`].
pub(crate) fn from_model(row: entity::Model) -> Result<AuditEntry, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        id: row.id.to_string(),
        message,
    };
    // Rows this store writes always hold a valid name. One written otherwise (by hand, by another
    // tool) is shown as it is rather than failing every page and export that covers it.
    let action = row
        .action
        .parse()
        .unwrap_or_else(|_| Action::Custom(row.action.clone()));
    let actor_kind: ActorKind = row
        .actor_kind
        .parse()
        .map_err(|e| corrupt(format!("actor_kind: {e}")))?;
    let outcome: Outcome = row
        .outcome
        .parse()
        .map_err(|e| corrupt(format!("outcome: {e}")))?;
    let status = row
        .status
        .map(u16::try_from)
        .transpose()
        .map_err(|e| corrupt(format!("status: {e}")))?;
    let ip = row
        .ip
        .as_deref()
        .map(str::parse::<IpAddr>)
        .transpose()
        .map_err(|e| corrupt(format!("ip: {e}")))?;
    let changes = match row.changes {
        Value::Null => Vec::new(),
        value => serde_json::from_value(value).map_err(|e| corrupt(format!("changes: {e}")))?,
    };
    let metadata = match row.metadata {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(corrupt(format!(
                "metadata: expected a JSON object, found {other}"
            )));
        }
    };
    Ok(AuditEntry {
        id: row.id,
        occurred_at: row.occurred_at,
        tenant_id: row.tenant_id,
        team_id: row.team_id,
        actor_kind,
        actor_id: row.actor_id,
        actor_name: row.actor_name,
        api_key_id: row.api_key_id,
        api_key_name: row.api_key_name,
        action,
        entity_type: row.entity_type,
        entity_id: row.entity_id,
        entity_name: row.entity_name,
        details: row.details,
        changes,
        outcome,
        status,
        ip,
        user_agent: row.user_agent,
        request_id: row.request_id,
        method: row.method,
        route: row.route,
        metadata,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use sea_orm::ActiveValue;

    #[test]
    fn nul_is_replaced_and_long_text_cut_to_the_column() {
        let mut entry = AuditEntry::builder(Action::Create)
            .tenant("t")
            .metadata("k\0", "v\0")
            .build();
        entry.user_agent = Some("curl\0/8".into());
        entry.entity_name = Some("é".repeat(400));
        let row = to_active(&entry);
        let ActiveValue::Set(Some(ua)) = row.user_agent else {
            panic!("user agent not set")
        };
        assert_eq!(ua, "curl\u{FFFD}/8");
        let ActiveValue::Set(Some(name)) = row.entity_name else {
            panic!("name not set")
        };
        assert!(name.len() <= capacity::NAME as usize);
        let ActiveValue::Set(metadata) = row.metadata else {
            panic!("metadata not set")
        };
        assert_eq!(metadata, serde_json::json!({"k\u{FFFD}": "v\u{FFFD}"}));
    }
}
