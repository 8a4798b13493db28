//! Per-user workspaces: creation, ownership, quota enforcement through `RLIMIT_FSIZE`.

use std::os::unix::fs::MetadataExt;

use executor::Workspaces;

use crate::support::{private_dir, run, sandbox, spec};

#[tokio::test]
async fn prepare_creates_a_private_directory_owned_by_the_sandbox_uid() {
    let root = private_dir();
    let owner = sandbox().run_as();
    let ws = Workspaces::new(root.path().join("ws"), 1 << 20, owner);
    let w = match ws.prepare("carol") {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    let meta = match std::fs::metadata(&w.path) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(meta.mode() & 0o777, 0o700);
    if let Some((uid, gid)) = owner {
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    }
    assert_eq!(w.path, root.path().join("ws/carol"));
    assert!(!w.over_quota);
    for bad in ["../etc", "a/b", "", "Carol", ".."] {
        assert!(ws.prepare(bad).is_err(), "{bad}");
    }
    // A symlink planted where a workspace should be is refused, not followed.
    let link = root.path().join("ws/dave");
    assert!(std::os::unix::fs::symlink("/etc", &link).is_ok());
    assert!(ws.prepare("dave").is_err());
}

#[tokio::test]
async fn quota_limits_file_growth_and_over_quota_still_allows_cleanup() {
    let root = private_dir();
    let ws = Workspaces::new(root.path().join("ws"), 256 * 1024, sandbox().run_as());
    let w = match ws.prepare("erin") {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    // Under quota: a file may grow to the remaining room, not past it; the writer gets EFBIG
    // (SIGXFSZ is ignored), it is not killed.
    let mut s = spec(
        "head -c 1000000 /dev/zero > big; echo rc=$?; stat -c %s big",
        &w.path,
    );
    s.limits = w.limits_for_run(&executor::Limits::default());
    let o = run(&s).await;
    assert!(o.output.starts_with("head: error writing"), "{o:?}");
    assert!(o.output.contains("File too large"), "{o:?}");
    assert!(o.output.contains("rc=1\n"), "{o:?}");
    let size: u64 = o
        .output
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(size <= 256 * 1024, "{size}");

    // Fill past the quota from the host, then measure again: over quota.
    assert!(std::fs::write(w.path.join("more"), vec![1u8; 300 * 1024]).is_ok());
    let w = match ws.prepare("erin") {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    assert!(w.over_quota && w.used_bytes >= 256 * 1024, "{w:?}");
    let mut s = spec(
        "echo x > new; echo write=$?; cat more > /dev/null && echo read=0; rm big more && echo rm=0",
        &w.path,
    );
    s.limits = w.limits_for_run(&executor::Limits::default());
    assert_eq!(s.limits.file_size_bytes, Some(0));
    let o = run(&s).await;
    assert!(
        o.output.contains("write=2\n") || o.output.contains("write=1\n"),
        "{o:?}"
    );
    assert!(o.output.contains("read=0\nrm=0\n"), "{o:?}");
    let w = match ws.prepare("erin") {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    assert!(!w.over_quota, "{w:?}");
}
