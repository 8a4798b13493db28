//! The bubblewrap sandbox backend.
//!
//! # What a run looks like
//!
//! [`Sandbox::run`] starts `bwrap`, which builds the sandbox and runs the [shim](crate::shim); the
//! shim applies Landlock and seccomp, optionally starts the egress bridge, reports "ready" on a
//! pipe and `exec`s `/bin/sh -c COMMAND`. Enforced, layer by layer:
//!
//! **Host side, in the forked child before `exec` of bwrap** (async-signal-safe code only):
//!
//! * the child joins a fresh per-run cgroup ([`crate::cgroup`]): `pids` always, `memory` and `cpu`
//!   when [`Limits::memory_bytes`] / [`Limits::cpu_millis`] are set; limits `pids.max`,
//!   `memory.limit_in_bytes` (+ `memsw`), CFS quota. If any cgroup limit is requested and cannot be
//!   applied, the run is refused ([`SandboxError::Cgroup`]) — never run unlimited;
//! * rlimits ([`Limits`]: `RLIMIT_AS`, `RLIMIT_NPROC`, `RLIMIT_NOFILE`; `RLIMIT_FSIZE` is set by the
//!   shim, after bwrap has written the secret files);
//! * when the service runs as root, it drops to an unprivileged host uid/gid (default
//!   `65534:65534`, [`SandboxConfig::run_as`]) with `setgroups(0)`, `setgid`, `setuid` — so bwrap
//!   creates an *unprivileged* user namespace, the sandbox's uid maps to that host uid (not to
//!   root), root-only host files stay unreadable even where mounted, and `RLIMIT_NPROC` is
//!   effective (it counts every process of that host uid, across concurrent runs: use the `pids`
//!   limit for a per-run bound);
//! * its own process group, so timeout and cancellation can `SIGKILL` the whole tree.
//!
//! **bwrap** (namespaces and mounts):
//!
//! * `--unshare-all` (user, pid, net, ipc, uts, cgroup namespaces): **no network** except the
//!   sandbox's own loopback; a fresh pid namespace, so when the command (or bwrap) dies every
//!   descendant dies too;
//! * `--die-with-parent`, `--new-session` (no TIOCSTI into a controlling terminal);
//! * `--uid 65534 --gid 65534` (nobody/nogroup inside) and `--cap-drop ALL`;
//! * read-only `/usr`; `/bin`, `/lib`, `/lib64`, `/sbin` as on the host (symlinks into `/usr` on a
//!   merged-/usr host, else ro-bound);
//! * only the [`ETC_ALLOWLIST`] of `/etc`, read-only;
//! * `--proc /proc`, `--dev /dev` (minimal device set on a per-run tmpfs), `--tmpfs /tmp`;
//! * the shim read-only at [`crate::shim::SHIM_MOUNT`]; [`SandboxSpec::files`] read-only under
//!   [`SECRETS_DIR`] (`--ro-bind-data` from memfds: the contents never touch the host's disk);
//!   with [`SandboxSpec::egress_socket`], that socket at [`crate::shim::EGRESS_SOCKET_MOUNT`];
//! * the user's workspace read-write at `/workspace` (also the working directory and `HOME`);
//! * the sandbox's root remounted read-only (`--remount-ro /`);
//! * `--clearenv`, then `PATH`, `HOME=/workspace`, `LANG=C.UTF-8`, then [`SandboxSpec::env`]
//!   (which may override those), then — with egress — the proxy variables (`HTTPS_PROXY`,
//!   `HTTP_PROXY`, `https_proxy`, `http_proxy`, `ALL_PROXY` = [`crate::shim::EGRESS_PROXY_URL`],
//!   `NO_PROXY` empty).
//!
//! Nothing else of the host is visible: not `/root`, `/work`, `/var`, `/home`, the data
//! directory, or other users' workspaces.
//!
//! **The shim, inside** ([`crate::shim`]): Landlock ([`crate::landlock_rules`]: read-only
//! everywhere, writable only beneath `/workspace`, `/tmp`, `/dev/shm` and a few harmless devices;
//! scoped signals and abstract sockets), seccomp ([`crate::seccomp`]: no namespaces, mounts,
//! ptrace, bpf, keyring, modules, …), `no_new_privs` (setuid binaries gain nothing),
//! `RLIMIT_FSIZE` with `SIGXFSZ` ignored (an oversized write fails with `EFBIG` instead of killing
//! the writer). Only after all of that succeeded does it write the ready byte and `exec` the
//! command; a run whose shim never reported ready is [`SandboxError::NotStarted`]: the command did
//! not run.
//!
//! **After the run**: everything left in the run's cgroup is killed and the cgroup removed; the
//! OOM killer's verdict is reported in [`Outcome::oom_killed`]. On timeout or cancellation the
//! process group gets `SIGKILL` (bwrap is pid 1 of the sandbox's pid namespace, so everything inside
//! dies with it).
//!
//! stdout and stderr are read concurrently into one buffer in arrival order, capped at
//! [`SandboxSpec::max_output_bytes`] and streamed to the optional progress channel; after the cap
//! the pipes are still drained so the child never blocks on a full pipe.
//!
//! # What needs what
//!
//! * unprivileged user namespaces (`user.max_user_namespaces > 0`; on Debian
//!   `kernel.unprivileged_userns_clone=1`), since bwrap runs as the unprivileged `run_as` uid;
//! * Landlock (Linux ≥ 5.13, `landlock` in the active LSMs) and seccomp filters;
//! * cgroup limits: write access to the cgroup hierarchies (root, or a delegated subtree);
//! * the shim executable, the workspace root and the egress socket must be reachable by the
//!   `run_as` uid on the host (bwrap resolves the bind sources with its credentials): every parent
//!   directory needs `o+x` (or group access), the egress socket must be connectable by that uid.
//!
//! # Why the default host uid is 65534
//!
//! `nobody` owns no files, so a sandbox escaping to the host's filesystem could read only
//! world-readable files; it exists on every Debian system, so nothing has to be created before the
//! first run. Its drawback is that other host services running as `nobody` share it (they could
//! signal or ptrace sandbox processes, and share `RLIMIT_NPROC`); production installations should
//! create a dedicated system user and configure it in [`SandboxConfig::run_as`].

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::cgroup::{CgroupLimits, CgroupRoot, CgroupVersion, RunCgroup};
use crate::shim::{EGRESS_PROXY_URL, EGRESS_SOCKET_MOUNT, SHIM_MOUNT, ShimArgs};

