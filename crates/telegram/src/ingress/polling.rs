//! Polling mode (the default): one poller per deployment, chosen by the database lease
//! [`LEASE`]; it deletes any webhook, then long-polls `getUpdates` from the persisted offset,
//! processes each update in order and persists `last update_id + 1` after each batch. A restart
//! (or another process taking the lease over) resumes from there; anything handed out twice is
//! recognised by its recorded `update_id`. Errors back off; there is no hot error loop.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::BotApi;
use crate::handler::Handler;

use super::Ingress;

/// The lease that makes one process the poller.
pub const LEASE: &str = "telegram.poller";

/// The least time between two long polls that came back empty.
const EMPTY_POLL_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// How the poller behaves.
#[derive(Debug, Clone)]
pub struct PollingConfig {
    /// `getUpdates` long-poll timeout, in seconds.
    pub timeout_secs: u64,
    /// Lifetime of the poller lease; renewed every third of it. Must exceed the long-poll
    /// timeout plus its margin.
    pub lease_ttl: Duration,
    /// This process's name in the lease (random by default).
    pub owner: String,
    /// How long to wait before asking for the lease again when another process holds it.
    pub standby_retry: Duration,
    /// The first backoff after an error; doubled up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            timeout_secs: 25,
            lease_ttl: Duration::from_secs(90),
            owner: format!(
                "poller-{}-{}",
                std::process::id(),
                domain::random_string(10).unwrap_or_default()
            ),
            standby_retry: Duration::from_secs(15),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Registers the bot's command menu (`setMyCommands`), e.g. at start.
pub async fn register_commands(
    api: &BotApi,
    commands: &[(&str, &str)],
) -> Result<(), crate::api::ApiError> {
    api.set_my_commands(commands).await
}

/// [`run_polling_with`] with the default configuration.
pub async fn run_polling<H: Handler>(
    api: BotApi,
    ingress: Ingress<H>,
    shutdown: watch::Receiver<bool>,
) {
    run_polling_with(api, ingress, PollingConfig::default(), shutdown).await;
}

/// Polls until `shutdown` turns true, while this process holds the poller lease; waits for the
/// lease otherwise. Releases the lease on the way out.
pub async fn run_polling_with<H: Handler>(
    api: BotApi,
    ingress: Ingress<H>,
    config: PollingConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let db = ingress.db().clone();
    let mut backoff = Backoff::new(&config);
    while !*shutdown.borrow() {
        match store::telegram::acquire_lease(&db, LEASE, &config.owner, config.lease_ttl).await {
            Ok(true) => {
                tracing::info!(owner = %config.owner, "telegram: this process is the poller");
                let mut poller = Poller {
                    api: &api,
                    ingress: &ingress,
                    config: &config,
                    renewed_at: Instant::now(),
                    backoff: &mut backoff,
                };
                poller.run(&mut shutdown).await;
            }
            Ok(false) => {
                tracing::debug!("telegram: another process polls; standing by");
                if sleep_or_shutdown(config.standby_retry, &mut shutdown).await {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "telegram: cannot take the poller lease");
                if sleep_or_shutdown(backoff.next(), &mut shutdown).await {
                    break;
                }
            }
        }
    }
    if let Err(e) = store::telegram::release_lease(&db, LEASE, &config.owner).await {
        tracing::warn!(error = %e, "telegram: cannot release the poller lease");
    }
}

/// Sleeps for `d`; `true` if shutdown was requested meanwhile.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
    }
}

struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(config: &PollingConfig) -> Backoff {
        Backoff {
            base: config.base_backoff,
            max: config.max_backoff,
            current: config.base_backoff,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.current = self.base;
    }
}

/// The poller while it holds the lease.
struct Poller<'a, H> {
    api: &'a BotApi,
    ingress: &'a Ingress<H>,
    config: &'a PollingConfig,
    renewed_at: Instant,
    backoff: &'a mut Backoff,
}

impl<H: Handler> Poller<'_, H> {
    /// Polls until shutdown or until the lease is lost.
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) {
        // Handle what an earlier poller recorded but did not finish.
        if let Err(e) = self.ingress.drain_unprocessed().await {
            tracing::warn!(error = %e, "telegram: cannot read unprocessed updates");
        }
        // getUpdates is refused while a webhook is set.
        loop {
            match self.api.delete_webhook().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: deleteWebhook failed");
                    if sleep_or_shutdown(self.backoff.next(), shutdown).await {
                        return;
                    }
                    if !self.keep_lease().await {
                        return;
                    }
                }
            }
        }
        self.backoff.reset();
        let db = self.ingress.db().clone();
        loop {
            if *shutdown.borrow() || !self.keep_lease().await {
                return;
            }
            let offset = match store::telegram::get_offset(&db).await {
                Ok(o) => o.unwrap_or(0),
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: cannot read the polling offset");
                    if sleep_or_shutdown(self.backoff.next(), shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let asked = tokio::time::Instant::now();
            let updates = tokio::select! {
                r = self.api.get_updates(offset, self.config.timeout_secs) => r,
                _ = shutdown.changed() => return,
            };
            // A Bot API that answers an empty long poll at once (test emulators, proxies) must
            // not turn this loop into a busy one.
            if matches!(&updates, Ok(u) if u.is_empty())
                && asked.elapsed() < EMPTY_POLL_PAUSE
                && sleep_or_shutdown(EMPTY_POLL_PAUSE, shutdown).await
            {
                return;
            }
            let updates = match updates {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: getUpdates failed");
                    let wait = e.retry_after().unwrap_or_else(|| self.backoff.next());
                    if sleep_or_shutdown(wait, shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if !self.process_batch(offset, updates).await
                && sleep_or_shutdown(self.backoff.next(), shutdown).await
            {
                return;
            }
        }
    }

    /// Processes a batch in order and persists the new offset. `false` on a store error (the
    /// rest of the batch is fetched again after a backoff).
    async fn process_batch(&mut self, offset: i64, updates: Vec<serde_json::Value>) -> bool {
        let db = self.ingress.db().clone();
        let mut next = offset;
        let mut ok = true;
        for raw in updates {
            let id = raw.get("update_id").and_then(serde_json::Value::as_i64);
            if !self.keep_lease().await {
                ok = false;
                break;
            }
            if let Err(e) = self.ingress.process(raw).await {
                tracing::warn!(error = %e, "telegram: cannot record an update");
                ok = false;
                break;
            }
            // An update without an id cannot be skipped by offset; ids are increasing.
            if let Some(id) = id {
                next = next.max(id.saturating_add(1));
            }
        }
        if next != offset
            && let Err(e) = store::telegram::set_offset(&db, next).await
        {
            tracing::warn!(error = %e, "telegram: cannot persist the polling offset");
            return false;
        }
        if ok {
            self.backoff.reset();
        }
        ok
    }

    /// Renews the lease when a third of its lifetime has passed; `false` if it was lost.
    async fn keep_lease(&mut self) -> bool {
        if self.renewed_at.elapsed() < self.config.lease_ttl / 3 {
            return true;
        }
        let db = self.ingress.db();
        match store::telegram::acquire_lease(db, LEASE, &self.config.owner, self.config.lease_ttl)
            .await
        {
            Ok(true) => {
                self.renewed_at = Instant::now();
                true
            }
            Ok(false) => {
                tracing::warn!("telegram: lost the poller lease to another process");
                false
            }
            Err(e) => {
                // Keep polling while the lease is surely still ours; give up once it may not be.
                tracing::warn!(error = %e, "telegram: cannot renew the poller lease");
                self.renewed_at.elapsed() < self.config.lease_ttl * 2 / 3
            }
        }
    }
}
