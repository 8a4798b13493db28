//! `/v1/users` and `/v1/invites`: the admin's identity management.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coordinator::{Actor, Page, UserPatch};
use domain::{Id, Role, User};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams, path_id};

/// Query of `GET /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/users` (admin).
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = Page::new(q.before.as_deref(), q.limit)?;
    let users = state.coord.list_users(Actor::User(&user), &page).await?;
    Ok(Json(serde_json::json!({"users": users})))
}

/// Body of `PATCH /v1/users/{user_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// `PATCH /v1/users/{user_id}` (admin): change the role, or disable (revokes tokens, unlinks
/// Telegram, cancels the user's tasks).
pub async fn patch(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<PatchUser>,
) -> Result<Json<User>, ApiError> {
    Actor::User(&user).require_admin()?;
    let user_id = path_id(&user_id, "user")?;
    let patch = UserPatch {
        role: body.role,
        disabled: body.disabled,
    };
    Ok(Json(
        state
            .coord
            .patch_user(Actor::User(&user), &user_id, &patch)
            .await?,
    ))
}

/// Body of `POST /v1/invites`: `{"role","ttl"}` for an invite, `{"user_id","ttl"}` for a link code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    role: Option<Role>,
    user_id: Option<String>,
    /// humantime duration, e.g. `24h`.
    ttl: Option<String>,
}

/// `POST /v1/invites` (admin): 201 `{"code","role","expires_at"}`.
pub async fn create_invite(
    State(state): State<AppState>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<CreateInvite>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let ttl = match body.ttl.as_deref() {
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::unprocessable("invalid_ttl", format!("ttl: {e}")))?,
        None => coordinator::DEFAULT_CODE_TTL,
    };
    let actor = Actor::User(&user);
    let (code, role) = match (body.role, body.user_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "role_or_user_id",
                "give \"role\" for an invite or \"user_id\" for a link code, not both",
            ));
        }
        (None, Some(user_id)) => {
            let user_id = Id::parse(&user_id)
                .map_err(|e| ApiError::unprocessable("invalid_user_id", format!("user_id: {e}")))?;
            state.coord.create_link_code(actor, &user_id, ttl).await?
        }
        (role, None) => {
            let role = role.unwrap_or(Role::Member);
            (state.coord.create_invite(actor, role, ttl).await?, role)
        }
    };
    Ok((StatusCode::CREATED, Json(code_json(&code, role))))
}

/// The JSON shape of an issued code, shared by the API and the CLI.
pub fn code_json(code: &store::invites::IssuedCode, role: Role) -> serde_json::Value {
    serde_json::json!({"code": code.code, "role": role, "expires_at": code.expires_at})
}
