//! An agent task's persisted state: the transcript the model sees and the loop's bookkeeping.
//! Saved after every step ([`store::agent_transcripts`]), so a task resumes exactly where it
//! stopped: after the decision on its approval, or after a restart.

use domain::{Id, RiskTier};
use serde::{Deserialize, Serialize};
use store::agent_transcripts::Transcript;

use super::context::Window;
use crate::llm::{ChatMessage, ChatRequest, ToolCall, ToolSpec};

/// Version of the stored layout; a task saved by a newer layout is refused, not misread.
const LAYOUT: u32 = 1;

/// Everything the loop needs to continue a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The stored layout's version.
    pub layout: u32,
    /// Earlier turns of the user's conversation, fixed when the task started.
    pub context: Vec<ChatMessage>,
    /// This task's messages: the user's request, the model's answers, the tool results.
    pub messages: Vec<ChatMessage>,
    /// Model calls made.
    pub steps: u32,
    /// Tokens used (prompt and completion).
    pub tokens: u64,
    /// Time spent in workers, in milliseconds.
    pub active_ms: u64,
    /// Untrusted content (tool output, a tainted earlier turn) entered the context.
    pub tainted: bool,
    /// The injection scanner flagged content in the context: nothing runs unasked any more.
    pub flagged: bool,
    /// The shell action waiting for a person's decision.
    pub awaiting: Option<Awaiting>,
    /// The tool call whose action was started and has no result yet (set before the launch,
    /// cleared with the result): after a crash, it is reported as interrupted, never re-run.
    pub running: Option<String>,
}

/// A shell action waiting for its approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Awaiting {
    /// The tool call it answers.
    pub call_id: String,
    /// The approval asked for.
    pub approval_id: Id,
    /// The exact command that was decided (normalised).
    pub command: String,
    /// Its tier.
    pub tier: RiskTier,
}

impl State {
    /// A new task's state: its earlier turns (with their taint and flag) and the user's request.
    pub fn new(window: Window, request: &str) -> State {
        State {
            layout: LAYOUT,
            context: window.messages,
            messages: vec![ChatMessage::user(request)],
            tainted: window.tainted,
            flagged: window.flagged,
            ..State::default()
        }
    }

    /// The state as stored.
    pub fn to_stored(&self) -> Result<Transcript, serde_json::Error> {
        Ok(Transcript {
            state: serde_json::to_string(self)?,
            tainted: self.tainted,
            flagged: self.flagged,
            tokens: i64::try_from(self.tokens).unwrap_or(i64::MAX),
        })
    }

    /// A stored state, or why it cannot be used.
    pub fn from_stored(stored: &Transcript) -> Result<State, String> {
        let state: State = serde_json::from_str(&stored.state)
            .map_err(|e| format!("the stored transcript is unreadable: {e}"))?;
        if state.layout != LAYOUT {
            return Err(format!(
                "the stored transcript has layout {}, this server reads {LAYOUT}",
                state.layout
            ));
        }
        Ok(state)
    }

    /// The first tool call of the model's last answer that has no result yet, with its position
    /// in that answer.
    pub fn pending_call(&self) -> Option<(usize, ToolCall)> {
        let last = self
            .messages
            .iter()
            .rposition(|m| matches!(m, ChatMessage::Assistant { .. }))?;
        let ChatMessage::Assistant { tool_calls, .. } = &self.messages[last] else {
            return None;
        };
        let answered: Vec<&str> = self.messages[last + 1..]
            .iter()
            .filter_map(|m| match m {
                ChatMessage::ToolResult { tool_call_id, .. } => Some(tool_call_id.as_str()),
                _ => None,
            })
            .collect();
        tool_calls
            .iter()
            .enumerate()
            .find(|(_, c)| !answered.contains(&c.id.as_str()))
            .map(|(n, c)| (n, c.clone()))
    }

    /// The request for the next model call.
    pub fn request(&self, system: String, tools: Vec<ToolSpec>, max_tokens: u32) -> ChatRequest {
        ChatRequest {
            system,
            messages: self.context.iter().chain(&self.messages).cloned().collect(),
            tools,
            max_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "shell".into(),
            arguments: json!({"command": "ls"}),
        }
    }

    #[test]
    fn pending_calls_are_answered_in_order() {
        let mut state = State::new(Window::default(), "hi");
        assert_eq!(state.pending_call(), None);
        state.messages.push(ChatMessage::Assistant {
            text: None,
            tool_calls: vec![call("a"), call("b")],
        });
        assert_eq!(
            state.pending_call().map(|(n, c)| (n, c.id)),
            Some((0, "a".into()))
        );
        state.messages.push(ChatMessage::tool_result("a", "ok"));
        assert_eq!(
            state.pending_call().map(|(n, c)| (n, c.id)),
            Some((1, "b".into()))
        );
        state.messages.push(ChatMessage::tool_error("b", "denied"));
        assert_eq!(state.pending_call(), None);
    }

    #[test]
    fn state_round_trips_and_refuses_unknown_layouts() {
        let window = Window {
            messages: vec![ChatMessage::user("earlier")],
            tainted: true,
            ..Window::default()
        };
        let mut state = State::new(window, "now");
        state.running = Some("a".into());
        let stored = state.to_stored().unwrap();
        assert!(stored.tainted);
        assert_eq!(State::from_stored(&stored).unwrap(), state);
        let newer = Transcript {
            state: stored.state.replace("\"layout\":1", "\"layout\":9"),
            ..stored
        };
        assert!(State::from_stored(&newer).unwrap_err().contains("layout 9"));
    }
}
