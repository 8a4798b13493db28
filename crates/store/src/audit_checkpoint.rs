//! Signed checkpoints of the audit chain: what makes truncation detectable.
//!
//! The hash chain alone proves that the events present are unedited and in order, but someone
//! with write access to the database can delete the newest events and move `audit_head` back:
//! what remains is a shorter, perfectly valid chain. A checkpoint is the chain's tip (`seq` and
//! `hash`) at some moment, signed with the deployment's ed25519 audit key and written to the
//! object store, outside the database. [`crate::audit_verify::verify`] requires each checkpoint's
//! signature to hold and the chain to contain the event each one names, with the hash it names;
//! a checkpoint beyond the end of the chain shows that events are missing.
//!
//! Format: `audit/checkpoints/{seq:020}.json` holds `{"seq","hash","at","signature"}`, where
//! `signature` is the hex ed25519 signature of [`checkpoint_message`]
//! (`agenticai-audit-checkpoint:v1:{seq}:{hash}:{at_ms}`). The zero-padded name sorts by seq.
//!
//! What it cannot do: deleting checkpoint objects is not detectable from the chain, so the object
//! store should not be writable by whoever can write the database (for S3: a separate bucket or
//! prefix with object lock). Events appended after the newest checkpoint are protected by the
//! chain only.

use bytes::Bytes;
use domain::Timestamp;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::objects::{Objects, ObjectsError};

/// The folder of the checkpoint objects.
pub const CHECKPOINT_PREFIX: &str = "audit/checkpoints";

/// A signed statement that the chain's event `seq` had hash `hash` at time `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: Timestamp,
    /// Hex ed25519 signature of [`checkpoint_message`].
    pub signature: String,
}

/// The signed bytes of a checkpoint.
pub fn checkpoint_message(seq: i64, hash: &str, at: Timestamp) -> String {
    format!(
        "agenticai-audit-checkpoint:v1:{seq}:{hash}:{}",
        at.as_millis()
    )
}

/// The object key of the checkpoint at `seq`.
pub fn checkpoint_key(seq: i64) -> String {
    format!("{CHECKPOINT_PREFIX}/{seq:020}.json")
}

/// The seq a checkpoint key names, if it is one.
fn key_seq(key: &str) -> Option<i64> {
    let name = key.strip_prefix(CHECKPOINT_PREFIX)?.strip_prefix('/')?;
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Signs checkpoints with the deployment's audit key (the 32-byte ed25519 seed in `audit.key`).
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({:?})", self.verifier())
    }
}

impl Signer {
    /// The signer whose private key is the ed25519 seed `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public half, which verifies this signer's checkpoints.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            key: self.key.verifying_key(),
        }
    }

    /// A checkpoint of event `seq` with hash `hash`, signed now.
    pub fn sign(&self, seq: i64, hash: &str) -> Checkpoint {
        use ed25519_dalek::Signer as _;
        let at = Timestamp::now();
        let signature = self.key.sign(checkpoint_message(seq, hash, at).as_bytes());
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            at,
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// Checks checkpoint signatures: the public half of the audit key.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    key: VerifyingKey,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({})", self.public_hex())
    }
}

impl Verifier {
    /// The verifier of the signer with seed `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Verifier {
        Signer::from_seed(seed).verifier()
    }

    /// From a 32-byte ed25519 public key; `None` when it is not a valid point.
    pub fn from_public_key(bytes: &[u8; 32]) -> Option<Verifier> {
        VerifyingKey::from_bytes(bytes)
            .ok()
            .map(|key| Verifier { key })
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Whether `checkpoint` carries a valid signature by this key (strict verification: no
    /// malleable or small-order signatures).
    pub fn check(&self, checkpoint: &Checkpoint) -> std::result::Result<(), String> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&checkpoint.signature, &mut bytes)
            .map_err(|_| "its signature is not 128 hex characters".to_owned())?;
        let signature = Signature::from_bytes(&bytes);
        let message = checkpoint_message(checkpoint.seq, &checkpoint.hash, checkpoint.at);
        self.key
            .verify_strict(message.as_bytes(), &signature)
            .map_err(|_| "its signature does not verify with the audit key".to_owned())
    }
}

/// One checkpoint object as found in the object store, checked.
#[derive(Debug, Clone)]
pub struct FoundCheckpoint {
    /// Its object key.
    pub key: String,
    /// The seq its key names.
    pub seq: i64,
    /// The checkpoint, or why it is not a valid one (unreadable, mismatched name, bad signature).
    pub checked: std::result::Result<Checkpoint, String>,
}

