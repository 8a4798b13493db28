//! The in-process wake-up queue.
//!
//! It follows the same rules as the Redis consumer group so that code and tests behave the same
//! with either bus: each wake-up is handed to one consumer and stays "pending" until acknowledged;
//! a pending one older than the reclaim period is handed to the next consumer that asks. Waiting
//! consumers are woken with a `Notify` that each registers *before* looking at the queue, so a
//! wake-up pushed in between is never missed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use domain::Id;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Delivery, WorkSignal};

/// A queue of wake-ups shared by every consumer of one in-process bus.
pub(super) struct WorkQueue {
    state: Mutex<State>,
    changed: Notify,
    reclaim_after: Duration,
    max_queued: usize,
}

#[derive(Default)]
struct State {
    next_delivery: u64,
    queued: VecDeque<Id>,
    pending: HashMap<u64, Pending>,
}

struct Pending {
    task_id: Id,
    delivered_at: Instant,
}

impl WorkQueue {
    /// An empty queue.
    pub(super) fn new(reclaim_after: Duration, max_queued: usize) -> WorkQueue {
        WorkQueue {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            reclaim_after,
            max_queued: max_queued.max(1),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update under the lock is a single push, pop, insert or remove, so the state is
        // consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a wake-up for one consumer.
    pub(super) fn push(&self, task_id: Id) {
        {
            let mut state = self.state();
            if state.queued.len() >= self.max_queued {
                state.queued.pop_front();
            }
            state.queued.push_back(task_id);
        }
        self.changed.notify_waiters();
    }

    /// Forgets a delivered wake-up; unknown numbers (already acknowledged) are ignored.
    pub(super) fn ack(&self, delivery: u64) {
        self.state().pending.remove(&delivery);
    }

    /// The next wake-up for `consumer`, waiting up to `wait`.
    pub(super) async fn next(&self, _consumer: &str, wait: Duration) -> Option<WorkSignal> {
        let deadline = Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Register before looking, so a push between the look and the wait still wakes us.
            changed.as_mut().enable();

            let next_reclaim = match self.take(Instant::now()) {
                Ok(signal) => return Some(signal),
                Err(next_reclaim) => next_reclaim,
            };
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wake_at = next_reclaim.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Takes an abandoned or a queued wake-up, or says when the next pending one may be reclaimed.
    fn take(&self, now: Instant) -> Result<WorkSignal, Option<Instant>> {
        let mut state = self.state();
        let abandoned = state
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.delivered_at) >= self.reclaim_after)
            .map(|(n, _)| *n)
            .min();
        if let Some(n) = abandoned
            && let Some(p) = state.pending.get_mut(&n)
        {
            p.delivered_at = now;
            return Ok(WorkSignal {
                task_id: p.task_id.clone(),
                delivery: Delivery::InProcess(n),
            });
        }
        if let Some(task_id) = state.queued.pop_front() {
            let n = state.next_delivery;
            state.next_delivery += 1;
            // Bound the wake-ups held by consumers that never acknowledge (oldest go first).
            if state.pending.len() >= self.max_queued
                && let Some(oldest) = state.pending.keys().min().copied()
            {
                state.pending.remove(&oldest);
            }
            state.pending.insert(
                n,
                Pending {
                    task_id: task_id.clone(),
                    delivered_at: now,
                },
            );
            return Ok(WorkSignal {
                task_id,
                delivery: Delivery::InProcess(n),
            });
        }
        Err(state
            .pending
            .values()
            .map(|p| p.delivered_at + self.reclaim_after)
            .min())
    }
}
