//! Tasks: one unit of work a user asked for, as CONTRACT.md's Task JSON.

use serde::{Deserialize, Serialize};

use crate::enums::{RiskTier, wire_enum};
use crate::{Id, TaskStatus, Timestamp};

wire_enum! {
    /// A single shell action, or a conversation with the agent.
    TaskKind {
        Command = "command",
        Agent = "agent",
    }
}

/// What the user asked for, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskInput {
    /// One shell action.
    Command(String),
    /// A request to the agent in plain words.
    Prompt(String),
}

impl TaskInput {
    /// The kind of task this input makes.
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskInput::Command(_) => TaskKind::Command,
            TaskInput::Prompt(_) => TaskKind::Agent,
        }
    }

    /// The text as the user gave it.
    pub fn text(&self) -> &str {
        match self {
            TaskInput::Command(s) | TaskInput::Prompt(s) => s,
        }
    }
}

/// The outcome of a finished action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The process exit code (0 for an agent's final answer).
    pub exit_code: i32,
    /// stdout and stderr merged in order, or the agent's final answer.
    pub output: String,
    /// True when `output` was cut at the capture limit.
    pub truncated: bool,
}

/// Why a task failed, when it failed for a reason other than its own exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// snake_case, stable, for programs (`approval_denied`, `mutations_paused`, …).
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: Id,
    pub user_id: Id,
    pub kind: TaskKind,
    /// The command or prompt exactly as given.
    pub input: String,
    /// The named environment whose grants the task may use, if any.
    pub environment: Option<String>,
    pub status: TaskStatus,
    /// For a command, its tier; for an agent task, the highest tier among its actions so far.
    pub risk_tier: Option<RiskTier>,
    /// The pending or last approval of the task.
    pub approval_id: Option<Id>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub result: Option<TaskResult>,
    pub error: Option<TaskError>,
}

impl Task {
    /// A new task of `user_id` for `input`, QUEUED, unclassified, created at `now`.
    pub fn queued(
        task_id: Id,
        user_id: Id,
        input: TaskInput,
        environment: Option<String>,
        now: Timestamp,
    ) -> Task {
        Task {
            task_id,
            user_id,
            kind: input.kind(),
            input: match input {
                TaskInput::Command(s) | TaskInput::Prompt(s) => s,
            },
            environment,
            status: TaskStatus::Queued,
            risk_tier: None,
            approval_id: None,
            created_at: now,
            updated_at: now,
            result: None,
            error: None,
        }
    }
}
