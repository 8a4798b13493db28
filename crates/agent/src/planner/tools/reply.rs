//! `reply {"text": string}`: a message to the user while the agent works (progress, a
//! question), shown in chat and in the task's events. It changes nothing, so no gate is asked.

use serde_json::json;

use super::{ToolOutcome, string_argument};
use crate::llm::{ToolCall, ToolSpec};
use crate::planner::run::AgentRun;

/// The tool's name.
pub const NAME: &str = "reply";
/// Longest message accepted.
const MAX_CHARS: usize = 4000;

/// The tool as the model sees it.
pub fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: "Send a message to the user (shown in chat and in the task's events), e.g. \
            progress or a question. The final answer is your last plain-text message."
            .to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {
                "text": {
                    "type": "string",
                    "description": "The message to the user."
                }
            },
            "required": ["text"],
            "additionalProperties": false
        }),
    }
}

/// Records the message as a `reply` event.
pub(crate) async fn call(run: &mut AgentRun<'_>, call: &ToolCall) -> ToolOutcome {
    let text = match string_argument(call, "text") {
        Ok(text) => text,
        Err(refusal) => return refusal,
    };
    let text: String = text.chars().take(MAX_CHARS).collect();
    run.event("reply", json!({ "text": text })).await;
    ToolOutcome::ok("delivered to the user")
}
