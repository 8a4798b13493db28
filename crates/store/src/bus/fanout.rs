//! Local fan-out of task events to this process's subscribers.
//!
//! Both bus kinds end here: the in-process bus sends published events straight in, the Redis bus
//! sends in what its pub/sub listener receives. One `broadcast` channel per watched task means a
//! subscriber is only woken for its own task, and `broadcast` never blocks the sender: a
//! subscriber that falls behind loses the oldest events (`Lagged`), which we log and skip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use domain::{Id, TaskEvent};
use tokio::sync::broadcast;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::EventStream;

/// Per-task broadcast channels, created on first subscribe and removed with the last subscriber.
pub(super) struct Fanout {
    capacity: usize,
    channels: Mutex<HashMap<Id, broadcast::Sender<TaskEvent>>>,
}

impl Fanout {
    /// A fan-out whose subscribers may each fall `capacity` events behind.
    pub(super) fn new(capacity: usize) -> Fanout {
        Fanout {
            capacity: capacity.max(1),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<Id, broadcast::Sender<TaskEvent>>> {
        // The map stays consistent even if a holder panicked: every update is a single insert or
        // remove.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers `event` to this process's subscribers of its task, if any.
    pub(super) fn send(&self, event: &TaskEvent) {
        let channels = self.channels();
        if let Some(tx) = channels.get(&event.task_id) {
            // Err only means every receiver is gone; the last one's guard removes the entry.
            let _ = tx.send(event.clone());
        }
    }

    /// A stream of the events of `task_id` sent from now on.
    pub(super) fn subscribe(self: &Arc<Self>, task_id: &Id) -> EventStream {
        let rx = {
            let mut channels = self.channels();
            channels
                .entry(task_id.clone())
                .or_insert_with(|| broadcast::channel(self.capacity).0)
                .subscribe()
        };
        let task = task_id.clone();
        let stream = BroadcastStream::new(rx).filter_map(move |item| match item {
            Ok(event) => Some(event),
            Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                tracing::warn!(task_id = %task, skipped, "event subscriber fell behind; skipped events");
                None
            }
        });
        EventStream {
            inner: Box::pin(stream),
            _guard: SubscriptionGuard {
                fanout: Arc::downgrade(self),
                task_id: task_id.clone(),
            },
        }
    }
}

/// Removes a task's channel once its last subscriber is dropped.
pub(super) struct SubscriptionGuard {
    fanout: Weak<Fanout>,
    task_id: Id,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        // Runs after the receiver itself was dropped (it is an earlier field of EventStream).
        if let Some(fanout) = self.fanout.upgrade() {
            let mut channels = fanout.channels();
            if channels
                .get(&self.task_id)
                .is_some_and(|tx| tx.receiver_count() == 0)
            {
                channels.remove(&self.task_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channel_is_removed_with_its_last_subscriber() {
        let fanout = Arc::new(Fanout::new(4));
        let id = Id::parse("tsk_a").unwrap();
        let a = fanout.subscribe(&id);
        let b = fanout.subscribe(&id);
        assert_eq!(fanout.channels().len(), 1);
        drop(a);
        assert_eq!(fanout.channels().len(), 1);
        drop(b);
        assert!(fanout.channels().is_empty());
    }
}
