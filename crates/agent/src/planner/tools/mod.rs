//! The agent's tools (CONTRACT.md "Agent tools"), one module each: its spec (name, description,
//! argument schema, as the model sees it) and what a call does. Adding a tool (web, browser,
//! memory, skills, apps) is adding a module here and a line in [`specs`] and [`call`]; every
//! action a tool takes in the world goes through the policy gate, as `shell` does.

pub mod reply;
pub mod shell;

use serde_json::Value;

use super::run::{AgentRun, Stopped};
use crate::llm::{ToolCall, ToolSpec};

/// Every tool, as offered to the model.
pub fn specs() -> Vec<ToolSpec> {
    vec![shell::spec(), reply::spec()]
}

/// What became of one tool call.
pub(crate) enum ToolOutcome {
    /// The result the model gets (`is_error`: refused, failed or invalid), and what the
    /// `tool_result` event says about it.
    Done {
        content: String,
        is_error: bool,
        report: ToolReport,
    },
    /// The task now waits for a person's decision; the state is saved and the worker lets go.
    Paused,
    /// The run must stop now.
    Stopped(Stopped),
}

/// What a `tool_result` event shows besides the tool's name and step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ToolReport {
    /// The command's exit code, when one ran to an end.
    pub exit_code: Option<i32>,
    /// A person or the policy refused the action.
    pub denied: bool,
    /// The injection scanner flagged the output.
    pub flagged: bool,
    /// The scanner's findings.
    pub reasons: Vec<String>,
    /// The tier of an action that started (it raises the task's tier).
    pub started: Option<domain::RiskTier>,
}

impl ToolOutcome {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> ToolOutcome {
        ToolOutcome::Done {
            content: content.into(),
            is_error: false,
            report: ToolReport::default(),
        }
    }

    /// A failure the model should hear about.
    pub fn error(content: impl Into<String>) -> ToolOutcome {
        ToolOutcome::Done {
            content: content.into(),
            is_error: true,
            report: ToolReport::default(),
        }
    }

    /// A refusal (by the policy or a person) the model should hear about.
    pub fn denied(content: impl Into<String>) -> ToolOutcome {
        ToolOutcome::Done {
            content: content.into(),
            is_error: true,
            report: ToolReport {
                denied: true,
                ..ToolReport::default()
            },
        }
    }
}

/// Carries out one tool call.
pub(crate) async fn call(run: &mut AgentRun<'_>, call: &ToolCall) -> ToolOutcome {
    match call.name.as_str() {
        shell::NAME => shell::call(run, call).await,
        reply::NAME => reply::call(run, call).await,
        other => ToolOutcome::error(format!(
            "there is no tool named {other:?}; the tools are: {}",
            specs()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The string argument `name` of a call, or the error result that explains what is wrong.
pub(crate) fn string_argument<'a>(call: &'a ToolCall, name: &str) -> Result<&'a str, ToolOutcome> {
    match call.arguments.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(ToolOutcome::error(format!(
            "invalid arguments for {}: expected a JSON object with a non-empty string {name:?}",
            call.name
        ))),
    }
}
