//! A fake Bot API server for tests (cargo feature `testing`): it speaks the real JSON at
//! `/bot{token}/{method}` on 127.0.0.1, records every call, serves queued updates to
//! `getUpdates` (honouring `offset` and the long-poll `timeout`), refuses `getUpdates` while a
//! webhook is set (409, as Telegram does), and can be told to fail calls.
//!
//! ```no_run
//! # async fn demo() {
//! use telegram::testing::{FakeBotApi, text_update};
//! let fake = FakeBotApi::start("123:TEST").await;
//! fake.push_update(text_update(1, 42, "/help"));
//! let api = fake.api();
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::api::{BotApi, RetryPolicy};

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    /// The JSON body, or the fields of a multipart body (the file under `document`, with
    /// `document_name`).
    pub body: Value,
}

/// A way to fail a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 429 with `parameters.retry_after`.
    RateLimited { retry_after: u64 },
    /// 500 with an `ok:false` body.
    ServerError,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 400 with this description (e.g. `Bad Request: chat not found`).
    BadRequest(String),
    /// 403 with this description (e.g. `Forbidden: bot was blocked by the user`).
    Forbidden(String),
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    updates: Vec<Value>,
    failures: VecDeque<(Option<String>, Failure)>,
    next_message_id: i64,
    /// (chat_id, message_id) → current text.
    messages: HashMap<(i64, i64), String>,
    /// Successful sendMessage/sendDocument calls, in order.
    delivered: Vec<Call>,
    webhook: Option<String>,
}

struct Shared {
    token: String,
    state: Mutex<State>,
    arrived: Notify,
    called: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fake server; stops when dropped.
pub struct FakeBotApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeBotApi {
    /// Starts a fake for the bot with `token` on a free loopback port.
    pub async fn start(token: &str) -> FakeBotApi {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State {
                next_message_id: 1000,
                ..State::default()
            }),
            arrived: Notify::new(),
            called: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Bot API");
        let addr = listener.local_addr().expect("fake Bot API address");
        let app_state = Arc::clone(&shared);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = Arc::clone(&app_state);
            async move { serve(shared, uri, headers, body).await }
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBotApi {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, the Bot API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A client for this fake with short retry delays.
    pub fn api(&self) -> BotApi {
        BotApi::new(&self.base_url(), self.shared.token.clone()).with_retry(RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        })
    }

    /// Queues an update for `getUpdates` (waking a waiting long poll).
    pub fn push_update(&self, update: Value) {
        self.shared.state().updates.push(update);
        self.shared.arrived.notify_waiters();
    }

    /// Fails the next `n` calls (of any method) this way.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut s = self.shared.state();
        for _ in 0..n {
            s.failures.push_back((None, failure.clone()));
        }
    }

    /// Fails the next `n` calls of `method` this way.
    pub fn fail_next_for(&self, method: &str, n: usize, failure: Failure) {
        let mut s = self.shared.state();
        for _ in 0..n {
            s.failures
                .push_back((Some(method.to_owned()), failure.clone()));
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// The bodies of the calls of `method` so far.
    pub fn calls_to(&self, method: &str) -> Vec<Value> {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }

    /// The texts of the messages sent so far (`sendMessage` calls that succeeded included, in
    /// order).
    pub fn sent_texts(&self) -> Vec<String> {
        self.calls_to("sendMessage")
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// The texts (captions for documents) of the messages that were actually delivered
    /// (successful `sendMessage` and `sendDocument` calls), in order.
    pub fn delivered_texts(&self) -> Vec<String> {
        self.shared
            .state()
            .delivered
            .iter()
            .map(|c| {
                let field = if c.method == "sendMessage" {
                    "text"
                } else {
                    "caption"
                };
                c.body
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// The successful `sendMessage` and `sendDocument` calls, in order.
    pub fn delivered(&self) -> Vec<Call> {
        self.shared.state().delivered.clone()
    }

    /// The webhook URL currently set, if any.
    pub fn webhook(&self) -> Option<String> {
        self.shared.state().webhook.clone()
    }

    /// Waits until at least `n` calls of `method` were made (or `within` passes); returns their
    /// bodies.
    pub async fn wait_for_calls(&self, method: &str, n: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.called.notified();
            let calls = self.calls_to(method);
            if calls.len() >= n || tokio::time::Instant::now() >= deadline {
                return calls;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

/// A private-chat text message from user `from_id`.
pub fn text_update(update_id: i64, from_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1,
            "date": 1_700_000_000,
            "chat": {"id": from_id, "type": "private", "first_name": "Test"},
            "from": {"id": from_id, "is_bot": false, "first_name": "Test", "username": format!("user{from_id}")},
            "text": text,
        }
    })
}

/// A button press by user `from_id` on our message `message_id` in their private chat.
pub fn callback_update(update_id: i64, from_id: i64, data: &str, message_id: i64) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("cb{update_id}"),
            "from": {"id": from_id, "is_bot": false, "first_name": "Test"},
            "chat_instance": "1",
            "message": {
                "message_id": message_id,
                "date": 1_700_000_000,
                "chat": {"id": from_id, "type": "private"},
                "from": {"id": 1, "is_bot": true, "first_name": "Bot"},
                "text": "…",
            },
            "data": data,
        }
    })
}

fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

fn error(status: StatusCode, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(secs) = retry_after {
        body["parameters"] = json!({"retry_after": secs});
    }
    (status, axum::Json(body)).into_response()
}

fn failure_response(f: &Failure) -> Response {
    match f {
        Failure::RateLimited { retry_after } => error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(*retry_after),
        ),
        Failure::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            None,
        ),
        Failure::Malformed => (StatusCode::OK, "<html>not json").into_response(),
        Failure::BadRequest(d) => error(StatusCode::BAD_REQUEST, d, None),
        Failure::Forbidden(d) => error(StatusCode::FORBIDDEN, d, None),
    }
}

