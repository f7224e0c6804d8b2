//! The chain's test vectors: entries with every kind of field and value, linked in three
//! chains, written as `tests/data/chain-v1.json`. The committed file must be what this code
//! makes (so a change to the encoding cannot pass unnoticed), and `scripts/verify_chain.py`,
//! written from `docs/chain.md` alone, verifies the same file in CI.
//!
//! After a deliberate change of the encoding (a new version), regenerate the file with
//! `AUDIT_WRITE_VECTORS=1 cargo test -p audit-core --test chain_vectors`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;

use audit_core::chain::{ChainHash, ChainLink, Personal, link, personal_digest, verify_run};
use audit_core::{Action, Actor, ApiKeyRef, AuditEntry, Change, Outcome};
use chrono::DateTime;
use serde_json::{Value, json};
use uuid::Uuid;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chain-v1.json");
/// The index of the entry whose personal fields are erased.
const ERASED: usize = 5;
/// The index of the entry with a trace id.
const TRACED: usize = 6;

fn entries() -> Vec<AuditEntry> {
    let at = |n: i64| DateTime::from_timestamp(1_800_000_000 + n, (n as u32) * 1_000).unwrap();
    let id = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n);
    let mut out = Vec::new();

    let mut create = AuditEntry::builder(Action::Create)
        .actor(Actor::user("u-1", "ada@example.com"))
        .tenant("acme")
        .team("ops")
        .entity("ConnectionProfile", "p-1")
        .entity_name("Salesforce prod")
        .ip("203.0.113.9".parse().unwrap())
        .build();
    create.user_agent = Some("curl/8.5.0".into());
    create.changes = vec![
        Change::new("host", Value::Null, json!("db.example.com")),
        Change::new("port", Value::Null, json!(5432)),
        Change::new("ratio", Value::Null, json!(0.1)),
        Change::new("password", Value::Null, json!("[REDACTED]")),
    ];
    create.status = Some(201);
    create.method = Some("POST".into());
    create.route = Some("/connection-profiles".into());
    create.request_id = Some("req-1".into());
    out.push(create);

    let mut update = AuditEntry::builder(Action::Update)
        .actor(Actor::api_key("k-9", "ci-deployer"))
        .api_key(ApiKeyRef::new("k-9", "ci-deployer"))
        .tenant("acme")
        .entity("ConnectionProfile", "p-1")
        .ip("2001:db8::1".parse().unwrap())
        .build();
    update.changes = vec![
        Change::new("port", json!(5432), json!(6432)),
        Change::new("limits.rate", json!(1e21), json!(-2.5e-7)),
        Change::new(
            "big",
            json!(18446744073709551615u64),
            json!(-9223372036854775808i64),
        ),
        Change::new(
            "tags",
            json!(["a", "b"]),
            json!({"z": 1, "a": [true, false, null]}),
        ),
    ];
    update.details = Some("port changed; naïve 😀 \"quoted\"\nnew line".into());
    update.metadata.insert("zeta".into(), json!("last"));
    update
        .metadata
        .insert("alpha".into(), json!({"nested": {"b": 2, "a": 1}}));
    update.metadata.insert("éclair".into(), json!(1.0));
    out.push(update);

    let denied = AuditEntry::builder(Action::Delete)
        .actor(Actor::user("u-2", "grace@example.com"))
        .tenant("acme")
        .entity("ApiKey", "k-9")
        .outcome(Outcome::Denied)
        .build();
    out.push(denied);

    // Another tenant: a chain of its own.
    let other = AuditEntry::builder(Action::ToggleActive)
        .actor(Actor::system("nightly-sync"))
        .tenant("globex")
        .entity("Tenant", "globex")
        .build();
    out.push(other);

    // No tenant: a chain of its own too.
    let login = AuditEntry::builder(Action::LoginFailed)
        .actor(Actor::anonymous_named("unknown@example.com"))
        .ip("198.51.100.7".parse().unwrap())
        .outcome(Outcome::Failure)
        .build();
    out.push(login);

    // An erased entry: its personal fields replaced, its salt gone.
    let erased = AuditEntry::builder(Action::Read)
        .actor(Actor::user("u-3", "erin@example.com"))
        .tenant("acme")
        .ip("192.0.2.1".parse().unwrap())
        .build();
    let mut erased = erased;
    erased.user_agent = Some("Mozilla/5.0".into());
    out.push(erased);

    // A trace id: the 24th item of the encoding, which only entries with one have (appended
    // last, so that the entries above keep their hashes).
    let mut traced = AuditEntry::builder(Action::Execute)
        .actor(Actor::user("u-5", "ops@globex.example"))
        .tenant("globex")
        .entity("ExtractionCursor", "c-1")
        .request_id("req-9")
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
        .build();
    traced.status = Some(202);
    traced.method = Some("POST".into());
    traced.route = Some("/extraction-cursors/{id}/run".into());
    out.push(traced);

    for (n, entry) in out.iter_mut().enumerate() {
        entry.id = id(n as u128 + 1);
        entry.occurred_at = at(n as i64);
    }
    out
}

