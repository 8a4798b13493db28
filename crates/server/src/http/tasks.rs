//! `/v1/tasks`: create, list, read, cancel.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use coordinator::{NewTask, Page, TaskQuery};
use domain::{TaskInput, TaskStatus};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, QueryParams, path_id};
use crate::config::Feature;

/// Body of `POST /v1/tasks`: exactly one of `command` and `prompt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    command: Option<String>,
    prompt: Option<String>,
    environment: Option<String>,
}

/// `POST /v1/tasks`: 202 with the new task, or 200 with the task an earlier request with the
/// same `Idempotency-Key` created.
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateTask>,
) -> Result<Response, ApiError> {
    let input = match (body.command, body.prompt) {
        (Some(c), None) => {
            state.require(Feature::Shell)?;
            TaskInput::Command(c)
        }
        (None, Some(p)) => {
            state.require(Feature::Agent)?;
            TaskInput::Prompt(p)
        }
        _ => {
            return Err(ApiError::unprocessable(
                "command_or_prompt",
                "give exactly one of \"command\" and \"prompt\"",
            ));
        }
    };
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::unprocessable(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be visible ASCII",
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let (task, created) = state
        .coord
        .create_task(
            &user,
            NewTask {
                input,
                environment: body.environment,
                idempotency_key,
            },
        )
        .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(task)).into_response())
}

/// Query of `GET /v1/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    user_id: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/tasks`: the caller's tasks (admins: everyone's), newest first.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = q
        .status
        .map(|s| s.parse::<TaskStatus>())
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_status", e))?;
    let user_id = q
        .user_id
        .map(|u| domain::Id::parse(&u))
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_user_id", format!("user_id: {e}")))?;
    let query = TaskQuery {
        status,
        user_id,
        page: Page::new(q.before.as_deref(), q.limit)?,
    };
    let tasks = state.coord.list_tasks(&user, &query).await?;
    Ok(Json(serde_json::json!({"tasks": tasks})))
}

/// `GET /v1/tasks/{task_id}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(task_id): Path<String>,
) -> Result<Json<domain::Task>, ApiError> {
    let task_id = path_id(&task_id, "task")?;
    Ok(Json(state.coord.get_task(&user, &task_id).await?))
}

/// `POST /v1/tasks/{task_id}/cancel`: 409 if the task already finished.
pub async fn cancel(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(task_id): Path<String>,
) -> Result<Json<domain::Task>, ApiError> {
    let task_id = path_id(&task_id, "task")?;
    Ok(Json(state.coord.cancel_task(&user, &task_id).await?))
}
