//! Small conversions between database columns and domain values, in one place.

use std::str::FromStr;

use domain::{Id, IdKind, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError};

/// A fresh random id; fails only when the OS has no randomness.
pub(crate) fn fresh_id(kind: IdKind) -> Result<Id> {
    Id::generate(kind).map_err(|e| StoreError::Other(format!("no randomness available: {e}")))
}

/// A column holding an id.
pub(crate) fn id(row: &AnyRow, col: &str) -> Result<Id> {
    let s: String = row.try_get(col)?;
    Id::parse(&s).map_err(|e| StoreError::corrupt(format!("{col}: {e}")))
}

/// A nullable column holding an id.
pub(crate) fn opt_id(row: &AnyRow, col: &str) -> Result<Option<Id>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Id::parse(&s).map_err(|e| StoreError::corrupt(format!("{col}: {e}"))))
        .transpose()
}

/// A column holding a wire-named enum.
pub(crate) fn parsed<T: FromStr<Err = String>>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|e: String| StoreError::corrupt(format!("{col}: {e}")))
}

/// A nullable column holding a wire-named enum.
pub(crate) fn opt_parsed<T: FromStr<Err = String>>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        s.parse()
            .map_err(|e: String| StoreError::corrupt(format!("{col}: {e}")))
    })
    .transpose()
}

/// A column holding milliseconds since the epoch.
pub(crate) fn time(row: &AnyRow, col: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_millis(row.try_get(col)?))
}

/// A nullable time column.
pub(crate) fn opt_time(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    let v: Option<i64> = row.try_get(col)?;
    Ok(v.map(Timestamp::from_millis))
}

/// A 0/1 flag column.
pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    let v: i64 = row.try_get(col)?;
    Ok(v != 0)
}

/// Most rows one multi-row insert carries. sqlx-sqlite looks every parameter up by name, which is
/// linear in the parameter count, so very large statements get slower per row; past this size
/// inserts are split (see docs/performance.md).
pub(crate) const MAX_ROWS_PER_INSERT: usize = 64;

/// `($1, $2), ($3, $4)`-style placeholders for a multi-row `VALUES` of `rows` rows of `cols`
/// columns. Only numbers go into the SQL; values are bound.
pub(crate) fn values_placeholders(rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(
            super::values_placeholders(2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(super::values_placeholders(1, 1), "($1)");
    }
}
