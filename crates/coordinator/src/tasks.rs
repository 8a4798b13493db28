//! Task operations people ask for: create (with idempotency), read, list, cancel — and who may
//! see what: a task is visible to its owner and to admins; anyone else gets "not found" (no
//! existence leak) and the attempt is audited.

use std::time::Duration;

use domain::{
    Id, IdKind, MAX_INPUT_BYTES, Role, Task, TaskError, TaskInput, TaskStatus, Timestamp, User,
};
use policy::decision::Verdict;
use store::Tx;
use store::approvals::NewApproval;
use store::tasks::{self as task_store, StatusChange, TaskFilter, TaskRecord};

use crate::Coordinator;
use crate::error::{CoordError, Result};
use crate::page::Page;
use policy::gate::{Gated, Subject};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// A request to create a task.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub input: TaskInput,
    /// A named environment whose grants the task may use.
    pub environment: Option<String>,
    /// The same key from the same user within 24 h returns the first task.
    pub idempotency_key: Option<String>,
}

/// Filters for listing tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    /// Admins may list another user's tasks.
    pub user_id: Option<Id>,
    pub page: Page,
}

fn validate_input(input: &TaskInput) -> Result<()> {
    let text = input.text();
    if text.trim().is_empty() {
        return Err(CoordError::invalid(
            "empty_input",
            "the command or prompt is empty",
        ));
    }
    if text.len() > MAX_INPUT_BYTES {
        return Err(CoordError::invalid(
            "input_too_long",
            format!(
                "the command or prompt is longer than {} KiB",
                MAX_INPUT_BYTES / 1024
            ),
        ));
    }
    if text.contains('\0') {
        return Err(CoordError::invalid(
            "invalid_input",
            "the text contains a NUL character",
        ));
    }
    Ok(())
}

