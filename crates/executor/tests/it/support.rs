//! Shared helpers: a detected sandbox, specs, runs, and a host-wide process scan.

use std::path::Path;
use std::time::Duration;

use executor::{Limits, Outcome, Sandbox, SandboxSpec};
use tokio::sync::watch;

/// The real sandbox. Fails (never skips) when bwrap is missing: CI installs it.
pub fn sandbox() -> Sandbox {
    match Sandbox::detect() {
        Ok(s) => s,
        Err(e) => panic!("Sandbox::detect() failed: {e}"),
    }
}

/// A fresh host directory under the target dir (not mounted into any sandbox).
pub fn host_dir() -> tempfile::TempDir {
    match tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")) {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temp dir: {e}"),
    }
}

/// A spec with sensible test defaults.
pub fn spec(command: &str, workspace: &Path) -> SandboxSpec {
    SandboxSpec {
        command: command.to_string(),
        workspace: workspace.to_path_buf(),
        env: Vec::new(),
        timeout: Duration::from_secs(20),
        max_output_bytes: 64 * 1024,
        limits: Limits::default(),
    }
}

/// Runs `spec` without cancellation.
pub async fn run(spec: &SandboxSpec) -> Outcome {
    let (_tx, rx) = watch::channel(false);
    match sandbox().run(spec, rx).await {
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
