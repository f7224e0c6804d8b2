//! The hash chain that makes the log tamper-evident: the canonical encoding of an entry, the
//! digest of its personal fields, and the check of a run of linked entries.
//!
//! Each tenant's entries (and the entries without a tenant, as a chain of their own) are
//! numbered 1, 2, 3… in the order they were stored. Entry *n* carries
//!
//! - `personal`: SHA-256 over a random salt and the entry's personal fields (actor name, IP
//!   address, user agent), so that those fields can be erased later without breaking the chain;
//! - `hash`: SHA-256 over the canonical encoding of the entry's other fields, `personal`, *n*
//!   and the hash of entry *n − 1* (32 zero bytes for entry 1).
//!
//! Changing, removing, inserting or reordering an entry changes a hash that a later entry
//! depends on. The encoding is specified in `docs/chain.md` precisely enough to reimplement it;
//! `scripts/verify_chain.py` does so in Python, and the project's CI runs it on the test vectors
//! in `audit-core/tests/data/chain-v1.json`.
//!
//! ```
//! use audit_core::chain::{ChainHash, Personal, link};
//! use audit_core::{Action, AuditEntry};
//!
//! let entry = AuditEntry::builder(Action::Create).tenant("acme").build();
//! let personal = Personal::seal(&entry);
//! let first = link(&entry, 1, &ChainHash::GENESIS, &personal.digest);
//! let second = link(&entry, 2, &first, &personal.digest);
//! assert_ne!(first, second);
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::SecondsFormat;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::AuditEntry;

/// What the encoding of a link starts with; a later version of the encoding changes it.
pub const CHAIN_DOMAIN: &str = "tower-audit chain v1\n";
/// What the encoding of the personal fields starts with.
pub const PERSONAL_DOMAIN: &str = "tower-audit personal v1\n";

/// A SHA-256 digest: an entry's hash, the previous entry's, or a personal digest. Written as
/// 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// What the first entry of a chain links to: 32 zero bytes.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// The 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// A text that is not 64 hexadecimal digits (or, for a salt, 32).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hexadecimal digits, got {text:?}")]
pub struct HexError {
    /// How many digits were expected.
    pub expected: usize,
    /// What was given, cut to 80 characters.
    pub text: String,
}

pub(crate) fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let error = || HexError {
        expected: N * 2,
        text: text.chars().take(80).collect(),
    };
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return Err(error());
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(error());
        };
        out[i] = high << 4 | low;
    }
    Ok(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    // Only ASCII digits were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `bytes` as lowercase hexadecimal digits.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
}

impl FromStr for ChainHash {
    type Err = HexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_hex::<32>(text).map(ChainHash)
    }
}

/// The digest an entry's chain link commits to in place of its personal fields, and the salt
/// it was made with. Erasing the fields drops the salt too, so that nobody can confirm a guess
/// of what they held; the digest stays and the chain still verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Personal {
    /// 16 random bytes; `None` once the fields are erased.
    pub salt: Option<[u8; 16]>,
    /// SHA-256 over the salt and the fields (see [`personal_digest`]).
    pub digest: ChainHash,
}

impl Personal {
    /// A fresh random salt and the digest of `entry`'s personal fields under it.
    pub fn seal(entry: &AuditEntry) -> Personal {
        let salt = uuid::Uuid::new_v4().into_bytes();
        Personal {
            salt: Some(salt),
            digest: personal_digest(&salt, entry),
        }
    }

    /// The salt as 32 hexadecimal digits.
    pub fn salt_hex(&self) -> Option<String> {
        self.salt.map(|salt| hex(&salt))
    }

    /// Reads a salt written by [`salt_hex`](Self::salt_hex).
    pub fn parse_salt(text: &str) -> Result<[u8; 16], HexError> {
        from_hex::<16>(text)
    }
}

/// What an erasure leaves in an entry's actor name and user agent (its IP address becomes
/// `None`): see [`erase_personal`].
pub const ERASED: &str = "[ERASED]";

