//! Environments: named bundles of egress hosts and secrets a task may use.

use crate::db::Tx;
use crate::error::Result;

/// The environment's name if it exists.
pub async fn find_name(tx: &mut Tx, name: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM environments WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?,
    )
}
