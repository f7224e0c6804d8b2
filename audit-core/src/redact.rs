//! [`Redactor`]: keeps secrets out of entries. Redaction runs when an entry is made (by the
//! layer, or by [`AuditEntry::builder`](crate::AuditEntry::builder)), before any sink sees it, so
//! no store, export or log line holds a sensitive value.
//! An entry whose public fields are set by hand skips that step; call
//! [`Redactor::redact_changes`] and [`Redactor::redact_map`] on it yourself.

use serde_json::{Map, Value};

use crate::change::Change;

/// The text that stands in for a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// The names redacted by default wherever they appear inside a field's name: `password`
/// catches `db_password` and `newPassword`. Drawn from what secret scanners and the OWASP
/// logging guidance name (passwords, keys, tokens, session identifiers, connection strings,
/// payment card data), limited to texts that rarely occur inside harmless words.
pub const DEFAULT_SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "privkey",
    "client_secret",
    "authorization",
    "cookie",
    "credential",
    "session_id",
    "signing_key",
    "access_key",
    "encryption_key",
    "ssh_key",
    "totp_seed",
    "hmac",
    "signature",
    "bearer",
    "jwt",
    "csrf",
    "xsrf",
    "connection_string",
    "mnemonic",
    "seed_phrase",
    "recovery_code",
    "backup_code",
    "card_number",
];

/// Short names redacted by default only as a whole word of a field's name (words split at
/// punctuation, at digits and where lower case turns upper): `key` catches `key`, `ssh-key`
/// and `privateKey2`, not `keyboard` or `monkey`; `pass` catches `db_pass`, not `passenger`.
pub const DEFAULT_SENSITIVE_WORDS: &[&str] = &[
    "pass", "pwd", "pw", "auth", "key", "pin", "otp", "totp", "sid", "salt", "dsn", "ssn", "cvv",
    "cvc",
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
    words: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(DEFAULT_SENSITIVE.iter().copied()).and_words(DEFAULT_SENSITIVE_WORDS)
    }
}

