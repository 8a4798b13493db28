//! Schema migrations: one schema, two folders (`migrations/sqlite`, `migrations/postgres`), the
//! same versions in each. Applied at server start and by `agenticai migrate`, inside one
//! transaction that also serialises concurrent migrators.

use crate::db::{Db, Dialect};
use crate::error::Result;
use domain::Timestamp;

/// One schema change, in both dialects.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, oldest first. Add new ones at the end; never edit an applied one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "tasks_updated_index",
        sqlite: include_str!("../migrations/sqlite/0002_tasks_updated_index.sql"),
        postgres: include_str!("../migrations/postgres/0002_tasks_updated_index.sql"),
    },
    Migration {
        version: 3,
        name: "agent_transcripts",
        sqlite: include_str!("../migrations/sqlite/0003_agent_transcripts.sql"),
        postgres: include_str!("../migrations/postgres/0003_agent_transcripts.sql"),
    },
];

/// Advisory-lock key under which Postgres migrators queue up.
const PG_MIGRATION_LOCK: i64 = 0x4147_454e_5449_4341;

impl Db {
    /// Applies every migration not yet applied; returns how many were applied now.
    pub async fn migrate(&self) -> Result<usize> {
        let mut tx = self.begin().await?;
        if self.dialect() == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        let mut count = 0;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            let sql = match self.dialect() {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(Timestamp::now().as_millis())
            .execute(&mut *tx)
            .await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            count += 1;
        }
        tx.commit().await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
    }

    /// Both dialects create the same tables, so queries written once work on either.
    #[test]
    fn both_dialects_create_the_same_tables() {
        fn tables(sql: &str) -> Vec<String> {
            let mut t: Vec<String> = sql
                .lines()
                .filter_map(|l| l.strip_prefix("CREATE TABLE "))
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
                .collect();
            t.sort();
            t
        }
        for m in MIGRATIONS {
            assert_eq!(tables(m.sqlite), tables(m.postgres), "{}", m.name);
        }
    }
}
