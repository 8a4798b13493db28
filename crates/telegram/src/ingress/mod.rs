//! How updates come in, webhook ([`webhook`]) or long polling ([`polling`]), and what happens to
//! each exactly once.
//!
//! Every update is first *recorded* (`telegram_updates`, keyed by `update_id`), then handled; the
//! handler's replies are enqueued in the same transaction that marks the update processed. So:
//! * a duplicate of a processed update (redelivery, a second webhook call, a restart) is ignored;
//! * an update whose handler failed, or whose process died mid-way, stays unprocessed and is
//!   handled again by [`Ingress::drain_unprocessed`] (the handler is idempotent per update);
//! * concurrent duplicates in one process are serialized by a per-`update_id` lock, and across
//!   processes by the conditional "mark processed" (only one transaction enqueues replies).

pub mod polling;
mod recorder;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use domain::Timestamp;
use serde_json::Value;
use store::{Db, StoreError};
use tokio::sync::{Notify, watch};

use crate::handler::Handler;
use crate::update::Update;

pub use polling::{PollingConfig, register_commands, run_polling, run_polling_with};
pub use webhook::WebhookOutcome;

/// Unprocessed updates older than this are given up by [`Ingress::run_redelivery`] (Telegram
/// itself keeps undelivered updates for 24 hours).
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What [`Ingress::process`] did with one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Handled now; its replies (this many) are in the outbox.
    Handled { replies: usize },
    /// Processed before: ignored.
    AlreadyProcessed,
    /// Not an update at all (no `update_id`): acknowledged and ignored.
    Unreadable,
    /// The handler failed; the update stays recorded and unprocessed, to be retried.
    HandlerFailed,
}

/// Most webhook updates handled at once in one process.
const WEBHOOK_HANDLERS: usize = 64;

/// Receives updates for one handler. Cheap to clone.
pub struct Ingress<H> {
    inner: Arc<Inner<H>>,
}

struct Inner<H> {
    db: Db,
    handler: H,
    wake: Arc<Notify>,
    locks: std::sync::Mutex<HashMap<i64, Weak<tokio::sync::Mutex<()>>>>,
    /// Bounds the webhook's handlers running at once; an update that finds no slot stays
    /// recorded and is handled by the redelivery loop.
    webhook_slots: Arc<tokio::sync::Semaphore>,
    /// Stores updates with group commit.
    recorder: recorder::Recorder,
}

impl<H> Clone for Ingress<H> {
    fn clone(&self) -> Self {
        Ingress {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<H> std::fmt::Debug for Ingress<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress").finish_non_exhaustive()
    }
}

impl<H: Handler> Ingress<H> {
    /// An ingress that records updates in `db`, hands them to `handler`, and notifies `wake`
    /// (the outbox [`Sender`](crate::outbox::Sender)'s) when replies were enqueued.
    /// Starts its recording task on the current Tokio runtime, so call it from inside one.
    pub fn new(db: Db, handler: H, wake: Arc<Notify>) -> Ingress<H> {
        Ingress {
            inner: Arc::new(Inner {
                recorder: recorder::Recorder::start(db.clone()),
                db,
                handler,
                wake,
                locks: std::sync::Mutex::new(HashMap::new()),
                webhook_slots: Arc::new(tokio::sync::Semaphore::new(WEBHOOK_HANDLERS)),
            }),
        }
    }

    /// The database it records in.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// Records and handles one raw update (from `getUpdates` or a webhook body). An update that
    /// is not one (no `update_id`) is logged and acknowledged. `Err` only when the database
    /// failed before the update was recorded: the caller must not acknowledge it.
    pub async fn process(&self, raw: Value) -> Result<Processed, StoreError> {
        let Some(update) = self.record(&raw).await? else {
            return Ok(Processed::Unreadable);
        };
        self.handle_recorded(update).await
    }