fn validate_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(CoordError::invalid(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(())
}

impl Coordinator {
    /// Creates a task for `user`. A command is decided at once (CONTRACT.md "Task"): QUEUED when
    /// allowed, WAITING_APPROVAL with a new approval, or FAILED when denied. Returns the task and
    /// whether it was created now (false: an earlier request with the same idempotency key made
    /// it).
    pub async fn create_task(&self, user: &User, request: NewTask) -> Result<(Task, bool)> {
        validate_input(&request.input)?;
        if let Some(key) = &request.idempotency_key {
            validate_idempotency_key(key)?;
        }
        self.check_task_quota(user).await?;
        let task_id = Id::generate(IdKind::Task)
            .map_err(|e| CoordError::Internal(format!("no randomness: {e}")))?;
        let now = Timestamp::now();
        let record = match &request.input {
            TaskInput::Command(command) => {
                let subject = Subject::direct(user.role, user.bypass);
                let gated = self
                    .gate(subject, command, request.environment.as_deref())
                    .await?;
                decided_record(task_id, user, gated, now)?
            }
            TaskInput::Prompt(prompt) => {
                if let Some(env) = &request.environment
                    && store::environments::grants(&self.db, env).await?.is_none()
                {
                    return Err(CoordError::invalid(
                        "unknown_environment",
                        format!("there is no environment named {env:?}"),
                    ));
                }
                let report = policy::scan::scan(prompt, policy::scan::Source::UserMessage);
                let mut record = TaskRecord::undecided(Task::queued(
                    task_id,
                    user.user_id.clone(),
                    request.input.clone(),
                    request.environment,
                    now,
                ));
                if report.flagged {
                    refuse_flagged(&mut record, &report);
                }
                record
            }
        };
        let task = record.task.clone();
        match &request.idempotency_key {
            Some(key) => {
                if let Some(first) = self.create_once(&record, key).await? {
                    return Ok((first, false));
                }
            }
            None => self.task_writer.write(record).await?,
        }
        if task.status == TaskStatus::Queued
            && let Err(e) = self.bus.notify_work(&task.task_id).await
        {
            // The database has the task; workers also poll, so a lost wake-up only delays it.
            tracing::warn!(task_id = %task.task_id, error = %e, "could not publish wake-up");
        }
        Ok((task, true))
    }

    /// Refuses when `user` created [`Coordinator::with_task_quota`]'s number of tasks within the
    /// last hour.
    async fn check_task_quota(&self, user: &User) -> Result<()> {
        let Some(limit) = self.tasks_per_hour else {
            return Ok(());
        };
        let since = Timestamp::from_millis(Timestamp::now().as_millis() - 3_600_000);
        let created = task_store::created_since(&self.db, &user.user_id, since).await?;
        if created >= i64::from(limit) {
            return Err(CoordError::QuotaExceeded(format!(
                "you created {created} tasks in the last hour, the most allowed is {limit}; try \
                 again later"
            )));
        }
        Ok(())
    }

    /// Stores the record unless its owner already used `key` within the window; then returns the
    /// task that use created. Claiming the key comes first: of concurrent requests with one key,
    /// exactly one claims it; the others wait for its commit and return its task.
    async fn create_once(&self, record: &TaskRecord, key: &str) -> Result<Option<Task>> {
        let task = &record.task;
        let mut tx = self.db.begin().await?;
        let claimed = task_store::claim_idempotency_key(
            &mut tx,
            &task.user_id,
            key,
            &task.task_id,
            IDEMPOTENCY_WINDOW,
        )
        .await?;
        if let Some(existing) = claimed {
            let first = task_store::get_in(&mut tx, &existing)
                .await?
                .ok_or(CoordError::NotFound("task"))?;
            tx.commit().await?;
            return Ok(Some(first));
        }
        task_store::insert(&mut tx, record).await?;
        tx.commit().await?;
        Ok(None)
    }

    /// A task, if `user` may see it.
    pub async fn get_task(&self, user: &User, task_id: &Id) -> Result<Task> {
        let task = task_store::get(&self.db, task_id).await?;
        self.visible(user, task, task_id).await
    }

    /// Tasks `user` may see, newest first.
    pub async fn list_tasks(&self, user: &User, query: &TaskQuery) -> Result<Vec<Task>> {
        let user_id = match (&query.user_id, user.role) {
            (Some(other), Role::Admin) => Some(other.clone()),
            (None, Role::Admin) => None,
            (Some(other), _) if *other != user.user_id => {
                return Err(CoordError::Forbidden(
                    "only admins may list other users' tasks".to_owned(),
                ));
            }
            _ => Some(user.user_id.clone()),
        };
        let filter = TaskFilter {
            user_id,
            status: query.status,
            before: query.page.before.clone(),
        };
        Ok(task_store::list(&self.db, &filter, query.page.limit).await?)
    }

    /// Cancels a task `user` may see. A finished task cannot be cancelled (conflict).
    pub async fn cancel_task(&self, user: &User, task_id: &Id) -> Result<Task> {
        let mut tx = self.db.begin().await?;
        let task = task_store::get_in(&mut tx, task_id).await?;
        let task = match task {
            Some(t) if may_see(user, &t) => t,
            other => {
                drop(tx);
                return self.visible(user, other, task_id).await;
            }
        };
        if task.status.is_terminal() {
            return Err(CoordError::conflict(
                "task_terminal",
                format!("the task is already {}", task.status),
            ));
        }
        let canceled = cancel_in(&mut tx, task_id, Some(&user.user_id), "canceled_by_user").await?;
        tx.commit().await?;
        Ok(canceled)
    }

    /// Checks visibility; for an invisible task, audits the attempt and answers "not found".
    async fn visible(&self, user: &User, task: Option<Task>, task_id: &Id) -> Result<Task> {
        match task {
            Some(t) if may_see(user, &t) => Ok(t),
            Some(_) => {
                self.deny_access(user, "task", task_id, Some(task_id))
                    .await?;
                Err(CoordError::NotFound("task"))
            }
            None => Err(CoordError::NotFound("task")),
        }
    }
}

/// The new task (and approval) a gate decision makes.
fn decided_record(task_id: Id, user: &User, gated: Gated, now: Timestamp) -> Result<TaskRecord> {
    let mut task = Task::queued(
        task_id,
        user.user_id.clone(),
        TaskInput::Command(gated.action.clone()),
        gated.grants.as_ref().map(|g| g.name.clone()),
        now,
    );
    task.risk_tier = Some(gated.classification.tier);
    let decision = Some(gated.audit_data());
    let approval = match gated.decision.verdict {
        Verdict::Allow => None,
        Verdict::Deny => {
            task.status = TaskStatus::Failed;
            task.error = Some(TaskError {
                code: gated.decision.error_code().to_owned(),
                message: gated.rationale(),
            });
            None
        }
        Verdict::RequireApproval => {
            let approval_id = Id::generate(IdKind::Approval)
                .map_err(|e| CoordError::Internal(format!("no randomness: {e}")))?;
            task.status = TaskStatus::WaitingApproval;
            task.approval_id = Some(approval_id.clone());
            Some(NewApproval {
                action_hash: gated.action_hash(),
                grants: gated.grants_json(),
                approval: gated.approval(
                    approval_id,
                    task.task_id.clone(),
                    user.user_id.clone(),
                    now,
                ),
            })
        }
    };
    Ok(TaskRecord {
        task,
        decision,
        approval,
        flagged: None,
    })
}

/// A prompt the injection scanner flagged is not planned: the task is FAILED at once with
/// `input_flagged` and the findings are audited (`input.flagged`).
fn refuse_flagged(record: &mut TaskRecord, report: &policy::scan::ScanReport) {
    record.task.status = TaskStatus::Failed;
    record.task.error = Some(TaskError {
        code: "input_flagged".to_owned(),
        message: format!(
            "this message looks like an attempt to override the agent's instructions, so it was \
             not sent to the model ({}). If it was innocent, rephrase it; to run an exact \
             command, create a command task (`/run` in Telegram).",
            report.reasons.join("; ")
        ),
    });
    record.flagged = Some(serde_json::json!({
        "source": "user_message",
        "reasons": report.reasons,
        "categories": report.categories,
    }));
}

/// Owners and admins see a task.
fn may_see(user: &User, task: &Task) -> bool {
    task.user_id == user.user_id || user.role == Role::Admin
}

/// Cancels one task inside `tx`; its pending approval, if any, is recorded as EXPIRE.
pub(crate) async fn cancel_in(
    tx: &mut Tx,
    task_id: &Id,
    actor: Option<&Id>,
    reason: &str,
) -> Result<Task> {
    let change = StatusChange {
        reason: Some(reason.to_owned()),
        ..StatusChange::default()
    };
    let canceled = task_store::set_status(tx, task_id, TaskStatus::Canceled, change, actor).await?;
    if let Some(pending) = store::approvals::pending_of_task(tx, task_id).await? {
        crate::approvals::expire_in(tx, &pending).await?;
    }
    Ok(canceled)
}

/// Cancels every non-terminal task of `user_id` inside `tx`; returns their ids.
pub(crate) async fn cancel_all_in(
    tx: &mut Tx,
    user_id: &Id,
    actor: Option<&Id>,
    reason: &str,
) -> Result<Vec<Id>> {
    let ids = task_store::active_ids_of_user(tx, user_id).await?;
    for id in &ids {
        cancel_in(tx, id, actor, reason).await?;
    }
    Ok(ids)
}
