//! Task events as the channel reads them: shell output, and the steps, approvals and messages of
//! agent tasks (`plan`, `tool_call`, `tool_result`, `approval`, `reply`).
//!
//! Reading is lenient: a field that is missing or of another type counts as absent, and kinds the
//! chat does not show (`status`, `answer`, kinds added later) are [`Event::Other`], so nothing a
//! worker writes can make a scan fail. Everything read here is untrusted text for display and is
//! escaped where it is rendered.

use domain::TaskEvent;
use serde_json::Value;

/// What one task event means for the chat.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event<'a> {
    /// Live output of the running shell action.
    Output(&'a str),
    /// The model's words accompanying its tool calls.
    Plan(&'a str),
    /// A tool call of the model; `command` is set for `shell`.
    ToolCall(ToolCall<'a>),
    /// What a tool call came to.
    ToolResult(ToolResult<'a>),
    /// The task now waits for this approval.
    Approval { approval_id: &'a str },
    /// A message from the agent to the user (the `reply` tool).
    Reply(&'a str),
    /// A kind the chat does not show.
    Other,
}

/// A `tool_call` event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall<'a> {
    /// The model turn it belongs to.
    pub step: Option<i64>,
    pub tool: &'a str,
    pub command: Option<&'a str>,
    pub risk_tier: Option<&'a str>,
    /// `ALLOW`, `REQUIRE_APPROVAL` or `DENY`, once the policy gate decided.
    pub verdict: Option<&'a str>,
}

/// A `tool_result` event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolResult<'a> {
    pub step: Option<i64>,
    pub tool: &'a str,
    pub exit_code: Option<i64>,
    /// The policy gate (or a person) refused the action.
    pub denied: bool,
    pub error: Option<&'a str>,
    /// The injection scanner flagged the result.
    pub flagged: bool,
}

/// Reads `event`.
pub(crate) fn read(event: &TaskEvent) -> Event<'_> {
    let data = &event.data;
    let text = |field: &str| data.get(field).and_then(Value::as_str);
    let number = |field: &str| data.get(field).and_then(Value::as_i64);
    let flag = |field: &str| data.get(field).and_then(Value::as_bool).unwrap_or(false);
    match event.kind.as_str() {
        "output" => text("text").map_or(Event::Other, Event::Output),
        "plan" => text("text").map_or(Event::Other, Event::Plan),
        "reply" => text("text").map_or(Event::Other, Event::Reply),
        "approval" => {
            text("approval_id").map_or(Event::Other, |approval_id| Event::Approval { approval_id })
        }
        "tool_call" => Event::ToolCall(ToolCall {
            step: number("step"),
            tool: text("tool").unwrap_or(""),
            command: text("command"),
            risk_tier: text("risk_tier"),
            verdict: text("verdict"),
        }),
        "tool_result" => Event::ToolResult(ToolResult {
            step: number("step"),
            tool: text("tool").unwrap_or(""),
            exit_code: number("exit_code"),
            denied: flag("denied"),
            error: text("error"),
            flagged: flag("flagged"),
        }),
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Id, Timestamp};
    use serde_json::json;

    fn event(kind: &str, data: Value) -> TaskEvent {
        TaskEvent {
            task_id: Id::parse("tsk_a").unwrap(),
            seq: 1,
            at: Timestamp::from_millis(0),
            kind: kind.to_owned(),
            data,
        }
    }

    #[test]
    fn reads_the_agent_kinds() {
        let call = event(
            "tool_call",
            json!({"step": 2, "tool": "shell", "command": "df -h", "risk_tier": "L0_READONLY",
                   "verdict": "ALLOW", "rationale": null}),
        );
        assert_eq!(
            read(&call),
            Event::ToolCall(ToolCall {
                step: Some(2),
                tool: "shell",
                command: Some("df -h"),
                risk_tier: Some("L0_READONLY"),
                verdict: Some("ALLOW"),
            })
        );
        let result = event(
            "tool_result",
            json!({"step": 2, "tool": "shell", "exit_code": null, "denied": true, "error": null,
                   "flagged": false, "reasons": []}),
        );
        assert_eq!(
            read(&result),
            Event::ToolResult(ToolResult {
                step: Some(2),
                tool: "shell",
                exit_code: None,
                denied: true,
                error: None,
                flagged: false,
            })
        );
        assert_eq!(
            read(&event("approval", json!({"approval_id": "apr_x"}))),
            Event::Approval {
                approval_id: "apr_x"
            }
        );
        assert_eq!(
            read(&event("reply", json!({"text": "hi"}))),
            Event::Reply("hi")
        );
    }

    #[test]
    fn odd_data_is_read_leniently() {
        assert_eq!(read(&event("plan", json!({"text": 5}))), Event::Other);
        assert_eq!(read(&event("reply", json!(null))), Event::Other);
        assert_eq!(read(&event("answer", json!({"text": "x"}))), Event::Other);
        assert_eq!(
            read(&event("status", json!({"status": "RUNNING"}))),
            Event::Other
        );
        let odd = event("tool_call", json!({"step": "one"}));
        let Event::ToolCall(call) = read(&odd) else {
            panic!("a tool call");
        };
        assert_eq!((call.step, call.tool, call.command), (None, "", None));
    }
}
