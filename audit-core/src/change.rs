//! Field-level changes: [`Change`] and [`diff`]. A handler gives the object's state before and
//! after the change; the diff, redacted with a [`Redactor`](crate::Redactor), becomes the entry's
//! `changes`: the "old value in red, new value in green" of the details view.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One changed field: its dotted path, the value before and the value after.
///
/// A field that did not exist on one side has `null` there.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The field's path; nested object keys are joined with `.` (`auth.client_id`).
    pub field: String,
    /// The value before the change.
    pub old: Value,
    /// The value after the change.
    pub new: Value,
}

impl Change {
    /// A change of `field` from `old` to `new`.
    pub fn new(field: impl Into<String>, old: Value, new: Value) -> Self {
        Change {
            field: field.into(),
            old,
            new,
        }
    }
}

/// The field-level difference between two JSON values.
///
/// Objects are walked recursively and their keys joined into dotted paths; arrays and scalars
/// are compared as whole values. Changes come in path order. Values that are not objects at the
/// top are reported as one change of the field `""`.
///
/// ```
/// use audit_core::diff;
/// use serde_json::json;
///
/// let before = json!({"name": "Orders", "mapping": {"sku": "item_no", "qty": "amount"}});
/// let after = json!({"name": "Orders v2", "mapping": {"sku": "item_no", "qty": "quantity"}});
/// let changes = diff(&before, &after);
/// assert_eq!(changes.len(), 2);
/// assert_eq!(changes[0].field, "mapping.qty");
/// assert_eq!(changes[0].old, json!("amount"));
/// assert_eq!(changes[0].new, json!("quantity"));
/// assert_eq!(changes[1].field, "name");
/// ```
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_into(&mut String::new(), before, after, &mut changes);
    changes.sort_by(|a, b| a.field.cmp(&b.field));
    changes
}

fn diff_into(path: &mut String, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => diff_objects(path, Some(old), Some(new), out),
        // An object that appeared or disappeared is reported field by field, so each field
        // can be redacted on its own and the details view lines up with updates.
        (Value::Null, Value::Object(map)) | (Value::Object(map), Value::Null)
            if !map.is_empty() =>
        {
            let (old, new) = match before {
                Value::Null => (None, Some(map)),
                _ => (Some(map), None),
            };
            let found = out.len();
            diff_objects(path, old, new, out);
            // Fields that are all null say nothing field by field; the object itself changed.
            if out.len() == found {
                out.push(Change::new(path.clone(), before.clone(), after.clone()));
            }
        }
        (old, new) if old != new => out.push(Change::new(path.clone(), old.clone(), new.clone())),
        _ => {}
    }
}

fn diff_objects(
    path: &mut String,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    out: &mut Vec<Change>,
) {
    let keys = old.into_iter().flat_map(|m| m.keys()).chain(
        new.into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| old.is_none_or(|o| !o.contains_key(*k))),
    );
    for key in keys {
        let before = old.and_then(|m| m.get(key)).unwrap_or(&Value::Null);
        let after = new.and_then(|m| m.get(key)).unwrap_or(&Value::Null);
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        diff_into(path, before, after, out);
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_of_nulls_that_appears_or_disappears_is_a_change() {
        let nulls = json!({"x": null});
        for (before, after) in [
            (json!({"a": nulls}), json!({"a": null})),
            (json!({"a": nulls}), json!({})),
            (json!({}), json!({"a": nulls})),
        ] {
            let changes = diff(&before, &after);
            assert_eq!(changes.len(), 1, "{before} -> {after}");
            assert_eq!(changes[0].field, "a");
        }
    }

    #[test]
    fn equal_values_have_no_changes() {
        let v = json!({"a": 1, "b": {"c": [1, 2]}});
        assert!(diff(&v, &v).is_empty());
    }

    #[test]
    fn nested_objects_become_dotted_paths_and_missing_sides_are_null() {
        let before = json!({"a": 1, "auth": {"user": "u", "scopes": ["r"]}, "gone": true});
        let after = json!({"a": 2, "auth": {"user": "u", "scopes": ["r", "w"]}, "added": "x"});
        let changes = diff(&before, &after);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["a", "added", "auth.scopes", "gone"]);
        assert_eq!(changes[1].old, Value::Null);
        assert_eq!(changes[1].new, json!("x"));
        assert_eq!(changes[2].new, json!(["r", "w"]));
        assert_eq!(changes[3].old, json!(true));
        assert_eq!(changes[3].new, Value::Null);
    }

    #[test]
    fn a_created_object_lists_every_leaf() {
        let changes = diff(&Value::Null, &json!({"name": "n", "cfg": {"url": "u"}}));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["cfg.url", "name"]);
        assert!(changes.iter().all(|c| c.old.is_null()));
    }

    #[test]
    fn scalars_at_the_top_are_one_change() {
        let changes = diff(&json!(1), &json!(2));
        assert_eq!(changes, vec![Change::new("", json!(1), json!(2))]);
    }
}
