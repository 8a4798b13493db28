//! Start-to-exit latency of `true` in a fully hardened sandbox (bwrap + shim with Landlock and
//! seccomp + per-run cgroup + uid drop when root), p50/p99 over 200 runs, plain std timing.
//!
//! `CARGO_TARGET_DIR=/work/bench-target cargo bench -p executor --bench sandbox`

use std::time::{Duration, Instant};

use executor::{Limits, Sandbox, SandboxConfig, SandboxSpec};

const RUNS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<40} p50 {:>6.1} ms   p99 {:>6.1} ms   min {:>6.1} ms   (n={})",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples.len()
    );
}

fn main() {
    let sandbox = match Sandbox::detect(SandboxConfig::new(env!("CARGO_BIN_EXE_sandbox-shim"))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox unavailable: {e}");
            std::process::exit(1);
        }
    };
    let ws = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tempdir: {e}");
            std::process::exit(1);
        }
    };
    if let Some((uid, gid)) = sandbox.run_as() {
        let _ = std::os::unix::fs::chown(ws.path(), Some(uid), Some(gid));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    println!("cgroups: {:?}", sandbox.cgroup_status());

    let bench = |name: &str, spec: SandboxSpec| {
        let mut samples = Vec::with_capacity(RUNS);
        for i in 0..RUNS + 10 {
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let t = Instant::now();
            let r = rt.block_on(sandbox.run(&spec, rx, None));
            let el = t.elapsed();
            match r {
                Ok(o) if o.exit_code == Some(0) => {}
                other => {
                    eprintln!("run failed: {other:?}");
                    std::process::exit(1);
                }
            }
            if i >= 10 {
                samples.push(el);
            }
        }
        report(name, samples);
    };

    bench("true (pids cgroup)", SandboxSpec::new("true", ws.path()));
    let mut limited = SandboxSpec::new("true", ws.path());
    limited.limits = Limits {
        memory_bytes: Some(512 << 20),
        pids: Some(256),
        cpu_millis: Some(1000),
        file_size_bytes: Some(1 << 30),
        ..Limits::default()
    };
    bench("true (memory+pids+cpu cgroups, fsize)", limited);

    let mut no_cg = SandboxConfig::new(env!("CARGO_BIN_EXE_sandbox-shim"));
    no_cg.cgroups = false;
    if let Ok(sb) = Sandbox::detect(no_cg) {
        let mut samples = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let t = Instant::now();
            let r = rt.block_on(sb.run(&SandboxSpec::new("true", ws.path()), rx, None));
            samples.push(t.elapsed());
            if !matches!(r, Ok(ref o) if o.exit_code == Some(0)) {
                eprintln!("run failed: {r:?}");
                std::process::exit(1);
            }
        }
        report("diagnostic: true without cgroups", samples);
    }

    // Reference: bare bwrap with the same namespaces, no shim, no cgroup.
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let st = std::process::Command::new(sandbox.bwrap_path())
            .args([
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/bin",
                "/bin",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--",
                "/bin/sh",
                "-c",
                "true",
            ])
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            eprintln!("bare bwrap failed: {st:?}");
            std::process::exit(1);
        }
        samples.push(t.elapsed());
    }
    report("reference: bare bwrap (as current user)", samples);
}
