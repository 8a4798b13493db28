//! Test support: the real `agenticai` binary as a subprocess, each test with its own data
//! directory, port and (in Postgres mode) database.
//!
//! - [`Deployment`]: a data directory, a database and the environment every command of one
//!   deployment gets (cleared of the host's variables). Runs CLI commands.
//! - [`Server`]: `agenticai serve` over a deployment, on a free loopback port; killed on drop,
//!   stopped politely with [`Server::stop`], restarted on the same data with [`Server::restart`].
//!   Its HTTP helpers return a [`Resp`] and fail the test on any 500.
//! - [`PgDatabase`]: a fresh database on the shared Postgres server, dropped at the end.
//! - [`PgCluster`]: a private Postgres cluster a test may stop and start at will.
//!
//! Postgres mode: `AGENTICAI_TEST_DATABASE=postgres` makes every [`Deployment::new`] use its own
//! database on `AGENTICAI_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_agenticai");

/// How long a server may take to answer `/healthz` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a one-shot CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// The shared Postgres server when `AGENTICAI_TEST_POSTGRES_URL` is unset.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------------------------
// Small helpers

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("read the ephemeral port")
        .port()
}

/// A random lowercase suffix (letters and digits) for database names and the like.
pub fn random_suffix() -> String {
    let id = domain::Id::generate(domain::IdKind::Task).expect("randomness");
    id.as_str()
        .trim_start_matches("tsk_")
        .replace(['_', '-'], "")
}

/// Whether `s` is an id as CONTRACT.md defines it: lowercase letters, digits, `_` and `-`, at
/// most 32 characters.
pub fn is_contract_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses an RFC 3339 UTC time (`…Z`), failing the test with `what` if it is not one.
pub fn parse_time(value: &Value, what: &str) -> SystemTime {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    assert!(s.ends_with('Z'), "{what} is not UTC (…Z): {s}");
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{what} is not RFC 3339 ({e}): {s}"))
}

/// Asserts that `t` is within `tolerance` of now + `ahead`.
pub fn assert_time_near(value: &Value, ahead: Duration, tolerance: Duration, what: &str) {
    let t = parse_time(value, what);
    let expected = SystemTime::now() + ahead;
    let diff = match t.duration_since(expected) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        diff <= tolerance,
        "{what} = {value} is {diff:?} away from now + {ahead:?} (tolerance {tolerance:?})"
    );
}

/// Asserts the contract's error shape `{"error":{"code":"snake_case","message":"…"}}`.
pub fn assert_error_shape(body: &Value) {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"));
    assert!(
        !code.is_empty()
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "error.code is not snake_case: {body}"
    );
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.message in {body}"));
    assert!(!message.trim().is_empty(), "empty error.message in {body}");
}

/// Every field of the contract's Task, with the right types.
pub fn assert_task_shape(task: &Value) {
    for key in [
        "task_id",
        "user_id",
        "kind",
        "input",
        "environment",
        "status",
        "risk_tier",
        "approval_id",
        "created_at",
        "updated_at",
        "result",
        "error",
    ] {
        assert!(task.get(key).is_some(), "Task lacks {key:?}: {task}");
    }
    assert!(
        is_contract_id(task["task_id"].as_str().unwrap_or("")),
        "{task}"
    );
    assert!(
        is_contract_id(task["user_id"].as_str().unwrap_or("")),
        "{task}"
    );
    assert!(
        matches!(task["kind"].as_str(), Some("command" | "agent")),
        "{task}"
    );
    assert!(task["input"].is_string(), "{task}");
    assert!(
        task["environment"].is_null() || task["environment"].is_string(),
        "{task}"
    );
    assert!(
        matches!(
            task["status"].as_str(),
            Some(
                "QUEUED"
                    | "RUNNING"
                    | "WAITING_APPROVAL"
                    | "SUCCEEDED"
                    | "FAILED"
                    | "CANCELED"
                    | "TIMED_OUT"
            )
        ),
        "{task}"
    );
    assert!(
        task["risk_tier"].is_null()
            || matches!(
                task["risk_tier"].as_str(),
                Some("L0_READONLY" | "L1_MUTATING" | "L2_DESTRUCTIVE" | "L3_PRIVILEGED")
            ),
        "{task}"
    );
    assert!(
        task["approval_id"].is_null() || is_contract_id(task["approval_id"].as_str().unwrap_or("")),
        "{task}"
    );
    let created = parse_time(&task["created_at"], "created_at");
    let updated = parse_time(&task["updated_at"], "updated_at");
    assert!(updated >= created, "updated_at before created_at: {task}");
    assert!(
        task["result"].is_null() || task["result"].is_object(),
        "{task}"
    );
    assert!(
        task["error"].is_null() || task["error"].is_object(),
        "{task}"
    );
}

