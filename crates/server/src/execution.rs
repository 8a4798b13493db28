//! Wiring of the execution manager: the sandbox (found and probed at start), workspaces, limits
//! and the manager's settings, from the configuration.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use agent::llm::{ApiKey, HttpOptions, LlmConfig, WireFormat};
use agent::planner::AgentSettings;
use agent::{ExecutionManager, ManagerConfig};
use executor::{Limits, Sandbox, SandboxConfig, Workspaces};

use crate::config::{Feature, LlmProvider, Settings};
use crate::services::Services;

/// The hidden first argument that makes the binary act as the sandbox shim (inside bwrap).
pub const SHIM_SUBCOMMAND: &str = "__sandbox-shim";

/// Open files allowed in a sandbox.
const OPEN_FILES: u64 = 1024;
/// Largest file a sandbox may write, before the workspace quota lowers it.
const FILE_SIZE: u64 = 1 << 30;

/// What `/readyz` says about the executor: `Ok` with a description, or why tasks cannot run.
pub type Readiness = Result<String, String>;

/// Finds and probes the sandbox (blocking work, on a blocking thread) and builds the manager;
/// `None` when this process runs no tasks (`AGENTICAI_MAX_CONCURRENT_TASKS=0`). Without a usable
/// sandbox the manager still starts and fails every command task with the reason; nothing ever
/// runs unsandboxed.
pub async fn manager(
    settings: &Settings,
    services: &Services,
) -> (Option<ExecutionManager>, Readiness) {
    let exec = &settings.execution;
    if exec.max_concurrent == 0 {
        return (
            None,
            Ok("this process runs no tasks (AGENTICAI_MAX_CONCURRENT_TASKS=0)".to_owned()),
        );
    }
    let sandbox = if settings.feature_enabled(Feature::Shell) {
        let config = sandbox_config(settings);
        match tokio::task::spawn_blocking(move || Sandbox::detect(config)).await {
            Ok(Ok(sandbox)) => match sandbox.cgroup_status() {
                Ok(_) => Ok(sandbox),
                // Every run asks for cgroup limits; without them runs would be refused one by
                // one, so say it once, here.
                Err(why) => Err(format!(
                    "sandbox resource limits (cgroups) are unavailable: {why}; tasks are not run \
                     without memory, process and CPU limits"
                )),
            },
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("sandbox detection failed: {e}")),
        }
    } else {
        Err("the shell capability is switched off (AGENTICAI_FEATURES)".to_owned())
    };
    let run_as = sandbox.as_ref().ok().and_then(Sandbox::run_as);
    let sandbox = match (sandbox, run_as) {
        (Ok(s), Some(_)) => reachable(&settings.data_dir).map(|()| s),
        (other, _) => other,
    };
    let readiness = match &sandbox {
        Ok(s) => Ok(format!("bubblewrap at {}", s.bwrap_path().display())),
        Err(why) => Err(why.clone()),
    };
    if let Err(why) = &readiness {
        tracing::error!("commands cannot run: {why}");
    }
    let config = ManagerConfig {
        worker_id: worker_id(),
        max_concurrent: exec.max_concurrent,
        max_per_user: exec.max_per_user,
        lease: exec.lease,
        task_timeout: exec.task_timeout,
        output_limit: usize::try_from(exec.output_limit).unwrap_or(usize::MAX),
        limits: Limits {
            open_files: Some(OPEN_FILES),
            file_size_bytes: Some(FILE_SIZE),
            memory_bytes: Some(exec.memory_bytes),
            pids: Some(exec.pids),
            cpu_millis: Some(exec.cpu_millis),
            ..Limits::default()
        },
        runtime_dir: settings.data_dir.join("run"),
        agent: agent_settings(settings),
    };
    let workspaces = Workspaces::new(
        settings.data_dir.join("workspaces"),
        exec.workspace_quota,
        run_as,
    );
    let manager = ExecutionManager::new(
        config,
        services.db.clone(),
        services.bus.clone(),
        sandbox,
        Some(services.keyring.clone()),
        workspaces,
    );
    (Some(manager), readiness)
}

/// The agent's model and limits, when a provider is configured and the `agent` feature is on.
/// A provider that cannot be built (checked settings make this rare) is logged, and agent tasks
/// then fail with `agent_unavailable`.
pub fn agent_settings(settings: &Settings) -> Option<AgentSettings> {
    if !settings.agent_enabled() {
        return None;
    }
    let format = match settings.llm_provider {
        LlmProvider::None => return None,
        LlmProvider::Openai => WireFormat::OpenAi,
        LlmProvider::Anthropic => WireFormat::Anthropic,
    };
    let config = LlmConfig {
        format,
        base_url: settings.llm_base_url.clone(),
        api_key: settings
            .llm_api_key
            .as_ref()
            .map(|k| ApiKey::new(k.expose())),
        model: settings.llm_model.clone().unwrap_or_default(),
        http: HttpOptions::default(),
    };
    match agent::llm::provider(config) {
        Ok(provider) => Some(AgentSettings {
            provider,
            limits: settings.agent_limits.clone(),
        }),
        Err(e) => {
            tracing::error!(error = %e, "the LLM provider cannot be used; agent tasks will fail");
            None
        }
    }
}

fn sandbox_config(settings: &Settings) -> SandboxConfig {
    let shim = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut config = SandboxConfig::new(shim);
    config.shim_args = vec![OsString::from(SHIM_SUBCOMMAND)];
    config.bwrap = settings.execution.bwrap.clone();
    config.run_as = settings.execution.sandbox_user;
    config
}

/// bwrap runs as an unprivileged host user and must reach the workspaces and runtime state
/// beneath the data directory. The data directory itself gets the search (`x`) bit for others —
/// not read — when missing; an ancestor without it is reported, not changed.
fn reachable(data_dir: &Path) -> Result<(), String> {
    let dir = std::fs::canonicalize(data_dir)
        .map_err(|e| format!("data directory {}: {e}", data_dir.display()))?;
    let mode = std::fs::metadata(&dir)
        .map_err(|e| format!("data directory {}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o001 == 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o001))
            .map_err(|e| format!("cannot make {} traversable (o+x): {e}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "made the data directory traversable (o+x) for the sandbox user");
    }
    for ancestor in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)
            .map_err(|e| format!("{}: {e}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "the sandbox user cannot reach the data directory: {} is not traversable by \
                 others; run `chmod o+x {}` or move AGENTICAI_DATA_DIR",
                ancestor.display(),
                ancestor.display()
            ));
        }
    }
    Ok(())
}

/// A name for this process's workers: host-unique and random.
fn worker_id() -> String {
    let suffix = domain::random_string(10).unwrap_or_else(|_| std::process::id().to_string());
    format!("wrk-{suffix}")
}
