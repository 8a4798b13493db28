//! The agent loop: a model plans with tools, and every action it proposes goes through the same
//! policy gate as a command a person typed.
//!
//! One agent task runs in a worker, outside the sandbox, step by step:
//! 1. the model gets the system prompt ([`prompt`]), the earlier turns of the user's
//!    conversation ([`context`]) and this task's transcript, with every secret value of the
//!    task's environment redacted;
//! 2. it answers with text (the final answer: the task SUCCEEDS with it as `result.output`) or
//!    with tool calls, each handled by its module in [`tools`] — a shell action is decided by
//!    [`policy::gate`] (tier from parsing, never from the model): allowed actions run in the
//!    sandbox, denied ones are reported back to the model, and one that needs a person pauses the
//!    task in WAITING_APPROVAL with the worker let go;
//! 3. after every step the transcript is saved ([`state`]), so the task resumes exactly where it
//!    stopped — after the decision on its approval, or after a restart.
//!
//! Tool output is untrusted: it reaches the model inside an `<untrusted-data>` envelope, it taints
//! the task (every further L1+ action needs a fresh approval, bypass or not), and it is scanned
//! for injections — a hit is audited and makes every further action wait for a person.
//! Limits per task (model calls, tokens, active time) and per user (tokens per day) stop a loop
//! that does not end; cancellation is noticed at any step.

pub mod context;
pub mod prompt;
mod run;
mod state;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use crate::llm::LlmProvider;

/// The agent's model and limits; without them agent tasks fail with `agent_unavailable`.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The model that plans.
    pub provider: Arc<dyn LlmProvider>,
    /// How far one task may go.
    pub limits: AgentLimits,
}

/// Limits of the agent loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLimits {
    /// Most model calls per task.
    pub max_steps: u32,
    /// Most tokens (prompt and completion) per task.
    pub max_task_tokens: u64,
    /// Most time a task may spend in a worker (waiting for approval does not count).
    pub max_time: Duration,
    /// Most tokens per user in 24 hours (`None`: no limit).
    pub daily_user_tokens: Option<u64>,
    /// Tokens of earlier turns sent with a new request (the conversation window).
    pub context_tokens: usize,
    /// Most tokens of one model answer.
    pub max_answer_tokens: u32,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_steps: 20,
            max_task_tokens: 200_000,
            max_time: Duration::from_secs(15 * 60),
            daily_user_tokens: Some(2_000_000),
            context_tokens: 4_000,
            max_answer_tokens: 4_096,
        }
    }
}

/// A rough token count of `text` (about four bytes a token), for budgets; providers report the
/// real usage after each call.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4) + 4
}
