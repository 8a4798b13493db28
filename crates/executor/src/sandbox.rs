//! The bubblewrap sandbox backend.
//!
//! # What a run looks like
//!
//! [`Sandbox::run`] executes `/bin/sh -c COMMAND` under `bwrap` with:
//!
//! * `--unshare-all` (user, pid, net, ipc, uts, cgroup namespaces): **no network at all**, not even
//!   the host loopback; a fresh pid namespace, so killing it kills every descendant;
//! * `--die-with-parent` and `--new-session` (no TIOCSTI into a controlling terminal);
//! * `--uid 65534 --gid 65534` (nobody/nogroup inside) and `--cap-drop ALL`;
//! * read-only `/usr`; `/bin`, `/lib`, `/lib64`, `/sbin` are symlinks into `/usr` (merged-/usr
//!   Debian 12 host; if one of them is a real directory on the host it is ro-bound instead);
//! * only an allowlisted subset of `/etc`, read-only ([`ETC_ALLOWLIST`]: passwd, group, nsswitch,
//!   hosts, timezone, the loader cache, `alternatives`, CA certificates, shell profiles). Binding
//!   `/etc` whole is *not* safe: when `bwrap` runs as host root, the sandbox's uid 65534 is mapped
//!   to host uid 0, so files that are root-only on the host (`/etc/shadow`, SSH host keys,
//!   `/etc/ssl/private`) appear owned by the sandbox user and are readable (verified on this host);
//! * the sandbox's root (bwrap's tmpfs) remounted read-only (`--remount-ro /`), so the only
//!   writable places are `/workspace`, `/tmp` and the private `/dev`;
//! * `--proc /proc`, `--dev /dev` (bwrap's minimal device set on a private per-run tmpfs, which
//!   stays writable for `/dev/shm`), `--tmpfs /tmp` per run;
//! * the user's workspace bound read-write at `/workspace`, which is also the working directory;
//! * `--clearenv`, then exactly the variables of [`SandboxSpec::env`] on top of the defaults
//!   `PATH`, `HOME=/workspace`, `LANG=C.UTF-8`.
//!
//! Nothing else of the host is visible: not `/root`, `/work`, `/var`, `/home` or the data directory.
//!
//! Resource limits ([`Limits`]) are applied with `setrlimit` in the forked child before `exec` of
//! `bwrap`, so they are inherited by the sandboxed process. The child is put in its own process
//! group; on timeout or cancellation the whole group receives `SIGKILL`, and because `bwrap` is
//! pid 1 of the sandbox's pid namespace (and runs with `--die-with-parent`), every process inside
//! dies with it, including ones that ignore `SIGTERM` or daemonise.
//!
//! stdout and stderr are read concurrently into one buffer in arrival order, capped at
//! [`SandboxSpec::max_output_bytes`]; after the cap the pipes are still drained so the child never
//! blocks on a full pipe.
//!
//! # Running as root
//!
//! When the service runs as root (as CI does), the user namespace maps the sandbox uid to host
//! root. Mounts stay read-only and all capabilities are dropped, so this does not grant write
//! access, but it does mean: root-only *readable-by-owner* files inside the mounted trees are
//! readable (hence the `/etc` allowlist; on Debian 12 `/usr` has one such directory,
//! `/usr/share/polkit-1/rules.d`), files written to the workspace are owned by host root, and
//! `RLIMIT_NPROC` is not enforced (below). The planned fix is to run `bwrap` under a dedicated
//! unprivileged host uid (workspaces owned by it), which also makes `RLIMIT_NPROC` effective.
//!
//! # Not yet enforced
//!
//! seccomp filters, Landlock, cgroup limits (memory, CPU, pids), the egress proxy and secret
//! injection/redaction come in later slices. Note that `RLIMIT_NPROC` is *not* enforced by the
//! kernel when the host-side user running `bwrap` is root (the sandbox's uid maps to host uid 0,
//! which the kernel exempts); until the cgroup pids controller is in place, a fork bomb under a root
//! service is contained only by the wall-clock timeout and the pid-namespace kill.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

/// The `PATH` set inside the sandbox unless [`SandboxSpec::env`] overrides it.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// Where the user's workspace appears inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// The uid and gid the command runs as inside the sandbox (nobody/nogroup).
pub const SANDBOX_ID: u32 = 65534;