async fn serve(shared: Arc<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some((bot, method)) = path.split_once('/') else {
        return error(StatusCode::NOT_FOUND, "Not Found", None);
    };
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    let body = parse_body(&headers, &body);
    let method = method.to_owned();
    let failure = {
        let mut s = shared.state();
        s.calls.push(Call {
            method: method.clone(),
            body: body.clone(),
        });
        let pos = s
            .failures
            .iter()
            .position(|(m, _)| m.as_deref().is_none_or(|m| m == method));
        pos.and_then(|i| s.failures.remove(i)).map(|(_, f)| f)
    };
    shared.called.notify_waiters();
    if let Some(f) = failure {
        return failure_response(&f);
    }
    match method.as_str() {
        "getMe" => {
            ok(json!({"id": 1, "is_bot": true, "first_name": "Fake", "username": "fake_bot"}))
        }
        "getUpdates" => get_updates(&shared, &body).await,
        "setWebhook" => {
            let url = body.get("url").and_then(Value::as_str).unwrap_or_default();
            shared.state().webhook = (!url.is_empty()).then(|| url.to_owned());
            ok(Value::Bool(true))
        }
        "deleteWebhook" => {
            shared.state().webhook = None;
            ok(Value::Bool(true))
        }
        "sendMessage" | "sendDocument" => send(&shared, &method, &body),
        "editMessageText" => edit(&shared, &body),
        "answerCallbackQuery" | "setMyCommands" => ok(Value::Bool(true)),
        _ => error(StatusCode::NOT_FOUND, "Not Found: method not found", None),
    }
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Value {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(boundary) = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .map(|b| b.trim_matches('"'))
    {
        return parse_multipart(boundary, body);
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// Enough of multipart/form-data to read what our client sends.
fn parse_multipart(boundary: &str, body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut fields = serde_json::Map::new();
    for part in text.split(delimiter.as_str()) {
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let name = between(head, "name=\"", "\"");
        let file_name = between(head, "filename=\"", "\"");
        if let Some(name) = name {
            fields.insert(name.to_owned(), Value::String(value.to_owned()));
            if let Some(f) = file_name {
                fields.insert(format!("{name}_name"), Value::String(f.to_owned()));
            }
        }
    }
    if let Some(id) = fields
        .get("chat_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<i64>().ok())
    {
        fields.insert("chat_id".to_owned(), json!(id));
    }
    Value::Object(fields)
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

async fn get_updates(shared: &Arc<Shared>, body: &Value) -> Response {
    let offset = body.get("offset").and_then(Value::as_i64).unwrap_or(0);
    let timeout = body
        .get("timeout")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(60);
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let arrived = shared.arrived.notified();
        {
            let mut s = shared.state();
            if s.webhook.is_some() {
                return error(
                    StatusCode::CONFLICT,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                    None,
                );
            }
            // Asking for `offset` confirms every earlier update: Telegram forgets them.
            if offset > 0 {
                s.updates.retain(|u| {
                    u.get("update_id")
                        .and_then(Value::as_i64)
                        .is_none_or(|id| id >= offset)
                });
            }
            if !s.updates.is_empty() {
                let batch: Vec<Value> = s.updates.iter().take(limit).cloned().collect();
                return ok(Value::Array(batch));
            }
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return ok(json!([]));
        }
    }
}

fn send(shared: &Arc<Shared>, method: &str, body: &Value) -> Response {
    let Some(chat_id) = body.get("chat_id").and_then(Value::as_i64) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: chat_id is empty",
            None,
        );
    };
    let text = if method == "sendMessage" {
        let Some(text) = body.get("text").and_then(Value::as_str) else {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request: message text is empty",
                None,
            );
        };
        if text.chars().count() > 4096 {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request: message is too long",
                None,
            );
        }
        text.to_owned()
    } else {
        if body.get("document").is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request: there is no document in the request",
                None,
            );
        }
        body.get("caption")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut s = shared.state();
    s.next_message_id += 1;
    let message_id = s.next_message_id;
    s.messages.insert((chat_id, message_id), text.clone());
    s.delivered.push(Call {
        method: method.to_owned(),
        body: body.clone(),
    });
    ok(json!({
        "message_id": message_id,
        "date": 1_700_000_000,
        "chat": {"id": chat_id, "type": "private"},
        "text": text,
    }))
}

fn edit(shared: &Arc<Shared>, body: &Value) -> Response {
    let chat_id = body.get("chat_id").and_then(Value::as_i64);
    let message_id = body.get("message_id").and_then(Value::as_i64);
    let text = body.get("text").and_then(Value::as_str);
    let (Some(chat_id), Some(message_id), Some(text)) = (chat_id, message_id, text) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message to edit not found",
            None,
        );
    };
    let mut s = shared.state();
    match s.messages.get_mut(&(chat_id, message_id)) {
        None => error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message to edit not found",
            None,
        ),
        Some(current) if current == text && body.get("reply_markup").is_none() => error(
            StatusCode::BAD_REQUEST,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            None,
        ),
        Some(current) => {
            *current = text.to_owned();
            ok(
                json!({"message_id": message_id, "chat": {"id": chat_id, "type": "private"}, "text": text}),
            )
        }
    }
}
