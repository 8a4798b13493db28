//! The bus: wake-ups for workers and live progress events for clients.
//!
//! Why it exists: the task table in the database is the source of truth for work (DESIGN.md,
//! "Storage"), and workers poll it, so nothing here is needed for correctness. The bus makes the
//! system *prompt*: a worker waiting for work is woken as soon as a task may be claimable, and a
//! client watching a task sees its events as they happen instead of on the next poll. Losing the
//! bus (Redis down) therefore loses no task; it only makes the system slower until it is back.
//! That is why every operation returns a [`BusError`] instead of panicking or retrying forever,
//! and why a bus that lost Redis recovers by itself once Redis answers again.
//!
//! Two implementations sit behind one type, [`Bus`]:
//!
//! * **In-process** ([`Bus::in_process`]), the embedded default: a shared queue of wake-ups with
//!   the same delivery rules as Redis (each wake-up goes to one consumer; one that is not
//!   acknowledged within the reclaim period is handed to another consumer), and one
//!   `tokio::sync::broadcast` channel per watched task for events.
//! * **Redis** ([`Bus::redis`]), for several processes: see the `redis_streams` submodule. Work
//!   wake-ups use a Redis Stream with a consumer group (at-least-once, one consumer per entry,
//!   `XAUTOCLAIM` for abandoned ones); events use Redis pub/sub, because events are live-only and
//!   best-effort (history is read from the database), so storing them in Redis would only add
//!   keys to trim.
//!
//! Wake-ups carry only a task id. A worker that receives one must still claim the task in the
//! database (the claim decides; the wake-up is only a hint), and should acknowledge the wake-up
//! with [`Bus::ack`] once it has tried.

mod fanout;
mod memory;
mod redis_streams;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use domain::{Id, TaskEvent};
use futures::Stream;

/// How long a delivered wake-up may stay unacknowledged before it is handed to another consumer.
pub const DEFAULT_RECLAIM_AFTER: Duration = Duration::from_secs(30);

/// The most wake-ups kept waiting for a consumer; older ones are dropped first (Redis: the stream
/// is trimmed with `MAXLEN ~`). Dropping a wake-up is safe because workers also poll the database.
pub const DEFAULT_MAX_QUEUED_WAKEUPS: usize = 10_000;

/// How many events a subscriber may fall behind before it skips the oldest ones.
pub const DEFAULT_EVENT_BUFFER: usize = 256;

/// Tuning for a [`Bus`]; [`BusOptions::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusOptions {
    /// A delivered wake-up not acknowledged for this long is re-delivered to another consumer.
    pub reclaim_after: Duration,
    /// The most wake-ups kept waiting for a consumer (oldest dropped first).
    pub max_queued_wakeups: usize,
    /// Per-subscriber event buffer; a slower subscriber skips events rather than slowing
    /// publishers.
    pub event_buffer: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            reclaim_after: DEFAULT_RECLAIM_AFTER,
            max_queued_wakeups: DEFAULT_MAX_QUEUED_WAKEUPS,
            event_buffer: DEFAULT_EVENT_BUFFER,
        }
    }
}

/// Why a bus operation failed. Messages name the Redis server without its credentials.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration (URL, key prefix, consumer name) is unusable.
    #[error("invalid bus configuration: {0}")]
    Config(String),
    /// Redis refused the command or the connection failed.
    #[error("Redis bus at {target} failed while {op}: {detail}")]
    Redis {
        /// The server, without credentials (e.g. `redis://127.0.0.1:6379/0`).
        target: String,
        /// What the bus was doing.
        op: &'static str,
        /// The error reported by the client library, with any password removed.
        detail: String,
    },
    /// Redis did not answer in time.
    #[error("Redis bus at {target} did not answer in time while {op}")]
    Timeout {
        /// The server, without credentials.
        target: String,
        /// What the bus was doing.
        op: &'static str,
    },
    /// [`Bus::ack`] was given a wake-up delivered by a different kind of bus.
    #[error("this wake-up was delivered by a different bus")]
    ForeignSignal,
    /// A task event could not be encoded as JSON.
    #[error("cannot encode a task event: {0}")]
    Encode(#[source] serde_json::Error),
}

/// A wake-up: "task `task_id` may be claimable". Acknowledge it with [`Bus::ack`] once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSignal {
    /// The task that may be claimable.
    pub task_id: Id,
    delivery: Delivery,
}

/// Which delivery of which bus a [`WorkSignal`] is, so it can be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delivery {
    /// The in-process queue's delivery number.
    InProcess(u64),
    /// The Redis stream entry id.
    Redis(String),
}

/// The live events of one task, from [`Bus::subscribe`]. Ends when the bus is dropped.
///
/// Use the inherent [`EventStream::next`] or any [`futures::Stream`] combinator. A subscriber that
/// falls more than [`BusOptions::event_buffer`] events behind skips the oldest ones (logged); the
/// database has the full history.
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = TaskEvent> + Send>>,
    /// Dropped after `inner` (field order), so the channel can be removed once it has no receiver.
    _guard: fanout::SubscriptionGuard,
}

