//! Environments: named bundles of egress hosts and secrets a task may use.

use crate::db::Db;
use crate::error::Result;

/// Whether an environment named `name` exists.
pub async fn exists(db: &Db, name: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT name FROM environments WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(found.is_some())
}
