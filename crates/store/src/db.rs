//! The database handle: one pool over SQLite or Postgres, chosen by URL.
//!
//! Queries are written once with `$N` placeholders, which both SQLite and Postgres accept, and run
//! through sqlx's `Any` driver. The few statements that differ by dialect branch on [`Dialect`]
//! where they are used (the work-queue claim, the migration lock).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Executor, Transaction};

use crate::error::{Result, StoreError};

/// A write transaction on either backend. Dereferences to the connection it runs on, so queries
/// take `&mut *tx` (or `&mut **tx` through a `&mut Tx`). On SQLite it also holds the process's writer slot (see [`Db::begin`]).
pub struct Tx {
    inner: Transaction<'static, sqlx::Any>,
    dialect: Dialect,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// Makes the transaction's changes durable and visible.
    pub async fn commit(self) -> Result<()> {
        Ok(self.inner.commit().await?)
    }

    /// The database flavour it runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Abandons the transaction's changes.
    pub async fn rollback(self) -> Result<()> {
        Ok(self.inner.rollback().await?)
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// The database flavour behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A pool of connections to the deployment's database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer at a time. Queueing this process's writers here, in order, is far
    /// cheaper than letting them collide in SQLite's busy handler, which sleeps and retries.
    writer: Option<Arc<Mutex<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl Db {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`). A SQLite file and its directory are
    /// created when missing and put in WAL mode. Fails with [`StoreError::Unavailable`] when the
    /// server cannot be reached.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            return Err(StoreError::BadUrl(
                "expected sqlite://PATH or postgres://…".to_owned(),
            ));
        };
        let url = match dialect {
            Dialect::Sqlite => prepare_sqlite_url(url)?,
            Dialect::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?
            .disable_statement_logging();
        let pool_options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300));
        let pool = match dialect {
            Dialect::Sqlite => {
                pool_options
                    .max_connections(4)
                    // A SQLite connection is a file handle: pinging it on every acquire (the
                    // default) costs a round trip to its worker thread for nothing.
                    .test_before_acquire(false)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            // A serving process checkpoints in the background
                            // (`Db::checkpoint`), so commits rarely pay for one; this is
                            // the backstop for processes that do not (CLI, tests).
                            conn.execute("PRAGMA wal_autocheckpoint = 8000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Dialect::Postgres => {
                pool_options
                    .max_connections(16)
                    .connect_with(options)
                    .await?
            }
        };
        if dialect == Dialect::Sqlite {
            enable_wal(&pool).await?;
        }
        let writer = (dialect == Dialect::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Db {
            pool,
            dialect,
            writer,
        })
    }

    /// Moves what the write-ahead log holds into the database file without blocking writers
    /// (SQLite `PRAGMA wal_checkpoint(PASSIVE)`; nothing on Postgres). A serving process calls
    /// it a few times a second, so that commits do not pay for checkpoints.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection pool, for queries outside a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so a transaction that reads before it writes cannot fail half-way with a busy snapshot.
    /// Writers of this process queue for SQLite's write lock in order (other processes, such as
    /// the CLI, still meet them in SQLite's busy handler).
    pub async fn begin(&self) -> Result<Tx> {
        let writer = match &self.writer {
            Some(lock) => Some(Arc::clone(lock).lock_owned().await),
            None => None,
        };
        let inner = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            dialect: self.dialect,
            _writer: writer,
        })
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Puts a SQLite file in WAL mode (a property of the file, set before the pool gets busy).
/// Two processes opening a fresh file at once can both try; SQLite then answers BUSY at once
/// instead of waiting, so retry for a while.
async fn enable_wal(pool: &AnyPool) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match pool.execute("PRAGMA journal_mode = WAL").await {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// SQLITE_BUSY / SQLITE_LOCKED and their extended codes.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            matches!(primary, Some(5 | 6))
        }
        _ => false,
    }
}

/// Makes sure the directory of a SQLite file exists and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create directory {}: {e}", dir.display()))
        })?;
    }
    Ok(match query {
        Some(q) if q.contains("mode=") => url.to_owned(),
        Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
        None => format!("sqlite://{path}?mode=rwc"),
    })
}
