//! [`FailureReason`]: why a request failed, as the service's error type tells the layer.

use std::fmt;

/// The longest error code kept, in characters.
pub const MAX_CODE_CHARS: usize = 64;
/// The longest error message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Why a request failed: a short machine-readable code and a message for people.
///
/// Put one into the extensions of an error response (your error type's `IntoResponse` is the
/// place), and the layer writes `"{code}: {message}"` into the entry's `details` when the
/// handler gave none. The code is cut to [`MAX_CODE_CHARS`] and the message to
/// [`MAX_MESSAGE_CHARS`] characters, and credentials inside either are redacted like any
/// details, so a message that quotes a connection URL stores it without its password.
///
/// ```
/// use audit_tower::FailureReason;
/// use axum::response::{IntoResponse, Response};
/// use http::StatusCode;
///
/// struct NameTaken;
///
/// impl IntoResponse for NameTaken {
///     fn into_response(self) -> Response {
///         let mut response = (StatusCode::CONFLICT, "the name is taken").into_response();
///         response
///             .extensions_mut()
///             .insert(FailureReason::new("name_taken", "the name is taken"));
///         response
///     }
/// }
/// # let _ = NameTaken.into_response();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReason {
    code: String,
    message: String,
}

impl FailureReason {
    /// A reason with this code (`"validation"`, `"not_found"`) and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        FailureReason {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The entry's `details` for this reason, bounded (not yet redacted).
    pub(crate) fn details(&self) -> String {
        let code = cut(self.code.trim(), MAX_CODE_CHARS);
        let message = cut(self.message.trim(), MAX_MESSAGE_CHARS);
        match (code.is_empty(), message.is_empty()) {
            (false, false) => format!("{code}: {message}"),
            (false, true) => code.to_owned(),
            (true, _) => message.to_owned(),
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// `text` cut to at most `chars` characters.
fn cut(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_code_and_message_bounded() {
        assert_eq!(
            FailureReason::new("validation", "host is too long").details(),
            "validation: host is too long"
        );
        assert_eq!(
            FailureReason::new(" ", "only a message").details(),
            "only a message"
        );
        assert_eq!(FailureReason::new("conflict", "").details(), "conflict");
        let long = FailureReason::new("c".repeat(100), "é".repeat(1000)).details();
        assert_eq!(
            long.chars().count(),
            MAX_CODE_CHARS + 2 + MAX_MESSAGE_CHARS,
            "{long}"
        );
    }
}
