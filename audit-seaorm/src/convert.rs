//! Between [`AuditEntry`] and a row of `audit_log`, through the entry's serialised form: each
//! field goes to the column of the same name, converted by that column's type, so a field added
//! to the entry and to the entity needs no code here.
//!
//! Entries arrive already bounded by `audit-core`'s `Limits`, but those limits are configurable
//! and the columns are not, so every text is cut again to its column's capacity. NUL
//! characters, which PostgreSQL refuses in text and in JSON, are replaced with U+FFFD, so a
//! hostile `User-Agent` can never make an audit write fail.

use std::str::FromStr;

use audit_core::store::{AuditQuery, StoreError};
use audit_core::{Action, AuditEntry, TRUNCATION_MARKER};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{ColumnType, StringLen};
use sea_orm::{ActiveModelTrait, ActiveValue, ColumnTrait, TryIntoModel};
use serde_json::Value;
use uuid::Uuid;

use crate::entity::{self, Column, capacity};

/// A row ready to insert, with roughly how many bytes it adds to a statement.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub model: entity::ActiveModel,
    pub bytes: usize,
    /// Whether the row differs from the entry (a text cut or a NUL replaced, nanoseconds
    /// dropped, an invalid action renamed): the entry then reads back as the row, not as given.
    pub changed: bool,
}

/// The row for `entry`, every column set.
pub(crate) fn to_row(entry: &AuditEntry) -> Result<Row, StoreError> {
    let mut model = <entity::ActiveModel as ActiveModelTrait>::default();
    // Fixed-size columns and per-value overhead.
    let mut bytes = 128;
    let mut changed = false;
    for (name, value) in entry.fields() {
        let column = Column::from_str(name).map_err(|_| {
            StoreError::Backend(format!("`audit_log` has no column for the field {name}").into())
        })?;
        let (value, size, altered) = column_value(column, value)
            .map_err(|message| StoreError::Backend(format!("{name}: {message}").into()))?;
        bytes += size;
        changed |= altered;
        model
            .try_set(column, value)
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
    }
    // A `Custom` can be built directly with any text; it is stored as the valid name
    // `Action::custom` makes of it, so that every stored action reads back.
    if !entry.action.is_valid() {
        changed = true;
        let valid = Action::custom(entry.action.as_str());
        model
            .try_set(Column::Action, valid.as_str().into())
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
    }
    // The link is set by the chain (`crate::chain`) once the entry's place in it is known.
    model.chain_seq = ActiveValue::Set(None);
    model.chain_hash = ActiveValue::Set(None);
    model.chain_personal = ActiveValue::Set(None);
    model.chain_salt = ActiveValue::Set(None);
    // The lookup buckets of the ids as stored (cut and cleaned).
    let bucket_of = |value: &ActiveValue<Option<String>>| match value {
        ActiveValue::Set(Some(id)) | ActiveValue::Unchanged(Some(id)) => Some(entity::bucket(id)),
        _ => None,
    };
    model.actor_bucket = ActiveValue::Set(bucket_of(&model.actor_id));
    model.entity_bucket = ActiveValue::Set(bucket_of(&model.entity_id));
    bytes += 8 + 32 + 32 + 16 + 2 + 2;
    // What free text searches, from the entry as it reads back: the same as the entry's
    // unless storing changed it.
    model.search_text = ActiveValue::Set(None);
    let text = if changed {
        let stored = model
            .clone()
            .try_into_model()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        AuditQuery::search_text(&from_model(stored)?)
    } else {
        AuditQuery::search_text(entry)
    };
    bytes += text.len();
    model.search_text = ActiveValue::Set(Some(text));
    Ok(Row {
        model,
        bytes,
        changed,
    })
}

/// `value` as `column` stores it, how many bytes it adds to a statement (at least as many as
/// its text: JSON is sent as JSON text, where escapes count), and whether storing changed it.
fn column_value(column: Column, value: Value) -> Result<(sea_orm::Value, usize, bool), String> {
    let def = column.def();
    let column_type = def.get_column_type();
    let mismatch = |value: &Value| format!("a {column_type:?} column cannot hold {value}");
    Ok(match (column_type, value) {
        (ColumnType::Json | ColumnType::JsonBinary, mut json) => {
            let altered = clean_json(&mut json);
            let size = json_text_len(&json);
            (sea_orm::Value::Json(Some(Box::new(json))), size, altered)
        }
        (ColumnType::String(_) | ColumnType::Text, Value::String(text)) => {
            let max = capacity_of(column_type);
            let altered = text.len() > max || text.contains('\0');
            let text = clean(text, max);
            let size = text.len();
            (sea_orm::Value::String(Some(text)), size, altered)
        }
        (ColumnType::String(_) | ColumnType::Text, Value::Null) => {
            (sea_orm::Value::String(None), 0, false)
        }
        (ColumnType::Uuid, Value::String(text)) => {
            let id = Uuid::parse_str(&text).map_err(|e| e.to_string())?;
            (sea_orm::Value::Uuid(Some(id)), 16, false)
        }
        // Microseconds, as the builder makes them and cursors carry them: an entry built
        // directly may hold nanoseconds, which SQLite would keep as text and PostgreSQL and
        // MySQL would drop, so SQLite's keyset comparisons would miss or repeat rows.
        (ColumnType::TimestampWithTimeZone, text @ Value::String(_)) => {
            // Through chrono's own reading, which takes any year the entry can hold.
            let at: DateTime<Utc> = serde_json::from_value(text).map_err(|e| e.to_string())?;
            let kept = at.trunc_subsecs(6);
            (sea_orm::Value::ChronoDateTimeUtc(Some(kept)), 8, kept != at)
        }
        (ColumnType::Integer, Value::Number(number)) => {
            let number = number
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| mismatch(&Value::Number(number)))?;
            (sea_orm::Value::Int(Some(number)), 4, false)
        }
        (ColumnType::Integer, Value::Null) => (sea_orm::Value::Int(None), 0, false),
        (_, other) => return Err(mismatch(&other)),
    })
}

