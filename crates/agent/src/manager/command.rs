//! One command task, from claim to result.
//!
//! 1. **Check** what can have changed since the decision: a sandbox exists; the environment
//!    still exists; mutations are not paused (for L1+).
//! 2. **Provide** the environment: secrets decrypted for this run only, the egress proxy on a
//!    per-task Unix socket, the user's workspace. Then, last: a task that waited for approval
//!    must have an APPROVE bound to the hash of exactly this action, environment and grants, not
//!    used before — it is consumed now, and the start audited (`action.started`) in the same
//!    transaction; if that cannot be written, nothing runs (audit fails closed).
//! 3. **Run** in a fresh sandbox while [`super::supervise`] watches for cancellation and keeps the
//!    lease, and [`super::progress`] streams the (redacted) output.
//! 4. **Record** the result (`action.executed` + the final status in one transaction), or settle an
//!    unfinished run per [`super::recovery`]; remove the per-task state.

use std::path::PathBuf;
use std::time::Duration;

use domain::{ApprovalDecision, RiskTier, Task, TaskError, TaskResult, TaskStatus, Timestamp};
use executor::egress::EgressProxy;
use executor::redact::Redactor;
use executor::{Outcome, Sandbox, SandboxFile, SandboxSpec};
use store::audit::{self, NewAuditEvent};
use store::environments::Grants;
use store::tasks::{self as task_store, StatusChange};
use tokio::sync::watch;

use super::ExecutionManager;
use super::recovery::{self, Next};
use super::supervise::{Stop, Supervisor};

/// Where secrets appear as files inside the sandbox (also injected as environment variables).
pub const SECRETS_DIR: &str = "/run/secrets";
/// Exit code recorded for a command stopped at its time limit (as coreutils `timeout` does).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// How often recording a result is tried before the lease and recovery take over.
const RECORD_ATTEMPTS: u32 = 3;

/// Why a task is not run.
pub(crate) enum Refusal {
    /// The task FAILS with this error; nothing ran.
    Fail(TaskError),
    /// The database failed; the task stays RUNNING and recovery settles it when the lease ends.
    Store(store::StoreError),
}

impl From<store::StoreError> for Refusal {
    fn from(e: store::StoreError) -> Self {
        Refusal::Store(e)
    }
}

fn refuse(code: &str, message: impl Into<String>) -> Refusal {
    Refusal::Fail(TaskError {
        code: code.to_owned(),
        message: message.into(),
    })
}

/// One shell action of a task: a command task's command, or a command the agent's model proposed
/// and the gate decided.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Action<'a> {
    /// The exact command that runs (normalised when it was decided).
    pub command: &'a str,
    /// The environment whose grants it runs with.
    pub environment: Option<&'a str>,
    /// The approval it runs under, when it needed one; verified and consumed before the start.
    pub approval_id: Option<&'a domain::Id>,
    /// For an action allowed without approval, the binding hash (action, environment, grants)
    /// it was allowed with: it runs only if what would run now hashes the same.
    pub decided_hash: Option<&'a str>,
    /// Its tier, from the classifier.
    pub tier: RiskTier,
}

impl<'a> Action<'a> {
    /// The action of a command task. A task without a tier is treated as L3 (never happens for
    /// stored command tasks; fails closed if it did).
    pub fn of_command_task(task: &'a Task) -> Action<'a> {
        Action {
            command: &task.input,
            environment: task.environment.as_deref(),
            approval_id: task.approval_id.as_ref(),
            decided_hash: None,
            tier: task.risk_tier.unwrap_or(RiskTier::L3Privileged),
        }
    }
}

/// How a run that was allowed to start ended.
pub(crate) enum Ran {
    /// The sandbox ran the command to an end (exited, timed out, stopped); output redacted.
    Finished(Outcome),
    /// The sandbox failed to launch: nothing ran, and the approval (if any) was given back.
    LaunchFailed(String),
    /// Supervising the sandbox failed while the command may have been running.
    Broken(String),
}

/// Everything a checked task runs with. Dropping it stops the egress proxy.
pub(crate) struct Prepared<'a> {
    sandbox: &'a Sandbox,
    attempt: i64,
    grants: Option<Grants>,
    secrets: Vec<(String, String)>,
    workspace: executor::workspace::Workspace,
    egress: Option<EgressProxy>,
    runtime_dir: Option<PathBuf>,
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        self.egress.take();
        if let Some(dir) = &self.runtime_dir
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove per-task state");
        }
    }
}

