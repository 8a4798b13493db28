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

/// Query of `GET /v1/tasks/{task_id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Resume after this event number (also taken from the `Last-Event-ID` header).
    after: Option<i64>,
}

/// `GET /v1/tasks/{task_id}/events`: Server-Sent Events. First the task as it is now (event
/// `task`), then every stored event after `after`/`Last-Event-ID` and the live ones (`id` is the
/// event number, `event` its kind, `data` the TaskEvent JSON) until the task is finished; then
/// the final task (event `task`) and the stream ends. A comment every 15 s keeps proxies from
/// closing an idle stream.
pub async fn events(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(task_id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Response, ApiError> {
    let task_id = path_id(&task_id, "task")?;
    let after = match (q.after, headers.get("last-event-id")) {
        (Some(n), _) => n,
        (None, Some(v)) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_last_event_id", "Last-Event-ID must be a number")
            })?,
        (None, None) => 0,
    };
    let watch = state.coord.watch_task(&user, &task_id, after).await?;
    let snapshot = watch.current().await?;
    let stream = futures::stream::unfold(
        (watch, Some(snapshot), false),
        |(mut watch, snapshot, done)| async move {
            if let Some(task) = snapshot {
                return Some((task_frame(&task), (watch, None, done)));
            }
            if done {
                return None;
            }
            match watch.next_batch().await {
                Ok(Some(events)) => {
                    let frames: String = events.iter().map(event_frame).collect();
                    Some((frames, (watch, None, false)))
                }
                Ok(None) => {
                    let last = match watch.current().await {
                        Ok(task) => task_frame(&task),
                        Err(_) => String::new(),
                    };
                    Some((last, (watch, None, true)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "task event stream ended early");
                    None
                }
            }
        },
    );
    let body = futures::StreamExt::map(stream, Ok::<_, std::convert::Infallible>);
    let keepalive = sse_with_keepalive(body);
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(keepalive),
    )
        .into_response())
}

/// One SSE frame carrying the whole task.
fn task_frame(task: &domain::Task) -> String {
    format!(
        "event: task\ndata: {}\n\n",
        serde_json::to_string(task).unwrap_or_else(|_| "{}".to_owned())
    )
}

/// One SSE frame per task event. Event kinds are fixed words of ours, and JSON never contains a
/// raw newline, so nothing in a payload can break the framing.
fn event_frame(event: &domain::TaskEvent) -> String {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.seq,
        event.kind,
        serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned())
    )
}

/// Interleaves an SSE comment every 15 s of silence.
fn sse_with_keepalive(
    frames: impl futures::Stream<Item = Result<String, std::convert::Infallible>> + Send + 'static,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> + Send + 'static {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(15);
    let frames = Box::pin(frames);
    futures::stream::unfold(frames, |mut frames| async move {
        match tokio::time::timeout(EVERY, futures::StreamExt::next(&mut frames)).await {
            Ok(Some(item)) => Some((item, frames)),
            Ok(None) => None,
            Err(_) => Some((Ok(": keep-alive\n\n".to_owned()), frames)),
        }
    })
}