/// The `PATH` set inside the sandbox unless [`SandboxSpec::env`] overrides it.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// Where the user's workspace appears inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Where [`SandboxSpec::files`] may be placed inside the sandbox.
pub const SECRETS_DIR: &str = "/run/secrets";

/// The uid and gid the command runs as inside the sandbox (nobody/nogroup).
pub const SANDBOX_ID: u32 = 65534;

/// The default host uid/gid bwrap runs as when the service runs as root (nobody/nogroup).
pub const DEFAULT_RUN_AS: (u32, u32) = (65534, 65534);

/// Largest total size of [`SandboxSpec::files`].
pub const MAX_FILES_BYTES: usize = 16 << 20;

/// The parts of the host's `/etc` bound read-only into the sandbox (those that exist). Everything
/// else in `/etc` is absent (no `/etc/shadow`, SSH host keys, `/etc/ssl/private`, service
/// configuration).
pub const ETC_ALLOWLIST: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ca-certificates.conf",
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/inputrc",
    "/etc/mime.types",
    "/etc/debian_version",
    "/etc/os-release",
];

/// How long to wait for the output pipes to close after the sandbox has exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What went wrong setting up or supervising a sandbox. A command failing inside the sandbox is
/// not an error: it is an [`Outcome`] with a non-zero exit code.
///
/// [`SandboxError::nothing_ran`] tells whether the command certainly did not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `bwrap` was not found; nothing is ever run unsandboxed.
    #[error(
        "bubblewrap (bwrap) not found at {searched}: install it (Debian/Ubuntu: `apt-get install bubblewrap`) \
         or set AGENTICAI_BWRAP to its path; commands are never run without a sandbox"
    )]
    NotFound {
        /// The locations that were tried.
        searched: String,
    },
    /// `bwrap` or the shim cannot build the sandbox on this system (found by
    /// [`Sandbox::detect`]'s probe).
    #[error(
        "the sandbox ({path}) cannot be set up on this system: {detail}. It needs unprivileged user \
         namespaces (sysctl user.max_user_namespaces>0, on Debian kernel.unprivileged_userns_clone=1), \
         Landlock (Linux >= 5.13 with landlock among the active LSMs) and seccomp; commands are never \
         run without a sandbox"
    )]
    Unusable {
        /// The `bwrap` binary that was probed.
        path: PathBuf,
        /// Exit status and stderr of the probe.
        detail: String,
    },
    /// The configuration is unusable (e.g. the shim program does not exist, `run_as` is root).
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    /// The spec was rejected before anything was started.
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// cgroup limits were requested but the run's cgroup could not be created or configured; the
    /// run was refused (it is never run without its limits). Nothing ran.
    #[error("cgroup limits requested but unavailable, run refused: {0}")]
    Cgroup(String),
    /// The sandbox process could not be started. **The command did not start** (retry-safe).
    #[error("failed to launch the sandbox: {0}")]
    Launch(#[source] io::Error),
    /// The sandbox started but exited (or was killed on timeout) before its shim reported ready:
    /// bwrap, Landlock, seccomp or the egress bridge failed. **The command did not start**
    /// (retry-safe).
    #[error(
        "the sandbox failed during setup (exit code {exit_code:?}); the command did not start: {detail}"
    )]
    NotStarted {
        /// bwrap's exit code (the shim uses the `crate::shim::EXIT_*` codes), `None` if killed.
        exit_code: Option<i32>,
        /// What bwrap or the shim printed.
        detail: String,
    },
    /// Supervising the running sandbox failed; the command may have run.
    #[error("failed while supervising the sandbox: {0}")]
    Supervise(#[source] io::Error),
}

