//! Streaming exports: CSV, a JSON array, and NDJSON, written chunk by chunk as the store yields
//! entries, so the memory held does not grow with the number of rows.

use audit_core::AuditEntry;
use audit_core::chain::ChainLink;
use audit_core::store::StoreError;
use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::stream::{self, BoxStream, StreamExt};
use http::HeaderValue;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};

use super::csv;
use super::response::common_headers;

/// Entries that are ready together are written into one body chunk, up to this many.
const CHUNK_ENTRIES: usize = 256;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Json,
    Ndjson,
}

impl Format {
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    fn head(self) -> Result<Vec<u8>, ::csv::Error> {
        let mut out = Vec::new();
        match self {
            Format::Csv => csv::write_header(&mut out)?,
            Format::Json => out.push(b'['),
            Format::Ndjson => {}
        }
        Ok(out)
    }

    fn tail(self) -> &'static [u8] {
        match self {
            Format::Json => b"\n]\n",
            Format::Csv | Format::Ndjson => b"",
        }
    }

    /// Appends `entries`; `first` says whether they are the first items of the export. In
    /// JSON and NDJSON, an entry with a link carries it as its `"chain"` object (the shape of
    /// `audit_core::chain::linked_json`).
    fn write(self, out: &mut Vec<u8>, entries: &[Item], first: bool) -> Result<(), String> {
        match self {
            Format::Csv => {
                let rows: Vec<&AuditEntry> = entries
                    .iter()
                    .filter_map(|item| match item {
                        Item::Entry(entry, _) => Some(entry),
                        Item::Record(_) => None,
                    })
                    .collect();
                csv::write_rows(out, rows).map_err(|e| e.to_string())
            }
            Format::Json | Format::Ndjson => {
                for (i, item) in entries.iter().enumerate() {
                    if self == Format::Json {
                        out.extend_from_slice(if first && i == 0 { b"\n" } else { b",\n" });
                    }
                    item.write_json(out)?;
                    if self == Format::Ndjson {
                        out.push(b'\n');
                    }
                }
                Ok(())
            }
        }
    }
}

/// One item of an export: an entry with its link, if it has one, or a record about the chain
/// (where it starts, a signed checkpoint) that JSON and NDJSON carry and CSV leaves out.
#[allow(clippy::large_enum_variant)] // nearly every item is an entry: boxing would allocate per row
pub(crate) enum Item {
    /// An entry.
    Entry(AuditEntry, Option<ChainLink>),
    /// A JSON object of its own.
    Record(serde_json::Value),
}

impl Item {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Item::Record(value) => {
                serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())
            }
            Item::Entry(entry, None) => {
                serde_json::to_writer(&mut *out, entry).map_err(|e| e.to_string())
            }
            Item::Entry(entry, Some(link)) => {
                serde_json::to_writer(&mut *out, entry).map_err(|e| e.to_string())?;
                // The entry is a JSON object: its link goes in before the closing brace.
                if out.last() != Some(&b'}') {
                    return Err("an entry did not serialise as an object".to_owned());
                }
                out.pop();
                out.extend_from_slice(b",\"chain\":");
                let chain = serde_json::json!({
                    "seq": link.seq,
                    "hash": link.hash.to_hex(),
                    "personal": link.personal.digest.to_hex(),
                    "salt": link.personal.salt_hex(),
                });
                serde_json::to_writer(&mut *out, &chain).map_err(|e| e.to_string())?;
                out.push(b'}');
                Ok(())
            }
        }
    }
}

/// The streamed response for `entries` (and records) in `format`, offered as a file named
/// `file_stem` plus the format's extension.
///
/// A store error after the first bytes were sent cannot change the status any more; the body
/// then ends with an error, which aborts the transfer, so the client sees a failed download
/// (and a JSON array that never closes) rather than a silently short file.
pub(crate) fn response(
    format: Format,
    file_stem: &str,
    entries: BoxStream<'static, Result<Item, StoreError>>,
) -> Response {
    let mut first = true;
    let rows = entries.ready_chunks(CHUNK_ENTRIES).map(move |chunk| {
        let entries = chunk
            .into_iter()
            .collect::<Result<Vec<Item>, StoreError>>()
            .inspect_err(|error| {
                tracing::error!(%error, "audit admin: the store failed during an export");
            })?;
        let mut out = Vec::with_capacity(entries.len() * 512);
        format
            .write(&mut out, &entries, first)
            .map_err(|error| StoreError::Backend(error.into()))?;
        first = false;
        Ok::<_, StoreError>(Bytes::from(out))
    });
    let head = format
        .head()
        .map_err(|error| StoreError::Backend(Box::new(error)));
    let body = stream::once(async move { head.map(Bytes::from) })
        .chain(rows)
        .chain(stream::once(async move {
            Ok(Bytes::from_static(format.tail()))
        }));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let disposition = format!(
        "attachment; filename=\"{file_stem}.{}\"",
        format.extension()
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    common_headers(headers);
    response
}
