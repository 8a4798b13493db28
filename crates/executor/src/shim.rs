//! The shim: the first program bwrap runs inside the sandbox, after its mounts and before the
//! user's command. Plain `std`, no async runtime, single-threaded until it `exec`s.
//!
//! Arguments (after whatever leading arguments the host program needs to dispatch to
//! [`shim_main`], e.g. the server's hidden `__sandbox-shim` subcommand):
//!
//! ```text
//! --ready-fd N [--egress] [--fsize BYTES] -- COMMAND
//! ```
//!
//! In order, it:
//!
//! 1. with `--egress`, binds the egress bridge's listener on [`EGRESS_PROXY_ADDR`] (loopback of the
//!    sandbox's own network namespace);
//! 2. applies Landlock ([`crate::landlock_rules`]);
//! 3. installs the seccomp filter ([`crate::seccomp`]), which also sets `no_new_privs`;
//! 4. with `--egress`, forks the bridge: each TCP connection accepted on the listener is relayed
//!    byte for byte to a new connection on [`EGRESS_SOCKET_MOUNT`] (the host-side proxy's Unix
//!    socket), one thread per direction;
//! 5. with `--fsize N`, ignores `SIGXFSZ` and sets `RLIMIT_FSIZE` to `N`; writes one byte to the ready fd and closes it — the host's proof that setup succeeded and
//!    that nothing of the command ran before;
//! 6. `exec`s `/bin/sh -c COMMAND`.
//!
//! A failure in 1–5 prints one line on stderr and exits with one of the `EXIT_*` codes *without*
//! writing the ready byte, so the host knows the command never started.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;

/// Where the shim executable is bound (read-only) inside the sandbox.
pub const SHIM_MOUNT: &str = "/run/agenticai/shim";
/// Where the host-side egress proxy's Unix socket is bound inside the sandbox.
pub const EGRESS_SOCKET_MOUNT: &str = "/run/agenticai/egress.sock";
/// The address the egress bridge listens on inside the sandbox.
pub const EGRESS_PROXY_ADDR: &str = "127.0.0.1:3128";
/// The proxy URL set as `HTTPS_PROXY`, `HTTP_PROXY`, `https_proxy`, `http_proxy`, `ALL_PROXY`.
pub const EGRESS_PROXY_URL: &str = "http://127.0.0.1:3128";

/// Bad arguments.
pub const EXIT_USAGE: i32 = 120;
/// The egress bridge could not be set up.
pub const EXIT_EGRESS: i32 = 121;
/// Landlock could not be applied (or is unavailable).
pub const EXIT_LANDLOCK: i32 = 122;
/// The seccomp filter could not be installed.
pub const EXIT_SECCOMP: i32 = 123;
/// The ready byte could not be written, or `RLIMIT_FSIZE` could not be set.
pub const EXIT_READY: i32 = 124;
/// `exec` of `/bin/sh` failed (after the ready byte: the command counts as started).
pub const EXIT_EXEC: i32 = 127;

/// Parsed shim arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// The inherited fd to write the ready byte to.
    pub ready_fd: RawFd,
    /// Whether to start the egress bridge.
    pub egress: bool,
    /// `RLIMIT_FSIZE` to set (with `SIGXFSZ` ignored, so oversized writes fail with `EFBIG`).
    /// Set here rather than before bwrap because bwrap itself writes the secret files.
    pub file_size_bytes: Option<u64>,
    /// The command for `/bin/sh -c`.
    pub command: OsString,
}

impl ShimArgs {
    /// The argument list [`shim_main`] expects (without leading dispatch arguments).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--ready-fd".into(), self.ready_fd.to_string().into()];
        if self.egress {
            a.push("--egress".into());
        }
        if let Some(n) = self.file_size_bytes {
            a.push("--fsize".into());
            a.push(n.to_string().into());
        }
        a.push("--".into());
        a.push(self.command.clone());
        a
    }

    /// Parses what [`ShimArgs::to_args`] produces.
    pub fn parse(args: Vec<OsString>) -> Result<ShimArgs, String> {
        let mut it = args.into_iter();
        let mut ready_fd = None;
        let mut egress = false;
        let mut file_size_bytes = None;
        loop {
            let Some(a) = it.next() else {
                return Err("missing `-- COMMAND`".into());
            };
            match a.to_str() {
                Some("--ready-fd") => {
                    let v = it.next().ok_or("--ready-fd needs a value")?;
                    let fd = v
                        .to_str()
                        .and_then(|s| s.parse::<RawFd>().ok())
                        .filter(|fd| *fd > 2)
                        .ok_or("--ready-fd must be a number > 2")?;
                    ready_fd = Some(fd);
                }
                Some("--egress") => egress = true,
                Some("--fsize") => {
                    let v = it.next().ok_or("--fsize needs a value")?;
                    let n = v
                        .to_str()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or("--fsize must be a number")?;
                    file_size_bytes = Some(n);
                }
                Some("--") => break,
                _ => return Err(format!("unexpected argument {a:?}")),
            }
        }
        let command = it.next().ok_or("missing COMMAND after `--`")?;
        if it.next().is_some() {
            return Err("more than one COMMAND after `--`".into());
        }
        Ok(ShimArgs {
            ready_fd: ready_fd.ok_or("--ready-fd is required")?,
            egress,
            file_size_bytes,
            command,
        })
    }
}

