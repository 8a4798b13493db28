//! Tasks: the source of truth for work, and the work queue.
//!
//! Every status change goes through [`set_status`], which asks the domain state machine first and
//! then updates only if the row still has the status it was read with, so two processes racing on
//! one task can never produce an illegal transition. Workers take QUEUED tasks with [`claim`]: a
//! lease with an expiry, so a dead worker's task is found again by [`expired_leases`].

use std::time::Duration;

use domain::{
    Id, RiskTier, Task, TaskError, TaskKind, TaskResult, TaskStatus, Timestamp, TransitionError,
};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::approvals::{self, NewApproval};
use crate::audit::{self, NewAuditEvent};
use crate::db::{Db, Dialect, Tx};
use crate::error::{Result, StoreError};
use crate::rows;
use crate::task_events;

/// The same columns qualified with `tasks.`, for statements that join.
macro_rules! task_columns_qualified {
    () => {
        "tasks.task_id, tasks.user_id, tasks.kind, tasks.input, tasks.environment, tasks.status,
        tasks.risk_tier, tasks.approval_id, tasks.result_exit_code, tasks.result_output,
        tasks.result_truncated, tasks.error_code, tasks.error_message, tasks.created_at,
        tasks.updated_at"
    };
}

macro_rules! task_columns {
    () => {
        "task_id, user_id, kind, input, environment, status, risk_tier,
    approval_id, result_exit_code, result_output, result_truncated, error_code, error_message,
    created_at, updated_at"
    };
}

fn row_to_task(row: &AnyRow) -> Result<Task> {
    let exit_code: Option<i64> = row.try_get("result_exit_code")?;
    let result = match exit_code {
        Some(code) => Some(TaskResult {
            exit_code: i32::try_from(code).map_err(StoreError::corrupt)?,
            output: row
                .try_get::<Option<String>, _>("result_output")?
                .unwrap_or_default(),
            truncated: row
                .try_get::<Option<i64>, _>("result_truncated")?
                .unwrap_or(0)
                != 0,
        }),
        None => None,
    };
    let error_code: Option<String> = row.try_get("error_code")?;
    let error = match error_code {
        Some(code) => Some(TaskError {
            code,
            message: row
                .try_get::<Option<String>, _>("error_message")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Task {
        task_id: rows::id(row, "task_id")?,
        user_id: rows::id(row, "user_id")?,
        kind: rows::parsed::<TaskKind>(row, "kind")?,
        input: row.try_get("input")?,
        environment: row.try_get("environment")?,
        status: rows::parsed::<TaskStatus>(row, "status")?,
        risk_tier: rows::opt_parsed::<RiskTier>(row, "risk_tier")?,
        approval_id: rows::opt_id(row, "approval_id")?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
        result,
        error,
    })
}

/// A new task with what was decided about it at creation.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// The task, its status already decided.
    pub task: Task,
    /// The policy decision on its action (audited as `action.decided`), for command tasks.
    pub decision: Option<serde_json::Value>,
    /// The approval it waits for, when the decision asked a human.
    pub approval: Option<NewApproval>,
    /// The injection scanner's findings on a prompt that was refused (audited as
    /// `input.flagged`).
    pub flagged: Option<serde_json::Value>,
}

impl TaskRecord {
    /// A task nothing was decided about yet (agent tasks are decided action by action).
    pub fn undecided(task: Task) -> TaskRecord {
        TaskRecord {
            task,
            decision: None,
            approval: None,
            flagged: None,
        }
    }
}

/// Stores a new task and audits it.
pub async fn insert(tx: &mut Tx, record: &TaskRecord) -> Result<()> {
    insert_many(tx, std::slice::from_ref(record)).await
}

/// Stores new tasks, their approvals and their audit events (`task.created`, then
/// `action.decided` and `approval.created` where present) with one insert per table.
pub async fn insert_many(tx: &mut Tx, records: &[TaskRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    for chunk in records.chunks(rows::MAX_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO tasks (task_id, user_id, kind, input, environment, status, risk_tier,
                approval_id, error_code, error_message, created_at, updated_at) VALUES {}",
            rows::values_placeholders(chunk.len(), 12)
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql));
        for TaskRecord { task, .. } in chunk {
            insert = insert
                .bind(task.task_id.as_str())
                .bind(task.user_id.as_str())
                .bind(task.kind.as_str())
                .bind(task.input.as_str())
                .bind(task.environment.as_deref())
                .bind(task.status.as_str())
                .bind(task.risk_tier.map(RiskTier::as_str))
                .bind(task.approval_id.as_ref().map(Id::as_str))
                .bind(task.error.as_ref().map(|e| e.code.as_str()))
                .bind(task.error.as_ref().map(|e| e.message.as_str()))
                .bind(task.created_at.as_millis())
                .bind(task.updated_at.as_millis());
        }
        insert.execute(&mut **tx).await?;
    }
    let approvals: Vec<&NewApproval> = records.iter().filter_map(|r| r.approval.as_ref()).collect();
    approvals::insert_many(tx, &approvals).await?;
    let mut events = Vec::with_capacity(records.len());
    for TaskRecord {
        task,
        decision,
        approval,
        flagged,
    } in records
    {
        events.push(
            NewAuditEvent::new(
                "task.created",
                serde_json::json!({
                    "kind": task.kind,
                    "input": task.input,
                    "environment": task.environment,
                    "status": task.status,
                    "risk_tier": task.risk_tier,
                }),
            )
            .actor(&task.user_id)
            .task(&task.task_id),
        );
        if let Some(findings) = flagged {
            events.push(
                NewAuditEvent::new("input.flagged", findings.clone())
                    .actor(&task.user_id)
                    .task(&task.task_id),
            );
        }
        if let Some(decision) = decision {
            events.push(
                NewAuditEvent::new("action.decided", decision.clone())
                    .actor(&task.user_id)
                    .task(&task.task_id),
            );
        }
        if let Some(new) = approval {
            events.push(approvals::created_event(new));
        }
    }
    audit::append_many(tx, events).await?;
    Ok(())
}

