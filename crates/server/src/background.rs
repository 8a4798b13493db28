//! Periodic work every server process does while it serves.

use std::time::Duration;

use coordinator::Coordinator;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the SQLite write-ahead log is checkpointed in the background.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(200);

/// How often overdue approvals are looked for: CONTRACT.md wants expiry recorded within seconds.
const APPROVAL_EXPIRY_PERIOD: Duration = Duration::from_secs(1);

/// Records EXPIRE on approvals whose time is up (and fails their tasks) until `stop` turns true.
/// Several processes may run it at once: each expiry is a guarded update that only one wins.
pub fn spawn_approval_expiry(
    coord: Coordinator,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(APPROVAL_EXPIRY_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match coord.expire_overdue_approvals().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "recorded expired approvals"),
                Err(e) => tracing::warn!(error = %e, "could not expire overdue approvals"),
            }
        }
    })
}

/// Checkpoints the database's write-ahead log every [`CHECKPOINT_PERIOD`] until `stop` turns
/// true, so that no request's commit has to (see `Db::checkpoint`).
pub fn spawn_checkpointer(db: store::Db, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if db.dialect() != store::Dialect::Sqlite {
            return;
        }
        let mut tick = tokio::time::interval(CHECKPOINT_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = db.checkpoint().await {
                tracing::debug!(error = %e, "WAL checkpoint failed; retrying later");
            }
        }
    })
}
