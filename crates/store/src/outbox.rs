//! The persisted outbox of messages to send (Telegram replies): enqueued in the transaction of
//! the effect they report, delivered at least once by a sender, deduplicated by `dedupe_key`.
//!
//! A sender *claims* due rows ([`claim_due`]) by moving their `next_attempt_at` forward, so a second
//! sender process skips them while the first delivers; a claimed row that is never marked sent
//! (the sender died) is due again when the hold passes. Rows are kept after sending (with
//! `sent_at`) until [`purge_sent_before`] removes them.
//!
//! The `message_id` Telegram returned for a sent message is kept in `kv_state` under
//! `outbox.msg.{dedupe_key}` ([`message_id_of`]), so a later message can edit it.

use std::time::Duration;

use domain::Timestamp;
use sqlx::Row;

use crate::db::{Db, Dialect, Tx};
use crate::error::{Result, StoreError};
use crate::kv;

/// How long [`due`] holds the rows it claims.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Unique per logical message; a second message with the same key is dropped.
    pub dedupe_key: String,
    pub chat_id: i64,
    /// The Bot API method (for inspection; the payload says everything).
    pub method: String,
    /// The serialized action.
    pub payload: String,
}

/// A claimed outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub dedupe_key: String,
    pub chat_id: i64,
    pub method: String,
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: i64,
    pub created_at: Timestamp,
}

fn kv_key(dedupe_key: &str) -> String {
    format!("outbox.msg.{dedupe_key}")
}

/// Enqueues messages in the caller's transaction, due at once. Returns how many were new (a
/// message whose `dedupe_key` is already known is dropped). Messages of one call are delivered in
/// the order given.
pub async fn enqueue(tx: &mut Tx, messages: &[NewMessage]) -> Result<u64> {
    let now = Timestamp::now().as_millis();
    let mut inserted = 0;
    for (i, m) in messages.iter().enumerate() {
        // The index first keeps a call's messages in order (ties on created_at sort by id).
        let id = format!(
            "ob_{i:04}{}",
            domain::random_string(20)
                .map_err(|e| StoreError::Other(format!("no randomness available: {e}")))?
        );
        let done = sqlx::query(
            "INSERT INTO outbox (id, dedupe_key, chat_id, method, payload, attempts, next_attempt_at, sent_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, NULL, $6)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&m.dedupe_key)
        .bind(m.chat_id)
        .bind(&m.method)
        .bind(&m.payload)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        inserted += done.rows_affected();
    }
    Ok(inserted)
}

/// Claims up to `limit` unsent rows due at `now`, oldest first, holding them until `hold_until`
/// (another sender skips them meanwhile).
pub async fn claim_due(
    db: &Db,
    now: Timestamp,
    hold_until: Timestamp,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    let lock = match db.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "UPDATE outbox SET next_attempt_at = $1
         WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $2
                      ORDER BY created_at, id LIMIT $3{lock})
         RETURNING id, dedupe_key, chat_id, method, payload, attempts, created_at"
    );
    let mut tx = db.begin().await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(hold_until.as_millis())
        .bind(now.as_millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(OutboxRow {
                id: r.try_get("id")?,
                dedupe_key: r.try_get("dedupe_key")?,
                chat_id: r.try_get("chat_id")?,
                method: r.try_get("method")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                created_at: Timestamp::from_millis(r.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

/// [`claim_due`] with the [`DEFAULT_HOLD`].
pub async fn due(db: &Db, now: Timestamp, limit: i64) -> Result<Vec<OutboxRow>> {
    claim_due(db, now, now.plus(DEFAULT_HOLD), limit).await
}

/// Marks a row delivered and, for a message Telegram gave an id, remembers it for
/// [`message_id_of`] (one transaction).
pub async fn mark_sent(db: &Db, row: &OutboxRow, message_id: Option<i64>) -> Result<()> {
    let now = Timestamp::now().as_millis();
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE outbox SET sent_at = $2 WHERE id = $1")
        .bind(&row.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if let Some(mid) = message_id {
        kv::set(&mut tx, &kv_key(&row.dedupe_key), &mid.to_string()).await?;
    }
    tx.commit().await
}

/// Counts a failed attempt and makes the row due again at `next_attempt_at`. Returns the attempts
/// so far.
pub async fn retry_later(db: &Db, id: &str, next_attempt_at: Timestamp) -> Result<i64> {
    let mut tx = db.begin().await?;
    let attempts: Option<i64> = sqlx::query_scalar(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2
         WHERE id = $1 RETURNING attempts",
    )
    .bind(id)
    .bind(next_attempt_at.as_millis())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    attempts.ok_or_else(|| StoreError::NotFound(format!("outbox row {id}")))
}

/// Makes a claimed row due again at `at` without counting an attempt (e.g. it was never tried
/// because the bot is rate-limited).
pub async fn postpone(db: &Db, id: &str, at: Timestamp) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND sent_at IS NULL")
        .bind(id)
        .bind(at.as_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Stops trying a row that cannot be delivered (the chat is gone, the bot was blocked, the
/// message is refused, too many attempts): it is closed like a sent row, its attempt counted,
/// and kept for inspection.
pub async fn give_up(db: &Db, id: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE outbox SET sent_at = $2, attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .bind(Timestamp::now().as_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The Telegram `message_id` of the sent message with this dedupe key, once it was sent.
pub async fn message_id_of(db: &Db, dedupe_key: &str) -> Result<Option<i64>> {
    kv::get_i64(db, &kv_key(dedupe_key)).await
}

/// Unsent rows (due or not), for readiness checks and tests.
pub async fn pending_count(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(db.pool())
            .await?,
    )
}

/// Deletes rows sent before `cutoff` and the message ids remembered before it. Returns the rows
/// deleted.
pub async fn purge_sent_before(db: &Db, cutoff: Timestamp) -> Result<u64> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
        .bind(cutoff.as_millis())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM kv_state WHERE key LIKE 'outbox.msg.%' AND updated_at < $1")
        .bind(cutoff.as_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
