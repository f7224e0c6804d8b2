//! [`Page`], one page of a listing, and [`StoreError`], why a store could not answer.

use serde::{Deserialize, Serialize};

use super::Cursor;
use crate::entry::AuditEntry;
use crate::parse::ParseError;

/// One page of a listing.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The entries, in the query's order.
    pub items: Vec<AuditEntry>,
    /// Where the next page starts, or `None` when this page is the last.
    pub next_cursor: Option<Cursor>,
}

/// Why a store could not answer.
///
/// [`InvalidQuery`](StoreError::InvalidQuery) is the caller's fault (an HTTP layer answers 400
/// naming the parameter); every other variant is the store's (a 500 or 503).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A query parameter is out of bounds or malformed.
    #[error("invalid query parameter `{parameter}`: {message}")]
    InvalidQuery {
        /// The parameter's name, as the admin API's query string spells it: `scope`, `limit`,
        /// `q` (the free text), `cursor`, `from`, `to`, `order`, `entity_type`, `action`,
        /// `actor_id`, `actor_kind`, `api_key`, `entity_id` or `outcome`.
        parameter: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The backend is unreachable or timed out; retrying later may succeed.
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be read back as an entry.
    #[error("stored audit entry {id} is unreadable: {message}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// What could not be read.
        message: String,
    },
    /// The backend failed with its own error.
    #[error("audit store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// An [`InvalidQuery`](StoreError::InvalidQuery) error.
    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::InvalidQuery {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    /// Whether the caller's input caused this error (an HTTP 400), rather than the store.
    pub fn is_invalid_query(&self) -> bool {
        matches!(self, StoreError::InvalidQuery { .. })
    }
}

impl From<ParseError> for StoreError {
    /// A text that did not parse as a query value is the caller's fault: an
    /// [`InvalidQuery`](StoreError::InvalidQuery) naming what was read.
    fn from(error: ParseError) -> Self {
        StoreError::invalid(error.what(), error.to_string())
    }
}
