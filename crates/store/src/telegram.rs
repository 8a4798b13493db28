//! Telegram ingress state: update ids seen (recorded before they are handled, marked processed in
//! the transaction that enqueues their replies), the long-polling offset, and named leases (one
//! poller per deployment).
//!
//! Times are milliseconds since the epoch, as everywhere in the schema.

use std::time::Duration;

use domain::Timestamp;

use crate::db::{Db, Tx};
use crate::error::Result;
use crate::kv;

/// The `kv_state` key of the polling offset (the next `update_id` to ask `getUpdates` for).
pub const OFFSET_KEY: &str = "telegram.offset";

/// Records an update before it is handled. `true` if it was not known yet; a duplicate changes
/// nothing (`ON CONFLICT DO NOTHING`).
pub async fn record_update(tx: &mut Tx, update_id: i64, payload_json: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO telegram_updates (update_id, received_at, payload, processed_at)
         VALUES ($1, $2, $3, NULL)
         ON CONFLICT (update_id) DO NOTHING",
    )
    .bind(update_id)
    .bind(Timestamp::now().as_millis())
    .bind(payload_json)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a recorded update has been processed: `None` if it was never recorded.
pub async fn is_processed(db: &Db, update_id: i64) -> Result<Option<bool>> {
    let row: Option<Option<i64>> =
        sqlx::query_scalar("SELECT processed_at FROM telegram_updates WHERE update_id = $1")
            .bind(update_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|processed_at| processed_at.is_some()))
}

/// Marks an update processed, in the transaction that enqueues its replies. `false` if it was
/// already processed (or never recorded): the caller then rolls back, so its replies are not
/// enqueued twice.
pub async fn mark_processed(tx: &mut Tx, update_id: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE telegram_updates SET processed_at = $2
         WHERE update_id = $1 AND processed_at IS NULL",
    )
    .bind(update_id)
    .bind(Timestamp::now().as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Recorded but unprocessed updates (the handler failed, or the process died), oldest first:
/// `(update_id, payload_json)`.
pub async fn unprocessed(db: &Db, limit: i64) -> Result<Vec<(i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT update_id, payload FROM telegram_updates
         WHERE processed_at IS NULL ORDER BY update_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Gives up on unprocessed updates received before `cutoff` (marks them processed without
/// replies, so a permanently failing update is not retried forever). Returns their ids.
pub async fn abandon_unprocessed_before(db: &Db, cutoff: Timestamp) -> Result<Vec<i64>> {
    let mut tx = db.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE telegram_updates SET processed_at = $2
         WHERE processed_at IS NULL AND received_at < $1 RETURNING update_id",
    )
    .bind(cutoff.as_millis())
    .bind(Timestamp::now().as_millis())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}

/// The persisted polling offset, if any.
pub async fn get_offset(db: &Db) -> Result<Option<i64>> {
    kv::get_i64(db, OFFSET_KEY).await
}

/// Persists the polling offset (in its own transaction).
pub async fn set_offset(db: &Db, offset: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    set_offset_in(&mut tx, offset).await?;
    tx.commit().await
}

/// Persists the polling offset in the caller's transaction.
pub async fn set_offset_in(tx: &mut Tx, offset: i64) -> Result<()> {
    kv::set(tx, OFFSET_KEY, &offset.to_string()).await
}

/// Takes the named lease for `owner` for `ttl`: inserts it, takes it over if it has expired, or
/// renews it if `owner` already holds it. `false` if someone else holds it. One statement, so it
/// is atomic on SQLite and Postgres alike.
pub async fn acquire_lease(db: &Db, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE leases.owner = excluded.owner OR leases.expires_at <= $4",
    )
    .bind(name)
    .bind(owner)
    .bind(now.plus(ttl).as_millis())
    .bind(now.as_millis())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the named lease up if `owner` holds it (at shutdown, so another process takes over at
/// once instead of after the lease expires).
pub async fn release_lease(db: &Db, name: &str, owner: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
