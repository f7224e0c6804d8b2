//! [`Action`]: the verb of an audit entry, kept as PascalCase text (`"ToggleActive"`) whose
//! [`Display`](fmt::Display) and [`FromStr`] forms round-trip.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::parse::ParseError;

/// The longest custom action name accepted, in bytes.
pub const MAX_ACTION_LEN: usize = 64;

/// What was done to the entity of an audit entry.
///
/// The well-known verbs cover what integration and admin platforms record; anything else is
/// [`Action::Custom`]. Parse text with [`str::parse`]; a well-known name always parses to its
/// variant, never to `Custom`, so the text form is a faithful key for storage and filters.
///
/// ```
/// use audit_core::Action;
///
/// let action: Action = "ToggleActive".parse().unwrap();
/// assert_eq!(action, Action::ToggleActive);
/// assert_eq!(action.to_string(), "ToggleActive");
/// assert_eq!("Approve".parse::<Action>().unwrap(), Action::Custom("Approve".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// An object was created.
    Create,
    /// An object was read (recorded only when configured, e.g. reads of the audit log itself).
    Read,
    /// An object was changed.
    Update,
    /// An object was deleted.
    Delete,
    /// An object was deactivated.
    Deactivate,
    /// An object was activated.
    Activate,
    /// An object's active flag was flipped.
    ToggleActive,
    /// A credential (such as an API key) was revoked.
    Revoke,
    /// A credential was rotated.
    Rotate,
    /// State (such as an extraction cursor) was reset.
    Reset,
    /// A job or run was executed.
    Execute,
    /// A successful sign-in.
    Login,
    /// A failed sign-in attempt.
    LoginFailed,
    /// A sign-out.
    Logout,
    /// Data (such as the audit log) was exported.
    Export,
    /// A draft (a flow, a version of a configuration) was published.
    Publish,
    /// An object was copied into a new one.
    Clone,
    /// A process, job or integration was started.
    Start,
    /// A process, job or integration was stopped.
    Stop,
    /// An application, connector or plugin was installed.
    Install,
    /// An application, connector or plugin was uninstalled.
    Uninstall,
    /// Access was granted to an application or connection (an OAuth consent, say).
    Authorize,
    /// A person was invited.
    Invite,
    /// A password was changed.
    ChangePassword,
    /// Old entries were purged by retention.
    Purge,
    /// A person's personal data was erased from the log (the right to erasure).
    Erase,
    /// An application-specific verb, in PascalCase by convention.
    Custom(String),
}

/// Every well-known action with its text form, in declaration order.
const KNOWN: &[(&str, Action)] = &[
    ("Create", Action::Create),
    ("Read", Action::Read),
    ("Update", Action::Update),
    ("Delete", Action::Delete),
    ("Deactivate", Action::Deactivate),
    ("Activate", Action::Activate),
    ("ToggleActive", Action::ToggleActive),
    ("Revoke", Action::Revoke),
    ("Rotate", Action::Rotate),
    ("Reset", Action::Reset),
    ("Execute", Action::Execute),
    ("Login", Action::Login),
    ("LoginFailed", Action::LoginFailed),
    ("Logout", Action::Logout),
    ("Export", Action::Export),
    ("Publish", Action::Publish),
    ("Clone", Action::Clone),
    ("Start", Action::Start),
    ("Stop", Action::Stop),
    ("Install", Action::Install),
    ("Uninstall", Action::Uninstall),
    ("Authorize", Action::Authorize),
    ("Invite", Action::Invite),
    ("ChangePassword", Action::ChangePassword),
    ("Purge", Action::Purge),
    ("Erase", Action::Erase),
];

impl Action {
    /// The text form: the variant name, or the custom name.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Create => "Create",
            Action::Read => "Read",
            Action::Update => "Update",
            Action::Delete => "Delete",
            Action::Deactivate => "Deactivate",
            Action::Activate => "Activate",
            Action::ToggleActive => "ToggleActive",
            Action::Revoke => "Revoke",
            Action::Rotate => "Rotate",
            Action::Reset => "Reset",
            Action::Execute => "Execute",
            Action::Login => "Login",
            Action::LoginFailed => "LoginFailed",
            Action::Logout => "Logout",
            Action::Export => "Export",
            Action::Publish => "Publish",
            Action::Clone => "Clone",
            Action::Start => "Start",
            Action::Stop => "Stop",
            Action::Install => "Install",
            Action::Uninstall => "Uninstall",
            Action::Authorize => "Authorize",
            Action::Invite => "Invite",
            Action::ChangePassword => "ChangePassword",
            Action::Purge => "Purge",
            Action::Erase => "Erase",
            Action::Custom(name) => name,
        }
    }

    /// The action named `name`, made valid: a well-known name gives its variant, anything else
    /// an [`Action::Custom`] that reads back from text ([`FromStr`]) as itself. Characters an
    /// action name cannot hold are dropped (it starts with an ASCII letter and goes on with ASCII
    /// letters, digits, `_`, `-` or `.`), the rest is cut to [`MAX_ACTION_LEN`] bytes, and a name
    /// with nothing left is `Custom`.
    ///
    /// Entries are bounded with this before they are stored, so a name built from client input
    /// (an unusual HTTP method, say) can never leave an entry that cannot be read back.
    ///
    /// ```
    /// use audit_core::Action;
    ///
    /// assert_eq!(Action::custom("Approve"), Action::Custom("Approve".into()));
    /// assert_eq!(Action::custom("Foo!"), Action::Custom("Foo".into()));
    /// assert_eq!(Action::custom("Revoke"), Action::Revoke);
    /// assert_eq!(Action::custom("!!"), Action::Custom("Custom".into()));
    /// ```
    pub fn custom(name: &str) -> Action {
        let mut clean = String::with_capacity(name.len().min(MAX_ACTION_LEN));
        for c in name.chars() {
            if clean.len() == MAX_ACTION_LEN {
                break;
            }
            let allowed = if clean.is_empty() {
                c.is_ascii_alphabetic()
            } else {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
            };
            if allowed {
                clean.push(c);
            }
        }
        if clean.is_empty() {
            clean.push_str("Custom");
        }
        match clean.parse() {
            Ok(action) => action,
            Err(_) => Action::Custom(clean),
        }
    }

    /// Whether [`as_str`](Self::as_str) is text that [`FromStr`] accepts: always true of the
    /// well-known actions; a [`Custom`](Action::Custom) name must be a valid action name.
    pub fn is_valid(&self) -> bool {
        match self {
            Action::Custom(name) => name.parse::<Action>().is_ok(),
            _ => true,
        }
    }

    /// All well-known actions (every variant but [`Action::Custom`]).
    pub fn well_known() -> impl Iterator<Item = Action> {
        KNOWN.iter().map(|(_, action)| action.clone())
    }

    /// Whether this is one of the well-known verbs.
    pub fn is_well_known(&self) -> bool {
        !matches!(self, Action::Custom(_))
    }
}

