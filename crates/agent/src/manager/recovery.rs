//! The retry and recovery contract (docs/reliability.md), in one place.
//!
//! * A command that ran and exited non-zero is a result (FAILED), never retried.
//! * A sandbox that failed to launch ran nothing: the task is queued again with exponential
//!   backoff, up to [`MAX_LAUNCH_ATTEMPTS`], and its approval (if any) stays usable.
//! * A task whose worker died after claiming it but before its run started (no `action.started`
//!   for that claim — it is written before every launch) ran nothing: it is queued again.
//! * A task interrupted while it may have been running (its worker died, the server stopped, the
//!   lease ran out): a read-only (L0) command is queued again, up to [`MAX_RERUNS`] runs; anything
//!   that may change something is never re-run automatically — the task FAILS with
//!   `interrupted` and the user decides.
//! * An agent task resumes from its saved transcript: it is queued again (up to
//!   [`MAX_AGENT_CLAIMS`] claims); a shell action it had started is reported to the model as
//!   interrupted, never re-run.
//! * WAITING_APPROVAL tasks are untouched by all of this: they wait for their decision.

use std::time::Duration;

use domain::{RiskTier, Task, TaskError, TaskKind, TaskStatus, Timestamp};
use store::tasks::{self as task_store, StatusChange};

use super::ExecutionManager;

/// How often a task may be claimed when its sandbox keeps failing to launch.
pub const MAX_LAUNCH_ATTEMPTS: i64 = 5;
/// How often an interrupted read-only task is run in all.
pub const MAX_RERUNS: i64 = 3;
/// How often an agent task may be claimed in all (each approval and each interruption is a new
/// claim); beyond it an interrupted agent task FAILS with `interrupted`.
pub const MAX_AGENT_CLAIMS: i64 = 50;
/// How often the manager looks for tasks whose worker stopped renewing its lease.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What becomes of a task that did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Back to QUEUED, claimable from `not_before`.
    Requeue { not_before: Timestamp },
    /// FAILED with this error.
    Fail(TaskError),
}

/// After the sandbox failed to launch on claim number `attempts`: nothing ran, so retry later.
pub fn after_launch_failure(attempts: i64, detail: &str, now: Timestamp) -> Next {
    if attempts >= MAX_LAUNCH_ATTEMPTS {
        return Next::Fail(TaskError {
            code: "sandbox_launch_failed".to_owned(),
            message: format!(
                "the sandbox failed to start {attempts} times; nothing was run. Last error: {detail}"
            ),
        });
    }
    Next::Requeue {
        not_before: now.plus(launch_backoff(attempts)),
    }
}

/// 1 s after the first failed launch, doubling, at most 60 s.
pub fn launch_backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(6);
    Duration::from_secs((1u64 << exp).min(60))
}

/// After a run was interrupted while it may have been running (claim number `attempts`).
pub fn after_interruption(task: &Task, attempts: i64, now: Timestamp) -> Next {
    if task.kind == TaskKind::Agent {
        if attempts < MAX_AGENT_CLAIMS {
            return Next::Requeue { not_before: now };
        }
        return Next::Fail(TaskError {
            code: "interrupted".to_owned(),
            message: format!(
                "the agent task was interrupted or resumed {attempts} times and is not resumed \
                 again; ask again if you still need it"
            ),
        });
    }
    let read_only = task.kind == TaskKind::Command && task.risk_tier == Some(RiskTier::L0Readonly);
    if read_only && attempts < MAX_RERUNS {
        return Next::Requeue { not_before: now };
    }
    let message = if read_only {
        format!(
            "the command was interrupted {attempts} times (the server stopped while it ran) and is \
             not tried again; run it again if you still need it"
        )
    } else {
        "the server stopped while this command may have been running; because it may change \
         things it was not run again automatically — check its effects and run it again if needed"
            .to_owned()
    };
    Next::Fail(TaskError {
        code: "interrupted".to_owned(),
        message,
    })
}