/// Replaces `entry`'s personal fields with what an erasure leaves: [`ERASED`] for the actor
/// name and the user agent, no IP address.
pub fn erase_personal(entry: &mut AuditEntry) {
    entry.actor_name = Some(ERASED.to_owned());
    entry.ip = None;
    entry.user_agent = Some(ERASED.to_owned());
}

/// Whether `entry`'s personal fields are what an erasure leaves.
pub fn is_erased(entry: &AuditEntry) -> bool {
    entry.actor_name.as_deref() == Some(ERASED)
        && entry.ip.is_none()
        && entry.user_agent.as_deref() == Some(ERASED)
}

/// SHA-256 over [`PERSONAL_DOMAIN`], the salt (as a string of 32 hexadecimal digits), the actor
/// name, the IP address (its text form) and the user agent, each an item of the canonical
/// encoding.
pub fn personal_digest(salt: &[u8; 16], entry: &AuditEntry) -> ChainHash {
    let mut out = Encoder::new(PERSONAL_DOMAIN);
    out.hex_string(salt);
    out.optional(entry.actor_name.as_deref());
    out.optional(entry.ip.map(|ip| ip.to_string()).as_deref());
    out.optional(entry.user_agent.as_deref());
    out.finish()
}

/// The canonical encoding of entry `seq` of its chain, linked to `prev`, with `personal` in
/// place of its personal fields: the bytes [`link`] hashes. See `docs/chain.md`: 23 items, and
/// a 24th, the trace id, only when the entry has one.
pub fn encode(entry: &AuditEntry, seq: u64, prev: &ChainHash, personal: &ChainHash) -> Vec<u8> {
    let mut out = Encoder::new(CHAIN_DOMAIN);
    out.integer(i128::from(seq));
    out.hex_string(&prev.0);
    out.string(
        entry
            .id
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    out.string(
        &entry
            .occurred_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    out.optional(entry.tenant_id.as_deref());
    out.optional(entry.team_id.as_deref());
    out.string(entry.actor_kind.as_str());
    out.optional(entry.actor_id.as_deref());
    out.optional(entry.api_key_id.as_deref());
    out.optional(entry.api_key_name.as_deref());
    out.string(entry.action.as_str());
    out.optional(entry.entity_type.as_deref());
    out.optional(entry.entity_id.as_deref());
    out.optional(entry.entity_name.as_deref());
    out.optional(entry.details.as_deref());
    out.array_header(entry.changes.len());
    for change in &entry.changes {
        out.array_header(3);
        out.string(&change.field);
        out.value(&change.old);
        out.value(&change.new);
    }
    out.string(entry.outcome.as_str());
    match entry.status {
        Some(status) => out.integer(i128::from(status)),
        None => out.null(),
    }
    out.optional(entry.request_id.as_deref());
    out.optional(entry.method.as_deref());
    out.optional(entry.route.as_deref());
    out.object_header(entry.metadata.len());
    let mut keys: Vec<&String> = entry.metadata.keys().collect();
    keys.sort_unstable();
    for key in keys {
        out.string(key);
        out.value(&entry.metadata[key.as_str()]);
    }
    out.hex_string(&personal.0);
    // Appended only when there is one, so that an entry without a trace id (every entry
    // stored before trace ids existed) encodes exactly as it always did.
    if let Some(trace_id) = &entry.trace_id {
        out.string(trace_id);
    }
    out.bytes
}

/// The hash of entry `seq` of its chain: SHA-256 over [`encode`].
pub fn link(entry: &AuditEntry, seq: u64, prev: &ChainHash, personal: &ChainHash) -> ChainHash {
    ChainHash(Sha256::digest(encode(entry, seq, prev, personal)).into())
}

/// Builds the canonical encoding: a domain line, then items.
pub(crate) struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new(domain: &str) -> Self {
        let mut bytes = Vec::with_capacity(512);
        bytes.extend_from_slice(domain.as_bytes());
        Encoder { bytes }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn finish(self) -> ChainHash {
        ChainHash(Sha256::digest(&self.bytes).into())
    }

    fn null(&mut self) {
        self.bytes.push(b'N');
    }

    pub(crate) fn string(&mut self, text: &str) {
        self.bytes.push(b'S');
        self.decimal(text.len() as u128);
        self.bytes.push(b':');
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// The string of `bytes` in lowercase hexadecimal digits, written without building it.
    fn hex_string(&mut self, bytes: &[u8]) {
        self.bytes.push(b'S');
        self.decimal(bytes.len() as u128 * 2);
        self.bytes.push(b':');
        push_hex(&mut self.bytes, bytes);
    }

    /// `value` in decimal digits, without a sign.
    fn decimal(&mut self, mut value: u128) {
        let mut digits = [0u8; 39];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.bytes.extend_from_slice(&digits[start..]);
    }

    pub(crate) fn optional(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.string(text),
            None => self.null(),
        }
    }

    pub(crate) fn integer(&mut self, value: i128) {
        self.bytes.push(b'I');
        if value < 0 {
            self.bytes.push(b'-');
        }
        self.decimal(value.unsigned_abs());
        self.bytes.push(b';');
    }

    /// `tag`, `count` in decimal, `:`: the start of an array (`A`) or an object (`O`).
    fn header(&mut self, tag: u8, count: usize) {
        self.bytes.push(tag);
        self.decimal(count as u128);
        self.bytes.push(b':');
    }

    fn array_header(&mut self, count: usize) {
        self.header(b'A', count);
    }

    fn object_header(&mut self, count: usize) {
        self.header(b'O', count);
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.null(),
            Value::Bool(true) => self.bytes.push(b'T'),
            Value::Bool(false) => self.bytes.push(b'F'),
            Value::Number(number) => {
                if let Some(n) = number.as_i64() {
                    self.integer(i128::from(n));
                } else if let Some(n) = number.as_u64() {
                    self.integer(i128::from(n));
                } else {
                    // Any other number is a binary64 float: its bits, so that no decimal
                    // formatting has to agree between languages.
                    let bits = number.as_f64().unwrap_or(f64::NAN).to_bits();
                    self.bytes.push(b'D');
                    push_hex(&mut self.bytes, &bits.to_be_bytes());
                }
            }
            Value::String(text) => self.string(text),
            Value::Array(items) => {
                self.array_header(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.object_header(map.len());
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable();
                for key in keys {
                    self.string(key);
                    self.value(&map[key.as_str()]);
                }
            }
        }
    }
}

/// An entry's place in its chain, as stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// Its number in its tenant's chain, from 1.
    pub seq: u64,
    /// Its hash (see [`link`]).
    pub hash: ChainHash,
    /// The digest of its personal fields and, unless they were erased, the salt.
    pub personal: Personal,
}

/// Why a chain does not verify, at the first entry where it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's sequence number is not the one after the previous entry's: an entry is
    /// missing, inserted, or renumbered.
    #[error("entry {id}: sequence {found}, expected {expected}")]
    Sequence {
        /// The entry's id.
        id: uuid::Uuid,
        /// What it carries.
        found: u64,
        /// What follows the previous entry.
        expected: u64,
    },
    /// The hash recomputed from the entry's content and the previous hash differs from the
    /// stored one: a field was changed, or an entry before it was.
    #[error("entry {id} (sequence {seq}): its content does not match its hash")]
    Hash {
        /// The entry's id.
        id: uuid::Uuid,
        /// Its sequence number.
        seq: u64,
    },
    /// The personal fields do not match their digest, or, once erased, are not the erasure's
    /// marker: they were changed after the entry was stored.
    #[error("entry {id} (sequence {seq}): its personal fields do not match their digest")]
    Personal {
        /// The entry's id.
        id: uuid::Uuid,
        /// Its sequence number.
        seq: u64,
    },
    /// The chain holds another hash at a signed checkpoint's sequence number than the
    /// checkpoint does: entries up to it were rewritten since it was signed.
    #[error("sequence {seq}: the chain differs from the signed checkpoint")]
    Checkpoint {
        /// The checkpoint's sequence number.
        seq: u64,
    },
    /// The chain ends before its recorded head (or a checkpoint): its newest entries were
    /// cut off.
    #[error("the chain ends at sequence {last}, but its head is at {head}")]
    Truncated {
        /// The last sequence number found.
        last: u64,
        /// Where the head says the chain ends.
        head: u64,
    },
    /// An entry with no link, stored after the chain began: written around the store.
    #[error("entry {id} has no link in the chain but is newer than its start")]
    Unchained {
        /// The entry's id.
        id: uuid::Uuid,
    },
    /// The chain starts after entry `start`, but no `Purge` entry in it vouches for deleting
    /// that far: its oldest entries were deleted around the store.
    #[error("the chain starts after sequence {start}, but no purge in it deleted that far")]
    Unattested {
        /// The sequence number the chain starts after.
        start: u64,
    },
}

