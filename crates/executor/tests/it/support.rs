//! Shared helpers: a detected sandbox, specs, runs, and a host-wide process scan.

use std::path::Path;
use std::time::Duration;

use std::sync::OnceLock;

use executor::{Outcome, Sandbox, SandboxConfig, SandboxSpec};
use tokio::sync::watch;

/// The shim executable built from this crate.
pub const SHIM: &str = env!("CARGO_BIN_EXE_sandbox-shim");

/// The configuration the tests use: this crate's shim, defaults otherwise.
pub fn config() -> SandboxConfig {
    SandboxConfig::new(SHIM)
}

/// The real sandbox (detected once per test process). Fails (never skips) when bwrap is missing:
/// CI installs it.
pub fn sandbox() -> Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX
        .get_or_init(|| match Sandbox::detect(config()) {
            Ok(s) => s,
            Err(e) => panic!("Sandbox::detect() failed: {e}"),
        })
        .clone()
}

/// Whether this test process runs as root (then bwrap runs as the unprivileged `run_as` uid).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh host directory under the target dir, not mounted anywhere: for host-only files.
pub fn private_dir() -> tempfile::TempDir {
    match tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")) {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temp dir: {e}"),
    }
}

/// A fresh host directory usable as a workspace: owned by the sandbox's host uid (as
/// `Workspaces::prepare` does).
pub fn host_dir() -> tempfile::TempDir {
    let d = private_dir();
    if let Some((uid, gid)) = sandbox().run_as()
        && let Err(e) = std::os::unix::fs::chown(d.path(), Some(uid), Some(gid))
    {
        panic!("chown workspace: {e}");
    }
    d
}

/// A spec with sensible test defaults.
pub fn spec(command: &str, workspace: &Path) -> SandboxSpec {
    let mut s = SandboxSpec::new(command, workspace);
    s.timeout = Duration::from_secs(20);
    s.max_output_bytes = 64 * 1024;
    s
}

/// Runs `spec` without cancellation.
pub async fn run(spec: &SandboxSpec) -> Outcome {
    let (_tx, rx) = watch::channel(false);
    match sandbox().run(spec, rx, None).await {
        Ok(o) => o,
        Err(e) => panic!("sandbox run failed: {e}"),
    }
}

/// Runs a one-liner in a throwaway workspace.
pub async fn run_cmd(command: &str) -> Outcome {
    let ws = host_dir();
    run(&spec(command, ws.path())).await
}

/// Host pids (other than this test process) whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// Asserts no process mentioning `marker` survives (allowing a moment for reaping).
pub async fn assert_nothing_left(marker: &str) {
    for _ in 0..20 {
        if processes_with(marker).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "processes left behind for {marker}: {:?}",
        processes_with(marker)
    );
}

/// Runs `spec` and returns the raw result (for tests that expect an error).
pub async fn try_run(spec: &SandboxSpec) -> Result<Outcome, executor::SandboxError> {
    let (_tx, rx) = watch::channel(false);
    sandbox().run(spec, rx, None).await
}

/// Writes `contents` to `path` (panicking on failure).
pub fn write(path: &Path, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        panic!("writing {}: {e}", path.display());
    }
}

/// Per-run cgroup directories created by this test process that still exist.
pub fn leftover_cgroups() -> Vec<std::path::PathBuf> {
    let prefix = format!("p{}-", std::process::id());
    sandbox()
        .cgroup_parent_dirs()
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}
