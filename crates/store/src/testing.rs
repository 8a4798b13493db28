//! Databases for the tests of the crates above `store` (feature `testing`, enabled only in their
//! dev-dependencies): SQLite in a directory, or with `AGENTICAI_TEST_DATABASE=postgres` a fresh
//! schema on `AGENTICAI_TEST_POSTGRES_URL` (default the machine's server, database `test`), so
//! test binaries running at once never share tables.

use std::path::Path;

use crate::Db;

/// A migrated database of its own for one test. Panics on failure (it is test setup).
pub async fn fresh_database(dir: &Path) -> Db {
    let url = match std::env::var("AGENTICAI_TEST_DATABASE").as_deref() {
        Ok("postgres") => postgres_schema_url().await,
        _ => format!("sqlite://{}/test.db", dir.display()),
    };
    let db = Db::connect(&url)
        .await
        .expect("connect to the test database");
    db.migrate().await.expect("migrate the test database");
    db
}

/// The URL of a new, empty schema on the test Postgres server.
async fn postgres_schema_url() -> String {
    let base = std::env::var("AGENTICAI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("t_{}", domain::random_string(20).expect("randomness"));
    let admin = Db::connect(&base)
        .await
        .expect("connect to the test Postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .expect("create a test schema");
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