/// The parts of the host's `/etc` bound read-only into the sandbox (those that exist). Everything
/// else in `/etc` is absent: when `bwrap` runs as host root, the sandbox uid maps to host uid 0, so
/// root-only files such as `/etc/shadow` or SSH host keys would be readable if `/etc` were bound
/// whole.
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
    /// `bwrap` exists but could not create the sandbox's namespaces.
    #[error(
        "bubblewrap at {path} cannot create the sandbox namespaces ({detail}); enable unprivileged user \
         namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0) or run \
         with the privileges to create them; commands are never run without a sandbox"
    )]
    Unusable {
        /// The `bwrap` binary that was probed.
        path: PathBuf,
        /// Exit status and stderr of the probe.
        detail: String,
    },
    /// The spec was rejected before anything was started.
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The sandbox process could not be started (retry-safe: nothing ran).
    #[error("failed to launch the sandbox: {0}")]
    Launch(#[source] io::Error),
    /// Supervising the running sandbox failed.
    #[error("failed while supervising the sandbox: {0}")]
    Supervise(#[source] io::Error),
}

/// Resource limits applied as rlimits to the sandbox (inherited by everything inside).
/// `None` leaves the inherited limit unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_AS`: virtual address space, in bytes.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NPROC`: processes (per host uid; see the module docs for the root caveat).
    pub processes: Option<u64>,
    /// `RLIMIT_NOFILE`: open file descriptors.
    pub open_files: Option<u64>,
    /// `RLIMIT_FSIZE`: largest file that may be written, in bytes.
    pub file_size_bytes: Option<u64>,
}

/// One command to run in a fresh sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Run as `/bin/sh -c COMMAND` inside the sandbox.
    pub command: String,
    /// The user's persistent workspace directory on the host, bound read-write at `/workspace`
    /// (also the working directory).
    pub workspace: PathBuf,
    /// The only environment inside, on top of the defaults `PATH`, `HOME=/workspace`,
    /// `LANG=C.UTF-8` (which these may override).
    pub env: Vec<(String, String)>,
    /// Wall-clock limit; the whole sandbox is killed when it passes.
    pub timeout: Duration,
    /// Cap on captured stdout+stderr (merged in arrival order).
    pub max_output_bytes: usize,
    /// rlimits for the sandbox.
    pub limits: Limits,
}

/// How a sandboxed run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code of the command; `None` if it was killed by a signal (including on timeout or
    /// cancellation).
    pub exit_code: Option<i32>,
    /// Captured stdout and stderr, merged by arrival, lossy UTF-8, at most `max_output_bytes`.
    pub output: String,
    /// Whether output was cut at the cap.
    pub truncated: bool,
    /// Whether the wall-clock timeout killed the run.
    pub timed_out: bool,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    /// Wall-clock duration of the run.
    pub duration: Duration,
}

/// The bubblewrap sandbox backend.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
}

impl Sandbox {
    /// Finds `bwrap` (`$AGENTICAI_BWRAP`, else `/usr/bin/bwrap`, else `bwrap` on `PATH`) and checks
    /// that it can create the sandbox's namespaces by running `true` inside one. Fails with an
    /// actionable error otherwise; there is no unsandboxed fallback.
    /// Blocking (it waits for one short `bwrap` run); call it once at startup.
    pub fn detect() -> Result<Sandbox, SandboxError> {
        let bwrap = find_bwrap()?;
        let sandbox = Sandbox { bwrap };
        sandbox.probe()?;
        Ok(sandbox)
    }

    /// Uses a specific `bwrap` binary, after the same probe as [`Sandbox::detect`].
    pub fn with_bwrap(path: impl Into<PathBuf>) -> Result<Sandbox, SandboxError> {
        let sandbox = Sandbox { bwrap: path.into() };
        sandbox.probe()?;
        Ok(sandbox)
    }

    /// The `bwrap` binary in use.
    pub fn bwrap_path(&self) -> &Path {
        &self.bwrap
    }

