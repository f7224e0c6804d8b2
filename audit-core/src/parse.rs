//! [`ParseError`]: why a text form could not be read back as the value it names.

/// Why a text could not be read as an [`Action`](crate::Action),
/// [`ActorKind`](crate::ActorKind), [`Outcome`](crate::Outcome),
/// [`Order`](crate::store::Order), [`Cursor`](crate::store::Cursor) or
/// [`TraceId`](crate::trace::TraceId).
///
/// It names what was being read in the words of the admin API's query parameters (`action`,
/// `actor_kind`, `outcome`, `order`, `cursor`, `trace_id`), so it converts into
/// [`StoreError::InvalidQuery`](crate::store::StoreError::InvalidQuery) for that parameter.
///
/// ```
/// use audit_core::{ActorKind, ParseError};
///
/// let err: ParseError = "admin".parse::<ActorKind>().unwrap_err();
/// assert_eq!(err.what(), "actor_kind");
/// assert!(err.to_string().contains("user, api_key, system, anonymous"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {expected}")]
pub struct ParseError {
    what: &'static str,
    value: String,
    expected: String,
}

impl ParseError {
    /// A refusal of `value` as a `what`, saying what is `expected` instead. The value is kept
    /// to its first 64 characters, so an error never echoes a huge input.
    pub(crate) fn new(what: &'static str, value: &str, expected: impl Into<String>) -> Self {
        ParseError {
            what,
            value: value.chars().take(64).collect(),
            expected: expected.into(),
        }
    }

    /// What was being read: `action`, `actor_kind`, `outcome`, `order`, `cursor` or
    /// `trace_id`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// What would have been accepted, and how to fix the input.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}
