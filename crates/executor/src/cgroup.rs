//! Per-run cgroups: memory, pids and CPU limits, OOM reporting, and killing whatever is left.
//!
//! # Layout
//!
//! * **cgroup v1** (one hierarchy per controller, e.g. `/sys/fs/cgroup/memory`): for each of the
//!   `pids`, `memory` and `cpu` hierarchies, the per-run cgroup is
//!   `<hierarchy>/<parent>/<run-id>`, where `<parent>` defaults to *our own* cgroup in that
//!   hierarchy (from `/proc/self/cgroup`) plus `/agenticai`.
//! * **cgroup v2** (unified): `<parent>/<run-id>` where `<parent>` defaults to our own cgroup plus
//!   `/agenticai`, with `+memory +pids +cpu` enabled in the parents' `cgroup.subtree_control`.
//!   Because of v2's "no internal processes" rule this only works when our own cgroup is the root
//!   or a delegated cgroup that holds no processes itself; otherwise configure a parent that is
//!   (e.g. a systemd `Delegate=yes` sibling). Detection reports the exact failure.
//!
//! The `pids` cgroup is created for every run (it is how leftovers are found and killed); `memory`
//! and `cpu` only when the run has such a limit. Memory: `memory.limit_in_bytes` and, when swap
//! accounting exists, `memory.memsw.limit_in_bytes` to the same value (v2: `memory.max`,
//! `memory.swap.max = 0`); the kernel's OOM killer acts inside the cgroup, and the kill is read
//! back from `memory.oom_control` (`oom_kill`, v1) or `memory.events` (`oom_kill`, v2). CPU:
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us` (v2: `cpu.max`) with a 100 ms period.
//!
//! The child joins the cgroups in `pre_exec`, before `exec` of bwrap, by writing `0` to each
//! `cgroup.procs` with raw `open`/`write`/`close` on paths formatted beforehand (no allocation
//! after `fork`). After the run, everything still in the cgroup is killed (`cgroup.kill` on v2
//! where present; otherwise each listed pid through a pidfd, after re-checking it is still in the
//! cgroup) and the directories are removed. Run ids embed our pid; cgroups left by a process that
//! no longer exists (a crash) are cleaned up by [`CgroupRoot::detect`].

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which cgroup interface is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The limits a per-run cgroup enforces (`None`: not limited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory (and, where accounted, memory+swap), in bytes.
    pub memory_bytes: Option<u64>,
    /// Number of processes/threads.
    pub pids: Option<u64>,
    /// CPU quota in millicores (1000 = one full CPU).
    pub cpu_millis: Option<u64>,
}

const CPU_PERIOD_US: u64 = 100_000;
const DEFAULT_LEAF: &str = "agenticai";

static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where per-run cgroups are created. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    version: CgroupVersion,
    /// v1: the parent directory in the pids, memory and cpu hierarchies (`None` if the
    /// hierarchy is not mounted); v2: `pids` holds the one parent directory.
    pids: PathBuf,
    memory: Option<PathBuf>,
    cpu: Option<PathBuf>,
}

struct Mount {
    root: String,
    point: PathBuf,
    fstype: String,
    options: String,
}

fn mounts() -> io::Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        out.push(Mount {
            root: unescape(l[3]),
            point: PathBuf::from(unescape(l[4])),
            fstype: r[0].to_string(),
            options: r[2].to_string(),
        });
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Our own cgroup per v1 controller name (and "" for v2), from `/proc/self/cgroup`.
fn own_cgroups() -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            out.push((String::new(), path.to_string()));
        } else {
            for c in ctrls.split(',') {
                out.push((c.to_string(), path.to_string()));
            }
        }
    }
    Ok(out)
}

/// Joins a hierarchy mount, our cgroup path and the configured parent into a directory.
fn parent_dir(mount: &Mount, own: &str, parent: Option<&str>) -> PathBuf {
    let rel = match parent {
        Some(p) => p.trim_start_matches('/').to_string(),
        None => {
            // Our path is relative to the hierarchy root; the mount may show a sub-tree of it.
            let own = own.strip_prefix(mount.root.as_str()).unwrap_or(own);
            let own = own.trim_matches('/');
            if own.is_empty() {
                DEFAULT_LEAF.to_string()
            } else {
                format!("{own}/{DEFAULT_LEAF}")
            }
        }
    };
    mount.point.join(rel)
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

fn mkdir(path: &Path) -> io::Result<()> {
    match std::fs::create_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("creating {}: {e}", path.display()),
        )),
    }
}

impl CgroupRoot {
    /// Finds the cgroup hierarchies, creates the parent directories (enabling the v2 controllers
    /// where needed), removes run cgroups left by dead processes, and checks that a run cgroup with
    /// every limit can be created and removed. `parent` overrides the default parent (see the
    /// module docs), as a path relative to each hierarchy's root.
    pub fn detect(parent: Option<&str>) -> io::Result<CgroupRoot> {
        let mounts = mounts()?;
        let own = own_cgroups()?;
        let own_of = |ctrl: &str| {
            own.iter()
                .find(|(c, _)| c == ctrl)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| "/".to_string())
        };
        let v1 = |ctrl: &str| {
            mounts
                .iter()
                .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == ctrl))
        };
        let root = if let Some(pids) = v1("pids") {
            CgroupRoot {
                version: CgroupVersion::V1,
                pids: parent_dir(pids, &own_of("pids"), parent),
                memory: v1("memory").map(|m| parent_dir(m, &own_of("memory"), parent)),
                cpu: v1("cpu").map(|m| parent_dir(m, &own_of("cpu"), parent)),
            }
        } else if let Some(unified) = mounts.iter().find(|m| m.fstype == "cgroup2") {
            let dir = parent_dir(unified, &own_of(""), parent);
            CgroupRoot {
                version: CgroupVersion::V2,
                memory: Some(dir.clone()),
                cpu: Some(dir.clone()),
                pids: dir,
            }
        } else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup hierarchy with the pids controller is mounted",
            ));
        };
        root.create_parents()?;
        root.reap_stale();
        // Prove that a fully limited run cgroup works here.
        let probe = root.create_run(&CgroupLimits {
            memory_bytes: Some(256 << 20),
            pids: Some(64),
            cpu_millis: Some(1000),
        })?;
        probe.remove()?;
        Ok(root)
    }

    fn create_parents(&self) -> io::Result<()> {
        match self.version {
            CgroupVersion::V1 => {
                for dir in [Some(&self.pids), self.memory.as_ref(), self.cpu.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    mkdir(dir)?;
                }
                Ok(())
            }
            CgroupVersion::V2 => {
                // Enable the controllers on every level from the mount down to our parent.
                let mounts = mounts()?;
                let mount = mounts
                    .iter()
                    .filter(|m| m.fstype == "cgroup2" && self.pids.starts_with(&m.point))
                    .max_by_key(|m| m.point.as_os_str().len())
                    .map(|m| m.point.clone())
                    .ok_or_else(|| io::Error::other("cgroup2 mount vanished"))?;
                mkdir(&self.pids)?;
                let rel = self.pids.strip_prefix(&mount).map_err(io::Error::other)?;
                let mut dir = mount.clone();
                let mut levels = vec![dir.clone()];
                for c in rel.components() {
                    dir.push(c);
                    levels.push(dir.clone());
                }
                for level in levels {
                    let ctl = level.join("cgroup.subtree_control");
                    let current = std::fs::read_to_string(&ctl).unwrap_or_default();
                    for c in ["memory", "pids", "cpu"] {
                        if !current.split_whitespace().any(|x| x == c) {
                            write_file(&ctl, &format!("+{c}")).map_err(|e| {
                                io::Error::new(
                                    e.kind(),
                                    format!(
                                        "{e} (cgroup v2 needs a delegated parent cgroup that holds no \
                                         processes itself; configure the sandbox cgroup parent)"
                                    ),
                                )
                            })?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Which interface is in use.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The parent directories per-run cgroups are created in.
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.pids.clone()];
        for d in [&self.memory, &self.cpu].into_iter().flatten() {
            if !v.contains(d) {
                v.push(d.clone());
            }
        }
        v
    }

    /// Removes run cgroups whose creating process no longer exists.
    fn reap_stale(&self) {
        for parent in self.parent_dirs() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(pid) = name
                    .strip_prefix('p')
                    .and_then(|r| r.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                let stale = RunCgroup {
                    version: self.version,
                    dirs: vec![e.path()],
                    procs: Vec::new(),
                    memory: None,
                    removed: false,
                };
                if let Err(err) = stale.remove() {
                    tracing::warn!(error = %err, "could not remove a stale sandbox cgroup");
                }
            }
        }
    }

    /// Creates a fresh cgroup for one run with `limits` applied. On any error, whatever was
    /// created is removed again.
    pub fn create_run(&self, limits: &CgroupLimits) -> io::Result<RunCgroup> {
        let id = format!(
            "p{}-{}",
            std::process::id(),
            RUN_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut run = RunCgroup {
            version: self.version,
            dirs: Vec::new(),
            procs: Vec::new(),
            memory: None,
            removed: false,
        };
        let add = |run: &mut RunCgroup, parent: &Path| -> io::Result<PathBuf> {
            let dir = parent.join(&id);
            std::fs::create_dir(&dir).map_err(|e| {
                io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
            })?;
            run.dirs.push(dir.clone());
            let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
                .map_err(io::Error::other)?;
            run.procs.push(procs);
            Ok(dir)
        };
        let result = (|| -> io::Result<()> {
            match self.version {
                CgroupVersion::V1 => {
                    let pids = add(&mut run, &self.pids)?;
                    if let Some(n) = limits.pids {
                        write_file(&pids.join("pids.max"), &n.to_string())?;
                    }
                    if let Some(bytes) = limits.memory_bytes {
                        let parent = self.memory.as_ref().ok_or_else(|| {
                            io::Error::other("the memory cgroup controller is not mounted")
                        })?;
                        let mem = add(&mut run, parent)?;
                        write_file(&mem.join("memory.limit_in_bytes"), &bytes.to_string())?;
                        let memsw = mem.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            write_file(&memsw, &bytes.to_string())?;
                        }
                        run.memory = Some(mem);
                    }
                    if let Some(m) = limits.cpu_millis {
                        let parent = self.cpu.as_ref().ok_or_else(|| {
                            io::Error::other("the cpu cgroup controller is not mounted")
                        })?;
                        let cpu = add(&mut run, parent)?;
                        write_file(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write_file(&cpu.join("cpu.cfs_quota_us"), &cpu_quota_us(m).to_string())?;
                    }
                }
                CgroupVersion::V2 => {
                    let dir = add(&mut run, &self.pids)?;
                    if let Some(n) = limits.pids {
                        write_file(&dir.join("pids.max"), &n.to_string())?;
                    }
                    if let Some(bytes) = limits.memory_bytes {
                        write_file(&dir.join("memory.max"), &bytes.to_string())?;
                        let swap = dir.join("memory.swap.max");
                        if swap.exists() {
                            write_file(&swap, "0")?;
                        }
                        run.memory = Some(dir.clone());
                    }
                    if let Some(m) = limits.cpu_millis {
                        write_file(
                            &dir.join("cpu.max"),
                            &format!("{} {CPU_PERIOD_US}", cpu_quota_us(m)),
                        )?;
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(run),
            Err(e) => {
                let _ = run.remove();
                Err(e)
            }
        }
    }
}

fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(1000)
}

/// One run's cgroup(s). Dropping it kills what is left and removes the directories (blocking
/// briefly); prefer [`RunCgroup::remove`] to see errors.
#[derive(Debug)]
pub struct RunCgroup {
    version: CgroupVersion,
    dirs: Vec<PathBuf>,
    procs: Vec<CString>,
    memory: Option<PathBuf>,
    removed: bool,
}

impl RunCgroup {
    /// The `cgroup.procs` files a child must write `0` to; see [`join_raw`].
    pub fn procs_files(&self) -> Vec<CString> {
        self.procs.clone()
    }

    /// The run's cgroup directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether the kernel's OOM killer killed a process of this run.
    pub fn oom_killed(&self) -> bool {
        let Some(mem) = &self.memory else {
            return false;
        };
        let (file, key) = match self.version {
            CgroupVersion::V1 => ("memory.oom_control", "oom_kill"),
            CgroupVersion::V2 => ("memory.events", "oom_kill"),
        };
        let Ok(text) = std::fs::read_to_string(mem.join(file)) else {
            return false;
        };
        text.lines().any(|l| {
            let mut it = l.split_whitespace();
            it.next() == Some(key) && it.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0
        })
    }

    /// Pids currently in the run's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    fn kill_all(&self) {
        let Some(dir) = self.dirs.first() else { return };
        if self.version == CgroupVersion::V2 {
            let kill = dir.join("cgroup.kill");
            if kill.exists() && std::fs::write(&kill, "1").is_ok() {
                return;
            }
        }
        let needle = format!(
            "/{}",
            dir.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        for pid in self.pids() {
            // SAFETY: pidfd_open takes an integer pid and flags; the fd is closed below.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
            if fd < 0 {
                continue;
            }
            // The pidfd pins the process: re-check it is still ours before signalling.
            let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|t| t.lines().any(|l| l.ends_with(&needle)))
                .unwrap_or(false);
            if ours {
                // SAFETY: a valid pidfd, a signal number, no siginfo.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd,
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                }
            }
            // SAFETY: closing the fd opened above.
            unsafe { libc::close(fd) };
        }
    }

    /// Kills everything still in the cgroup and removes its directories (retrying for up to ~2 s
    /// while dying processes are reaped).
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        self.remove_inner()
    }

    fn remove_inner(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut pending: Vec<&PathBuf> = self.dirs.iter().collect();
        // The kernel may list exiting tasks for a moment after the run: poll quickly, backing off.
        let mut pause = Duration::from_micros(500);
        loop {
            self.kill_all();
            pending.retain(|d| match std::fs::remove_dir(d) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(_) => true,
            });
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "cannot remove sandbox cgroup(s) {pending:?}: still busy"
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if !self.removed {
            self.removed = true;
            if let Err(e) = self.remove_inner() {
                tracing::warn!(error = %e, "sandbox cgroup cleanup failed");
            }
        }
    }
}

/// Moves the calling process into the cgroups whose `cgroup.procs` paths are given. Only
/// `open`/`write`/`close`: async-signal-safe, for use between `fork` and `exec`.
pub fn join_raw(procs: &[CString]) -> io::Result<()> {
    for path in procs {
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: writing one byte from a static buffer to the fd opened above, then closing it.
        let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        let err = io::Error::last_os_error();
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}