/// The words of a name, lower-cased: split at anything but letters, at digits, and where a
/// lower-case letter is followed by an upper-case one (or an upper-case run by a capitalised
/// word: `APIKey` is `api`, `key`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphabetic() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_uppercase()
            && previous.is_some_and(|p| {
                p.is_lowercase() || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
            });
        if boundary && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
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
        Redactor {
            needles,
            words: Vec::new(),
        }
    }

    /// This redactor, also judging sensitive a field one of whose words (see
    /// [`DEFAULT_SENSITIVE_WORDS`]) is one of `words`.
    ///
    /// ```
    /// use audit_core::Redactor;
    ///
    /// let r = Redactor::new(["password"]).and_words(["pin"]);
    /// assert!(r.is_sensitive_key("card_pin") && r.is_sensitive_key("userPIN"));
    /// assert!(!r.is_sensitive_key("shipping"));
    /// ```
    pub fn and_words<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.words.extend(
            words
                .into_iter()
                .map(|w| normalise(w.as_ref()))
                .filter(|w| !w.is_empty()),
        );
        self.words.sort();
        self.words.dedup();
        self
    }

    /// The defaults (names and words) plus these names.
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
        Redactor::new(names).and_words(DEFAULT_SENSITIVE_WORDS)
    }

    /// Whether one key (not a dotted path) names a sensitive field.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        self.sensitivity(key) != Sensitivity::None
    }

    /// How `key` is sensitive: a configured name inside it, or only one of its words.
    fn sensitivity(&self, key: &str) -> Sensitivity {
        let normalised = normalise(key);
        if self
            .needles
            .iter()
            .any(|needle| normalised.contains(needle.as_str()))
        {
            Sensitivity::Name
        } else if !self.words.is_empty()
            && words(key)
                .iter()
                .any(|word| self.words.binary_search(word).is_ok())
        {
            Sensitivity::Word
        } else {
            Sensitivity::None
        }
    }

    /// Whether a dotted path names a sensitive field: a sensitive segment, or segments that
    /// read as a sensitive name together. A key may itself hold dots (`{"api.key": …}` diffs to
    /// the path `api.key`), so the path is judged whole, like one key, for names; a word
    /// counts in the last segment only, so `auth.pass` is sensitive and `auth.type` is not.
    pub fn is_sensitive_path(&self, path: &str) -> bool {
        self.path_sensitivity(path) != Sensitivity::None
    }

    fn path_sensitivity(&self, path: &str) -> Sensitivity {
        // Normalising drops the dots, and every segment's name is part of the whole.
        match self.sensitivity(path) {
            Sensitivity::Word => {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                self.sensitivity(leaf)
            }
            other => other,
        }
    }

    /// Replaces both values of every change to a sensitive field with [`REDACTED`], and blanks
    /// sensitive keys inside values that are objects. An absent value (`null`) stays absent, so
    /// a secret that is set shows as `null` → `[REDACTED]` and one removed as the reverse.
    pub fn redact_changes(&self, changes: &mut [Change]) {
        for change in changes {
            let sensitivity = self.path_sensitivity(&change.field);
            self.redact_as(sensitivity, &mut change.old);
            self.redact_as(sensitivity, &mut change.new);
        }
    }

    /// Redacts `value`, the value of a field of `sensitivity`: a name hides it whole, a word
    /// hides a single value but not an object or a list, whose own keys are judged instead.
    fn redact_as(&self, sensitivity: Sensitivity, value: &mut Value) {
        let whole = match sensitivity {
            Sensitivity::Name => true,
            Sensitivity::Word => !matches!(value, Value::Object(_) | Value::Array(_)),
            Sensitivity::None => false,
        };
        if whole {
            // Nothing to hide in an absent value, and "there was none" is worth seeing.
            if !value.is_null() {
                *value = Value::String(REDACTED.to_owned());
            }
        } else {
            self.redact_value(value);
        }
    }

    /// Replaces the value of every sensitive key in a JSON value, at any depth, with
    /// [`REDACTED`], and the credentials inside every text (see
    /// [`redact_text`](Self::redact_text)).
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.redact_map(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::String(text) => {
                if let Some(clean) = self.redact_text(text) {
                    *text = clean;
                }
            }
            _ => {}
        }
    }

    /// `text` with the credentials inside it replaced by [`REDACTED`], or `None` when it holds
    /// none: the password of a URL (`postgres://app:[REDACTED]@db/app`), the value of a
    /// sensitive name in `name=value` or `name: value` pairs (query strings, DSNs such as
    /// `host=db password=…`, headers written out), the credential after `Bearer` or `Basic`,
    /// tokens in well-known formats (`sk_live_…`, `ghp_…`, `xoxb-…`, `AKIA…`, JSON Web
    /// Tokens) and private keys in PEM form.
    ///
    /// ```
    /// use audit_core::Redactor;
    ///
    /// let r = Redactor::default();
    /// assert_eq!(
    ///     r.redact_text("postgres://app:hunter2@db:5432/app").as_deref(),
    ///     Some("postgres://app:[REDACTED]@db:5432/app")
    /// );
    /// assert_eq!(
    ///     r.redact_text("host=db user=app password=hunter2 sslmode=require").as_deref(),
    ///     Some("host=db user=app password=[REDACTED] sslmode=require")
    /// );
    /// assert_eq!(r.redact_text("db1.internal:5432"), None);
    /// ```
    pub fn redact_text(&self, text: &str) -> Option<String> {
        let spans = self.credential_spans(text);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            out.push_str(&text[at..start]);
            out.push_str(REDACTED);
            at = end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    /// The byte ranges of `text` that hold credentials, sorted and merged.
    fn credential_spans(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        pem_private_keys(text, &mut spans);
        url_passwords(bytes, &mut spans);
        self.named_values(bytes, &mut spans);
        scheme_credentials(bytes, &mut spans);
        known_tokens(bytes, &mut spans);
        spans.retain(|(start, end)| start < end);
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        // Every boundary sits next to an ASCII byte; this keeps a slip from splitting a
        // character.
        merged.retain(|(start, end)| text.is_char_boundary(*start) && text.is_char_boundary(*end));
        merged
    }

    /// Values of sensitive names in `name=value` and `name: value` pairs.
    fn named_values(&self, bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
        for (at, &sep) in bytes.iter().enumerate() {
            if sep != b'=' && sep != b':' {
                continue;
            }
            if sep == b':' && bytes[at + 1..].starts_with(b"//") {
                continue;
            }
            // The name: right before the separator, perhaps in quotes, perhaps followed by
            // spaces before a colon.
            let mut end = at;
            if sep == b':' {
                while end > 0 && bytes[end - 1] == b' ' {
                    end -= 1;
                }
            }
            let quoted = end > 0 && (bytes[end - 1] == b'"' || bytes[end - 1] == b'\'');
            if quoted {
                end -= 1;
            }
            let mut start = end;
            while start > 0 && is_name_byte(bytes[start - 1]) {
                start -= 1;
            }
            if start == end {
                continue;
            }
            // Names are ASCII, so this slice is whole characters.
            let Ok(name) = std::str::from_utf8(&bytes[start..end]) else {
                continue;
            };
            if !self.is_sensitive_key(name) {
                continue;
            }
            let mut value = at + 1;
            while value < bytes.len() && bytes[value] == b' ' {
                value += 1;
            }
            let value_end = match bytes.get(value) {
                Some(&quote @ (b'"' | b'\'')) => {
                    value += 1;
                    bytes[value..]
                        .iter()
                        .position(|&b| b == quote)
                        .map_or(bytes.len(), |n| value + n)
                }
                _ => {
                    // `Authorization: Bearer …`: the scheme and its credential are the value.
                    let rest = &bytes[value..];
                    let scheme = [&b"bearer "[..], b"basic ", b"token ", b"digest "]
                        .into_iter()
                        .find(|s| rest.len() > s.len() && rest[..s.len()].eq_ignore_ascii_case(s))
                        .map_or(0, <[u8]>::len);
                    run_end(bytes, value + scheme, |b| !is_value_end(b))
                }
            };
            if &bytes[value..value_end] != REDACTED.as_bytes() {
                spans.push((value, value_end));
            }
        }
    }

    /// [`redact_value`](Self::redact_value) for a map.
    pub fn redact_map(&self, map: &mut Map<String, Value>) {
        for (key, value) in map.iter_mut() {
            self.redact_as(self.sensitivity(key), value);
        }
    }
}

