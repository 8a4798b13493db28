//! How the conversation looks: one function per kind of thing the server sends, each turning it
//! into text for the terminal. Every string that came from the server, the model or a command is
//! passed through [`sanitize`]; a field that is missing or of the wrong type is shown as absent,
//! never as an error, and event kinds this version does not know are not shown at all.

use domain::{Task, TaskStatus};
use serde_json::Value;

use super::sanitize::sanitize;

/// The prefix of the agent's messages.
const AGENT: &str = "agent: ";
/// The indentation of command output and of details under a line.
const INDENT: &str = "    ";

/// What one task event shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// Whole lines (without the final newline).
    Lines(String),
    /// A piece of live command output, shown indented as it arrives (may end mid-line).
    Output(String),
}

/// An approval the user is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The approval id, as sent (the caller validates it before using it in a URL).
    pub approval_id: String,
    /// The block that describes it.
    pub text: String,
}

/// The text of a task event of `kind` with payload `data`; `None` for kinds not shown.
pub fn event(kind: &str, data: &Value) -> Option<Shown> {
    let lines = match kind {
        "status" => status(data)?,
        "plan" => labelled("• plan: ", &text_of(data, "text")?),
        "tool_call" => tool_call(data)?,
        "tool_result" => tool_result(data)?,
        "reply" | "answer" => labelled(AGENT, &text_of(data, "text")?),
        "output" => return Some(Shown::Output(text_of(data, "text")?)),
        "approval" => approval(data)?.text,
        _ => return None,
    };
    Some(Shown::Lines(lines))
}

/// The approval asked for by an `approval` event; `None` when it names no approval id.
pub fn approval(data: &Value) -> Option<ApprovalRequest> {
    let approval_id = data.get("approval_id")?.as_str()?.to_owned();
    let shown_id = sanitize(&approval_id);
    let action = text_of(data, "action").unwrap_or_default();
    let mut text = labelled("? approval needed: ", &action);
    let mut detail = |name: &str, value: &str| {
        text.push('\n');
        text.push_str(&labelled(&format!("{INDENT}{name:<13}"), value));
    };
    detail(
        "risk tier:",
        &text_of(data, "risk_tier").unwrap_or_else(|| "unknown".to_owned()),
    );
    detail(
        "environment:",
        &text_of(data, "environment").unwrap_or_else(|| "none".to_owned()),
    );
    if let Some(rationale) = text_of(data, "rationale").filter(|r| !r.is_empty()) {
        detail("rationale:", &rationale);
    }
    detail(
        "approval id:",
        &format!("{shown_id}  (/approve {shown_id} or /deny {shown_id})"),
    );
    Some(ApprovalRequest { approval_id, text })
}

/// What is shown when the task is over: its failure, or its result when no answer event showed
/// it already (`answered`). `None` when there is nothing to add.
pub fn finished(task: &Task, answered: bool) -> Option<String> {
    match task.status {
        TaskStatus::Succeeded => {
            if answered {
                return None;
            }
            let output = task.result.as_ref().map(|r| sanitize(&r.output))?;
            if output.trim().is_empty() {
                return None;
            }
            Some(labelled(AGENT, &output))
        }
        TaskStatus::Failed | TaskStatus::TimedOut | TaskStatus::Canceled => {
            let why = match (&task.error, &task.result) {
                (Some(e), _) => format!(": {} ({})", sanitize(&e.message), sanitize(&e.code)),
                (None, Some(r)) => format!(": exit code {}", r.exit_code),
                (None, None) => String::new(),
            };
            Some(labelled(
                "✗ ",
                &format!(
                    "task {} {}{why}",
                    sanitize(task.task_id.as_str()),
                    task.status
                ),
            ))
        }
        TaskStatus::Queued | TaskStatus::Running | TaskStatus::WaitingApproval => None,
    }
}