impl EventStream {
    /// The next event, or `None` once the bus has gone away.
    pub async fn next(&mut self) -> Option<TaskEvent> {
        futures::StreamExt::next(&mut self.inner).await
    }
}

impl Stream for EventStream {
    type Item = TaskEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TaskEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// Wake-ups and task events; cheap to clone (all clones share one bus).
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

enum Inner {
    InProcess {
        work: memory::WorkQueue,
        events: Arc<fanout::Fanout>,
    },
    Redis(redis_streams::RedisBus),
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::InProcess { .. } => f.write_str("Bus(in-process)"),
            Inner::Redis(r) => write!(f, "Bus(redis {})", r.target()),
        }
    }
}

impl Bus {
    /// In-process bus (default when no Redis is configured).
    pub fn in_process() -> Bus {
        Bus::in_process_with(BusOptions::default())
    }

    /// In-process bus with explicit tuning.
    pub fn in_process_with(options: BusOptions) -> Bus {
        Bus {
            inner: Arc::new(Inner::InProcess {
                work: memory::WorkQueue::new(options.reclaim_after, options.max_queued_wakeups),
                events: Arc::new(fanout::Fanout::new(options.event_buffer)),
            }),
        }
    }

    /// Redis Streams bus; `prefix` namespaces every key (tests use a unique prefix each).
    ///
    /// Connects before returning, so a wrong URL or an unreachable server is reported at startup.
    /// After that the bus reconnects by itself. `prefix` may contain ASCII letters, digits and
    /// `_ - . :`.
    pub async fn redis(url: &str, prefix: &str) -> Result<Bus, BusError> {
        Bus::redis_with(url, prefix, BusOptions::default()).await
    }

    /// Redis Streams bus with explicit tuning (tests use a short reclaim period).
    pub async fn redis_with(url: &str, prefix: &str, options: BusOptions) -> Result<Bus, BusError> {
        let bus = redis_streams::RedisBus::connect(url, prefix, &options).await?;
        Ok(Bus {
            inner: Arc::new(Inner::Redis(bus)),
        })
    }

    /// "A task may be claimable": delivered to ONE consumer of the worker group, at least once.
    pub async fn notify_work(&self, task_id: &Id) -> Result<(), BusError> {
        match &*self.inner {
            Inner::InProcess { work, .. } => {
                work.push(task_id.clone());
                Ok(())
            }
            Inner::Redis(r) => r.notify_work(task_id).await,
        }
    }

    /// Waits up to `wait` for a wake-up for consumer `consumer` (a worker name). Returns None on
    /// timeout.
    ///
    /// A wake-up delivered to another consumer and not acknowledged within the reclaim period is
    /// handed to this one. `wait` of zero checks once without waiting.
    pub async fn next_work(
        &self,
        consumer: &str,
        wait: Duration,
    ) -> Result<Option<WorkSignal>, BusError> {
        if consumer.is_empty() {
            return Err(BusError::Config("a consumer name must not be empty".into()));
        }
        match &*self.inner {
            Inner::InProcess { work, .. } => Ok(work.next(consumer, wait).await),
            Inner::Redis(r) => r.next_work(consumer, wait).await,
        }
    }

    /// Acknowledges a wake-up once handled; un-acked ones are re-delivered after the reclaim
    /// period to another consumer (Redis: XAUTOCLAIM). Acknowledging twice is harmless.
    pub async fn ack(&self, signal: &WorkSignal) -> Result<(), BusError> {
        match (&*self.inner, &signal.delivery) {
            (Inner::InProcess { work, .. }, Delivery::InProcess(n)) => {
                work.ack(*n);
                Ok(())
            }
            (Inner::Redis(r), Delivery::Redis(entry)) => r.ack(entry).await,
            _ => Err(BusError::ForeignSignal),
        }
    }

    /// Publishes a task event (domain::TaskEvent) to every current subscriber of that task.
    ///
    /// Never waits for subscribers: a slow one skips events instead.
    pub async fn publish(&self, event: &TaskEvent) -> Result<(), BusError> {
        match &*self.inner {
            Inner::InProcess { events, .. } => {
                events.send(event);
                Ok(())
            }
            Inner::Redis(r) => r.publish(event).await,
        }
    }

    /// Subscribes to one task's events (live only; history comes from the database).
    ///
    /// Events published after this returns are delivered. With Redis, this fails if the bus has
    /// no working event connection (Redis down).
    pub async fn subscribe(&self, task_id: &Id) -> Result<EventStream, BusError> {
        match &*self.inner {
            Inner::InProcess { events, .. } => Ok(events.subscribe(task_id)),
            Inner::Redis(r) => r.subscribe(task_id).await,
        }
    }

    /// Readiness check ("bus" in /readyz).
    pub async fn ping(&self) -> Result<(), BusError> {
        match &*self.inner {
            Inner::InProcess { .. } => Ok(()),
            Inner::Redis(r) => r.ping().await,
        }
    }

    /// "in-process" or "redis" for logs/config check.
    pub fn kind(&self) -> &'static str {
        match &*self.inner {
            Inner::InProcess { .. } => "in-process",
            Inner::Redis(_) => "redis",
        }
    }
}
