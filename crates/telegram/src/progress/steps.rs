//! The recent steps of an agent task as its status message shows them: the model's words
//! (`plan` events) and its shell commands with their risk tier, the policy gate's verdict and
//! what they came to (`tool_call`, `tool_result`).
//!
//! Only the last [`KEPT`] steps are remembered between scans, each cut to [`KEEP_CHARS`]
//! characters; they are rendered newest last, escaped, within a budget of UTF-16 units (older
//! steps are left out first).

use serde::{Deserialize, Serialize};

use crate::events::{Event, ToolCall, ToolResult};
use crate::render::{ELLIPSIS, escape, escape_truncated, utf16_len};

/// Steps remembered.
const KEPT: usize = 8;
/// Most characters of a plan, command or error remembered.
const KEEP_CHARS: usize = 400;
/// Most UTF-16 units of a plan shown.
const PLAN_UNITS: usize = 300;
/// Most UTF-16 units of a command shown.
const COMMAND_UNITS: usize = 200;
/// Most UTF-16 units of a tool error shown.
const ERROR_UNITS: usize = 150;

/// One step of an agent task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Step {
    /// The model's words.
    Plan { text: String },
    /// A shell command.
    Shell(Shell),
}

/// A shell command and, once known, its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Shell {
    #[serde(default)]
    step: Option<i64>,
    command: String,
    #[serde(default)]
    risk_tier: Option<String>,
    #[serde(default)]
    verdict: Option<String>,
    #[serde(default)]
    outcome: Option<Outcome>,
}

/// What a shell command came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Outcome {
    exit_code: Option<i64>,
    denied: bool,
    error: Option<String>,
    flagged: bool,
}

/// Takes `event` into `steps`. Returns true when a new shell command starts (so the output
/// shown from now on is that command's).
pub(super) fn apply(steps: &mut Vec<Step>, event: &Event<'_>) -> bool {
    match event {
        Event::Plan(text) if !text.trim().is_empty() => {
            push(
                steps,
                Step::Plan {
                    text: kept(&single_line(text)),
                },
            );
            false
        }
        Event::ToolCall(call) => match shell_of(call) {
            Some(shell) => {
                push(steps, Step::Shell(shell));
                true
            }
            None => false,
        },
        Event::ToolResult(result) if result.tool == "shell" => {
            if let Some(shell) = steps.iter_mut().rev().find_map(|s| match s {
                Step::Shell(shell)
                    if shell.outcome.is_none()
                        && (shell.step.is_none()
                            || result.step.is_none()
                            || shell.step == result.step) =>
                {
                    Some(shell)
                }
                _ => None,
            }) {
                shell.outcome = Some(outcome_of(result));
            }
            false
        }
        _ => false,
    }
}

fn shell_of(call: &ToolCall<'_>) -> Option<Shell> {
    if call.tool != "shell" {
        return None;
    }
    Some(Shell {
        step: call.step,
        command: kept(&single_line(call.command?)),
        risk_tier: call.risk_tier.map(kept),
        verdict: call.verdict.map(kept),
        outcome: None,
    })
}

fn outcome_of(result: &ToolResult<'_>) -> Outcome {
    Outcome {
        exit_code: result.exit_code,
        denied: result.denied,
        error: result.error.map(|e| kept(&single_line(e))),
        flagged: result.flagged,
    }
}

fn push(steps: &mut Vec<Step>, step: Step) {
    steps.push(step);
    if steps.len() > KEPT {
        steps.drain(..steps.len() - KEPT);
    }
}

/// The first [`KEEP_CHARS`] characters of `text`.
fn kept(text: &str) -> String {
    text.chars().take(KEEP_CHARS).collect()
}

fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The steps as lines of escaped HTML, newest last, within `max_units` UTF-16 units; a first line
/// `…` when older steps were left out. Empty when there are none.
pub(super) fn render(steps: &[Step], max_units: usize) -> String {
    let mut lines = Vec::new();
    let mut used = 0;
    for step in steps.iter().rev() {
        let line = line(step);
        let units = utf16_len(&line) + 1;
        if used + units + utf16_len(ELLIPSIS) + 1 > max_units {
            lines.push(ELLIPSIS.to_owned());
            break;
        }
        used += units;
        lines.push(line);
    }
    lines.reverse();
    lines.join("\n")
}

