//! Isolated execution for AgenticAI.
//!
//! * [`sandbox`]: the bubblewrap sandbox backend — one fresh sandbox per run;
//! * [`egress`]: the host-side egress proxy a sandbox with an environment reaches over a Unix
//!   socket;
//! * [`redact`]: removing secret values from everything a run prints.

pub mod egress;
pub mod redact;
pub mod sandbox;

pub use sandbox::{
    DEFAULT_PATH, ETC_ALLOWLIST, Limits, Outcome, SANDBOX_ID, Sandbox, SandboxError, SandboxSpec,
    WORKSPACE_MOUNT,
};
