//! The deployment's one organisation and its policy row.

use domain::{Id, IdKind, Timestamp};
use sqlx::Row;

use crate::db::{Db, Tx};
use crate::error::{Result, StoreError};
use crate::rows;

/// The organisation this deployment serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub org_id: Id,
    pub name: String,
    pub created_at: Timestamp,
}

/// Creates the organisation with the default policy. Fails with [`StoreError::Conflict`] when one
/// exists already (also when two processes race: the singleton constraint lets one win).
pub async fn insert(tx: &mut Tx, name: &str) -> Result<Org> {
    let org_id = rows::fresh_id(IdKind::Org)?;
    let now = Timestamp::now();
    let inserted = sqlx::query(
        "INSERT INTO orgs (org_id, singleton, name, created_at) VALUES ($1, 1, $2, $3)
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(org_id.as_str())
    .bind(name)
    .bind(now.as_millis())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::Conflict(
            "the organisation exists already".to_owned(),
        ));
    }
    sqlx::query("INSERT INTO org_policy (org_id, updated_at) VALUES ($1, $2)")
        .bind(org_id.as_str())
        .bind(now.as_millis())
        .execute(&mut **tx)
        .await?;
    Ok(Org {
        org_id,
        name: name.to_owned(),
        created_at: now,
    })
}

/// The organisation, if `org init` has run.
pub async fn get(db: &Db) -> Result<Option<Org>> {
    let row = sqlx::query("SELECT org_id, name, created_at FROM orgs")
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| {
        Ok(Org {
            org_id: rows::id(&row, "org_id")?,
            name: row.try_get("name")?,
            created_at: rows::time(&row, "created_at")?,
        })
    })
    .transpose()
}