/// One task by id.
pub async fn get(db: &Db, task_id: &Id) -> Result<Option<Task>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE task_id = $1"
    ))
    .bind(task_id.as_str())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(row_to_task).transpose()
}

/// One task by id, inside a transaction.
pub async fn get_in(tx: &mut Tx, task_id: &Id) -> Result<Option<Task>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE task_id = $1"
    ))
    .bind(task_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(row_to_task).transpose()
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this user's tasks.
    pub user_id: Option<Id>,
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks older than this one (pagination cursor).
    pub before: Option<Id>,
}

/// Tasks matching `filter`, newest first, at most `limit`.
pub async fn list(db: &Db, filter: &TaskFilter, limit: i64) -> Result<Vec<Task>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks t
         WHERE ($1 IS NULL OR t.user_id = $1)
           AND ($2 IS NULL OR t.status = $2)
           AND ($3 IS NULL OR (t.created_at, t.task_id) <
                (SELECT b.created_at, b.task_id FROM tasks b WHERE b.task_id = $3))
         ORDER BY t.created_at DESC, t.task_id DESC LIMIT $4"
    ))
    .bind(filter.user_id.as_ref().map(Id::as_str))
    .bind(filter.status.map(TaskStatus::as_str))
    .bind(filter.before.as_ref().map(Id::as_str))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_task).collect()
}

/// What else changes with a status change.
#[derive(Debug, Clone, Default)]
pub struct StatusChange {
    pub result: Option<TaskResult>,
    pub error: Option<TaskError>,
    /// Why, for the audit trail (e.g. `canceled_by_user`).
    pub reason: Option<String>,
    /// Earliest time a worker may claim the task again (retry backoff, with `to` = QUEUED).
    pub not_before: Option<Timestamp>,
}

