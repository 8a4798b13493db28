//! Sandbox setup: detection, the ready handshake, progress streaming, configuration errors.

use executor::{Sandbox, SandboxError};
use tokio::sync::{mpsc, watch};

use crate::support::{config, host_dir, sandbox, spec};

#[tokio::test]
async fn a_shim_that_fails_setup_is_refused_at_detection() {
    // Bad arguments make the shim exit before the ready byte.
    let mut c = config();
    c.shim_args = vec!["--bogus".into()];
    let r = Sandbox::detect(c);
    assert!(
        matches!(&r, Err(SandboxError::Unusable { detail, .. }) if detail.contains("never reported ready")),
        "{r:?}"
    );
}

#[tokio::test]
async fn leading_shim_args_are_passed_through() {
    // The server dispatches on a leading `__sandbox-shim`; the test shim accepts the same.
    let mut c = config();
    c.shim_args = vec!["__sandbox-shim".into()];
    let sb = match Sandbox::detect(c) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let ws = host_dir();
    let (_tx, rx) = watch::channel(false);
    let o = sb
        .run(&spec("echo via-dispatch", ws.path()), rx, None)
        .await;
    assert!(matches!(&o, Ok(o) if o.output == "via-dispatch\n"), "{o:?}");
}

#[tokio::test]
async fn run_as_root_is_refused() {
    let mut c = config();
    c.run_as = Some((0, 0));
    let r = Sandbox::detect(c);
    assert!(matches!(r, Err(SandboxError::InvalidConfig(_))), "{r:?}");
}

#[tokio::test]
async fn progress_receives_exactly_the_captured_bytes() {
    let ws = host_dir();
    let mut s = spec(
        "echo one; sleep 0.2; echo two >&2; printf 'three-and-more'",
        ws.path(),
    );
    s.max_output_bytes = 16;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_ctx, crx) = watch::channel(false);
    let o = match sandbox().run(&s, crx, Some(tx)).await {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let mut streamed = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = rx.recv().await {
        streamed.extend(chunk);
        chunks += 1;
    }
    assert_eq!(o.output, "one\ntwo\nthree-an");
    assert!(o.truncated);
    assert_eq!(String::from_utf8_lossy(&streamed), o.output);
    assert!(chunks >= 2, "output should arrive as it is produced");
}

#[tokio::test]
async fn shim_setup_failure_during_a_run_is_not_started() {
    let ws = host_dir();
    let mut s = spec("touch ran", ws.path());
    // bwrap cannot bind a missing socket: the sandbox fails before the shim runs.
    s.egress_socket = Some(ws.path().join("missing.sock"));
    let r = crate::support::try_run(&s).await;
    match r {
        Err(e @ SandboxError::NotStarted { .. }) => {
            assert!(e.nothing_ran() && e.is_retryable());
            assert!(e.to_string().contains("did not start"), "{e}");
        }
        other => panic!("expected NotStarted, got {other:?}"),
    }
    assert!(!ws.path().join("ran").exists());
}

#[tokio::test]
async fn no_inherited_fds_reach_the_command() {
    let ws = host_dir();
    let mut s = spec("ls /proc/self/fd | tr '\\n' ' '", ws.path());
    s.files = vec![executor::SandboxFile {
        path: "/run/secrets/a".into(),
        contents: b"secret".to_vec(),
    }];
    let (_tx, rx) = watch::channel(false);
    let o = sandbox().run(&s, rx, None).await;
    // 0-2 and the fd `ls` opened for the directory: no ready pipe, no memfd.
    assert!(matches!(&o, Ok(o) if o.output == "0 1 2 3 "), "{o:?}");
}
