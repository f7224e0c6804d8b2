//! Signed checkpoints: a statement of one chain's head (its tenant, last sequence number and
//! hash, and when), signed with an Ed25519 key that the operator holds and the audit database
//! never sees. Kept apart from the database, a checkpoint lets anyone holding the public key
//! prove that a chain was not cut short since: a chain that ends before the checkpoint's
//! sequence number, or holds another hash there, was altered.
//!
//! The signed bytes are the line `tower-audit checkpoint v1` and a line feed, then, as items of
//! the chain's canonical encoding (`docs/chain.md`): the tenant id (or null), the sequence
//! number, the hash in 64 lowercase hex digits, and the time in RFC 3339 with six fractional
//! digits and `Z`.
//!
//! ```
//! use audit_core::chain::ChainHash;
//! use audit_core::checkpoint::{Checkpoint, CheckpointKey};
//!
//! let key = CheckpointKey::generate();
//! let checkpoint = Checkpoint::now(Some("acme".into()), 42, ChainHash([7; 32]));
//! let signed = checkpoint.sign(&key);
//! let public_key = key.public_hex();
//! let json = signed.to_json();
//! let read = audit_core::checkpoint::SignedCheckpoint::from_json(&json).unwrap();
//! assert!(read.verify(&public_key).is_ok());
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};

use crate::chain::{ChainHash, Encoder, from_hex, hex};

/// The first line of every checkpoint's signed bytes.
pub const CHECKPOINT_DOMAIN: &str = "tower-audit checkpoint v1\n";

/// One chain's head at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The chain's tenant; `None` for the entries without a tenant.
    pub tenant_id: Option<String>,
    /// The chain's last sequence number (0: an empty chain).
    pub seq: u64,
    /// The hash of entry `seq`.
    pub hash: ChainHash,
    /// When the checkpoint was taken.
    pub at: DateTime<Utc>,
}

impl Checkpoint {
    /// A checkpoint of this head, taken now (to the microsecond).
    pub fn now(tenant_id: Option<String>, seq: u64, hash: ChainHash) -> Self {
        Checkpoint {
            tenant_id,
            seq,
            hash,
            at: crate::entry::now_micros(),
        }
    }

    /// The bytes a signature covers (see the module's documentation).
    pub fn statement(&self) -> Vec<u8> {
        let mut out = Encoder::new(CHECKPOINT_DOMAIN);
        out.optional(self.tenant_id.as_deref());
        out.integer(i128::from(self.seq));
        out.string(&self.hash.to_hex());
        out.string(&self.at.to_rfc3339_opts(SecondsFormat::Micros, true));
        out.into_bytes()
    }

    /// This checkpoint signed with `key`.
    pub fn sign(self, key: &CheckpointKey) -> SignedCheckpoint {
        let signature = key.0.sign(&self.statement()).to_bytes();
        SignedCheckpoint {
            checkpoint: self,
            public_key: key.0.verifying_key().to_bytes(),
            signature,
        }
    }
}

/// An Ed25519 signing key for checkpoints. Its text form is the 32-byte seed in 64 lowercase
/// hex digits; keep it out of the audit database (a file or an environment variable the
/// operator controls). `Debug` shows only the public key.
pub struct CheckpointKey(SigningKey);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey(public {})", self.public_hex())
    }
}

impl CheckpointKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        // Version and variant bits of the two UUIDs are fixed: hash them into a uniform seed.
        let seed: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            seed,
        ))
        .into();
        CheckpointKey(SigningKey::from_bytes(&seed))
    }

    /// The key whose seed is these 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, CheckpointError> {
        let seed = from_hex::<32>(text.trim()).map_err(|_| CheckpointError::Key)?;
        Ok(CheckpointKey(SigningKey::from_bytes(&seed)))
    }

    /// The seed as 64 hex digits: the secret to store.
    pub fn to_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }

    /// The public key as 64 hex digits: what verifiers are given.
    pub fn public_hex(&self) -> String {
        hex(&self.0.verifying_key().to_bytes())
    }
}

/// A checkpoint with its signature and the public key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// The signer's public key.
    pub public_key: [u8; 32],
    /// The Ed25519 signature of [`Checkpoint::statement`].
    pub signature: [u8; 64],
}

