//! Task events: progress, output lines, approvals and answers, as streamed to clients.

use serde::{Deserialize, Serialize};

use crate::{Id, Timestamp};

/// One thing that happened to a task, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub task_id: Id,
    /// Position in the task's event sequence, from 1.
    pub seq: i64,
    pub at: Timestamp,
    /// Dotted kind, e.g. `status`, `output`, `approval`, `answer`.
    pub kind: String,
    /// Kind-specific payload.
    pub data: serde_json::Value,
}
