//! Task operations people ask for: create (with idempotency), read, list, cancel — and who may
//! see what: a task is visible to its owner and to admins; anyone else gets "not found" (no
//! existence leak) and the attempt is audited.

use std::time::Duration;

use domain::{Id, IdKind, MAX_INPUT_BYTES, Role, Task, TaskInput, TaskStatus, Timestamp, User};
use store::Tx;
use store::audit::{self, NewAuditEvent};
use store::tasks::{self as task_store, StatusChange, TaskFilter};

use crate::Coordinator;
use crate::error::{CoordError, Result};
use crate::page::Page;

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
    /// Creates a task for `user`. Returns the task and whether it was created now (false: an
    /// earlier request with the same idempotency key made it).
    pub async fn create_task(&self, user: &User, request: NewTask) -> Result<(Task, bool)> {
        validate_input(&request.input)?;
        if let Some(key) = &request.idempotency_key {
            validate_idempotency_key(key)?;
        }
        if let Some(env) = &request.environment
            && !store::environments::exists(&self.db, env).await?
        {
            return Err(CoordError::invalid(
                "unknown_environment",
                format!("there is no environment named {env:?}"),
            ));
        }
        let task_id = Id::generate(IdKind::Task)
            .map_err(|e| CoordError::Internal(format!("no randomness: {e}")))?;
        let task = Task::queued(
            task_id,
            user.user_id.clone(),
            request.input,
            request.environment,
            Timestamp::now(),
        );
        match &request.idempotency_key {
            Some(key) => {
                if let Some(first) = self.create_once(&task, key).await? {
                    return Ok((first, false));
                }
            }
            None => self.task_writer.write(task.clone()).await?,
        }
        if task.status == TaskStatus::Queued
            && let Err(e) = self.bus.notify_work(&task.task_id).await
        {
            // The database has the task; workers also poll, so a lost wake-up only delays it.
            tracing::warn!(task_id = %task.task_id, error = %e, "could not publish wake-up");
        }
        Ok((task, true))
    }

    /// Stores `task` unless its owner already used `key` within the window; then returns the
    /// task that use created. Claiming the key comes first: of concurrent requests with one key,
    /// exactly one claims it; the others wait for its commit and return its task.
    async fn create_once(&self, task: &Task, key: &str) -> Result<Option<Task>> {
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
        task_store::insert(&mut tx, task).await?;
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
                let mut tx = self.db.begin().await?;
                audit::append(
                    &mut tx,
                    NewAuditEvent::new(
                        "access.denied",
                        serde_json::json!({"resource": "task", "task_id": task_id}),
                    )
                    .actor(&user.user_id),
                )
                .await?;
                tx.commit().await?;
                Err(CoordError::NotFound("task"))
            }
            None => Err(CoordError::NotFound("task")),
        }
    }
}

/// Owners and admins see a task.
fn may_see(user: &User, task: &Task) -> bool {
    task.user_id == user.user_id || user.role == Role::Admin
}

/// Cancels one task inside `tx`.
async fn cancel_in(tx: &mut Tx, task_id: &Id, actor: Option<&Id>, reason: &str) -> Result<Task> {
    let change = StatusChange {
        reason: Some(reason.to_owned()),
        ..StatusChange::default()
    };
    Ok(task_store::set_status(tx, task_id, TaskStatus::Canceled, change, actor).await?)
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
