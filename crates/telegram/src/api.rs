//! The Bot API client: JSON over HTTPS to `{base}/bot{token}/{method}`.
//!
//! * Every request has a timeout (long polls: their `timeout` plus a margin).
//! * 429 (honouring `retry_after`, up to a cap), 5xx, malformed answers and transport errors are
//!   retried a few times with backoff; other 4xx are not.
//! * The token never appears in an error, a log line or `Debug` output: reqwest errors are
//!   stripped of their URL and every message we build is scrubbed of the token.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::outgoing::{Action, Button, Outgoing};

/// Extra time a long-poll request may take beyond its `timeout`.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

/// How requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per call, the first included.
    pub attempts: u32,
    /// The first backoff after a 5xx or transport error; doubled each time.
    pub base_delay: Duration,
    /// The longest backoff between tries.
    pub max_delay: Duration,
    /// A 429 asking to wait longer than this is returned to the caller instead of waited out.
    pub max_retry_after: Duration,
    /// Timeout of an ordinary request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a Bot API call failed. Never contains the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Telegram refused the request (4xx other than 429): retrying will not help.
    #[error("{method}: Telegram refused the request ({code}): {description}")]
    Refused {
        method: String,
        code: i64,
        description: String,
    },
    /// Still rate-limited after retrying (or asked to wait longer than we wait in place).
    #[error("{method}: rate-limited by Telegram, retry after {}s", retry_after.as_secs())]
    RateLimited {
        method: String,
        retry_after: Duration,
    },
    /// Telegram answered 5xx (or a malformed body) on every try.
    #[error("{method}: Telegram server error: {message}")]
    Server { method: String, message: String },
    /// The request did not complete (connection, timeout) on any try.
    #[error("{method}: cannot reach the Bot API: {message}")]
    Transport { method: String, message: String },
}

impl ApiError {
    /// Whether retrying later cannot help (the chat is gone, the bot was blocked, bad request).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ApiError::Refused { .. })
    }

    /// How long Telegram asked us to wait, for a rate-limit error.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Telegram's description of a refusal.
    pub fn description(&self) -> Option<&str> {
        match self {
            ApiError::Refused { description, .. } => Some(description),
            _ => None,
        }
    }
}

/// What the bot is (`getMe`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BotInfo {
    pub id: i64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
}

/// A client of one bot. Cheap to clone.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("base_url", &self.base)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// One try's outcome, before retry decisions.
enum Attempt {
    Ok(Value),
    Refused(i64, String),
    RateLimited(Duration),
    Transient(String, bool /* transport */),
}

/// The body of a request.
enum Body<'a> {
    Json(&'a Value),
    Multipart { boundary: String, bytes: Vec<u8> },
}

impl BotApi {
    /// A client for the bot with `token` at `base_url` (e.g. `https://api.telegram.org`).
    pub fn new(base_url: &str, token: String) -> BotApi {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            // Building fails only when the TLS backend cannot initialise; fall back to defaults
            // rather than panic (a panic message could be logged with context).
            .unwrap_or_else(|_| reqwest::Client::new());
        BotApi {
            http,
            base: Arc::from(base_url.trim_end_matches('/')),
            token: Arc::from(token),
            retry: RetryPolicy::default(),
        }
    }