    fn probe(&self) -> Result<(), SandboxError> {
        let mut cmd = std::process::Command::new(&self.bwrap);
        cmd.args(base_args())
            .args(["--tmpfs", WORKSPACE_MOUNT, "--remount-ro", "/"])
            .args(["--chdir", WORKSPACE_MOUNT])
            .args(["/bin/sh", "-c", "true"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match cmd.output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(SandboxError::Unusable {
                path: self.bwrap.clone(),
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SandboxError::NotFound {
                searched: self.bwrap.display().to_string(),
            }),
            Err(e) => Err(SandboxError::Unusable {
                path: self.bwrap.clone(),
                detail: e.to_string(),
            }),
        }
    }

    /// Runs `spec` in a fresh sandbox until it exits, times out, or `cancel` becomes `true`
    /// (dropping the sender without sending `true` does not cancel). On timeout or cancellation
    /// the sandbox's process group is killed with `SIGKILL` (while bwrap is still unreaped, so the
    /// group id cannot have been reused), which takes the whole pid namespace with it.
    pub async fn run(
        &self,
        spec: &SandboxSpec,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<Outcome, SandboxError> {
        let args = sandbox_args(spec)?;
        let limits = spec.limits.clone();

        let mut cmd = Command::new(&self.bwrap);
        cmd.args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec. It only calls `setrlimit`,
        // which is async-signal-safe, on a value captured by move; it allocates nothing and takes
        // no locks.
        unsafe {
            cmd.pre_exec(move || apply_limits(&limits));
        }

        let started = Instant::now();
        let mut child = cmd.spawn().map_err(SandboxError::Launch)?;
        let pgid = child.id().map(|p| p as libc::pid_t);

        let buf = Arc::new(Mutex::new(Capture::new(spec.max_output_bytes)));
        let readers = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(pump(s, Arc::clone(&buf)))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(pump(s, Arc::clone(&buf)))),
        ];

        let mut timed_out = false;
        let mut cancelled = false;
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::pin!(deadline);
        let mut cancel_open = true;
        if *cancel.borrow_and_update() {
            cancelled = true;
        }
        let status = loop {
            if timed_out || cancelled {
                kill_group(pgid);
                break child.wait().await.map_err(SandboxError::Supervise)?;
            }
            tokio::select! {
                status = child.wait() => break status.map_err(SandboxError::Supervise)?,
                () = &mut deadline => timed_out = true,
                changed = cancel.changed(), if cancel_open => match changed {
                    Ok(()) => cancelled = *cancel.borrow_and_update(),
                    Err(_) => cancel_open = false,
                },
            }
        };
        // No `killpg` after a normal exit: bwrap has been reaped, so its pgid may be reused by an
        // unrelated process. Nothing of the run survives anyway: when the sandbox's init (pid 1
        // of its pid namespace) exits, the kernel kills every process left in the namespace.

        for reader in readers.into_iter().flatten() {
            let abort = reader.abort_handle();
            if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
                tracing::warn!("sandbox output pipe still open after exit; abandoning it");
                abort.abort();
            }
        }
        let duration = started.elapsed();
        let (output, truncated) = match buf.lock() {
            Ok(c) => (String::from_utf8_lossy(&c.data).into_owned(), c.truncated),
            Err(poisoned) => {
                let c = poisoned.into_inner();
                (String::from_utf8_lossy(&c.data).into_owned(), c.truncated)
            }
        };
        let exit_code = if timed_out || cancelled {
            None
        } else {
            status.code()
        };
        tracing::debug!(
            ?exit_code,
            timed_out,
            cancelled,
            ?duration,
            "sandbox run finished"
        );
        Ok(Outcome {
            exit_code,
            output,
            truncated,
            timed_out,
            cancelled,
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

/// The isolation arguments shared by every invocation (everything but the workspace and env).
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

fn sandbox_args(spec: &SandboxSpec) -> Result<Vec<String>, SandboxError> {
    let ws = std::fs::canonicalize(&spec.workspace).map_err(|e| {
        SandboxError::InvalidSpec(format!(
            "workspace {} is not usable: {e}",
            spec.workspace.display()
        ))
    })?;
    if !ws.is_dir() {
        return Err(SandboxError::InvalidSpec(format!(
            "workspace {} is not a directory",
            ws.display()
        )));
    }
    let ws = ws
        .to_str()
        .ok_or_else(|| SandboxError::InvalidSpec("workspace path is not valid UTF-8".into()))?;
    if spec.command.contains('\0') {
        return Err(SandboxError::InvalidSpec(
            "command contains a NUL byte".into(),
        ));
    }
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

    let mut a = base_args();
    a.extend([
        "--bind".into(),
        ws.to_string(),
        WORKSPACE_MOUNT.into(),
        "--remount-ro".into(),
        "/".into(),
        "--chdir".into(),
        WORKSPACE_MOUNT.into(),
    ]);
    for (k, v) in env {
        a.extend(["--setenv".into(), k, v]);
    }
    a.extend([
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        spec.command.clone(),
    ]);
    Ok(a)
}

fn apply_limits(limits: &Limits) -> io::Result<()> {
    let pairs = [
        (libc::RLIMIT_AS, limits.address_space_bytes),
        (libc::RLIMIT_NPROC, limits.processes),
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_FSIZE, limits.file_size_bytes),
    ];
    for (resource, value) in pairs {
        if let Some(v) = value {
            let rl = libc::rlimit {
                rlim_cur: v as libc::rlim_t,
                rlim_max: v as libc::rlim_t,
            };
            // SAFETY: `rl` is a valid, initialised rlimit that outlives the call.
            if unsafe { libc::setrlimit(resource, &rl) } != 0 {
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
}

impl Capture {
    fn new(cap: usize) -> Self {
        Capture {
            data: Vec::with_capacity(cap.min(64 * 1024)),
            cap,
            truncated: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.data.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        let take = chunk.len().min(room);
        self.data.extend_from_slice(&chunk[..take]);
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