impl ExecutionManager {
    /// Runs a claimed command task to its end.
    pub(crate) async fn run_command(&self, task: Task, hard_stop: watch::Receiver<bool>) {
        let action = Action::of_command_task(&task);
        let prepared = match self.prepare(&task, &action).await {
            Ok(p) => p,
            Err(Refusal::Fail(error)) => {
                tracing::info!(task_id = %task.task_id, code = %error.code, "task refused before running");
                let reason = error.code.clone();
                self.settle(&task, Next::Fail(error), &reason).await;
                return;
            }
            Err(Refusal::Store(e)) => {
                tracing::warn!(task_id = %task.task_id, error = %e, "cannot start a task; recovery will settle it");
                return;
            }
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let supervisor = Supervisor::start(self, task.task_id.clone(), cancel_tx, hard_stop);
        let ran = self.execute(&task, &action, &prepared, cancel_rx).await;
        let stop = supervisor.stop_reason();
        drop(supervisor);
        match ran {
            Ran::LaunchFailed(why) => {
                let next = recovery::after_launch_failure(prepared.attempt, &why, Timestamp::now());
                self.settle(&task, next, "sandbox_launch_failed").await;
            }
            Ran::Broken(why) => {
                let error = TaskError {
                    code: "sandbox_error".to_owned(),
                    message: format!(
                        "the sandbox failed while the command may have been running ({why}); it \
                         was not run again — check its effects"
                    ),
                };
                self.settle(&task, Next::Fail(error), "sandbox_error").await;
            }
            Ran::Finished(outcome) => {
                self.record_outcome(&task, &prepared, &outcome, stop).await;
            }
        }
    }

    /// Step 3: runs a prepared action in a fresh sandbox until it ends or `cancel` turns true,
    /// streaming its redacted output as task events.
    pub(crate) async fn execute(
        &self,
        task: &Task,
        action: &Action<'_>,
        prepared: &Prepared<'_>,
        cancel: watch::Receiver<bool>,
    ) -> Ran {
        let redactor = Redactor::new(&prepared.secrets);
        let spec = self.spec(action.command, prepared);
        let (chunks_tx, chunks_rx) = tokio::sync::mpsc::unbounded_channel();
        let pump = {
            let manager = self.clone();
            let task_id = task.task_id.clone();
            let stream = redactor.stream();
            tokio::spawn(async move { manager.pump_output(task_id, chunks_rx, stream).await })
        };
        let outcome = prepared.sandbox.run(&spec, cancel, Some(chunks_tx)).await;
        if let Err(e) = pump.await {
            tracing::warn!(task_id = %task.task_id, error = %e, "output pump failed");
        }
        match outcome {
            Err(e) if e.nothing_ran() => {
                tracing::warn!(task_id = %task.task_id, error = %e, "the sandbox failed to launch");
                self.release_approval(task, action.approval_id).await;
                Ran::LaunchFailed(e.to_string())
            }
            Err(e) => {
                tracing::error!(task_id = %task.task_id, error = %e, "supervising the sandbox failed");
                Ran::Broken(e.to_string())
            }
            Ok(outcome) => Ran::Finished(Outcome {
                output: redactor.redact(&outcome.output),
                ..outcome
            }),
        }
    }

    /// Step 1 and 2: the checks, the audited start, and the environment.
    pub(crate) async fn prepare(
        &self,
        task: &Task,
        action: &Action<'_>,
    ) -> Result<Prepared<'_>, Refusal> {
        let sandbox = self.inner.sandbox.as_ref().map_err(|why| {
            refuse(
                "sandbox_unavailable",
                format!("no sandbox is available on this server, so nothing was run: {why}"),
            )
        })?;
        let attempt = task_store::attempts(self.db(), &task.task_id).await?;
        let grants = match action.environment {
            Some(name) => Some(
                store::environments::grants(self.db(), name)
                    .await?
                    .ok_or_else(|| {
                        refuse(
                            "unknown_environment",
                            format!("the environment {name:?} no longer exists"),
                        )
                    })?,
            ),
            None => None,
        };
        let org = store::policy::get(self.db()).await?;
        if org.mutations_paused && action.tier > RiskTier::L0Readonly {
            return Err(refuse(
                "mutations_paused",
                "an admin paused every action that can change something; read-only commands still run",
            ));
        }
        let secrets = self.secrets(grants.as_ref()).await?;
        let workspace = self
            .inner
            .workspaces
            .prepare(task.user_id.as_str())
            .map_err(|e| {
                refuse(
                    "workspace_unavailable",
                    format!("cannot prepare your workspace: {e}"),
                )
            })?;
        let mut prepared = Prepared {
            sandbox,
            attempt,
            grants,
            secrets,
            workspace,
            egress: None,
            runtime_dir: None,
        };
        self.start_egress(task, &mut prepared)?;
        // Last, once everything else is in place: nothing after this can refuse the run, so an
        // approval is only consumed (and `action.started` only written) for a run that starts.
        self.check_and_start(task, action, prepared.grants.as_ref(), attempt)
            .await?;
        Ok(prepared)
    }

