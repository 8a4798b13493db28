//! The seccomp filter the shim installs inside the sandbox before it runs the command.
//!
//! Default **allow**; the syscalls below fail with `EPERM` (so programs see an ordinary
//! "operation not permitted" and can fall back), except `clone3`, which fails with `ENOSYS` so
//! glibc falls back to `clone`, whose flags *can* be inspected by a classic BPF filter:
//!
//! * namespaces and mounts: `unshare`, `setns`, `clone` with any of `CLONE_NEWUSER`, `CLONE_NEWNS`,
//!   `CLONE_NEWPID`, `CLONE_NEWNET`, `CLONE_NEWIPC`, `CLONE_NEWUTS`, `CLONE_NEWCGROUP` (or
//!   `CLONE_NEWTIME`), `mount`, `umount2`, `pivot_root`, `chroot`, the new mount API (`fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `move_mount`, `open_tree`, `mount_setattr`);
//! * looking into or controlling other processes: `ptrace`, `process_vm_readv`,
//!   `process_vm_writev`, `pidfd_getfd`, `kcmp`;
//! * kernel attack surface rarely needed by build tools: `bpf`, `perf_event_open`, `userfaultfd`,
//!   `io_uring_setup`/`enter`/`register`, the keyring (`keyctl`, `add_key`, `request_key`);
//! * host administration (root-only anyway, denied as defence in depth): kernel modules, `kexec_*`,
//!   `open_by_handle_at`, `name_to_handle_at`, `acct`, `swapon`, `swapoff`, `reboot`, `syslog`,
//!   `quotactl`, `vhangup`, clock setting, and on x86_64 `iopl`, `ioperm`, `uselib`, `_sysctl`;
//! * `personality` with `ADDR_NO_RANDOMIZE`, `READ_IMPLIES_EXEC`, `ADDR_COMPAT_LAYOUT` or
//!   `MMAP_PAGE_ZERO` (querying with `0xffffffff` stays allowed).
//!
//! The filters only accept the native architecture (seccompiler kills on an architecture
//! mismatch, e.g. 32-bit `int 0x80` calls); on x86_64 an extra filter rejects x32-ABI syscall
//! numbers (`nr >= 0x40000000`), which would otherwise bypass the number-based rules.
//!
//! `PR_SET_NO_NEW_PRIVS` is set first (bwrap already sets it), so setuid binaries gain nothing.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// `clone` flags that create namespaces (`CLONE_NEWTIME` is 0x80, shared with `CSIGNAL`'s range
/// only for `clone3`, so it is not inspected on `clone`).
const NS_FLAGS: [u64; 7] = [
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// `personality(2)` flags that weaken memory protections.
const DANGEROUS_PERSONALITY: [u64; 4] = [
    0x0040000, // ADDR_NO_RANDOMIZE
    0x0400000, // READ_IMPLIES_EXEC
    0x0200000, // ADDR_COMPAT_LAYOUT
    0x0100000, // MMAP_PAGE_ZERO
];

/// Syscalls denied outright with `EPERM`.
fn denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_vhangup,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS__sysctl,
    ]);
    v
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| format!("seccomp condition: {e}"))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conds).map_err(|e| format!("seccomp rule: {e}"))
}

/// The compiled filters, in installation order.
pub fn programs() -> Result<Vec<BpfProgram>, String> {
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in denied() {
        eperm.insert(nr, Vec::new());
    }
    let mut clone_rules = Vec::new();
    for flag in NS_FLAGS {
        clone_rules.push(rule(vec![cond(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    eperm.insert(libc::SYS_clone, clone_rules);
    let mut personality_rules = Vec::new();
    for flag in DANGEROUS_PERSONALITY {
        personality_rules.push(rule(vec![
            cond(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?,
            cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, 0xffff_ffff)?,
        ])?);
    }
    eperm.insert(libc::SYS_personality, personality_rules);

    let mut enosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    enosys.insert(libc::SYS_clone3, Vec::new());

    let mut out = Vec::new();
    for (rules, errno) in [(eperm, libc::EPERM), (enosys, libc::ENOSYS)] {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            ARCH,
        )
        .map_err(|e| format!("seccomp filter: {e}"))?;
        let prog: BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| format!("seccomp compile: {e}"))?;
        out.push(prog);
    }
    #[cfg(target_arch = "x86_64")]
    out.push(x32_filter());
    Ok(out)
}

/// Rejects x32-ABI syscall numbers (bit 30 set) with `ENOSYS`.
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> BpfProgram {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.nr is at offset 0 (the architecture was checked by the earlier filters).
        ins(BPF_LD_W_ABS, 0, 0, 0),
        ins(BPF_JGE_K, 0, 1, 0x4000_0000),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

/// Sets `PR_SET_NO_NEW_PRIVS` and installs the filters on the calling thread. Call it while the
/// process is still single-threaded, just before `exec`.
pub fn install() -> Result<(), String> {
    // SAFETY: plain prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "prctl(PR_SET_NO_NEW_PRIVS): {}",
            std::io::Error::last_os_error()
        ));
    }
    for prog in programs()? {
        seccompiler::apply_filter(&prog)
            .map_err(|e| format!("installing the seccomp filter: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_compile() {
        let progs = super::programs();
        assert!(matches!(&progs, Ok(p) if p.len() >= 2), "{progs:?}");
    }
}
