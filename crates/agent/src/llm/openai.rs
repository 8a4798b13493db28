//! The OpenAI-compatible Chat Completions format: `POST {base}/chat/completions` with
//! `Authorization: Bearer {key}` (no header without a key: local servers need none).
//!
//! Lenient, because vLLM, Ollama, llama.cpp server and LiteLLM each differ a little: unknown
//! fields are ignored, `usage` may be missing, `finish_reason` may be empty or absent, `content`
//! may be `null`, a string, or a list of text parts, a tool call may lack its `id` or `type`, and
//! `arguments` may be a JSON string (the standard), an object, or empty.

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::http::HttpClient;
use super::{
    BoxFuture, ChatMessage, ChatRequest, ChatResponse, Finish, LlmConfig, LlmError, LlmProvider,
    ToolCall, Usage, WireFormat, untrusted_envelope,
};

/// A provider speaking OpenAI-compatible Chat Completions.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    http: HttpClient,
    model: String,
}

impl OpenAiProvider {
    /// A provider for `config` (its format is taken to be OpenAI's).
    pub fn new(config: LlmConfig) -> Result<OpenAiProvider, LlmError> {
        let base = config
            .base_url
            .as_deref()
            .unwrap_or(WireFormat::OpenAi.default_base_url());
        let http = HttpClient::new(base, config.api_key, config.http)?;
        if config.model.trim().is_empty() {
            return Err(LlmError::Misconfigured {
                endpoint: http.endpoint().to_owned(),
                message: "no model configured (AGENTICAI_LLM_MODEL)".to_owned(),
            });
        }
        Ok(OpenAiProvider {
            http,
            model: config.model,
        })
    }

    /// The request body for `request` (public for tests and diagnostics).
    pub fn body(&self, request: &ChatRequest) -> Value {
        request_body(&self.model, request)
    }

    async fn complete_inner(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        if let Some(key) = self.http.key().filter(|k| !k.expose().is_empty()) {
            headers.push((
                AUTHORIZATION,
                self.http.key_header(format!("Bearer {}", key.expose()))?,
            ));
        }
        let body = self.body(request);
        let answer = self
            .http
            .post_json("/chat/completions", &headers, &body)
            .await?;
        parse_response(&answer).map_err(|m| self.http.bad_response(m))
    }
}

impl LlmProvider for OpenAiProvider {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(self.complete_inner(request))
    }

    fn wire_format(&self) -> WireFormat {
        WireFormat::OpenAi
    }

    fn model(&self) -> &str {
        &self.model
    }
}

/// The Chat Completions body for `request`.
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages {
        messages.push(match message {
            ChatMessage::User { text } => json!({"role": "user", "content": text}),
            ChatMessage::Assistant { text, tool_calls } => {
                let mut m = Map::new();
                m.insert("role".into(), json!("assistant"));
                m.insert(
                    "content".into(),
                    match text {
                        Some(t) if !t.is_empty() => json!(t),
                        // Some servers reject `null` when there are no tool calls.
                        _ if tool_calls.is_empty() => json!(""),
                        _ => Value::Null,
                    },
                );
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": arguments_text(&c.arguments)},
                            })
                        })
                        .collect();
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                Value::Object(m)
            }
            ChatMessage::ToolResult {
                tool_call_id,
                content,
                is_error,
            } => {
                let content = if *is_error {
                    format!("[tool error]\n{}", untrusted_envelope(content))
                } else {
                    untrusted_envelope(content)
                };
                json!({"role": "tool", "tool_call_id": tool_call_id, "content": content})
            }
        });
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": false,
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                })
            })
            .collect();
    }
    body
}