    /// Verifies the approval binding (consuming the approval) and audits `action.started`, in one
    /// transaction.
    async fn check_and_start(
        &self,
        task: &Task,
        action: &Action<'_>,
        grants: Option<&Grants>,
        attempt: i64,
    ) -> Result<(), Refusal> {
        let command = action.command;
        let (egress, secrets) = grants
            .map(|g| (g.egress.clone(), g.secrets.clone()))
            .unwrap_or_default();
        let hash = policy::binding::action_hash(command, action.environment, &egress, &secrets);
        if action.decided_hash.is_some_and(|decided| decided != hash) {
            return Err(refuse(
                "grants_changed",
                "the environment's grants changed since this command was allowed; nothing was \
                 run — propose it again to have it decided under the new grants",
            ));
        }
        let mut tx = self.db().begin().await?;
        if let Some(approval_id) = action.approval_id {
            let binding = store::approvals::binding(&mut tx, approval_id)
                .await?
                .ok_or_else(|| refuse("approval_missing", "the task's approval does not exist"))?;
            if binding.decision != Some(ApprovalDecision::Approve) {
                return Err(refuse(
                    "approval_missing",
                    "the task's approval was not granted",
                ));
            }
            if hash != binding.action_hash {
                return Err(refuse(
                    "approval_mismatch",
                    "what would run now differs from what was approved (the environment's grants \
                     changed); nothing was run — ask again",
                ));
            }
            if binding.consumed || !store::approvals::consume(&mut tx, approval_id).await? {
                return Err(refuse(
                    "approval_used",
                    "the approval was already used by an earlier run; an approval is good for one \
                     run — ask again",
                ));
            }
        }
        audit::append(
            &mut tx,
            NewAuditEvent::new(
                "action.started",
                serde_json::json!({
                    "action": command,
                    "environment": action.environment,
                    "approval_id": action.approval_id,
                    "attempt": attempt,
                    "worker": self.config().worker_id,
                }),
            )
            .task(&task.task_id),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A redactor of every secret value the server stores, for what is sent to the model: the
    /// task's environment's, and any a user typed in an earlier turn of another environment.
    /// Without a master key nothing can be decrypted — or injected — so there is nothing to
    /// redact; a database error fails (the task is resumed later), never an empty redactor.
    pub(crate) async fn provider_redactor(&self) -> Result<Redactor, store::StoreError> {
        let Some(keyring) = self.inner.keyring.as_ref() else {
            return Ok(Redactor::new(&[]));
        };
        let names: Vec<String> = store::secrets::list(self.db())
            .await?
            .into_iter()
            .map(|meta| meta.name)
            .collect();
        let values = store::secrets::resolve(self.db(), keyring, &names).await?;
        Ok(Redactor::new(&values))
    }

    /// The environment's secrets, decrypted for this run.
    async fn secrets(&self, grants: Option<&Grants>) -> Result<Vec<(String, String)>, Refusal> {
        let names = match grants {
            Some(g) if !g.secrets.is_empty() => &g.secrets,
            _ => return Ok(Vec::new()),
        };
        let keyring = self.inner.keyring.as_ref().ok_or_else(|| {
            refuse(
                "secrets_unavailable",
                "this server cannot decrypt secrets (no master key)",
            )
        })?;
        store::secrets::resolve(self.db(), keyring, names)
            .await
            .map_err(|e| match e {
                store::StoreError::NotFound(what) => refuse(
                    "secret_missing",
                    format!("a secret of the environment is missing: {what}"),
                ),
                other => Refusal::Store(other),
            })
    }

    /// Starts the egress proxy when the environment grants hosts: its socket lives in a per-task
    /// directory (mode 0700) owned, like the socket, by the sandbox's host user, so only that
    /// sandbox can reach it.
    fn start_egress(&self, task: &Task, prepared: &mut Prepared<'_>) -> Result<(), Refusal> {
        let egress = match &prepared.grants {
            Some(g) if !g.egress.is_empty() => g.egress.clone(),
            _ => return Ok(()),
        };
        let unavailable = |e: std::io::Error| {
            refuse(
                "egress_unavailable",
                format!("cannot start the egress proxy: {e}"),
            )
        };
        let owner = prepared.sandbox.run_as();
        let root = &self.config().runtime_dir;
        create_dir(root, 0o711, None).map_err(unavailable)?;
        let dir = root.join(task.task_id.as_str());
        create_dir(&dir, 0o700, owner).map_err(unavailable)?;
        prepared.runtime_dir = Some(dir.clone());
        let socket = dir.join("egress.sock");
        let proxy = EgressProxy::bind(&socket, egress).map_err(unavailable)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&socket, Some(uid), Some(gid)).map_err(unavailable)?;
        }
        prepared.egress = Some(proxy);
        Ok(())
    }