/// Why [`set_status`] refused.
#[derive(Debug, thiserror::Error)]
pub enum SetStatusError {
    #[error("no such task")]
    NotFound,
    #[error(transparent)]
    Illegal(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Moves a task to `to`, if the state machine allows it from its current status; releases any
/// lease; audits `task.status_changed` with `actor` and records a `status` task event. Returns
/// the updated task.
pub async fn set_status(
    tx: &mut Tx,
    task_id: &Id,
    to: TaskStatus,
    change: StatusChange,
    actor: Option<&Id>,
) -> std::result::Result<Task, SetStatusError> {
    let current = get_in(tx, task_id).await?.ok_or(SetStatusError::NotFound)?;
    current.status.transition(to)?;
    let now = Timestamp::now();
    let updated = sqlx::query(
        "UPDATE tasks SET status = $1, updated_at = $2,
            result_exit_code = $3, result_output = $4, result_truncated = $5,
            error_code = $6, error_message = $7,
            lease_owner = NULL, lease_expires_at = NULL, not_before = COALESCE($10, not_before)
         WHERE task_id = $8 AND status = $9",
    )
    .bind(to.as_str())
    .bind(now.as_millis())
    .bind(change.result.as_ref().map(|r| i64::from(r.exit_code)))
    .bind(change.result.as_ref().map(|r| r.output.as_str()))
    .bind(change.result.as_ref().map(|r| i64::from(r.truncated)))
    .bind(change.error.as_ref().map(|e| e.code.as_str()))
    .bind(change.error.as_ref().map(|e| e.message.as_str()))
    .bind(task_id.as_str())
    .bind(current.status.as_str())
    .bind(change.not_before.map(Timestamp::as_millis))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from)?
    .rows_affected();
    if updated == 0 {
        // Someone changed it between our read and write; the caller sees the fresh state.
        return Err(SetStatusError::Store(StoreError::Conflict(
            "the task changed concurrently".to_owned(),
        )));
    }
    let mut event = NewAuditEvent::new(
        "task.status_changed",
        serde_json::json!({
            "from": current.status,
            "to": to,
            "reason": change.reason,
            "error_code": change.error.as_ref().map(|e| &e.code),
            "exit_code": change.result.as_ref().map(|r| r.exit_code),
        }),
    )
    .task(task_id);
    if let Some(actor) = actor {
        event = event.actor(actor);
    }
    audit::append(tx, event).await?;
    task_events::append(
        tx,
        task_id,
        "status",
        serde_json::json!({
            "status": to,
            "error": change.error,
            "exit_code": change.result.as_ref().map(|r| r.exit_code),
        }),
    )
    .await?;
    Ok(Task {
        status: to,
        updated_at: now,
        result: change.result,
        error: change.error,
        ..current
    })
}

/// Claims the oldest claimable QUEUED task for `worker`, moving it to RUNNING with a lease until
/// now + `lease`. Two workers never claim the same task. With `per_user_running`, tasks of a user
/// who already has that many RUNNING tasks are passed over (they stay QUEUED, in order).
pub async fn claim(
    db: &Db,
    worker: &str,
    lease: Duration,
    per_user_running: Option<i64>,
) -> Result<Option<Task>> {
    let mut tx = db.begin().await?;
    let now = Timestamp::now();
    // The one dialect-specific query: Postgres picks the row in a CTE (evaluated once) and
    // skips rows other claimers hold; SQLite has a single writer, so the statement is exclusive.
    // On Postgres the per-user count would race between concurrent claimers, so claims that
    // apply it are serialised with a transaction-scoped advisory lock (claims are short).
    let sql = match db.dialect() {
        Dialect::Sqlite => concat!(
            "UPDATE tasks SET status = 'RUNNING', lease_owner = $1, lease_expires_at = $2,
                attempts = attempts + 1, updated_at = $3
             WHERE task_id = (SELECT q.task_id FROM tasks q
                              WHERE q.status = 'QUEUED' AND q.not_before <= $3
                                AND (SELECT COUNT(*) FROM tasks r
                                     WHERE r.user_id = q.user_id AND r.status = 'RUNNING') < $4
                              ORDER BY q.created_at, q.task_id LIMIT 1)
             RETURNING ",
            task_columns!()
        ),
        Dialect::Postgres => {
            if per_user_running.is_some() {
                sqlx::query("SELECT pg_advisory_xact_lock(7262746173)")
                    .execute(&mut *tx)
                    .await?;
            }
            concat!(
                "WITH next AS (SELECT q.task_id FROM tasks q
                               WHERE q.status = 'QUEUED' AND q.not_before <= $3
                                 AND (SELECT COUNT(*) FROM tasks r
                                      WHERE r.user_id = q.user_id AND r.status = 'RUNNING') < $4
                               ORDER BY q.created_at, q.task_id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 UPDATE tasks SET status = 'RUNNING', lease_owner = $1, lease_expires_at = $2,
                    attempts = attempts + 1, updated_at = $3
                 FROM next WHERE tasks.task_id = next.task_id
                 RETURNING ",
                task_columns_qualified!()
            )
        }
    };
    let row = sqlx::query(sql)
        .bind(worker)
        .bind(now.plus(lease).as_millis())
        .bind(now.as_millis())
        .bind(per_user_running.unwrap_or(i64::MAX))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let task = row_to_task(&row)?;
    audit::append(
        &mut tx,
        NewAuditEvent::new(
            "task.status_changed",
            serde_json::json!({"from": TaskStatus::Queued, "to": TaskStatus::Running, "worker": worker}),
        )
        .task(&task.task_id),
    )
    .await?;
    task_events::append(
        &mut tx,
        &task.task_id,
        "status",
        serde_json::json!({"status": TaskStatus::Running}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(task))
}

/// How many times `task_id` has been claimed (1 on its first run).
pub async fn attempts(db: &Db, task_id: &Id) -> Result<i64> {
    let n: Option<i64> = sqlx::query_scalar("SELECT attempts FROM tasks WHERE task_id = $1")
        .bind(task_id.as_str())
        .fetch_optional(db.pool())
        .await?;
    n.ok_or_else(|| StoreError::NotFound("task".to_owned()))
}

/// Extends `worker`'s lease on a RUNNING task; false when the lease was lost.
pub async fn renew_lease(db: &Db, task_id: &Id, worker: &str, lease: Duration) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE tasks SET lease_expires_at = $1
         WHERE task_id = $2 AND lease_owner = $3 AND status = 'RUNNING'",
    )
    .bind(Timestamp::now().plus(lease).as_millis())
    .bind(task_id.as_str())
    .bind(worker)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// RUNNING tasks whose lease ran out: their worker died. Recovery decides what becomes of them.
pub async fn expired_leases(db: &Db) -> Result<Vec<Task>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks
         WHERE status = 'RUNNING' AND lease_expires_at IS NOT NULL AND lease_expires_at < $1
         ORDER BY created_at"
    ))
    .bind(Timestamp::now().as_millis())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_task).collect()
}

