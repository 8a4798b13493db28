//! Escape attempts through resources: fork bombs, memory bombs, CPU spinning, leftovers.

use std::time::Duration;

use executor::{Limits, SandboxError};

use crate::support::{
    assert_nothing_left, host_dir, leftover_cgroups, run, sandbox, spec, try_run,
};

/// A real fork bomb, contained by the pids cgroup (not by the timeout: that is 20 s).
#[tokio::test]
async fn fork_bomb_is_stopped_by_the_pids_cgroup() {
    let ws = host_dir();
    let mut s = spec(
        "python3 -c 'import os\nn = 0\ntry:\n  while True:\n    if os.fork() == 0:\n      import time; time.sleep(100.0808)\n    n += 1\nexcept OSError as e:\n  print(\"stopped after\", n, e.errno)'",
        ws.path(),
    );
    s.limits.pids = Some(32);
    let o = run(&s).await;
    assert!(!o.timed_out, "{o:?}");
    assert!(o.duration < Duration::from_secs(10), "{:?}", o.duration);
    // EAGAIN (11) from fork once pids.max is reached, after fewer than 32 children.
    let stopped: Option<u32> = o
        .output
        .strip_prefix("stopped after ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    assert!(matches!(stopped, Some(n) if n < 32), "{o:?}");
    assert!(o.output.trim_end().ends_with(" 11"), "{o:?}");
    assert_nothing_left("100.0808").await;
    assert!(leftover_cgroups().is_empty(), "{:?}", leftover_cgroups());
}

#[tokio::test]
async fn memory_bomb_is_oom_killed_and_reported() {
    let ws = host_dir();
    let mut s = spec(
        "python3 -c 'b = b\"x\" * (512 << 20); print(\"ALLOCATED\")'",
        ws.path(),
    );
    s.limits.memory_bytes = Some(64 << 20);
    let o = run(&s).await;
    assert!(o.oom_killed, "{o:?}");
    assert!(!o.output.contains("ALLOCATED"), "{o:?}");
    assert_ne!(o.exit_code, Some(0), "{o:?}");

    let ok = run(&{
        let mut s = spec(
            "python3 -c 'b = b\"x\" * (8 << 20); print(\"ALLOCATED\")'",
            ws.path(),
        );
        s.limits.memory_bytes = Some(64 << 20);
        s
    })
    .await;
    assert_eq!(
        (ok.output.as_str(), ok.oom_killed),
        ("ALLOCATED\n", false),
        "{ok:?}"
    );
}

#[tokio::test]
async fn cpu_spin_is_killed_at_the_timeout() {
    let ws = host_dir();
    let mut s = spec("while :; do :; done", ws.path());
    s.timeout = Duration::from_secs(1);
    let o = run(&s).await;
    assert!(o.timed_out && o.exit_code.is_none(), "{o:?}");
    assert!(o.duration < Duration::from_secs(3), "{:?}", o.duration);
    assert!(leftover_cgroups().is_empty(), "{:?}", leftover_cgroups());
}

#[tokio::test]
async fn cpu_quota_throttles() {
    let ws = host_dir();
    let code = "import time\nstart = time.monotonic()\nwhile time.monotonic() - start < 1.0: pass\nprint(round(time.process_time(), 2))";
    let mut s = spec(&format!("python3 -c '{code}'"), ws.path());
    s.limits.cpu_millis = Some(200);
    let o = run(&s).await;
    let cpu: f64 = o.output.trim().parse().unwrap_or(f64::MAX);
    // 0.2 CPU over one second of wall time (plus interpreter start-up).
    assert!(cpu < 0.5, "used {cpu} s of CPU: {o:?}");
}

#[tokio::test]
async fn nothing_survives_the_run_and_the_cgroup_is_removed() {
    let marker = "100.0909";
    let ws = host_dir();
    let mut s = spec(
        &format!(
            "setsid sh -c 'trap \"\" TERM HUP; sleep {marker}' </dev/null >/dev/null 2>&1 & \
             (nohup sleep {marker} >/dev/null 2>&1 &) ; echo started"
        ),
        ws.path(),
    );
    s.limits.pids = Some(64);
    let o = run(&s).await;
    assert_eq!(o.output, "started\n", "{o:?}");
    assert_nothing_left(marker).await;
    assert!(leftover_cgroups().is_empty(), "{:?}", leftover_cgroups());
}

#[tokio::test]
async fn cgroup_limits_are_refused_when_cgroups_are_off() {
    let mut config = crate::support::config();
    config.cgroups = false;
    let sb = match executor::Sandbox::detect(config) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert!(sb.cgroup_status().is_err());
    let ws = host_dir();
    let mut s = spec("touch ran", ws.path());
    s.limits = Limits {
        memory_bytes: Some(64 << 20),
        ..Limits::default()
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let r = sb.run(&s, rx, None).await;
    assert!(
        matches!(&r, Err(e @ SandboxError::Cgroup(_)) if e.nothing_ran()),
        "{r:?}"
    );
    assert!(!ws.path().join("ran").exists());
}

#[tokio::test]
async fn cgroups_work_here() {
    // CI runs as root with cgroups mounted: limits must be available, not silently off.
    let status = sandbox().cgroup_status().map_err(str::to_string);
    assert!(status.is_ok(), "{status:?}");
    let ws = host_dir();
    let mut s = spec("cat /proc/self/cgroup", ws.path());
    s.limits.pids = Some(16);
    let r = try_run(&s).await;
    assert!(matches!(&r, Ok(o) if o.exit_code == Some(0)), "{r:?}");
}
