//! CSV rows of audit entries: RFC 4180, with spreadsheet formulas neutralised.
//!
//! Audit entries hold text that callers chose (entity names, details, user agents), and a
//! spreadsheet opening the export would run a cell such as `=HYPERLINK(...)` as a formula. Any
//! cell starting with `=`, `+`, `-`, `@`, a tab, a carriage return or a line feed is therefore
//! prefixed with `'`, which spreadsheets show as text; the data stays readable.

use audit_core::AuditEntry;
use chrono::SecondsFormat;

/// The columns, in order: the entry's fields, with `changes` and `metadata` as JSON text.
pub(crate) const COLUMNS: &[&str] = &[
    "id",
    "occurred_at",
    "tenant_id",
    "team_id",
    "actor_kind",
    "actor_id",
    "actor_name",
    "api_key_id",
    "api_key_name",
    "action",
    "entity_type",
    "entity_id",
    "entity_name",
    "details",
    "changes",
    "outcome",
    "status",
    "ip",
    "user_agent",
    "request_id",
    "method",
    "route",
    "metadata",
];

/// Appends the header row.
pub(crate) fn write_header(out: &mut Vec<u8>) {
    for (i, column) in COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_cell(out, column);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one entry as a row.
pub(crate) fn write_row(out: &mut Vec<u8>, e: &AuditEntry) -> Result<(), serde_json::Error> {
    let opt = |value: &Option<String>| value.clone().unwrap_or_default();
    let cells: [String; 23] = [
        e.id.to_string(),
        e.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        opt(&e.tenant_id),
        opt(&e.team_id),
        e.actor_kind.as_str().to_owned(),
        opt(&e.actor_id),
        opt(&e.actor_name),
        opt(&e.api_key_id),
        opt(&e.api_key_name),
        e.action.as_str().to_owned(),
        opt(&e.entity_type),
        opt(&e.entity_id),
        opt(&e.entity_name),
        opt(&e.details),
        if e.changes.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&e.changes)?
        },
        e.outcome.as_str().to_owned(),
        e.status.map(|s| s.to_string()).unwrap_or_default(),
        e.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        opt(&e.user_agent),
        opt(&e.request_id),
        opt(&e.method),
        opt(&e.route),
        if e.metadata.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&e.metadata)?
        },
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_cell(out, cell);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends one cell: neutralised, then quoted when RFC 4180 requires it.
fn write_cell(out: &mut Vec<u8>, value: &str) {
    let neutralise = value.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']);
    let quote = neutralise || value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push(b'"');
    }
    if neutralise {
        out.push(b'\'');
    }
    for byte in value.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    if quote {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> String {
        let mut out = Vec::new();
        write_cell(&mut out, value);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn cells_are_quoted_and_neutralised() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(cell("=1+1"), "\"'=1+1\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("\tx"), "\"'\tx\"");
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("a=b"), "a=b");
        assert_eq!(COLUMNS.len(), 23);
    }
}
