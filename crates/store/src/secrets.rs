//! Secrets at rest: envelope encryption under the deployment's master key.
//!
//! - The **master key** (32 bytes, `AGENTICAI_MASTER_KEY_FILE`) never touches the database. A
//!   [`Keyring`] holds it in memory.
//! - A **data key** (32 random bytes) encrypts secret values. It is stored only *wrapped*
//!   (ChaCha20-Poly1305 under the master key) in `kv_state` under [`DATA_KEY`], with its version.
//!   Exactly one data key exists at a time.
//! - Each **secret value** is encrypted with ChaCha20-Poly1305 under the data key, with a fresh
//!   random 96-bit nonce, and with associated data that binds the ciphertext to the secret's name
//!   and the data key's version: a ciphertext copied to another row, or kept across a rotation,
//!   does not decrypt.
//! - [`rotate`] makes a new data key, re-encrypts every secret under it and replaces the wrapped
//!   key, all in the caller's transaction; the old data key is gone afterwards.
//!
//! Values never appear in `Debug` output, errors or logs of this module: errors name secrets,
//! never their contents.

use std::sync::Arc;

use domain::Timestamp;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::db::{Db, Dialect, Tx};
use crate::error::{Result, StoreError};

/// The `kv_state` key of the wrapped data key.
pub const DATA_KEY: &str = "secrets.data_key";

/// The master key, ready to wrap and unwrap data keys. Cheap to clone; zeroed when the last
/// clone is dropped; its `Debug` output shows nothing.
#[derive(Clone)]
pub struct Keyring {
    master: Arc<Zeroizing<[u8; 32]>>,
}

impl Keyring {
    /// A keyring over the 32-byte master key (as `keys::load_or_create` returns it).
    pub fn new(master_key: [u8; 32]) -> Keyring {
        Keyring {
            master: Arc::new(Zeroizing::new(master_key)),
        }
    }

    fn master(&self) -> LessSafeKey {
        aead_key(&self.master[..])
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring { .. }")
    }
}

/// A secret's name and when its value was last set (never the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    pub name: String,
    pub updated_at: Timestamp,
}

/// What [`rotate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// How many secrets were re-encrypted under the new data key.
    pub reencrypted: u64,
    /// The new data key's version.
    pub key_version: i64,
}

/// A data key, unwrapped.
struct DataKey {
    version: i64,
    key: LessSafeKey,
}

/// The wrapped data key as stored in `kv_state`.
#[derive(Serialize, Deserialize)]
struct WrappedKey {
    version: i64,
    nonce: String,
    wrapped: String,
}

fn aead_key(bytes: &[u8]) -> LessSafeKey {
    // Only fails for a key of the wrong length; every caller passes 32 bytes.
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 keys are 32 bytes"));
    LessSafeKey::new(unbound)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Other(format!("no randomness for encryption: {e}")))?;
    Ok(bytes)
}

/// Encrypts `plain` under `key` with a fresh nonce: (nonce, ciphertext with tag).
fn seal(key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let nonce = random::<NONCE_LEN>()?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| StoreError::Other("encryption failed".to_owned()))?;
    Ok((nonce, buf))
}

/// Decrypts and authenticates; `None` when the key, nonce, data or associated data do not match.
fn open(key: &LessSafeKey, aad: &[u8], nonce_hex: &str, sealed_hex: &str) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    hex::decode_to_slice(nonce_hex, &mut nonce).ok()?;
    let mut buf = hex::decode(sealed_hex).ok()?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?;
    Some(plain.to_vec())
}

fn data_key_aad(version: i64) -> Vec<u8> {
    format!("agenticai/secrets/data-key/v{version}").into_bytes()
}

/// Binds a secret's ciphertext to its name and to the data key version that encrypted it.
fn secret_aad(name: &str, key_version: i64) -> Vec<u8> {
    format!("agenticai/secret\0{name}\0{key_version}").into_bytes()
}

impl DataKey {
    fn generate(version: i64) -> Result<(DataKey, Zeroizing<[u8; 32]>)> {
        let bytes = Zeroizing::new(random::<32>()?);
        Ok((
            DataKey {
                version,
                key: aead_key(&bytes[..]),
            },
            bytes,
        ))
    }

    fn wrap(keyring: &Keyring, version: i64, bytes: &[u8; 32]) -> Result<String> {
        let (nonce, wrapped) = seal(&keyring.master(), &data_key_aad(version), bytes)?;
        serde_json::to_string(&WrappedKey {
            version,
            nonce: hex::encode(nonce),
            wrapped: hex::encode(wrapped),
        })
        .map_err(|e| StoreError::Other(e.to_string()))
    }