    /// The sandbox run for `command` with what was prepared.
    fn spec(&self, command: &str, prepared: &Prepared<'_>) -> SandboxSpec {
        let mut spec = SandboxSpec::new(command, prepared.workspace.path.clone());
        spec.timeout = self.config().task_timeout;
        spec.max_output_bytes = self.config().output_limit;
        spec.limits = prepared.workspace.limits_for_run(&self.config().limits);
        for (name, value) in &prepared.secrets {
            spec.env.push((name.clone(), value.clone()));
            spec.files.push(SandboxFile {
                path: format!("{SECRETS_DIR}/{name}"),
                contents: value.clone().into_bytes(),
            });
        }
        spec.egress_socket = prepared
            .runtime_dir
            .as_ref()
            .filter(|_| prepared.egress.is_some())
            .map(|dir| dir.join("egress.sock"));
        spec
    }

    /// A launch failure ran nothing, so the approval the run consumed is given back for the retry.
    async fn release_approval(&self, task: &Task, approval_id: Option<&domain::Id>) {
        let Some(approval_id) = approval_id else {
            return;
        };
        let released = async {
            let mut tx = self.db().begin().await?;
            store::approvals::release(&mut tx, approval_id).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = released {
            tracing::warn!(task_id = %task.task_id, error = %e, "could not release an approval");
        }
    }

    /// Step 4: the result of a run that ended (exited, timed out, or was stopped).
    async fn record_outcome(
        &self,
        task: &Task,
        prepared: &Prepared<'_>,
        outcome: &Outcome,
        stop: Option<Stop>,
    ) {
        let executed = executed_data(prepared, outcome, stop);
        match stop {
            Some(Stop::Canceled) | Some(Stop::LeaseLost) => {
                // Someone else already moved the task on (cancelled it, or recovered it).
                self.audit_only(task, executed).await;
            }
            Some(Stop::Shutdown) => {
                self.audit_only(task, executed).await;
                let attempts = prepared.attempt;
                let next = recovery::after_interruption(task, attempts, Timestamp::now());
                self.settle(task, next, "interrupted_by_shutdown").await;
            }
            None => {
                let (to, change) = final_status(outcome, self.config().task_timeout);
                for attempt in 1..=RECORD_ATTEMPTS {
                    match self
                        .finish(task, to, change.clone(), executed.clone())
                        .await
                    {
                        Ok(()) => return,
                        Err(e) if attempt == RECORD_ATTEMPTS => {
                            tracing::error!(task_id = %task.task_id, error = %e, "cannot record a result; recovery will settle the task");
                        }
                        Err(e) => {
                            tracing::warn!(task_id = %task.task_id, error = %e, "recording a result failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        }
    }

    async fn finish(
        &self,
        task: &Task,
        to: TaskStatus,
        change: StatusChange,
        executed: serde_json::Value,
    ) -> Result<(), store::StoreError> {
        let mut tx = self.db().begin().await?;
        audit::append(
            &mut tx,
            NewAuditEvent::new("action.executed", executed).task(&task.task_id),
        )
        .await?;
        match task_store::set_status(&mut tx, &task.task_id, to, change, None).await {
            Ok(_) => tx.commit().await,
            // Cancelled while it finished: the cancel stands; still keep the audit record.
            Err(task_store::SetStatusError::Store(e)) => Err(e),
            Err(_) => {
                drop(tx);
                self.audit_only(task, serde_json::json!({"late_result": true}))
                    .await;
                Ok(())
            }
        }
    }

    pub(crate) async fn audit_only(&self, task: &Task, data: serde_json::Value) {
        let written = async {
            let mut tx = self.db().begin().await?;
            audit::append(
                &mut tx,
                NewAuditEvent::new("action.executed", data).task(&task.task_id),
            )
            .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            tracing::error!(task_id = %task.task_id, error = %e, "cannot audit a finished action");
        }
    }
}

/// What `action.executed` records about a run that ended.
pub(crate) fn executed_data(
    prepared: &Prepared<'_>,
    outcome: &Outcome,
    stop: Option<Stop>,
) -> serde_json::Value {
    serde_json::json!({
        "exit_code": outcome.exit_code,
        "duration_ms": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        "timed_out": outcome.timed_out,
        "oom_killed": outcome.oom_killed,
        "output_bytes": outcome.output.len(),
        "truncated": outcome.truncated,
        "attempt": prepared.attempt,
        "stopped": stop.map(|s| format!("{s:?}")),
        "denied_egress": prepared.egress.as_ref().map(EgressProxy::denied),
    })
}

/// The final status of a run that ended by itself or by its time limit.
fn final_status(outcome: &Outcome, timeout: Duration) -> (TaskStatus, StatusChange) {
    let result = |exit_code: i32| TaskResult {
        exit_code,
        output: outcome.output.clone(),
        truncated: outcome.truncated,
    };
    if outcome.timed_out {
        return (
            TaskStatus::TimedOut,
            StatusChange {
                result: Some(result(TIMEOUT_EXIT_CODE)),
                error: Some(TaskError {
                    code: "timed_out".to_owned(),
                    message: format!(
                        "the command ran longer than its limit of {} and was stopped",
                        humanize(timeout)
                    ),
                }),
                reason: Some("timed_out".to_owned()),
                ..StatusChange::default()
            },
        );
    }
    if outcome.oom_killed {
        return (
            TaskStatus::Failed,
            StatusChange {
                result: Some(result(outcome.exit_code.unwrap_or(137))),
                error: Some(TaskError {
                    code: "memory_limit".to_owned(),
                    message: "the command used more memory than a sandbox may and was stopped"
                        .to_owned(),
                }),
                reason: Some("memory_limit".to_owned()),
                ..StatusChange::default()
            },
        );
    }
    match outcome.exit_code {
        Some(0) => (
            TaskStatus::Succeeded,
            StatusChange {
                result: Some(result(0)),
                ..StatusChange::default()
            },
        ),
        Some(code) => (
            TaskStatus::Failed,
            StatusChange {
                result: Some(result(code)),
                ..StatusChange::default()
            },
        ),
        None => (
            TaskStatus::Failed,
            StatusChange {
                result: Some(result(-1)),
                error: Some(TaskError {
                    code: "killed".to_owned(),
                    message: "the sandbox was killed by a signal".to_owned(),
                }),
                ..StatusChange::default()
            },
        ),
    }
}

/// `90s` → "1m 30s".
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m {s}s"),
    }
}

/// Creates `dir` (if missing) with `mode`, owned by `owner` when given.
fn create_dir(dir: &std::path::Path, mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    }
    Ok(())
}
