//! Pagination of lists (CONTRACT.md: newest first, `limit` default 50 max 500, `before` an id).

use domain::Id;

use crate::error::{CoordError, Result};

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items older than this id.
    pub before: Option<Id>,
    /// At most this many items.
    pub limit: i64,
}

impl Page {
    /// Default page size.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: i64 = 500;

    /// Validates raw query parameters.
    pub fn new(before: Option<&str>, limit: Option<i64>) -> Result<Page> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(CoordError::invalid(
                "invalid_limit",
                format!("limit must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        let before = before
            .map(|b| {
                Id::parse(b)
                    .map_err(|e| CoordError::invalid("invalid_cursor", format!("before: {e}")))
            })
            .transpose()?;
        Ok(Page { before, limit })
    }
}

impl Default for Page {
    fn default() -> Self {
        Page {
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}