/// What verifying one chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The tenant whose chain this is; `None` for entries without a tenant.
    pub tenant_id: Option<String>,
    /// The sequence number the chain starts after: 0 when it starts at its first entry,
    /// otherwise the last entry a purge deleted (see [`retention`](crate::retention)).
    pub start: u64,
    /// Entries whose links were checked (up to the break, if any).
    pub checked: u64,
    /// Entries stored before the chain began (before the store chained entries), older than
    /// its first link: counted, not checked.
    pub unchained: u64,
    /// The last sequence number and hash checked.
    pub last: (u64, ChainHash),
    /// The first broken link, if any.
    pub broken: Option<ChainBreak>,
}

impl ChainReport {
    /// The report of `tenant`'s chain before anything was checked.
    pub fn new(tenant_id: Option<String>) -> Self {
        ChainReport {
            tenant_id,
            start: 0,
            checked: 0,
            unchained: 0,
            last: (0, ChainHash::GENESIS),
            broken: None,
        }
    }

    /// Whether the chain verified.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }

    /// The report of a chain that starts after entry `start`, whose hash is `hash`: checking
    /// continues from there.
    pub fn starting_after(tenant_id: Option<String>, start: u64, hash: ChainHash) -> Self {
        ChainReport {
            start,
            last: (start, hash),
            ..ChainReport::new(tenant_id)
        }
    }
}

