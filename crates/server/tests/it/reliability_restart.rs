//! Reliability: a polite stop (SIGTERM/SIGINT) exits 0 promptly, a restart on the same data
//! finds everything as it was, and concurrent requests neither lose nor duplicate work.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Deployment, Server, into_resp};

/// How long a stop may take when nothing is running.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// Creates tasks, stops the server with SIGTERM (exit 0, promptly), starts it again on the same
/// data and checks every task, the list, the idempotency record and the token.
pub async fn restart_keeps_everything(dep: Deployment) {
    let mut server = Server::start_with(dep).await;
    let org = server.org_init();
    let token = org.admin_token.as_str();
    let bob = server.dep.user_create("bob", "member");

    let mut tasks = Vec::new();
    tasks.push(server.create_command(token, "ls -la /srv").await);
    let r = server
        .post(
            "/v1/tasks",
            Some(&bob.token),
            &json!({"prompt": "check the disks"}),
        )
        .await;
    tasks.push(r.expect(202).clone());
    let canceled = server.create_command(&bob.token, "sleep 1000").await;
    let id = canceled["task_id"].as_str().unwrap();
    let r = server
        .post(&format!("/v1/tasks/{id}/cancel"), Some(token), &json!({}))
        .await;
    tasks.push(r.expect(200).clone());
    let keyed = server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/tasks", Some(token))
                .header("Idempotency-Key", "restart-1")
                .json(&json!({"command": "uptime"})),
        )
        .await;
    tasks.push(keyed.expect(202).clone());
    let list_before = server
        .get("/v1/tasks", Some(token))
        .await
        .expect(200)
        .clone();
    let users_before = server
        .get("/v1/users", Some(token))
        .await
        .expect(200)
        .clone();

    let started = Instant::now();
    let status = server
        .stop_within(Duration::from_secs(40))
        .await
        .unwrap_or_else(|| panic!("no exit within 40 s of SIGTERM\n{}", server.log_text()));
    let took = started.elapsed();
    assert!(
        status.success(),
        "SIGTERM: exit {status}\n{}",
        server.log_text()
    );
    assert!(
        took < PROMPT_EXIT,
        "SIGTERM took {took:?} with nothing running"
    );

    server.restart().await;
    for task in &tasks {
        let id = task["task_id"].as_str().unwrap();
        let r = server.get(&format!("/v1/tasks/{id}"), Some(token)).await;
        assert_eq!(r.expect(200), task, "task {id} changed across the restart");
    }
    let list_after = server.get("/v1/tasks", Some(token)).await;
    assert_eq!(list_after.expect(200), &list_before);
    let users_after = server.get("/v1/users", Some(token)).await;
    assert_eq!(users_after.expect(200), &users_before);
    // Bob's token and the idempotency record survived too.
    server.get("/v1/tasks", Some(&bob.token)).await.expect(200);
    let again = server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/tasks", Some(token))
                .header("Idempotency-Key", "restart-1")
                .json(&json!({"command": "uptime"})),
        )
        .await;
    assert_eq!(again.expect(200)["task_id"], tasks[3]["task_id"]);
    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.expect(200)["status"], "ready");
}

/// Opens many connections to the server, and through it to the database, so that the
/// concurrent requests that follow really overlap (a cold pool serialises them).
async fn warm_up(server: &Server, token: &str) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = server.request(reqwest::Method::GET, "/v1/tasks", Some(token));
        set.spawn(async move { into_resp(request.send().await.expect("request")).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("join").expect(200);
    }
}

