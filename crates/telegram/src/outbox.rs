//! The persisted outbox of replies and the [`Sender`] that delivers it.
//!
//! Replies are enqueued ([`enqueue`]) in the transaction of the effect they report; the sender
//! claims due rows, performs them through [`BotApi::execute`] and marks them sent. Delivery is at
//! least once; a message is never enqueued twice (its dedupe key). Rate limits pause the whole
//! sender for Telegram's `retry_after`; transient errors are retried with backoff up to
//! [`SenderConfig::max_attempts`]; permanent refusals (chat not found, bot blocked, message too
//! long) are logged and closed, never retried forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::Timestamp;
use store::outbox::{self as rows, NewMessage, OutboxRow};
use store::{Db, StoreError, Tx};
use tokio::sync::{Notify, watch};

use crate::api::{ApiError, BotApi};
use crate::outgoing::{Action, Outgoing};

/// Enqueues replies in the caller's transaction. Returns how many were new.
pub async fn enqueue(tx: &mut Tx, messages: &[Outgoing]) -> Result<u64, StoreError> {
    let rows = messages
        .iter()
        .map(|m| {
            Ok(NewMessage {
                dedupe_key: m.dedupe_key.clone(),
                chat_id: m.chat_id,
                method: method_name(&m.action).to_owned(),
                payload: serde_json::to_string(&m.action)
                    .map_err(|e| StoreError::Other(format!("cannot serialize a reply: {e}")))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    rows::enqueue(tx, &rows).await
}

/// The Telegram `message_id` of the message sent for `dedupe_key`, once it has been sent (so a
/// status message can be edited later).
pub async fn message_id_of(db: &Db, dedupe_key: &str) -> Result<Option<i64>, StoreError> {
    rows::message_id_of(db, dedupe_key).await
}

fn method_name(action: &Action) -> &'static str {
    match action {
        Action::SendMessage { .. } => "sendMessage",
        Action::EditMessageText { .. } => "editMessageText",
        Action::AnswerCallbackQuery { .. } => "answerCallbackQuery",
        Action::SendDocument { .. } => "sendDocument",
    }
}

/// How the sender paces itself.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Rows claimed per round.
    pub batch: i64,
    /// Failed attempts after which a message is given up.
    pub max_attempts: i64,
    /// Backoff after the first transient failure; doubled per attempt.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// Looks for due rows at least this often even without a wake-up.
    pub tick: Duration,
    /// How long a claimed row is reserved for this sender.
    pub hold: Duration,
    /// Sent rows older than this are purged (hourly).
    pub retention: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            batch: 20,
            max_attempts: 8,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            tick: Duration::from_secs(1),
            hold: Duration::from_secs(120),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one round of delivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    /// Failed now (or held behind a failed message of the same chat), to be tried again.
    pub retried: usize,
    pub given_up: usize,
    /// Set when Telegram rate-limited us: nothing more is sent before this passes.
    pub paused_for: Option<Duration>,
}

/// Delivers the outbox.
#[derive(Debug, Clone)]
pub struct Sender {
    db: Db,
    api: BotApi,
    wake: Arc<Notify>,
    config: SenderConfig,
}

impl Sender {
    /// A sender over `db` through `api`, woken early by `wake` (notified by the ingress when it
    /// enqueues replies).
    pub fn new(db: Db, api: BotApi, wake: Arc<Notify>) -> Sender {
        Sender {
            db,
            api,
            wake,
            config: SenderConfig::default(),
        }
    }

    /// The same sender with other pacing.
    pub fn with_config(mut self, config: SenderConfig) -> Sender {
        self.config = config;
        self
    }

    /// Delivers until `shutdown` turns true (or its sender is dropped).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut last_purge = tokio::time::Instant::now();
        let mut db_backoff = Duration::from_millis(500);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.deliver_due().await {
                Ok(round) => {
                    db_backoff = Duration::from_millis(500);
                    match round.paused_for {
                        Some(d) => d,
                        // A full batch: there may be more due at once.
                        None if round.sent + round.retried + round.given_up
                            >= self.config.batch as usize =>
                        {
                            Duration::ZERO
                        }
                        None => self.config.tick,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: cannot read due messages; backing off");
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(30));
                    db_backoff
                }
            };
            if last_purge.elapsed() > Duration::from_secs(3600) {
                last_purge = tokio::time::Instant::now();
                let retention =
                    i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
                let cutoff =
                    Timestamp::from_millis(Timestamp::now().as_millis().saturating_sub(retention));
                if let Err(e) = rows::purge_sent_before(&self.db, cutoff).await {
                    tracing::warn!(error = %e, "outbox: purge failed");
                }
            }
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            let paused = wait > self.config.tick;
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = self.wake.notified(), if !paused => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Claims the due rows and tries each once.
    pub async fn deliver_due(&self) -> Result<Round, StoreError> {
        let now = Timestamp::now();
        let claimed =
            rows::claim_due(&self.db, now, now.plus(self.config.hold), self.config.batch).await?;
        let mut round = Round::default();
        // Chats whose earlier message failed this round: their later messages wait for it, so a
        // chat's messages keep their order.
        let mut held: HashMap<i64, Timestamp> = HashMap::new();
        let mut iter = claimed.into_iter();
        while let Some(row) = iter.next() {
            if let Some(at) = held.get(&row.chat_id) {
                rows::postpone(&self.db, &row.id, *at).await?;
                round.retried += 1;
                continue;
            }
            match self.deliver(&row).await? {
                Delivery::Sent => round.sent += 1,
                Delivery::Retried(at) => {
                    held.insert(row.chat_id, at);
                    round.retried += 1;
                }
                Delivery::GivenUp => round.given_up += 1,
                Delivery::RateLimited(wait) => {
                    let at = Timestamp::now().plus(wait);
                    rows::postpone(&self.db, &row.id, at).await?;
                    for rest in iter.by_ref() {
                        rows::postpone(&self.db, &rest.id, at).await?;
                    }
                    round.paused_for = Some(wait);
                }
            }
        }
        Ok(round)
    }

    async fn deliver(&self, row: &OutboxRow) -> Result<Delivery, StoreError> {
        let action: Action = match serde_json::from_str(&row.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(dedupe_key = %row.dedupe_key, error = %e, "outbox: unreadable message; dropped");
                rows::give_up(&self.db, &row.id).await?;
                return Ok(Delivery::GivenUp);
            }
        };
        let out = Outgoing {
            dedupe_key: row.dedupe_key.clone(),
            chat_id: row.chat_id,
            action,
        };
        match self.api.execute(&out).await {
            Ok(message_id) => {
                rows::mark_sent(&self.db, row, message_id).await?;
                Ok(Delivery::Sent)
            }
            Err(e) => self.failed(row, e).await,
        }
    }

    async fn failed(&self, row: &OutboxRow, e: ApiError) -> Result<Delivery, StoreError> {
        if let Some(wait) = e.retry_after() {
            tracing::warn!(dedupe_key = %row.dedupe_key, wait_s = wait.as_secs(), "outbox: rate-limited by Telegram; pausing");
            return Ok(Delivery::RateLimited(wait));
        }
        if e.is_permanent() {
            tracing::warn!(dedupe_key = %row.dedupe_key, chat_id = row.chat_id, error = %e, "outbox: Telegram refused the message; not retried");
            rows::give_up(&self.db, &row.id).await?;
            return Ok(Delivery::GivenUp);
        }
        if row.attempts + 1 >= self.config.max_attempts {
            tracing::error!(dedupe_key = %row.dedupe_key, attempts = row.attempts + 1, error = %e, "outbox: giving up on a message");
            rows::give_up(&self.db, &row.id).await?;
            return Ok(Delivery::GivenUp);
        }
        let exp = u32::try_from(row.attempts.clamp(0, 16)).unwrap_or(16);
        let backoff = self
            .config
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.max_backoff);
        tracing::info!(dedupe_key = %row.dedupe_key, attempts = row.attempts + 1, backoff_ms = backoff.as_millis() as u64, error = %e, "outbox: delivery failed; will retry");
        let at = Timestamp::now().plus(backoff);
        rows::retry_later(&self.db, &row.id, at).await?;
        Ok(Delivery::Retried(at))
    }
}

enum Delivery {
    Sent,
    /// Due again at this time.
    Retried(Timestamp),
    GivenUp,
    RateLimited(Duration),
}