/// Whether a chain that starts after `start` is vouched for: it starts at its beginning, or
/// `purged_through` (the largest number a `Purge` entry of the chain records deleting through;
/// see [`retention::purged_through`](crate::retention::purged_through)) reaches `start`.
pub fn start_attested(start: u64, purged_through: Option<u64>) -> Result<(), ChainBreak> {
    if start == 0 || purged_through.is_some_and(|through| through >= start) {
        Ok(())
    } else {
        Err(ChainBreak::Unattested { start })
    }
}

/// Checks a run of one chain's entries, in sequence order, each with its stored link. `start`
/// is where the run begins: the sequence number and hash of the entry before the first one
/// (`(0, GENESIS)` for a chain checked from its beginning). Returns the last entry's sequence
/// number and hash, to continue from, or the first break.
pub fn verify_run<'a>(
    start: (u64, ChainHash),
    entries: impl IntoIterator<Item = (&'a AuditEntry, &'a ChainLink)>,
) -> Result<(u64, ChainHash), ChainBreak> {
    let (mut seq, mut prev) = start;
    for (entry, stored) in entries {
        let expected = seq + 1;
        if stored.seq != expected {
            return Err(ChainBreak::Sequence {
                id: entry.id,
                found: stored.seq,
                expected,
            });
        }
        // With its salt, the personal fields must match their digest; without (erased), they
        // must be the erasure's marker, so that nothing can be written in their place.
        let personal_ok = match &stored.personal.salt {
            Some(salt) => personal_digest(salt, entry) == stored.personal.digest,
            None => is_erased(entry),
        };
        if !personal_ok {
            return Err(ChainBreak::Personal {
                id: entry.id,
                seq: stored.seq,
            });
        }
        if link(entry, stored.seq, &prev, &stored.personal.digest) != stored.hash {
            return Err(ChainBreak::Hash {
                id: entry.id,
                seq: stored.seq,
            });
        }
        seq = stored.seq;
        prev = stored.hash;
    }
    Ok((seq, prev))
}