    /// Parses leniently and records an update. `None` for input that has no `update_id`.
    pub(crate) async fn record(&self, raw: &Value) -> Result<Option<Update>, StoreError> {
        let update = match Update::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "telegram: ignoring an unreadable update");
                return Ok(None);
            }
        };
        self.inner
            .recorder
            .record(update.update_id, raw.to_string())
            .await?;
        Ok(Some(update))
    }

    /// Handles a recorded update unless it was processed already: the handler, then its replies
    /// and the "processed" mark in one transaction. Store errors after recording are logged and
    /// reported as [`Processed::HandlerFailed`] (the update will be retried).
    pub(crate) async fn handle_recorded(&self, update: Update) -> Result<Processed, StoreError> {
        let id = update.update_id;
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        match store::telegram::is_processed(&self.inner.db, id).await {
            Ok(Some(true)) => return Ok(Processed::AlreadyProcessed),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(update_id = id, error = %e, "telegram: cannot check an update; will retry");
                return Ok(Processed::HandlerFailed);
            }
        }
        let replies = match self.inner.handler.handle(update).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(update_id = id, error = %e, "telegram: handling an update failed; will retry");
                return Ok(Processed::HandlerFailed);
            }
        };
        match self.commit_replies(id, &replies).await {
            Ok(true) => {
                if !replies.is_empty() {
                    self.inner.wake.notify_one();
                }
                Ok(Processed::Handled {
                    replies: replies.len(),
                })
            }
            Ok(false) => Ok(Processed::AlreadyProcessed),
            Err(e) => {
                tracing::warn!(update_id = id, error = %e, "telegram: cannot store the replies of an update; will retry");
                Ok(Processed::HandlerFailed)
            }
        }
    }

    /// Marks processed and enqueues in one transaction; `false` if someone else was first.
    async fn commit_replies(
        &self,
        id: i64,
        replies: &[crate::outgoing::Outgoing],
    ) -> Result<bool, StoreError> {
        let mut tx = self.inner.db.begin().await?;
        if !store::telegram::mark_processed(&mut tx, id).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        crate::outbox::enqueue(&mut tx, replies).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Handles every recorded but unprocessed update once, oldest first (run at start and
    /// periodically). Returns how many were handled now.
    pub async fn drain_unprocessed(&self) -> Result<usize, StoreError> {
        let pending = store::telegram::unprocessed(&self.inner.db, 500).await?;
        let mut handled = 0;
        for (id, payload) in pending {
            let update = serde_json::from_str::<Value>(&payload)
                .ok()
                .and_then(|v| Update::parse(&v).ok());
            let Some(update) = update else {
                tracing::warn!(
                    update_id = id,
                    "telegram: a recorded update is unreadable; dropped"
                );
                let mut tx = self.inner.db.begin().await?;
                store::telegram::mark_processed(&mut tx, id).await?;
                tx.commit().await?;
                continue;
            };
            if let Processed::Handled { .. } = self.handle_recorded(update).await? {
                handled += 1;
            }
        }
        Ok(handled)
    }

    /// Retries unprocessed updates now and every `every` until `shutdown`; updates still failing
    /// after 24 hours are given up (logged). Spawn it once per process, in both modes.
    pub async fn run_redelivery(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let cutoff = Timestamp::from_millis(
                Timestamp::now()
                    .as_millis()
                    .saturating_sub(GIVE_UP_AFTER.as_millis() as i64),
            );
            match store::telegram::abandon_unprocessed_before(&self.inner.db, cutoff).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::error!(?ids, "telegram: giving up on updates that kept failing");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "telegram: cannot check old updates"),
            }
            match self.drain_unprocessed().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(handled = n, "telegram: handled updates left unprocessed"),
                Err(e) => tracing::warn!(error = %e, "telegram: cannot read unprocessed updates"),
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// The in-process lock of one update id (entries are dropped once nobody holds them).
    fn lock_for(&self, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = locks.get(&id).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() > 1024 {
            locks.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(id, Arc::downgrade(&lock));
        lock
    }
}
