//! Task events: the persisted history of what happened to a task (status changes, output,
//! approvals), numbered per task from 1. The bus carries the same events live; a client that
//! connects late reads the history from here first.

use domain::{Id, TaskEvent, Timestamp};
use sqlx::Row;

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};

/// How often an append retries after losing the race for a sequence number to a concurrent
/// writer on the same task (Postgres; SQLite has one writer).
const MAX_SEQ_RETRIES: usize = 8;

/// Appends an event to `task_id`'s history inside `tx` and returns it with its sequence number.
pub async fn append(
    tx: &mut Tx,
    task_id: &Id,
    kind: &str,
    data: serde_json::Value,
) -> Result<TaskEvent> {
    let at = Timestamp::now();
    let encoded = data.to_string();
    for _ in 0..MAX_SEQ_RETRIES {
        // Two writers may compute the same next number; the loser inserts nothing and retries
        // with a fresh read (each statement sees rows committed before it started).
        let row = sqlx::query(
            "INSERT INTO task_events (task_id, seq, at, kind, data)
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM task_events WHERE task_id = $1
             ON CONFLICT (task_id, seq) DO NOTHING
             RETURNING seq",
        )
        .bind(task_id.as_str())
        .bind(at.as_millis())
        .bind(kind)
        .bind(encoded.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = row {
            return Ok(TaskEvent {
                task_id: task_id.clone(),
                seq: row.try_get("seq")?,
                at,
                kind: kind.to_owned(),
                data,
            });
        }
    }
    Err(StoreError::Conflict(
        "could not number a task event: too many concurrent writers".to_owned(),
    ))
}

/// The events of `task_id` with a sequence number above `after_seq`, oldest first, at most
/// `limit`.
pub async fn list_after(
    db: &Db,
    task_id: &Id,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<TaskEvent>> {
    let rows = sqlx::query(
        "SELECT seq, at, kind, data FROM task_events
         WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(task_id.as_str())
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let data: String = row.try_get("data")?;
            Ok(TaskEvent {
                task_id: task_id.clone(),
                seq: row.try_get("seq")?,
                at: Timestamp::from_millis(row.try_get("at")?),
                kind: row.try_get("kind")?,
                data: serde_json::from_str(&data).map_err(StoreError::corrupt)?,
            })
        })
        .collect()
}
