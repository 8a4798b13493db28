//! Fake LLM servers for tests (cargo feature `testing`): one per wire format, on 127.0.0.1, that
//! speak the real JSON (`POST /v1/chat/completions` for OpenAI-compatible, `POST /v1/messages`
//! for Anthropic), check the key and the required headers as the real APIs do (401 otherwise),
//! answer from a per-test script of [`Reply`]s, and record every request for assertions.
//!
//! ```no_run
//! # async fn demo() {
//! use agent::llm::{WireFormat, testing::{FakeLlm, Reply}};
//! let fake = FakeLlm::start(WireFormat::OpenAi, Some("sk-test")).await;
//! fake.push(Reply::tool_call("call_1", "shell", serde_json::json!({"command": "df -h"})));
//! fake.push(Reply::text("The disk is 40% full."));
//! let provider = fake.provider();
//! # }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiKey, HttpOptions, LlmConfig, LlmProvider, WireFormat};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A plain-text answer (`stop` / `end_turn`).
    Text(String),
    /// Tool calls, with optional text before them (`tool_calls` / `tool_use`).
    ToolCalls {
        text: Option<String>,
        calls: Vec<(String, String, Value)>,
    },
    /// An error in the format's own error shape.
    Error { status: u16, message: String },
    /// 429 with an optional `retry-after` header (seconds).
    RateLimited { retry_after_secs: Option<u64> },
    /// 200 with a body that is not JSON.
    Malformed,
    /// This status and body, as given (e.g. answers with unknown fields or odd shapes).
    Raw { status: u16, body: String },
    /// The inner reply after a pause (to exercise timeouts).
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    /// A plain-text answer.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Text(text.into())
    }

    /// One tool call.
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Reply {
        Reply::ToolCalls {
            text: None,
            calls: vec![(id.into(), name.into(), arguments)],
        }
    }

    /// A 200 answer with this JSON body, as given.
    pub fn json(body: Value) -> Reply {
        Reply::Raw {
            status: 200,
            body: body.to_string(),
        }
    }

    /// An error with the format's error body.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::Error {
            status,
            message: message.into(),
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The body as text.
    pub raw: String,
}

impl Recorded {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
}

