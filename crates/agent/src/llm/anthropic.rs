//! The Anthropic Messages format: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; the system prompt is top-level, messages carry content blocks
//! (`text`, `tool_use{id,name,input}`, `tool_result{tool_use_id,content,is_error}`), and roles
//! alternate (consecutive messages of one role are merged; tool results travel as `user`).

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::http::HttpClient;
use super::{
    BoxFuture, ChatMessage, ChatRequest, ChatResponse, Finish, LlmConfig, LlmError, LlmProvider,
    ToolCall, Usage, WireFormat, untrusted_envelope,
};

/// The API version we speak.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A provider speaking Anthropic Messages.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    http: HttpClient,
    model: String,
}

impl AnthropicProvider {
    /// A provider for `config` (its format is taken to be Anthropic's). A key is required.
    pub fn new(config: LlmConfig) -> Result<AnthropicProvider, LlmError> {
        let base = config
            .base_url
            .as_deref()
            .unwrap_or(WireFormat::Anthropic.default_base_url());
        let http = HttpClient::new(base, config.api_key, config.http)?;
        let misconfigured = |message: &str| LlmError::Misconfigured {
            endpoint: http.endpoint().to_owned(),
            message: message.to_owned(),
        };
        if config.model.trim().is_empty() {
            return Err(misconfigured("no model configured (AGENTICAI_LLM_MODEL)"));
        }
        if http.key().is_none_or(|k| k.expose().is_empty()) {
            return Err(misconfigured(
                "no API key configured (AGENTICAI_LLM_API_KEY)",
            ));
        }
        Ok(AnthropicProvider {
            http,
            model: config.model,
        })
    }

    /// The request body for `request` (public for tests and diagnostics).
    pub fn body(&self, request: &ChatRequest) -> Value {
        request_body(&self.model, request)
    }

    async fn complete_inner(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let key = self.http.key().map(|k| k.expose()).unwrap_or_default();
        let headers = [
            (
                HeaderName::from_static("x-api-key"),
                self.http.key_header(key.to_owned())?,
            ),
            (
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ),
        ];
        let body = self.body(request);
        let answer = self.http.post_json("/v1/messages", &headers, &body).await?;
        parse_response(&answer).map_err(|m| self.http.bad_response(m))
    }
}

impl LlmProvider for AnthropicProvider {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(self.complete_inner(request))
    }

    fn wire_format(&self) -> WireFormat {
        WireFormat::Anthropic
    }

    fn model(&self) -> &str {
        &self.model
    }
}

/// The Messages body for `request`.
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ChatMessage::User { text } => ("user", text_block(text).into_iter().collect()),
            ChatMessage::Assistant { text, tool_calls } => {
                let mut blocks: Vec<Value> =
                    text.as_deref().and_then(text_block).into_iter().collect();
                blocks.extend(tool_calls.iter().map(|c| {
                    json!({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments)})
                }));
                ("assistant", blocks)
            }
            ChatMessage::ToolResult {
                tool_call_id,
                content,
                is_error,
            } => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": tool_call_id,
                    "content": untrusted_envelope(content),
                    "is_error": is_error,
                })],
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

/// A text block; none for empty text (the API rejects empty text blocks).
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// `input` must be an object: other arguments (a raw string the model produced in another
/// format) are wrapped.
fn tool_input(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::Null => json!({}),
        other => json!({"_raw": other}),
    }
}

/// Reads a Messages answer.
pub fn parse_response(answer: &Value) -> Result<ChatResponse, String> {
    if answer.get("type").and_then(Value::as_str) == Some("error") {
        let message = answer
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(format!(
            "error instead of an answer: {}",
            message.chars().take(500).collect::<String>()
        ));
    }
    let blocks = answer
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no content list in the answer")?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = block.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                }
            }
            Some("tool_use") => {
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| format!("content[{i}] (tool_use) has no name"))?;
                let id = block
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| format!("content[{i}] (tool_use) has no id"))?;
                tool_calls.push(ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
                });
            }
            // thinking, redacted_thinking, server tools, future block types: not for us.
            _ => {}
        }
    }
    let finish = match answer.get("stop_reason").and_then(Value::as_str) {
        None | Some("") | Some("end_turn") | Some("stop_sequence") => Finish::Stop,
        Some("tool_use") => Finish::ToolUse,
        Some("max_tokens") | Some("model_context_window_exceeded") => Finish::MaxTokens,
        Some("refusal") => Finish::Refused,
        Some(other) => Finish::Other(other.to_owned()),
    };
    let finish = if !tool_calls.is_empty() && matches!(finish, Finish::Stop | Finish::Other(_)) {
        Finish::ToolUse
    } else {
        finish
    };
    let count = |name: &str| {
        answer
            .pointer(&format!("/usage/{name}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ChatResponse {
        text: (!text.is_empty()).then_some(text),
        tool_calls,
        finish,
        usage: Usage {
            input_tokens: count("input_tokens")
                + count("cache_read_input_tokens")
                + count("cache_creation_input_tokens"),
            output_tokens: count("output_tokens"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_alternate_and_tool_results_are_user_blocks() {
        let request = ChatRequest {
            system: "sys".into(),
            messages: vec![
                ChatMessage::user("hi"),
                ChatMessage::Assistant {
                    text: None,
                    tool_calls: vec![
                        ToolCall {
                            id: "t1".into(),
                            name: "shell".into(),
                            arguments: json!({"command": "ls"}),
                        },
                        ToolCall {
                            id: "t2".into(),
                            name: "shell".into(),
                            arguments: json!("bad"),
                        },
                    ],
                },
                ChatMessage::tool_result("t1", "a\nb"),
                ChatMessage::tool_error("t2", "denied"),
                ChatMessage::user(""),
            ],
            tools: crate::planner::tools::specs(),
            max_tokens: 100,
        };
        let body = request_body("m", &request);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "t1");
        assert_eq!(messages[2]["content"][1]["is_error"], true);
        assert_eq!(messages[1]["content"][1]["input"], json!({"_raw": "bad"}));
        assert_eq!(body["system"], "sys");
        assert_eq!(body["tools"][0]["input_schema"]["required"][0], "command");
    }

    #[test]
    fn answers_parse() {
        let r = parse_response(&json!({
            "content": [{"type": "thinking", "thinking": "…"}, {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"command": "df"}}],
            "stop_reason": null, "new_field": true
        }))
        .unwrap();
        assert_eq!(r.text.as_deref(), Some("Let me check."));
        assert_eq!(r.finish, Finish::ToolUse);
        assert_eq!(r.tool_calls[0].arguments, json!({"command": "df"}));
        assert!(
            parse_response(&json!({"type": "error", "error": {"message": "overloaded"}})).is_err()
        );
        assert!(parse_response(&json!({"content": "x"})).is_err());
    }
}
