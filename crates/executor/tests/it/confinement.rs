//! Isolation: identity, filesystem, network.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use crate::support::{host_dir, run, run_cmd, spec};

#[tokio::test]
async fn runs_as_nobody_without_capabilities() {
    let o = run_cmd("id -u; id -g; grep CapEff /proc/self/status").await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    assert_eq!(o.output, "65534\n65534\nCapEff:\t0000000000000000\n");
}

#[tokio::test]
async fn cannot_write_outside_workspace_and_tmp() {
    // `/dev` is bwrap's private per-run tmpfs (device nodes and /dev/shm), gone with the run.
    for target in [
        "/usr/x",
        "/etc/x",
        "/x",
        "/bin/x",
        "/proc/x",
        "/etc/passwd",
        "/opt/x",
    ] {
        let o = run_cmd(&format!("touch {target}")).await;
        assert_ne!(o.exit_code, Some(0), "{target} was writable: {o:?}");
    }
    let o = run_cmd("touch /workspace/ok /tmp/ok").await;
    assert_eq!(o.exit_code, Some(0), "{o:?}");
}

#[tokio::test]
async fn cannot_read_host_files_outside_the_mounts() {
    let secret_dir = host_dir();
    let secret = secret_dir.path().join("secret.txt");
    let written = std::fs::File::create(&secret).and_then(|mut f| f.write_all(b"TOP-SECRET\n"));
    assert!(written.is_ok(), "{written:?}");
    let ws = host_dir();
    let o = run(&spec(&format!("cat {}", secret.display()), ws.path())).await;
    assert_ne!(o.exit_code, Some(0), "{o:?}");
    assert!(!o.output.contains("TOP-SECRET"));
    for dir in [
        "/root",
        "/work",
        "/var",
        "/home",
        env!("CARGO_MANIFEST_DIR"),
    ] {
        let o = run(&spec(&format!("ls {dir}"), ws.path())).await;
        assert_ne!(o.exit_code, Some(0), "{dir} is visible: {o:?}");
    }
}

#[tokio::test]
async fn shadow_is_not_readable() {
    let o = run_cmd("cat /etc/shadow").await;
    assert_ne!(o.exit_code, Some(0), "{o:?}");
}

#[tokio::test]
async fn no_network_not_even_host_loopback() {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => panic!("local_addr: {e}"),
    };
    let nonblocking = listener.set_nonblocking(true);
    assert!(nonblocking.is_ok());
    let o = run_cmd(&format!(
        "bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo CONNECTED"
    ))
    .await;
    assert_ne!(o.exit_code, Some(0), "{o:?}");
    assert!(!o.output.contains("CONNECTED"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );

    let o = run_cmd("ip -o link 2>/dev/null || cat /proc/net/dev").await;
    assert!(
        !o.output.contains("eth"),
        "only loopback expected: {}",
        o.output
    );
}
