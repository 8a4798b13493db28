//! The org policy row and users' bypass toggles. Read fresh for every decision: there is no
//! cache, so a change applies to the very next decision in every process.

use domain::{BypassMode, Id, OrgPolicy, RiskTier, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};
use crate::rows;

const POLICY_COLUMNS: &str = "bypass_allowed, bypass_max_tier, mutations_paused, l3_requires_admin, approval_ttl_seconds, version";

fn row_to_policy(row: &AnyRow) -> Result<OrgPolicy> {
    Ok(OrgPolicy {
        bypass_allowed: rows::flag(row, "bypass_allowed")?,
        bypass_max_tier: rows::parsed::<RiskTier>(row, "bypass_max_tier")?,
        mutations_paused: rows::flag(row, "mutations_paused")?,
        l3_requires_admin: rows::flag(row, "l3_requires_admin")?,
        approval_ttl_seconds: row.try_get("approval_ttl_seconds")?,
        version: row.try_get("version")?,
    })
}

/// The current policy; [`StoreError::NotFound`] before `org init`.
pub async fn get(db: &Db) -> Result<OrgPolicy> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {POLICY_COLUMNS} FROM org_policy"
    )))
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound("org policy (run `agenticai org init`)".to_owned()))?;
    row_to_policy(&row)
}

/// The current policy, inside a transaction.
pub async fn current_in(tx: &mut Tx) -> Result<OrgPolicy> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {POLICY_COLUMNS} FROM org_policy"
    )))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound("org policy (run `agenticai org init`)".to_owned()))?;
    row_to_policy(&row)
}

/// A change to some fields of the policy; `None` keeps a field's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChange {
    pub bypass_allowed: Option<bool>,
    pub bypass_max_tier: Option<RiskTier>,
    pub mutations_paused: Option<bool>,
    pub l3_requires_admin: Option<bool>,
    pub approval_ttl_seconds: Option<i64>,
}

/// Applies `change` atomically (one statement: concurrent changes cannot lose each other's
/// fields), bumps the version, and returns the policy before and after.
pub async fn update(tx: &mut Tx, change: &PolicyChange) -> Result<(OrgPolicy, OrgPolicy)> {
    let before = current_in(tx).await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE org_policy SET
            bypass_allowed = COALESCE($1, bypass_allowed),
            bypass_max_tier = COALESCE($2, bypass_max_tier),
            mutations_paused = COALESCE($3, mutations_paused),
            l3_requires_admin = COALESCE($4, l3_requires_admin),
            approval_ttl_seconds = COALESCE($5, approval_ttl_seconds),
            version = version + 1,
            updated_at = $6
         RETURNING {POLICY_COLUMNS}"
    )))
    .bind(change.bypass_allowed.map(i64::from))
    .bind(change.bypass_max_tier.map(RiskTier::as_str))
    .bind(change.mutations_paused.map(i64::from))
    .bind(change.l3_requires_admin.map(i64::from))
    .bind(change.approval_ttl_seconds)
    .bind(Timestamp::now().as_millis())
    .fetch_one(&mut **tx)
    .await?;
    Ok((before, row_to_policy(&row)?))
}

/// Sets one user's bypass; returns whether it changed.
pub async fn set_bypass(tx: &mut Tx, user_id: &Id, mode: BypassMode) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE users SET bypass = $1, updated_at = $2 WHERE user_id = $3 AND bypass <> $1",
    )
    .bind(mode.as_str())
    .bind(Timestamp::now().as_millis())
    .bind(user_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Turns every user's bypass OFF; returns whose was ON.
pub async fn revoke_all_bypass(tx: &mut Tx) -> Result<Vec<Id>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM users WHERE bypass = 'ON' ORDER BY user_id")
            .fetch_all(&mut **tx)
            .await?;
    sqlx::query("UPDATE users SET bypass = 'OFF', updated_at = $1 WHERE bypass = 'ON'")
        .bind(Timestamp::now().as_millis())
        .execute(&mut **tx)
        .await?;
    ids.iter()
        .map(|s| Id::parse(s).map_err(StoreError::corrupt))
        .collect()
}
