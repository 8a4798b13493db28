//! Environments over HTTP (CONTRACT.md "Environment"): everyone authenticated reads, admins write.

use axum::Json;
use axum::extract::{Path, State};
use coordinator::{Actor, EnvironmentSpec};
use serde::Deserialize;
use store::environments::Environment;

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody};

/// `GET /v1/environments`: every environment, most recently changed first.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let environments = state.coord.list_environments(Actor::User(&user)).await?;
    Ok(Json(serde_json::json!({"environments": environments})))
}

/// `GET /v1/environments/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Environment>, ApiError> {
    Ok(Json(
        state
            .coord
            .get_environment(Actor::User(&user), &name)
            .await?,
    ))
}

/// Body of `PUT /v1/environments/{name}`: an Environment; `name`, when given, must be the one
/// in the path; lists left out are empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentBody {
    name: Option<String>,
    egress: Option<Vec<String>>,
    secrets: Option<Vec<String>>,
    description: Option<String>,
}

/// `PUT /v1/environments/{name}` (admin): creates or replaces it; 200 with it as stored.
pub async fn put(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<EnvironmentBody>,
) -> Result<Json<Environment>, ApiError> {
    if let Some(body_name) = &body.name
        && *body_name != name
    {
        return Err(ApiError::unprocessable(
            "name_mismatch",
            "the name in the body differs from the one in the path",
        ));
    }
    let spec = EnvironmentSpec {
        egress: body.egress.unwrap_or_default(),
        secrets: body.secrets.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
    };
    Ok(Json(
        state
            .coord
            .put_environment(Actor::User(&user), &name, spec)
            .await?,
    ))
}

/// `DELETE /v1/environments/{name}` (admin): 200 with the environment as it was; 404 unknown.
pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Environment>, ApiError> {
    Ok(Json(
        state
            .coord
            .delete_environment(Actor::User(&user), &name)
            .await?,
    ))
}