impl SandboxError {
    /// Whether the command certainly did not start (so the caller may retry or report "not run").
    /// Only [`SandboxError::Supervise`] means it may have run.
    pub fn nothing_ran(&self) -> bool {
        !matches!(self, SandboxError::Supervise(_))
    }

    /// Whether retrying the same spec may succeed: a launch that failed transiently.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SandboxError::Launch(_) | SandboxError::NotStarted { .. }
        )
    }
}

/// Resource limits for one run. `None` leaves the limit unset (rlimits: inherited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_AS`: virtual address space, in bytes.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NPROC`: processes of the sandbox's *host uid*, across all its concurrent runs.
    pub processes: Option<u64>,
    /// `RLIMIT_NOFILE`: open file descriptors.
    pub open_files: Option<u64>,
    /// `RLIMIT_FSIZE`: largest file that may be written, in bytes (`0`: no file may grow; see
    /// [`crate::workspace`] for the quota).
    pub file_size_bytes: Option<u64>,
    /// cgroup memory limit (memory + swap), in bytes; the OOM killer acts inside the run.
    pub memory_bytes: Option<u64>,
    /// cgroup `pids.max`: processes and threads of this run.
    pub pids: Option<u64>,
    /// cgroup CPU quota in millicores (1000 = one CPU).
    pub cpu_millis: Option<u64>,
}

impl Limits {
    fn cgroup(&self) -> CgroupLimits {
        CgroupLimits {
            memory_bytes: self.memory_bytes,
            pids: self.pids,
            cpu_millis: self.cpu_millis,
        }
    }

    fn wants_cgroup(&self) -> bool {
        self.memory_bytes.is_some() || self.pids.is_some() || self.cpu_millis.is_some()
    }
}

/// A file placed read-only inside the sandbox (e.g. a secret).
#[derive(Clone, PartialEq, Eq)]
pub struct SandboxFile {
    /// Absolute path inside the sandbox, beneath [`SECRETS_DIR`] (e.g. `/run/secrets/token`).
    pub path: String,
    /// The contents.
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for SandboxFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .finish()
    }
}

/// One command to run in a fresh sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Run as `/bin/sh -c COMMAND` inside the sandbox.
    pub command: String,
    /// The user's persistent workspace directory on the host, bound read-write at `/workspace`
    /// (also the working directory). Must be reachable and writable by the `run_as` uid.
    pub workspace: PathBuf,
    /// Extra environment inside, on top of the defaults `PATH`, `HOME=/workspace`,
    /// `LANG=C.UTF-8` (which these may override).
    pub env: Vec<(String, String)>,
    /// Wall-clock limit; the whole sandbox is killed when it passes.
    pub timeout: Duration,
    /// Cap on captured stdout+stderr (merged in arrival order).
    pub max_output_bytes: usize,
    /// rlimits and cgroup limits for the run.
    pub limits: Limits,
    /// Files mounted read-only beneath [`SECRETS_DIR`].
    pub files: Vec<SandboxFile>,
    /// Host path of the egress proxy's Unix socket; when set, the sandbox gets the egress bridge
    /// and proxy variables. When `None` the sandbox has no network at all.
    pub egress_socket: Option<PathBuf>,
}

impl SandboxSpec {
    /// A spec with the defaults: 10 minutes, 1 MiB of output, no extra env or files, no egress,
    /// no limits.
    pub fn new(command: impl Into<String>, workspace: impl Into<PathBuf>) -> SandboxSpec {
        SandboxSpec {
            command: command.into(),
            workspace: workspace.into(),
            env: Vec::new(),
            timeout: Duration::from_secs(600),
            max_output_bytes: 1 << 20,
            limits: Limits::default(),
            files: Vec::new(),
            egress_socket: None,
        }
    }
}

