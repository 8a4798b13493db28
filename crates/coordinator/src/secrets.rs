//! Secrets (CONTRACT.md `/v1/secrets`): admins set and delete them by name; nobody reads a value
//! back through any channel. Values are encrypted at rest (see `store::secrets`); audit events
//! carry the name only.

use store::Tx;
use store::audit::{self, NewAuditEvent};
use store::secrets::{self as secret_store, Keyring, Rotation, SecretMeta};

use crate::Coordinator;
use crate::environments::{MAX_SECRET_NAME, actor_id, is_secret_name};
use crate::error::{CoordError, Result};
use crate::identity::Actor;

/// Largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

impl Coordinator {
    /// Gives the coordinator the deployment's master key, so it can store secrets and
    /// re-encrypt them on `rotate_credentials`.
    pub fn with_keyring(mut self, keyring: Keyring) -> Coordinator {
        self.keyring = Some(keyring);
        self
    }

    /// The master key's keyring, when one was given.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    fn require_keyring(&self) -> Result<&Keyring> {
        self.keyring.as_ref().ok_or_else(|| {
            CoordError::Unavailable(
                "no master key is loaded, so secrets cannot be stored".to_owned(),
            )
        })
    }

    /// Every secret's name and time of last change, most recent first (admins).
    pub async fn list_secrets(&self, actor: Actor<'_>) -> Result<Vec<SecretMeta>> {
        actor.require_admin()?;
        Ok(secret_store::list(&self.db).await?)
    }

    /// Sets secret `name` to `value` (admins): non-empty, at most 64 KiB. Audited `secret.set`
    /// with the name only.
    pub async fn put_secret(
        &self,
        actor: Actor<'_>,
        name: &str,
        value: &str,
    ) -> Result<SecretMeta> {
        actor.require_admin()?;
        if !is_secret_name(name) {
            return Err(CoordError::invalid(
                "invalid_name",
                format!(
                    "secret names use A-Z, 0-9 and '_', do not start with a digit, and have at \
                     most {MAX_SECRET_NAME} characters"
                ),
            ));
        }
        if value.is_empty() {
            return Err(CoordError::invalid(
                "invalid_value",
                "the value must not be empty",
            ));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(CoordError::invalid(
                "value_too_long",
                "the value is longer than 64 KiB",
            ));
        }
        let keyring = self.require_keyring()?;
        let mut tx = self.db.begin().await?;
        let updated_at = secret_store::put(&mut tx, keyring, name, value).await?;
        audit::append(
            &mut tx,
            NewAuditEvent::new("secret.set", serde_json::json!({"name": name}))
                .by(actor_id(&actor)),
        )
        .await?;
        tx.commit().await?;
        Ok(SecretMeta {
            name: name.to_owned(),
            updated_at,
        })
    }

    /// Deletes secret `name` (admins); 404 when there is none. Audited `secret.deleted`.
    pub async fn delete_secret(&self, actor: Actor<'_>, name: &str) -> Result<SecretMeta> {
        actor.require_admin()?;
        if !is_secret_name(name) {
            return Err(CoordError::NotFound("secret"));
        }
        let mut tx = self.db.begin().await?;
        let Some(meta) = secret_store::delete(&mut tx, name).await? else {
            return Err(CoordError::NotFound("secret"));
        };
        audit::append(
            &mut tx,
            NewAuditEvent::new("secret.deleted", serde_json::json!({"name": name}))
                .by(actor_id(&actor)),
        )
        .await?;
        tx.commit().await?;
        Ok(meta)
    }

    /// Re-encrypts every stored secret under a new data key inside `tx` (`rotate_credentials`).
    /// Without a keyring this works only while no secret is stored (nothing to re-encrypt), and
    /// then returns `None`.
    pub(crate) async fn rotate_secrets_in(&self, tx: &mut Tx) -> Result<Option<Rotation>> {
        match &self.keyring {
            Some(keyring) => Ok(Some(secret_store::rotate(tx, keyring).await?)),
            None if secret_store::count(&self.db).await? == 0 => Ok(None),
            None => Err(CoordError::Unavailable(
                "no master key is loaded, so stored secrets cannot be re-encrypted".to_owned(),
            )),
        }
    }
}