    fn unwrap(keyring: &Keyring, stored: &str) -> Result<DataKey> {
        let w: WrappedKey = serde_json::from_str(stored).map_err(StoreError::corrupt)?;
        let bytes = open(
            &keyring.master(),
            &data_key_aad(w.version),
            &w.nonce,
            &w.wrapped,
        )
        .map(Zeroizing::new)
        .ok_or_else(|| {
            StoreError::Corrupt(
                "the secrets' data key does not unwrap with this master key \
                 (is AGENTICAI_MASTER_KEY_FILE the key these secrets were stored with?)"
                    .to_owned(),
            )
        })?;
        if bytes.len() != 32 {
            return Err(StoreError::corrupt(
                "the secrets' data key has the wrong length",
            ));
        }
        Ok(DataKey {
            version: w.version,
            key: aead_key(&bytes),
        })
    }

    fn encrypt(&self, name: &str, value: &str) -> Result<(String, String)> {
        let (nonce, sealed) = seal(&self.key, &secret_aad(name, self.version), value.as_bytes())?;
        Ok((hex::encode(nonce), hex::encode(sealed)))
    }

    fn decrypt(&self, name: &str, row: &SealedRow) -> Result<String> {
        if row.key_version != self.version {
            return Err(StoreError::Corrupt(format!(
                "secret {name} is encrypted under data key v{}, but the current one is v{}",
                row.key_version, self.version
            )));
        }
        let plain = open(
            &self.key,
            &secret_aad(name, row.key_version),
            &row.nonce,
            &row.ciphertext,
        )
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "secret {name} does not decrypt (its row was altered or copied from another)"
            ))
        })?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Corrupt(format!("secret {name} is not UTF-8")))
    }
}

/// One encrypted row.
struct SealedRow {
    nonce: String,
    ciphertext: String,
    key_version: i64,
}

/// The wrapped data key, locked against concurrent rotation until `tx` ends.
async fn locked_wrapped_key(tx: &mut Tx) -> Result<Option<String>> {
    let sql = match tx.dialect() {
        // SQLite transactions here hold the database's write lock from their start.
        Dialect::Sqlite => "SELECT value FROM kv_state WHERE key = $1",
        Dialect::Postgres => "SELECT value FROM kv_state WHERE key = $1 FOR UPDATE",
    };
    Ok(sqlx::query_scalar(sql)
        .bind(DATA_KEY)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The current data key, created (version 1) when there is none yet.
async fn current_key_in(tx: &mut Tx, keyring: &Keyring) -> Result<DataKey> {
    if let Some(stored) = locked_wrapped_key(tx).await? {
        return DataKey::unwrap(keyring, &stored);
    }
    let (_, bytes) = DataKey::generate(1)?;
    let wrapped = DataKey::wrap(keyring, 1, &bytes)?;
    // A concurrent first writer may win; then its key is the one to use.
    sqlx::query(
        "INSERT INTO kv_state (key, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(DATA_KEY)
    .bind(wrapped)
    .bind(Timestamp::now().as_millis())
    .execute(&mut **tx)
    .await?;
    let stored = locked_wrapped_key(tx)
        .await?
        .ok_or_else(|| StoreError::Other("the secrets' data key was not stored".to_owned()))?;
    DataKey::unwrap(keyring, &stored)
}

/// Stores `value` as secret `name` (creating or replacing it) inside `tx`; returns when.
pub async fn put(tx: &mut Tx, keyring: &Keyring, name: &str, value: &str) -> Result<Timestamp> {
    let key = current_key_in(tx, keyring).await?;
    let (nonce, ciphertext) = key.encrypt(name, value)?;
    let now = Timestamp::now();
    sqlx::query(
        "INSERT INTO secrets (name, nonce, ciphertext, key_version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce,
             ciphertext = excluded.ciphertext, key_version = excluded.key_version,
             updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(nonce)
    .bind(ciphertext)
    .bind(key.version)
    .bind(now.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(now)
}

/// Deletes secret `name` inside `tx`; what it was, or `None` if there was no such secret.
pub async fn delete(tx: &mut Tx, name: &str) -> Result<Option<SecretMeta>> {
    let updated: Option<i64> =
        sqlx::query_scalar("DELETE FROM secrets WHERE name = $1 RETURNING updated_at")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(updated.map(|ms| SecretMeta {
        name: name.to_owned(),
        updated_at: Timestamp::from_millis(ms),
    }))
}

/// Every secret's name and time of last change, most recently changed first.
pub async fn list(db: &Db) -> Result<Vec<SecretMeta>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, updated_at FROM secrets ORDER BY updated_at DESC, name")
            .fetch_all(db.pool())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(name, ms)| SecretMeta {
            name,
            updated_at: Timestamp::from_millis(ms),
        })
        .collect())
}

/// Which of `names` have no stored secret, in the order given.
pub async fn missing(db: &Db, names: &[String]) -> Result<Vec<String>> {
    let mut absent = Vec::new();
    for name in names {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
        if found.is_none() {
            absent.push(name.clone());
        }
    }
    Ok(absent)
}

async fn sealed_row(db: &Db, name: &str) -> Result<Option<SealedRow>> {
    let row: Option<(String, String, i64)> =
        sqlx::query_as("SELECT nonce, ciphertext, key_version FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(nonce, ciphertext, key_version)| SealedRow {
        nonce,
        ciphertext,
        key_version,
    }))
}