fn line(step: &Step) -> String {
    match step {
        Step::Plan { text } => format!("💭 {}", escape_truncated(text, PLAN_UNITS).0),
        Step::Shell(shell) => {
            let mut html = format!(
                "<code>$ {}</code>",
                escape_truncated(&shell.command, COMMAND_UNITS).0
            );
            if let Some(tier) = &shell.risk_tier {
                html.push_str(&format!(" · {}", escape(tier)));
            }
            if let Some(verdict) = &shell.verdict {
                html.push_str(&format!(" · {}", verdict_label(verdict)));
            }
            if let Some(outcome) = &shell.outcome {
                html.push_str(&outcome_label(outcome));
            }
            html
        }
    }
}

fn verdict_label(verdict: &str) -> String {
    match verdict {
        "ALLOW" => "allowed".to_owned(),
        "REQUIRE_APPROVAL" => "needs approval".to_owned(),
        "DENY" => "denied by policy".to_owned(),
        other => escape(other),
    }
}

fn outcome_label(outcome: &Outcome) -> String {
    let mut html = match (&outcome.error, outcome.exit_code) {
        _ if outcome.denied => " → not run".to_owned(),
        (Some(error), _) => format!(" → error: {}", escape_truncated(error, ERROR_UNITS).0),
        (None, Some(code)) => format!(" → exit {code}"),
        (None, None) => " → done".to_owned(),
    };
    if outcome.flagged {
        html.push_str(" ⚠️ output flagged as possible injection");
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(step: i64, command: &'a str, verdict: &'a str) -> Event<'a> {
        Event::ToolCall(ToolCall {
            step: Some(step),
            tool: "shell",
            command: Some(command),
            risk_tier: Some("L0_READONLY"),
            verdict: Some(verdict),
        })
    }

    fn result(step: i64, exit_code: Option<i64>, denied: bool) -> Event<'static> {
        Event::ToolResult(ToolResult {
            step: Some(step),
            tool: "shell",
            exit_code,
            denied,
            error: None,
            flagged: false,
        })
    }

    #[test]
    fn plans_and_commands_with_their_outcomes() {
        let mut steps = Vec::new();
        assert!(!apply(
            &mut steps,
            &Event::Plan("Let me <b>look</b>\n  first.")
        ));
        assert!(!apply(&mut steps, &Event::Plan("   ")));
        assert!(apply(&mut steps, &call(1, "df -h", "ALLOW")));
        assert!(!apply(&mut steps, &result(1, Some(0), false)));
        assert!(apply(
            &mut steps,
            &call(2, "rm -rf /tmp/x", "REQUIRE_APPROVAL")
        ));
        assert!(!apply(&mut steps, &result(2, None, true)));
        let reply = Event::ToolCall(ToolCall {
            step: Some(3),
            tool: "reply",
            command: None,
            risk_tier: None,
            verdict: None,
        });
        assert!(!apply(&mut steps, &reply));
        assert_eq!(
            render(&steps, 4000),
            "💭 Let me &lt;b&gt;look&lt;/b&gt; first.\n\
             <code>$ df -h</code> · L0_READONLY · allowed → exit 0\n\
             <code>$ rm -rf /tmp/x</code> · L0_READONLY · needs approval → not run"
        );
    }

    #[test]
    fn only_the_last_steps_are_kept_and_shown_within_the_budget() {
        let mut steps = Vec::new();
        for i in 0..20 {
            apply(&mut steps, &Event::Plan(&format!("plan {i}")));
        }
        assert_eq!(steps.len(), KEPT);
        let html = render(&steps, 30);
        assert!(utf16_len(&html) <= 30, "{html}");
        assert!(
            html.starts_with("…\n") && html.ends_with("plan 19"),
            "{html}"
        );
        assert!(render(&[], 100).is_empty());
    }
}