impl FromStr for Action {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((_, action)) = KNOWN.iter().find(|(name, _)| *name == s) {
            return Ok(action.clone());
        }
        if s.len() > MAX_ACTION_LEN {
            return Err(ParseError::new(
                "action",
                s,
                format!(
                    "an action name is at most {MAX_ACTION_LEN} bytes, got {}",
                    s.len()
                ),
            ));
        }
        let mut chars = s.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if !starts_with_letter
            || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(ParseError::new(
                "action",
                s,
                "an action name starts with an ASCII letter and holds only ASCII letters, \
                 digits, '_', '-' or '.'",
            ));
        }
        Ok(Action::Custom(s.to_owned()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Action {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Action".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let known: Vec<&str> = KNOWN.iter().map(|(name, _)| *name).collect();
        schemars::json_schema!({
            "type": "string",
            "pattern": format!("^[A-Za-z][A-Za-z0-9_.-]{{0,{}}}$", MAX_ACTION_LEN - 1),
            "description": format!(
                "Well-known actions: {}; any other name of this pattern is a custom action.",
                known.join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_well_known_action_round_trips_through_text_and_json() {
        let mut count = 0;
        for action in Action::well_known() {
            let text = action.to_string();
            assert_eq!(text.parse::<Action>().unwrap(), action);
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
            count += 1;
        }
        assert_eq!(count, 26);
        assert_eq!(
            serde_json::to_string(&Action::ToggleActive).unwrap(),
            "\"ToggleActive\""
        );
        assert_eq!(
            serde_json::to_string(&Action::LoginFailed).unwrap(),
            "\"LoginFailed\""
        );
    }

    #[test]
    fn custom_actions_round_trip_and_never_shadow_known_ones() {
        let custom: Action = "Approve".parse().unwrap();
        assert_eq!(custom, Action::Custom("Approve".into()));
        assert_eq!(custom.to_string().parse::<Action>().unwrap(), custom);
        assert!(!custom.is_well_known());
        assert_eq!("Revoke".parse::<Action>().unwrap(), Action::Revoke);
        // Case matters: the stored text is the key.
        assert_eq!(
            "revoke".parse::<Action>().unwrap(),
            Action::Custom("revoke".into())
        );
    }

    #[test]
    fn bad_action_text_is_a_clear_error() {
        for bad in ["", "1abc", "Drop'; --", &"x".repeat(65)] {
            let err = bad.parse::<Action>().unwrap_err();
            assert_eq!(err.what(), "action", "{bad:?}");
        }
        let long = "x".repeat(65).parse::<Action>().unwrap_err();
        assert!(long.to_string().contains("got 65"), "{long}");
        assert!(serde_json::from_str::<Action>("\"a b\"").is_err());
    }

    #[test]
    fn any_name_makes_an_action_that_reads_back() {
        let long = "Ab".repeat(100);
        let cases = [
            ("Approve", "Approve"),
            ("Foo!", "Foo"),
            ("M-SEARCH", "M-SEARCH"),
            ("123go", "go"),
            ("!!!", "Custom"),
            ("", "Custom"),
            ("Ärger", "rger"),
            ("Drop'; --", "Drop--"),
            (long.as_str(), &long[..MAX_ACTION_LEN]),
        ];
        for (name, expected) in cases {
            let action = Action::custom(name);
            assert_eq!(action.as_str(), expected, "{name:?}");
            assert!(action.is_valid(), "{name:?}");
            let text = serde_json::to_string(&action).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&text).unwrap(), action);
        }
        assert_eq!(Action::custom("Revoke"), Action::Revoke);
        assert!(!Action::Custom("Foo!".into()).is_valid());
        assert!(!Action::Custom(String::new()).is_valid());
        assert!(Action::ToggleActive.is_valid());
    }
}
