//! Approvals: single-use human decisions bound to the hash of one exact action.
//!
//! Every decision is a guarded update (`WHERE decision IS NULL AND expires_at > now`), so of
//! concurrent decisions exactly one wins and nothing can decide an expired approval.

use domain::{Approval, ApprovalDecision, Id, RiskTier, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewAuditEvent;
use crate::db::{Db, Tx};
use crate::error::Result;
use crate::rows;

macro_rules! approval_columns {
    () => {
        "approval_id, task_id, requested_by, risk_tier, action, environment, rationale, decision,
         decided_by, created_at, expires_at"
    };
}

fn row_to_approval(row: &AnyRow) -> Result<Approval> {
    Ok(Approval {
        approval_id: rows::id(row, "approval_id")?,
        task_id: rows::id(row, "task_id")?,
        requested_by: rows::id(row, "requested_by")?,
        risk_tier: rows::parsed::<RiskTier>(row, "risk_tier")?,
        action: row.try_get("action")?,
        environment: row.try_get("environment")?,
        rationale: row.try_get("rationale")?,
        decision: rows::opt_parsed::<ApprovalDecision>(row, "decision")?,
        decided_by: rows::opt_id(row, "decided_by")?,
        created_at: rows::time(row, "created_at")?,
        expires_at: rows::time(row, "expires_at")?,
    })
}

/// An approval about to be stored, with what it is bound to.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub approval: Approval,
    /// The grants the action runs with (environment egress and secret names), as JSON.
    pub grants: serde_json::Value,
    /// SHA-256 binding of action, environment and grants; the executor checks it before running.
    pub action_hash: String,
}

/// Stores approvals with one insert.
pub async fn insert_many(tx: &mut Tx, approvals: &[&NewApproval]) -> Result<()> {
    if approvals.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO approvals (approval_id, task_id, requested_by, risk_tier, action, environment,
            grants, action_hash, rationale, created_at, expires_at) VALUES {}",
        rows::values_placeholders(approvals.len(), 11)
    );
    let grants: Vec<String> = approvals.iter().map(|a| a.grants.to_string()).collect();
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (new, grants) in approvals.iter().zip(&grants) {
        let a = &new.approval;
        insert = insert
            .bind(a.approval_id.as_str())
            .bind(a.task_id.as_str())
            .bind(a.requested_by.as_str())
            .bind(a.risk_tier.as_str())
            .bind(a.action.as_str())
            .bind(a.environment.as_deref())
            .bind(grants.as_str())
            .bind(new.action_hash.as_str())
            .bind(a.rationale.as_str())
            .bind(a.created_at.as_millis())
            .bind(a.expires_at.as_millis());
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

/// The audit event recording that `new` was asked for (`approval.created`, by its requester).
pub fn created_event(new: &NewApproval) -> NewAuditEvent<'_> {
    let a = &new.approval;
    NewAuditEvent::new(
        "approval.created",
        serde_json::json!({
            "approval_id": a.approval_id,
            "risk_tier": a.risk_tier,
            "action": a.action,
            "environment": a.environment,
            "grants": new.grants,
            "action_hash": new.action_hash,
            "rationale": a.rationale,
            "expires_at": a.expires_at,
        }),
    )
    .actor(&a.requested_by)
    .task(&a.task_id)
}

/// Stores one approval and audits it (`approval.created`) inside `tx`.
pub async fn ask(tx: &mut Tx, new: &NewApproval) -> Result<()> {
    insert_many(tx, &[new]).await?;
    crate::audit::append(tx, created_event(new)).await?;
    Ok(())
}

/// One approval by id, inside a transaction.
pub async fn get_in(tx: &mut Tx, approval_id: &Id) -> Result<Option<Approval>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals WHERE approval_id = $1"
    ))
    .bind(approval_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(row_to_approval).transpose()
}

