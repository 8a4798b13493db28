//! `/v1/audit-events`: the admin's read of the audit trail, and its verification.

use axum::Json;
use axum::extract::State;
use coordinator::{Actor, CoordError};
use domain::{AuditEvent, Id};
use serde::{Deserialize, Serialize};
use store::audit::{self, AuditFilter};
use store::audit_verify::{self, VerifyReport};

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, QueryParams};

/// Events per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 100;
/// The largest page.
const MAX_LIMIT: i64 = 1000;

/// Query of `GET /v1/audit-events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    task_id: Option<String>,
    /// Events whose actor is this user.
    user_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// Answer of `GET /v1/audit-events`.
#[derive(Debug, Serialize)]
pub struct EventPage {
    events: Vec<AuditEvent>,
    /// The `after_seq` of the next page when this one is full; null at the end.
    next_after_seq: Option<i64>,
}

fn query_id(raw: Option<String>, name: &str) -> Result<Option<Id>, ApiError> {
    raw.map(|s| {
        Id::parse(&s).map_err(|e| ApiError::unprocessable("invalid_query", format!("{name}: {e}")))
    })
    .transpose()
}

/// `GET /v1/audit-events` (admin): events oldest first, filtered by task, actor and type, a page
/// of `limit` (default 100, at most 1000) after `after_seq`.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<EventPage>, ApiError> {
    Actor::User(&user).require_admin()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::unprocessable(
            "invalid_query",
            format!("limit must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let after_seq = q.after_seq.unwrap_or(0);
    if after_seq < 0 {
        return Err(ApiError::unprocessable(
            "invalid_query",
            "after_seq must not be negative",
        ));
    }
    let filter = AuditFilter {
        after_seq,
        task_id: query_id(q.task_id, "task_id")?,
        actor: query_id(q.user_id, "user_id")?,
        kind: q.kind.filter(|k| !k.is_empty()),
    };
    let events = audit::list(state.coord.db(), &filter, limit)
        .await
        .map_err(CoordError::from)?;
    let full = i64::try_from(events.len()).is_ok_and(|n| n == limit);
    let next_after_seq = if full {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(EventPage {
        events,
        next_after_seq,
    }))
}

/// `GET /v1/audit-events/verify` (admin): the same check as `agenticai audit verify`.
pub async fn verify(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<VerifyReport>, ApiError> {
    Actor::User(&user).require_admin()?;
    let report = audit_verify::verify(state.coord.db(), Some((&state.objects, &state.audit_key)))
        .await
        .map_err(CoordError::from)?;
    if !report.ok {
        tracing::error!(
            first_broken_seq = ?report.first_broken_seq,
            reason = report.reason.as_deref().unwrap_or(""),
            "the audit chain does not verify"
        );
    }
    Ok(Json(report))
}