/// An export's entry with its link: the entry's JSON form with the link as a `"chain"` object
/// (`seq`, `hash`, `personal`, `salt`), the shape `docs/chain.md` describes and
/// `scripts/verify_chain.py` reads.
pub fn linked_json(entry: &AuditEntry, link: &ChainLink) -> Value {
    let mut value = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "chain".to_owned(),
            serde_json::json!({
                "seq": link.seq,
                "hash": link.hash.to_hex(),
                "personal": link.personal.digest.to_hex(),
                "salt": link.personal.salt_hex(),
            }),
        );
    }
    value
}

/// Why an export's entry could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The entry's fields are not an entry.
    #[error("not an audit entry: {0}")]
    Entry(#[from] serde_json::Error),
    /// The `"chain"` object is missing or malformed.
    #[error("entry {id}: {message}")]
    Link {
        /// The entry's id, or `?` when the entry could not be read either.
        id: String,
        /// What is wrong with its link.
        message: String,
    },
}

/// Reads an entry and its link written by [`linked_json`].
pub fn from_linked_json(mut value: Value) -> Result<(AuditEntry, ChainLink), ExportError> {
    let chain = value
        .as_object_mut()
        .and_then(|map| map.remove("chain"))
        .unwrap_or(Value::Null);
    let entry: AuditEntry = serde_json::from_value(value)?;
    let bad = |message: &str| ExportError::Link {
        id: entry.id.to_string(),
        message: message.to_owned(),
    };
    let seq = chain
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no \"chain\" object with a sequence number"))?;
    let hash = |name: &str| -> Result<ChainHash, ExportError> {
        chain
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("no {name} in its \"chain\" object")))?
            .parse()
            .map_err(|e: HexError| bad(&format!("{name}: {e}")))
    };
    let salt = match chain.get("salt") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(Personal::parse_salt(text).map_err(|e| bad(&format!("salt: {e}")))?)
        }
        Some(_) => return Err(bad("salt: not a string")),
    };
    let link = ChainLink {
        seq,
        hash: hash("hash")?,
        personal: Personal {
            salt,
            digest: hash("personal")?,
        },
    };
    Ok((entry, link))
}

/// [`verify_run`] that also counts: how many entries of `entries` checked from `start`, the
/// last good link, and the break if one was found.
pub fn check_run<'a>(
    start: (u64, ChainHash),
    entries: impl IntoIterator<Item = (&'a AuditEntry, &'a ChainLink)>,
) -> (u64, (u64, ChainHash), Option<ChainBreak>) {
    let mut last = start;
    let mut checked = 0;
    for pair in entries {
        match verify_run(last, [pair]) {
            Ok(next) => {
                last = next;
                checked += 1;
            }
            Err(broken) => return (checked, last, Some(broken)),
        }
    }
    (checked, last, None)
}

/// Holds a verified chain against a signed checkpoint of it (already checked for its
/// signature): a chain that ends before the checkpoint's number was cut short
/// ([`ChainBreak::Truncated`]); one whose link at that number has another hash was rewritten
/// ([`ChainBreak::Checkpoint`]). `link_at` is the chain's link numbered `checkpoint.seq`, if
/// there is one. A report already broken is left as it is.
pub fn check_against(
    report: &mut ChainReport,
    link_at: Option<&ChainLink>,
    checkpoint: &crate::checkpoint::Checkpoint,
) {
    if report.broken.is_some() || checkpoint.seq == 0 {
        return;
    }
    if report.last.0 < checkpoint.seq {
        report.broken = Some(ChainBreak::Truncated {
            last: report.last.0,
            head: checkpoint.seq,
        });
    } else if link_at.is_none_or(|link| link.hash != checkpoint.hash) {
        report.broken = Some(ChainBreak::Checkpoint {
            seq: checkpoint.seq,
        });
    }
}

/// Where a chain a purge shortened starts: its tenant (`None`: the entries without a tenant),
/// and the number and hash of the last entry deleted.
pub type ChainStart = (Option<String>, u64, ChainHash);

