//! End-to-end benchmark of the real `agenticai` binary (release build via `cargo bench`):
//! binary size, time from launch to `/healthz` and `/readyz`, idle RSS, `/healthz` latency,
//! `POST /v1/tasks` throughput and latency on SQLite and (when reachable) Postgres, and execution:
//! a backlog of 1,000 queued commands drained by the workers (rate, none lost), and API latency
//! idle versus while 10 sandboxes run.
//!
//! Run: `cargo bench -p server --bench api` (optionally `-- --postgres postgres://…`).
//! Results go to stdout as Markdown rows for docs/performance.md. Traffic stays on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agenticai");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18099)
}

/// A server under test; killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command of the deployment in `data_dir`; `workers` task slots (0: API only).
fn command(data_dir: &Path, port: u16, database_url: Option<&str>, workers: u32) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AGENTICAI_DATA_DIR", data_dir)
        .env("AGENTICAI_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGENTICAI_LOG", "warn")
        .env("AGENTICAI_MAX_CONCURRENT_TASKS", workers.to_string())
        .env("AGENTICAI_MAX_TASKS_PER_USER", "0")
        .env("AGENTICAI_TASKS_PER_HOUR", "0");
    if let Some(url) = database_url {
        cmd.env("AGENTICAI_DATABASE_URL", url);
    }
    cmd
}

/// One HTTP/1.1 request on a kept-alive connection; returns the status code.
fn request(stream: &mut BufReader<TcpStream>, raw: &[u8]) -> u16 {
    stream.get_mut().write_all(raw).expect("write request");
    let mut status_line = String::new();
    stream.read_line(&mut status_line).expect("read status");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).expect("read header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read body");
    status
}

fn connect(port: u16) -> Option<BufReader<TcpStream>> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_nodelay(true).ok()?;
    Some(BufReader::new(s))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes()
}