/// Takes over a RUNNING task whose lease ran out, so that exactly one recoverer acts on it: true
/// for the caller that got it (its lease is now `worker`'s for a minute).
pub async fn take_over_expired(db: &Db, task_id: &Id, worker: &str) -> Result<bool> {
    let now = Timestamp::now();
    let n = sqlx::query(
        "UPDATE tasks SET lease_owner = $1, lease_expires_at = $2
         WHERE task_id = $3 AND status = 'RUNNING' AND lease_expires_at IS NOT NULL
           AND lease_expires_at < $4",
    )
    .bind(worker)
    .bind(now.plus(Duration::from_secs(60)).as_millis())
    .bind(task_id.as_str())
    .bind(now.as_millis())
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Tasks that reached a terminal status after `since` (by `updated_at`, oldest first, at most
/// `limit`) and were created with an idempotency key starting with `key_prefix` (the channel
/// that created them, e.g. `tg:` for Telegram), so their results can be relayed there.
pub async fn finished_since(
    db: &Db,
    since: Timestamp,
    key_prefix: &str,
    limit: i64,
) -> Result<Vec<Task>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns_qualified!(),
        " FROM tasks JOIN idempotency_keys k ON k.task_id = tasks.task_id
         WHERE tasks.updated_at > $1
           AND tasks.status IN ('SUCCEEDED', 'FAILED', 'CANCELED', 'TIMED_OUT')
           AND k.key LIKE $2
         ORDER BY tasks.updated_at, tasks.task_id LIMIT $3"
    ))
    .bind(since.as_millis())
    .bind(format!("{key_prefix}%"))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_to_task).collect()
}

