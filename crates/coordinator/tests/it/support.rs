//! A coordinator over a fresh database, and a private redis-server that dies with the test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coordinator::{Actor, Coordinator, NewTask};
use domain::{AuditEvent, Id, Role, TaskInput, User};
use store::audit::AuditFilter;
use store::bus::Bus;

/// A coordinator over a fresh SQLite file (or Postgres schema when
/// `AGENTICAI_TEST_DATABASE=postgres`), kept alive with its directory.
pub struct Fixture {
    pub coord: Coordinator,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new(bus: Bus) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = store::testing::fresh_database(dir.path()).await;
        let coord = Coordinator::new(db, bus);
        coord.init_org("Acme", "root").await.unwrap();
        Fixture { coord, _dir: dir }
    }

    /// The audit events of `kind`, by `actor` when given, oldest first.
    pub async fn audit(&self, actor: Option<&Id>, kind: &str) -> Vec<AuditEvent> {
        let filter = AuditFilter {
            actor: actor.cloned(),
            kind: Some(kind.to_owned()),
            ..AuditFilter::default()
        };
        store::audit::list(self.coord.db(), &filter, 1000)
            .await
            .unwrap()
    }

    pub async fn user(&self, name: &str, role: Role) -> User {
        self.coord
            .create_user(Actor::Operator, name, role)
            .await
            .unwrap()
            .0
    }
}

/// A redis-server of our own on a free port; killed on drop. Never the shared one.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A request for a command task without environment or idempotency key.
pub fn command(text: &str) -> NewTask {
    NewTask {
        input: TaskInput::Command(text.to_owned()),
        environment: None,
        idempotency_key: None,
    }
}
