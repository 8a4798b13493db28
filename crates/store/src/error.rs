//! Errors of the database layer.

/// What went wrong talking to the database.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, or the connection broke. Callers answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness or other constraint refused the change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored value could not be understood (corrupt row, unknown enum value).
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// The database URL is malformed or names an unsupported database.
    #[error("bad database URL: {0}")]
    BadUrl(String),
    /// Anything else the database reported.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::RowNotFound => StoreError::NotFound(e.to_string()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if is_connection_failure(db.code().as_deref()) => {
                StoreError::Unavailable(db.message().to_owned())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Postgres SQLSTATE classes that mean "the server is going away", not "your query is wrong":
/// 08 connection exception, 57P admin shutdown / crash, 53 insufficient resources.
fn is_connection_failure(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c.starts_with("53"))
}

impl StoreError {
    /// A stored value that does not parse.
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(what.to_string())
    }
}

/// Result of a database operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
