//! `agenticai chat` through the real binary: requests typed on stdin become agent tasks on a real
//! server (its model a fake LLM server), whose steps, commands, approvals and answers the chat
//! prints; its own `/` commands; and clear failures without a token or a server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::llm::WireFormat;
use agent::llm::testing::{FakeLlm, Reply};
use serde_json::{Value, json};

use crate::support::{CliRun, Deployment, Server, free_port};

/// How long one chat may take: an agent task with a sandboxed command or two.
const CHAT_TIMEOUT: Duration = Duration::from_secs(120);

/// The fake model's API key.
const LLM_KEY: &str = "sk-test";

/// A server that runs agent tasks with `fake` as its model; the admin's token.
async fn agent_server(fake: &FakeLlm) -> (Server, String) {
    let dep = Deployment::new()
        .with_workers(4)
        .var("AGENTICAI_LLM_PROVIDER", "openai")
        .var("AGENTICAI_LLM_BASE_URL", &fake.base_url())
        .var("AGENTICAI_LLM_MODEL", "test")
        .var("AGENTICAI_LLM_API_KEY", LLM_KEY);
    let server = Server::start_with(dep).await;
    let token = server.org_init().admin_token;
    (server, token)
}

/// Runs `agenticai chat` against `url` with `token` (when given) and `input` piped on stdin.
async fn chat(dep: &Deployment, url: &str, token: Option<&str>, input: &str) -> CliRun {
    let path = dep
        .root()
        .join(format!("chat-input-{}", crate::support::random_suffix()));
    std::fs::write(&path, input).expect("write the chat input");
    let running = dep.spawn_cli_with(&["chat"], |c| {
        c.env("AGENTICAI_URL", url)
            .stdin(std::fs::File::open(&path).expect("open the chat input"));
        if let Some(token) = token {
            c.env("AGENTICAI_TOKEN", token);
        }
    });
    // The fake model is served by this test's runtime: wait on another thread.
    tokio::task::spawn_blocking(move || running.wait(CHAT_TIMEOUT))
        .await
        .expect("wait for the chat")
}

/// The task id the chat printed (`task ID`), the only one.
fn task_id(run: &CliRun) -> String {
    let ids: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("task "))
        .collect();
    assert_eq!(ids.len(), 1, "expected one `task ID` line: {run}");
    ids[0].to_owned()
}