/// The entries linked per tenant, with fixed salts; the sixth entry then erased.
fn linked() -> Vec<(AuditEntry, ChainLink)> {
    let mut heads: HashMap<Option<String>, (u64, ChainHash)> = HashMap::new();
    let mut out = Vec::new();
    for (n, entry) in entries().into_iter().enumerate() {
        let salt = [n as u8 + 1; 16];
        let personal = Personal {
            salt: Some(salt),
            digest: personal_digest(&salt, &entry),
        };
        let (seq, prev) = heads
            .get(&entry.tenant_id)
            .copied()
            .unwrap_or((0, ChainHash::GENESIS));
        let hash = link(&entry, seq + 1, &prev, &personal.digest);
        heads.insert(entry.tenant_id.clone(), (seq + 1, hash));
        out.push((
            entry,
            ChainLink {
                seq: seq + 1,
                hash,
                personal,
            },
        ));
    }
    let (entry, chain) = &mut out[ERASED];
    audit_core::chain::erase_personal(entry);
    chain.personal.salt = None;
    out
}

fn to_json(linked: &[(AuditEntry, ChainLink)]) -> String {
    let items: Vec<Value> = linked
        .iter()
        .map(|(entry, chain)| audit_core::chain::linked_json(entry, chain))
        .collect();
    let mut text = serde_json::to_string_pretty(&items).unwrap();
    text.push('\n');
    text
}

/// What the Rust check of an export makes of `entries`: whether every chain is intact.
fn rust_verify(entries: &[Value]) -> bool {
    let linked: Vec<(AuditEntry, ChainLink)> = entries
        .iter()
        .map(|e| audit_core::chain::from_linked_json(e.clone()).unwrap())
        .collect();
    audit_core::chain::verify_export(&linked, &[])
        .iter()
        .all(|report| report.is_intact())
}

#[test]
fn the_committed_vectors_are_what_the_encoding_makes() {
    let linked = linked();
    // Each chain verifies from its start.
    let mut chains: HashMap<Option<String>, Vec<&(AuditEntry, ChainLink)>> = HashMap::new();
    for item in &linked {
        chains
            .entry(item.0.tenant_id.clone())
            .or_default()
            .push(item);
    }
    assert_eq!(chains.len(), 3);
    for run in chains.values() {
        verify_run((0, ChainHash::GENESIS), run.iter().map(|(e, c)| (e, c))).unwrap();
    }
    let made = to_json(&linked);
    if std::env::var_os("AUDIT_WRITE_VECTORS").is_some() {
        std::fs::write(VECTORS, &made).unwrap();
    }
    let committed = std::fs::read_to_string(VECTORS).expect("tests/data/chain-v1.json");
    assert!(
        committed == made,
        "the chain's encoding no longer gives the committed test vectors; if the change is \
         deliberate, it is a new version of the encoding: see this file's header"
    );
    // And the file reads back into the same entries.
    let back: Vec<Value> = serde_json::from_str(&committed).unwrap();
    for (value, (entry, _)) in back.iter().zip(&linked) {
        let mut value = value.clone();
        value.as_object_mut().unwrap().remove("chain");
        assert_eq!(&serde_json::from_value::<AuditEntry>(value).unwrap(), entry);
    }
}

/// Runs `scripts/verify_chain.py` on `entries` written to a file; its exit code and output.
fn python_verify(entries: &[Value]) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("chain-vectors-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.json");
    std::fs::write(&file, serde_json::to_string(entries).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify_chain.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs the stranger's check of the chain (install python3)");
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

/// A way of tampering with an export.
type Tamper = dyn Fn(&mut Vec<Value>);

#[test]
fn the_python_check_verifies_the_vectors_and_finds_each_tampering() {
    let committed: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    let (code, out) = python_verify(&committed);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all 7 entries verified"), "{out}");
    assert!(committed[TRACED]["trace_id"].is_string());
    assert!(committed[..TRACED].iter().all(|e| e["trace_id"].is_null()));
    assert!(rust_verify(&committed));

    let tampered = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut entries = committed.clone();
        f(&mut entries);
        assert!(!rust_verify(&entries), "the Rust check missed it");
        python_verify(&entries)
    };
    let cases: [(&str, &Tamper, &str); 9] = [
        (
            "a changed trace id",
            &|e| e[TRACED]["trace_id"] = json!("0af7651916cd43dd8448eb211c80319c"),
            "content does not match its hash",
        ),
        (
            "a removed trace id",
            &|e| e[TRACED]["trace_id"] = Value::Null,
            "content does not match its hash",
        ),
        (
            "a changed field",
            &|e| e[1]["entity_id"] = json!("p-2"),
            "content does not match its hash",
        ),
        (
            "a changed number in the changes",
            &|e| e[1]["changes"][0]["new"] = json!(6433),
            "content does not match its hash",
        ),
        (
            "a deleted middle entry",
            &|e| {
                e.remove(1);
            },
            "expected sequence 2",
        ),
        (
            "two swapped entries, renumbered",
            &|e| {
                let (a, b) = (e[1]["chain"]["seq"].clone(), e[2]["chain"]["seq"].clone());
                e[1]["chain"]["seq"] = b;
                e[2]["chain"]["seq"] = a;
            },
            "content does not match its hash",
        ),
        (
            "a forged entry inserted",
            &|e| {
                let mut forged = e[2].clone();
                forged["id"] = json!("01900000-0000-7000-8000-0000000000ff");
                forged["chain"]["seq"] = json!(4);
                e.insert(3, forged);
            },
            "content does not match its hash",
        ),
        (
            "a changed personal field",
            &|e| e[0]["actor_name"] = json!("mallory@example.com"),
            "personal fields do not match their digest",
        ),
        (
            "a name written over an erasure's marker",
            &|e| e[ERASED]["actor_name"] = json!("someone@example.com"),
            "personal fields do not match their digest",
        ),
    ];
    for (what, change, reason) in cases {
        let (code, out) = tampered(change);
        assert_eq!(code, 1, "{what} was not found: {out}");
        assert!(out.contains(reason), "{what}: {out}");
    }
}
