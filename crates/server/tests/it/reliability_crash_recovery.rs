//! Reliability scenarios 1 and 4 through the real binary: `kill -9` of the server while tasks
//! run and others are queued; after a restart every task ends in the state the recovery contract
//! (docs/reliability.md) promises — none lost, none run twice, nothing left running — and a
//! polite stop lets running tasks finish.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Deployment, Server, processes_matching, random_suffix};

const WITHIN: Duration = Duration::from_secs(60);

async fn started(server: &Server, token: &str, task: &Value) -> usize {
    server
        .audit_of(token, task["task_id"].as_str().unwrap(), "action.started")
        .await
        .len()
}

async fn wait_running(server: &Server, token: &str, tasks: &[&Value]) {
    for task in tasks {
        let id = task["task_id"].as_str().unwrap();
        server.wait_status(token, id, &["RUNNING"], WITHIN).await;
    }
}

pub async fn kill_9_while_tasks_run(dep: Deployment) {
    let dep = dep
        .with_workers(2)
        .var("AGENTICAI_TASK_LEASE", "3s")
        .var("AGENTICAI_MAX_TASKS_PER_USER", "8");
    let mut server = Server::start_with(dep).await;
    let token = server.org_init().admin_token;
    let marker = random_suffix();
    let read = server
        .create_command(&token, &format!("sleep 2; echo read-{marker}"))
        .await;
    let write = server
        .create_approved(&token, &format!("sleep 2 && echo {marker} > out.txt"))
        .await;
    wait_running(&server, &token, &[&read, &write]).await;
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(
            server
                .create_command(&token, &format!("echo q{i}-{marker}"))
                .await,
        );
    }
    crate::support::eventually(WITHIN, "both runs started", || async {
        (started(&server, &token, &read).await == 1 && started(&server, &token, &write).await == 1)
            .then_some(())
    })
    .await;

    server.kill();
    crate::support::eventually(
        Duration::from_secs(5),
        "sandboxes die with the server",
        || async { processes_matching(&marker).is_empty().then_some(()) },
    )
    .await;
    server.restart().await;

    let read_done = server
        .wait_finished(&token, read["task_id"].as_str().unwrap(), WITHIN)
        .await;
    assert_eq!(
        read_done["status"], "SUCCEEDED",
        "read-only is re-run: {read_done}"
    );
    assert_eq!(read_done["result"]["output"], format!("read-{marker}\n"));
    assert_eq!(started(&server, &token, &read).await, 2);

    let write_done = server
        .wait_finished(&token, write["task_id"].as_str().unwrap(), WITHIN)
        .await;
    assert_eq!(
        write_done["status"], "FAILED",
        "mutating is never re-run: {write_done}"
    );
    assert_eq!(write_done["error"]["code"], "interrupted", "{write_done}");
    assert_eq!(started(&server, &token, &write).await, 1);

    for (i, task) in queued.iter().enumerate() {
        let done = server
            .wait_finished(&token, task["task_id"].as_str().unwrap(), WITHIN)
            .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_eq!(done["result"]["output"], format!("q{i}-{marker}\n"));
        assert_eq!(started(&server, &token, task).await, 1, "run once: {done}");
    }
    assert!(processes_matching(&marker).is_empty());
}

#[tokio::test]
async fn kill_9_while_tasks_run_recovers_per_contract() {
    kill_9_while_tasks_run(Deployment::sqlite()).await;
}

#[tokio::test]
async fn postgres_redis_kill_9_while_tasks_run_recovers_per_contract() {
    let redis = std::env::var("AGENTICAI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    kill_9_while_tasks_run(Deployment::postgres().var("AGENTICAI_REDIS_URL", &redis)).await;
}

/// A polite stop lets a running task finish within the grace period; one that would outlast it
/// is stopped and settled by the contract (read-only: queued again, and run after the restart).
#[tokio::test]
async fn sigterm_lets_running_tasks_finish_within_the_grace_period() {
    let dep = Deployment::new()
        .with_workers(2)
        .var("AGENTICAI_SHUTDOWN_GRACE", "3s");
    let mut server = Server::start_with(dep).await;
    let token = server.org_init().admin_token;
    let short = server
        .create_command(&token, "sleep 1; echo finished")
        .await;
    let long = server.create_command(&token, "sleep 20; echo late").await;
    wait_running(&server, &token, &[&short, &long]).await;
    let status = server
        .stop_within(Duration::from_secs(15))
        .await
        .expect("the server stops within the grace period");
    assert!(status.success(), "{status}");
    assert!(processes_matching("sleep 20; echo late").is_empty());
    server.restart().await;
    let done = server
        .wait_finished(&token, short["task_id"].as_str().unwrap(), WITHIN)
        .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["output"], "finished\n");
    // The long one was interrupted and, being read-only, runs again after the restart.
    let again = server
        .wait_status(
            &token,
            long["task_id"].as_str().unwrap(),
            &["RUNNING"],
            WITHIN,
        )
        .await;
    assert_eq!(again["status"], "RUNNING");
    // RUNNING is recorded at the claim; `action.started` follows once the checks pass.
    crate::support::eventually(WITHIN, "the second run starts", || async {
        (started(&server, &token, &long).await == 2).then_some(())
    })
    .await;
}
