//! Escape attempts through the network, and the egress bridge (the only way out).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use crate::support::{host_dir, run, spec, try_run};

/// A tiny stand-in for the host-side proxy: answers each line with `proxy saw: LINE`.
fn echo_proxy(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("egress.sock");
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    // The sandbox's host uid must be able to connect.
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut w) = conn.try_clone() else { return };
                for line in BufReader::new(conn).lines().map_while(Result::ok) {
                    if writeln!(w, "proxy saw: {line}").is_err() {
                        break;
                    }
                }
            });
        }
    });
    path
}

#[tokio::test]
async fn egress_goes_through_the_bridge_to_the_unix_socket() {
    let ws = host_dir();
    let sock = echo_proxy(ws.path());
    let mut s = spec(
        "echo \"$HTTPS_PROXY $HTTP_PROXY $https_proxy $http_proxy $ALL_PROXY [$NO_PROXY]\"; \
         exec 3<>/dev/tcp/127.0.0.1/3128; echo 'CONNECT example.com:443 HTTP/1.1' >&3; \
         head -n1 <&3",
        ws.path(),
    );
    s.command = format!("bash -c '{}'", s.command.replace('\'', "'\\''"));
    s.egress_socket = Some(sock);
    let o = run(&s).await;
    let url = "http://127.0.0.1:3128";
    assert_eq!(
        o.output,
        format!("{url} {url} {url} {url} {url} []\nproxy saw: CONNECT example.com:443 HTTP/1.1\n"),
        "{o:?}"
    );
}

#[tokio::test]
async fn egress_bridge_relays_binary_data_both_ways() {
    let ws = host_dir();
    let sock = echo_proxy(ws.path());
    let mut s = spec(
        "python3 -c 'import socket\ns = socket.create_connection((\"127.0.0.1\", 3128))\n\
         f = s.makefile(\"rwb\")\nfor i in range(200):\n  f.write(b\"%d %s\\n\" % (i, b\"y\" * 5000)); f.flush()\n  \
         assert f.readline() == b\"proxy saw: %d %s\\n\" % (i, b\"y\" * 5000)\nprint(\"ok\")'",
        ws.path(),
    );
    s.egress_socket = Some(sock);
    let o = run(&s).await;
    assert_eq!(o.output, "ok\n", "{o:?}");
}

#[tokio::test]
async fn with_egress_the_host_loopback_is_still_unreachable() {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    assert!(listener.set_nonblocking(true).is_ok());
    let ws = host_dir();
    let sock = echo_proxy(ws.path());
    let mut s = spec(
        &format!(
            "bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo CONNECTED; \
             bash -c 'echo hi > /dev/tcp/10.0.2.2/80' && echo ROUTED; \
             cat /proc/net/route | wc -l; echo END"
        ),
        ws.path(),
    );
    s.timeout = Duration::from_secs(10);
    s.egress_socket = Some(sock);
    let o = run(&s).await;
    assert!(o.output.ends_with("1\nEND\n"), "no routes expected: {o:?}");
    assert!(
        !o.output.contains("CONNECTED") && !o.output.contains("ROUTED"),
        "{o:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );
}

#[tokio::test]
async fn an_unusable_egress_socket_means_nothing_ran() {
    let ws = host_dir();
    let mut s = spec("touch ran", ws.path());
    s.egress_socket = Some(ws.path().join("no-such.sock"));
    let r = try_run(&s).await;
    assert!(
        matches!(&r, Err(e @ executor::SandboxError::NotStarted { .. }) if e.nothing_ran() && e.is_retryable()),
        "{r:?}"
    );
    assert!(!ws.path().join("ran").exists());
}
