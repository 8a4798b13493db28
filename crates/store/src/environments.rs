//! Environments: named bundles of egress hosts and secrets a task may use.

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};
use domain::Timestamp;

/// What an environment grants: egress hosts and secret names.
pub use domain::EnvironmentGrants as Grants;

/// An environment as stored (CONTRACT.md "Environment").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Environment {
    pub name: String,
    /// `host[:port]` entries the task may reach through the egress proxy.
    pub egress: Vec<String>,
    /// Names of secrets injected into the task's sandbox.
    pub secrets: Vec<String>,
    pub description: String,
}

/// The grants of environment `name`, if it exists.
pub async fn grants(db: &Db, name: &str) -> Result<Option<Grants>> {
    Ok(get(db, name).await?.map(|e| Grants {
        name: e.name,
        egress: e.egress,
        secrets: e.secrets,
    }))
}

type Row = (String, String, String, String);

fn from_row((name, egress, secrets, description): Row) -> Result<Environment> {
    Ok(Environment {
        name,
        egress: serde_json::from_str(&egress).map_err(StoreError::corrupt)?,
        secrets: serde_json::from_str(&secrets).map_err(StoreError::corrupt)?,
        description,
    })
}

/// Environment `name`, if it exists.
pub async fn get(db: &Db, name: &str) -> Result<Option<Environment>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT name, egress, secrets, description FROM environments WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row).transpose()
}

/// Every environment, most recently changed first.
pub async fn list(db: &Db) -> Result<Vec<Environment>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT name, egress, secrets, description FROM environments
         ORDER BY updated_at DESC, name",
    )
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Creates or replaces `env` inside `tx`; the previous version, if there was one.
pub async fn put(tx: &mut Tx, env: &Environment) -> Result<Option<Environment>> {
    let before: Option<Row> = sqlx::query_as(
        "SELECT name, egress, secrets, description FROM environments WHERE name = $1",
    )
    .bind(&env.name)
    .fetch_optional(&mut **tx)
    .await?;
    let before = before.map(from_row).transpose()?;
    let egress =
        serde_json::to_string(&env.egress).map_err(|e| StoreError::Other(e.to_string()))?;
    let secrets =
        serde_json::to_string(&env.secrets).map_err(|e| StoreError::Other(e.to_string()))?;
    sqlx::query(
        "INSERT INTO environments (name, egress, secrets, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (name) DO UPDATE SET egress = excluded.egress, secrets = excluded.secrets,
             description = excluded.description, updated_at = excluded.updated_at",
    )
    .bind(&env.name)
    .bind(egress)
    .bind(secrets)
    .bind(&env.description)
    .bind(Timestamp::now().as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(before)
}

/// Deletes environment `name` inside `tx`; what it was, or `None` if it did not exist.
pub async fn delete(tx: &mut Tx, name: &str) -> Result<Option<Environment>> {
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM environments WHERE name = $1 RETURNING name, egress, secrets, description",
    )
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(from_row).transpose()
}