/// How a sandboxed run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code of the command; `None` if the run was killed on timeout or cancellation. A
    /// command killed by a signal inside the sandbox shows as `128 + signal` (bwrap's convention).
    pub exit_code: Option<i32>,
    /// Captured stdout and stderr, merged by arrival, lossy UTF-8, at most `max_output_bytes`.
    pub output: String,
    /// Whether output was cut at the cap.
    pub truncated: bool,
    /// Whether the wall-clock timeout killed the run.
    pub timed_out: bool,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    /// Whether the kernel's OOM killer killed a process of the run (memory limit reached).
    pub oom_killed: bool,
    /// Wall-clock duration of the run.
    pub duration: Duration,
}

/// How to build sandboxes; see [`Sandbox::detect`].
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `bwrap` binary; `None`: `$AGENTICAI_BWRAP`, else `/usr/bin/bwrap`, else `PATH`.
    pub bwrap: Option<PathBuf>,
    /// The executable that runs [`crate::shim::shim_main`] (bound read-only into every sandbox;
    /// it may only depend on what is mounted there: `/usr`, i.e. glibc).
    pub shim_program: PathBuf,
    /// Arguments placed before the shim's own (e.g. `["__sandbox-shim"]` for the server binary).
    pub shim_args: Vec<OsString>,
    /// Host uid/gid to drop to before starting bwrap. `None`: [`DEFAULT_RUN_AS`] when the service
    /// runs as root, the service's own otherwise. Root is refused.
    pub run_as: Option<(u32, u32)>,
    /// Whether to use cgroups (per-run limits, leftover killing). When `false`, or when they are
    /// unavailable, runs that ask for cgroup limits are refused.
    pub cgroups: bool,
    /// Parent cgroup for per-run cgroups, relative to each hierarchy's root; `None`: our own
    /// cgroup + `/agenticai`.
    pub cgroup_parent: Option<String>,
}

impl SandboxConfig {
    /// Defaults around a shim program: bwrap found as documented, default `run_as`, cgroups on.
    pub fn new(shim_program: impl Into<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            bwrap: None,
            shim_program: shim_program.into(),
            shim_args: Vec::new(),
            run_as: None,
            cgroups: true,
            cgroup_parent: None,
        }
    }
}

/// The bubblewrap sandbox backend.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    shim: PathBuf,
    shim_args: Vec<OsString>,
    run_as: Option<(u32, u32)>,
    cgroup: Result<CgroupRoot, String>,
}

/// Everything prepared for one spawn.
struct Prepared {
    cmd: std::process::Command,
    ready_rx: OwnedFd,
    /// The parent's copies of fds the child inherits; dropped after spawn.
    inherited: Vec<OwnedFd>,
    cgroup: Option<RunCgroup>,
}

