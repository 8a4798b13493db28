//! The conversation window: a user's earlier turns (their requests and the agent's final
//! answers) that go with a new request, newest kept first, within a token budget — so follow-up
//! questions and answers to the agent's own questions work. Older turns stay in the database
//! (the tasks table); summaries and long-term memory can replace [`earlier_turns`] later without
//! touching the loop.
//!
//! Each turn carries its task's taint: when any turn in the window was tainted (untrusted content
//! entered it), the new task starts tainted too, because what the model said then may repeat
//! what the untrusted content told it.

use domain::{Task, TaskStatus};
use store::{Db, StoreError};

use super::estimate_tokens;
use crate::llm::ChatMessage;

/// Most earlier turns looked at.
const MAX_TURNS: i64 = 20;

/// The earlier turns that go with a new request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// User/assistant pairs, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Any kept turn was tainted: the new task starts tainted.
    pub tainted: bool,
    /// The scanner flagged content in a kept turn: the new task starts flagged.
    pub flagged: bool,
}

/// The earlier turns of `task`'s user that fit in `budget` tokens.
pub async fn earlier_turns(db: &Db, task: &Task, budget: usize) -> Result<Window, StoreError> {
    let turns =
        store::tasks::recent_agent_turns(db, &task.user_id, task.created_at, MAX_TURNS).await?;
    let mut kept = Vec::new();
    let mut used = 0;
    let mut window = Window::default();
    for turn in &turns {
        let answer = answer_of(&turn.task);
        let cost = estimate_tokens(&turn.task.input) + estimate_tokens(&answer);
        if used + cost > budget {
            break;
        }
        used += cost;
        window.tainted |= turn.tainted;
        window.flagged |= turn.flagged;
        kept.push((turn.task.input.clone(), answer));
    }
    window.messages = kept
        .into_iter()
        .rev()
        .flat_map(|(request, answer)| {
            [
                ChatMessage::user(request),
                ChatMessage::Assistant {
                    text: Some(answer),
                    tool_calls: Vec::new(),
                },
            ]
        })
        .collect();
    Ok(window)
}

/// What the agent answered in a finished turn, or what became of it.
fn answer_of(turn: &Task) -> String {
    match (&turn.status, &turn.result, &turn.error) {
        (TaskStatus::Succeeded, Some(result), _) if !result.output.trim().is_empty() => {
            result.output.clone()
        }
        (status, _, Some(error)) => format!(
            "(This request ended {status}: {} — {}.)",
            error.code, error.message
        ),
        (status, _, None) => format!("(This request ended {status} without an answer.)"),
    }
}