/// How a field's name makes it sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sensitivity {
    None,
    /// A configured name is inside it: its value is hidden whole, whatever it is.
    Name,
    /// One of its words is a configured word: a single value is hidden; an object's keys
    /// are judged one by one.
    Word,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'&' | b';' | b',' | b'"' | b'\'' | b')' | b'}' | b']')
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

/// Whether `at` starts a word: the text's start, or after a byte that is not part of a token.
fn starts_word(bytes: &[u8], at: usize) -> bool {
    at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_')
}

/// Where the run of bytes from `from` that `keep` accepts ends.
fn run_end(bytes: &[u8], from: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(bytes.len(), |n| from + n)
}

/// Every start of `needle` in `bytes`, ASCII case ignored.
fn find_all<'a>(bytes: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    (0..bytes.len().saturating_sub(needle.len() - 1))
        .filter(move |&at| bytes[at..at + needle.len()].eq_ignore_ascii_case(needle))
}

/// Private keys in PEM form, from `-----BEGIN … PRIVATE KEY-----` to the end of its `END` line.
fn pem_private_keys(text: &str, spans: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(found) = text[from..].find("-----BEGIN ") {
        let start = from + found;
        let header_end = text[start + 11..]
            .find("-----")
            .map_or(text.len(), |n| start + 11 + n);
        if !text[start..header_end].contains("PRIVATE KEY") {
            from = header_end.min(text.len());
            if from >= text.len() {
                break;
            }
            continue;
        }
        let end = text[header_end..]
            .find("-----END ")
            .and_then(|n| {
                let footer = header_end + n + 9;
                text[footer..].find("-----").map(|m| footer + m + 5)
            })
            .unwrap_or(text.len());
        spans.push((start, end));
        from = end;
    }
}