/// The capacity, in bytes, a value of a text column is cut to: its declared length, or what
/// MySQL's `TEXT` holds.
fn capacity_of(column_type: &ColumnType) -> usize {
    match column_type {
        ColumnType::String(StringLen::N(len)) => *len as usize,
        _ => capacity::TEXT as usize,
    }
}

/// A NUL-free text of at most `max` bytes, ending with the truncation marker when it was cut.
fn clean(mut text: String, max: usize) -> String {
    if text.contains('\0') {
        text = text.replace('\0', "\u{FFFD}");
    }
    if text.len() > max {
        let keep = max.saturating_sub(TRUNCATION_MARKER.len());
        text.truncate(text.floor_char_boundary(keep));
        text.push_str(TRUNCATION_MARKER);
    }
    text
}

/// Replaces NUL in every string and key of a JSON value; whether there was any.
fn clean_json(value: &mut Value) -> bool {
    match value {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{FFFD}");
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| clean_json(item) | any),
        Value::Object(map) => {
            let keys = map.keys().any(|k| k.contains('\0'));
            if keys {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(k.replace('\0', "\u{FFFD}"), v);
                }
            }
            map.values_mut()
                .fold(keys, |any, item| clean_json(item) | any)
        }
        _ => false,
    }
}

/// The length of `value` as JSON text, counted as `serde_json` writes it.
fn json_text_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a JSON value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The entry a row holds; a value the entry types cannot hold is [`StoreError::Corrupt`].
pub(crate) fn from_model(row: entity::Model) -> Result<AuditEntry, StoreError> {
    let id = row.id;
    let corrupt = |message: String| StoreError::Corrupt {
        id: id.to_string(),
        message,
    };
    // Rows this store writes always hold a valid action name. One written otherwise (by hand,
    // by another tool) is shown as it is rather than failing every page that covers it.
    let action = row
        .action
        .parse::<Action>()
        .unwrap_or(Action::Custom(row.action));
    let actor_kind = row
        .actor_kind
        .parse()
        .map_err(|e| corrupt(format!("actor_kind: {e}")))?;
    let outcome = row
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
        .map(|ip| ip.parse())
        .transpose()
        .map_err(|e| corrupt(format!("ip: {e}")))?;
    let changes = match row.changes {
        Value::Null => Vec::new(),
        changes => serde_json::from_value(changes).map_err(|e| corrupt(format!("changes: {e}")))?,
    };
    let metadata = match row.metadata {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map,
        other => return Err(corrupt(format!("metadata: not an object: {other}"))),
    };
    // Every field, so that a field added to the entry fails to compile here until it is read.
    Ok(AuditEntry {
        id,
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
        trace_id: row.trace_id,
        method: row.method,
        route: row.route,
        metadata,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use audit_core::Change;
    use sea_orm::{ActiveValue, Iterable};

    fn text(row: &Row, column: Column) -> String {
        match row.model.get(column) {
            ActiveValue::Set(sea_orm::Value::String(Some(text))) => text,
            other => panic!("{column:?} is {other:?}"),
        }
    }

    #[test]
    fn nul_is_replaced_and_long_text_cut_to_the_column() {
        let mut entry = AuditEntry::builder(Action::Create)
            .tenant("t")
            .metadata("k\0", "v\0")
            .build();
        entry.user_agent = Some("curl\0/8".into());
        entry.entity_name = Some("é".repeat(400));
        let row = to_row(&entry).unwrap();
        assert_eq!(text(&row, Column::UserAgent), "curl\u{FFFD}/8");
        let name = text(&row, Column::EntityName);
        assert!(name.len() <= capacity::NAME as usize && name.ends_with(TRUNCATION_MARKER));
        let ActiveValue::Set(sea_orm::Value::Json(Some(metadata))) =
            row.model.get(Column::Metadata)
        else {
            panic!("metadata not set")
        };
        assert_eq!(*metadata, serde_json::json!({"k\u{FFFD}": "v\u{FFFD}"}));
    }

    #[test]
    fn every_column_is_set_and_a_row_is_sized_at_least_as_its_json() {
        let control = "\u{1}".repeat(4000);
        let mut entry = AuditEntry::new(Action::Update);
        entry.changes = (0..20)
            .map(|i| {
                Change::new(
                    format!("f\"{i}"),
                    serde_json::json!(control),
                    serde_json::json!({"a": control}),
                )
            })
            .collect();
        entry
            .metadata
            .insert("k\n".into(), serde_json::json!(["\\", control]));
        let row = to_row(&entry).unwrap();
        for column in Column::iter() {
            assert!(row.model.get(column).is_set(), "{column:?}");
        }
        let changes = serde_json::to_string(&entry.changes).unwrap().len();
        let metadata = serde_json::to_string(&entry.metadata).unwrap().len();
        assert!(changes > 20 * 2 * 6 * 4000);
        assert!(row.bytes >= changes + metadata);
    }
}