/// Polls `path` until it answers 200; returns the time since `start`.
fn time_until_ok(port: u16, path: &str, start: Instant) -> Duration {
    loop {
        if let Some(mut c) = connect(port)
            && request(&mut c, &get(path)) == 200
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{path} never became ready"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Initialises the org in `data_dir` and starts a server that runs no tasks; returns it with
/// the admin token.
fn start(data_dir: &Path, database_url: Option<&str>) -> (Server, String, Duration, Duration) {
    let init = command(data_dir, 0, database_url, 0)
        .args(["org", "init", "--name", "Bench", "--admin", "bench"])
        .output()
        .expect("org init");
    assert!(
        init.status.success(),
        "org init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&init.stdout).expect("org init JSON");
    let token = json["admin_token"].as_str().expect("token").to_owned();
    let (server, healthz, readyz) = serve(data_dir, database_url, 0);
    (server, token, healthz, readyz)
}

/// Starts `serve` on an initialised deployment with `workers` task slots.
fn serve(
    data_dir: &Path,
    database_url: Option<&str>,
    workers: u32,
) -> (Server, Duration, Duration) {
    serve_with(data_dir, database_url, workers, &[])
}

/// [`serve`] with extra environment variables.
fn serve_with(
    data_dir: &Path,
    database_url: Option<&str>,
    workers: u32,
    extra: &[(&str, &str)],
) -> (Server, Duration, Duration) {
    let port = free_port();
    let start = Instant::now();
    let child = command(data_dir, port, database_url, workers)
        .envs(extra.iter().copied())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let server = Server { child, port };
    let healthz = time_until_ok(port, "/healthz", start);
    let readyz = time_until_ok(port, "/readyz", start);
    (server, healthz, readyz)
}

/// `POST /v1/tasks` from `conns` connections for `secs`; returns (rate, p50, p99, errors).
fn create_tasks(
    port: u16,
    token: &str,
    conns: usize,
    secs: u64,
) -> (f64, Duration, Duration, usize) {
    let raw = Arc::new(post_command(token, "ls -la /srv"));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let raw = Arc::clone(&raw);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut c = connect(port).expect("connect");
                let mut lat = Vec::new();
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if request(&mut c, &raw) != 202 {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (lat, e) = t.join().expect("worker");
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        errors,
    )
}

/// A raw `POST /v1/tasks` for `command`.
fn post_command(token: &str, command: &str) -> Vec<u8> {
    let body = serde_json::json!({ "command": command }).to_string();
    format!(
        "POST /v1/tasks HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The `agenticai_tasks{status="…"}` gauge from `/metrics`.
fn tasks_with_status(port: u16, status: &str) -> u64 {
    let Some(mut c) = connect(port) else {
        return 0;
    };
    c.get_mut()
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    let needle = format!("agenticai_tasks{{status=\"{status}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Sequential `GET path` latencies (p50, p99) over `n` requests.
fn get_latency(port: u16, token: &str, path: &str, n: usize) -> (Duration, Duration) {
    let raw =
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n")
            .into_bytes();
    let mut c = connect(port).expect("connect");
    let mut lat: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(request(&mut c, &raw), 200);
            t.elapsed()
        })
        .collect();
    lat.sort();
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Queues `n` commands with the workers off, then starts a server with `workers` slots and times
/// the drain; then measures API latency idle and while 10 sandboxes run.
fn execution(n: u64, workers: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, token, _, _) = start(dir.path(), None);
    let mut c = connect(server.port).expect("connect");
    let raw = post_command(&token, "true");
    for _ in 0..n {
        assert_eq!(request(&mut c, &raw), 202);
    }
    drop(c);
    drop(server);
    let started = Instant::now();
    let (server, _, _) = serve(dir.path(), None, workers);
    loop {
        let done = tasks_with_status(server.port, "SUCCEEDED");
        let failed = tasks_with_status(server.port, "FAILED");
        assert_eq!(failed, 0, "tasks failed while draining");
        if done == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the backlog does not drain"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    println!(
        "| backlog of {n} queued `true` commands, {workers} workers (SQLite) | drained in {:.1} s: {:.0} tasks/s, {n} SUCCEEDED, 0 lost |",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    drop(server);

    let (server, _, _) = serve(dir.path(), None, 10);
    let path = "/v1/tasks?limit=1";
    let (idle50, idle99) = get_latency(server.port, &token, path, 2000);
    let mut c = connect(server.port).expect("connect");
    let sleeper = post_command(&token, "sleep 30");
    for _ in 0..10 {
        assert_eq!(request(&mut c, &sleeper), 202);
    }
    while tasks_with_status(server.port, "RUNNING") < 10 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (busy50, busy99) = get_latency(server.port, &token, path, 2000);
    println!(
        "| GET /v1/tasks p50 / p99: idle vs 10 sandboxes running | {} / {} vs {} / {} |",
        ms(idle50),
        ms(idle99),
        ms(busy50),
        ms(busy99)
    );
}

/// Telegram webhook acknowledgement latency at `rate` updates/s for `secs` (open loop, spread
/// over 4 connections), against a fake Bot API on loopback. Every update is a new one (from an
/// unlinked user, so each is recorded, handled and answered).
fn webhook_ack(rate: u64, secs: u64) {
    const BOT_TOKEN: &str = "123456:bench";
    const SECRET: &str = "bench-secret";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = runtime.block_on(telegram::testing::FakeBotApi::start(BOT_TOKEN));
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _token, _, _) = start(dir.path(), None);
    drop(server);
    let base = fake.base_url();
    let (server, _, _) = serve_with(
        dir.path(),
        None,
        0,
        &[
            ("AGENTICAI_TELEGRAM_BOT_TOKEN", BOT_TOKEN),
            ("AGENTICAI_TELEGRAM_API_URL", &base),
            ("AGENTICAI_TELEGRAM_MODE", "webhook"),
            ("AGENTICAI_TELEGRAM_WEBHOOK_SECRET", SECRET),
            ("AGENTICAI_TELEGRAM_MESSAGES_PER_MINUTE", "0"),
        ],
    );
    let conns = 4u64;
    let interval = Duration::from_secs_f64(conns as f64 / rate as f64);
    let per_conn = rate * secs / conns;
    let port = server.port;
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            std::thread::spawn(move || {
                let mut stream = connect(port).expect("connect");
                let mut lat = Vec::new();
                let start = Instant::now();
                for i in 0..per_conn {
                    let due = start + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let update_id = 1 + c * per_conn + i;
                    let body = serde_json::json!({
                        "update_id": update_id,
                        "message": {
                            "message_id": update_id, "date": 0, "text": "hello",
                            "chat": {"id": 100 + c, "type": "private"},
                            "from": {"id": 100 + c, "is_bot": false, "first_name": "B"}
                        }
                    })
                    .to_string();
                    let raw = format!(
                        "POST /telegram/webhook HTTP/1.1\r\nHost: bench\r\nX-Telegram-Bot-Api-Secret-Token: {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let t = Instant::now();
                    assert_eq!(request(&mut stream, raw.as_bytes()), 200);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("sender"))
        .collect();
    all.sort();
    println!(
        "| Telegram webhook acknowledgement at {rate} updates/s ({} updates, SQLite) | p50 {} / p99 {} |",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99))
    );
    drop(server);
    drop(fake);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harness=false benches.
    }
    let postgres = args
        .iter()
        .position(|a| a == "--postgres")
        .and_then(|i| args.get(i + 1).cloned());

    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    println!(
        "| release binary size | {:.1} MiB |",
        size as f64 / 1048576.0
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (server, token, healthz, readyz) = start(dir.path(), None);
    println!("| launch → /healthz 200 (SQLite) | {} |", ms(healthz));
    println!("| launch → /readyz 200 (SQLite) | {} |", ms(readyz));
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "| idle RSS (SQLite, in-process bus) | {:.1} MiB |",
        rss_kib(server.child.id()) as f64 / 1024.0
    );

    let mut c = connect(server.port).expect("connect");
    let raw = get("/healthz");
    for _ in 0..500 {
        request(&mut c, &raw);
    }
    let mut lat: Vec<Duration> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            request(&mut c, &raw);
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "| /healthz latency p50 / p99 (keep-alive, sequential) | {} / {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    for conns in [1, 8] {
        let (rate, p50, p99, errors) = create_tasks(server.port, &token, conns, 5);
        println!(
            "| POST /v1/tasks on SQLite, {conns} connection(s) | {rate:.0} tasks/s, p50 {} p99 {}, {errors} errors |",
            ms(p50),
            ms(p99)
        );
    }
    println!(
        "| RSS after the SQLite runs | {:.1} MiB |",
        rss_kib(server.child.id()) as f64 / 1024.0
    );
    drop(server);

    execution(1000, 8);
    webhook_ack(500, 5);

    if let Some(base) = postgres {
        let name = format!("bench_{}", std::process::id());
        let admin = Command::new("psql")
            .args([&base, "-qc", &format!("CREATE DATABASE {name}")])
            .status();
        if admin.map(|s| s.success()).unwrap_or(false) {
            let url = match base.rsplit_once('/') {
                Some((head, _)) => format!("{head}/{name}"),
                None => base.clone(),
            };
            let pg_dir = tempfile::tempdir().expect("tempdir");
            let (server, token, healthz, readyz) = start(pg_dir.path(), Some(&url));
            println!(
                "| launch → /healthz, /readyz (Postgres) | {} / {} |",
                ms(healthz),
                ms(readyz)
            );
            for conns in [1, 8] {
                let (rate, p50, p99, errors) = create_tasks(server.port, &token, conns, 5);
                println!(
                    "| POST /v1/tasks on Postgres, {conns} connection(s) | {rate:.0} tasks/s, p50 {} p99 {}, {errors} errors |",
                    ms(p50),
                    ms(p99)
                );
            }
            drop(server);
            let _ = Command::new("psql")
                .args([&base, "-qc", &format!("DROP DATABASE {name} WITH (FORCE)")])
                .status();
        } else {
            println!("| Postgres | could not create a database at {base} |");
        }
    }
}
