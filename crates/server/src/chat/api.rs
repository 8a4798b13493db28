//! The few HTTP API calls `agenticai chat` makes, with errors a person can act on.
//!
//! The token travels only in the `Authorization` header and never appears in a message. Every
//! text the server sends back (error messages included) is sanitised before it can be printed.

use std::fmt;
use std::time::Duration;

use domain::{Id, Task};
use serde_json::{Value, json};

use super::sanitize::sanitize;
use crate::config::Secret;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a JSON call may take, answer included (the event stream has no such limit).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at creating a task when the server cannot be reached; the `Idempotency-Key` makes a
/// repeat safe (the server returns the task the first attempt created, if it got that far).
const CREATE_ATTEMPTS: u32 = 3;

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No answer: the server is down, the address is wrong, or the connection broke.
    Unreachable(String),
    /// 401: the token is missing, wrong, expired or revoked, or its user is disabled.
    Unauthorized,
    /// Any other error answer, with the API's error code and message.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The API's `error.code`.
        code: String,
        /// The API's `error.message`, sanitised.
        message: String,
    },
    /// An answer that is not what the API promises (another program on that address?).
    Unexpected(String),
}

impl ApiError {
    /// Whether a later attempt may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable(_) => true,
            ApiError::Refused { status, .. } => matches!(status, 502..=504),
            ApiError::Unauthorized | ApiError::Unexpected(_) => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unreachable(why) => f.write_str(&sanitize(why)),
            ApiError::Unauthorized => f.write_str(
                "the server refused the token (401): check AGENTICAI_TOKEN; \
                 `agenticai token create --user USER_ID` makes a new one",
            ),
            ApiError::Refused {
                status,
                code,
                message,
            } => write!(f, "{message} ({status} {code})"),
            ApiError::Unexpected(why) => {
                write!(f, "unexpected answer from the server: {}", sanitize(why))
            }
        }
    }
}

/// A client of one server, authenticated by one token.
#[derive(Debug, Clone)]
pub struct Api {
    /// The HTTP client (connection pool).
    http: reqwest::Client,
    /// The server's URL, without trailing `/`.
    base: String,
    /// The API token.
    token: Secret,
}

impl Api {
    /// A client of the server at `base` (`http://…` or `https://…`) using `token`.
    pub fn new(base: &str, token: Secret) -> Result<Api, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("agenticai-chat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The server's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks that the server answers and takes the token (lists one task).
    pub async fn check(&self) -> Result<(), ApiError> {
        let request = self.http.get(self.url("/v1/tasks?limit=1"));
        let body = self.call(request).await?;
        match body.get("tasks") {
            Some(Value::Array(_)) => Ok(()),
            _ => Err(ApiError::Unexpected(format!(
                "{} did not answer like an agenticai server",
                self.base
            ))),
        }
    }

    /// `POST /v1/tasks {"prompt": prompt}`: the new task (or, for a repeated attempt, the one the
    /// first attempt created).
    pub async fn create_task(&self, prompt: &str) -> Result<Task, ApiError> {
        let key = idempotency_key();
        let body = json!({ "prompt": prompt });
        let mut attempt = 1;
        loop {
            let request = self
                .http
                .post(self.url("/v1/tasks"))
                .header("Idempotency-Key", &key)
                .json(&body);
            match self.call(request).await {
                Ok(task) => return parse_task(task),
                Err(e @ ApiError::Unreachable(_)) if attempt < CREATE_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "creating the task again");
                    tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST /v1/tasks/{task_id}/cancel`.
    pub async fn cancel(&self, task_id: &Id) -> Result<Task, ApiError> {
        let request = self
            .http
            .post(self.url(&format!("/v1/tasks/{task_id}/cancel")));
        parse_task(self.call(request).await?)
    }

    /// `POST /v1/approvals/{approval_id}/decision` with `APPROVE` or `DENY`.
    pub async fn decide(&self, approval_id: &Id, approve: bool) -> Result<(), ApiError> {
        let decision = if approve { "APPROVE" } else { "DENY" };
        let request = self
            .http
            .post(self.url(&format!("/v1/approvals/{approval_id}/decision")))
            .json(&json!({ "decision": decision }));
        self.call(request).await.map(drop)
    }

    /// `GET /v1/tasks/{task_id}/events`, resuming after `last_event_id` when given: the open
    /// stream, its body still to be read.
    pub async fn events(
        &self,
        task_id: &Id,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .http
            .get(self.url(&format!("/v1/tasks/{task_id}/events")))
            .bearer_auth(self.token.expose())
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response).await);
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(ApiError::Unexpected(format!(
                "the task's events came as {:?}, not text/event-stream",
                sanitize(content_type)
            )));
        }
        Ok(response)
    }

    /// Sends a JSON call with the token; the JSON body of a success, else the error.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let response = request
            .bearer_auth(self.token.expose())
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response).await);
        }
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Unexpected(format!("the answer is not JSON: {e}")))
    }

    /// The error an unsuccessful answer stands for.
    async fn refusal(&self, response: reqwest::Response) -> ApiError {
        let status = response.status().as_u16();
        if status == 401 {
            return ApiError::Unauthorized;
        }
        let body: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let field = |key: &str| {
            body.get("error")
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .map(|s| sanitize(s).into_owned())
        };
        ApiError::Refused {
            status,
            code: field("code").unwrap_or_else(|| "http_error".to_owned()),
            message: field("message").unwrap_or_else(|| format!("the server answered {status}")),
        }
    }

    /// The error of a request that got no answer.
    fn unreachable(&self, error: &reqwest::Error) -> ApiError {
        ApiError::Unreachable(format!(
            "cannot reach the server at {}: {}",
            self.base,
            error_chain(error)
        ))
    }

    /// The full URL of `path`.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The answer as a Task.
fn parse_task(body: Value) -> Result<Task, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::Unexpected(format!("the answer is not a task: {e}")))
}

/// A key for one request's `Idempotency-Key`: the process and the time in nanoseconds, unique
/// for one user (keys are per user on the server).
fn idempotency_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("chat-{}-{nanos}", std::process::id())
}

/// An error and its causes, `: `-joined, without the URL reqwest puts in its own message.
pub(super) fn error_chain(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    sanitize(&text).into_owned()
}
