//! [`Redactor`]: keeps secrets out of entries. Redaction runs when an entry is made (by the
//! layer, or by [`AuditEntry::builder`](crate::AuditEntry::builder)), before any sink sees it, so
//! no store, export or log line holds a sensitive value.
//! An entry whose public fields are set by hand skips that step; call
//! [`Redactor::redact_changes`] and [`Redactor::redact_map`] on it yourself.

use serde_json::{Map, Value};

use crate::change::Change;

/// The text that stands in for a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// The field names redacted by default.
pub const DEFAULT_SENSITIVE: &[&str] = &[
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "client_secret",
    "authorization",
    "cookie",
    "credential",
];

/// Decides which fields are sensitive and blanks their values.
///
/// A field is sensitive when any segment of its dotted path, lower-cased and stripped of
/// everything but letters and digits, *contains* one of the configured names treated the same
/// way. So `password` catches `db_password`, `Password` and `newPassword`; `api_key` catches
/// `x-api-key` and `apiKey`; `credential` catches `credentials.username`. Matching errs on the
/// side of hiding: a false positive costs a value in the log, a false negative leaks a secret.
///
/// ```
/// use audit_core::{diff, Redactor, REDACTED};
/// use serde_json::json;
///
/// let mut changes = diff(
///     &json!({"host": "db1", "db_password": "hunter2"}),
///     &json!({"host": "db2", "db_password": "correct horse"}),
/// );
/// Redactor::default().redact_changes(&mut changes);
/// assert_eq!(changes[0].field, "db_password");
/// assert_eq!(changes[0].old, json!(REDACTED));
/// assert_eq!(changes[0].new, json!(REDACTED));
/// assert_eq!(changes[1].new, json!("db2"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(DEFAULT_SENSITIVE.iter().copied())
    }
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Redactor {
    /// A redactor for exactly these names (replacing the defaults).
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = names
            .into_iter()
            .map(|n| normalise(n.as_ref()))
            .filter(|n| !n.is_empty())
            .collect();
        needles.sort();
        needles.dedup();
        Redactor { needles }
    }

    /// The defaults plus these names.
    pub fn with_defaults_and<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = DEFAULT_SENSITIVE
            .iter()
            .map(|s| (*s).to_owned())
            .chain(extra.into_iter().map(|s| s.as_ref().to_owned()))
            .collect();
        Redactor::new(names)
    }

    /// Whether one key (not a dotted path) names a sensitive field.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        let key = normalise(key);
        self.needles
            .iter()
            .any(|needle| key.contains(needle.as_str()))
    }

    /// Whether a dotted path names a sensitive field: a sensitive segment, or segments that
    /// read as a sensitive name together. A key may itself hold dots (`{"api.key": …}` diffs to
    /// the path `api.key`), so the path is judged whole, like one key.
    pub fn is_sensitive_path(&self, path: &str) -> bool {
        // Normalising drops the dots, and every segment's name is part of the whole.
        self.is_sensitive_key(path)
    }

    /// Replaces both values of every change to a sensitive field with [`REDACTED`], and blanks
    /// sensitive keys inside values that are objects.
    pub fn redact_changes(&self, changes: &mut [Change]) {
        for change in changes {
            if self.is_sensitive_path(&change.field) {
                change.old = Value::String(REDACTED.to_owned());
                change.new = Value::String(REDACTED.to_owned());
            } else {
                self.redact_value(&mut change.old);
                self.redact_value(&mut change.new);
            }
        }
    }

    /// Replaces the value of every sensitive key in a JSON value, at any depth, with
    /// [`REDACTED`].
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.redact_map(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            _ => {}
        }
    }

    /// [`redact_value`](Self::redact_value) for a map.
    pub fn redact_map(&self, map: &mut Map<String, Value>) {
        for (key, value) in map.iter_mut() {
            if self.is_sensitive_key(key) {
                *value = Value::String(REDACTED.to_owned());
            } else {
                self.redact_value(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::diff;
    use serde_json::json;

    #[test]
    fn every_default_name_and_its_common_spellings_are_sensitive() {
        let r = Redactor::default();
        for key in [
            "password",
            "Password",
            "db_password",
            "newPassword",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "refreshToken",
            "api_key",
            "apiKey",
            "x-api-key",
            "private_key",
            "privateKey",
            "authorization",
            "Authorization",
            "cookie",
            "set-cookie",
            "credential",
            "credentials",
        ] {
            assert!(r.is_sensitive_key(key), "{key} should be sensitive");
        }
        for key in ["name", "host", "port", "username", "email", "mapping"] {
            assert!(!r.is_sensitive_key(key), "{key} should not be sensitive");
        }
    }

    #[test]
    fn redacted_changes_keep_no_part_of_the_values() {
        let before =
            json!({"name": "crm", "auth": {"client_secret": "abcdef-OLD", "client_id": "id1"}});
        let after =
            json!({"name": "crm", "auth": {"client_secret": "abcdef-NEW", "client_id": "id2"}});
        let mut changes = diff(&before, &after);
        Redactor::default().redact_changes(&mut changes);
        let text = serde_json::to_string(&changes).unwrap();
        assert!(!text.contains("abcdef"), "{text}");
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[1].field, "auth.client_secret");
        assert_eq!(changes[1].old, json!(REDACTED));
        assert_eq!(changes[1].new, json!(REDACTED));
        assert_eq!(changes[0].new, json!("id2"));
    }

    #[test]
    fn a_sensitive_parent_hides_all_its_children_and_arrays_are_walked() {
        let mut changes = diff(
            &Value::Null,
            &json!({"credentials": {"user": "u", "pin": "1234"}}),
        );
        Redactor::default().redact_changes(&mut changes);
        assert!(changes.iter().all(|c| c.new == json!(REDACTED)));
        let mut value = json!({"items": [{"token": "t0p"}, {"name": "n"}]});
        Redactor::default().redact_value(&mut value);
        assert_eq!(
            value,
            json!({"items": [{"token": REDACTED}, {"name": "n"}]})
        );
    }

    #[test]
    fn keys_holding_dots_are_judged_whole() {
        for key in [
            "api.key",
            "private.key",
            "x.api.key",
            "pass.word",
            "client.secret",
        ] {
            let before = json!({ key: "OLD-S3CRET", "cfg": { key: "OLD-N3STED" } });
            let after = json!({ key: "NEW-S3CRET", "cfg": { key: "NEW-N3STED" } });
            let mut changes = diff(&before, &after);
            assert_eq!(changes.len(), 2, "{key}");
            Redactor::default().redact_changes(&mut changes);
            let text = serde_json::to_string(&changes).unwrap();
            assert!(
                !text.contains("S3CRET") && !text.contains("N3STED"),
                "{text}"
            );
        }
        // Ordinary dotted paths are judged as before.
        assert!(!Redactor::default().is_sensitive_path("profile.display_name"));
        assert!(Redactor::default().is_sensitive_path("auth.client_secret"));
    }

    #[test]
    fn the_list_is_configurable() {
        let only_pin = Redactor::new(["pin"]);
        assert!(only_pin.is_sensitive_key("PIN"));
        assert!(!only_pin.is_sensitive_key("password"));
        let more = Redactor::with_defaults_and(["ssn"]);
        assert!(more.is_sensitive_key("customer_ssn"));
        assert!(more.is_sensitive_key("password"));
    }
}