impl Sandbox {
    /// Resolves the configuration and probes it: runs `true` through bwrap and the shim (with
    /// Landlock, seccomp, the uid drop and, when available, a cgroup), so a system that cannot
    /// sandbox fails here with an actionable error. cgroups being unavailable does not fail
    /// detection — see [`Sandbox::cgroup_status`]; runs asking for cgroup limits are then refused.
    /// Blocking (one short run); call it once at startup.
    pub fn detect(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let bwrap = match &config.bwrap {
            Some(p) => p.clone(),
            None => find_bwrap()?,
        };
        if !bwrap.is_file() {
            return Err(SandboxError::NotFound {
                searched: bwrap.display().to_string(),
            });
        }
        let shim = std::fs::canonicalize(&config.shim_program).map_err(|e| {
            SandboxError::InvalidConfig(format!(
                "shim program {}: {e}",
                config.shim_program.display()
            ))
        })?;
        // SAFETY: geteuid/getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let run_as = match (config.run_as, euid) {
            (Some((0, _)) | Some((_, 0)), _) => {
                return Err(SandboxError::InvalidConfig(
                    "run_as must not be root: bwrap is never run as host root".into(),
                ));
            }
            (Some(ids), 0) => Some(ids),
            (None, 0) => Some(DEFAULT_RUN_AS),
            (Some(ids), _) if ids == (euid, egid) => None,
            (Some(ids), _) => {
                return Err(SandboxError::InvalidConfig(format!(
                    "run_as {ids:?} needs root (the service runs as {euid}:{egid})"
                )));
            }
            (None, _) => None,
        };
        let cgroup = if config.cgroups {
            CgroupRoot::detect(config.cgroup_parent.as_deref()).map_err(|e| e.to_string())
        } else {
            Err("disabled by configuration".to_string())
        };
        if let Err(e) = &cgroup {
            tracing::warn!(error = %e, "sandbox cgroup limits unavailable");
        }
        let sandbox = Sandbox {
            bwrap,
            shim,
            shim_args: config.shim_args,
            run_as,
            cgroup,
        };
        sandbox.probe()?;
        Ok(sandbox)
    }

    /// The `bwrap` binary in use.
    pub fn bwrap_path(&self) -> &Path {
        &self.bwrap
    }

    /// The host uid/gid bwrap runs as when it differs from the service's (`None`: unchanged).
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    /// Whether cgroup limits work (for readiness reporting): the cgroup version in use, or why
    /// not.
    pub fn cgroup_status(&self) -> Result<CgroupVersion, &str> {
        self.cgroup
            .as_ref()
            .map(|c| c.version())
            .map_err(|e| e.as_str())
    }

    /// The parent directories per-run cgroups are created in (empty without cgroups).
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.parent_dirs())
            .unwrap_or_default()
    }

    fn probe(&self) -> Result<(), SandboxError> {
        let spec = SandboxSpec::new("true", "/nonexistent");
        let unusable = |detail: String| SandboxError::Unusable {
            path: self.bwrap.clone(),
            detail,
        };
        let mut p = self.prepare(&spec, true)?;
        p.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = p.cmd.spawn();
        drop(p.inherited);
        let out = match child.and_then(|c| c.wait_with_output()) {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SandboxError::NotFound {
                    searched: self.bwrap.display().to_string(),
                });
            }
            Err(e) => return Err(unusable(e.to_string())),
        };
        let mut ready = [0u8; 1];
        let got = std::fs::File::from(p.ready_rx)
            .read(&mut ready)
            .unwrap_or(0);
        if let Some(cg) = p.cgroup.take()
            && let Err(e) = cg.remove()
        {
            return Err(unusable(format!("removing the probe's cgroup: {e}")));
        }
        let detail = || {
            format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )
        };
        if got != 1 {
            return Err(unusable(format!(
                "the shim never reported ready; {}",
                detail()
            )));
        }
        if !out.status.success() {
            return Err(unusable(detail()));
        }
        Ok(())
    }

    /// Validates `spec`, creates the run's cgroup and builds the bwrap command.
    /// With `tmpfs_workspace` (the probe), `/workspace` is an empty tmpfs instead of
    /// `spec.workspace`.
    fn prepare(&self, spec: &SandboxSpec, tmpfs_workspace: bool) -> Result<Prepared, SandboxError> {
        let ws = if tmpfs_workspace {
            None
        } else {
            Some(canonical_workspace(&spec.workspace)?)
        };
        if spec.command.contains('\0') {
            return Err(SandboxError::InvalidSpec(
                "command contains a NUL byte".into(),
            ));
        }
        let env = environment(spec)?;
        validate_files(&spec.files)?;
        let egress = match &spec.egress_socket {
            None => None,
            Some(p) => Some(p.to_str().ok_or_else(|| {
                SandboxError::InvalidSpec("egress socket path is not valid UTF-8".into())
            })?),
        };

        let cgroup = match &self.cgroup {
            Ok(root) => match root.create_run(&spec.limits.cgroup()) {
                Ok(cg) => Some(cg),
                Err(e) if spec.limits.wants_cgroup() => {
                    return Err(SandboxError::Cgroup(e.to_string()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox cgroup unavailable; running without one");
                    None
                }
            },
            Err(e) if spec.limits.wants_cgroup() => {
                return Err(SandboxError::Cgroup(e.clone()));
            }
            Err(_) => None,
        };

        let (ready_rx, ready_tx) = pipe().map_err(SandboxError::Launch)?;
        let mut inherited = vec![ready_tx];
        let mut a: Vec<OsString> = base_args().into_iter().map(OsString::from).collect();
        a.extend([
            "--ro-bind".into(),
            self.shim.clone().into(),
            SHIM_MOUNT.into(),
        ]);
        for f in &spec.files {
            let fd = memfd_with(&f.contents).map_err(SandboxError::Launch)?;
            a.extend([
                "--ro-bind-data".into(),
                fd.as_raw_fd().to_string().into(),
                f.path.clone().into(),
            ]);
            inherited.push(fd);
        }
        if let Some(sock) = egress {
            a.extend(["--ro-bind".into(), sock.into(), EGRESS_SOCKET_MOUNT.into()]);
        }
        match ws {
            Some(path) => a.extend(["--bind".into(), path.into(), WORKSPACE_MOUNT.into()]),
            None => a.extend(["--tmpfs".into(), WORKSPACE_MOUNT.into()]),
        }
        a.extend([
            "--remount-ro".into(),
            "/".into(),
            "--chdir".into(),
            WORKSPACE_MOUNT.into(),
        ]);
        for (k, v) in env {
            a.extend(["--setenv".into(), k.into(), v.into()]);
        }
        if egress.is_some() {
            for k in [
                "HTTPS_PROXY",
                "HTTP_PROXY",
                "https_proxy",
                "http_proxy",
                "ALL_PROXY",
            ] {
                a.extend(["--setenv".into(), k.into(), EGRESS_PROXY_URL.into()]);
            }
            a.extend(["--setenv".into(), "NO_PROXY".into(), "".into()]);
        }
        a.extend(["--".into(), SHIM_MOUNT.into()]);
        a.extend(self.shim_args.iter().cloned());
        let shim_args = ShimArgs {
            ready_fd: inherited[0].as_raw_fd(),
            egress: egress.is_some(),
            file_size_bytes: spec.limits.file_size_bytes,
            command: spec.command.clone().into(),
        };
        a.extend(shim_args.to_args());

        let mut cmd = std::process::Command::new(&self.bwrap);
        cmd.args(&a)
            .env_clear()
            .stdin(Stdio::null())
            .process_group(0);
        let procs = cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default();
        let rlimits = [
            (libc::RLIMIT_AS, spec.limits.address_space_bytes),
            (libc::RLIMIT_NPROC, spec.limits.processes),
            (libc::RLIMIT_NOFILE, spec.limits.open_files),
        ];
        let pass: Vec<RawFd> = inherited.iter().map(|f| f.as_raw_fd()).collect();
        let run_as = self.run_as;
        // SAFETY: the closure runs in the forked child before exec. It only makes async-signal-safe
        // syscalls (open/write/close, setrlimit, close_range/fcntl, setgroups/setgid/setuid) on data captured
        // by move and prepared before the fork; it allocates nothing and takes no locks.
        unsafe {
            cmd.pre_exec(move || {
                crate::cgroup::join_raw(&procs)?;
                apply_rlimits(&rlimits)?;
                // Nothing the service happens to hold without close-on-exec may reach bwrap or
                // the sandbox: mark every fd above stderr close-on-exec, then re-open ours.
                cloexec_from(3);
                for fd in &pass {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = run_as {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::getuid() != uid || libc::geteuid() != uid || libc::getegid() != gid {
                        return Err(io::Error::from_raw_os_error(libc::EPERM));
                    }
                }
                Ok(())
            });
        }
        Ok(Prepared {
            cmd,
            ready_rx,
            inherited,
            cgroup,
        })
    }

    /// Runs `spec` in a fresh sandbox until it exits, times out, or `cancel` becomes `true`
    /// (dropping the sender without sending `true` does not cancel). `progress`, when given,
    /// receives exactly the captured bytes (merged stdout/stderr, in order, up to the cap) as they
    /// arrive.
    ///
    /// On timeout or cancellation the sandbox's process group is killed with `SIGKILL` (while
    /// bwrap is still unreaped, so the group id cannot have been reused), which takes the whole
    /// pid namespace with it; afterwards anything left in the run's cgroup is killed and the
    /// cgroup removed.
    ///
    /// Errors: see [`SandboxError::nothing_ran`]. If the run was cancelled before the command
    /// started, the result is an [`Outcome`] with `cancelled` set.
    pub async fn run(
        &self,
        spec: &SandboxSpec,
        mut cancel: watch::Receiver<bool>,
        progress: Option<mpsc::UnboundedSender<Vec<u8>>>,
    ) -> Result<Outcome, SandboxError> {
        let p = self.prepare(spec, false)?;
        let Prepared {
            cmd,
            ready_rx,
            inherited,
            cgroup,
        } = p;
        // stdout and stderr share one pipe, so the output is merged in exactly the order the
        // sandbox wrote it (two pipes read concurrently can swap lines written close together).
        let (output_rx, output_tx) = pipe().map_err(SandboxError::Launch)?;
        let stderr_tx = output_tx.try_clone().map_err(SandboxError::Launch)?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdout(Stdio::from(output_tx))
            .stderr(Stdio::from(stderr_tx))
            .kill_on_drop(true);

        let started = Instant::now();
        let spawned = cmd.spawn();
        // The parent's write ends must close now, or the reader never sees the end of output.
        drop(cmd);
        drop(inherited);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = cgroup {
                    let _ = tokio::task::spawn_blocking(move || cg.remove()).await;
                }
                return Err(SandboxError::Launch(e));
            }
        };
        let pgid = child.id().map(|p| p as libc::pid_t);
        let ready_task = tokio::spawn(async move {
            let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(ready_rx) else {
                return false;
            };
            let mut b = [0u8; 1];
            matches!(rx.read(&mut b).await, Ok(1))
        });

        let buf = Arc::new(Mutex::new(Capture::new(spec.max_output_bytes, progress)));
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(output_rx)
            .map(|rx| tokio::spawn(pump(rx, Arc::clone(&buf))));
        if let Err(e) = &reader {
            tracing::error!(error = %e, "cannot read the sandbox's output");
        }

        let mut timed_out = false;
        let mut cancelled = false;
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::pin!(deadline);
        let mut cancel_open = true;
        if *cancel.borrow_and_update() {
            cancelled = true;
        }
        let waited = loop {
            if timed_out || cancelled {
                kill_group(pgid);
                break child.wait().await;
            }
            tokio::select! {
                status = child.wait() => break status,
                () = &mut deadline => timed_out = true,
                changed = cancel.changed(), if cancel_open => match changed {
                    Ok(()) => cancelled = *cancel.borrow_and_update(),
                    Err(_) => cancel_open = false,
                },
            }
        };
        // No `killpg` after a normal exit: bwrap has been reaped, so its pgid may be reused by an
        // unrelated process. Leftovers are found through the cgroup instead.

        let ready = match tokio::time::timeout(DRAIN_GRACE, ready_task).await {
            Ok(Ok(r)) => r,
            _ => false,
        };
        if let Ok(reader) = reader {
            let abort = reader.abort_handle();
            if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
                tracing::warn!("sandbox output pipe still open after exit; abandoning it");
                abort.abort();
            }
        }
        let mut oom_killed = false;
        if let Some(cg) = cgroup {
            oom_killed = cg.oom_killed();
            match tokio::task::spawn_blocking(move || cg.remove()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "sandbox cgroup cleanup failed"),
                Err(e) => tracing::error!(error = %e, "sandbox cgroup cleanup panicked"),
            }
        }
        let status = waited.map_err(SandboxError::Supervise)?;
        let duration = started.elapsed();
        let (output, truncated) = match buf.lock() {
            Ok(c) => (String::from_utf8_lossy(&c.data).into_owned(), c.truncated),
            Err(poisoned) => {
                let c = poisoned.into_inner();
                (String::from_utf8_lossy(&c.data).into_owned(), c.truncated)
            }
        };
        if !ready && !cancelled {
            return Err(SandboxError::NotStarted {
                exit_code: status.code(),
                detail: if timed_out {
                    format!("timed out during setup; {output}")
                } else {
                    output
                },
            });
        }
        let exit_code = if timed_out || cancelled {
            None
        } else {
            status.code()
        };
        tracing::debug!(
            ?exit_code,
            timed_out,
            cancelled,
            oom_killed,
            ?duration,
            "sandbox run finished"
        );
        Ok(Outcome {
            exit_code,
            output,
            truncated,
            timed_out,
            cancelled,
            oom_killed,
            duration,
        })
    }
}