/// Functional: a question answered with a read-only command, the transcript shows the task, the
/// command with its tier and verdict, and the answer; no prompts when piped; exit 0 at the end of
/// input. Terminal escapes in the model's words are not passed to the terminal.
#[tokio::test]
async fn chat_shows_a_read_only_step_and_the_answer() {
    let fake = FakeLlm::start(WireFormat::OpenAi, Some(LLM_KEY)).await;
    fake.push(Reply::tool_call(
        "call_1",
        "shell",
        json!({"command": "df -h /"}),
    ));
    fake.push(Reply::text(
        "The root filesystem is 40% full.\u{1b}]0;owned\u{7}\u{1b}[2J",
    ));
    let (server, token) = agent_server(&fake).await;

    let run = chat(
        &server.dep,
        &server.url(""),
        Some(&token),
        "what is the disk usage?\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    let id = task_id(&run);
    assert!(run.stdout.contains("$ df -h /"), "{run}");
    assert!(run.stdout.contains("L0_READONLY"), "{run}");
    assert!(
        run.stdout
            .contains("agent: The root filesystem is 40% full."),
        "{run}"
    );
    assert!(
        !run.stdout.contains("you> "),
        "no prompts when piped: {run}"
    );
    assert!(
        !run.stdout.contains('\u{1b}'),
        "an escape reached stdout: {run}"
    );
    assert!(!run.stderr.contains(&token), "the token leaked: {run}");

    let task = server
        .get(&format!("/v1/tasks/{id}"), Some(&token))
        .await
        .expect(200)
        .clone();
    assert_eq!(task["status"], "SUCCEEDED", "{task}");
    assert_eq!(task["kind"], "agent", "{task}");
    assert_eq!(task["input"], "what is the disk usage?", "{task}");
    assert_eq!(fake.remaining(), 0, "the model was asked twice");
}

/// Functional: a mutating step waits for approval; the chat shows what is asked (action, tier,
/// approval id), the next input line `y` approves it, the command runs and the answer follows.
#[tokio::test]
async fn chat_asks_before_a_mutating_step_and_y_approves_it() {
    let fake = FakeLlm::start(WireFormat::OpenAi, Some(LLM_KEY)).await;
    fake.push(Reply::tool_call(
        "call_1",
        "shell",
        json!({"command": "touch /workspace/x"}),
    ));
    fake.push(Reply::text("Created /workspace/x."));
    let (server, token) = agent_server(&fake).await;

    let run = chat(
        &server.dep,
        &server.url(""),
        Some(&token),
        "create the file x in the workspace\ny\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    let id = task_id(&run);
    for shown in [
        "$ touch /workspace/x",
        "REQUIRE_APPROVAL",
        "? approval needed: touch /workspace/x",
        "L1_MUTATING",
        "✓ approved apr",
        "agent: Created /workspace/x.",
    ] {
        assert!(run.stdout.contains(shown), "{shown:?} not shown: {run}");
    }
    assert!(
        !run.stdout.contains("approve? [y/N]"),
        "no prompts when piped: {run}"
    );
    let task = server
        .get(&format!("/v1/tasks/{id}"), Some(&token))
        .await
        .expect(200)
        .clone();
    assert_eq!(task["status"], "SUCCEEDED", "{task}");
    assert_eq!(task["risk_tier"], "L1_MUTATING", "{task}");
    let approvals = server
        .get("/v1/approvals", Some(&token))
        .await
        .expect(200)
        .clone();
    let decided: Vec<&Value> = approvals["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter(|a| a["task_id"] == id.as_str())
        .collect();
    assert_eq!(decided.len(), 1, "{approvals}");
    assert_eq!(decided[0]["decision"], "APPROVE", "{approvals}");
}

/// Any other answer than `y`/`yes` denies; the task goes on to its end and the chat exits 0.
#[tokio::test]
async fn chat_denies_on_any_other_answer() {
    let fake = FakeLlm::start(WireFormat::OpenAi, Some(LLM_KEY)).await;
    fake.push(Reply::tool_call(
        "call_1",
        "shell",
        json!({"command": "touch /workspace/y"}),
    ));
    fake.push(Reply::text("Understood, I left it alone."));
    let (server, token) = agent_server(&fake).await;

    let run = chat(
        &server.dep,
        &server.url(""),
        Some(&token),
        "create the file y\nno thanks\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    let id = task_id(&run);
    assert!(run.stdout.contains("✓ denied apr"), "{run}");
    let task = server
        .get(&format!("/v1/tasks/{id}"), Some(&token))
        .await
        .expect(200)
        .clone();
    assert!(
        ["SUCCEEDED", "FAILED"].contains(&task["status"].as_str().unwrap_or("")),
        "{task}"
    );
    let approvals = server
        .get("/v1/approvals", Some(&token))
        .await
        .expect(200)
        .clone();
    assert!(
        approvals["approvals"]
            .as_array()
            .expect("approvals")
            .iter()
            .any(|a| a["task_id"] == id.as_str() && a["decision"] == "DENY"),
        "{approvals}"
    );
}

/// The chat's own commands: help, unknown commands, missing arguments and blank lines do not
/// reach the server; `/quit` leaves with 0 and what follows it is never sent.
#[tokio::test]
async fn chat_local_commands_stay_local_and_quit_leaves() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let run = chat(
        &server.dep,
        &server.url(""),
        Some(&token),
        "\n   \n/help\n/frobnicate\n/approve\n/approve NOT-AN-ID!\n/cancel\n/quit\nnever sent\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run}");
    for shown in [
        "/approve ID",
        "unknown command /frobnicate",
        "usage: /approve APPROVAL_ID",
        "is not an approval id",
        "no task is running",
    ] {
        assert!(run.stdout.contains(shown), "{shown:?} not shown: {run}");
    }
    let tasks = server
        .get("/v1/tasks", Some(&token))
        .await
        .expect(200)
        .clone();
    assert_eq!(tasks["tasks"], json!([]), "{tasks}");
}

/// What the scripted API of [`chat_resumes_a_broken_stream_where_it_stopped`] saw.
#[derive(Default)]
struct Seen {
    /// `Last-Event-ID` of each events request, in order.
    resumed_after: Vec<Option<String>>,
    /// Whether `POST /v1/tasks` carried an `Idempotency-Key`.
    idempotency_key: bool,
    /// The decision bodies.
    decisions: Vec<Value>,
}

/// A scripted API server: one agent task whose first event stream breaks off mid-frame right
/// after an approval request; the second stream (which must resume after event 3) finishes it.
async fn scripted_api(seen: Arc<Mutex<Seen>>) -> String {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::{get, post};

    fn task(status: &str, result: Value) -> Value {
        json!({"task_id": "tsk_scripted", "user_id": "usr_a", "kind": "agent",
               "input": "make x", "environment": null, "status": status, "risk_tier": null,
               "approval_id": null, "created_at": "2025-01-01T00:00:00Z",
               "updated_at": "2025-01-01T00:00:00Z", "result": result, "error": null})
    }
    fn event(seq: i64, kind: &str, data: Value) -> String {
        let event = json!({"task_id": "tsk_scripted", "seq": seq,
                           "at": "2025-01-01T00:00:00Z", "kind": kind, "data": data});
        format!("id: {seq}\r\nevent: {kind}\r\ndata: {event}\r\n\r\n")
    }
    let sse = |body: String| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/event-stream")],
            body,
        )
    };
    let first = format!(
        "event: task\ndata: {}\n\n{}{}: keep-alive\n\n{}id: 4\nevent: tool_res",
        task("RUNNING", Value::Null),
        event(1, "plan", json!({"step": 1, "text": "I will create x."})),
        event(
            2,
            "tool_call",
            json!({"step": 1, "tool": "shell", "command": "touch /workspace/x",
                   "risk_tier": "L1_MUTATING", "verdict": "REQUIRE_APPROVAL",
                   "rationale": "creates a file"})
        ),
        event(
            3,
            "approval",
            json!({"approval_id": "apr_scripted", "action": "touch /workspace/x",
                   "risk_tier": "L1_MUTATING", "environment": null,
                   "rationale": "creates a file"})
        ),
    );
    let done = task(
        "SUCCEEDED",
        json!({"exit_code": 0, "output": "Created x.", "truncated": false}),
    );
    let second = format!(
        "event: task\ndata: {}\n\n{}{}{}event: task\ndata: {done}\n\n",
        task("RUNNING", Value::Null),
        event(
            4,
            "tool_result",
            json!({"step": 1, "tool": "shell", "exit_code": 0, "denied": false,
                   "error": null, "flagged": false, "reasons": []})
        ),
        event(5, "output", json!({"text": "no newline at the end"})),
        event(6, "answer", json!({"text": "Created x."})),
    );
    let (events_seen, tasks_seen, decisions_seen) =
        (Arc::clone(&seen), Arc::clone(&seen), Arc::clone(&seen));
    let app = axum::Router::new()
        .route(
            "/v1/tasks",
            get(|| async { axum::Json(json!({"tasks": []})) }).post(
                move |headers: HeaderMap| async move {
                    tasks_seen.lock().expect("seen").idempotency_key =
                        headers.contains_key("idempotency-key");
                    (
                        StatusCode::ACCEPTED,
                        axum::Json(task("QUEUED", Value::Null)),
                    )
                },
            ),
        )
        .route(
            "/v1/tasks/tsk_scripted/events",
            get(move |headers: HeaderMap| async move {
                let mut seen = events_seen.lock().expect("seen");
                let after = headers
                    .get("last-event-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.resumed_after.push(after);
                sse(if seen.resumed_after.len() == 1 {
                    first
                } else {
                    second
                })
            }),
        )
        .route(
            "/v1/approvals/apr_scripted/decision",
            post(move |axum::Json(body): axum::Json<Value>| async move {
                decisions_seen.lock().expect("seen").decisions.push(body);
                axum::Json(json!({"approval_id": "apr_scripted"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the scripted API");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A stream that breaks off before the task is over is resumed with `Last-Event-ID`: nothing is
/// shown twice, the approval asked on the first connection is decided, and the task's end and
/// answer come on the second.
#[tokio::test]
async fn chat_resumes_a_broken_stream_where_it_stopped() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = scripted_api(Arc::clone(&seen)).await;
    let dep = Deployment::new();
    let run = chat(&dep, &url, Some("any-token"), "make x\nyes\n").await;
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(task_id(&run), "tsk_scripted");
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.resumed_after, [None, Some("3".to_owned())], "{run}");
    assert!(seen.idempotency_key, "no Idempotency-Key");
    assert_eq!(seen.decisions, [json!({"decision": "APPROVE"})], "{run}");
    assert_eq!(run.stdout.matches("? approval needed").count(), 1, "{run}");
    assert_eq!(
        run.stdout.matches("• plan: I will create x.").count(),
        1,
        "{run}"
    );
    assert_eq!(run.stdout.matches("Created x.").count(), 1, "{run}");
    for shown in [
        "$ touch /workspace/x  [L1_MUTATING, REQUIRE_APPROVAL]",
        "✓ approved apr_scripted",
        "    → exit 0",
        "    no newline at the end\nagent: Created x.",
    ] {
        assert!(run.stdout.contains(shown), "{shown:?} not shown: {run}");
    }
}

/// Without a token: exit 2 and a message that says which setting is missing.
#[tokio::test]
async fn chat_without_a_token_exits_2() {
    let dep = Deployment::new();
    let run = chat(&dep, "http://127.0.0.1:9", None, "hello\n").await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("AGENTICAI_TOKEN"), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
}

/// A wrong token and an unreachable server: exit 1 with a message that says which.
#[tokio::test]
async fn chat_with_a_bad_token_or_no_server_fails_clearly() {
    let server = Server::start().await;
    server.org_init();
    let run = chat(&server.dep, &server.url(""), Some("not-a-token"), "hi\n").await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("refused the token (401)"), "{run}");
    assert!(
        !run.stderr.contains("not-a-token"),
        "the token leaked: {run}"
    );

    let nobody = format!("http://127.0.0.1:{}", free_port());
    let run = chat(&server.dep, &nobody, Some("some-token"), "hi\n").await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("cannot reach the server at"), "{run}");
}
