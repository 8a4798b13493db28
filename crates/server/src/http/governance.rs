//! Approvals, bypass, org policy, emergency controls and `policy explain` over HTTP.

use axum::Json;
use axum::extract::{Path, State};
use coordinator::{Actor, Emergency, EmergencyOutcome, Explanation, Page};
use domain::{Approval, ApprovalDecision, BypassMode, OrgPolicy, RiskTier};
use serde::Deserialize;
use store::policy::PolicyChange;

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams, path_id};

/// Query of `GET /v1/approvals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    pending: Option<bool>,
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/approvals`: the caller's own (admins: all), newest first.
pub async fn list_approvals(
    State(state): State<AppState>,
    Caller(user): Caller,
    QueryParams(q): QueryParams<ApprovalQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = Page::new(q.before.as_deref(), q.limit)?;
    let approvals = state
        .coord
        .list_approvals(&user, q.pending.unwrap_or(false), &page)
        .await?;
    Ok(Json(serde_json::json!({"approvals": approvals})))
}

/// Body of `POST /v1/approvals/{approval_id}/decision`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    decision: ApprovalDecision,
}

/// `POST /v1/approvals/{approval_id}/decision`.
pub async fn decide(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(approval_id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Json<Approval>, ApiError> {
    let approval_id = path_id(&approval_id, "approval")?;
    Ok(Json(
        state
            .coord
            .decide_approval(&user, &approval_id, body.decision)
            .await?,
    ))
}

/// Body of `POST /v1/users/{user_id}/bypass-mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BypassBody {
    mode: BypassMode,
}

/// `POST /v1/users/{user_id}/bypass-mode`.
pub async fn set_bypass(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<BypassBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user_id = path_id(&user_id, "user")?;
    let mode = state.coord.set_bypass(&user, &user_id, body.mode).await?;
    Ok(Json(serde_json::json!({"user_id": user_id, "mode": mode})))
}

/// `GET /v1/org/policy` (admin).
pub async fn get_policy(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<OrgPolicy>, ApiError> {
    Ok(Json(state.coord.org_policy(&user).await?))
}

/// Body of `PUT /v1/org/policy`: any subset of the fields (`version` is the server's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    bypass_allowed: Option<bool>,
    bypass_max_tier: Option<RiskTier>,
    mutations_paused: Option<bool>,
    l3_requires_admin: Option<bool>,
    approval_ttl_seconds: Option<i64>,
}

/// `PUT /v1/org/policy` (admin).
pub async fn put_policy(
    State(state): State<AppState>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<PolicyBody>,
) -> Result<Json<OrgPolicy>, ApiError> {
    let change = PolicyChange {
        bypass_allowed: body.bypass_allowed,
        bypass_max_tier: body.bypass_max_tier,
        mutations_paused: body.mutations_paused,
        l3_requires_admin: body.l3_requires_admin,
        approval_ttl_seconds: body.approval_ttl_seconds,
    };
    Ok(Json(state.coord.update_org_policy(&user, &change).await?))
}

/// Body of `POST /v1/org/emergency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyBody {
    action: Emergency,
}

/// `POST /v1/org/emergency` (admin).
pub async fn emergency(
    State(state): State<AppState>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<EmergencyBody>,
) -> Result<Json<EmergencyOutcome>, ApiError> {
    Ok(Json(state.coord.emergency(&user, body.action).await?))
}

/// Body of `POST /v1/policy/explain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    command: String,
    user_id: Option<String>,
    environment: Option<String>,
}

/// `POST /v1/policy/explain`: members about themselves, admins about anyone.
pub async fn explain(
    State(state): State<AppState>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<ExplainBody>,
) -> Result<Json<Explanation>, ApiError> {
    if body.command.len() > domain::MAX_INPUT_BYTES {
        return Err(ApiError::unprocessable(
            "input_too_long",
            "the command is longer than 64 KiB",
        ));
    }
    let user_id = body
        .user_id
        .map(|u| domain::Id::parse(&u))
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_user_id", format!("user_id: {e}")))?;
    Ok(Json(
        state
            .coord
            .explain(
                Actor::User(&user),
                user_id.as_ref(),
                &body.command,
                body.environment.as_deref(),
            )
            .await?,
    ))
}
