//! Users, their API tokens and their Telegram links.

use domain::{BypassMode, Id, IdKind, Role, Timestamp, User};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};
use crate::rows;

macro_rules! user_columns {
    () => {
        "u.user_id, u.name, u.role, u.disabled, u.bypass, u.created_at,
    (SELECT COUNT(*) FROM telegram_identities t WHERE t.user_id = u.user_id) AS telegram_linked"
    };
}

fn row_to_user(row: &AnyRow) -> Result<User> {
    Ok(User {
        user_id: rows::id(row, "user_id")?,
        name: sqlx::Row::try_get(row, "name")?,
        role: rows::parsed::<Role>(row, "role")?,
        disabled: rows::flag(row, "disabled")?,
        telegram_linked: rows::flag(row, "telegram_linked")?,
        bypass: rows::parsed::<BypassMode>(row, "bypass")?,
        created_at: rows::time(row, "created_at")?,
    })
}

/// Creates a user.
pub async fn insert(tx: &mut Tx, name: &str, role: Role) -> Result<User> {
    let user_id = rows::fresh_id(IdKind::User)?;
    let now = Timestamp::now();
    sqlx::query(
        "INSERT INTO users (user_id, name, role, disabled, bypass, created_at, updated_at)
         VALUES ($1, $2, $3, 0, 'OFF', $4, $4)",
    )
    .bind(user_id.as_str())
    .bind(name)
    .bind(role.as_str())
    .bind(now.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(User {
        user_id,
        name: name.to_owned(),
        role,
        disabled: false,
        telegram_linked: false,
        bypass: BypassMode::Off,
        created_at: now,
    })
}

/// One user by id.
pub async fn get(db: &Db, user_id: &Id) -> Result<Option<User>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.user_id = $1"
    ))
    .bind(user_id.as_str())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(row_to_user).transpose()
}

/// One user by id, inside a transaction.
pub async fn get_in(tx: &mut Tx, user_id: &Id) -> Result<Option<User>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.user_id = $1"
    ))
    .bind(user_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(row_to_user).transpose()
}

/// Users, newest first, before the user `before` (exclusive), at most `limit`.
pub async fn list(db: &Db, before: Option<&Id>, limit: i64) -> Result<Vec<User>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u
         WHERE $1 IS NULL OR (u.created_at, u.user_id) <
             (SELECT b.created_at, b.user_id FROM users b WHERE b.user_id = $1)
         ORDER BY u.created_at DESC, u.user_id DESC LIMIT $2"
    ))
    .bind(before.map(Id::as_str))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_user).collect()
}

/// Changes a user's role.
pub async fn set_role(tx: &mut Tx, user_id: &Id, role: Role) -> Result<()> {
    sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE user_id = $3")
        .bind(role.as_str())
        .bind(Timestamp::now().as_millis())
        .bind(user_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Disables a user: their tokens are revoked and their Telegram link removed. Returns false when
/// the user was already disabled.
pub async fn disable(tx: &mut Tx, user_id: &Id) -> Result<bool> {
    let now = Timestamp::now().as_millis();
    let changed = sqlx::query(
        "UPDATE users SET disabled = 1, bypass = 'OFF', updated_at = $1
         WHERE user_id = $2 AND disabled = 0",
    )
    .bind(now)
    .bind(user_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM telegram_identities WHERE user_id = $1")
        .bind(user_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(changed > 0)
}

/// Re-enables a disabled user (they need a new token and a new link code).
pub async fn enable(tx: &mut Tx, user_id: &Id) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE users SET disabled = 0, updated_at = $1 WHERE user_id = $2 AND disabled = 1",
    )
    .bind(Timestamp::now().as_millis())
    .bind(user_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Number of enabled admins; used to refuse removing the last one.
pub async fn count_active_admins(tx: &mut Tx) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0")
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// A freshly issued API token. `token` is shown once; only its hash is stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token_id: Id,
    pub token: String,
    pub expires_at: Option<Timestamp>,
}

/// Prefix of every API token, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "agt_";

/// SHA-256 (hex) of a presented secret (token or code).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Issues a new token for `user_id`, valid until `expires_at` (forever when None).
pub async fn issue_token(
    tx: &mut Tx,
    user_id: &Id,
    expires_at: Option<Timestamp>,
) -> Result<IssuedToken> {
    let token_id = rows::fresh_id(IdKind::Token)?;
    let random = domain::random_string(48)
        .map_err(|e| StoreError::Other(format!("no randomness available: {e}")))?;
    let token = format!("{TOKEN_PREFIX}{random}");
    sqlx::query(
        "INSERT INTO api_tokens (token_id, token_hash, user_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_id.as_str())
    .bind(secret_hash(&token))
    .bind(user_id.as_str())
    .bind(Timestamp::now().as_millis())
    .bind(expires_at.map(Timestamp::as_millis))
    .execute(&mut **tx)
    .await?;
    Ok(IssuedToken {
        token_id,
        token,
        expires_at,
    })
}

/// Why a presented token does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Unknown,
    Expired,
    Revoked,
    UserDisabled,
}

impl TokenRejection {
    /// Stable name for audit data.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRejection::Unknown => "unknown_token",
            TokenRejection::Expired => "expired_token",
            TokenRejection::Revoked => "revoked_token",
            TokenRejection::UserDisabled => "user_disabled",
        }
    }
}

/// The user a token belongs to, or why it is refused.
pub async fn authenticate(
    db: &Db,
    token: &str,
) -> Result<std::result::Result<User, (TokenRejection, Option<Id>)>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        ", k.expires_at AS token_expires_at, k.revoked_at AS token_revoked_at
         FROM api_tokens k JOIN users u ON u.user_id = k.user_id WHERE k.token_hash = $1"
    ))
    .bind(secret_hash(token))
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(Err((TokenRejection::Unknown, None)));
    };
    let user = row_to_user(&row)?;
    let now = Timestamp::now();
    let rejection = if rows::opt_time(&row, "token_revoked_at")?.is_some() {
        Some(TokenRejection::Revoked)
    } else if rows::opt_time(&row, "token_expires_at")?.is_some_and(|e| e <= now) {
        Some(TokenRejection::Expired)
    } else if user.disabled {
        Some(TokenRejection::UserDisabled)
    } else {
        None
    };
    Ok(match rejection {
        Some(r) => Err((r, Some(user.user_id))),
        None => Ok(user),
    })
}

