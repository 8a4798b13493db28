//! The Redis bus: a Stream with a consumer group for wake-ups, pub/sub for events.
//!
//! Wake-ups (`{prefix}:work`): `XADD … MAXLEN ~ N` appends one entry per wake-up; workers read
//! with `XREADGROUP GROUP workers <consumer> COUNT 1 BLOCK …`, so each entry goes to exactly one
//! consumer and stays in the group's pending list until `XACK`. Before blocking, a consumer runs
//! `XAUTOCLAIM` to take over entries another consumer left unacknowledged for longer than the
//! reclaim period (a worker that died between reading and acknowledging). The group is created
//! from id `0`, so wake-ups sent before the first worker asked are delivered too; if Redis lost
//! the stream (a restart without persistence) the `NOGROUP` reply makes us create it again.
//!
//! Events (`{prefix}:events:{task_id}`): `PUBLISH`, and one `PSUBSCRIBE {prefix}:events:*`
//! connection per bus that feeds this process's subscribers through the local fan-out. Pub/sub
//! rather than a stream per task because events are live-only and best-effort (the database keeps
//! the history and clients catch up from it by sequence number): pub/sub stores nothing, so there
//! are no per-task keys to trim or expire, and one pattern subscription serves any number of
//! local subscribers with one connection. An event published while the listener is reconnecting
//! is not seen by this process's subscribers; that is the accepted trade-off.
//!
//! Connections: commands go through a `ConnectionManager` (reconnects by itself after Redis
//! restarts). A blocking `XREADGROUP` would hold up every command queued behind it on the same
//! connection, so blocking reads use their own managers from a small pool, one per concurrent
//! reader. The event listener owns a dedicated pub/sub connection and reconnects with back-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use domain::{Id, TaskEvent};
use futures::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{Client, RedisError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::fanout::Fanout;
use super::{BusError, BusOptions, Delivery, EventStream, WorkSignal};

/// The consumer group every worker joins.
const GROUP: &str = "workers";
/// The stream entry field holding the task id.
const TASK_FIELD: &str = "task";
/// One connection attempt may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A non-blocking command may take this long.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest single `XREADGROUP BLOCK`; longer waits are several blocks with reclaim checks.
const MAX_BLOCK: Duration = Duration::from_secs(10);
/// How long `subscribe` waits for the event listener to be connected.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);
/// How often the event listener checks its connection.
const LISTENER_PING_EVERY: Duration = Duration::from_secs(5);
/// Back-off bounds for the event listener's reconnects.
const LISTENER_MIN_BACKOFF: Duration = Duration::from_millis(100);
const LISTENER_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// `XAUTOCLAIM` pages (each scans up to 10 pending entries) looked at per reclaim attempt.
const RECLAIM_PAGES: usize = 16;
/// Idle blocking connections kept for reuse.
const MAX_POOLED: usize = 16;
/// The longest accepted key prefix.
const MAX_PREFIX_LEN: usize = 64;

/// A connected Redis bus. Dropping it stops its event listener.
pub(super) struct RedisBus {
    redactor: Redactor,
    client: Client,
    commands: ConnectionManager,
    blocking: Mutex<Vec<ConnectionManager>>,
    work_key: String,
    channel_prefix: String,
    reclaim_after: Duration,
    max_len: usize,
    group_ready: AtomicBool,
    fanout: Arc<Fanout>,
    listener_up: watch::Receiver<bool>,
    listener: JoinHandle<()>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl RedisBus {
    /// Connects the command connection (so a bad URL or a down server is reported now) and
    /// starts the event listener.
    pub(super) async fn connect(
        url: &str,
        prefix: &str,
        options: &BusOptions,
    ) -> Result<RedisBus, BusError> {
        check_prefix(prefix)?;
        let redactor = Redactor::new(url)?;
        let client = Client::open(url).map_err(|e| {
            BusError::Config(format!(
                "the Redis URL is not usable: {}",
                redactor.scrub(&e.to_string())
            ))
        })?;
        let commands =
            ConnectionManager::new_with_config(client.clone(), manager_config(RESPONSE_TIMEOUT))
                .await
                .map_err(|e| redactor.error("connecting", &e))?;

        let fanout = Arc::new(Fanout::new(options.event_buffer));
        let (up_tx, up_rx) = watch::channel(false);
        let channel_prefix = format!("{prefix}:events:");
        let listener = tokio::spawn(listen(
            client.clone(),
            format!("{channel_prefix}*"),
            Arc::clone(&fanout),
            up_tx,
            redactor.clone(),
        ));

        Ok(RedisBus {
            redactor,
            client,
            commands,
            blocking: Mutex::new(Vec::new()),
            work_key: format!("{prefix}:work"),
            channel_prefix,
            reclaim_after: options.reclaim_after,
            max_len: options.max_queued_wakeups.max(1),
            group_ready: AtomicBool::new(false),
            fanout,
            listener_up: up_rx,
            listener,
        })
    }

    /// The server, without credentials.
    pub(super) fn target(&self) -> &str {
        &self.redactor.target
    }

    fn fail(&self, op: &'static str, e: &RedisError) -> BusError {
        self.redactor.error(op, e)
    }

    /// `XADD {prefix}:work MAXLEN ~ N * task <id>`.
    pub(super) async fn notify_work(&self, task_id: &Id) -> Result<(), BusError> {
        redis::cmd("XADD")
            .arg(&self.work_key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg(TASK_FIELD)
            .arg(task_id.as_str())
            .query_async::<()>(&mut self.commands.clone())
            .await
            .map_err(|e| self.fail("queueing a wake-up", &e))
    }

    /// Reclaims an abandoned wake-up or reads a new one, until one arrives or `wait` has passed.
    pub(super) async fn next_work(
        &self,
        consumer: &str,
        wait: Duration,
    ) -> Result<Option<WorkSignal>, BusError> {
        let deadline = Instant::now() + wait;
        let mut group_recreated = false;
        loop {
            match self.next_work_once(consumer, deadline).await {
                Ok(Some(signal)) => return Ok(Some(signal)),
                Ok(None) => {}
                // The stream or group vanished (Redis restarted without persistence, or someone
                // deleted the key): create it again, once per call.
                Err(e) if is_no_group(&e) && !group_recreated => {
                    group_recreated = true;
                    self.group_ready.store(false, Ordering::Release);
                    continue;
                }
                Err(e) => return Err(self.fail("waiting for work", &e)),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    async fn next_work_once(
        &self,
        consumer: &str,
        deadline: Instant,
    ) -> Result<Option<WorkSignal>, RedisError> {
        self.ensure_group().await?;
        if let Some(signal) = self.reclaim(consumer).await? {
            return Ok(Some(signal));
        }
        // Block at most one reclaim period, so abandoned wake-ups are noticed while we wait.
        let block = deadline
            .saturating_duration_since(Instant::now())
            .min(self.reclaim_after)
            .min(MAX_BLOCK);
        self.read_new(consumer, block).await
    }

    /// Creates the consumer group (and the stream) unless already done.
    async fn ensure_group(&self) -> Result<(), RedisError> {
        if self.group_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.work_key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut self.commands.clone())
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        self.group_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// `XAUTOCLAIM`: takes over one wake-up left unacknowledged for longer than the reclaim period.
    async fn reclaim(&self, consumer: &str) -> Result<Option<WorkSignal>, RedisError> {
        let min_idle_ms = u64::try_from(self.reclaim_after.as_millis()).unwrap_or(u64::MAX);
        let mut start = String::from("0-0");
        for _ in 0..RECLAIM_PAGES {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.work_key)
                .arg(GROUP)
                .arg(consumer)
                .arg(min_idle_ms)
                .arg(&start)
                .arg("COUNT")
                .arg(1)
                .query_async(&mut self.commands.clone())
                .await?;
            for entry in reply.claimed {
                if let Some(signal) = self.signal_from(entry).await? {
                    return Ok(Some(signal));
                }
            }
            if reply.next_stream_id == "0-0" {
                break;
            }
            start = reply.next_stream_id;
        }
        Ok(None)
    }

    /// `XREADGROUP … BLOCK`: one new wake-up, on a connection of its own.
    async fn read_new(
        &self,
        consumer: &str,
        block: Duration,
    ) -> Result<Option<WorkSignal>, RedisError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1);
        // BLOCK 0 would mean "forever"; a zero wait is a plain non-blocking read.
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS").arg(&self.work_key).arg(">");

        let mut conn = self.blocking_connection().await?;
        let reply = cmd.query_async::<Option<StreamReadReply>>(&mut conn).await;
        // The manager reconnects by itself after a failure, so it is worth keeping either way. (If
        // this future is cancelled mid-read the connection is dropped instead, which also ends
        // the server-side block.)
        self.return_connection(conn);
        let entry = reply?
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next());
        match entry {
            Some(entry) => self.signal_from(entry).await,
            None => Ok(None),
        }
    }

    /// The wake-up in a stream entry; an entry without a valid task id is acknowledged and skipped.
    async fn signal_from(&self, entry: StreamId) -> Result<Option<WorkSignal>, RedisError> {
        let task: Option<String> = entry.get(TASK_FIELD);
        match task.as_deref().map(Id::parse) {
            Some(Ok(task_id)) => Ok(Some(WorkSignal {
                task_id,
                delivery: Delivery::Redis(entry.id),
            })),
            _ => {
                tracing::warn!(entry = %entry.id, "skipping a malformed wake-up entry");
                self.xack(&entry.id).await?;
                Ok(None)
            }
        }
    }

    fn pool(&self) -> MutexGuard<'_, Vec<ConnectionManager>> {
        // A Vec push or pop cannot leave it inconsistent, so a poisoned lock is still usable.
        self.blocking.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn blocking_connection(&self) -> Result<ConnectionManager, RedisError> {
        let pooled = self.pool().pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => {
                ConnectionManager::new_with_config(
                    self.client.clone(),
                    manager_config(MAX_BLOCK + RESPONSE_TIMEOUT),
                )
                .await
            }
        }
    }

    fn return_connection(&self, conn: ConnectionManager) {
        let mut pool = self.pool();
        if pool.len() < MAX_POOLED {
            pool.push(conn);
        }
    }

    async fn xack(&self, entry: &str) -> Result<(), RedisError> {
        redis::cmd("XACK")
            .arg(&self.work_key)
            .arg(GROUP)
            .arg(entry)
            .query_async::<()>(&mut self.commands.clone())
            .await
    }

    /// `XACK`: the wake-up is handled and must not be re-delivered.
    pub(super) async fn ack(&self, entry: &str) -> Result<(), BusError> {
        self.xack(entry)
            .await
            .map_err(|e| self.fail("acknowledging a wake-up", &e))
    }

    /// `PUBLISH {prefix}:events:{task_id} <json>`.
    pub(super) async fn publish(&self, event: &TaskEvent) -> Result<(), BusError> {
        let payload = serde_json::to_string(event).map_err(BusError::Encode)?;
        redis::cmd("PUBLISH")
            .arg(format!("{}{}", self.channel_prefix, event.task_id))
            .arg(payload)
            .query_async::<()>(&mut self.commands.clone())
            .await
            .map_err(|e| self.fail("publishing an event", &e))
    }

    /// A local subscription, once the pattern subscription is live.
    pub(super) async fn subscribe(&self, task_id: &Id) -> Result<EventStream, BusError> {
        let mut up = self.listener_up.clone();
        // `is_ok()` drops the watch guard at once (it must not be held, and is not `Send`).
        let ready = tokio::time::timeout(SUBSCRIBE_WAIT, async {
            up.wait_for(|up| *up).await.is_ok()
        })
        .await;
        match ready {
            Ok(true) => Ok(self.fanout.subscribe(task_id)),
            Ok(false) => Err(BusError::Redis {
                target: self.redactor.target.clone(),
                op: "subscribing to events",
                detail: "the event listener has stopped".into(),
            }),
            Err(_) => Err(BusError::Redis {
                target: self.redactor.target.clone(),
                op: "subscribing to events",
                detail: format!("no event connection to Redis within {SUBSCRIBE_WAIT:?}"),
            }),
        }
    }

    /// `PING` on the command connection.
    pub(super) async fn ping(&self) -> Result<(), BusError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.commands.clone())
            .await
            .map(|_| ())
            .map_err(|e| self.fail("pinging", &e))
    }
}

