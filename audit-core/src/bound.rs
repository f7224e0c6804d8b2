//! [`Limits`]: the size bounds every entry is cut to when it is made, so a hostile client (a
//! megabyte `User-Agent`, a huge entity name) cannot write an oversized row and every store can
//! use bounded columns.

use serde_json::Value;

use crate::change::Change;
use crate::entry::AuditEntry;

/// What a truncated text ends with.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// Maximum sizes, in bytes, of an entry's fields. Texts longer than their bound are cut at a
/// character boundary and end with [`TRUNCATION_MARKER`]; the result, marker included, fits in
/// the bound.
///
/// The trace id has no bound of its own: it is 32 hexadecimal digits or nothing. Applying the
/// limits lowers its digits and drops one that is not a trace id
/// ([`trace::is_trace_id`](crate::trace::is_trace_id)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Ids: tenant, team, actor, API key, entity, request.
    pub id: usize,
    /// Names: actor, API key, entity; the entity type.
    pub name: usize,
    /// The details summary.
    pub details: usize,
    /// The user agent.
    pub user_agent: usize,
    /// The route template and the method.
    pub route: usize,
    /// How many changes are kept; the rest is summarised in one last change.
    pub changes: usize,
    /// The serialised size of all changes together; changes past it are summarised too.
    pub changes_total: usize,
    /// The serialised size of one change's old or new value.
    pub change_value: usize,
    /// The serialised size of the metadata object, a bulk change's ids aside.
    pub metadata: usize,
    /// How many object ids a bulk change keeps ([`BulkChange`](crate::BulkChange)); each is
    /// bounded by `id` like any other id.
    pub bulk_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            id: 128,
            name: 256,
            details: 2048,
            user_agent: 512,
            route: 512,
            changes: 200,
            changes_total: 64 * 1024,
            change_value: 4096,
            metadata: 8192,
            bulk_ids: 1000,
        }
    }
}

/// Cuts `text` to at most `max` bytes, ending with [`TRUNCATION_MARKER`] when it was cut.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let keep = max.saturating_sub(TRUNCATION_MARKER.len());
    text.truncate(text.floor_char_boundary(keep));
    if TRUNCATION_MARKER.len() <= max {
        text.push_str(TRUNCATION_MARKER);
    }
    // The memory of what was cut goes too: a writer that reuses entries keeps their buffers.
    text.shrink_to_fit();
}

fn truncate_opt(text: &mut Option<String>, max: usize) {
    if let Some(text) = text {
        truncate(text, max);
    }
}

fn bound_value(value: &mut Value, max: usize) {
    // Cheap path: short strings and scalars need no serialisation.
    if let Value::String(s) = value {
        truncate(s, max);
        return;
    }
    if matches!(value, Value::Null | Value::Bool(_) | Value::Number(_)) {
        return;
    }
    let text = value.to_string();
    if text.len() > max {
        let mut text = text;
        truncate(&mut text, max);
        *value = Value::String(text);
    }
}

impl Limits {
    pub(crate) fn apply(&self, entry: &mut AuditEntry) {
        for id in [
            &mut entry.tenant_id,
            &mut entry.team_id,
            &mut entry.actor_id,
            &mut entry.api_key_id,
            &mut entry.entity_id,
            &mut entry.request_id,
        ] {
            truncate_opt(id, self.id);
        }
        for name in [
            &mut entry.actor_name,
            &mut entry.api_key_name,
            &mut entry.entity_name,
            &mut entry.entity_type,
        ] {
            truncate_opt(name, self.name);
        }
        // A trace id has one fixed form: it is checked, not cut.
        if let Some(trace_id) = &mut entry.trace_id
            && !crate::trace::is_trace_id(trace_id)
        {
            trace_id.make_ascii_lowercase();
            if !crate::trace::is_trace_id(trace_id) {
                entry.trace_id = None;
            }
        }
        truncate_opt(&mut entry.details, self.details);
        truncate_opt(&mut entry.user_agent, self.user_agent);
        truncate_opt(&mut entry.route, self.route);
        truncate_opt(&mut entry.method, self.route);
        if let crate::Action::Custom(name) = &entry.action
            && !entry.action.is_valid()
        {
            entry.action = crate::Action::custom(name);
        }
        self.bound_changes(&mut entry.changes);
        let bulk = crate::bulk::take(&mut entry.metadata, self);
        if !entry.metadata.is_empty() {
            let size = Value::Object(std::mem::take(&mut entry.metadata));
            let text = size.to_string();
            match size {
                Value::Object(map) if text.len() <= self.metadata => entry.metadata = map,
                _ => {
                    entry.metadata.insert("truncated".into(), Value::Bool(true));
                    entry
                        .metadata
                        .insert("original_bytes".into(), Value::from(text.len()));
                }
            }
        }
        if let Some(bulk) = bulk {
            entry.metadata.insert(crate::bulk::BULK_KEY.into(), bulk);
        }
    }