/// The enabled user a Telegram account is linked to, if any.
pub async fn by_telegram(db: &Db, telegram_user_id: i64) -> Result<Option<User>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM telegram_identities i JOIN users u ON u.user_id = i.user_id
         WHERE i.telegram_user_id = $1 AND u.disabled = 0"
    ))
    .bind(telegram_user_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(row_to_user).transpose()
}

/// The user a Telegram account is linked to (enabled or not), inside a transaction.
pub async fn telegram_owner_in(tx: &mut Tx, telegram_user_id: i64) -> Result<Option<Id>> {
    let row = sqlx::query("SELECT user_id FROM telegram_identities WHERE telegram_user_id = $1")
        .bind(telegram_user_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(|r| rows::id(r, "user_id")).transpose()
}

/// Links the Telegram account `telegram_user_id` (private chat `chat_id`) to `user_id`,
/// replacing the user's earlier link, if any. Returns the Telegram id that was linked to the user
/// before, when it was a different one. The account must not be linked to another user (the
/// primary key refuses it: a conflict).
pub async fn link_telegram(
    tx: &mut Tx,
    telegram_user_id: i64,
    user_id: &Id,
    chat_id: i64,
    username: Option<&str>,
) -> Result<Option<i64>> {
    let previous: Option<i64> =
        sqlx::query_scalar("SELECT telegram_user_id FROM telegram_identities WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    sqlx::query("DELETE FROM telegram_identities WHERE user_id = $1")
        .bind(user_id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO telegram_identities (telegram_user_id, user_id, chat_id, username, linked_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(telegram_user_id)
    .bind(user_id.as_str())
    .bind(chat_id)
    .bind(username)
    .bind(Timestamp::now().as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(previous.filter(|p| *p != telegram_user_id))
}

/// The private chat of the Telegram account linked to `user_id`, if the user is enabled and
/// linked.
pub async fn telegram_chat(db: &Db, user_id: &Id) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT i.chat_id FROM telegram_identities i JOIN users u ON u.user_id = i.user_id
         WHERE i.user_id = $1 AND u.disabled = 0",
    )
    .bind(user_id.as_str())
    .fetch_optional(db.pool())
    .await?)
}

/// Every enabled admin with a linked Telegram account, with its private chat.
pub async fn admin_telegram_chats(db: &Db) -> Result<Vec<(Id, i64)>> {
    let rows = sqlx::query(
        "SELECT u.user_id, i.chat_id FROM telegram_identities i JOIN users u ON u.user_id = i.user_id
         WHERE u.role = 'admin' AND u.disabled = 0 ORDER BY u.created_at, u.user_id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((rows::id(r, "user_id")?, sqlx::Row::try_get(r, "chat_id")?)))
        .collect()
}