fn objects_error(e: ObjectsError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// How many of the newest checkpoints [`load_all`] reads and checks. The newest valid checkpoint
/// alone pins every event up to its seq (each hash covers the one before it), so older ones add
/// nothing to what verification can prove; reading them all would make verification grow with
/// the deployment's age (one object per 1,000 events or per busy minute).
pub const CHECKED_CHECKPOINTS: usize = 1000;

/// Reads and checks the newest [`CHECKED_CHECKPOINTS`] checkpoint objects, oldest first.
pub async fn load_all(objects: &Objects, verifier: &Verifier) -> Result<Vec<FoundCheckpoint>> {
    load_recent(objects, verifier, CHECKED_CHECKPOINTS).await
}

/// Reads and checks the newest `max` checkpoint objects, oldest first. Objects in the folder whose
/// names are not checkpoint names are ignored (with a warning).
pub async fn load_recent(
    objects: &Objects,
    verifier: &Verifier,
    max: usize,
) -> Result<Vec<FoundCheckpoint>> {
    use futures::StreamExt as _;
    let keys = objects
        .list(CHECKPOINT_PREFIX)
        .await
        .map_err(objects_error)?;
    let mut named = Vec::with_capacity(keys.len());
    for key in keys {
        match key_seq(&key) {
            Some(seq) => named.push((key, seq)),
            None => tracing::warn!(%key, "ignoring an object that is not a checkpoint"),
        }
    }
    // Keys sort by seq (zero-padded); keep the newest.
    named.sort_by_key(|(_, seq)| *seq);
    let named = named.split_off(named.len().saturating_sub(max));
    let mut found: Vec<FoundCheckpoint> = futures::stream::iter(named)
        .map(|(key, seq)| async move {
            let data = objects.get(&key).await.map_err(objects_error)?;
            let checked = match data {
                // Listed, then deleted before we read it.
                None => return Ok(None),
                Some(data) => parse_checked(&data, seq, verifier),
            };
            Ok::<_, StoreError>(Some(FoundCheckpoint { key, seq, checked }))
        })
        .buffered(16)
        .filter_map(|r| async move { r.transpose() })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    found.sort_by_key(|c| c.seq);
    Ok(found)
}

fn parse_checked(
    data: &[u8],
    key_seq: i64,
    verifier: &Verifier,
) -> std::result::Result<Checkpoint, String> {
    let checkpoint: Checkpoint =
        serde_json::from_slice(data).map_err(|e| format!("it is not a valid checkpoint: {e}"))?;
    if checkpoint.seq != key_seq {
        return Err(format!(
            "its name says seq {key_seq} but it holds seq {}",
            checkpoint.seq
        ));
    }
    verifier.check(&checkpoint)?;
    Ok(checkpoint)
}

/// The newest checkpoint whose signature verifies, if any.
pub async fn latest_verified(objects: &Objects, verifier: &Verifier) -> Result<Option<Checkpoint>> {
    let keys = objects
        .list(CHECKPOINT_PREFIX)
        .await
        .map_err(objects_error)?;
    for key in keys.iter().rev() {
        let Some(seq) = key_seq(key) else { continue };
        let Some(data) = objects.get(key).await.map_err(objects_error)? else {
            continue;
        };
        match parse_checked(&data, seq, verifier) {
            Ok(checkpoint) => return Ok(Some(checkpoint)),
            Err(why) => tracing::warn!(%key, %why, "skipping an invalid audit checkpoint"),
        }
    }
    Ok(None)
}

/// The chain's tip as `audit_head` records it: `(seq, hash)`; `(0, GENESIS_HASH)` when empty.
pub async fn head(db: &Db) -> Result<(i64, String)> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Signs the chain's current tip and stores it as a checkpoint. `None` when the chain is empty.
/// Writing the same tip again replaces its checkpoint with an equivalent one.
pub async fn write_checkpoint(
    db: &Db,
    objects: &Objects,
    signer: &Signer,
) -> Result<Option<Checkpoint>> {
    let (seq, hash) = head(db).await?;
    if seq <= 0 {
        return Ok(None);
    }
    let checkpoint = signer.sign(seq, &hash);
    let body = serde_json::to_vec(&checkpoint)
        .map_err(|e| StoreError::Other(format!("cannot encode a checkpoint: {e}")))?;
    objects
        .put(&checkpoint_key(seq), Bytes::from(body))
        .await
        .map_err(objects_error)?;
    Ok(Some(checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_seq_and_parse_back() {
        assert_eq!(
            checkpoint_key(42),
            "audit/checkpoints/00000000000000000042.json"
        );
        assert_eq!(key_seq(&checkpoint_key(42)), Some(42));
        assert_eq!(key_seq(&checkpoint_key(i64::MAX)), Some(i64::MAX));
        for bad in [
            "audit/checkpoints/42.json",
            "audit/checkpoints/0000000000000000004x.json",
            "audit/checkpoints/00000000000000000042.txt",
            "audit/other/00000000000000000042.json",
        ] {
            assert_eq!(key_seq(bad), None, "{bad}");
        }
        assert!(checkpoint_key(9) < checkpoint_key(10));
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_content() {
        let signer = Signer::from_seed(&[7u8; 32]);
        let verifier = signer.verifier();
        let cp = signer.sign(5, &"ab".repeat(32));
        assert_eq!(verifier.check(&cp), Ok(()));
        assert_eq!(Verifier::from_seed(&[7u8; 32]), verifier);

        let other = Verifier::from_seed(&[8u8; 32]);
        assert!(other.check(&cp).is_err());
        for forged in [
            Checkpoint {
                seq: 6,
                ..cp.clone()
            },
            Checkpoint {
                hash: "cd".repeat(32),
                ..cp.clone()
            },
            Checkpoint {
                at: cp.at.plus(std::time::Duration::from_millis(1)),
                ..cp.clone()
            },
            Checkpoint {
                signature: "00".repeat(64),
                ..cp.clone()
            },
            Checkpoint {
                signature: "zz".into(),
                ..cp.clone()
            },
        ] {
            assert!(verifier.check(&forged).is_err(), "{forged:?}");
        }
        let public = verifier.public_hex();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&public, &mut bytes).unwrap();
        assert_eq!(Verifier::from_public_key(&bytes), Some(verifier));
    }
}
