//! While a task runs: keep its lease, and stop the sandbox when the task is cancelled (by its
//! owner, an admin or `cancel_risky_tasks`, in any process), when the lease is lost, or when the
//! server's grace period at shutdown is over.
//!
//! Cancellation is observed by reading the task every [`CHECK_EVERY`], so a cancel made in any
//! process reaches the sandbox within that time plus the kill (well inside CONTRACT's 2 s).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{Id, TaskStatus};
use store::tasks as task_store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ExecutionManager;

/// How often a running task's status is read.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Why a run was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The task left RUNNING (cancelled, or settled by someone else).
    Canceled,
    /// Another worker holds the lease now (ours ran out).
    LeaseLost,
    /// The server is stopping and the grace period is over.
    Shutdown,
}

/// Watches one running task; dropping it stops the watching.
pub struct Supervisor {
    reason: Arc<Mutex<Option<Stop>>>,
    handle: JoinHandle<()>,
}

impl Supervisor {
    /// Starts watching `task_id`; sets `cancel` to true when the run must stop. `hard_stop` turns
    /// true when the shutdown grace period is over.
    pub fn start(
        manager: &ExecutionManager,
        task_id: Id,
        cancel: watch::Sender<bool>,
        mut hard_stop: watch::Receiver<bool>,
    ) -> Supervisor {
        let reason = Arc::new(Mutex::new(None));
        let manager = manager.clone();
        let recorded = Arc::clone(&reason);
        let handle = tokio::spawn(async move {
            let renew_every = manager.config().lease / 3;
            let mut last_renewal = Instant::now();
            let mut hard_open = true;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                    changed = hard_stop.changed(), if hard_open => {
                        if changed.is_err() {
                            hard_open = false;
                            continue;
                        }
                    }
                }
                let stop = if *hard_stop.borrow() {
                    Some(Stop::Shutdown)
                } else {
                    manager
                        .check(&task_id, &mut last_renewal, renew_every)
                        .await
                };
                if let Some(stop) = stop {
                    if let Ok(mut r) = recorded.lock() {
                        *r = Some(stop);
                    }
                    let _ = cancel.send(true);
                    return;
                }
            }
        });
        Supervisor { reason, handle }
    }

    /// Why the run was stopped, if it was.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl ExecutionManager {
    /// One look at a running task: is it still ours and still RUNNING? Renews the lease when due.
    /// Database errors are not a reason to stop (the lease covers short outages).
    async fn check(
        &self,
        task_id: &Id,
        last_renewal: &mut Instant,
        every: Duration,
    ) -> Option<Stop> {
        match task_store::get(self.db(), task_id).await {
            Ok(Some(t)) if t.status == TaskStatus::Running => {}
            Ok(_) => return Some(Stop::Canceled),
            Err(e) => {
                tracing::warn!(task_id = %task_id, error = %e, "cannot read a running task");
                return None;
            }
        }
        if last_renewal.elapsed() >= every {
            match task_store::renew_lease(
                self.db(),
                task_id,
                &self.config().worker_id,
                self.config().lease,
            )
            .await
            {
                Ok(true) => *last_renewal = Instant::now(),
                Ok(false) => return Some(Stop::LeaseLost),
                Err(e) => tracing::warn!(task_id = %task_id, error = %e, "cannot renew a lease"),
            }
        }
        None
    }
}
