//! Escape attempts through privilege: setuid binaries, ptrace, mount, new namespaces, and the host
//! identity the sandbox runs under.

use std::time::Duration;

use crate::support::{host_dir, is_root, processes_with, run_cmd, sandbox, spec};

/// Runs a python3 snippet (Debian's /usr/bin/python3 is inside the sandbox).
async fn python(code: &str) -> executor::Outcome {
    run_cmd(&format!("python3 -c '{code}'")).await
}

const LIBC: &str = "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); ";

#[tokio::test]
async fn no_new_privs_seccomp_and_no_capabilities() {
    let o =
        run_cmd("grep -E '^(NoNewPrivs|Seccomp|CapEff|CapPrm|CapBnd|CapAmb):' /proc/self/status")
            .await;
    assert_eq!(
        o.output,
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n\
         CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n",
        "{o:?}"
    );
}

#[tokio::test]
async fn setuid_binaries_gain_nothing() {
    for cmd in [
        "su -c id root </dev/null",
        "su root -s /bin/sh -c id </dev/null",
        "passwd -S root",
        "passwd root </dev/null",
    ] {
        let o = run_cmd(&format!("{cmd}; echo rc=$?; id -u")).await;
        assert!(!o.output.contains("uid=0"), "{cmd}: {o:?}");
        assert!(!o.output.contains("rc=0"), "{cmd}: {o:?}");
        assert!(o.output.ends_with("65534\n"), "{cmd}: {o:?}");
    }
}

#[tokio::test]
async fn ptrace_is_denied() {
    // PTRACE_TRACEME on itself would succeed without the filter.
    let o = python(&format!(
        "{LIBC}r = libc.ptrace(0, 0, 0, 0); print(r, ctypes.get_errno())"
    ))
    .await;
    assert_eq!(o.output, "-1 1\n", "{o:?}");
    let o = run_cmd("strace -f true; echo rc=$?").await;
    assert!(!o.output.contains("rc=0"), "{o:?}");
    let o = python(&format!(
        "{LIBC}import sys; iov = (ctypes.c_char * 8)(); \
         r = libc.process_vm_readv(os.getppid(), 0, 0, 0, 0, 0); print(r, ctypes.get_errno())"
    ))
    .await;
    assert_eq!(o.output, "-1 1\n", "{o:?}");
}

#[tokio::test]
async fn mount_is_denied() {
    let o = run_cmd("mkdir /tmp/m && mount -t tmpfs none /tmp/m; echo rc=$?").await;
    assert!(!o.output.contains("rc=0"), "{o:?}");
    let o = python(&format!(
        "{LIBC}r = libc.mount(b\"none\", b\"/tmp\", b\"tmpfs\", 0, None); print(r, ctypes.get_errno())"
    ))
    .await;
    assert_eq!(o.output, "-1 1\n", "{o:?}");
}

#[tokio::test]
async fn new_namespaces_are_denied() {
    for cmd in [
        "unshare -U true",
        "unshare -r id",
        "unshare -m true",
        "unshare -n true",
    ] {
        let o = run_cmd(&format!("{cmd}; echo rc=$?")).await;
        assert!(!o.output.contains("rc=0"), "{cmd}: {o:?}");
    }
    // unshare(CLONE_NEWUSER) directly, and clone() with a namespace flag.
    let o = python(&format!(
        "{LIBC}print(libc.unshare(0x10000000), ctypes.get_errno()); \
         print(libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0), ctypes.get_errno())"
    ))
    .await;
    assert_eq!(o.output, "-1 1\n-1 1\n", "{o:?}");
}

#[tokio::test]
async fn clone3_falls_back_and_threads_still_work() {
    let o = python(&format!(
        "{LIBC}print(libc.syscall(435, 0, 0), ctypes.get_errno()); \
         import threading; t = threading.Thread(target=lambda: print(\"thread ok\")); t.start(); t.join(); \
         pid = os.fork(); os._exit(0) if pid == 0 else print(\"fork ok\", os.waitpid(pid, 0)[1])"
    ))
    .await;
    assert_eq!(o.output, "-1 38\nthread ok\nfork ok 0\n", "{o:?}");
}

#[tokio::test]
async fn sandbox_processes_are_not_host_root() {
    let marker = "100.0707";
    let ws = host_dir();
    let s = spec(&format!("sleep {marker}"), ws.path());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let sb = sandbox();
    let handle = tokio::spawn(async move { sb.run(&s, rx, None).await });
    let mut pids = Vec::new();
    for _ in 0..50 {
        pids = processes_with(marker);
        if !pids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pids.is_empty(), "sandbox process not found");
    let expected = sandbox().run_as().map(|(u, _)| u);
    for pid in &pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
        let uids: Vec<u32> = uid_line
            .split_whitespace()
            .skip(1)
            .filter_map(|u| u.parse().ok())
            .collect();
        assert_eq!(uids.len(), 4, "{uid_line}");
        if is_root() {
            assert!(
                uids.iter().all(|u| Some(*u) == expected),
                "{pid}: {uid_line}"
            );
        }
        assert!(
            uids.iter().all(|u| *u != 0),
            "{pid} runs as host root: {uid_line}"
        );
    }
    assert!(tx.send(true).is_ok());
    let o = handle.await;
    assert!(matches!(o, Ok(Ok(ref o)) if o.cancelled), "{o:?}");
}

#[tokio::test]
async fn cannot_signal_outside_the_sandbox() {
    // Landlock scoping (ABI 6) plus the pid namespace: pid 1 (bwrap) is not ours to kill.
    let o = run_cmd("kill -9 1; echo rc=$?").await;
    assert!(!o.output.contains("rc=0"), "{o:?}");
}
