//! Tasks started from Telegram, as the periodic relays see them ([`crate::progress`] edits their
//! status messages, [`crate::notices`] sends the messages their events call for).
//!
//! A task started from Telegram carries the idempotency key `tg:{update_id}` of the update that
//! created it. A relay keeps what it has done for a task as JSON in `kv_state` and stores it in
//! the same transaction as the messages it queues, so a crash neither loses nor repeats one.

use std::time::Duration;

use domain::{Task, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::{Db, StoreError};

use crate::handler::HandleError;
use crate::outgoing::Outgoing;

/// Idempotency-key prefix of tasks created from Telegram.
pub const KEY_PREFIX: &str = "tg:";
/// Tasks that finished longer ago than this are not looked at any more (a message due then — the
/// server was down — is left out; the result message is sent anyway).
pub const FINISHED_WITHIN: Duration = Duration::from_secs(600);
/// Most tasks looked at per scan.
const SCAN_LIMIT: i64 = 200;

/// The idempotency key of the task created by update `update_id`.
pub fn idempotency_key(update_id: i64) -> String {
    format!("{KEY_PREFIX}{update_id}")
}

/// Tasks created from Telegram that are unfinished or finished within [`FINISHED_WITHIN`] of
/// `now`, each with the id of the update that created it; most recently changed first.
pub(crate) async fn recent(db: &Db, now: Timestamp) -> Result<Vec<(Task, i64)>, HandleError> {
    let finished_since =
        Timestamp::from_millis(now.as_millis().saturating_sub(millis(FINISHED_WITHIN)));
    let tasks = store::tasks::active_or_finished_since_with_key_prefix(
        db,
        KEY_PREFIX,
        finished_since,
        SCAN_LIMIT,
    )
    .await
    .map_err(store_error)?;
    Ok(tasks
        .into_iter()
        .filter_map(|(task, key)| {
            let update_id = key.strip_prefix(KEY_PREFIX)?.parse::<i64>().ok()?;
            Some((task, update_id))
        })
        .collect())
}

/// A relay's state under `key`; the default when there is none, or when it cannot be read (the
/// relay starts over: a message may be built again, and its dedupe key keeps it from being sent
/// twice).
pub(crate) async fn load<T: DeserializeOwned + Default>(
    db: &Db,
    key: &str,
) -> Result<T, HandleError> {
    match store::kv::get(db, key).await.map_err(store_error)? {
        None => Ok(T::default()),
        Some(value) => Ok(serde_json::from_str(&value).unwrap_or_else(|e| {
            tracing::warn!(key, error = %e, "telegram relay: unreadable state; starting over");
            T::default()
        })),
    }
}

/// Queues `out` and stores each relay state of `states`, in one transaction.
pub(crate) async fn save<T: Serialize>(
    db: &Db,
    out: &[Outgoing],
    states: &[(String, T)],
) -> Result<(), HandleError> {
    let mut tx = db.begin().await.map_err(store_error)?;
    crate::outbox::enqueue(&mut tx, out)
        .await
        .map_err(store_error)?;
    for (key, state) in states {
        let value = serde_json::to_string(state)
            .map_err(|e| HandleError(format!("cannot serialize relay state: {e}")))?;
        store::kv::set(&mut tx, key, &value)
            .await
            .map_err(store_error)?;
    }
    tx.commit().await.map_err(store_error)
}

/// `d` in milliseconds.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A store error as a [`HandleError`] (the caller retries on its next scan).
pub(crate) fn store_error(e: StoreError) -> HandleError {
    HandleError(e.to_string())
}