struct Shared {
    format: WireFormat,
    key: Option<String>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A fake LLM server; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("format", &self.shared.format)
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeLlm {
    /// Starts a fake of `format` on a free loopback port. With `key`, requests must carry it
    /// (`Authorization: Bearer` / `x-api-key`) or get a 401.
    pub async fn start(format: WireFormat, key: Option<&str>) -> FakeLlm {
        let shared = Arc::new(Shared {
            format,
            key: key.map(str::to_owned),
            state: Mutex::new(State::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake LLM");
        let addr = listener.local_addr().expect("fake LLM address");
        let app_state = Arc::clone(&shared);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = Arc::clone(&app_state);
                async move { serve(shared, method, uri, headers, body).await }
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm {
            addr,
            shared,
            server,
        }
    }

    /// The base URL to configure: `http://127.0.0.1:PORT/v1` (OpenAI-compatible) or
    /// `http://127.0.0.1:PORT` (Anthropic).
    pub fn base_url(&self) -> String {
        match self.shared.format {
            WireFormat::OpenAi => format!("http://{}/v1", self.addr),
            WireFormat::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// The wire format it speaks.
    pub fn format(&self) -> WireFormat {
        self.shared.format
    }

    /// A configuration for this fake: its key, model `fake-model`, short timeouts and retry
    /// delays.
    pub fn config(&self) -> LlmConfig {
        LlmConfig {
            format: self.shared.format,
            base_url: Some(self.base_url()),
            api_key: self.shared.key.clone().map(ApiKey::new),
            model: "fake-model".to_owned(),
            http: HttpOptions {
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                attempts: 3,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                max_retry_after: Duration::from_secs(5),
            },
        }
    }

    /// A provider for this fake ([`FakeLlm::config`]).
    pub fn provider(&self) -> Arc<dyn LlmProvider> {
        super::provider(self.config()).expect("a provider for the fake LLM")
    }

    /// Queues the next answer.
    pub fn push(&self, reply: Reply) {
        self.shared.state().script.push_back(reply);
    }

    /// Queues `n` copies of `reply`.
    pub fn push_n(&self, n: usize, reply: Reply) {
        let mut s = self.shared.state();
        for _ in 0..n {
            s.script.push_back(reply.clone());
        }
    }

    /// Answers not yet served.
    pub fn remaining(&self) -> usize {
        self.shared.state().script.len()
    }

    /// Every request so far (refused ones included).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state().requests.clone()
    }

    /// The JSON bodies of the requests so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().into_iter().map(|r| r.body).collect()
    }
}

async fn serve(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.state().requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json.clone(),
        raw,
    });
    let format = shared.format;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = match format {
        WireFormat::OpenAi => "/v1/chat/completions",
        WireFormat::Anthropic => "/v1/messages",
    };
    if uri.path() != path {
        return error_response(format, 404, &format!("no route {}", uri.path()), None);
    }
    if method != Method::POST {
        return error_response(format, 405, "method not allowed", None);
    }
    if let Some(key) = &shared.key {
        let ok = match format {
            WireFormat::OpenAi => header("authorization") == Some(&format!("Bearer {key}")),
            WireFormat::Anthropic => header("x-api-key") == Some(key.as_str()),
        };
        if !ok {
            return error_response(
                format,
                401,
                "invalid x-api-key / Incorrect API key provided",
                None,
            );
        }
    }
    if format == WireFormat::Anthropic && header("anthropic-version").is_none() {
        return error_response(format, 400, "anthropic-version: header is required", None);
    }
    if !json.is_object() {
        return error_response(format, 400, "the body is not a JSON object", None);
    }
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if model.is_empty() {
        return error_response(format, 400, "model: field required", None);
    }
    if format == WireFormat::Anthropic && json.get("max_tokens").and_then(Value::as_u64).is_none() {
        return error_response(format, 400, "max_tokens: field required", None);
    }
    let reply = shared.state().script.pop_front();
    let Some(mut reply) = reply else {
        return error_response(format, 500, "fake LLM: no scripted reply left", None);
    };
    while let Reply::Delayed(pause, inner) = reply {
        tokio::time::sleep(pause).await;
        reply = *inner;
    }
    answer(format, &model, reply)
}

fn answer(format: WireFormat, model: &str, reply: Reply) -> Response {
    match reply {
        Reply::Text(text) => ok(completion(format, model, Some(text), Vec::new())),
        Reply::ToolCalls { text, calls } => ok(completion(format, model, text, calls)),
        Reply::Error { status, message } => error_response(format, status, &message, None),
        Reply::RateLimited { retry_after_secs } => error_response(
            format,
            429,
            "Rate limit reached; slow down",
            retry_after_secs,
        ),
        Reply::Malformed => raw(200, "<html><body>Bad gateway, but 200</body>".to_owned()),
        Reply::Raw { status, body } => raw(status, body),
        Reply::Delayed(_, inner) => answer(format, model, *inner),
    }
}

fn completion(
    format: WireFormat,
    model: &str,
    text: Option<String>,
    calls: Vec<(String, String, Value)>,
) -> Value {
    match format {
        WireFormat::OpenAi => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .map(|(id, name, args)| {
                    json!({"id": id, "type": "function",
                           "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect();
            let mut message = json!({"role": "assistant", "content": text, "refusal": null});
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
            }
            json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" },
                }],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
                "system_fingerprint": "fp_fake",
            })
        }
        WireFormat::Anthropic => {
            let mut content: Vec<Value> = text
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect();
            content.extend(calls.iter().map(|(id, name, input)| {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }));
            json!({
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" },
                "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 7},
            })
        }
    }
}

fn error_response(
    format: WireFormat,
    status: u16,
    message: &str,
    retry_after_secs: Option<u64>,
) -> Response {
    let body = match format {
        WireFormat::OpenAi => {
            let kind = match status {
                401 => "invalid_request_error",
                429 => "rate_limit_exceeded",
                500..=599 => "server_error",
                _ => "invalid_request_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        WireFormat::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    let mut response = raw(status, body.to_string());
    if let Some(secs) = retry_after_secs
        && let Ok(v) = secs.to_string().parse()
    {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

fn ok(body: Value) -> Response {
    raw(200, body.to_string())
}

fn raw(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