/// Tasks created with an idempotency key starting with `key_prefix` (e.g. `tg:` for Telegram)
/// that are not finished (QUEUED, RUNNING, WAITING_APPROVAL), or that finished after
/// `finished_since` (by `updated_at`), each with its key — so the channel can show their
/// progress, and their final status, in the message that accepted them. Most recently changed
/// first, at most `limit`.
pub async fn active_or_finished_since_with_key_prefix(
    db: &Db,
    key_prefix: &str,
    finished_since: Timestamp,
    limit: i64,
) -> Result<Vec<(Task, String)>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns_qualified!(),
        ", k.key AS idempotency_key
         FROM tasks JOIN idempotency_keys k ON k.task_id = tasks.task_id
         WHERE k.key LIKE $1
           AND (tasks.status IN ('QUEUED', 'RUNNING', 'WAITING_APPROVAL')
                OR tasks.updated_at > $2)
         ORDER BY tasks.updated_at DESC, tasks.task_id LIMIT $3"
    ))
    .bind(format!("{key_prefix}%"))
    .bind(finished_since.as_millis())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((row_to_task(row)?, row.try_get("idempotency_key")?)))
        .collect()
}

/// Records an agent task's latest action inside `tx`: the tier of an action that started raises
/// the task's `risk_tier` (the highest among the actions taken so far), and `approval_id` (when
/// an action waits for one) becomes the task's approval.
pub async fn record_agent_action(
    tx: &mut Tx,
    task_id: &Id,
    tier: Option<RiskTier>,
    approval_id: Option<&Id>,
) -> Result<()> {
    let current = get_in(tx, task_id)
        .await?
        .ok_or_else(|| StoreError::NotFound("task".to_owned()))?;
    let highest = match (current.risk_tier, tier) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    sqlx::query(
        "UPDATE tasks SET risk_tier = $1, approval_id = COALESCE($2, approval_id)
         WHERE task_id = $3",
    )
    .bind(highest.map(RiskTier::as_str))
    .bind(approval_id.map(Id::as_str))
    .bind(task_id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `worker` still holds `task_id` (RUNNING under its lease), checked inside `tx` so the
/// writes that follow in it belong to the holder (on Postgres the row stays locked until the
/// commit). A worker whose lease was taken over, or whose task was cancelled, writes nothing.
pub async fn hold_lease(tx: &mut Tx, task_id: &Id, worker: &str) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE tasks SET lease_owner = lease_owner
         WHERE task_id = $1 AND status = 'RUNNING' AND lease_owner = $2",
    )
    .bind(task_id.as_str())
    .bind(worker)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// An earlier turn of a user's conversation with the agent.
#[derive(Debug, Clone)]
pub struct AgentTurn {
    /// The finished agent task: its request (`input`) and its answer or error.
    pub task: Task,
    /// Untrusted content entered it.
    pub tainted: bool,
    /// The injection scanner flagged content in it.
    pub flagged: bool,
}

/// `user_id`'s finished agent tasks created before `before` that were planned (they have a
/// transcript: a request refused at creation, e.g. by the injection scanner, never is), newest
/// first, at most `limit`: the conversation's earlier turns.
pub async fn recent_agent_turns(
    db: &Db,
    user_id: &Id,
    before: Timestamp,
    limit: i64,
) -> Result<Vec<AgentTurn>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns_qualified!(),
        ", a.tainted AS tainted, a.flagged AS flagged
         FROM tasks JOIN agent_transcripts a ON a.task_id = tasks.task_id
         WHERE tasks.user_id = $1 AND tasks.kind = 'agent' AND tasks.created_at < $2
           AND tasks.status IN ('SUCCEEDED', 'FAILED', 'CANCELED', 'TIMED_OUT')
         ORDER BY tasks.created_at DESC, tasks.task_id DESC LIMIT $3"
    ))
    .bind(user_id.as_str())
    .bind(before.as_millis())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AgentTurn {
                task: row_to_task(row)?,
                tainted: row.try_get::<i64, _>("tainted")? != 0,
                flagged: row.try_get::<i64, _>("flagged")? != 0,
            })
        })
        .collect()
}

