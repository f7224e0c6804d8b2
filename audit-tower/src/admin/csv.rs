//! CSV rows of audit entries: RFC 4180 through the `csv` crate, one column per field of the
//! entry's serialised form, with spreadsheet formulas neutralised.
//!
//! The columns come from serde ([`AuditEntry::fields_as_json`]): each field the entry
//! serialises is a column, in the order it serialises them, with strings and numbers as their text, `null` and empty lists or objects
//! as an empty cell, and other lists and objects (`changes`, `metadata`) as JSON text. A field
//! added to the entry is a column with no change here.
//!
//! Entries hold text that callers chose (entity names, details, user agents), and a spreadsheet
//! opening the export would run a cell such as `=HYPERLINK(...)` as a formula. Any cell starting
//! with `=`, `+`, `-`, `@`, a tab, a carriage return or a line feed is therefore prefixed with
//! `'`, which spreadsheets show as text; the data stays readable.
//!
//! A spreadsheet set to split on `;` or tabs (Excel in many European locales) would cut a cell
//! such as `a;=cmd|' /C calc'!A0` in two and run the second part, and one that loses track of
//! the quoting starts a new row at a line break inside a cell. So the same prefix also goes
//! before such a character when it follows a `;`, a tab, a carriage return or a line feed
//! inside a cell (`a;'=cmd|' /C calc'!A0`): whatever a reader splits on, no piece starts as a
//! formula. Commas need no such care: a cell holding one is quoted, and the JSON text of
//! `changes` and `metadata` keeps its numbers.

use audit_core::AuditEntry;

/// The header row: the names of the entry's serialised fields, in order.
pub(crate) fn columns() -> Vec<&'static str> {
    AuditEntry::field_names()
}

/// Appends the header row to `out`.
pub(crate) fn write_header(out: &mut Vec<u8>) -> Result<(), csv::Error> {
    let mut writer = writer(out);
    writer.write_record(columns())?;
    writer.flush()?;
    Ok(())
}

/// Appends `entries` as rows to `out`.
pub(crate) fn write_rows<'a>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<(), csv::Error> {
    let mut writer = writer(out);
    for entry in entries {
        let cells = entry
            .fields_as_json()
            .into_iter()
            .map(|(_, json)| cell(json));
        writer.write_record(cells.map(neutralised))?;
    }
    writer.flush()?;
    Ok(())
}

fn writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

/// What a spreadsheet runs as a formula when a cell starts with it (line breaks last).
const TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];
/// What a reader might split a cell at: the separators of other locales and line breaks.
const SPLITS: [char; 4] = [';', '\t', '\r', '\n'];

/// `cell` with `'` before a formula trigger at its start or right after any of [`SPLITS`]
/// (there, a line break is left alone: it only starts another piece).
fn neutralised(cell: String) -> String {
    let mut out = String::with_capacity(cell.len() + 1);
    let mut first = true;
    let mut after_split = false;
    for c in cell.chars() {
        if (first && TRIGGERS.contains(&c)) || (after_split && TRIGGERS[..5].contains(&c)) {
            out.push('\'');
        }
        out.push(c);
        first = false;
        after_split = SPLITS.contains(&c);
    }
    out
}

/// The cell of one field's JSON text: strings and numbers as their text, `null` and empty lists
/// or objects as nothing, other lists and objects as their JSON text.
fn cell(json: String) -> String {
    match json.as_str() {
        "null" | "[]" | "{}" => String::new(),
        text if text.starts_with('"') => serde_json::from_str(text).unwrap_or(json),
        _ => json,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use audit_core::{Action, Change};
    use serde_json::json;

    fn row(entry: &AuditEntry) -> csv::StringRecord {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        write_rows(&mut out, [entry]).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        reader.records().next().unwrap().unwrap()
    }

    #[test]
    fn cells_are_neutralised_and_round_trip_through_a_reader() {
        for (value, expected) in [
            ("plain", "plain"),
            ("a,b", "a,b"),
            ("say \"hi\"", "say \"hi\""),
            ("two\r\nlines", "two\r\nlines"),
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
            ("a;=cmd|' /C calc'!A0;b", "a;'=cmd|' /C calc'!A0;b"),
            ("a\t+1", "a\t'+1"),
            ("line\r\n@SUM(A1)", "line\r\n'@SUM(A1)"),
            ("\t\t=1", "'\t'\t'=1"),
            ("a,-1;b", "a,-1;b"),
        ] {
            let entry = AuditEntry::builder(Action::Update).details(value).build();
            let columns = columns();
            let details = columns.iter().position(|c| *c == "details").unwrap();
            assert_eq!(&row(&entry)[details], expected, "{value:?}");
        }
    }

    #[test]
    fn columns_follow_the_serialised_entry() {
        let entry = AuditEntry::builder(Action::Update)
            .tenant("acme")
            .changes(vec![Change::new("host", json!("a"), json!("b"))])
            .metadata("region", "eu")
            .build();
        let json = serde_json::to_value(&entry).unwrap();
        let record = row(&entry);
        let changes = serde_json::to_string(&entry.changes).unwrap();
        let columns = columns();
        assert_eq!(columns.len(), json.as_object().unwrap().len());
        for (column, cell) in columns.iter().zip(record.iter()) {
            let expected = match &json[*column] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.clone(),
                _ if *column == "changes" => changes.clone(),
                other => other.to_string(),
            };
            assert_eq!(cell, expected, "{column}");
        }
        let bare = row(&AuditEntry::new(Action::Create));
        let changes = columns.iter().position(|c| *c == "changes").unwrap();
        let metadata = columns.iter().position(|c| *c == "metadata").unwrap();
        assert_eq!((&bare[changes], &bare[metadata]), ("", ""));
    }
}
