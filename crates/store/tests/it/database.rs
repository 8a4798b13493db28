//! Test databases: a fresh SQLite file, or a fresh schema on the machine's Postgres, per test.
//!
//! `AGENTICAI_TEST_DATABASE=postgres` (CI's second phase) makes [`TestDb::default_backend`] use
//! Postgres; [`TestDb::postgres`] always does. Each Postgres test gets its own schema, so test
//! binaries running at once never see each other's rows.

use domain::{Id, IdKind, Role, Task, TaskInput, Timestamp, User};
use store::Db;

/// A migrated database that lives as long as the value.
pub struct TestDb {
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
}

fn postgres_base_url() -> String {
    std::env::var("AGENTICAI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl TestDb {
    /// SQLite, or Postgres when `AGENTICAI_TEST_DATABASE=postgres`.
    pub async fn default_backend() -> TestDb {
        match std::env::var("AGENTICAI_TEST_DATABASE").as_deref() {
            Ok("postgres") => TestDb::postgres().await,
            _ => TestDb::sqlite().await,
        }
    }

    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        TestDb {
            db,
            _dir: Some(dir),
        }
    }

    /// A fresh schema on the machine's Postgres.
    pub async fn postgres() -> TestDb {
        let base = postgres_base_url();
        let schema = format!(
            "t_{}",
            Id::generate(IdKind::Task)
                .unwrap()
                .as_str()
                .replace('-', "_")
        );
        let admin = Db::connect(&base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .unwrap();
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        TestDb { db, _dir: None }
    }
}

/// Creates a user with `role`.
pub async fn user(db: &Db, name: &str, role: Role) -> User {
    let mut tx = db.begin().await.unwrap();
    let user = store::users::insert(&mut tx, name, role).await.unwrap();
    tx.commit().await.unwrap();
    user
}

/// Creates a QUEUED command task for `user`.
pub async fn queued_task(db: &Db, user: &User, command: &str) -> Task {
    let task = Task::queued(
        Id::generate(IdKind::Task).unwrap(),
        user.user_id.clone(),
        TaskInput::Command(command.to_owned()),
        None,
        Timestamp::now(),
    );
    let mut tx = db.begin().await.unwrap();
    store::tasks::insert(&mut tx, &store::tasks::TaskRecord::undecided(task.clone()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    task
}
