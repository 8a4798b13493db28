//! Isolated execution for AgenticAI.
//!
//! * [`sandbox`]: the bubblewrap sandbox backend — one fresh sandbox per run (see its docs for
//!   exactly what is enforced), with [`shim`] (runs first inside the sandbox), [`landlock_rules`],
//!   [`seccomp`] and [`cgroup`] (per-run limits);
//! * [`workspace`]: per-user persistent workspaces and their quota;
//! * [`egress`]: the host-side egress proxy a sandbox with an environment reaches over a Unix
//!   socket;
//! * [`redact`]: removing secret values from everything a run prints.

pub mod cgroup;
pub mod egress;
pub mod landlock_rules;
pub mod redact;
pub mod sandbox;
pub mod seccomp;
pub mod shim;
pub mod workspace;

pub use sandbox::{
    DEFAULT_PATH, DEFAULT_RUN_AS, ETC_ALLOWLIST, Limits, Outcome, SANDBOX_ID, SECRETS_DIR, Sandbox,
    SandboxConfig, SandboxError, SandboxFile, SandboxSpec, WORKSPACE_MOUNT,
};
pub use workspace::{Workspace, Workspaces};
