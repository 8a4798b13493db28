//! Environments: named bundles of egress hosts and secrets a task may use.

use crate::db::Db;
use crate::error::{Result, StoreError};

/// What an environment grants: egress hosts and secret names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    pub name: String,
    pub egress: Vec<String>,
    pub secrets: Vec<String>,
}

/// The grants of environment `name`, if it exists.
pub async fn grants(db: &Db, name: &str) -> Result<Option<Grants>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT egress, secrets FROM environments WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    row.map(|(egress, secrets)| {
        Ok(Grants {
            name: name.to_owned(),
            egress: serde_json::from_str(&egress).map_err(StoreError::corrupt)?,
            secrets: serde_json::from_str(&secrets).map_err(StoreError::corrupt)?,
        })
    })
    .transpose()
}