    /// The same client with another retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> BotApi {
        self.retry = retry;
        self
    }

    /// The base URL (without the token).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `getMe`: checks the token.
    pub async fn get_me(&self) -> Result<BotInfo, ApiError> {
        self.call_as("getMe", &json!({})).await
    }

    /// `getUpdates` (long poll up to `timeout_secs`): the raw updates, to be read leniently with
    /// [`Update::parse`](crate::update::Update::parse).
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout_secs: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let body = json!({"offset": offset, "timeout": timeout_secs, "limit": 100});
        let timeout = Duration::from_secs(timeout_secs) + LONG_POLL_MARGIN;
        let result = self
            .call_with("getUpdates", Body::Json(&body), timeout)
            .await?;
        match result {
            Value::Array(updates) => Ok(updates),
            _ => Err(ApiError::Server {
                method: "getUpdates".to_owned(),
                message: "result is not a list".to_owned(),
            }),
        }
    }

    /// `setWebhook` with the secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<(), ApiError> {
        let body = json!({
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": ["message", "callback_query"],
        });
        self.call("setWebhook", &body).await.map(drop)
    }

    /// `deleteWebhook` (before long polling; pending updates are kept).
    pub async fn delete_webhook(&self) -> Result<(), ApiError> {
        self.call("deleteWebhook", &json!({"drop_pending_updates": false}))
            .await
            .map(drop)
    }

    /// `sendMessage` with `parse_mode=HTML`: the new message's id.
    pub async fn send_message(
        &self,
        chat_id: i64,
        html: &str,
        buttons: &[Vec<Button>],
    ) -> Result<i64, ApiError> {
        let mut body = json!({
            "chat_id": chat_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        add_keyboard(&mut body, buttons);
        let message = self.call("sendMessage", &body).await?;
        message_id("sendMessage", &message)
    }

    /// `editMessageText`; "message is not modified" counts as success. Without buttons, the
    /// message's keyboard is removed.
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        html: &str,
        buttons: &[Vec<Button>],
    ) -> Result<(), ApiError> {
        let mut body = json!({
            "chat_id": chat_id,
            "message_id": message_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        add_keyboard(&mut body, buttons);
        match self.call("editMessageText", &body).await {
            Ok(_) => Ok(()),
            Err(ApiError::Refused { description, .. })
                if description.contains("message is not modified") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `answerCallbackQuery` with a short notice (empty: none).
    pub async fn answer_callback_query(&self, id: &str, text: &str) -> Result<(), ApiError> {
        let mut body = json!({"callback_query_id": id});
        if !text.is_empty() {
            body["text"] = Value::String(text.to_owned());
        }
        self.call("answerCallbackQuery", &body).await.map(drop)
    }

    /// `setMyCommands`: the command menu, as `(command without '/', description)`.
    pub async fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<(), ApiError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(c, d)| json!({"command": c.trim_start_matches('/'), "description": d}))
            .collect();
        self.call("setMyCommands", &json!({"commands": list}))
            .await
            .map(drop)
    }

    /// `sendDocument` of a text file (multipart upload): the new message's id.
    pub async fn send_document(
        &self,
        chat_id: i64,
        file_name: &str,
        contents: &str,
        caption_html: &str,
    ) -> Result<i64, ApiError> {
        let boundary = format!(
            "agenticai{}",
            domain::random_string(24).unwrap_or_else(|_| "boundary0a1b2c3d4e5f".to_owned())
        );
        let mut fields = vec![("chat_id", chat_id.to_string())];
        if !caption_html.is_empty() {
            fields.push(("caption", caption_html.to_owned()));
            fields.push(("parse_mode", "HTML".to_owned()));
        }
        let bytes = multipart(&boundary, &fields, file_name, contents.as_bytes());
        let message = self
            .call_with(
                "sendDocument",
                Body::Multipart { boundary, bytes },
                self.retry.request_timeout * 2,
            )
            .await?;
        message_id("sendDocument", &message)
    }

    /// Performs one outgoing message: the `message_id` for messages Telegram creates
    /// (`sendMessage`, `sendDocument`).
    pub async fn execute(&self, out: &Outgoing) -> Result<Option<i64>, ApiError> {
        match &out.action {
            Action::SendMessage { html, buttons } => self
                .send_message(out.chat_id, html, buttons)
                .await
                .map(Some),
            Action::EditMessageText {
                message_id,
                html,
                buttons,
            } => self
                .edit_message_text(out.chat_id, *message_id, html, buttons)
                .await
                .map(|()| None),
            Action::AnswerCallbackQuery {
                callback_query_id,
                text,
            } => self
                .answer_callback_query(callback_query_id, text)
                .await
                .map(|()| None),
            Action::SendDocument {
                file_name,
                contents,
                caption_html,
            } => self
                .send_document(out.chat_id, file_name, contents, caption_html)
                .await
                .map(Some),
        }
    }

    /// Calls `method` with a JSON body: its `result`.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        self.call_with(method, Body::Json(body), self.retry.request_timeout)
            .await
    }

    async fn call_as<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
    ) -> Result<T, ApiError> {
        let value = self.call(method, body).await?;
        serde_json::from_value(value).map_err(|e| ApiError::Server {
            method: method.to_owned(),
            message: format!("unexpected result: {e}"),
        })
    }

    async fn call_with(
        &self,
        method: &str,
        body: Body<'_>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let attempts = self.retry.attempts.max(1);
        let mut delay = self.retry.base_delay;
        let mut last = None;
        for attempt in 1..=attempts {
            let wait = match self.attempt(method, &body, timeout).await {
                Attempt::Ok(v) => return Ok(v),
                Attempt::Refused(code, description) => {
                    return Err(ApiError::Refused {
                        method: method.to_owned(),
                        code,
                        description: self.scrub(&description),
                    });
                }
                Attempt::RateLimited(retry_after) => {
                    let err = ApiError::RateLimited {
                        method: method.to_owned(),
                        retry_after,
                    };
                    if retry_after > self.retry.max_retry_after {
                        return Err(err);
                    }
                    last = Some(err);
                    retry_after
                }
                Attempt::Transient(message, transport) => {
                    let message = self.scrub(&message);
                    last = Some(if transport {
                        ApiError::Transport {
                            method: method.to_owned(),
                            message,
                        }
                    } else {
                        ApiError::Server {
                            method: method.to_owned(),
                            message,
                        }
                    });
                    let d = delay;
                    delay = (delay * 2).min(self.retry.max_delay);
                    d
                }
            };
            if attempt < attempts {
                tracing::debug!(
                    method,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "Bot API call failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
        }
        Err(last.unwrap_or_else(|| ApiError::Transport {
            method: method.to_owned(),
            message: "no attempt made".to_owned(),
        }))
    }

    async fn attempt(&self, method: &str, body: &Body<'_>, timeout: Duration) -> Attempt {
        let url = format!("{}/bot{}/{}", self.base, self.token, method);
        let request = self.http.post(url).timeout(timeout);
        let request = match body {
            Body::Json(v) => request.json(v),
            Body::Multipart { boundary, bytes } => request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(bytes.clone()),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(describe(e), true),
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Transient(describe(e), true),
        };
        classify(status, &bytes)
    }

    /// Removes the token from a message (defence in depth: Telegram descriptions and transport
    /// errors should never contain it).
    fn scrub(&self, message: &str) -> String {
        if self.token.is_empty() {
            message.to_owned()
        } else {
            message.replace(&*self.token, "[redacted]")
        }
    }
}

/// A reqwest error as text, without the URL (which contains the token).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut message = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Reads a Bot API answer: `{"ok":true,"result":…}` or `{"ok":false,"error_code":…,…}`.
fn classify(status: u16, bytes: &[u8]) -> Attempt {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let Some(body) = parsed.filter(Value::is_object) else {
        return Attempt::Transient(format!("malformed answer (HTTP {status})"), false);
    };
    if body.get("ok").and_then(Value::as_bool) == Some(true) && (200..300).contains(&status) {
        return Attempt::Ok(body.get("result").cloned().unwrap_or(Value::Null));
    }
    let code = body
        .get("error_code")
        .and_then(Value::as_i64)
        .unwrap_or(i64::from(status));
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("no description")
        .chars()
        .take(500)
        .collect::<String>();
    if code == 429 || status == 429 {
        let secs = body
            .pointer("/parameters/retry_after")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        return Attempt::RateLimited(Duration::from_secs(secs.max(1)));
    }
    if status >= 500 || code >= 500 || !(400..500).contains(&code) {
        return Attempt::Transient(format!("HTTP {status}: {description}"), false);
    }
    Attempt::Refused(code, description)
}

fn message_id(method: &str, message: &Value) -> Result<i64, ApiError> {
    message
        .get("message_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::Server {
            method: method.to_owned(),
            message: "no message_id in the result".to_owned(),
        })
}

fn add_keyboard(body: &mut Value, buttons: &[Vec<Button>]) {
    if buttons.is_empty() {
        return;
    }
    let rows: Vec<Value> = buttons
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|b| json!({"text": b.text, "callback_data": b.callback_data}))
                    .collect(),
            )
        })
        .collect();
    body["reply_markup"] = json!({"inline_keyboard": rows});
}

/// A `multipart/form-data` body: text fields, then one file part named `document`.
fn multipart(boundary: &str, fields: &[(&str, String)], file_name: &str, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + 512);
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let safe_name: String = file_name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(100)
        .collect();
    let safe_name = if safe_name.is_empty() {
        "output.txt".to_owned()
    } else {
        safe_name
    };
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"document\"; filename=\"{safe_name}\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert!(matches!(
            classify(200, br#"{"ok":true,"result":{"a":1}}"#),
            Attempt::Ok(_)
        ));
        assert!(matches!(
            classify(429, br#"{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":3}}"#),
            Attempt::RateLimited(d) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify(502, b"<html>bad gateway</html>"),
            Attempt::Transient(..)
        ));
        assert!(matches!(
            classify(400, br#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
            Attempt::Refused(400, d) if d.contains("chat not found")
        ));
        assert!(matches!(classify(200, b"[1]"), Attempt::Transient(..)));
    }

    #[test]
    fn debug_hides_the_token() {
        let api = BotApi::new("http://x", "123:SECRET".to_owned());
        assert!(!format!("{api:?}").contains("SECRET"));
    }
}
