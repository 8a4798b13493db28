//! A database with an org, a coordinator to create tasks through the real gate, and a manager.

use std::time::Duration;

use agent::planner::AgentSettings;
use agent::{ExecutionManager, ManagerConfig};
use coordinator::{Actor, Coordinator, NewTask};
use domain::{Role, Task, TaskInput, User};
use executor::{Limits, Workspaces};
use store::Db;
use store::bus::Bus;

pub struct Fixture {
    pub coord: Coordinator,
    pub manager: ExecutionManager,
    pub user: User,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A manager without a sandbox (`sandbox_missing` is the reason tasks fail with).
    pub async fn new() -> Fixture {
        Fixture::with_agent(None).await
    }

    /// The same, planning agent tasks with `agent` (the model and limits).
    pub async fn with_agent(agent: Option<AgentSettings>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = store::testing::fresh_database(dir.path()).await;
        let bus = Bus::in_process();
        let coord = Coordinator::new(db.clone(), bus.clone());
        coord.init_org("Acme", "root").await.unwrap();
        let user = coord
            .create_user(Actor::Operator, "bob", Role::Member)
            .await
            .unwrap()
            .0;
        let config = ManagerConfig {
            worker_id: "wrk-test".to_owned(),
            max_concurrent: 2,
            max_per_user: None,
            lease: Duration::from_secs(30),
            task_timeout: Duration::from_secs(10),
            output_limit: 4096,
            limits: Limits::default(),
            runtime_dir: dir.path().join("run"),
            agent,
        };
        let workspaces = Workspaces::new(dir.path().join("workspaces"), 1 << 30, None);
        let manager = ExecutionManager::new(
            config,
            db,
            bus,
            Err("sandbox_missing".to_owned()),
            None,
            workspaces,
        );
        Fixture {
            coord,
            manager,
            user,
            _dir: dir,
        }
    }

    pub fn db(&self) -> &Db {
        self.coord.db()
    }

    /// A command task of the fixture's user, through the real gate.
    pub async fn command(&self, command: &str) -> Task {
        self.coord
            .create_task(
                &self.user,
                NewTask {
                    input: TaskInput::Command(command.to_owned()),
                    environment: None,
                    idempotency_key: None,
                },
            )
            .await
            .unwrap()
            .0
    }

    /// An agent task (a prompt) of the fixture's user.
    pub async fn prompt(&self, prompt: &str) -> Task {
        self.coord
            .create_task(
                &self.user,
                NewTask {
                    input: TaskInput::Prompt(prompt.to_owned()),
                    environment: None,
                    idempotency_key: None,
                },
            )
            .await
            .unwrap()
            .0
    }

    /// Runs the manager's workers until `task` is finished (at most 30 s); returns it.
    pub async fn run_until_finished(&self, task: &Task) -> Task {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = tokio::spawn(self.manager.clone().run(stopped, Duration::from_secs(1)));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let finished = loop {
            let now = self.task(task).await;
            if now.status.is_terminal() {
                break now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not finished: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = stop.send(true);
        let _ = workers.await;
        finished
    }

    pub async fn task(&self, task: &Task) -> Task {
        store::tasks::get(self.db(), &task.task_id)
            .await
            .unwrap()
            .unwrap()
    }
}