/// A `status` event: RUNNING (the agent starts, or goes on after an approval), and any other
/// status on the way that carries an error (a retry). WAITING_APPROVAL is told by the approval
/// itself, the QUEUED that follows a decision says nothing new, and the final status is left to
/// [`finished`], which has the whole task.
fn status(data: &Value) -> Option<String> {
    let status: TaskStatus = text_of(data, "status")?.parse().ok()?;
    let error = data.get("error").filter(|e| e.is_object());
    if status.is_terminal() || (status != TaskStatus::Running && error.is_none()) {
        return None;
    }
    let mut line = format!("• status: {status}");
    if let Some(error) = error {
        let message = text_of(error, "message").unwrap_or_default();
        let code = text_of(error, "code").unwrap_or_default();
        line.push_str(&format!(": {message} ({code})"));
    }
    Some(labelled("", &line))
}

/// A `tool_call` event: `$ command  [TIER, VERDICT]`, and why when it is refused (the reasons
/// for an approval come with the approval).
fn tool_call(data: &Value) -> Option<String> {
    let tool = text_of(data, "tool")?;
    if tool == "reply" {
        // Its text arrives as a `reply` event.
        return None;
    }
    let head = match (tool.as_str(), text_of(data, "command")) {
        ("shell", Some(command)) => format!("$ {command}"),
        _ => format!("• tool: {tool}"),
    };
    let tags: Vec<String> = ["risk_tier", "verdict"]
        .iter()
        .filter_map(|k| text_of(data, k))
        .collect();
    let mut text = if tags.is_empty() {
        head
    } else {
        format!("{head}  [{}]", tags.join(", "))
    };
    if let Some(rationale) = text_of(data, "rationale").filter(|r| !r.is_empty())
        && text_of(data, "verdict").as_deref() == Some("DENY")
    {
        text.push('\n');
        text.push_str(&labelled(&format!("{INDENT}why: "), &rationale));
    }
    Some(labelled("", &text))
}

