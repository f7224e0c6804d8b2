//! [`Cursor`]: the opaque token that continues a listing where its last page ended.

use std::fmt;
use std::hash::Hasher;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use fnv::FnvHasher;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::query::{AuditQuery, Order, fold, within_supported_years};
use crate::entry::AuditEntry;
use crate::parse::ParseError;

/// Where the next page of a listing starts: an opaque text token.
///
/// It holds the `(occurred_at, id)` of the last entry of the page, the order, and a digest of
/// the query, so a cursor used with the other order or with another scope or other filters is
/// rejected by [`AuditQuery::validate`] instead of silently skipping entries. The text is
/// unpadded base64url with a checksum, so a mistyped or altered token is a clear
/// [`ParseError`] (a [`StoreError::InvalidQuery`](super::StoreError::InvalidQuery) on
/// `cursor` once converted).
///
/// A cursor is not a credential: the scope is applied by the store on every page, so a forged
/// cursor can at most move within what the caller may see anyway.
///
/// ```
/// use audit_core::{Action, AuditEntry, store::{AuditQuery, Cursor, Scope}};
///
/// let query = AuditQuery::new(Scope::tenant("acme"));
/// let last = AuditEntry::builder(Action::Create).tenant("acme").build();
/// let cursor = Cursor::after(&query, &last);
/// let text = cursor.to_string();
/// assert_eq!(text.parse::<Cursor>().unwrap(), cursor);
/// assert!(query.clone().cursor(cursor.clone()).validate().is_ok());
/// // The same cursor with another tenant's query is refused.
/// assert!(AuditQuery::new(Scope::tenant("globex")).cursor(cursor).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    occurred_at_micros: i64,
    id: Uuid,
    order: Order,
    query: u32,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BYTES: usize = 1 + 1 + 8 + 16 + 4 + 4;

impl Cursor {
    /// The cursor that continues `query` after `last`, the last entry of a page.
    pub fn after(query: &AuditQuery, last: &AuditEntry) -> Self {
        Cursor {
            occurred_at_micros: last.occurred_at.timestamp_micros(),
            id: last.id,
            order: query.order,
            query: query.digest(),
        }
    }

    /// When the last entry of the previous page occurred.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.occurred_at_micros).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// [`occurred_at`](Self::occurred_at) in microseconds since the Unix epoch.
    pub fn occurred_at_micros(&self) -> i64 {
        self.occurred_at_micros
    }

    /// The id of the last entry of the previous page.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The order of the listing this cursor continues.
    pub fn order(&self) -> Order {
        self.order
    }

    /// The digest of the query this cursor continues.
    pub(crate) fn query_digest(&self) -> u32 {
        self.query
    }

    fn to_bytes(&self) -> [u8; CURSOR_BYTES] {
        let mut out = [0u8; CURSOR_BYTES];
        out[0] = CURSOR_VERSION;
        out[1] = match self.order {
            Order::Desc => 0,
            Order::Asc => 1,
        };
        out[2..10].copy_from_slice(&self.occurred_at_micros.to_be_bytes());
        out[10..26].copy_from_slice(self.id.as_bytes());
        out[26..30].copy_from_slice(&self.query.to_be_bytes());
        let sum = checksum(&out[..30]);
        out[30..].copy_from_slice(&sum.to_be_bytes());
        out
    }
}

fn checksum(bytes: &[u8]) -> u32 {
    let mut h = FnvHasher::default();
    h.write(b"audit-cursor");
    h.write(bytes);
    fold(h.finish())
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }
}

