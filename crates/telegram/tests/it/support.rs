//! Shared test helpers: a database per test and a trivial echo handler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::Db;
use telegram::handler::{HandleError, Handler};
use telegram::outgoing::{Action, Outgoing};
use telegram::update::{Update, UpdateKind};

/// A migrated database (SQLite, or Postgres with `AGENTICAI_TEST_DATABASE=postgres`) and the
/// directory it lives in.
pub struct TestDb {
    pub db: Db,
    _dir: tempfile::TempDir,
}

pub async fn test_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let db = store::testing::fresh_database(dir.path()).await;
    TestDb { db, _dir: dir }
}

/// Echoes text messages (`echo: TEXT`, or the length of long texts), counting how often each
/// update was handled. Can be told to fail its first calls, or to dawdle.
#[derive(Clone, Default)]
pub struct Echo {
    inner: Arc<EchoInner>,
}

#[derive(Default)]
struct EchoInner {
    handled: Mutex<HashMap<i64, usize>>,
    fail_first: AtomicUsize,
    delay_ms: AtomicUsize,
}

impl Echo {
    pub fn new() -> Echo {
        Echo::default()
    }

    /// Fails the next `n` calls with a retryable error.
    pub fn fail_first(&self, n: usize) {
        self.inner.fail_first.store(n, Ordering::SeqCst);
    }

    /// Sleeps this long in every call (to widen race windows).
    pub fn delay(&self, d: Duration) {
        self.inner
            .delay_ms
            .store(d.as_millis() as usize, Ordering::SeqCst);
    }

    /// How often each update id was handled successfully.
    pub fn handled(&self) -> HashMap<i64, usize> {
        self.inner.handled.lock().unwrap().clone()
    }

    /// Total successful handler calls.
    pub fn total(&self) -> usize {
        self.handled().values().sum()
    }
}

impl Handler for Echo {
    async fn handle(&self, update: Update) -> Result<Vec<Outgoing>, HandleError> {
        let delay = self.inner.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay as u64)).await;
        }
        if self
            .inner
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HandleError("the database is down (test)".to_owned()));
        }
        *self
            .inner
            .handled
            .lock()
            .unwrap()
            .entry(update.update_id)
            .or_default() += 1;
        let UpdateKind::Message(m) = update.kind else {
            return Ok(vec![]);
        };
        let Some(text) = m.text else {
            return Ok(vec![]);
        };
        let html = if text.len() > 100 {
            format!("echo: {} bytes", text.len())
        } else {
            format!("echo: {text}")
        };
        Ok(vec![Outgoing {
            dedupe_key: format!("u:{}:0", update.update_id),
            chat_id: m.chat.id,
            action: Action::SendMessage {
                html,
                buttons: vec![],
            },
        }])
    }
}

/// Polls `check` every 20 ms until it is true or `within` passes; returns its last value.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number of outbox rows (sent or not).
pub async fn outbox_rows(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(db.pool())
        .await
        .unwrap()
}
