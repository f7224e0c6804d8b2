//! [`TraceId`]: the W3C Trace Context trace id an entry is linked to, so that whoever looks at
//! a trace can find the entries its request left, and the other way round.
//!
//! An entry keeps the id as [`AuditEntry::trace_id`](crate::AuditEntry::trace_id): 32
//! lowercase hexadecimal digits, never all zeros, the form a `traceparent` header carries and
//! tracing back ends show. [`TraceId::from_traceparent`] reads it from such a header;
//! [`is_trace_id`] says whether a text is one.
//!
//! ```
//! use audit_core::trace::TraceId;
//!
//! let header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let id = TraceId::from_traceparent(header).unwrap();
//! assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!("4bf92f3577b34da6a3ce929d0e0e4736".parse::<TraceId>(), Ok(id));
//! assert!(TraceId::from_traceparent(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
//! ```

use std::fmt;
use std::str::FromStr;

use crate::parse::ParseError;

/// A W3C Trace Context trace id: 16 bytes, not all zero. Its text form is 32 lowercase
/// hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// The length of a trace id's text form.
pub const TRACE_ID_LEN: usize = 32;

/// The length of a `traceparent` value of version `00`: `vv-<32>-<16>-ff`.
const TRACEPARENT_LEN: usize = 55;

/// The value of a lowercase hexadecimal digit.
#[inline]
fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The bytes of `text`, lowercase hexadecimal digits of exactly `N` bytes.
#[inline]
fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl TraceId {
    /// The trace id of these bytes; `None` for 16 zero bytes, which W3C Trace Context reserves
    /// for "no trace".
    pub fn from_bytes(bytes: [u8; 16]) -> Option<TraceId> {
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// The 16 bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The trace id of a `traceparent` header's value, as W3C Trace Context defines it:
    /// `version-traceid-parentid-flags`, each part lowercase hexadecimal digits: a version of
    /// two (not `ff`), a trace id of 32 (not all zeros), a parent id of 16 (not all zeros) and
    /// flags of two. Version `00` has exactly these four parts; a later version may carry more
    /// after the flags, behind another `-`. Spaces and tabs around the value are ignored.
    ///
    /// Anything else gives `None`: a malformed header only means the entry has no trace id.
    /// Reads the value in place and allocates nothing.
    pub fn from_traceparent(value: &[u8]) -> Option<TraceId> {
        let value = value.trim_ascii();
        if value.len() < TRACEPARENT_LEN
            || value[2] != b'-'
            || value[35] != b'-'
            || value[52] != b'-'
        {
            return None;
        }
        let [version] = decode::<1>(&value[..2])?;
        match (version, value.len()) {
            (0xff, _) => return None,
            (0, len) if len != TRACEPARENT_LEN => return None,
            (_, len) if len > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' => return None,
            _ => {}
        }
        let trace = decode::<16>(&value[3..35])?;
        let parent = decode::<8>(&value[36..52])?;
        decode::<1>(&value[53..55])?;
        if parent == [0; 8] {
            return None;
        }
        TraceId::from_bytes(trace)
    }

    /// Writes the 32 lowercase hexadecimal digits into `buf` and returns them, without
    /// allocating.
    pub fn encode_lower(self, buf: &mut [u8; TRACE_ID_LEN]) -> &str {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (pair, byte) in buf.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        // Only ASCII digits were written.
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

/// Whether `text` is a trace id's text form: 32 lowercase hexadecimal digits, not all zeros.
pub fn is_trace_id(text: &str) -> bool {
    decode::<16>(text.as_bytes()).is_some_and(|bytes| bytes != [0; 16])
}

impl FromStr for TraceId {
    type Err = ParseError;

    /// Reads the text form: exactly 32 lowercase hexadecimal digits, not all zeros.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode::<16>(text.as_bytes())
            .and_then(TraceId::from_bytes)
            .ok_or_else(|| {
                ParseError::new(
                    "trace_id",
                    text,
                    "expected a W3C trace id: 32 lowercase hexadecimal digits, not all zeros",
                )
            })
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode_lower(&mut [0; TRACE_ID_LEN]))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn parsed(value: &str) -> Option<String> {
        TraceId::from_traceparent(value.as_bytes()).map(|id| id.to_string())
    }

    #[test]
    fn a_valid_traceparent_gives_its_trace_id() {
        for value in [
            format!("00-{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{TRACE}-00f067aa0ba902b7-00"),
            format!(" 00-{TRACE}-00f067aa0ba902b7-01\t"),
            // A later version may carry more, after a dash.
            format!("01-{TRACE}-00f067aa0ba902b7-01"),
            format!("cc-{TRACE}-00f067aa0ba902b7-09-what-the-future-holds"),
        ] {
            assert_eq!(parsed(&value).as_deref(), Some(TRACE), "{value:?}");
        }
    }

    #[test]
    fn a_malformed_traceparent_gives_none() {
        let upper = TRACE.to_uppercase();
        for value in [
            String::new(),
            "00".to_owned(),
            format!("00-{TRACE}"),
            format!("00-{TRACE}-00f067aa0ba902b7"),
            format!("00-{TRACE}-00f067aa0ba902b7-"),
            format!("00-{TRACE}-00f067aa0ba902b7-1"),
            format!("00-{TRACE}-00f067aa0ba902b7-01-"),
            format!("00-{TRACE}-00f067aa0ba902b7-01-extra"),
            format!("00-{}-00f067aa0ba902b7-01", &TRACE[1..]),
            format!("00-{TRACE}0-00f067aa0ba902b7-01"),
            format!("00-{upper}-00f067aa0ba902b7-01"),
            format!("00-{TRACE}-00F067AA0BA902B7-01"),
            format!("00-{TRACE}-00f067aa0ba902b7-0A"),
            format!("0A-{TRACE}-00f067aa0ba902b7-01"),
            format!("ff-{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{TRACE}-0000000000000000-01"),
            format!("00_{TRACE}_00f067aa0ba902b7_01"),
            format!("00-{}-00f067aa0ba902b7-01", "g".repeat(32)),
            format!("cc-{TRACE}-00f067aa0ba902b7-01.x"),
            format!("00-{}-00f067aa0ba902b7-01", "é".repeat(16)),
        ] {
            assert_eq!(parsed(&value), None, "{value:?}");
        }
        assert!(TraceId::from_traceparent(&[0xff; 80]).is_none());
    }

    #[test]
    fn the_text_form_reads_back_and_nothing_else_does() {
        let id: TraceId = TRACE.parse().unwrap();
        assert_eq!(id.to_string(), TRACE);
        assert_eq!(format!("{id:?}"), format!("TraceId({TRACE})"));
        assert_eq!(TraceId::from_bytes(id.to_bytes()), Some(id));
        assert!(is_trace_id(TRACE));
        for bad in [
            "",
            &TRACE[..31],
            &TRACE.to_uppercase(),
            &"0".repeat(32),
            &format!("{TRACE}0"),
        ] {
            assert!(!is_trace_id(bad), "{bad:?}");
            let err = bad.parse::<TraceId>().unwrap_err();
            assert_eq!(err.what(), "trace_id");
        }
        assert_eq!(TraceId::from_bytes([0; 16]), None);
    }
}