/// Reconnect quickly and give up quickly: the caller gets an error while Redis is down and the
/// next command tries again, rather than every command hanging through a long back-off.
fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
}

fn is_no_group(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// Key prefixes are also used in a `PSUBSCRIBE` pattern, so glob characters are not allowed.
fn check_prefix(prefix: &str) -> Result<(), BusError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !prefix.chars().all(ok_char) {
        return Err(BusError::Config(format!(
            "the Redis key prefix must be 1 to {MAX_PREFIX_LEN} ASCII letters, digits or '_ - . :'"
        )));
    }
    Ok(())
}

/// Keeps credentials out of messages: names the server without them and removes the password
/// from any error text that might echo it.
#[derive(Clone)]
struct Redactor {
    /// The URL without user name and password, e.g. `redis://127.0.0.1:6379/0`.
    target: String,
    /// The password as written in the URL and percent-decoded.
    secrets: Vec<String>,
}

impl Redactor {
    fn new(url: &str) -> Result<Redactor, BusError> {
        let mut parsed = url::Url::parse(url).map_err(|_| {
            BusError::Config(
                "the Redis URL does not parse (expected redis://[user:password@]host:port[/db])"
                    .into(),
            )
        })?;
        let mut secrets = Vec::new();
        if let Some(password) = parsed.password().filter(|p| !p.is_empty()) {
            secrets.push(password.to_owned());
            let decoded = percent_decode(password);
            if decoded != password {
                secrets.push(decoded);
            }
        }
        // Fails only for URLs that cannot carry credentials at all; nothing to remove then.
        let _ = parsed.set_password(None);
        let _ = parsed.set_username("");
        Ok(Redactor {
            target: parsed.to_string(),
            secrets,
        })
    }

    fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_owned(), |t, s| t.replace(s.as_str(), "***"))
    }

    fn error(&self, op: &'static str, e: &RedisError) -> BusError {
        if e.is_timeout() {
            BusError::Timeout {
                target: self.target.clone(),
                op,
            }
        } else {
            BusError::Redis {
                target: self.target.clone(),
                op,
                detail: self.scrub(&e.to_string()),
            }
        }
    }
}

/// `%XX` decoding, enough to recognise a percent-encoded password in error text.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits are at most 255.
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The event listener: keeps one pattern subscription alive and feeds the local fan-out.
async fn listen(
    client: Client,
    pattern: String,
    fanout: Arc<Fanout>,
    up: watch::Sender<bool>,
    redactor: Redactor,
) {
    let mut backoff = LISTENER_MIN_BACKOFF;
    loop {
        let outcome = listen_once(&client, &pattern, &fanout, &up, &mut backoff).await;
        let was_up = up.send_replace(false);
        let why = redactor.scrub(&outcome);
        if was_up {
            tracing::warn!(target_server = %redactor.target, reason = %why, "lost the Redis event connection; reconnecting");
        } else {
            tracing::debug!(target_server = %redactor.target, reason = %why, "cannot open the Redis event connection yet");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTENER_MAX_BACKOFF);
    }
}

