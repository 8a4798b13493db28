//! Helpers shared by the integration tests: free ports, child servers that die with the test,
//! unique names.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use domain::{Id, IdKind};
use tokio::time::Instant;

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A random lowercase suffix for key prefixes and bucket names (letters, digits, '-').
pub fn unique(label: &str) -> String {
    let id = Id::generate(IdKind::Task).unwrap();
    format!("agenticai-test-{label}-{}", id.as_str().replace('_', "-"))
}

/// A child process that is killed when dropped (also when a test panics).
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Starts `program args…` in its own process group, output discarded.
    pub fn spawn(program: &str, args: &[&str]) -> ChildGuard {
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        ChildGuard {
            name: program.to_owned(),
            child: Some(child),
        }
    }

    /// Kills the process (and its process group) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The group too: `moto_server` may be a wrapper script around the real server.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Panics if the process has already exited (e.g. it could not bind its port).
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
