//! Per-user persistent workspaces and their size cap.
//!
//! Each user has one directory `ROOT/<user_id>` (mode `0700`, owned by the sandbox's host uid so
//! bwrap — which does not run as host root — can bind it, and no other unprivileged host user can
//! read it). It is bound at `/workspace` in that user's sandboxes only.
//!
//! # Quota enforcement
//!
//! Usage is measured before each run by walking the tree ([`Workspaces::prepare`]; symlinks are
//! not followed, at most [`MAX_WALK_ENTRIES`] entries are visited — a tree larger than that counts
//! as over quota). The run then gets `RLIMIT_FSIZE` ([`Workspace::limits_for_run`]):
//!
//! * under quota: `min(configured file-size cap, remaining room)`, so no single file written in the
//!   run can take the workspace more than one file past its quota;
//! * over quota: `0` — every write that would grow a file fails with `EFBIG`, while reading,
//!   truncating and deleting still work, so the user can clean up. The caller should tell the user
//!   (`Workspace::over_quota`).
//!
//! This is a per-file bound, not a hard filesystem quota: a run may write many files each up to
//! the remaining room. The next run sees the total and is clamped to zero. (A hard bound needs
//! filesystem quotas or a per-user loop-mounted image; not done.) `/tmp` is a per-run tmpfs and is
//! bounded by the run's memory cgroup limit (tmpfs pages are charged to it).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sandbox::Limits;

/// The most directory entries one usage walk visits.
pub const MAX_WALK_ENTRIES: u64 = 1_000_000;

/// The workspace root and its policy.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
    quota_bytes: u64,
    owner: Option<(u32, u32)>,
}

/// One user's workspace as measured just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The host directory to use as [`crate::SandboxSpec::workspace`].
    pub path: PathBuf,
    /// Bytes used (allocated blocks of regular files, directories and symlinks).
    pub used_bytes: u64,
    /// The configured quota.
    pub quota_bytes: u64,
    /// Whether `used_bytes` has reached the quota (or the tree was too large to measure).
    pub over_quota: bool,
}

/// Whether `id` is a valid workspace name: `[a-z0-9_-]{1,64}` and not `.`/`..`-like.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Workspaces {
    /// `owner` is the host `(uid, gid)` the sandbox runs as (see
    /// [`crate::Sandbox::run_as`]); `None` keeps the creating user's ownership.
    pub fn new(root: PathBuf, quota_bytes: u64, owner: Option<(u32, u32)>) -> Workspaces {
        Workspaces {
            root,
            quota_bytes,
            owner,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates (if needed) and measures `ROOT/<user_id>`. The root is created mode `0711`
    /// (traversable, not listable) so the unprivileged sandbox uid can reach its own directory;
    /// the user's directory is `0700` and owned by `owner`. An existing user directory that is a
    /// symlink or not a directory is refused.
    pub fn prepare(&self, user_id: &str) -> io::Result<Workspace> {
        if !valid_user_id(user_id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid workspace id {user_id:?}: expected [a-z0-9_-]{{1,64}}"),
            ));
        }
        if !self.root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&self.root)?;
        }
        let path = self.root.join(user_id);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} exists and is not a directory", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().mode(0o700).create(&path)?;
            }
            Err(e) => return Err(e),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
        let (used_bytes, complete) = usage(&path);
        Ok(Workspace {
            path,
            used_bytes,
            quota_bytes: self.quota_bytes,
            over_quota: !complete || used_bytes >= self.quota_bytes,
        })
    }
}

impl Workspace {
    /// Bytes still available under the quota.
    pub fn remaining_bytes(&self) -> u64 {
        if self.over_quota {
            0
        } else {
            self.quota_bytes.saturating_sub(self.used_bytes)
        }
    }

    /// `base` with `RLIMIT_FSIZE` clamped to the remaining room (`0` when over quota).
    pub fn limits_for_run(&self, base: &Limits) -> Limits {
        let room = self.remaining_bytes();
        let mut l = base.clone();
        l.file_size_bytes = Some(match base.file_size_bytes {
            Some(cap) => cap.min(room),
            None => room,
        });
        l
    }
}

/// Total allocated bytes beneath `dir` without following symlinks; `false` when the walk was
/// cut at [`MAX_WALK_ENTRIES`].
fn usage(dir: &Path) -> (u64, bool) {
    let mut total = 0u64;
    let mut seen = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_WALK_ENTRIES {
                return (total, false);
            }
            // DirEntry::metadata does not follow symlinks.
            let Ok(m) = e.metadata() else { continue };
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.file_type().is_dir() {
                stack.push(e.path());
            }
        }
    }
    (total, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["alice", "u-1", "a_b", "0", &"a".repeat(64)] {
            assert!(valid_user_id(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "A",
            "a b",
            "../x",
            &"a".repeat(65),
            "é",
        ] {
            assert!(!valid_user_id(bad), "{bad}");
        }
    }

    #[test]
    fn limits_clamp_to_room() {
        let ws = Workspace {
            path: PathBuf::from("/x"),
            used_bytes: 900,
            quota_bytes: 1000,
            over_quota: false,
        };
        let base = Limits {
            file_size_bytes: Some(50),
            ..Limits::default()
        };
        assert_eq!(ws.limits_for_run(&base).file_size_bytes, Some(50));
        assert_eq!(
            ws.limits_for_run(&Limits::default()).file_size_bytes,
            Some(100)
        );
        let over = Workspace {
            over_quota: true,
            ..ws
        };
        assert_eq!(over.limits_for_run(&base).file_size_bytes, Some(0));
    }
}