/// Arguments as the JSON string the format wants; a raw string (unparseable arguments the model
/// produced earlier) is sent back as it was.
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Reads a Chat Completions answer.
pub fn parse_response(answer: &Value) -> Result<ChatResponse, String> {
    let Some(choice) = answer
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    else {
        if let Some(message) = answer.get("error").map(error_text) {
            return Err(format!("error instead of an answer: {message}"));
        }
        return Err("no choices in the answer".to_owned());
    };
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or("choices[0] has no message")?;
    let text = content_text(message.get("content"))?;
    let mut tool_calls = Vec::new();
    match message.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (i, call) in calls.iter().enumerate() {
                tool_calls.push(parse_tool_call(i, call)?);
            }
        }
        Some(_) => return Err("tool_calls is not a list".to_owned()),
    }
    let finish = match choice.get("finish_reason").and_then(Value::as_str) {
        None | Some("") | Some("stop") | Some("eos") => Finish::Stop,
        Some("tool_calls") | Some("function_call") => Finish::ToolUse,
        Some("length") => Finish::MaxTokens,
        Some("content_filter") | Some("refusal") => Finish::Refused,
        Some(other) => Finish::Other(other.to_owned()),
    };
    let finish = if !tool_calls.is_empty() && matches!(finish, Finish::Stop | Finish::Other(_)) {
        Finish::ToolUse
    } else {
        finish
    };
    let usage = answer.get("usage");
    let count = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| usage.and_then(|u| u.get(*n)).and_then(Value::as_u64))
            .unwrap_or(0)
    };
    Ok(ChatResponse {
        text,
        tool_calls,
        finish,
        usage: Usage {
            input_tokens: count(&["prompt_tokens", "input_tokens"]),
            output_tokens: count(&["completion_tokens", "output_tokens"]),
        },
    })
}

fn error_text(error: &Value) -> String {
    let text = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| error.as_str().map(str::to_owned))
        .unwrap_or_else(|| error.to_string());
    text.chars().take(500).collect()
}

/// `content`: null, a string, or a list of parts (`{"type":"text","text":…}`).
fn content_text(content: Option<&Value>) -> Result<Option<String>, String> {
    let text = match content {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join(""),
        Some(_) => return Err("message content is neither text nor a list of parts".to_owned()),
    };
    Ok(if text.is_empty() { None } else { Some(text) })
}

fn parse_tool_call(index: usize, call: &Value) -> Result<ToolCall, String> {
    let function = call
        .get("function")
        .filter(|f| f.is_object())
        .ok_or_else(|| format!("tool_calls[{index}] has no function"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("tool_calls[{index}] has no function name"))?;
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("call_{index}"));
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(raw)) if raw.trim().is_empty() => json!({}),
        Some(Value::String(raw)) => {
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.clone()))
        }
        Some(other) => other.clone(),
    };
    Ok(ToolCall {
        id,
        name: name.to_owned(),
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_answers_parse() {
        let r = parse_response(&json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"function": {"name": "shell", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "b", "function": {"name": "reply", "arguments": ""}},
                {"id": "c", "function": {"name": "shell", "arguments": "{not json"}},
                {"id": "d", "function": {"name": "shell", "arguments": {"command": "pwd"}}}
            ]}, "finish_reason": ""}],
            "extra": 1
        }))
        .unwrap();
        assert_eq!(r.text, None);
        assert_eq!(r.finish, Finish::ToolUse);
        assert_eq!(r.usage, Usage::default());
        assert_eq!(r.tool_calls[0].id, "call_0");
        assert_eq!(r.tool_calls[0].arguments, json!({"command": "ls"}));
        assert_eq!(r.tool_calls[1].arguments, json!({}));
        assert_eq!(r.tool_calls[2].arguments, json!("{not json"));
        assert_eq!(r.tool_calls[3].arguments, json!({"command": "pwd"}));

        let r = parse_response(&json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]})).unwrap();
        assert_eq!(r.text.as_deref(), Some("ab"));
        assert_eq!(r.finish, Finish::Stop);

        assert!(parse_response(&json!({"choices": []})).is_err());
        assert!(
            parse_response(&json!({"error": {"message": "boom"}}))
                .unwrap_err()
                .contains("boom")
        );
        assert!(parse_response(&json!({"choices": [{"message": {"content": 3}}]})).is_err());
    }
}