fn fail(code: i32, msg: &str) -> ! {
    let _ = writeln!(io::stderr(), "agenticai sandbox setup failed: {msg}");
    std::process::exit(code)
}

/// The shim's entry point; never returns (it `exec`s the command or exits).
pub fn shim_main(args: Vec<OsString>) -> ! {
    let args = match ShimArgs::parse(args) {
        Ok(a) => a,
        Err(e) => fail(EXIT_USAGE, &e),
    };
    // The ready fd must not reach the command: close-on-exec from now on.
    // SAFETY: fcntl on an integer fd; a bad fd yields EBADF, reported below.
    if unsafe { libc::fcntl(args.ready_fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        fail(
            EXIT_USAGE,
            &format!("ready fd {}: {}", args.ready_fd, io::Error::last_os_error()),
        );
    }

    let listener = if args.egress {
        match TcpListener::bind(EGRESS_PROXY_ADDR) {
            Ok(l) => Some(l),
            Err(e) => fail(
                EXIT_EGRESS,
                &format!("egress bridge: binding {EGRESS_PROXY_ADDR}: {e}"),
            ),
        }
    } else {
        None
    };

    if let Err(e) = crate::landlock_rules::apply() {
        fail(EXIT_LANDLOCK, &e);
    }
    if let Err(e) = crate::seccomp::install() {
        fail(EXIT_SECCOMP, &e);
    }

    if let Some(listener) = listener {
        start_bridge(listener, args.ready_fd);
    }

    if let Some(n) = args.file_size_bytes {
        let rl = libc::rlimit {
            rlim_cur: n as libc::rlim_t,
            rlim_max: n as libc::rlim_t,
        };
        // SAFETY: plain syscalls on valid arguments; SIG_IGN survives exec.
        let ok = unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN) != libc::SIG_ERR
                && libc::setrlimit(libc::RLIMIT_FSIZE, &rl) == 0
        };
        if !ok {
            fail(
                EXIT_READY,
                &format!("RLIMIT_FSIZE: {}", io::Error::last_os_error()),
            );
        }
    }

    // SAFETY: the fd was validated by fcntl above; we own it and close it exactly once here.
    let mut ready = unsafe { std::fs::File::from_raw_fd(args.ready_fd) };
    if let Err(e) = ready.write_all(b"R") {
        fail(EXIT_READY, &format!("writing the ready byte: {e}"));
    }
    drop(ready);

    let err = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&args.command)
        .exec();
    let _ = writeln!(io::stderr(), "agenticai sandbox: exec /bin/sh: {err}");
    std::process::exit(EXIT_EXEC)
}

/// Forks the bridge process. The parent returns; the child serves until the sandbox ends (it
/// dies with the sandbox's pid namespace).
fn start_bridge(listener: TcpListener, ready_fd: RawFd) {
    // SAFETY: the shim is single-threaded here, so the child may do anything after fork.
    match unsafe { libc::fork() } {
        -1 => fail(
            EXIT_EGRESS,
            &format!("egress bridge: fork: {}", io::Error::last_os_error()),
        ),
        0 => {
            // SAFETY: closing our copies of inherited fds; stdout/stderr go to /dev/null so the
            // bridge never holds the run's output pipes open.
            unsafe {
                libc::close(ready_fd);
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                    libc::dup2(null, 2);
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            serve_bridge(listener);
            std::process::exit(0)
        }
        _ => drop(listener),
    }
}

fn serve_bridge(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(tcp) = conn else { continue };
        std::thread::spawn(move || relay(tcp));
    }
}

fn relay(tcp: TcpStream) {
    let Ok(unix) = UnixStream::connect(EGRESS_SOCKET_MOUNT) else {
        let _ = tcp.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(tcp2), Ok(unix2)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        pump(tcp, unix, |u| u.shutdown(Shutdown::Write));
    });
    pump(unix2, tcp2, |t| t.shutdown(Shutdown::Write));
    let _ = up.join();
}

fn pump<R: Read, W: Write>(mut from: R, mut to: W, close: impl Fn(&W) -> io::Result<()>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = close(&to);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            ready_fd: 7,
            egress: true,
            file_size_bytes: Some(0),
            command: "echo 'a b' -- x".into(),
        };
        assert_eq!(ShimArgs::parse(a.to_args()), Ok(a));
    }

    #[test]
    fn bad_args_are_rejected() {
        for bad in [
            vec![],
            vec!["--ready-fd", "1", "--", "x"],
            vec!["--ready-fd", "x", "--", "x"],
            vec!["--", "x"],
            vec!["--ready-fd", "5", "--"],
            vec!["--ready-fd", "5", "--bogus", "--", "x"],
            vec!["--ready-fd", "5", "--", "x", "y"],
        ] {
            let args = bad.into_iter().map(OsString::from).collect();
            assert!(ShimArgs::parse(args).is_err());
        }
    }
}
