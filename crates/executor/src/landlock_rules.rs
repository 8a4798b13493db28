//! The Landlock ruleset the shim applies inside the sandbox, after bwrap's mounts.
//!
//! * everything (`/`): read files, list directories, execute — nothing else;
//! * beneath [`WRITABLE_DIRS`] (`/workspace`, `/tmp`, `/dev/shm`): every filesystem right;
//! * the harmless character devices in [`WRITABLE_DEVICES`] (`/dev/null`, `/dev/zero`, `/dev/full`,
//!   `/dev/random`, `/dev/urandom`, `/dev/tty`): read and write.
//!
//! Handled rights are those of Landlock ABI 5 (including `refer`, `truncate` and `ioctl_dev`),
//! applied best-effort: on an older kernel the rights it does not know are not restricted, but the
//! ruleset must be enforced at least partially — a kernel without Landlock is refused. Where the
//! kernel supports it (ABI 6), the sandbox is also *scoped*: it cannot signal processes outside its
//! Landlock domain (bwrap's init, the host) nor connect to abstract Unix sockets created outside it.
//!
//! Landlock is defence in depth under bwrap's read-only mounts: it also denies writes through
//! anything bwrap leaves writable (the private `/dev` tmpfs, `/run/secrets`) and keeps holding if a
//! mount were ever misconfigured.

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, RestrictionStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

/// Directories beneath which the sandboxed command may create, write and delete.
pub const WRITABLE_DIRS: &[&str] = &["/workspace", "/tmp", "/dev/shm"];

/// Device files the sandboxed command may open for writing.
pub const WRITABLE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

const FS_ABI: ABI = ABI::V5;
const SCOPE_ABI: ABI = ABI::V6;

/// Applies the ruleset to the calling thread (inherited across `fork` and `exec`). Returns a short
/// description of how much of it the kernel enforces.
pub fn apply() -> Result<String, String> {
    let status = restrict().map_err(|e| format!("Landlock: {e}"))?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(
            "Landlock is not available on this kernel (needs Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK \
             and `landlock` in the lsm= boot parameter); refusing to run without it"
                .to_string(),
        ),
        RulesetStatus::PartiallyEnforced => Ok("partially enforced (older Landlock ABI)".into()),
        RulesetStatus::FullyEnforced => Ok("fully enforced".into()),
    }
}

fn restrict() -> Result<RestrictionStatus, landlock::RulesetError> {
    let existing = |paths: &'static [&'static str]| {
        paths
            .iter()
            .copied()
            .filter(|p| Path::new(p).exists())
            .collect::<Vec<_>>()
    };
    let read = AccessFs::from_read(FS_ABI);
    let device_rw = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
    Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(FS_ABI))?
        .scope(Scope::from_all(SCOPE_ABI))?
        .create()?
        .add_rules(path_beneath_rules(["/"], read))?
        .add_rules(path_beneath_rules(
            existing(WRITABLE_DIRS),
            AccessFs::from_all(FS_ABI),
        ))?
        .add_rules(path_beneath_rules(existing(WRITABLE_DEVICES), device_rw))?
        .restrict_self()
}