/// Verifies the chains in an export: entries grouped by tenant and put in sequence order (an
/// export may list newest first), each chain checked from its first entry, which must be
/// number 1, or, for a chain a purge
/// shortened, the number after its start in `starts` (tenant, number and hash of the last
/// entry deleted; see [`linked_json_start`]), which a `Purge` entry of the chain must vouch for.
pub fn verify_export(
    entries: &[(AuditEntry, ChainLink)],
    starts: &[ChainStart],
) -> Vec<ChainReport> {
    type Run<'a> = Vec<(&'a AuditEntry, &'a ChainLink)>;
    let mut chains: Vec<(Option<&str>, Run<'_>)> = Vec::new();
    for (entry, link) in entries {
        let tenant = entry.tenant_id.as_deref();
        match chains.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, run)) => run.push((entry, link)),
            None => chains.push((tenant, vec![(entry, link)])),
        }
    }
    chains
        .into_iter()
        .map(|(tenant, mut run)| {
            run.sort_by_key(|(_, link)| link.seq);
            let mut report = match starts.iter().find(|(t, ..)| t.as_deref() == tenant) {
                Some((_, start, hash)) => {
                    ChainReport::starting_after(tenant.map(str::to_owned), *start, *hash)
                }
                None => ChainReport::new(tenant.map(str::to_owned)),
            };
            let through = run
                .iter()
                .filter_map(|(entry, _)| crate::retention::purged_through(entry))
                .max();
            let (checked, last, broken) = check_run(report.last, run);
            report.checked = checked;
            report.last = last;
            report.broken = broken.or_else(|| start_attested(report.start, through).err());
            report
        })
        .collect()
}

/// The line of an export that says where a chain a purge shortened starts: `{"chain_start":
/// {"tenant_id": …, "seq": …, "hash": …}}`, before the chain's entries.
pub fn linked_json_start(tenant: Option<&str>, seq: u64, hash: &ChainHash) -> Value {
    serde_json::json!({"chain_start": {"tenant_id": tenant, "seq": seq, "hash": hash.to_hex()}})
}