fn find_bwrap() -> Result<PathBuf, SandboxError> {
    if let Some(p) = std::env::var_os("AGENTICAI_BWRAP") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(SandboxError::NotFound {
            searched: p.display().to_string(),
        });
    }
    let mut searched = vec!["/usr/bin/bwrap".to_string()];
    let default = PathBuf::from("/usr/bin/bwrap");
    if default.is_file() {
        return Ok(default);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("bwrap");
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(candidate.display().to_string());
        }
    }
    Err(SandboxError::NotFound {
        searched: searched.join(", "),
    })
}

/// The isolation arguments shared by every invocation (everything but the per-run mounts and env).
fn base_args() -> Vec<String> {
    let mut a: Vec<String> = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for dir in ["bin", "lib", "lib64", "sbin"] {
        let host = format!("/{dir}");
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    a.extend(["--symlink".into(), target.display().to_string(), host]);
                }
            }
            Ok(m) if m.is_dir() => a.extend(["--ro-bind".into(), host.clone(), host]),
            _ => {}
        }
    }
    for path in ETC_ALLOWLIST {
        a.extend(["--ro-bind-try".into(), path.to_string(), path.to_string()]);
    }
    a.extend(
        [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--clearenv",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a
}

fn canonical_workspace(path: &Path) -> Result<String, SandboxError> {
    let ws = std::fs::canonicalize(path).map_err(|e| {
        SandboxError::InvalidSpec(format!("workspace {} is not usable: {e}", path.display()))
    })?;
    if !ws.is_dir() {
        return Err(SandboxError::InvalidSpec(format!(
            "workspace {} is not a directory",
            ws.display()
        )));
    }
    ws.into_os_string()
        .into_string()
        .map_err(|_| SandboxError::InvalidSpec("workspace path is not valid UTF-8".into()))
}

fn environment(spec: &SandboxSpec) -> Result<Vec<(String, String)>, SandboxError> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), WORKSPACE_MOUNT.into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(SandboxError::InvalidSpec(format!(
                "invalid environment variable name or value: {k:?}"
            )));
        }
        env.retain(|(existing, _)| existing != k);
        env.push((k.clone(), v.clone()));
    }
    Ok(env)
}