    fn bound_changes(&self, changes: &mut Vec<Change>) {
        let mut total = 0usize;
        let mut keep = changes.len();
        for (i, change) in changes.iter_mut().enumerate() {
            truncate(&mut change.field, self.name);
            bound_value(&mut change.old, self.change_value);
            bound_value(&mut change.new, self.change_value);
            total += change.field.len() + json_len(&change.old) + json_len(&change.new) + 32;
            // One slot is reserved for the summary of what is dropped.
            if i + 1 >= self.changes || total > self.changes_total {
                keep = if i + 1 == changes.len() && total <= self.changes_total {
                    i + 1
                } else {
                    i
                };
                break;
            }
        }
        if keep < changes.len() {
            let dropped = changes.len() - keep;
            changes.truncate(keep);
            changes.push(Change::new(
                "…",
                Value::Null,
                Value::String(format!("[{dropped} more changes truncated]")),
            ));
        }
    }
}

/// How many bytes `value` takes as JSON text: exact for strings (quotes and escapes counted:
/// a control character takes up to six bytes), arrays and objects; eight for any number.
fn json_len(value: &Value) -> usize {
    match value {
        Value::String(s) => {
            2 + s
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
                    0..=0x1f => 6,
                    _ => 1,
                })
                .sum::<usize>()
        }
        Value::Null => 4,
        Value::Bool(_) | Value::Number(_) => 8,
        other => other.to_string().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use serde_json::json;

    #[test]
    fn truncate_respects_char_boundaries_and_the_bound() {
        for max in [0, 5, 14, 15, 16, 40, 1000] {
            let mut s = "ä€😀x".repeat(50);
            truncate(&mut s, max);
            assert!(s.len() <= max, "{max}: {}", s.len());
        }
        let mut short = "short".to_owned();
        truncate(&mut short, 10);
        assert_eq!(short, "short");
        let mut huge = "x".repeat(1 << 20);
        truncate(&mut huge, 512);
        assert!(huge.capacity() <= 512, "{}", huge.capacity());
    }

    #[test]
    fn many_small_changes_are_capped_by_count() {
        let mut entry = AuditEntry::new(Action::Update);
        entry.changes = (0..500)
            .map(|i| Change::new(format!("f{i}"), json!(i), json!(i + 1)))
            .collect();
        entry.bound(&Limits::default());
        assert_eq!(entry.changes.len(), 200);
        assert_eq!(
            entry.changes[199].new,
            json!("[301 more changes truncated]")
        );
        let mut few = AuditEntry::new(Action::Update);
        few.changes = (0..200)
            .map(|i| Change::new(format!("f{i}"), json!(i), json!(i + 1)))
            .collect();
        few.bound(&Limits::default());
        assert_eq!(few.changes.len(), 200);
        assert_eq!(few.changes[199].field, "f199");
    }

    #[test]
    fn a_custom_action_is_bounded_to_a_name_that_reads_back() {
        for (name, expected) in [
            ("Foo!".to_owned(), "Foo".to_owned()),
            ("A".repeat(70), "A".repeat(crate::action::MAX_ACTION_LEN)),
            ("Approve".to_owned(), "Approve".to_owned()),
        ] {
            let mut entry = AuditEntry::new(Action::Custom(name));
            entry.bound(&Limits::default());
            assert_eq!(entry.action, Action::Custom(expected));
            let json = serde_json::to_string(&entry).unwrap();
            assert_eq!(
                serde_json::from_str::<AuditEntry>(&json).unwrap().action,
                entry.action
            );
        }
    }

    #[test]
    fn a_megabyte_of_input_leaves_a_small_entry() {
        let big = "A".repeat(1 << 20);
        let mut entry = AuditEntry::new(Action::Create);
        entry.user_agent = Some(big.clone());
        entry.entity_name = Some(big.clone());
        entry.details = Some(big.clone());
        let chunk = "B".repeat(10_000);
        entry.changes = (0..1000)
            .map(|i| Change::new(format!("f{i}"), json!(chunk), json!([chunk])))
            .collect();
        entry.metadata.insert("blob".into(), json!(big));
        entry.bound(&Limits::default());
        let size = serde_json::to_string(&entry).unwrap().len();
        // 64 KiB of changes, 8 KiB of metadata and a few KiB of texts at most.
        assert!(size < 90 * 1024, "entry is {size} bytes");
        assert!(
            entry
                .user_agent
                .as_ref()
                .unwrap()
                .ends_with(TRUNCATION_MARKER)
        );
        let last = entry.changes.last().unwrap();
        let kept = entry.changes.len() - 1;
        assert!(kept > 0 && kept < 20, "{kept}");
        assert_eq!(
            last.new,
            json!(format!("[{} more changes truncated]", 1000 - kept))
        );
        assert_eq!(entry.metadata["truncated"], json!(true));
        assert!(entry.metadata.get("blob").is_none());
    }
}
