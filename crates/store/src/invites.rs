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