fn validate_files(files: &[SandboxFile]) -> Result<(), SandboxError> {
    let mut total = 0usize;
    let mut seen = std::collections::HashSet::new();
    for f in files {
        let p = Path::new(&f.path);
        let bad = |why: &str| SandboxError::InvalidSpec(format!("file {:?}: {why}", f.path));
        if f.path.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let rel = p
            .strip_prefix(SECRETS_DIR)
            .map_err(|_| bad("must be an absolute path beneath /run/secrets"))?;
        let segments_ok = f.path[SECRETS_DIR.len()..]
            .strip_prefix('/')
            .is_some_and(|r| r.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
        if rel.as_os_str().is_empty()
            || !segments_ok
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad(
                "must name a file beneath /run/secrets without `.`/`..`",
            ));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(bad("given twice"));
        }
        total = total.saturating_add(f.contents.len());
    }
    if total > MAX_FILES_BYTES {
        return Err(SandboxError::InvalidSpec(format!(
            "files total {total} bytes, more than {MAX_FILES_BYTES}"
        )));
    }
    Ok(())
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec memfd holding `data`, positioned at its start.
fn memfd_with(data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: a static NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(c"agenticai-file".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh fd that we now own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(data)?;
    io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
    Ok(OwnedFd::from(file))
}

/// Marks every fd `>= first` close-on-exec (async-signal-safe: `close_range` with
/// `CLOSE_RANGE_CLOEXEC`, Linux >= 5.11; else `fcntl` over the fd range).
fn cloexec_from(first: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscalls on integer fds; failures for unused fds are expected and ignored.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return;
        }
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur.min(65536) as RawFd
        } else {
            4096
        };
        for fd in first..max {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// Async-signal-safe: `setrlimit` only.
fn apply_rlimits(limits: &[(libc::__rlimit_resource_t, Option<u64>)]) -> io::Result<()> {
    for (resource, value) in limits {
        if let Some(v) = value {
            let rl = libc::rlimit {
                rlim_cur: *v as libc::rlim_t,
                rlim_max: *v as libc::rlim_t,
            };
            // SAFETY: `rl` is a valid, initialised rlimit that outlives the call.
            if unsafe { libc::setrlimit(*resource, &rl) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn kill_group(pgid: Option<libc::pid_t>) {
    if let Some(pgid) = pgid.filter(|p| *p > 0) {
        // SAFETY: plain syscall; a positive pgid that we created with `process_group(0)`. ESRCH
        // (already gone) is expected and ignored.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

struct Capture {
    data: Vec<u8>,
    cap: usize,
    truncated: bool,
    progress: Option<mpsc::UnboundedSender<Vec<u8>>>,
}

impl Capture {
    fn new(cap: usize, progress: Option<mpsc::UnboundedSender<Vec<u8>>>) -> Self {
        Capture {
            data: Vec::with_capacity(cap.min(64 * 1024)),
            cap,
            truncated: false,
            progress,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.data.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        let take = chunk.len().min(room);
        self.data.extend_from_slice(&chunk[..take]);
        if take > 0
            && let Some(tx) = &self.progress
            && tx.send(chunk[..take].to_vec()).is_err()
        {
            self.progress = None;
        }
    }
}

async fn pump(mut src: impl AsyncRead + Unpin, buf: Arc<Mutex<Capture>>) {
    let mut chunk = vec![0u8; 8192];
    loop {
        match src.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => match buf.lock() {
                Ok(mut c) => c.push(&chunk[..n]),
                Err(poisoned) => poisoned.into_inner().push(&chunk[..n]),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading sandbox output failed");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> SandboxFile {
        SandboxFile {
            path: path.into(),
            contents: b"x".to_vec(),
        }
    }

    #[test]
    fn file_paths_are_validated() {
        for ok in ["/run/secrets/a", "/run/secrets/dir/b.txt"] {
            assert!(validate_files(&[file(ok)]).is_ok(), "{ok}");
        }
        for bad in [
            "/run/secrets",
            "/run/secrets/",
            "/run/secrets/../etc/x",
            "/run/secretsx/a",
            "/etc/passwd",
            "run/secrets/a",
            "/run/secrets/./a",
            "/run/secrets/a/",
        ] {
            assert!(validate_files(&[file(bad)]).is_err(), "{bad}");
        }
        assert!(validate_files(&[file("/run/secrets/a"), file("/run/secrets/a")]).is_err());
    }

    #[test]
    fn capture_sends_only_what_it_keeps() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut c = Capture::new(5, Some(tx));
        c.push(b"abc");
        c.push(b"defg");
        c.push(b"h");
        assert_eq!(c.data, b"abcde");
        assert!(c.truncated);
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.extend(b);
        }
        assert_eq!(got, b"abcde");
    }
}
