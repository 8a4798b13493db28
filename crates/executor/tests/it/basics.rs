//! Output, exit codes, merging, truncation, environment and workspace persistence.

use crate::support::{host_dir, run, run_cmd, spec};

#[tokio::test]
async fn echo_output_and_zero_exit() {
    let o = run_cmd("echo hello sandbox").await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    assert_eq!(o.output, "hello sandbox\n");
    assert!(!o.truncated && !o.timed_out && !o.cancelled);
}

#[tokio::test]
async fn non_zero_exit_code_is_reported() {
    let o = run_cmd("echo failing; exit 7").await;
    assert_eq!(o.exit_code, Some(7), "{o:?}");
    assert_eq!(o.output, "failing\n");
}

#[tokio::test]
async fn stdout_and_stderr_are_merged_in_arrival_order() {
    let o = run_cmd("echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three").await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    assert_eq!(o.output, "one\ntwo\nthree\n");
}

#[tokio::test]
async fn output_over_the_cap_is_truncated_and_drained() {
    let ws = host_dir();
    let mut s = spec(
        "head -c 1000000 /dev/zero | tr '\\0' x; echo done >&2",
        ws.path(),
    );
    s.max_output_bytes = 1000;
    let o = run(&s).await;
    assert_eq!(o.exit_code, Some(0), "child must not block on a full pipe");
    assert!(o.truncated);
    assert_eq!(o.output.len(), 1000);
    assert!(o.output.chars().all(|c| c == 'x'));
}

#[tokio::test]
async fn output_under_the_cap_is_not_truncated() {
    let ws = host_dir();
    let mut s = spec("printf 12345", ws.path());
    s.max_output_bytes = 5;
    let o = run(&s).await;
    assert_eq!((o.output.as_str(), o.truncated), ("12345", false));
}

#[tokio::test]
async fn environment_is_exactly_what_was_given() {
    let ws = host_dir();
    let mut s = spec("env | sort", ws.path());
    s.env = vec![("FOO".into(), "bar baz".into())];
    let o = run(&s).await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    let mut names: Vec<&str> = o
        .output
        .lines()
        .filter_map(|l| l.split('=').next())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["FOO", "HOME", "LANG", "PATH", "PWD"],
        "{}",
        o.output
    );
    assert!(o.output.contains("FOO=bar baz\n"));
    assert!(o.output.contains("HOME=/workspace\n"));
    assert!(o.output.contains("LANG=C.UTF-8\n"));
    assert!(!o.output.contains("HOME=/root"));
    assert!(!o.output.contains("CARGO"));
}

#[tokio::test]
async fn given_env_overrides_defaults() {
    let ws = host_dir();
    let mut s = spec("echo $PATH", ws.path());
    s.env = vec![("PATH".into(), "/usr/bin".into())];
    assert_eq!(run(&s).await.output, "/usr/bin\n");
}

#[tokio::test]
async fn workspace_is_cwd_and_writes_persist_on_the_host() {
    let ws = host_dir();
    let o = run(&spec("pwd; echo persisted > note.txt", ws.path())).await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    assert_eq!(o.output, "/workspace\n");
    let on_host = std::fs::read_to_string(ws.path().join("note.txt"));
    assert_eq!(on_host.ok().as_deref(), Some("persisted\n"));
    let o = run(&spec("cat note.txt", ws.path())).await;
    assert_eq!(o.output, "persisted\n", "the next run sees it");
}

#[tokio::test]
async fn tmp_is_private_to_each_run() {
    let ws = host_dir();
    let o = run(&spec("echo x > /tmp/f && cat /tmp/f", ws.path())).await;
    assert_eq!(o.output, "x\n");
    let o = run(&spec(
        "test -e /tmp/f && echo leaked || echo fresh",
        ws.path(),
    ))
    .await;
    assert_eq!(o.output, "fresh\n");
}

#[tokio::test]
async fn missing_workspace_is_an_error_not_a_run() {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let s = spec("true", std::path::Path::new("/nonexistent/agenticai-ws"));
    let r = crate::support::sandbox().run(&s, rx, None).await;
    assert!(
        matches!(r, Err(executor::SandboxError::InvalidSpec(_))),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_bwrap_that_cannot_sandbox_is_refused_with_a_clear_error() {
    let mut config = crate::support::config();
    config.bwrap = Some("/bin/false".into());
    let r = executor::Sandbox::detect(config);
    match r {
        Err(e @ executor::SandboxError::Unusable { .. }) => {
            assert!(e.to_string().contains("never run without a sandbox"), "{e}");
        }
        other => panic!("expected Unusable, got {other:?}"),
    }
}