/// The values of `names`, in the order given, as `(name, value)` pairs (for injection into a
/// sandbox). Fails with [`StoreError::NotFound`] naming the first secret that does not exist,
/// and with [`StoreError::Corrupt`] when a value does not decrypt. Never logs values.
pub async fn resolve(
    db: &Db,
    keyring: &Keyring,
    names: &[String],
) -> Result<Vec<(String, String)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // The key and the rows are read in one pass without a transaction: a rotation that commits
    // in between makes the versions differ, so read again (rotations are rare).
    for _ in 0..3 {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT value FROM kv_state WHERE key = $1")
                .bind(DATA_KEY)
                .fetch_optional(db.pool())
                .await?;
        let mut rows = Vec::with_capacity(names.len());
        for name in names {
            let row = sealed_row(db, name)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("secret {name}")))?;
            rows.push(row);
        }
        let stored = stored.ok_or_else(|| {
            StoreError::Corrupt("secrets exist but their data key is missing".to_owned())
        })?;
        let key = DataKey::unwrap(keyring, &stored)?;
        if rows.iter().any(|r| r.key_version != key.version) {
            continue;
        }
        return names
            .iter()
            .zip(&rows)
            .map(|(name, row)| Ok((name.clone(), key.decrypt(name, row)?)))
            .collect();
    }
    Err(StoreError::Unavailable(
        "secrets were being re-encrypted; try again".to_owned(),
    ))
}

/// Makes a new data key, re-encrypts every secret under it and stores it in place of the old one,
/// inside `tx`: after commit, nothing decrypts with the old data key. Fails (changing nothing
/// once `tx` is rolled back) if any stored secret does not decrypt.
pub async fn rotate(tx: &mut Tx, keyring: &Keyring) -> Result<Rotation> {
    let old = match locked_wrapped_key(tx).await? {
        Some(stored) => Some(DataKey::unwrap(keyring, &stored)?),
        None => None,
    };
    let version = old.as_ref().map_or(1, |k| k.version + 1);
    let (new, bytes) = DataKey::generate(version)?;
    let rows: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT name, nonce, ciphertext, key_version FROM secrets ORDER BY name")
            .fetch_all(&mut **tx)
            .await?;
    let mut reencrypted = 0u64;
    for (name, nonce, ciphertext, key_version) in rows {
        let old = old.as_ref().ok_or_else(|| {
            StoreError::Corrupt("secrets exist but their data key is missing".to_owned())
        })?;
        let value = Zeroizing::new(old.decrypt(
            &name,
            &SealedRow {
                nonce,
                ciphertext,
                key_version,
            },
        )?);
        let (nonce, ciphertext) = new.encrypt(&name, &value)?;
        sqlx::query(
            "UPDATE secrets SET nonce = $1, ciphertext = $2, key_version = $3 WHERE name = $4",
        )
        .bind(nonce)
        .bind(ciphertext)
        .bind(version)
        .bind(&name)
        .execute(&mut **tx)
        .await?;
        reencrypted += 1;
    }
    let wrapped = DataKey::wrap(keyring, version, &bytes)?;
    crate::kv::set(tx, DATA_KEY, &wrapped).await?;
    Ok(Rotation {
        reencrypted,
        key_version: version,
    })
}

/// How many secrets are stored.
pub async fn count(db: &Db) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM secrets")
        .fetch_one(db.pool())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_debug_shows_nothing() {
        let k = Keyring::new([7u8; 32]);
        assert_eq!(format!("{k:?}"), "Keyring { .. }");
    }

    #[test]
    fn ciphertexts_are_bound_to_name_and_version() {
        let (key, _) = DataKey::generate(3).unwrap();
        let (nonce, ciphertext) = key.encrypt("A", "hunter2-value").unwrap();
        let row = SealedRow {
            nonce,
            ciphertext,
            key_version: 3,
        };
        assert_eq!(key.decrypt("A", &row).unwrap(), "hunter2-value");
        let err = key.decrypt("B", &row).unwrap_err().to_string();
        assert!(err.contains("secret B"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let (other, _) = DataKey::generate(3).unwrap();
        assert!(other.decrypt("A", &row).is_err());
    }

    #[test]
    fn data_keys_unwrap_only_with_their_master_key() {
        let ring_a = Keyring::new([1u8; 32]);
        let ring_b = Keyring::new([2u8; 32]);
        let (_, bytes) = DataKey::generate(1).unwrap();
        let stored = DataKey::wrap(&ring_a, 1, &bytes).unwrap();
        assert_eq!(DataKey::unwrap(&ring_a, &stored).unwrap().version, 1);
        assert!(DataKey::unwrap(&ring_b, &stored).is_err());
    }
}
