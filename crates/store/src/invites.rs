//! Invite codes (redeemed to create a user) and link codes (attach a Telegram account to an
//! existing user). Codes are secrets: only their SHA-256 is stored.

use domain::{Id, IdKind, Role, Timestamp};

use crate::db::Tx;
use crate::error::Result;
use crate::rows;
use crate::users::secret_hash;

/// What redeeming a code does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeKind {
    /// Creates a new user with this role.
    Invite(Role),
    /// Links a Telegram account to this existing user.
    Link(Id),
}

/// A freshly created code. `code` is shown once.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub code: String,
    /// Non-secret reference (for audit and listings).
    pub code_ref: String,
    pub kind: CodeKind,
    pub expires_at: Timestamp,
}

/// Creates a single-use code that expires at `expires_at`.
pub async fn insert(
    tx: &mut Tx,
    kind: CodeKind,
    expires_at: Timestamp,
    created_by: Option<&Id>,
) -> Result<IssuedCode> {
    let code = rows::fresh_id(IdKind::Code)?.to_string();
    let hash = secret_hash(&code);
    let code_ref = format!("inv_{}", &hash[..12]);
    let (kind_text, role, user_id) = match &kind {
        CodeKind::Invite(role) => ("invite", Some(role.as_str()), None),
        CodeKind::Link(user) => ("link", None, Some(user.as_str())),
    };
    sqlx::query(
        "INSERT INTO invites (code_hash, code_ref, kind, role, user_id, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&hash)
    .bind(&code_ref)
    .bind(kind_text)
    .bind(role)
    .bind(user_id)
    .bind(created_by.map(Id::as_str))
    .bind(Timestamp::now().as_millis())
    .bind(expires_at.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(IssuedCode {
        code,
        code_ref,
        kind,
        expires_at,
    })
}

/// A stored code as redeeming sees it (never the code itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// Non-secret reference (for audit).
    pub code_ref: String,
    pub kind: CodeKind,
    pub expires_at: Timestamp,
    /// When it was redeemed, if it was.
    pub redeemed_at: Option<Timestamp>,
    /// The user it was redeemed for (the new user of an invite, the linked user of a link code).
    pub redeemed_by: Option<Id>,
}

/// The code whose SHA-256 matches `code`, if any, inside a transaction.
pub async fn find_in(tx: &mut Tx, code: &str) -> Result<Option<CodeRecord>> {
    let row = sqlx::query(
        "SELECT code_ref, kind, role, user_id, expires_at, redeemed_at, redeemed_by
         FROM invites WHERE code_hash = $1",
    )
    .bind(secret_hash(code))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kind_text: String = sqlx::Row::try_get(&row, "kind")?;
    let kind = match kind_text.as_str() {
        "invite" => CodeKind::Invite(rows::parsed::<Role>(&row, "role")?),
        "link" => CodeKind::Link(rows::id(&row, "user_id")?),
        other => {
            return Err(crate::StoreError::Corrupt(format!(
                "invites.kind: unknown kind {other:?}"
            )));
        }
    };
    Ok(Some(CodeRecord {
        code_ref: sqlx::Row::try_get(&row, "code_ref")?,
        kind,
        expires_at: rows::time(&row, "expires_at")?,
        redeemed_at: rows::opt_time(&row, "redeemed_at")?,
        redeemed_by: rows::opt_id(&row, "redeemed_by")?,
    }))
}

/// Marks the code `code_ref` redeemed for `redeemed_by`, if it is still unredeemed and
/// unexpired (a guarded update: of concurrent redemptions exactly one wins). Returns whether
/// this call redeemed it.
pub async fn redeem(tx: &mut Tx, code_ref: &str, redeemed_by: &Id) -> Result<bool> {
    let now = Timestamp::now().as_millis();
    let n = sqlx::query(
        "UPDATE invites SET redeemed_at = $1, redeemed_by = $2
         WHERE code_ref = $3 AND redeemed_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(redeemed_by.as_str())
    .bind(code_ref)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}
