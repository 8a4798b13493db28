//! The agent loop's persisted state per agent task: the transcript (opaque JSON owned by the
//! `agent` crate), its taint and the tokens used. Saved after every step, so a task resumes
//! after an approval or a restart exactly where it stopped.

use domain::{Id, Task, Timestamp};
use sqlx::Row;

use crate::db::{Db, Tx};
use crate::error::Result;

/// A task's stored agent state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The agent crate's state, as JSON text.
    pub state: String,
    /// Untrusted content entered the task's context.
    pub tainted: bool,
    /// The injection scanner flagged content in the task's context.
    pub flagged: bool,
    /// Tokens used by the task so far (prompt and completion).
    pub tokens: i64,
}

/// The stored state of `task_id`, if any step was saved.
pub async fn load(db: &Db, task_id: &Id) -> Result<Option<Transcript>> {
    let row = sqlx::query(
        "SELECT state, tainted, flagged, tokens FROM agent_transcripts WHERE task_id = $1",
    )
    .bind(task_id.as_str())
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(Transcript {
            state: row.try_get("state")?,
            tainted: row.try_get::<i64, _>("tainted")? != 0,
            flagged: row.try_get::<i64, _>("flagged")? != 0,
            tokens: row.try_get("tokens")?,
        })
    })
    .transpose()
}

/// Saves the state of `task` (owned by its user) inside `tx`.
pub async fn save(tx: &mut Tx, task: &Task, transcript: &Transcript) -> Result<()> {
    sqlx::query(
        "INSERT INTO agent_transcripts
            (task_id, user_id, state, tainted, flagged, tokens, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, tainted = excluded.tainted,
            flagged = excluded.flagged, tokens = excluded.tokens, updated_at = excluded.updated_at",
    )
    .bind(task.task_id.as_str())
    .bind(task.user_id.as_str())
    .bind(transcript.state.as_str())
    .bind(i64::from(transcript.tainted))
    .bind(i64::from(transcript.flagged))
    .bind(transcript.tokens)
    .bind(Timestamp::now().as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Tokens used by `user_id`'s agent tasks that were active since `since`.
pub async fn tokens_since(db: &Db, user_id: &Id, since: Timestamp) -> Result<i64> {
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(tokens) AS BIGINT) FROM agent_transcripts
         WHERE user_id = $1 AND updated_at >= $2",
    )
    .bind(user_id.as_str())
    .bind(since.as_millis())
    .fetch_one(db.pool())
    .await?;
    Ok(used.unwrap_or(0))
}
