//! The language of AgenticAI.
//!
//! Ids, the five core types of the product plan (serialised exactly as CONTRACT.md says), the task
//! state machine, roles, tasks and users. This crate is pure: no I/O, no async runtime. Every other
//! crate speaks in these types, so a rule about them lives here and nowhere else.

mod audit;
mod enums;
mod event;
mod id;
mod policy;
mod status;
mod task;
mod time;
mod user;

pub use audit::AuditEvent;
pub use enums::{ApprovalDecision, BypassMode, PolicySource, RiskTier, Role};
pub use event::TaskEvent;
pub use id::{Id, IdError, IdKind, random_string};
pub use policy::{Approval, EnvironmentGrants, OrgPolicy};
pub use status::{TaskStatus, TransitionError};
pub use task::{Task, TaskError, TaskInput, TaskKind, TaskResult};
pub use time::Timestamp;
pub use user::User;

/// The largest text a client may send as a task's command or prompt (CONTRACT.md: 64 KiB).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
