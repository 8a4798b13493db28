//! The coordinator's errors: each says what the caller did wrong (or that the system cannot
//! answer now) in a way every channel can show. The HTTP layer maps them to status codes.

use store::StoreError;

/// Why a coordinator operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, or not the caller's to see (no existence leak).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (terminal task, existing org, …).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Well-formed, but breaks a rule (bounds, unknown names, empty text).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The caller used up a quota (e.g. tasks per hour); try again later.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The database (or another dependency) cannot be reached; try again later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours; details are logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl CoordError {
    /// A rule broken by valid input.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> CoordError {
        CoordError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// A conflict with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> CoordError {
        CoordError::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CoordError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => CoordError::Unavailable(m),
            StoreError::Conflict(detail) => {
                // The database's wording names constraints: log it, do not show it.
                tracing::info!(%detail, "write conflict");
                CoordError::conflict(
                    "conflict",
                    "the change conflicts with a concurrent one; try again",
                )
            }
            StoreError::NotFound(_) => CoordError::NotFound("record"),
            other => CoordError::Internal(other.to_string()),
        }
    }
}

impl From<store::tasks::SetStatusError> for CoordError {
    fn from(e: store::tasks::SetStatusError) -> Self {
        use store::tasks::SetStatusError;
        match e {
            SetStatusError::NotFound => CoordError::NotFound("task"),
            SetStatusError::Illegal(t) => CoordError::conflict("illegal_transition", t.to_string()),
            SetStatusError::Store(s) => s.into(),
        }
    }
}

/// Result of a coordinator operation.
pub type Result<T, E = CoordError> = std::result::Result<T, E>;
