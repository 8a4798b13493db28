//! Timeouts, cancellation, killing the whole tree, rlimits.

use std::time::Duration;

use executor::Limits;
use tokio::sync::watch;

use crate::support::{assert_nothing_left, host_dir, run, sandbox, spec};

/// A command that ignores SIGTERM and leaves background children (also ignoring it), each
/// carrying `marker` in its command line.
fn stubborn(marker: &str) -> String {
    format!(
        "trap '' TERM HUP; (trap '' TERM HUP; sleep {marker}) & \
         sh -c 'trap \"\" TERM; sleep {marker}' & nohup sleep {marker} >/dev/null 2>&1 & \
         echo started; sleep {marker}"
    )
}

#[tokio::test]
async fn timeout_kills_sleep_quickly() {
    let ws = host_dir();
    let mut s = spec("sleep 100.0101", ws.path());
    s.timeout = Duration::from_millis(500);
    let o = run(&s).await;
    assert!(o.timed_out, "{o:?}");
    assert_eq!(o.exit_code, None);
    assert!(
        o.duration < s.timeout + Duration::from_secs(2),
        "{:?}",
        o.duration
    );
    assert_nothing_left("100.0101").await;
}

#[tokio::test]
async fn timeout_leaves_no_process_behind() {
    let marker = "100.0202";
    let ws = host_dir();
    let mut s = spec(&stubborn(marker), ws.path());
    s.timeout = Duration::from_secs(1);
    let o = run(&s).await;
    assert!(o.timed_out, "{o:?}");
    assert_eq!(o.output, "started\n");
    assert!(
        o.duration < s.timeout + Duration::from_secs(2),
        "{:?}",
        o.duration
    );
    assert_nothing_left(marker).await;
}

#[tokio::test]
async fn background_children_die_when_the_command_exits() {
    let marker = "100.0303";
    let ws = host_dir();
    let s = spec(&format!("sleep {marker} & echo bye"), ws.path());
    let o = run(&s).await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    assert!(o.duration < Duration::from_secs(5), "{:?}", o.duration);
    assert_nothing_left(marker).await;
}

#[tokio::test]
async fn cancel_kills_everything_quickly() {
    let marker = "100.0404";
    let ws = host_dir();
    let s = spec(&stubborn(marker), ws.path());
    let (tx, rx) = watch::channel(false);
    let sb = sandbox();
    let handle = tokio::spawn(async move { sb.run(&s, rx, None).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(tx.send(true).is_ok());
    let cancelled_at = std::time::Instant::now();
    let o = match handle.await {
        Ok(Ok(o)) => o,
        other => panic!("run failed: {other:?}"),
    };
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    assert!(o.cancelled && !o.timed_out, "{o:?}");
    assert_eq!(o.exit_code, None);
    assert_nothing_left(marker).await;
}

#[tokio::test]
async fn already_cancelled_does_not_run_to_completion() {
    let ws = host_dir();
    let s = spec("sleep 100.0505", ws.path());
    let (_tx, rx) = watch::channel(true);
    let o = match sandbox().run(&s, rx, None).await {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert!(o.cancelled && o.duration < Duration::from_secs(2), "{o:?}");
    assert_nothing_left("100.0505").await;
}

#[tokio::test]
async fn file_size_and_open_files_limits_apply() {
    let ws = host_dir();
    let mut s = spec(
        "ulimit -f; ulimit -n; head -c 200000 /dev/zero > big; echo rc=$?",
        ws.path(),
    );
    s.limits = Limits {
        file_size_bytes: Some(100 * 1024),
        open_files: Some(32),
        ..Limits::default()
    };
    let o = run(&s).await;
    // dash reports `ulimit -f` in 512-byte blocks.
    assert!(o.output.starts_with("200\n32\n"), "{}", o.output);
    assert!(!o.output.contains("rc=0"), "{}", o.output);
    let size = std::fs::metadata(ws.path().join("big"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(size <= 100 * 1024, "{size}");
}

#[tokio::test]
async fn address_space_limit_applies() {
    let ws = host_dir();
    let mut s = spec("ulimit -v", ws.path());
    s.limits.address_space_bytes = Some(512 * 1024 * 1024);
    let o = run(&s).await;
    assert_eq!(o.output, "524288\n", "{o:?}");
}

/// A gentle, bounded "fork bomb": at most 1000 processes, stopped by the run's `pids.max` (the
/// per-run bound; `RLIMIT_NPROC` counts every process of the sandbox's host uid across concurrent
/// runs, so it is not a per-run limit and is not what is tested here). The run ends with a fork
/// failure long before the timeout, and nothing is left.
#[tokio::test]
async fn fork_bomb_is_contained() {
    let marker = "100.0606";
    let ws = host_dir();
    let mut s = spec(
        &format!("i=0; while [ $i -lt 1000 ]; do sleep {marker} & i=$((i+1)); done; wait"),
        ws.path(),
    );
    s.limits.pids = Some(64);
    s.timeout = Duration::from_secs(10);
    let o = run(&s).await;
    assert!(!o.timed_out && o.exit_code != Some(0), "{o:?}");
    assert!(o.duration < Duration::from_secs(8), "{:?}", o.duration);
    assert!(
        o.output.to_lowercase().contains("fork"),
        "pids.max not hit: {o:?}"
    );
    assert_nothing_left(marker).await;
}