/// One connection's life; returns why it ended.
async fn listen_once(
    client: &Client,
    pattern: &str,
    fanout: &Fanout,
    up: &watch::Sender<bool>,
    backoff: &mut Duration,
) -> String {
    let pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return "connecting timed out".into(),
    };
    let (mut sink, mut messages) = pubsub.split();
    match tokio::time::timeout(RESPONSE_TIMEOUT, sink.psubscribe(pattern)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return "subscribing timed out".into(),
    }
    up.send_replace(true);
    *backoff = LISTENER_MIN_BACKOFF;

    let mut ticker = tokio::time::interval(LISTENER_PING_EVERY);
    ticker.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => deliver(fanout, message.get_payload_bytes()),
                None => return "the connection closed".into(),
            },
            _ = ticker.tick() => {
                match tokio::time::timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return e.to_string(),
                    Err(_) => return "ping timed out".into(),
                }
            }
        }
    }
}

fn deliver(fanout: &Fanout, payload: &[u8]) {
    match serde_json::from_slice::<TaskEvent>(payload) {
        Ok(event) => fanout.send(&event),
        Err(e) => tracing::warn!(error = %e, "ignoring an undecodable task event from Redis"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_hides_credentials() {
        let r = Redactor::new("redis://user:s%40cret@127.0.0.1:6380/2").unwrap();
        assert_eq!(r.target, "redis://127.0.0.1:6380/2");
        assert_eq!(r.scrub("bad s%40cret and s@cret"), "bad *** and ***");
        assert!(Redactor::new("not a url").is_err());
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("agenticai:prod-1").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a*b").is_err());
        assert!(check_prefix(&"a".repeat(65)).is_err());
    }
}