/// Why a checkpoint or a key could not be read or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A key is not 64 hex digits.
    #[error("a checkpoint key is 64 hexadecimal digits")]
    Key,
    /// A field of the JSON form is missing or malformed.
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    /// The checkpoint was signed by another key than the one trusted.
    #[error("signed by another key ({0})")]
    OtherKey(String),
    /// The signature does not match the checkpoint: it was altered.
    #[error("the signature does not match the checkpoint")]
    BadSignature,
}

impl SignedCheckpoint {
    /// The JSON form: `tenant_id`, `seq`, `hash`, `at`, `public_key`, `signature` (hex).
    pub fn to_json(&self) -> Value {
        let c = &self.checkpoint;
        json!({
            "tenant_id": c.tenant_id,
            "seq": c.seq,
            "hash": c.hash.to_hex(),
            "at": c.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "public_key": hex(&self.public_key),
            "signature": hex(&self.signature),
        })
    }

    /// Reads the JSON form.
    pub fn from_json(value: &Value) -> Result<Self, CheckpointError> {
        let bad = |what: &str| CheckpointError::Malformed(what.to_owned());
        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(name))
        };
        let tenant_id = match value.get("tenant_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(bad("tenant_id")),
        };
        let seq = value
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("seq"))?;
        let hash = text("hash")?.parse().map_err(|_| bad("hash"))?;
        let at = DateTime::parse_from_rfc3339(text("at")?)
            .map_err(|_| bad("at"))?
            .with_timezone(&Utc);
        let public_key = from_hex::<32>(text("public_key")?).map_err(|_| bad("public_key"))?;
        let signature = from_hex::<64>(text("signature")?).map_err(|_| bad("signature"))?;
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                tenant_id,
                seq,
                hash,
                at,
            },
            public_key,
            signature,
        })
    }

    /// Checks that the checkpoint was signed by `public_key` (64 hex digits) and not altered.
    pub fn verify(&self, public_key: &str) -> Result<(), CheckpointError> {
        let trusted = from_hex::<32>(public_key.trim()).map_err(|_| CheckpointError::Key)?;
        if trusted != self.public_key {
            return Err(CheckpointError::OtherKey(hex(&self.public_key)));
        }
        let key = VerifyingKey::from_bytes(&trusted).map_err(|_| CheckpointError::Key)?;
        key.verify(
            &self.checkpoint.statement(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| CheckpointError::BadSignature)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_is_found() {
        let key = CheckpointKey::generate();
        let signed = Checkpoint::now(Some("acme".into()), 42, ChainHash([7; 32])).sign(&key);
        let json = signed.to_json();
        let read = SignedCheckpoint::from_json(&json).unwrap();
        assert_eq!(read, signed);
        assert_eq!(read.verify(&key.public_hex()), Ok(()));
        // The key survives its text form.
        let again = CheckpointKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(again.public_hex(), key.public_hex());
        assert!(!format!("{key:?}").contains(&key.to_hex()));

        for (field, value) in [
            ("seq", json!(41)),
            ("tenant_id", json!("globex")),
            ("tenant_id", Value::Null),
            ("hash", json!(ChainHash([8; 32]).to_hex())),
            ("at", json!("2020-01-01T00:00:00.000000Z")),
        ] {
            let mut altered = json.clone();
            altered[field] = value;
            let read = SignedCheckpoint::from_json(&altered).unwrap();
            assert_eq!(
                read.verify(&key.public_hex()),
                Err(CheckpointError::BadSignature),
                "{field}"
            );
        }
        let other = CheckpointKey::generate();
        assert!(matches!(
            signed.verify(&other.public_hex()),
            Err(CheckpointError::OtherKey(_))
        ));
        // Re-signed by another key, it names that key.
        let forged = signed.checkpoint.clone().sign(&other);
        assert!(forged.verify(&key.public_hex()).is_err());
        assert!(SignedCheckpoint::from_json(&json!({"seq": 1})).is_err());
        assert_eq!(
            CheckpointKey::from_hex("xyz").map(|_| ()),
            Err(CheckpointError::Key)
        );
    }
}
