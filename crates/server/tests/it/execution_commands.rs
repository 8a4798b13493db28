//! Command tasks end to end through the real binary and a real bubblewrap sandbox: run and
//! report, progress as Server-Sent Events, approval then run (once), cancellation that leaves
//! nothing behind, timeouts, workspaces, limits and quotas, and a clear failure without a sandbox.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Deployment, Server, processes_matching};

/// Generous bound for a short command to finish (sandbox start is ~20 ms; CI machines are slow).
const SHORT: Duration = Duration::from_secs(30);

async fn server_with_workers(dep: Deployment) -> (Server, String) {
    let server = Server::start_with(dep.with_workers(4)).await;
    let token = server.org_init().admin_token;
    (server, token)
}

/// Functional scenario 5: a command's result (exit code, merged output) lands in the task.
#[tokio::test]
async fn command_runs_and_reports_its_result() {
    let (server, token) = server_with_workers(Deployment::new()).await;
    let ok = server
        .create_command(&token, "echo hello from the sandbox")
        .await;
    assert_eq!(ok["status"], "QUEUED", "{ok}");
    let done = server
        .wait_finished(&token, ok["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["exit_code"], 0);
    assert_eq!(done["result"]["output"], "hello from the sandbox\n");
    assert_eq!(done["result"]["truncated"], false);
    assert!(done["error"].is_null(), "{done}");

    // A non-zero exit is a result: FAILED, output of stdout and stderr, and never retried.
    let bad = server
        .create_command(&token, "echo before; ls /no/such/dir")
        .await;
    let id = bad["task_id"].as_str().unwrap();
    let done = server.wait_finished(&token, id, SHORT).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["result"]["exit_code"], 2, "{done}");
    let output = done["result"]["output"].as_str().unwrap();
    assert!(output.starts_with("before\n"), "{output:?}");
    assert!(output.contains("No such file or directory"), "{output:?}");
    assert!(done["error"].is_null(), "{done}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.audit_of(&token, id, "action.started").await.len(),
        1,
        "a failed command is never run again"
    );
    assert_eq!(
        server.audit_of(&token, id, "action.executed").await.len(),
        1
    );
}

/// Progress: output lines arrive as events while the command runs; the stream ends with the
/// finished task.
#[tokio::test]
async fn events_stream_shows_output_while_it_runs() {
    let (server, token) = server_with_workers(Deployment::new()).await;
    let task = server
        .create_command(&token, "for i in 1 2 3; do echo line$i; sleep 0.4; done")
        .await;
    let id = task["task_id"].as_str().unwrap();
    let mut response = server
        .request(
            reqwest::Method::GET,
            &format!("/v1/tasks/{id}/events"),
            Some(&token),
        )
        .send()
        .await
        .expect("events request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    // The task's status at the moment the first line came in over the stream.
    let mut status_at_first_line = None;
    while let Some(chunk) = tokio::time::timeout(SHORT, response.chunk())
        .await
        .expect("the stream stalls")
        .expect("stream error")
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if status_at_first_line.is_none() && text.contains("line1") {
            let now = server.get(&format!("/v1/tasks/{id}"), Some(&token)).await;
            status_at_first_line = Some(now.expect(200)["status"].clone());
        }
    }
    let frames: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter_map(|frame| {
            let event = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event, serde_json::from_str(data).expect("data is JSON")))
        })
        .collect();
    assert_eq!(frames.first().map(|f| f.0), Some("task"), "{text}");
    assert_eq!(frames.last().map(|f| f.0), Some("task"), "{text}");
    assert_eq!(frames.last().unwrap().1["status"], "SUCCEEDED", "{text}");
    let output: String = frames
        .iter()
        .filter(|f| f.0 == "output")
        .map(|f| f.1["data"]["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(output, "line1\nline2\nline3\n", "{text}");
    let statuses: Vec<&str> = frames
        .iter()
        .filter(|f| f.0 == "status")
        .filter_map(|f| f.1["data"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["RUNNING", "SUCCEEDED"], "{text}");
    assert_eq!(
        status_at_first_line.expect("line1 arrived"),
        "RUNNING",
        "the first line arrived only after the command finished: output is not streamed"
    );
    // Event numbers are increasing, so a client can resume with Last-Event-ID.
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let resumed = server
        .send(
            server
                .request(
                    reqwest::Method::GET,
                    &format!("/v1/tasks/{id}/events"),
                    Some(&token),
                )
                .header("Last-Event-ID", ids[ids.len() - 2].to_string()),
        )
        .await;
    assert_eq!(resumed.status, 200);
    assert_eq!(
        resumed.text.matches("\nid: ").count() + usize::from(resumed.text.starts_with("id: ")),
        1,
        "only the last event after resuming: {}",
        resumed.text
    );

    // Someone else's task: 404, like every other task endpoint.
    let bob = server.dep.user_create("bob", "member");
    server
        .get(&format!("/v1/tasks/{id}/events"), Some(&bob.token))
        .await
        .expect_error(404, None);
}

/// Functional scenario 3: cancel kills the whole sandboxed tree within 2 s — including children
/// that ignore SIGTERM and one that left the foreground — and nothing is left behind.
#[tokio::test]
async fn cancel_kills_the_whole_tree_within_2s() {
    let (server, token) = server_with_workers(Deployment::new()).await;
    let marker = format!("sleep 30{}", std::process::id() % 100);
    let task = server
        .create_approved(
            &token,
            &format!("trap '' TERM; ({marker}; echo never) & echo started; {marker}"),
        )
        .await;
    let id = task["task_id"].as_str().unwrap();
    server.wait_status(&token, id, &["RUNNING"], SHORT).await;
    crate::support::eventually(SHORT, "the sandboxed processes start", || async {
        (processes_matching(&marker).len() >= 2).then_some(())
    })
    .await;
    let asked = Instant::now();
    let canceled = server
        .post(&format!("/v1/tasks/{id}/cancel"), Some(&token), &json!({}))
        .await;
    assert_eq!(canceled.expect(200)["status"], "CANCELED");
    crate::support::eventually(
        Duration::from_secs(2),
        "every sandboxed process is gone",
        || async { processes_matching(&marker).is_empty().then_some(()) },
    )
    .await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let after = server
        .get(&format!("/v1/tasks/{id}"), Some(&token))
        .await
        .expect(200)
        .clone();
    assert_eq!(after["status"], "CANCELED", "the cancel stands: {after}");
    // The run is audited as executed and stopped.
    crate::support::eventually(SHORT, "action.executed is audited", || async {
        let events = server.audit_of(&token, id, "action.executed").await;
        events
            .first()
            .filter(|e| e["data"]["stopped"] == "Canceled")
            .cloned()
    })
    .await;
}

/// A command past its wall-clock limit is killed: TIMED_OUT, with the output so far.
#[tokio::test]
async fn a_command_past_its_time_limit_is_timed_out() {
    let dep = Deployment::new().var("AGENTICAI_TASK_TIMEOUT", "2s");
    let (server, token) = server_with_workers(dep).await;
    let task = server
        .create_command(&token, "echo working; sleep 60")
        .await;
    let id = task["task_id"].as_str().unwrap();
    let started = Instant::now();
    let done = server.wait_finished(&token, id, SHORT).await;
    assert_eq!(done["status"], "TIMED_OUT", "{done}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(done["error"]["code"], "timed_out", "{done}");
    assert_eq!(done["result"]["exit_code"], 124, "{done}");
    assert_eq!(done["result"]["output"], "working\n", "{done}");
    assert!(processes_matching("echo working; sleep 60").is_empty());
}

/// Security scenario 2 end to end: a mutating command waits, runs after approval, runs once, and
/// the user's workspace persists between tasks but is theirs alone.
#[tokio::test]
async fn approved_command_runs_once_in_a_persistent_workspace() {
    let (server, token) = server_with_workers(Deployment::new()).await;
    let task = server
        .create_command(&token, "echo remembered > notes.txt")
        .await;
    assert_eq!(task["status"], "WAITING_APPROVAL", "{task}");
    let id = task["task_id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = server.get(&format!("/v1/tasks/{id}"), Some(&token)).await;
    assert_eq!(
        still.expect(200)["status"],
        "WAITING_APPROVAL",
        "nothing runs unapproved"
    );
    let decision_path = format!(
        "/v1/approvals/{}/decision",
        task["approval_id"].as_str().unwrap()
    );
    let approve = json!({"decision": "APPROVE"});
    server
        .post(&decision_path, Some(&token), &approve)
        .await
        .expect(200);
    let done = server.wait_finished(&token, id, SHORT).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    server
        .post(&decision_path, Some(&token), &approve)
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.audit_of(&token, id, "action.started").await.len(), 1);

    let read = server.create_command(&token, "cat notes.txt").await;
    let done = server
        .wait_finished(&token, read["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(done["result"]["output"], "remembered\n", "{done}");

    let bob = server.dep.user_create("bob", "member");
    let theirs = server.create_command(&bob.token, "ls -a").await;
    let done = server
        .wait_finished(&bob.token, theirs["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert!(
        !done["result"]["output"]
            .as_str()
            .unwrap()
            .contains("notes.txt"),
        "another user's workspace is not shared: {done}"
    );
}

/// Without bubblewrap nothing runs: `/readyz` names the executor, and tasks fail with an
/// actionable error.
#[tokio::test]
async fn without_a_sandbox_tasks_fail_clearly_and_readyz_says_why() {
    let dep = Deployment::new().var("AGENTICAI_BWRAP", "/nonexistent/bwrap");
    let (server, token) = server_with_workers(dep).await;
    let ready = server.get("/readyz", None).await;
    let body = ready.expect(503);
    let why = body["checks"]["executor"].as_str().unwrap_or("");
    assert!(why.contains("bubblewrap"), "{body}");
    let task = server.create_command(&token, "echo hi").await;
    let done = server
        .wait_finished(&token, task["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"]["code"], "sandbox_unavailable", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bubblewrap"),
        "{done}"
    );
    assert!(done["result"].is_null(), "nothing ran: {done}");
}

/// The per-user limit: a user's second task waits while their first runs.
#[tokio::test]
async fn per_user_limit_queues_a_users_further_tasks() {
    let dep = Deployment::new().var("AGENTICAI_MAX_TASKS_PER_USER", "1");
    let (server, token) = server_with_workers(dep).await;
    let first = server.create_command(&token, "sleep 1.5; echo first").await;
    let second = server.create_command(&token, "echo second").await;
    let first_id = first["task_id"].as_str().unwrap();
    let second_id = second["task_id"].as_str().unwrap();
    server
        .wait_status(&token, first_id, &["RUNNING"], SHORT)
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let waiting = server
        .get(&format!("/v1/tasks/{second_id}"), Some(&token))
        .await;
    assert_eq!(
        waiting.expect(200)["status"],
        "QUEUED",
        "the limit holds it back"
    );
    let a = server.wait_finished(&token, first_id, SHORT).await;
    let b = server.wait_finished(&token, second_id, SHORT).await;
    assert_eq!(a["status"], "SUCCEEDED");
    assert_eq!(b["status"], "SUCCEEDED");
}

/// The hourly quota: over it, creation is refused with 429 and nothing is stored.
#[tokio::test]
async fn tasks_over_the_hourly_quota_are_refused() {
    let server = Server::start_with(Deployment::new().var("AGENTICAI_TASKS_PER_HOUR", "2")).await;
    let token = server.org_init().admin_token;
    server.create_command(&token, "ls").await;
    server.create_command(&token, "ls").await;
    let third = server
        .post("/v1/tasks", Some(&token), &json!({"command": "ls"}))
        .await;
    third.expect_error(429, Some("quota_exceeded"));
    let list = server.get("/v1/tasks", Some(&token)).await;
    assert_eq!(list.expect(200)["tasks"].as_array().unwrap().len(), 2);
}

/// Functional scenario 2: the API keeps answering while 10 sandboxes run at once (latency
/// figures are in docs/performance.md, from `cargo bench -p server --bench execution`).
#[tokio::test]
async fn api_answers_while_ten_sandboxes_run() {
    let dep = Deployment::new()
        .with_workers(10)
        .var("AGENTICAI_MAX_TASKS_PER_USER", "10");
    let server = Server::start_with(dep).await;
    let token = server.org_init().admin_token;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let t = server.create_command(&token, "sleep 3").await;
        ids.push(t["task_id"].as_str().unwrap().to_owned());
    }
    crate::support::eventually(SHORT, "10 tasks run at once", || async {
        let r = server.get("/v1/tasks?status=RUNNING", Some(&token)).await;
        (r.json["tasks"].as_array().map_or(0, Vec::len) == 10).then_some(())
    })
    .await;
    for _ in 0..50 {
        let r = server
            .get(&format!("/v1/tasks/{}", ids[0]), Some(&token))
            .await;
        r.expect(200);
    }
    for id in &ids {
        let done = server.wait_finished(&token, id, SHORT).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
    }
}

/// Reliability scenario 3: a backlog drains under concurrency, every task exactly once.
#[tokio::test]
async fn queue_backlog_drains_with_nothing_lost_or_run_twice() {
    let dep = Deployment::new().var("AGENTICAI_MAX_TASKS_PER_USER", "4");
    let (server, token) = server_with_workers(dep).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let t = server
            .create_command(&token, &format!("echo task{i}"))
            .await;
        ids.push(t["task_id"].as_str().unwrap().to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        let done = server
            .wait_finished(&token, id, Duration::from_secs(120))
            .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_eq!(done["result"]["output"], format!("task{i}\n"));
    }
    let started = server
        .get(
            "/v1/audit-events?type=action.started&limit=1000",
            Some(&token),
        )
        .await;
    let events = started.expect(200)["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), ids.len(), "each task started exactly once");
}

/// The same lifecycle on Postgres + Redis (the production setting): run and report, progress
/// over the Redis bus, cancel, timeout.
#[tokio::test]
async fn postgres_redis_commands_run_stream_cancel_and_time_out() {
    let redis = std::env::var("AGENTICAI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let dep = Deployment::postgres()
        .var("AGENTICAI_REDIS_URL", &redis)
        .var("AGENTICAI_TASK_TIMEOUT", "3s");
    let (server, token) = server_with_workers(dep).await;

    let ok = server
        .create_command(&token, "echo one; sleep 0.3; echo two")
        .await;
    let id = ok["task_id"].as_str().unwrap();
    let stream = server
        .send(server.request(
            reqwest::Method::GET,
            &format!("/v1/tasks/{id}/events"),
            Some(&token),
        ))
        .await;
    assert_eq!(stream.status, 200);
    assert!(stream.text.contains("\"text\":\"one\\n"), "{}", stream.text);
    let done = server.wait_finished(&token, id, SHORT).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["output"], "one\ntwo\n");

    let marker = format!("sleep 29{}", std::process::id() % 100);
    let long = server
        .create_command(&token, &format!("{marker}; echo x"))
        .await;
    let long_id = long["task_id"].as_str().unwrap();
    server
        .wait_status(&token, long_id, &["RUNNING"], SHORT)
        .await;
    server
        .post(
            &format!("/v1/tasks/{long_id}/cancel"),
            Some(&token),
            &json!({}),
        )
        .await
        .expect(200);
    crate::support::eventually(
        Duration::from_secs(2),
        "the canceled sandbox is gone",
        || async { processes_matching(&marker).is_empty().then_some(()) },
    )
    .await;

    let slow = server.create_command(&token, "sleep 60").await;
    let done = server
        .wait_finished(&token, slow["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(done["status"], "TIMED_OUT", "{done}");
}

/// Governance: `cancel_risky_tasks` stops a running mutating command (its sandbox is gone within
/// 2 s) and leaves read-only work alone.
#[tokio::test]
async fn cancel_risky_tasks_stops_running_mutations() {
    let (server, token) = server_with_workers(Deployment::new()).await;
    let marker = format!("sleep 31{}", std::process::id() % 100);
    let risky = server
        .create_approved(&token, &format!("touch a && {marker}"))
        .await;
    let safe = server.create_command(&token, "sleep 2; echo safe").await;
    let risky_id = risky["task_id"].as_str().unwrap();
    server
        .wait_status(&token, risky_id, &["RUNNING"], SHORT)
        .await;
    crate::support::eventually(SHORT, "the risky sandbox runs", || async {
        (!processes_matching(&marker).is_empty()).then_some(())
    })
    .await;
    let outcome = server
        .post(
            "/v1/org/emergency",
            Some(&token),
            &json!({"action": "cancel_risky_tasks"}),
        )
        .await;
    let canceled = outcome.expect(200)["canceled_task_ids"].clone();
    assert!(
        canceled.as_array().unwrap().iter().any(|id| id == risky_id),
        "{canceled}"
    );
    crate::support::eventually(
        Duration::from_secs(2),
        "the risky sandbox is gone",
        || async { processes_matching(&marker).is_empty().then_some(()) },
    )
    .await;
    let done = server
        .wait_finished(&token, safe["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(
        done["status"], "SUCCEEDED",
        "read-only work goes on: {done}"
    );
}

/// The retry contract: a sandbox that failed to launch ran nothing, so the task is retried with
/// backoff — and its approval, consumed by the failed launch, is given back for the retry.
#[tokio::test]
async fn a_sandbox_that_fails_to_launch_is_retried_with_backoff() {
    use std::os::unix::fs::PermissionsExt as _;
    // A bubblewrap that fails its 2nd and 3rd starts (the 1st is the startup probe). It runs as
    // the unprivileged sandbox user with a cleared environment, hence the open directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let counter = dir.path().join("count");
    let script = dir.path().join("flaky-bwrap");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
             if [ $n -ge 2 ] && [ $n -le 3 ]; then echo 'simulated launch failure' >&2; exit 1; fi\n\
             exec /usr/bin/bwrap \"$@\"\n",
            c = counter.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let dep = Deployment::new().var("AGENTICAI_BWRAP", script.to_str().unwrap());
    let (server, token) = server_with_workers(dep).await;
    let task = server
        .create_approved(&token, "echo retried > retried.txt && cat retried.txt")
        .await;
    let id = task["task_id"].as_str().unwrap();
    let started = Instant::now();
    let done = server.wait_finished(&token, id, SHORT).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["output"], "retried\n");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "two backoffs (1 s, then 2 s) came first: {:?}",
        started.elapsed()
    );
    let changes = server.audit_of(&token, id, "task.status_changed").await;
    let retries = changes
        .iter()
        .filter(|e| e["data"]["reason"] == "sandbox_launch_failed")
        .count();
    assert_eq!(retries, 2, "{changes:?}");
}