/// Reads a line written by [`linked_json_start`]; `None` when `value` is not one.
pub fn from_linked_json_start(value: &Value) -> Option<Result<ChainStart, ExportError>> {
    let start = value.get("chain_start")?;
    let bad = |message: &str| ExportError::Link {
        id: "chain_start".to_owned(),
        message: message.to_owned(),
    };
    let read = || {
        let tenant = match start.get("tenant_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(tenant)) => Some(tenant.clone()),
            Some(_) => return Err(bad("tenant_id: not a string")),
        };
        let seq = start
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no sequence number"))?;
        let hash = start
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no hash"))?
            .parse()
            .map_err(|e: HexError| bad(&format!("hash: {e}")))?;
        Ok((tenant, seq, hash))
    };
    Some(read())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Action, Actor, Change};
    use serde_json::json;

    fn sample() -> AuditEntry {
        let mut entry = AuditEntry::builder(Action::Update)
            .actor(Actor::user("u1", "ada@example.com"))
            .tenant("acme")
            .entity("ConnectionProfile", "p-1")
            .build();
        entry.changes = vec![Change::new("host", json!("a"), json!(1.5))];
        entry.ip = Some("203.0.113.9".parse().unwrap());
        entry
    }

    fn chain(entries: &[AuditEntry]) -> Vec<ChainLink> {
        let mut prev = ChainHash::GENESIS;
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let personal = Personal::seal(entry);
                let hash = link(entry, i as u64 + 1, &prev, &personal.digest);
                prev = hash;
                ChainLink {
                    seq: i as u64 + 1,
                    hash,
                    personal,
                }
            })
            .collect()
    }

    #[test]
    fn hashes_read_back_from_their_hex_and_bad_hex_is_refused() {
        let hash = link(&sample(), 1, &ChainHash::GENESIS, &ChainHash::GENESIS);
        assert_eq!(hash.to_hex().parse::<ChainHash>(), Ok(hash));
        assert!("zz".repeat(32).parse::<ChainHash>().is_err());
        assert!("ab".parse::<ChainHash>().is_err());
        assert!("é".repeat(32).parse::<ChainHash>().is_err());
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let base = sample();
        let personal = ChainHash([7; 32]);
        let hash = link(&base, 3, &ChainHash::GENESIS, &personal);
        let mut variants: Vec<AuditEntry> = Vec::new();
        let mut push = |f: fn(&mut AuditEntry)| {
            let mut e = base.clone();
            f(&mut e);
            variants.push(e);
        };
        push(|e| e.tenant_id = None);
        push(|e| e.team_id = Some(String::new()));
        push(|e| e.entity_id = Some("p-2".into()));
        push(|e| e.details = Some("x".into()));
        push(|e| e.changes[0].new = json!(1.25));
        push(|e| e.changes[0].new = json!("1.5"));
        push(|e| e.status = Some(200));
        push(|e| {
            e.metadata.insert("k".into(), json!(null));
        });
        push(|e| e.occurred_at += chrono::Duration::microseconds(1));
        push(|e| e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into()));
        for variant in &variants {
            assert_ne!(link(variant, 3, &ChainHash::GENESIS, &personal), hash);
        }
        assert_ne!(link(&base, 4, &ChainHash::GENESIS, &personal), hash);
        assert_ne!(link(&base, 3, &ChainHash([1; 32]), &personal), hash);
        assert_ne!(
            link(&base, 3, &ChainHash::GENESIS, &ChainHash([8; 32])),
            hash
        );
        // The personal fields enter only through their digest.
        let mut renamed = base.clone();
        renamed.actor_name = Some("[erased]".into());
        assert_eq!(link(&renamed, 3, &ChainHash::GENESIS, &personal), hash);
    }

    #[test]
    fn a_chain_verifies_and_each_kind_of_tampering_is_found() {
        let entries: Vec<AuditEntry> = (0..5).map(|_| sample()).collect();
        let links = chain(&entries);
        let all = || entries.iter().zip(links.iter());
        assert_eq!(
            verify_run((0, ChainHash::GENESIS), all()),
            Ok((5, links[4].hash))
        );
        // From the middle, given the link before.
        assert!(verify_run((2, links[1].hash), all().skip(2)).is_ok());

        // A changed field.
        let mut changed = entries.clone();
        changed[2].entity_name = Some("forged".into());
        assert!(matches!(
            verify_run((0, ChainHash::GENESIS), changed.iter().zip(links.iter())),
            Err(ChainBreak::Hash { seq: 3, .. })
        ));
        // A deleted middle entry.
        let skipped = all().filter(|(_, l)| l.seq != 3);
        assert!(matches!(
            verify_run((0, ChainHash::GENESIS), skipped),
            Err(ChainBreak::Sequence {
                found: 4,
                expected: 3,
                ..
            })
        ));
        // Two swapped entries, renumbered to look in order.
        let mut swapped: Vec<(AuditEntry, ChainLink)> =
            entries.iter().cloned().zip(links.iter().copied()).collect();
        swapped.swap(1, 2);
        swapped[1].1.seq = 2;
        swapped[2].1.seq = 3;
        assert!(verify_run((0, ChainHash::GENESIS), swapped.iter().map(|(e, l)| (e, l))).is_err());
        // A changed personal field, with its salt still there.
        let mut renamed = entries.clone();
        renamed[0].actor_name = Some("mallory@example.com".into());
        assert!(matches!(
            verify_run((0, ChainHash::GENESIS), renamed.iter().zip(links.iter())),
            Err(ChainBreak::Personal { seq: 1, .. })
        ));
        // An erasure (the marker in place, the salt dropped) verifies; without the salt,
        // anything but the marker is found.
        let mut erased_links = links.clone();
        erased_links[0].personal.salt = None;
        let mut erased = entries.clone();
        erase_personal(&mut erased[0]);
        assert!(is_erased(&erased[0]));
        assert!(
            verify_run(
                (0, ChainHash::GENESIS),
                erased.iter().zip(erased_links.iter())
            )
            .is_ok()
        );
        assert!(matches!(
            verify_run(
                (0, ChainHash::GENESIS),
                renamed.iter().zip(erased_links.iter())
            ),
            Err(ChainBreak::Personal { seq: 1, .. })
        ));
    }

    #[test]
    fn a_trace_id_is_appended_only_when_there_is_one() {
        let base = sample();
        let personal = ChainHash([7; 32]);
        let without = encode(&base, 3, &ChainHash::GENESIS, &personal);
        // Without a trace id, the encoding ends with the personal digest, as before.
        let digest = format!("S64:{}", personal.to_hex());
        assert!(without.ends_with(digest.as_bytes()));
        let mut traced = base.clone();
        traced.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let with = encode(&traced, 3, &ChainHash::GENESIS, &personal);
        let mut expected = without.clone();
        expected.extend_from_slice(b"S32:4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(with, expected);
        // A chain with a trace id verifies, and changing the trace id breaks it.
        let entries = vec![base.clone(), traced.clone(), base];
        let links = chain(&entries);
        assert!(verify_run((0, ChainHash::GENESIS), entries.iter().zip(links.iter())).is_ok());
        for forged in [None, Some("0af7651916cd43dd8448eb211c80319c".to_owned())] {
            let mut changed = entries.clone();
            changed[1].trace_id = forged;
            assert!(matches!(
                verify_run((0, ChainHash::GENESIS), changed.iter().zip(links.iter())),
                Err(ChainBreak::Hash { seq: 2, .. })
            ));
        }
    }

    #[test]
    fn numbers_are_encoded_by_kind() {
        let encoded = |value: Value| {
            let mut out = Encoder::new("");
            out.value(&value);
            String::from_utf8(out.bytes).unwrap()
        };
        assert_eq!(encoded(json!(-7)), "I-7;");
        assert_eq!(encoded(json!(u64::MAX)), "I18446744073709551615;");
        assert_eq!(encoded(json!(1.0)), "D3ff0000000000000");
        assert_eq!(
            encoded(json!({"b": [true, null], "a": "é"})),
            "O2:S1:aS2:éS1:bA2:TN"
        );
    }

    #[test]
    fn an_export_of_a_purged_chain_verifies_from_a_start_a_purge_vouches_for() {
        let mut entries: Vec<AuditEntry> = (0..5).map(|_| sample()).collect();
        let mut draft = chain(&entries[..3]);
        let purge = crate::retention::PurgeRequest::new(Some("acme"), chrono::Utc::now());
        entries[3] = purge.record(2, Some((2, &draft[1].hash)));
        draft = chain(&entries);
        let linked: Vec<(AuditEntry, ChainLink)> =
            entries.iter().cloned().zip(draft.iter().copied()).collect();
        let start = (Some("acme".to_owned()), 2, draft[1].hash);
        let reports = verify_export(&linked[2..], std::slice::from_ref(&start));
        assert_eq!(reports.len(), 1);
        assert!(reports[0].is_intact(), "{:?}", reports[0].broken);
        assert_eq!((reports[0].start, reports[0].checked), (2, 3));
        // Without its start line, the shortened chain does not begin at 1.
        let reports = verify_export(&linked[2..], &[]);
        assert!(matches!(
            reports[0].broken,
            Some(ChainBreak::Sequence { expected: 1, .. })
        ));
        // A start further on than any purge vouches for: the oldest entries went around it.
        let beyond = (Some("acme".to_owned()), 3, draft[2].hash);
        let reports = verify_export(&linked[3..], &[beyond]);
        assert_eq!(reports[0].broken, Some(ChainBreak::Unattested { start: 3 }));
        // A start with another hash: the first entry kept does not follow it.
        let forged = (Some("acme".to_owned()), 2, ChainHash([9; 32]));
        let reports = verify_export(&linked[2..], &[forged]);
        assert!(matches!(
            reports[0].broken,
            Some(ChainBreak::Hash { seq: 3, .. })
        ));
        // The start line reads back.
        let line = linked_json_start(Some("acme"), 2, &draft[1].hash);
        assert_eq!(from_linked_json_start(&line).unwrap().unwrap(), start);
        assert!(from_linked_json_start(&json!({"id": 1})).is_none());
    }
}
