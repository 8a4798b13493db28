//! Small durable state in `kv_state`: one home for reading and writing a value by key (polling
//! offsets, relay cursors, sent message ids).

use domain::Timestamp;

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};

/// The value under `key`, if any.
pub async fn get(db: &Db, key: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM kv_state WHERE key = $1")
            .bind(key)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// The integer under `key`, if any; a value that is not an integer is reported as corrupt.
pub async fn get_i64(db: &Db, key: &str) -> Result<Option<i64>> {
    get(db, key)
        .await?
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| StoreError::corrupt(format!("{key} is not an integer")))
        })
        .transpose()
}

/// Sets `key` to `value` inside `tx` (insert or replace).
pub async fn set(tx: &mut Tx, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv_state (key, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(value)
    .bind(Timestamp::now().as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