/// The password of every URL with one: `scheme://user:PASSWORD@host`.
fn url_passwords(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for at in find_all(bytes, b"://") {
        let authority = at + 3;
        let end = run_end(bytes, authority, |b| {
            !(b.is_ascii_whitespace()
                || matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>'))
        });
        let Some(user_end) = bytes[authority..end].iter().rposition(|&b| b == b'@') else {
            continue;
        };
        let user_end = authority + user_end;
        if let Some(colon) = bytes[authority..user_end].iter().position(|&b| b == b':') {
            spans.push((authority + colon + 1, user_end));
        }
    }
}

/// The credential after an authentication scheme: any token after `Bearer`, and after `Basic`
/// a run that looks like Base64 (a multiple of four characters, at least eight).
fn scheme_credentials(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for (scheme, base64) in [(&b"bearer "[..], false), (&b"basic "[..], true)] {
        for at in find_all(bytes, scheme) {
            if !starts_word(bytes, at) {
                continue;
            }
            let start = at + scheme.len();
            let end = run_end(bytes, start, is_token_byte);
            let long = end - start >= 8;
            let looks_encoded = !base64 || (end - start).is_multiple_of(4);
            if long && looks_encoded {
                spans.push((start, end));
            }
        }
    }
}

/// Tokens in formats that secret scanners recognise by their prefix.
const TOKEN_PREFIXES: &[&str] = &[
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "whsec_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "xapp-",
    "npm_",
    "pypi-",
    "sq0csp-",
    "shpat_",
    "SG.",
];

/// Tokens by prefix, AWS access key ids and JSON Web Tokens, each at the start of a word.
fn known_tokens(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    let token = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    for at in 0..bytes.len() {
        if !starts_word(bytes, at) || !bytes[at].is_ascii_alphanumeric() {
            continue;
        }
        let rest = &bytes[at..];
        let prefixed = TOKEN_PREFIXES
            .iter()
            .find(|p| rest.starts_with(p.as_bytes()))
            .map(|p| p.len());
        if let Some(prefix) = prefixed {
            let end = run_end(bytes, at, token);
            if end - at >= prefix + 8 {
                spans.push((at, end));
            }
            continue;
        }
        let aws = (rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"))
            && rest.len() >= 20
            && rest[4..20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && rest.get(20).is_none_or(|b| !b.is_ascii_alphanumeric());
        if aws {
            spans.push((at, at + 20));
            continue;
        }
        if rest.starts_with(b"eyJ") {
            let end = run_end(bytes, at, token);
            let dots = bytes[at..end].iter().filter(|&&b| b == b'.').count();
            if dots >= 2 && end - at >= 20 {
                spans.push((at, end));
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
    fn a_secret_set_or_removed_shows_as_absent_and_back() {
        let without = json!({"name": "crm"});
        let with = json!({"name": "crm", "client_secret": "s3cr3t-value"});
        let r = Redactor::default();
        let mut set = diff(&without, &with);
        r.redact_changes(&mut set);
        assert_eq!(
            (set[0].field.as_str(), &set[0].old, &set[0].new),
            ("client_secret", &Value::Null, &json!(REDACTED))
        );
        let mut removed = diff(&with, &without);
        r.redact_changes(&mut removed);
        assert_eq!(
            (&removed[0].old, &removed[0].new),
            (&json!(REDACTED), &Value::Null)
        );
        let text = serde_json::to_string(&[set, removed]).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
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
    fn common_secret_names_are_sensitive_and_harmless_look_alikes_are_not() {
        let r = Redactor::default();
        for key in [
            "passwd",
            "pwd",
            "passphrase",
            "pass",
            "db_pass",
            "auth",
            "x-auth",
            "bearer",
            "jwt",
            "session_id",
            "sessionId",
            "sid",
            "signing_key",
            "access_key",
            "AWS_SECRET_ACCESS_KEY",
            "encryption_key",
            "privkey",
            "ssh_key",
            "key",
            "pin",
            "userPIN",
            "otp",
            "totp_seed",
            "hmac",
            "signature",
            "salt",
            "passcode",
            "csrf_token",
            "connection_string",
            "dsn",
            "card_number",
            "cvv",
            "APIKey",
            "key2",
        ] {
            assert!(r.is_sensitive_key(key), "{key} should be sensitive");
        }
        for key in [
            "keyboard",
            "monkey",
            "passenger",
            "shipping",
            "author",
            "inside",
            "basalt",
            "hotpot",
            "pinned",
            "keynote",
            "compass",
            "display_name",
            "region",
        ] {
            assert!(!r.is_sensitive_key(key), "{key} should not be sensitive");
        }
        assert_eq!(words("privateKey2"), ["private", "key"]);
        assert_eq!(words("APIKey"), ["api", "key"]);
        assert_eq!(words("x-api-key"), ["x", "api", "key"]);
    }

    #[test]
    fn credentials_inside_values_are_redacted_and_the_rest_kept() {
        let r = Redactor::default();
        for (text, expected) in [
            (
                "postgres://app:hunter2@db.internal:5432/app",
                "postgres://app:[REDACTED]@db.internal:5432/app",
            ),
            (
                "see https://deploy:s3cr%40t@git.example.com/repo.git now",
                "see https://deploy:[REDACTED]@git.example.com/repo.git now",
            ),
            (
                "host=db user=app password=hunter2 sslmode=require",
                "host=db user=app password=[REDACTED] sslmode=require",
            ),
            (
                "Server=db;Database=app;User Id=sa;Password=Hunter2!;",
                "Server=db;Database=app;User Id=sa;Password=[REDACTED];",
            ),
            (
                "https://api.example.com/v1/items?limit=5&access_token=abc123def&x=1",
                "https://api.example.com/v1/items?limit=5&access_token=[REDACTED]&x=1",
            ),
            (
                "Authorization: Bearer eyJhbGciOi.payload.sig",
                "Authorization: [REDACTED]",
            ),
            ("Bearer abcdefgh12345678", "Bearer [REDACTED]"),
            ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED]"),
            (
                r#"{"password": "hunter2", "user": "ada"}"#,
                r#"{"password": "[REDACTED]", "user": "ada"}"#,
            ),
            (
                "key sk_live_9f8e7d6c5b4a39281706 rotated",
                "key [REDACTED] rotated",
            ),
            ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "[REDACTED]"),
            ("AKIAIOSFODNN7EXAMPLE", "[REDACTED]"),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end",
                "token [REDACTED] end",
            ),
            (
                "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nb",
                "a\n[REDACTED]\nb",
            ),
        ] {
            assert_eq!(r.redact_text(text).as_deref(), Some(expected), "{text}");
        }
        for harmless in [
            "db1.internal:5432",
            "https://example.com/path?page=2",
            "ssh://git@github.com/org/repo",
            "2026-01-31T08:00:00.000000Z",
            "fe80::1",
            "basic configuration",
            "Bearer of news",
            "a key change, the monkey pass",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "skip_live_events",
            "ünïcødé: ✓",
        ] {
            assert_eq!(r.redact_text(harmless), None, "{harmless}");
        }
        // In changes and metadata, wherever the text is.
        let mut value =
            json!({"url": "mysql://root:toor@db/app", "list": ["Bearer abcdefgh12345678"]});
        r.redact_value(&mut value);
        assert_eq!(
            value,
            json!({"url": "mysql://root:[REDACTED]@db/app", "list": ["Bearer [REDACTED]"]})
        );
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