impl ExecutionManager {
    /// Moves a RUNNING task on per `next`, with `reason` for the audit trail. A task that is no
    /// longer RUNNING (cancelled meanwhile) is left as it is.
    pub(crate) async fn settle(&self, task: &Task, next: Next, reason: &str) {
        let (to, change) = match next {
            Next::Requeue { not_before } => (
                TaskStatus::Queued,
                StatusChange {
                    reason: Some(reason.to_owned()),
                    not_before: Some(not_before),
                    ..StatusChange::default()
                },
            ),
            Next::Fail(error) => (
                TaskStatus::Failed,
                StatusChange {
                    reason: Some(reason.to_owned()),
                    error: Some(error),
                    ..StatusChange::default()
                },
            ),
        };
        let result = async {
            let mut tx = self.db().begin().await?;
            let moved = task_store::set_status(&mut tx, &task.task_id, to, change, None).await;
            match moved {
                Ok(_) => {
                    tx.commit().await?;
                    Ok::<bool, store::StoreError>(true)
                }
                Err(task_store::SetStatusError::Store(e)) => Err(e),
                Err(_) => Ok(false),
            }
        }
        .await;
        match result {
            Ok(true) if to == TaskStatus::Queued => self.wake(task),
            Ok(_) => {}
            Err(e) => tracing::warn!(task_id = %task.task_id, error = %e, "could not settle task"),
        }
    }

    /// Whether the command task's claim number `attempts` never started its run: every run that
    /// got past its checks audited `action.started` before launching, so fewer of them than
    /// claims means this claim's did not.
    async fn never_started(&self, task: &Task, attempts: i64) -> Result<bool, store::StoreError> {
        let started =
            store::audit::count_for_task(self.db(), &task.task_id, "action.started").await?;
        Ok(started < attempts)
    }

    /// Finds RUNNING tasks whose lease ran out (their worker died) and applies the contract.
    /// Safe in several processes at once: a task is taken over with a guarded update first.
    pub async fn recover_expired(&self) -> Result<usize, store::StoreError> {
        let expired = task_store::expired_leases(self.db()).await?;
        let mut recovered = 0;
        for task in expired {
            if !task_store::take_over_expired(self.db(), &task.task_id, &self.config().worker_id)
                .await?
            {
                continue;
            }
            let attempts = task_store::attempts(self.db(), &task.task_id).await?;
            let next = if task.kind == TaskKind::Agent {
                // An agent task runs several actions per claim; it resumes from its transcript.
                after_interruption(&task, attempts, Timestamp::now())
            } else if self.never_started(&task, attempts).await? {
                after_launch_failure(
                    attempts,
                    "the worker stopped before the run started",
                    Timestamp::now(),
                )
            } else {
                after_interruption(&task, attempts, Timestamp::now())
            };
            tracing::info!(task_id = %task.task_id, ?next, "recovering an interrupted task");
            self.settle(&task, next, "recovered_after_interruption")
                .await;
            recovered += 1;
        }
        Ok(recovered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Id, IdKind, TaskInput};

    fn task(tier: RiskTier) -> Task {
        let mut t = Task::queued(
            Id::generate(IdKind::Task).unwrap(),
            Id::generate(IdKind::User).unwrap(),
            TaskInput::Command("x".into()),
            None,
            Timestamp::now(),
        );
        t.risk_tier = Some(tier);
        t
    }

    #[test]
    fn only_read_only_commands_are_rerun_after_an_interruption() {
        let now = Timestamp::now();
        assert_eq!(
            after_interruption(&task(RiskTier::L0Readonly), 1, now),
            Next::Requeue { not_before: now }
        );
        for tier in [
            RiskTier::L1Mutating,
            RiskTier::L2Destructive,
            RiskTier::L3Privileged,
        ] {
            match after_interruption(&task(tier), 1, now) {
                Next::Fail(e) => assert_eq!(e.code, "interrupted"),
                other => panic!("{tier} must not be re-run, got {other:?}"),
            }
        }
        assert!(matches!(
            after_interruption(&task(RiskTier::L0Readonly), MAX_RERUNS, now),
            Next::Fail(_)
        ));
    }

    #[test]
    fn launch_failures_back_off_then_give_up() {
        let now = Timestamp::now();
        let delays: Vec<Duration> = (1..=4).map(launch_backoff).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
            "exponential from 1 s"
        );
        assert_eq!(launch_backoff(40), Duration::from_secs(60));
        assert!(matches!(
            after_launch_failure(1, "x", now),
            Next::Requeue { .. }
        ));
        match after_launch_failure(MAX_LAUNCH_ATTEMPTS, "no bwrap", now) {
            Next::Fail(e) => {
                assert_eq!(e.code, "sandbox_launch_failed");
                assert!(e.message.contains("nothing was run") && e.message.contains("no bwrap"));
            }
            other => panic!("must give up, got {other:?}"),
        }
    }
}
