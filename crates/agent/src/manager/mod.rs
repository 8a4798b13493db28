//! The execution manager: a pool of workers over the task table.
//!
//! * [`worker`]: the claim loop — wakes on a bus hint or a poll tick, respects the global and
//!   per-user concurrency limits, and hands each claimed task to a run;
//! * [`command`]: one command task from claim to result (checks, sandbox, result) — and the
//!   checked, audited run of one shell action, which the agent's `shell` tool uses too;
//! * [`supervise`]: while a task runs — lease renewal, and noticing that the task was cancelled;
//! * [`progress`]: output chunks → redacted, coalesced `output` task events;
//! * [`recovery`]: the retry and recovery contract (what happens to an interrupted task).

pub mod command;
pub mod progress;
pub mod recovery;
pub mod supervise;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::planner::AgentSettings;
use executor::workspace::Workspaces;
use executor::{Limits, Sandbox};
use store::Db;
use store::bus::Bus;

/// How the execution manager runs tasks; built from the server's configuration.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// This process's worker name (lease owner, bus consumer).
    pub worker_id: String,
    /// Most tasks running at once in this process.
    pub max_concurrent: usize,
    /// Most RUNNING tasks of one user across the deployment (`None`: no per-user limit).
    pub max_per_user: Option<i64>,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// Wall-clock limit of one command.
    pub task_timeout: Duration,
    /// Cap on captured output (merged stdout and stderr) per task.
    pub output_limit: usize,
    /// Resource limits of every sandbox.
    pub limits: Limits,
    /// Per-task runtime state (the egress proxy's socket); removed when the task ends.
    pub runtime_dir: PathBuf,
    /// The agent's model and limits (`None`: agent tasks fail with `agent_unavailable`).
    pub agent: Option<AgentSettings>,
}

/// What every run needs; shared by the workers of one process.
#[derive(Clone)]
pub struct ExecutionManager {
    inner: Arc<Shared>,
}

struct Shared {
    config: ManagerConfig,
    db: Db,
    bus: Bus,
    /// The sandbox, or why there is none (every command task then fails with that reason).
    sandbox: Result<Sandbox, String>,
    keyring: Option<store::secrets::Keyring>,
    workspaces: Workspaces,
}

impl ExecutionManager {
    /// A manager over `db` and `bus`. `sandbox` is the detected backend, or the actionable reason
    /// there is none: tasks are then failed with it, never run unsandboxed. `keyring` decrypts
    /// environment secrets (without it, tasks in an environment with secrets fail). `workspaces`
    /// provides each user's persistent workspace.
    pub fn new(
        config: ManagerConfig,
        db: Db,
        bus: Bus,
        sandbox: Result<Sandbox, String>,
        keyring: Option<store::secrets::Keyring>,
        workspaces: Workspaces,
    ) -> ExecutionManager {
        ExecutionManager {
            inner: Arc::new(Shared {
                config,
                db,
                bus,
                sandbox,
                keyring,
                workspaces,
            }),
        }
    }

    pub(crate) fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    fn bus(&self) -> &Bus {
        &self.inner.bus
    }
}
