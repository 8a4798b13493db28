//! The agent loop's guards at the crate's level, with a fake model and a real database (no
//! sandbox: shell calls that would run are reported "not run"): an answer that fans out into
//! many tool calls is capped, malformed and unknown tool calls are reported back to the model,
//! the token budget stops a task, and a missing model fails agent tasks clearly.

use agent::llm::WireFormat;
use agent::llm::testing::{FakeLlm, Reply};
use agent::planner::{AgentLimits, AgentSettings};
use domain::TaskStatus;
use serde_json::json;

use crate::support::Fixture;

async fn fixture(llm: &FakeLlm, limits: AgentLimits) -> Fixture {
    Fixture::with_agent(Some(AgentSettings {
        provider: llm.provider(),
        limits,
    }))
    .await
}

/// The tool results the model was sent in request `n`, as text.
fn sent(llm: &FakeLlm, n: usize) -> String {
    llm.requests()[n].raw.clone()
}

#[tokio::test]
async fn one_answer_cannot_fan_out_into_unbounded_actions() {
    let llm = FakeLlm::start(WireFormat::OpenAi, None).await;
    let calls = (0..10)
        .map(|n| {
            (
                format!("c{n}"),
                "reply".to_owned(),
                json!({ "text": format!("note {n}") }),
            )
        })
        .collect();
    llm.push(Reply::ToolCalls { text: None, calls });
    llm.push(Reply::text("done"));
    let f = fixture(&llm, AgentLimits::default()).await;
    let task = f.prompt("say things").await;
    let done = f.run_until_finished(&task).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    let events = store::task_events::list_after(f.db(), &task.task_id, 0, 500)
        .await
        .unwrap();
    let replies = events.iter().filter(|e| e.kind == "reply").count();
    assert_eq!(replies, 8, "at most 8 calls of one answer are carried out");
    let second = sent(&llm, 1);
    assert_eq!(
        second.matches("at most 8 tool calls").count(),
        2,
        "{second}"
    );
}

#[tokio::test]
async fn malformed_and_unknown_tool_calls_are_reported_to_the_model() {
    let llm = FakeLlm::start(WireFormat::Anthropic, Some("k")).await;
    llm.push(Reply::ToolCalls {
        text: Some("trying".into()),
        calls: vec![
            ("c1".into(), "shell".into(), json!({ "cmd": "ls" })),
            ("c2".into(), "browser".into(), json!({ "url": "x" })),
            (
                "c3".into(),
                "shell".into(),
                json!({ "command": "ls /workspace" }),
            ),
        ],
    });
    llm.push(Reply::text("I could not run anything."));
    let f = fixture(&llm, AgentLimits::default()).await;
    let task = f.prompt("look").await;
    let done = f.run_until_finished(&task).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    let second = sent(&llm, 1);
    assert!(
        second.contains("non-empty string \\\"command\\\""),
        "{second}"
    );
    assert!(second.contains("no tool named \\\"browser\\\""), "{second}");
    assert!(
        second.contains("sandbox_unavailable"),
        "an allowed call without a sandbox: {second}"
    );
    // The read-only call was decided (and audited) even though it could not run.
    let decided = store::audit::count_for_task(f.db(), &task.task_id, "action.decided")
        .await
        .unwrap();
    assert_eq!(decided, 1);
    assert_eq!(
        done.risk_tier, None,
        "the task's tier counts actions taken, and none ran"
    );
    let refused = store::audit::count_for_task(f.db(), &task.task_id, "action.refused")
        .await
        .unwrap();
    assert_eq!(refused, 1, "the refusal before the start is audited");
}

#[tokio::test]
async fn the_token_budget_stops_a_task() {
    let llm = FakeLlm::start(WireFormat::OpenAi, None).await;
    for n in 0..5 {
        llm.push(Reply::tool_call(
            format!("c{n}"),
            "reply",
            json!({"text": "hm"}),
        ));
    }
    let limits = AgentLimits {
        max_task_tokens: 1,
        ..AgentLimits::default()
    };
    let f = fixture(&llm, limits).await;
    let task = f.prompt("go").await;
    let done = f.run_until_finished(&task).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.error.map(|e| e.code).as_deref(), Some("token_limit"));
    assert_eq!(llm.requests().len(), 1, "stopped once the budget was used");
}

#[tokio::test]
async fn without_a_model_agent_tasks_fail_clearly() {
    let f = Fixture::new().await;
    let task = f.prompt("hello").await;
    let done = f.run_until_finished(&task).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.expect("an error");
    assert_eq!(error.code, "agent_unavailable");
    assert!(
        error.message.contains("AGENTICAI_LLM_PROVIDER"),
        "{}",
        error.message
    );
}