/// Polls `check` every 50 ms until it returns `Some`, or fails the test after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Postgres

/// Runs one SQL statement through `psql` on `url`; the unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "psql {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The URL of the shared test Postgres server.
pub fn postgres_base_url() -> String {
    std::env::var("AGENTICAI_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// Whether the suite runs in Postgres mode (`AGENTICAI_TEST_DATABASE=postgres`).
pub fn postgres_mode() -> bool {
    std::env::var("AGENTICAI_TEST_DATABASE").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// A database of its own on the shared Postgres server, dropped (best effort) on drop.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates `t_<random>` on the shared server.
    pub fn create() -> PgDatabase {
        let admin_url = postgres_base_url();
        let name = format!("t_{}", random_suffix());
        psql(&admin_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin_url}: {e}"));
        let mut url = url::Url::parse(&admin_url).expect("AGENTICAI_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        PgDatabase {
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A private Postgres cluster (initdb + pg_ctl) on its own port, for tests that stop and start
/// the database under a running server. Never touches the shared server. Stopped on drop.
pub struct PgCluster {
    _root: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    as_postgres_user: bool,
    pub port: u16,
}

impl PgCluster {
    /// Creates and starts the cluster (trust auth, superuser `postgres`).
    pub fn start() -> PgCluster {
        let bin = postgres_bin_dir();
        let root = tempfile::Builder::new()
            .prefix("agenticai-pg-")
            .tempdir()
            .expect("tempdir");
        let work = root.path().join("work");
        std::fs::create_dir(&work).expect("mkdir work");
        let as_postgres_user = running_as_root();
        if as_postgres_user {
            // initdb refuses root: the cluster belongs to the `postgres` user.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            let status = Command::new("chown")
                .args(["postgres:", &work.display().to_string()])
                .status()
                .expect("run chown");
            assert!(status.success(), "chown postgres: {status}");
        }
        let socket_dir = work.join("sock");
        let data = work.join("data");
        let log = work.join("postgres.log");
        let cluster = PgCluster {
            data,
            socket_dir,
            log,
            bin,
            as_postgres_user,
            port: free_port(),
            _root: root,
        };
        cluster.run_as_owner(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.run_as_owner("mkdir", &[&cluster.socket_dir.display().to_string()]);
        cluster.start_again();
        cluster
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.socket_dir.display()
        );
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            &self.data.display().to_string(),
            "-l",
            &self.log.display().to_string(),
            "-o",
            &options,
        ]);
    }

    /// Stops the cluster (`-m fast`: disconnects clients) and waits until it is down.
    pub fn stop(&self) {
        self.pg_ctl(&[
            "stop",
            "-w",
            "-m",
            "fast",
            "-D",
            &self.data.display().to_string(),
        ]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let program = self.bin.join("pg_ctl").display().to_string();
        self.run_as_owner(&program, args);
    }

    /// Runs a program as the cluster's owner; fails the test with its output if it fails.
    fn run_as_owner(&self, program: &str, args: &[&str]) {
        let program = if program.contains('/') || program == "mkdir" {
            program.to_owned()
        } else {
            self.bin.join(program).display().to_string()
        };
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            Command::new(&program)
        };
        // pg_ctl's postmaster keeps inherited descriptors open: never give it our pipes.
        let out_path = self
            ._root
            .path()
            .join(format!("cmd-{}.out", random_suffix()));
        let out = File::create(&out_path).expect("create output file");
        let status = command
            .args(args)
            .current_dir(self._root.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        assert!(
            status.success(),
            "{program} {args:?} failed ({status}):\n{output}\n--- postgres log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl").display().to_string();
        let data = self.data.display().to_string();
        let args = ["stop", "-w", "-m", "immediate", "-D", data.as_str()];
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The directory of the newest installed Postgres server binaries.
fn postgres_bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    if let Some((_, bin)) = dirs.pop() {
        return bin;
    }
    // Elsewhere: initdb on PATH.
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("run sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "no Postgres server binaries (initdb) found"
    );
    Path::new(&path)
        .parent()
        .expect("initdb has a directory")
        .to_path_buf()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// ---------------------------------------------------------------------------------------------
// Deployments and the CLI

/// Which database a deployment uses.
pub enum Database {
    /// The embedded default, `$AGENTICAI_DATA_DIR/agenticai.db`.
    Sqlite,
    /// A database of its own on the shared Postgres server.
    Postgres(PgDatabase),
    /// Any URL (e.g. a [`PgCluster`] or an unreachable server).
    Url(String),
}

/// What `agenticai org init` printed.
#[derive(Debug, Clone)]
pub struct Org {
    pub org_id: String,
    pub admin_user_id: String,
    pub admin_token: String,
    pub admin_link_code: String,
}

/// A user made with `agenticai user create`.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_id: String,
    pub token: String,
}

/// The outcome of a CLI command.
#[derive(Debug)]
pub struct CliRun {
    pub args: Vec<String>,
    /// None when killed by a signal (or by the timeout).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CliRun {
    /// Fails the test unless the command exited 0.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self}");
        self
    }

    /// The one JSON line the command printed on stdout.
    pub fn json_line(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected exactly one stdout line: {self}");
        assert!(
            self.stdout.ends_with('\n'),
            "stdout line is not terminated: {self}"
        );
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for CliRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`agenticai {}` exited {:?}{} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            if self.timed_out { " (timed out)" } else { "" },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// A command started with [`Deployment::spawn_cli`].
pub struct RunningCli {
    args: Vec<String>,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

impl RunningCli {
    /// Waits for the command; kills it after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> CliRun {
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the command") {
                break Some(status);
            }
            if self.started.elapsed() > timeout {
                timed_out = true;
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        CliRun {
            args: std::mem::take(&mut self.args),
            code: status.and_then(|s| s.code()),
            timed_out,
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
            elapsed,
        }
    }
}

impl Drop for RunningCli {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The API key of the fake LLM servers tests start (`FakeLlm::start(format, Some(FAKE_LLM_KEY))`).
pub const FAKE_LLM_KEY: &str = "sk-fake-agent-test-key";

/// One deployment: a working directory holding the data directory, a database, and the
/// environment its commands get (nothing from the host but PATH and HOME).
pub struct Deployment {
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    database: Database,
    vars: Vec<(String, String)>,
    runs: AtomicU64,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment::new()
    }
}

impl Deployment {
    /// SQLite, or in Postgres mode a database of its own on the shared server.
    pub fn new() -> Deployment {
        if postgres_mode() {
            Deployment::postgres()
        } else {
            Deployment::sqlite()
        }
    }

    /// The embedded database, whatever the mode.
    pub fn sqlite() -> Deployment {
        Deployment::with_database(Database::Sqlite)
    }

    /// A database of its own on the shared Postgres server, whatever the mode.
    pub fn postgres() -> Deployment {
        Deployment::with_database(Database::Postgres(PgDatabase::create()))
    }

    /// The given database.
    pub fn with_database(database: Database) -> Deployment {
        let root = tempfile::Builder::new()
            .prefix("agenticai-it-")
            .tempdir()
            .expect("tempdir");
        // The sandbox runs as an unprivileged host user that must reach the data directory.
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711))
                .expect("chmod the deployment root");
        }
        let data_dir = root.path().join("data");
        Deployment {
            root,
            data_dir,
            database,
            // Most tests look at tasks as the API leaves them; those about execution turn the
            // workers on with `Deployment::with_workers`.
            vars: vec![("AGENTICAI_MAX_CONCURRENT_TASKS".to_owned(), "0".to_owned())],
            runs: AtomicU64::new(0),
        }
    }

    /// Lets the server run tasks (`slots` at once), as a production server does.
    pub fn with_workers(self, slots: u32) -> Deployment {
        self.var("AGENTICAI_MAX_CONCURRENT_TASKS", &slots.to_string())
    }

    /// Plans with `llm` (a fake LLM server of the test), whose key is [`FAKE_LLM_KEY`].
    pub fn with_llm(self, llm: &agent::llm::testing::FakeLlm) -> Deployment {
        self.var("AGENTICAI_LLM_PROVIDER", llm.format().as_str())
            .var("AGENTICAI_LLM_BASE_URL", &llm.base_url())
            .var("AGENTICAI_LLM_MODEL", "fake-model")
            .var("AGENTICAI_LLM_API_KEY", FAKE_LLM_KEY)
    }

    /// Adds an environment variable for every command of this deployment.
    pub fn var(mut self, name: &str, value: &str) -> Deployment {
        self.set_var(name, value);
        self
    }

    /// Sets (or replaces) an environment variable for every command of this deployment.
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.to_owned()));
    }

    /// The working directory of every command (never contains an `agenticai.toml` unless a
    /// test writes one).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Whether this deployment's database is Postgres.
    pub fn is_postgres(&self) -> bool {
        !matches!(self.database, Database::Sqlite)
    }

    /// The database URL the commands get, if not the default.
    pub fn database_url(&self) -> Option<String> {
        match &self.database {
            Database::Sqlite => None,
            Database::Postgres(db) => Some(db.url().to_owned()),
            Database::Url(url) => Some(url.clone()),
        }
    }

    /// A command of this deployment with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args).env_clear().current_dir(self.root.path());
        for name in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(name) {
                command.env(name, v);
            }
        }
        command.env("AGENTICAI_DATA_DIR", &self.data_dir);
        if let Some(url) = self.database_url() {
            command.env("AGENTICAI_DATABASE_URL", url);
        }
        for (name, value) in &self.vars {
            command.env(name, value);
        }
        command
    }

    /// Starts a command, output captured to files.
    pub fn spawn_cli(&self, args: &[&str]) -> RunningCli {
        self.spawn_cli_with(args, |_| {})
    }

    /// Starts a command after `adjust` had its say (extra variables, other files).
    pub fn spawn_cli_with(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> RunningCli {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let stdout = self.root.path().join(format!("cli-{n}.out"));
        let stderr = self.root.path().join(format!("cli-{n}.err"));
        let mut command = self.command(args);
        command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        adjust(&mut command);
        let child = command.spawn().expect("spawn agenticai");
        RunningCli {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            child,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// Runs a command to completion.
    pub fn cli(&self, args: &[&str]) -> CliRun {
        self.spawn_cli(args).wait(CLI_TIMEOUT)
    }

    /// Runs a command that must succeed and print one JSON line; returns it.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        self.cli(args).assert_success().json_line()
    }

    /// `agenticai org init`.
    pub fn org_init(&self) -> Org {
        let v = self.cli_json(&["org", "init", "--name", "Acme", "--admin", "alice"]);
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("org init printed no {k}: {v}"))
                .to_owned()
        };
        Org {
            org_id: field("org_id"),
            admin_user_id: field("admin_user_id"),
            admin_token: field("admin_token"),
            admin_link_code: field("admin_link_code"),
        }
    }

    /// `agenticai user create --name NAME --role ROLE`.
    pub fn user_create(&self, name: &str, role: &str) -> NewUser {
        let v = self.cli_json(&["user", "create", "--name", name, "--role", role]);
        assert_eq!(v["role"], role, "{v}");
        NewUser {
            user_id: v["user_id"].as_str().expect("user_id").to_owned(),
            token: v["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Runs one SQL query on the deployment's database (sqlite3 or psql) and returns its output,
    /// or None when the SQLite command-line tool is not installed (the caller skips the check).
    pub fn sql(&self, query: &str) -> Option<String> {
        match self.database_url() {
            Some(url) => Some(psql(&url, query).unwrap_or_else(|e| panic!("{e}"))),
            None => {
                let db = self.data_dir.join("agenticai.db");
                let out = match Command::new("sqlite3")
                    .args(["-batch", "-noheader"])
                    .arg(&db)
                    .arg(query)
                    .stdin(Stdio::null())
                    .output()
                {
                    Ok(out) => out,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                    Err(e) => panic!("cannot run sqlite3: {e}"),
                };
                assert!(
                    out.status.success(),
                    "sqlite3 {query:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Resp {
    /// Fails the test unless the status is `status`; returns the JSON body.
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        &self.json
    }

    /// Fails the test unless this is an error with `status` in the contract's shape (and, when
    /// given, the error code `code`).
    pub fn expect_error(&self, status: u16, code: Option<&str>) -> &Value {
        self.expect(status);
        assert!(
            self.headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "error is not application/json: {:?} {}",
            self.headers,
            self.text
        );
        assert_error_shape(&self.json);
        if let Some(code) = code {
            assert_eq!(self.json["error"]["code"], code, "{}", self.text);
        }
        &self.json
    }

    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// `agenticai serve` as a child process on a free loopback port.
pub struct Server {
    pub dep: Deployment,
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    client: reqwest::Client,
}

impl Server {
    /// A server over a fresh deployment (SQLite, or Postgres in Postgres mode).
    pub async fn start() -> Server {
        Server::start_with(Deployment::new()).await
    }

    /// A server over `dep`.
    pub async fn start_with(dep: Deployment) -> Server {
        let log = dep.root().join("server.log");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let mut server = Server {
            dep,
            child: None,
            port: 0,
            log,
            client,
        };
        server.spawn().await;
        server
    }

    /// Spawns `serve` and waits until `/healthz` answers; retries on another port if the one
    /// picked was taken in the meantime.
    async fn spawn(&mut self) {
        for attempt in 0..3 {
            self.port = free_port();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("server log");
            let log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
            let mut command = self.dep.command(&["serve"]);
            command
                .env("AGENTICAI_LISTEN", format!("127.0.0.1:{}", self.port))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log);
            let child = command.spawn().expect("spawn agenticai serve");
            self.child = Some(child);
            match self.wait_healthy().await {
                Ok(()) => return,
                Err(why) => {
                    let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let tail = text.get(log_start as usize..).unwrap_or(&text);
                    if attempt < 2 && tail.contains("cannot listen") {
                        continue;
                    }
                    self.kill();
                    panic!("agenticai serve did not become healthy: {why}\n--- log ---\n{text}");
                }
            }
        }
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("it exited: {status}"));
            }
            let answer = self
                .client
                .get(self.url("/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().as_u16() == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no 200 from /healthz within {START_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit; None if it is still running then
    /// (it is killed).
    pub async fn stop_within(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal_and_wait("TERM", within).await
    }

    /// Sends `signal` (`TERM`, `INT`, …) and waits up to `within` for the exit; None if it is
    /// still running then (it is killed).
    pub async fn signal_and_wait(&mut self, signal: &str, within: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("the server is running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed: {status}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the server") {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, and the exit status (fails the test if it takes more than 40 s).
    pub async fn stop(&mut self) -> ExitStatus {
        match self.stop_within(Duration::from_secs(40)).await {
            Some(status) => status,
            None => panic!(
                "agenticai serve did not exit within 40 s of SIGTERM\n--- log ---\n{}",
                self.log_text()
            ),
        }
    }

    /// Starts the server again on the same deployment (stopping it first if it runs).
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.stop().await;
            assert!(status.success(), "serve exited with {status}");
        }
        self.spawn().await;
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `agenticai org init` on this server's deployment.
    pub fn org_init(&self) -> Org {
        self.dep.org_init()
    }

    /// The HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A request to `path`, with the bearer token when given.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut builder = self.client.request(method, self.url(path));
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        builder
    }

    /// Sends a request; fails the test on a transport error or a 500.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => panic!(
                "request failed: {e:?}\n--- server log ---\n{}",
                self.log_text()
            ),
        };
        into_resp(response).await
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(self.request(reqwest::Method::GET, path, token))
            .await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(self.request(reqwest::Method::POST, path, token).json(body))
            .await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(self.request(reqwest::Method::PATCH, path, token).json(body))
            .await
    }

    /// POST /v1/tasks `{"command": command}`; must answer 202; returns the task.
    pub async fn create_command(&self, token: &str, command: &str) -> Value {
        let r = self
            .post(
                "/v1/tasks",
                Some(token),
                &serde_json::json!({"command": command}),
            )
            .await;
        r.expect(202);
        r.json
    }

    /// Creates a command task and, when it waits for approval, approves it as `token`'s user
    /// (the requester). Returns the task as created.
    pub async fn create_approved(&self, token: &str, command: &str) -> Value {
        let task = self.create_command(token, command).await;
        if task["status"] == "WAITING_APPROVAL" {
            let approval = task["approval_id"].as_str().expect("approval_id");
            self.post(
                &format!("/v1/approvals/{approval}/decision"),
                Some(token),
                &serde_json::json!({"decision": "APPROVE"}),
            )
            .await
            .expect(200);
        } else {
            assert_eq!(
                task["status"], "QUEUED",
                "neither queued nor waiting: {task}"
            );
        }
        task
    }

    /// Polls the task until its status is one of `statuses`; fails the test after `within`.
    pub async fn wait_status(
        &self,
        token: &str,
        task_id: &str,
        statuses: &[&str],
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self
                .get(&format!("/v1/tasks/{task_id}"), Some(token))
                .await
                .expect(200)
                .clone();
            if statuses.iter().any(|s| task["status"] == *s) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {task_id} not {statuses:?} within {within:?}: {task}\n--- log ---\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the task until it is finished (terminal); fails the test after `within`.
    pub async fn wait_finished(&self, token: &str, task_id: &str, within: Duration) -> Value {
        self.wait_status(
            token,
            task_id,
            &["SUCCEEDED", "FAILED", "CANCELED", "TIMED_OUT"],
            within,
        )
        .await
    }

    /// The audit events of `task_id` of type `kind` (admin token).
    pub async fn audit_of(&self, admin_token: &str, task_id: &str, kind: &str) -> Vec<Value> {
        let r = self
            .get(
                &format!("/v1/audit-events?task_id={task_id}&type={kind}&limit=1000"),
                Some(admin_token),
            )
            .await;
        r.expect(200)["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Processes on this host whose command line contains `marker` (sandboxed processes are visible
/// from the host's pid namespace).
pub fn processes_matching(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {}", name.to_string_lossy(), text.trim()));
            }
        }
    }
    found
}

/// Reads a response; fails the test on a 500 (never allowed for anything a client sends).
pub async fn into_resp(response: reqwest::Response) -> Resp {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    assert_ne!(status, 500, "the server answered 500: {text}");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- agenticai serve log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}
