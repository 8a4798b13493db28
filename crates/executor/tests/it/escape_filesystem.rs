//! Escape attempts through the filesystem: writing outside the writable places, reading host
//! files that are not mounted, other users' workspaces, symlinks planted in the workspace.

use std::os::unix::fs::PermissionsExt;

use executor::Workspaces;

use crate::support::{host_dir, private_dir, run, run_cmd, sandbox, spec, write};

#[tokio::test]
async fn writes_outside_workspace_tmp_and_dev_shm_fail() {
    // `/dev` is a writable tmpfs as far as bwrap is concerned: Landlock is what stops these.
    for target in [
        "/dev/x",
        "/dev/null.d",
        "/run/x",
        "/run/agenticai/x",
        "/run/agenticai/shim",
        "/proc/self/oom_score_adj",
    ] {
        let o = run_cmd(&format!("echo 1 > {target} && echo WROTE")).await;
        assert!(!o.output.contains("WROTE"), "{target} was writable: {o:?}");
    }
    let o = run_cmd(
        "echo a > /workspace/a && echo b > /tmp/b && echo c > /dev/shm/c && echo d > /dev/null \
         && mkdir /workspace/d && rm -r /workspace/d /workspace/a && echo OK",
    )
    .await;
    assert_eq!(o.output, "OK\n", "{o:?}");
}

#[tokio::test]
async fn host_data_dir_and_master_key_are_unreachable() {
    let data = private_dir();
    let key = data.path().join("master.key");
    write(&key, "FAKE-MASTER-KEY-0123456789");
    let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    let db = data.path().join("agenticai.db");
    write(&db, "FAKE-DATABASE");
    let ws = host_dir();
    let o = run(&spec(
        &format!(
            "cat {k}; cat {d}; ls -la {dir}; cat /proc/1/root{k}; cat /proc/self/root{k}; \
             find / -xdev -name master.key 2>/dev/null; echo END",
            k = key.display(),
            d = db.display(),
            dir = data.path().display()
        ),
        ws.path(),
    ))
    .await;
    assert!(o.output.ends_with("END\n"), "{o:?}");
    assert!(!o.output.contains("FAKE-MASTER-KEY"), "{}", o.output);
    assert!(!o.output.contains("FAKE-DATABASE"), "{}", o.output);
    assert!(!o.output.contains("master.key\n"), "{}", o.output);
}

#[tokio::test]
async fn another_users_workspace_is_not_visible() {
    let root = private_dir();
    let owner = sandbox().run_as();
    let ws = Workspaces::new(root.path().join("workspaces"), 1 << 30, owner);
    let (alice, bob) = match (ws.prepare("alice"), ws.prepare("bob")) {
        (Ok(a), Ok(b)) => (a, b),
        other => panic!("prepare: {other:?}"),
    };
    write(&bob.path.join("bob-secret.txt"), "BOB-PRIVATE");
    let o = run(&spec(
        &format!(
            "cat {p}/bob-secret.txt; ls {root}; ls /workspace/..; cat /workspace/../bob/bob-secret.txt; \
             echo mine > mine.txt; echo END",
            p = bob.path.display(),
            root = ws.root().display()
        ),
        &alice.path,
    ))
    .await;
    assert!(o.output.ends_with("END\n"), "{o:?}");
    assert!(!o.output.contains("BOB-PRIVATE"), "{}", o.output);
    assert!(!o.output.contains("bob\n"), "{}", o.output);
    assert!(alice.path.join("mine.txt").exists());
    assert!(!bob.path.join("mine.txt").exists());
}

#[tokio::test]
async fn symlinks_in_the_workspace_resolve_inside_the_sandbox() {
    let secret_dir = private_dir();
    let secret = secret_dir.path().join("host-secret.txt");
    write(&secret, "HOST-ONLY-CONTENT");
    let ws = host_dir();
    for (name, target) in [
        ("to-secret", secret.to_string_lossy().into_owned()),
        ("to-root-home", "/root".to_string()),
        ("to-etc-shadow", "/etc/shadow".to_string()),
        (
            "to-host-dir",
            secret_dir.path().to_string_lossy().into_owned(),
        ),
    ] {
        if let Err(e) = std::os::unix::fs::symlink(&target, ws.path().join(name)) {
            panic!("symlink: {e}");
        }
    }
    let o = run(&spec(
        "cat to-secret; ls to-root-home; cat to-etc-shadow; ls to-host-dir; \
         echo overwrite > to-secret; echo END",
        ws.path(),
    ))
    .await;
    assert!(o.output.ends_with("END\n"), "{o:?}");
    assert!(!o.output.contains("HOST-ONLY-CONTENT"), "{}", o.output);
    assert!(!o.output.contains("host-secret.txt"), "{}", o.output);
    // The write through the link did not reach the host file.
    assert_eq!(
        std::fs::read_to_string(&secret).ok().as_deref(),
        Some("HOST-ONLY-CONTENT")
    );
    // A link created inside the sandbox is just a link on the host too: the sandbox cannot make
    // the host follow it anywhere (Workspaces measures without following links).
    let o = run(&spec("ln -s /etc/passwd planted && echo OK", ws.path())).await;
    assert_eq!(o.output, "OK\n", "{o:?}");
}

#[tokio::test]
async fn files_are_mounted_read_only_under_run_secrets() {
    let ws = host_dir();
    let mut s = spec(
        "cat /run/secrets/api-token; echo; cat /run/secrets/sub/cfg; echo; \
         echo x > /run/secrets/api-token || echo RO; rm /run/secrets/api-token || echo NORM; \
         ls /workspace",
        ws.path(),
    );
    s.files = vec![
        executor::SandboxFile {
            path: "/run/secrets/api-token".into(),
            contents: b"tok-123".to_vec(),
        },
        executor::SandboxFile {
            path: "/run/secrets/sub/cfg".into(),
            contents: b"a=b".to_vec(),
        },
    ];
    let o = run(&s).await;
    assert!(o.output.starts_with("tok-123\na=b\n"), "{o:?}");
    assert!(
        o.output.contains("RO\n") && o.output.contains("NORM\n"),
        "{o:?}"
    );
    let listed: Vec<_> = std::fs::read_dir(ws.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        listed.is_empty(),
        "secrets leaked into the workspace: {listed:?}"
    );
}

#[tokio::test]
async fn file_paths_outside_run_secrets_are_refused() {
    let ws = host_dir();
    let mut s = spec("true", ws.path());
    s.files = vec![executor::SandboxFile {
        path: "/workspace/../etc/passwd".into(),
        contents: Vec::new(),
    }];
    let r = crate::support::try_run(&s).await;
    assert!(
        matches!(r, Err(executor::SandboxError::InvalidSpec(_))),
        "{r:?}"
    );
}