/// A `tool_result` event: how the call ended, and a warning when its output looked like an
/// attempt to instruct the agent.
fn tool_result(data: &Value) -> Option<String> {
    let tool = text_of(data, "tool").unwrap_or_default();
    let error = text_of(data, "error").filter(|e| !e.is_empty());
    let denied = data.get("denied").and_then(Value::as_bool).unwrap_or(false);
    let mut lines = Vec::new();
    match (denied, error, data.get("exit_code").and_then(Value::as_i64)) {
        (true, error, _) => lines.push(match error {
            Some(e) => labelled(&format!("{INDENT}✗ denied: "), &e),
            None => format!("{INDENT}✗ denied"),
        }),
        (false, Some(e), _) => lines.push(labelled(&format!("{INDENT}✗ "), &e)),
        (false, None, Some(code)) => lines.push(format!("{INDENT}→ exit {code}")),
        (false, None, None) if tool == "reply" => {}
        (false, None, None) => lines.push(format!("{INDENT}→ done")),
    }
    if data.get("flagged").and_then(Value::as_bool) == Some(true) {
        let reasons: Vec<String> = data
            .get("reasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|r| sanitize(r).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut warning = format!(
            "{INDENT}! the output looks like instructions to the agent; it was treated as data"
        );
        if !reasons.is_empty() {
            warning.push_str(&format!(" ({})", reasons.join(", ")));
        }
        lines.push(labelled("", &warning));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Live output, indented: `at_line_start` says whether the previous piece ended a line; returns
/// the text to print and whether this piece ends one.
pub fn output(piece: &str, at_line_start: bool) -> (String, bool) {
    let piece = sanitize(piece);
    let mut out = String::with_capacity(piece.len() + INDENT.len());
    let mut start = at_line_start;
    for c in piece.chars() {
        if start {
            out.push_str(INDENT);
            start = false;
        }
        out.push(c);
        if c == '\n' {
            start = true;
        }
    }
    (out, start)
}

/// The string field `key` of `data`, sanitised; `None` when absent, null or not a string.
fn text_of(data: &Value, key: &str) -> Option<String> {
    data.get(key)
        .and_then(Value::as_str)
        .map(|s| sanitize(s).into_owned())
}

/// `label` then `text`, later lines of `text` indented under its start.
fn labelled(label: &str, text: &str) -> String {
    let pad = " ".repeat(label.chars().count());
    let mut out = String::from(label);
    for (i, line) in text.trim_end_matches('\n').split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lines(kind: &str, data: Value) -> String {
        match event(kind, &data) {
            Some(Shown::Lines(text)) => text,
            other => panic!("{kind} showed {other:?}"),
        }
    }

    fn task(status: &str, result: Value, error: Value) -> Task {
        serde_json::from_value(json!({
            "task_id": "tsk_abc", "user_id": "usr_abc", "kind": "agent", "input": "hi",
            "environment": null, "status": status, "risk_tier": null, "approval_id": null,
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:01Z",
            "result": result, "error": error,
        }))
        .expect("a task")
    }

    #[test]
    fn plan_reply_and_answer() {
        assert_eq!(
            lines("plan", json!({"step": 1, "text": "Check the disk."})),
            "• plan: Check the disk."
        );
        assert_eq!(
            lines("answer", json!({"text": "40% used.\nAll fine.\n"})),
            "agent: 40% used.\n       All fine."
        );
        assert_eq!(
            lines("reply", json!({"text": "Which host?"})),
            "agent: Which host?"
        );
    }

    #[test]
    fn shell_calls_show_command_tier_verdict_and_why_when_denied() {
        assert_eq!(
            lines(
                "tool_call",
                json!({"step": 1, "tool": "shell", "command": "df -h /",
                       "risk_tier": "L0_READONLY", "verdict": "ALLOW", "rationale": "read-only"})
            ),
            "$ df -h /  [L0_READONLY, ALLOW]"
        );
        assert_eq!(
            lines(
                "tool_call",
                json!({"step": 2, "tool": "shell", "command": "touch /workspace/x",
                       "risk_tier": "L1_MUTATING", "verdict": "REQUIRE_APPROVAL",
                       "rationale": "mutating"})
            ),
            "$ touch /workspace/x  [L1_MUTATING, REQUIRE_APPROVAL]"
        );
        assert_eq!(
            lines(
                "tool_call",
                json!({"step": 2, "tool": "shell", "command": "rm -rf /",
                       "risk_tier": "L2_DESTRUCTIVE", "verdict": "DENY",
                       "rationale": "never"})
            ),
            "$ rm -rf /  [L2_DESTRUCTIVE, DENY]\n    why: never"
        );
        assert_eq!(
            lines(
                "tool_call",
                json!({"step": 3, "tool": "browse", "risk_tier": null, "verdict": null})
            ),
            "• tool: browse"
        );
        assert_eq!(event("tool_call", &json!({"tool": "reply"})), None);
    }

    #[test]
    fn tool_results() {
        assert_eq!(
            lines(
                "tool_result",
                json!({"step": 1, "tool": "shell", "exit_code": 0, "denied": false,
                       "error": null, "flagged": false, "reasons": []})
            ),
            "    → exit 0"
        );
        assert_eq!(
            lines(
                "tool_result",
                json!({"tool": "shell", "exit_code": null, "denied": true,
                       "error": "approval_denied", "flagged": false, "reasons": []})
            ),
            "    ✗ denied: approval_denied"
        );
        let flagged = lines(
            "tool_result",
            json!({"tool": "shell", "exit_code": 0, "denied": false, "error": null,
                   "flagged": true, "reasons": ["instruction_override"]}),
        );
        assert!(
            flagged.contains("treated as data (instruction_override)"),
            "{flagged}"
        );
    }

    #[test]
    fn approval_shows_everything_needed_to_decide() {
        let data = json!({"approval_id": "apr_xyz", "action": "touch /workspace/x",
                          "risk_tier": "L1_MUTATING", "environment": null,
                          "rationale": "creates a file"});
        let request = approval(&data).expect("an approval");
        assert_eq!(request.approval_id, "apr_xyz");
        for part in [
            "touch /workspace/x",
            "L1_MUTATING",
            "environment: none",
            "creates a file",
            "/approve apr_xyz",
        ] {
            assert!(request.text.contains(part), "{part:?} in {}", request.text);
        }
        assert_eq!(event("approval", &data), Some(Shown::Lines(request.text)));
        assert_eq!(approval(&json!({"action": "x"})), None);
    }

    #[test]
    fn running_and_retries_are_shown_other_statuses_are_told_elsewhere() {
        assert_eq!(
            lines(
                "status",
                json!({"status": "RUNNING", "error": null, "exit_code": null})
            ),
            "• status: RUNNING"
        );
        assert_eq!(
            lines(
                "status",
                json!({"status": "QUEUED", "error": {"code": "worker_lost", "message": "retrying"}})
            ),
            "• status: QUEUED: retrying (worker_lost)"
        );
        for quiet in ["QUEUED", "WAITING_APPROVAL", "SUCCEEDED", "FAILED"] {
            assert_eq!(
                event("status", &json!({"status": quiet, "error": null})),
                None
            );
        }
    }

    #[test]
    fn unknown_kinds_and_malformed_payloads_show_nothing() {
        assert_eq!(event("telemetry", &json!({"text": "x"})), None);
        assert_eq!(event("plan", &json!({"text": 3})), None);
        assert_eq!(event("answer", &json!(null)), None);
        assert_eq!(event("status", &json!({"status": "EXPLODED"})), None);
    }

    #[test]
    fn server_text_is_sanitised_everywhere() {
        let evil = "\x1b]0;owned\x07\x1b[2Jhi\u{202e}";
        for kind in ["plan", "answer", "reply", "output"] {
            let shown = format!("{:?}", event(kind, &json!({"text": evil})));
            assert!(
                !shown.contains("\\u{1b}") && !shown.contains("\\u{202e}"),
                "{shown}"
            );
        }
        let shown = lines(
            "tool_call",
            json!({"tool": "shell", "command": evil, "verdict": "DENY", "rationale": evil}),
        );
        assert!(
            !shown.contains('\x1b') && !shown.contains('\u{202e}'),
            "{shown}"
        );
        let failed = task(
            "FAILED",
            Value::Null,
            json!({"code": "x\x1b[1m", "message": "bad\x1b[2J"}),
        );
        let shown = finished(&failed, false).expect("shown");
        assert!(!shown.contains('\x1b'), "{shown}");
    }

    #[test]
    fn live_output_is_indented_across_pieces() {
        let (a, at_start) = output("Filesystem Size\n/dev/sda1", true);
        assert_eq!(a, "    Filesystem Size\n    /dev/sda1");
        assert!(!at_start);
        let (b, at_start) = output(" 40G\n", at_start);
        assert_eq!(b, " 40G\n");
        assert!(at_start);
    }

    #[test]
    fn finished_tasks() {
        let ok = task(
            "SUCCEEDED",
            json!({"exit_code": 0, "output": "All good.", "truncated": false}),
            Value::Null,
        );
        assert_eq!(finished(&ok, false).as_deref(), Some("agent: All good."));
        assert_eq!(finished(&ok, true), None);
        let denied = task(
            "FAILED",
            Value::Null,
            json!({"code": "approval_denied", "message": "the approval was denied"}),
        );
        assert_eq!(
            finished(&denied, false).as_deref(),
            Some("✗ task tsk_abc FAILED: the approval was denied (approval_denied)")
        );
        let running = task("RUNNING", Value::Null, Value::Null);
        assert_eq!(finished(&running, false), None);
    }
}