/// Rounds of 50 concurrent POSTs with one Idempotency-Key each: one task per key, and every
/// answer names it (200 for all but the one 202).
pub async fn concurrent_idempotent_posts_make_one_task(server: &Server, token: &str) {
    const ROUNDS: usize = 3;
    warm_up(server, token).await;
    for round in 0..ROUNDS {
        let key = format!("same-key-{round}");
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let request = server
                .request(reqwest::Method::POST, "/v1/tasks", Some(token))
                .header("Idempotency-Key", key.as_str())
                .json(&json!({"command": "ls"}));
            set.spawn(async move {
                let response = request.send().await.expect("request");
                into_resp(response).await
            });
        }
        let mut answers = Vec::new();
        while let Some(r) = set.join_next().await {
            answers.push(r.expect("join"));
        }
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        for r in &answers {
            assert!(
                r.status == 200 || r.status == 202,
                "round {round}: a duplicate request got {} {} (expected 200 with the first \
                 task); statuses {statuses:?}",
                r.status,
                r.text,
            );
        }
        let created = statuses.iter().filter(|s| **s == 202).count();
        assert_eq!(created, 1, "round {round}: exactly one 202: {statuses:?}");
        let first = &answers[0].json["task_id"];
        assert!(
            answers.iter().all(|r| r.json["task_id"] == *first),
            "round {round}: different tasks for one key"
        );
    }
    let list = server.get("/v1/tasks?limit=500", Some(token)).await;
    assert_eq!(
        list.expect(200)["tasks"].as_array().map(Vec::len),
        Some(ROUNDS),
        "one task per key"
    );
}

/// 50 concurrent POSTs without a key: 50 tasks, none lost, no errors.
pub async fn concurrent_posts_all_land(server: &Server, token: &str) {
    warm_up(server, token).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let request = server
            .request(reqwest::Method::POST, "/v1/tasks", Some(token))
            .json(&json!({"command": format!("echo {i}")}));
        set.spawn(async move { into_resp(request.send().await.expect("request")).await });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(r) = set.join_next().await {
        let r = r.expect("join");
        let task: &Value = r.expect(202);
        ids.insert(task["task_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 50);
    let list = server.get("/v1/tasks?limit=500", Some(token)).await;
    assert_eq!(list.expect(200)["tasks"].as_array().map(Vec::len), Some(50));
}

#[tokio::test]
async fn sigterm_exits_0_and_restart_keeps_tasks() {
    restart_keeps_everything(Deployment::new()).await;
}

#[tokio::test]
async fn sigint_exits_0_promptly() {
    let mut server = Server::start().await;
    server.org_init();
    server.get("/readyz", None).await.expect(200);
    let status = server
        .signal_and_wait("INT", Duration::from_secs(40))
        .await
        .expect("exit after SIGINT");
    assert!(status.success(), "SIGINT: exit {status}");
}

#[tokio::test]
async fn sigterm_with_an_idle_keep_alive_connection_is_prompt() {
    let mut server = Server::start().await;
    let token = server.org_init().admin_token;
    // Several pooled keep-alive connections stay open in the client.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = server.request(reqwest::Method::GET, "/v1/tasks", Some(&token));
        set.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.expect("join").expect("request"), 200);
    }
    let started = Instant::now();
    let status = server
        .stop_within(Duration::from_secs(40))
        .await
        .expect("exit after SIGTERM");
    assert!(status.success(), "exit {status}");
    assert!(
        started.elapsed() < PROMPT_EXIT,
        "SIGTERM took {:?} with idle connections open",
        started.elapsed()
    );
}

#[tokio::test]
async fn concurrent_duplicate_posts_make_exactly_one_task() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    concurrent_idempotent_posts_make_one_task(&server, &token).await;
}

#[tokio::test]
async fn concurrent_posts_are_all_stored() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    concurrent_posts_all_land(&server, &token).await;
}

#[tokio::test]
async fn sigkill_loses_no_accepted_task() {
    let mut server = Server::start().await;
    let token = server.org_init().admin_token;
    let task = server.create_command(&token, "ls").await;
    server.kill();
    server.restart().await;
    let id = task["task_id"].as_str().unwrap();
    let r = server.get(&format!("/v1/tasks/{id}"), Some(&token)).await;
    assert_eq!(r.expect(200), &task);
}