impl FromStr for Cursor {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || {
            ParseError::new(
                "cursor",
                s,
                "not a cursor issued by this service (malformed or altered); use the \
                 `next_cursor` of the previous page as it is, or start without one",
            )
        };
        // A real cursor is 46 characters; refuse anything far off before decoding.
        if s.len() > 64 {
            return Err(malformed());
        }
        // The engine refuses padding and stray bits past the last byte, so each cursor has
        // one text.
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| malformed())?;
        if bytes.len() != CURSOR_BYTES || bytes[0] != CURSOR_VERSION {
            return Err(malformed());
        }
        let (payload, sum) = bytes.split_at(30);
        if u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]) != checksum(payload) {
            return Err(malformed());
        }
        let order = match payload[1] {
            0 => Order::Desc,
            1 => Order::Asc,
            _ => return Err(malformed()),
        };
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&payload[2..10]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&payload[10..26]);
        let mut query = [0u8; 4];
        query.copy_from_slice(&payload[26..30]);
        let occurred_at_micros = i64::from_be_bytes(micros);
        // The checksum catches mistakes, not forgeries: a time no store can compare (MySQL
        // and PostgreSQL refuse it, SQLite would compare its text wrongly) is refused here.
        if !DateTime::from_timestamp_micros(occurred_at_micros).is_some_and(within_supported_years)
        {
            return Err(malformed());
        }
        Ok(Cursor {
            occurred_at_micros,
            id: Uuid::from_bytes(id),
            order,
            query: u32::from_be_bytes(query),
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Cursor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cursor".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An opaque token: pass the `next_cursor` of a page as it is to get the next one.",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::store::{Scope, StoreError};
    use crate::{Action, ActorKind};
    use chrono::TimeZone;

    fn entry() -> AuditEntry {
        AuditEntry::builder(Action::Update)
            .tenant("acme")
            .team("ops")
            .entity("ConnectionProfile", "42")
            .entity_name("Salesforce Prod")
            .build()
    }

    fn invalid_parameter(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::InvalidQuery { parameter, .. }) => parameter,
            other => panic!("expected InvalidQuery, got {other:?}"),
        }
    }

    #[test]
    fn the_text_is_canonical_unpadded_base64url() {
        let text = Cursor::after(&AuditQuery::new(Scope::All), &entry()).to_string();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        // The last character carries two bits of padding; any other value of them is refused.
        let last = text.as_bytes()[text.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.iter().position(|&a| a == last).unwrap();
        let stray = char::from(alphabet[index ^ 1]);
        let altered = format!("{}{stray}", &text[..text.len() - 1]);
        assert!(altered.parse::<Cursor>().is_err(), "stray low bits");
        assert!(format!("{text}=").parse::<Cursor>().is_err(), "padding");
    }

    #[test]
    fn cursor_round_trips_through_text_and_json() {
        for order in [Order::Desc, Order::Asc] {
            let query = AuditQuery::new(Scope::tenant("acme"))
                .order(order)
                .action(Action::Delete);
            let last = entry();
            let cursor = Cursor::after(&query, &last);
            assert_eq!(cursor.order(), order);
            assert_eq!(cursor.id(), last.id);
            assert_eq!(cursor.occurred_at(), last.occurred_at);
            let text = cursor.to_string();
            assert_eq!(text.len(), 46);
            assert_eq!(text.parse::<Cursor>().unwrap(), cursor);
            let json = serde_json::to_string(&cursor).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), cursor);
            query.clone().cursor(cursor).validate().unwrap();
        }
    }

    #[test]
    fn a_tampered_cursor_is_a_clear_error() {
        let query = AuditQuery::new(Scope::tenant("acme"));
        let text = Cursor::after(&query, &entry()).to_string();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        // Every single-character change is caught.
        for i in 0..text.len() {
            for replacement in alphabet.chars() {
                let mut bytes = text.clone().into_bytes();
                if bytes[i] == replacement as u8 {
                    continue;
                }
                bytes[i] = replacement as u8;
                let altered = String::from_utf8(bytes).unwrap();
                let err = altered.parse::<Cursor>().unwrap_err();
                assert_eq!(err.what(), "cursor", "{altered}");
            }
        }
        for garbage in [
            "",
            "x",
            "not a cursor",
            "' OR 1=1 --",
            "%00",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &"A".repeat(10_000),
            &text[..text.len() - 1],
            &format!("{text}A"),
            "😀😀😀😀",
        ] {
            let err = StoreError::from(garbage.parse::<Cursor>().unwrap_err());
            match err {
                StoreError::InvalidQuery { parameter, message } => {
                    assert_eq!(parameter, "cursor");
                    assert!(message.contains("not a cursor"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn times_outside_the_supported_years_are_a_clear_error() {
        let query = AuditQuery::new(Scope::tenant("acme"));
        // A well-formed cursor (its checksum recomputed, as anyone can) at an absurd time.
        for year in [-200_000, 999, 10_000, 200_000] {
            let at = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
            let mut far = entry();
            far.occurred_at = at;
            let text = Cursor::after(&query, &far).to_string();
            let err = text.parse::<Cursor>().unwrap_err();
            assert_eq!(err.what(), "cursor", "{year}");
            assert_eq!(
                invalid_parameter(query.clone().from(at).validate()),
                "from",
                "{year}"
            );
            assert_eq!(
                invalid_parameter(query.clone().to(at).validate()),
                "to",
                "{year}"
            );
        }
        for year in [1000, 2026, 9999] {
            let at = Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0).unwrap();
            let mut near = entry();
            near.occurred_at = at;
            let cursor: Cursor = Cursor::after(&query, &near).to_string().parse().unwrap();
            query.clone().cursor(cursor).validate().unwrap();
            query
                .clone()
                .from(at)
                .to(at + chrono::Duration::days(1))
                .validate()
                .unwrap();
        }
    }

    #[test]
    fn a_foreign_cursor_is_refused() {
        let desc = AuditQuery::new(Scope::tenant("acme")).entity_type("Tenant");
        let cursor = Cursor::after(&desc, &entry());
        // The same query, another page size and reordered filter values: accepted.
        desc.clone()
            .cursor(cursor.clone())
            .limit(5)
            .validate()
            .unwrap();
        let two = desc.clone().entity_type("ApiKey");
        let two_reordered = AuditQuery::new(Scope::tenant("acme"))
            .entity_type("ApiKey")
            .entity_type("Tenant");
        let c2 = Cursor::after(&two, &entry());
        two_reordered.cursor(c2).validate().unwrap();

        let other_order = desc.clone().order(Order::Asc).cursor(cursor.clone());
        let err = other_order.validate().unwrap_err();
        assert!(err.to_string().contains("`desc`"), "{err}");
        for foreign in [
            AuditQuery::new(Scope::tenant("globex")).entity_type("Tenant"),
            AuditQuery::new(Scope::All).entity_type("Tenant"),
            AuditQuery::new(Scope::team("acme", "ops")).entity_type("Tenant"),
            AuditQuery::new(Scope::tenant("acme")),
            desc.clone().text("x"),
            desc.clone().actor_kind(ActorKind::User),
            desc.clone()
                .from(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        ] {
            assert_eq!(
                invalid_parameter(foreign.cursor(cursor.clone()).validate()),
                "cursor"
            );
        }
    }
}
