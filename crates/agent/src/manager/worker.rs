//! The claim loop: fills free slots with claimed tasks, sweeps for interrupted ones, and at
//! shutdown stops claiming, lets running tasks finish for the grace period and then stops the
//! rest (which the recovery contract settles).

use std::sync::Arc;
use std::time::Duration;

use domain::{Task, TaskKind};
use store::tasks as task_store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ExecutionManager;
use super::recovery::SWEEP_EVERY;

/// Longest a worker with a free slot waits before looking at the database again (the bus usually
/// wakes it sooner).
pub const POLL_EVERY: Duration = Duration::from_secs(1);

impl ExecutionManager {
    /// Runs the workers until `shutdown` turns true, then drains: running tasks get `grace` to
    /// finish; the rest are stopped and settled by the recovery contract.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let (hard_stop_tx, hard_stop) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(self.config().max_concurrent.max(1)));
        let mut running: JoinSet<()> = JoinSet::new();
        let mut next_sweep = Instant::now();
        tracing::info!(
            worker = %self.config().worker_id,
            slots = self.config().max_concurrent,
            "execution manager started"
        );
        loop {
            if *shutdown.borrow() {
                break;
            }
            if Instant::now() >= next_sweep {
                if let Err(e) = self.recover_expired().await {
                    tracing::warn!(error = %e, "recovery sweep failed");
                }
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            self.fill_slots(&slots, &mut running, &hard_stop).await;
            let free = slots.available_permits() > 0;
            tokio::select! {
                signal = self.bus().next_work(&self.config().worker_id, POLL_EVERY), if free => {
                    if let Ok(Some(signal)) = signal
                        && let Err(e) = self.bus().ack(&signal).await
                    {
                        tracing::debug!(error = %e, "could not acknowledge a wake-up");
                    }
                }
                () = tokio::time::sleep(POLL_EVERY), if !free => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(
            running = running.len(),
            ?grace,
            "execution manager stopping"
        );
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = running.len(),
                "grace period over; stopping the remaining tasks"
            );
            let _ = hard_stop_tx.send(true);
            while running.join_next().await.is_some() {}
        }
        tracing::info!("execution manager stopped");
    }

    /// Claims tasks while there are free slots and claimable tasks.
    async fn fill_slots(
        &self,
        slots: &Arc<Semaphore>,
        running: &mut JoinSet<()>,
        hard_stop: &watch::Receiver<bool>,
    ) {
        while let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            let claimed = task_store::claim(
                self.db(),
                &self.config().worker_id,
                self.config().lease,
                self.config().max_per_user,
            )
            .await;
            match claimed {
                Ok(Some(task)) => {
                    let manager = self.clone();
                    let hard_stop = hard_stop.clone();
                    running
                        .spawn(async move { manager.run_claimed(task, hard_stop, permit).await });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim work");
                    break;
                }
            }
        }
    }

    /// Runs one claimed task; the slot is free again when this returns.
    async fn run_claimed(
        &self,
        task: Task,
        hard_stop: watch::Receiver<bool>,
        _slot: OwnedSemaphorePermit,
    ) {
        match task.kind {
            TaskKind::Command => self.run_command(task, hard_stop).await,
            TaskKind::Agent => self.run_agent(task, hard_stop).await,
        }
    }

    /// Tells workers (in any process) that `task` may be claimable.
    pub(crate) fn wake(&self, task: &Task) {
        let bus = self.bus().clone();
        let task_id = task.task_id.clone();
        tokio::spawn(async move {
            if let Err(e) = bus.notify_work(&task_id).await {
                tracing::debug!(task_id = %task_id, error = %e, "could not publish a wake-up");
            }
        });
    }
}
