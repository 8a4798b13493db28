//! Watching a task: its stored history, then its live events, until it is finished.
//!
//! The database has every event (numbered per task); the bus delivers them as they happen. A
//! [`TaskWatch`] reads the history first and then wakes on a bus event or a short tick, whichever
//! comes first, and always reads from the database — so a lost bus message (Redis down, a
//! subscriber that fell behind) delays an event by at most one tick and never loses it. The HTTP
//! event stream and the Telegram progress message are both built on it.

use std::time::Duration;

use domain::{Id, Task, TaskEvent, User};
use store::bus::EventStream;
use store::tasks as task_store;

use crate::Coordinator;
use crate::error::{CoordError, Result};

/// How long a watch waits for a live event before looking at the database anyway.
const TICK: Duration = Duration::from_millis(500);
/// Most events returned by one [`TaskWatch::next_batch`].
const BATCH: i64 = 200;

/// A stream of one task's events, for someone allowed to see it.
pub struct TaskWatch {
    coord: Coordinator,
    task_id: Id,
    /// Highest event number already returned.
    last_seq: i64,
    live: Option<EventStream>,
    finished: bool,
}

impl Coordinator {
    /// Starts watching a task `user` may see (owner or admin; others get "not found", audited),
    /// from the event after `after_seq` (0: from the beginning).
    pub async fn watch_task(&self, user: &User, task_id: &Id, after_seq: i64) -> Result<TaskWatch> {
        self.get_task(user, task_id).await?;
        // Subscribe before the first read, so nothing published in between is missed. Without a
        // working bus the watch still works, on the tick alone.
        let live = match self.bus.subscribe(task_id).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(task_id = %task_id, error = %e, "watching without live events");
                None
            }
        };
        Ok(TaskWatch {
            coord: self.clone(),
            task_id: task_id.clone(),
            last_seq: after_seq.max(0),
            live,
            finished: false,
        })
    }
}

impl TaskWatch {
    /// The next events, oldest first; waits until there is at least one or the task is finished.
    /// Returns `None` once the task is in a terminal state and every event has been returned.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<TaskEvent>>> {
        let mut first = true;
        loop {
            if self.finished {
                return Ok(None);
            }
            if !first {
                self.wait().await;
            }
            first = false;
            let events = store::task_events::list_after(
                self.coord.db(),
                &self.task_id,
                self.last_seq,
                BATCH,
            )
            .await?;
            if let Some(last) = events.last() {
                self.last_seq = last.seq;
                return Ok(Some(events));
            }
            // Nothing new: finished if the task is terminal (its last status event, if any, has
            // been returned above in an earlier batch).
            let task = self.current().await?;
            if task.status.is_terminal() {
                self.finished = true;
            }
        }
    }

    /// The task as it is now. (The future does not borrow the watch, which is not `Sync`.)
    pub fn current(&self) -> impl Future<Output = Result<Task>> + Send + 'static {
        let coord = self.coord.clone();
        let task_id = self.task_id.clone();
        async move {
            task_store::get(coord.db(), &task_id)
                .await?
                .ok_or(CoordError::NotFound("task"))
        }
    }

    async fn wait(&mut self) {
        match &mut self.live {
            Some(live) => {
                if let Ok(None) = tokio::time::timeout(TICK, live.next()).await {
                    // The bus went away; carry on with the tick.
                    self.live = None;
                }
            }
            None => tokio::time::sleep(TICK).await,
        }
    }
}