/// How many tasks `user_id` created at or after `since`.
pub async fn created_since(db: &Db, user_id: &Id, since: Timestamp) -> Result<i64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE user_id = $1 AND created_at >= $2")
            .bind(user_id.as_str())
            .bind(since.as_millis())
            .fetch_one(db.pool())
            .await?;
    Ok(n)
}

/// Claims `key` from `user_id` for the task `task_id` about to be created. Returns `None` when
/// the claim succeeded, or the task an earlier request with the key made within `window`. Keys
/// older than the window are forgotten first, so a key can be used again after it. Concurrent
/// claimers of one key queue on it; exactly one gets `None`.
pub async fn claim_idempotency_key(
    tx: &mut Tx,
    user_id: &Id,
    key: &str,
    task_id: &Id,
    window: Duration,
) -> Result<Option<Id>> {
    let now = Timestamp::now().as_millis();
    let cutoff = now - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at < $3")
        .bind(user_id.as_str())
        .bind(key)
        .bind(cutoff)
        .execute(&mut **tx)
        .await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, task_id, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user_id.as_str())
    .bind(key)
    .bind(task_id.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if claimed == 1 {
        return Ok(None);
    }
    let existing: String =
        sqlx::query_scalar("SELECT task_id FROM idempotency_keys WHERE user_id = $1 AND key = $2")
            .bind(user_id.as_str())
            .bind(key)
            .fetch_one(&mut **tx)
            .await?;
    Id::parse(&existing).map(Some).map_err(StoreError::corrupt)
}

/// Non-terminal task ids of a user (for cancelling everything they have in flight).
pub async fn active_ids_of_user(tx: &mut Tx, user_id: &Id) -> Result<Vec<Id>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT task_id FROM tasks WHERE user_id = $1
           AND status IN ('QUEUED', 'RUNNING', 'WAITING_APPROVAL') ORDER BY created_at",
    )
    .bind(user_id.as_str())
    .fetch_all(&mut **tx)
    .await?;
    ids.iter()
        .map(|t| Id::parse(t).map_err(StoreError::corrupt))
        .collect()
}

/// Non-terminal tasks of tier L1 or more, and every non-terminal agent task — queued, running or
/// waiting, an agent task may propose a change at its next step (`cancel_risky_tasks`).
pub async fn risky_active_ids(tx: &mut Tx) -> Result<Vec<Id>> {
    ids(
        tx,
        "SELECT task_id FROM tasks
         WHERE status IN ('QUEUED', 'RUNNING', 'WAITING_APPROVAL')
           AND (risk_tier IN ('L1_MUTATING', 'L2_DESTRUCTIVE', 'L3_PRIVILEGED')
                OR kind = 'agent')
         ORDER BY created_at",
    )
    .await
}

/// Non-terminal tasks that use an environment (they hold grants).
pub async fn active_ids_with_environment(tx: &mut Tx) -> Result<Vec<Id>> {
    ids(
        tx,
        "SELECT task_id FROM tasks
         WHERE status IN ('QUEUED', 'RUNNING', 'WAITING_APPROVAL') AND environment IS NOT NULL
         ORDER BY created_at",
    )
    .await
}

async fn ids(tx: &mut Tx, sql: &'static str) -> Result<Vec<Id>> {
    let ids: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut **tx).await?;
    ids.iter()
        .map(|t| Id::parse(t).map_err(StoreError::corrupt))
        .collect()
}

/// How many tasks are in each status (for metrics).
pub async fn count_by_status(db: &Db) -> Result<Vec<(TaskStatus, i64)>> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((rows::parsed::<TaskStatus>(r, "status")?, r.try_get("n")?)))
        .collect()
}