/// Which approvals to list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    /// Only approvals requested by this user (None: everyone's).
    pub requested_by: Option<Id>,
    /// Only undecided, unexpired ones.
    pub pending: bool,
    /// Only approvals older than this one (pagination cursor).
    pub before: Option<Id>,
}

/// Approvals matching `filter`, newest first, at most `limit`.
pub async fn list(db: &Db, filter: &ApprovalFilter, limit: i64) -> Result<Vec<Approval>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals a
         WHERE ($1 IS NULL OR a.requested_by = $1)
           AND ($2 = 0 OR (a.decision IS NULL AND a.expires_at > $3))
           AND ($4 IS NULL OR (a.created_at, a.approval_id) <
                (SELECT b.created_at, b.approval_id FROM approvals b WHERE b.approval_id = $4))
         ORDER BY a.created_at DESC, a.approval_id DESC LIMIT $5"
    ))
    .bind(filter.requested_by.as_ref().map(Id::as_str))
    .bind(i64::from(filter.pending))
    .bind(Timestamp::now().as_millis())
    .bind(filter.before.as_ref().map(Id::as_str))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_approval).collect()
}

/// Records `decision` by `decided_by` if the approval is still undecided (and, unless the
/// decision is EXPIRE, unexpired). Returns whether this call decided it.
pub async fn decide(
    tx: &mut Tx,
    approval_id: &Id,
    decision: ApprovalDecision,
    decided_by: Option<&Id>,
) -> Result<bool> {
    let now = Timestamp::now().as_millis();
    let n = sqlx::query(
        "UPDATE approvals SET decision = $1, decided_by = $2, decided_at = $3
         WHERE approval_id = $4 AND decision IS NULL AND ($1 = 'EXPIRE' OR expires_at > $3)",
    )
    .bind(decision.as_str())
    .bind(decided_by.map(Id::as_str))
    .bind(now)
    .bind(approval_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Undecided approvals whose time is up, oldest first, at most `limit`.
pub async fn overdue(db: &Db, limit: i64) -> Result<Vec<Approval>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals WHERE decision IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
    ))
    .bind(Timestamp::now().as_millis())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_approval).collect()
}

/// The undecided approval of a task, if any.
pub async fn pending_of_task(tx: &mut Tx, task_id: &Id) -> Result<Option<Approval>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals WHERE task_id = $1 AND decision IS NULL"
    ))
    .bind(task_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(row_to_approval).transpose()
}

/// What a decided approval allows: the hash of the action it is bound to, and whether a run has
/// already used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub decision: Option<ApprovalDecision>,
    pub action_hash: String,
    pub consumed: bool,
}

/// The binding of an approval, if it exists.
pub async fn binding(tx: &mut Tx, approval_id: &Id) -> Result<Option<Binding>> {
    let row = sqlx::query(
        "SELECT decision, action_hash, consumed_at FROM approvals WHERE approval_id = $1",
    )
    .bind(approval_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(Binding {
            decision: rows::opt_parsed::<ApprovalDecision>(&row, "decision")?,
            action_hash: row.try_get("action_hash")?,
            consumed: row.try_get::<Option<i64>, _>("consumed_at")?.is_some(),
        })
    })
    .transpose()
}

/// Marks an APPROVE decision as used by the run about to start. False when it is not an unused
/// approval (single use: a second run never gets it).
pub async fn consume(tx: &mut Tx, approval_id: &Id) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE approvals SET consumed_at = $1
         WHERE approval_id = $2 AND decision = 'APPROVE' AND consumed_at IS NULL",
    )
    .bind(Timestamp::now().as_millis())
    .bind(approval_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Gives a consumed approval back because its run provably never started (the sandbox failed to
/// launch), so the retry may use it.
pub async fn release(tx: &mut Tx, approval_id: &Id) -> Result<()> {
    sqlx::query("UPDATE approvals SET consumed_at = NULL WHERE approval_id = $1")
        .bind(approval_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
