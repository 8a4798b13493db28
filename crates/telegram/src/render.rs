//! Text for Telegram: HTML-escaped and within Telegram's limits.
//!
//! Every message is sent with `parse_mode=HTML`. Everything that is not ours — command text,
//! output, rationales, names — goes through [`escape`], so nothing in it can open a tag, close
//! our `<pre>`, or form a link; entities are never cut (truncation works on whole escaped
//! characters). Lengths are counted as Telegram counts them, in UTF-16 code units, on the escaped
//! text (a safe upper bound of what Telegram counts after parsing).

use std::fmt::Write as _;

use domain::{Approval, Id, Task, TaskKind, TaskStatus};

use crate::outgoing::{Action, Button, Outgoing};

/// Telegram's limit of a message text, in UTF-16 code units.
pub const MAX_MESSAGE_UTF16: usize = 4096;
/// Telegram's limit of a document caption, in UTF-16 code units.
pub const MAX_CAPTION_UTF16: usize = 1024;
/// Longest callback data Telegram accepts, in bytes.
pub const MAX_CALLBACK_BYTES: usize = 64;
/// Marks text that was cut.
pub(crate) const ELLIPSIS: &str = "…";

/// Escapes `&`, `<`, `>` and `"` for Telegram's HTML parse mode.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        c => out.push(c),
    }
}

/// UTF-16 units of `c` once escaped.
pub(crate) fn escaped_units(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        '"' => 6,
        c => c.len_utf16(),
    }
}

/// Length of `text` in UTF-16 code units (how Telegram counts).
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` escaped, cut to at most `max_units` UTF-16 units (including a trailing `…` when cut).
/// Returns the escaped text and whether it was cut. Never cuts inside an entity or a surrogate
/// pair.
pub fn escape_truncated(text: &str, max_units: usize) -> (String, bool) {
    let total: usize = text.chars().map(escaped_units).sum();
    if total <= max_units {
        return (escape(text), false);
    }
    let budget = max_units.saturating_sub(utf16_len(ELLIPSIS));
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let units = escaped_units(c);
        if used + units > budget {
            break;
        }
        used += units;
        push_escaped(&mut out, c);
    }
    if max_units >= utf16_len(ELLIPSIS) {
        out.push_str(ELLIPSIS);
    }
    (out, true)
}

/// A message ready to send, plus a document when something did not fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Escaped HTML within [`MAX_MESSAGE_UTF16`].
    pub html: String,
    /// Inline keyboard rows.
    pub buttons: Vec<Vec<Button>>,
    /// A text file with what was cut from the message (full output or full action).
    pub document: Option<Document>,
}

impl Rendered {
    /// A message of our own HTML, without buttons or document.
    pub fn plain(html: String) -> Rendered {
        Rendered {
            html,
            buttons: Vec::new(),
            document: None,
        }
    }

    /// The message to `chat_id` with the dedupe key `dedupe_key`, and its document (if any) with
    /// `{dedupe_key}:doc`.
    pub fn into_outgoing(self, chat_id: i64, dedupe_key: &str) -> Vec<Outgoing> {
        let mut out = vec![Outgoing {
            dedupe_key: dedupe_key.to_owned(),
            chat_id,
            action: Action::SendMessage {
                html: self.html,
                buttons: self.buttons,
            },
        }];
        if let Some(doc) = self.document {
            out.push(Outgoing {
                dedupe_key: format!("{dedupe_key}:doc"),
                chat_id,
                action: Action::SendDocument {
                    file_name: doc.file_name,
                    contents: doc.contents,
                    caption_html: doc.caption_html,
                },
            });
        }
        out
    }
}

/// A text file to send with `sendDocument`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub file_name: String,
    /// Raw text (not HTML).
    pub contents: String,
    /// Escaped HTML within [`MAX_CAPTION_UTF16`].
    pub caption_html: String,
}

/// Callback data of the Approve button.
pub fn approve_data(approval_id: &str) -> String {
    format!("ap:{approval_id}")
}

/// Callback data of the Deny button.
pub fn deny_data(approval_id: &str) -> String {
    format!("dn:{approval_id}")
}

/// The Approve / Deny keyboard of an approval.
pub fn approval_buttons(approval_id: &str) -> Vec<Vec<Button>> {
    vec![vec![
        Button {
            text: "✅ Approve".to_owned(),
            callback_data: approve_data(approval_id),
        },
        Button {
            text: "⛔ Deny".to_owned(),
            callback_data: deny_data(approval_id),
        },
    ]]
}

/// A one-line summary of a task: id, status, tier and the start of its input.
pub fn task_line(task: &Task) -> String {
    let (input, _) = escape_truncated(&single_line(&task.input), 60);
    let tier = task
        .risk_tier
        .map(|t| format!(" · {t}"))
        .unwrap_or_default();
    format!(
        "<code>{}</code> {}{} — <code>{}</code>",
        escape(task.task_id.as_str()),
        status_label(task.status),
        tier,
        input
    )
}

/// The status with a symbol people can scan.
pub fn status_label(status: TaskStatus) -> String {
    let mark = match status {
        TaskStatus::Queued => "🕓",
        TaskStatus::Running => "⚙️",
        TaskStatus::WaitingApproval => "✋",
        TaskStatus::Succeeded => "✅",
        TaskStatus::Failed => "❌",
        TaskStatus::Canceled => "🚫",
        TaskStatus::TimedOut => "⏱",
    };
    format!("{mark} {status}")
}

fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Task <code>ID</code>: STATUS · TIER`, the first line of every message about a task.
pub fn task_headline(task: &Task) -> String {
    let mut html = format!(
        "Task <code>{}</code>: {}",
        escape(task.task_id.as_str()),
        status_label(task.status)
    );
    if let Some(tier) = task.risk_tier {
        let _ = write!(html, " · {tier}");
    }
    html
}

/// The reply to a task just accepted: its id, status and tier, and why when it failed at once.
pub fn task_accepted(task: &Task) -> String {
    let mut html = task_headline(task);
    if let Some(env) = &task.environment {
        let _ = write!(html, "\nEnvironment: <code>{}</code>", escape(env));
    }
    match (task.status, task.kind) {
        (TaskStatus::Queued, TaskKind::Command) => {
            html.push_str("\nQueued; you will get the result here.");
        }
        (TaskStatus::Queued, TaskKind::Agent) => html.push_str(
            "\nWorking on it: this message shows the steps, and the answer follows in its own \
             message.",
        ),
        (TaskStatus::WaitingApproval, _) => {
            html.push_str("\nIt waits for an approval (below).");
        }
        _ => {}
    }
    if let Some(error) = &task.error {
        let (msg, _) = escape_truncated(&error.message, 2000);
        let _ = write!(
            html,
            "\nRefused (<code>{}</code>): {}",
            escape(&error.code),
            msg
        );
    }
    html
}

/// An approval request: id, task, tier, environment (its grants are in the rationale), the exact
/// action in `<pre>` and the rationale, with Approve / Deny buttons when `with_buttons`. An action
/// too long for one message is shown cut and attached in full as a document.
pub fn approval_request(approval: &Approval, heading: &str, with_buttons: bool) -> Rendered {
    let mut head = String::new();
    let _ = write!(
        head,
        "✋ <b>{}</b> <code>{}</code>\nTask: <code>{}</code>\nRisk tier: <b>{}</b>\nEnvironment: {}\nExpires: {}\n",
        escape(heading),
        escape(approval.approval_id.as_str()),
        escape(approval.task_id.as_str()),
        approval.risk_tier,
        match &approval.environment {
            Some(env) => format!("<code>{}</code>", escape(env)),
            None => "none (no network, no secrets)".to_owned(),
        },
        approval.expires_at,
    );
    let (rationale, _) = escape_truncated(&approval.rationale, 1200);
    let tail = format!("\n<b>Why:</b> {rationale}");
    let fixed = utf16_len(&head) + utf16_len("<b>Action:</b>\n<pre></pre>") + utf16_len(&tail);
    let (action, cut) = escape_truncated(&approval.action, MAX_MESSAGE_UTF16.saturating_sub(fixed));
    let mut html = format!("{head}<b>Action:</b>\n<pre>{action}</pre>{tail}");
    let document = cut.then(|| Document {
        file_name: format!("{}-action.txt", approval.approval_id),
        contents: approval.action.clone(),
        caption_html: format!(
            "The exact action of approval <code>{}</code> (task <code>{}</code>)",
            escape(approval.approval_id.as_str()),
            escape(approval.task_id.as_str())
        ),
    });
    if cut {
        // Keep within the limit: the note replaces part of the rationale if need be.
        let note = "\n(the action is cut here; the attached file has it in full)";
        if utf16_len(&html) + utf16_len(note) <= MAX_MESSAGE_UTF16 {
            html.push_str(note);
        }
    }
    Rendered {
        html,
        buttons: if with_buttons {
            approval_buttons(approval.approval_id.as_str())
        } else {
            Vec::new()
        },
        document,
    }
}

/// An approval message after a decision: the request without buttons, with the outcome.
pub fn approval_outcome(approval: &Approval) -> String {
    let outcome = match approval.decision {
        Some(domain::ApprovalDecision::Approve) => "✅ Approved",
        Some(domain::ApprovalDecision::Deny) => "⛔ Denied",
        Some(domain::ApprovalDecision::Expire) => "⌛ Expired",
        None => "✋ Pending",
    };
    let by = approval
        .decided_by
        .as_ref()
        .map(|u| format!(" by <code>{}</code>", escape(u.as_str())))
        .unwrap_or_default();
    let suffix = format!("\n\n<b>{outcome}</b>{by}");
    let base = approval_request(approval, "Approval", false).html;
    let room = MAX_MESSAGE_UTF16.saturating_sub(utf16_len(&suffix));
    if utf16_len(&base) <= room {
        format!("{base}{suffix}")
    } else {
        // Rare (an action at the limit): a short form that still names everything.
        format!(
            "Approval <code>{}</code> of task <code>{}</code>{suffix}",
            escape(approval.approval_id.as_str()),
            escape(approval.task_id.as_str())
        )
    }
}

/// The result of a finished task for its owner. A command: status, exit code and output in
/// `<pre>`. An agent task that succeeded: its final answer as ordinary (escaped) text, then the
/// task id and status; one that did not: the status and the error. When the output or answer does
/// not fit in one message it is cut and the whole of it comes as a document.
pub fn task_result(task: &Task) -> Rendered {
    let agent = task.kind == TaskKind::Agent;
    let mut head = format!(
        "Task <code>{}</code> finished: {}",
        escape(task.task_id.as_str()),
        status_label(task.status)
    );
    if let Some(result) = &task.result
        && !agent
    {
        let _ = write!(head, " · exit code <b>{}</b>", result.exit_code);
    }
    if let Some(error) = &task.error {
        let (msg, _) = escape_truncated(&error.message, 1000);
        let _ = write!(head, "\n<code>{}</code>: {}", escape(&error.code), msg);
    }
    let result = task
        .result
        .as_ref()
        .filter(|_| !agent || task.status == TaskStatus::Succeeded);
    let Some(result) = result else {
        return Rendered::plain(head);
    };
    let capture_note = if result.truncated {
        "\n(the output was cut at the capture limit)"
    } else {
        ""
    };
    let attachment = |what: &str| Attachment {
        file_name: format!("{}-{what}.txt", task.task_id),
        caption_html: format!(
            "The full {what} of task <code>{}</code>",
            escape(task.task_id.as_str())
        ),
    };
    match (agent, result.output.is_empty()) {
        (false, true) => Rendered::plain(format!("{head}\n(no output){capture_note}")),
        (false, false) => framed(
            &format!("{head}\n<pre>"),
            &result.output,
            &format!("</pre>{capture_note}"),
            attachment("output"),
        ),
        (true, true) => Rendered::plain(format!("{head}\n(no answer)")),
        (true, false) => framed(
            "",
            &result.output,
            &format!("\n\n{head}"),
            attachment("answer"),
        ),
    }
}

/// A message of the agent (its `reply` tool) during task `task_id`: `agent:` and the text,
/// escaped as ordinary text, then the task id; the whole text as a document when it does not fit.
pub fn agent_reply(task_id: &Id, text: &str) -> Rendered {
    let id = escape(task_id.as_str());
    framed(
        "agent: ",
        text,
        &format!("\n\n(task <code>{id}</code>)"),
        Attachment {
            file_name: format!("{task_id}-message.txt"),
            caption_html: format!("The full message of the agent in task <code>{id}</code>"),
        },
    )
}

/// Where untrusted text that does not fit in a message goes.
struct Attachment {
    file_name: String,
    caption_html: String,
}

/// `before` + `body` (raw, escaped here) + `after`, with `body` cut so that the message fits in
/// Telegram's limit; when it is cut, a note says so and the whole `body` comes as `attachment`.
/// `before` and `after` are our HTML (for example `<pre>` and `</pre>`).
fn framed(before: &str, body: &str, after: &str, attachment: Attachment) -> Rendered {
    const CUT_NOTE: &str = "\n(cut here; the attached file has all of it)";
    let fixed = utf16_len(before) + utf16_len(after) + utf16_len(CUT_NOTE);
    let (text, cut) = escape_truncated(body, MAX_MESSAGE_UTF16.saturating_sub(fixed));
    let mut html = format!("{before}{text}{after}");
    let document = cut.then(|| {
        html.push_str(CUT_NOTE);
        Document {
            file_name: attachment.file_name,
            contents: body.to_owned(),
            caption_html: attachment.caption_html,
        }
    });
    Rendered {
        html,
        buttons: Vec::new(),
        document,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Id, RiskTier, TaskInput, TaskResult, Timestamp};

    fn task_with_output(output: &str) -> Task {
        let mut t = Task::queued(
            Id::parse("tsk_abc").unwrap(),
            Id::parse("usr_a").unwrap(),
            TaskInput::Command("echo hi".to_owned()),
            None,
            Timestamp::from_millis(0),
        );
        t.status = TaskStatus::Succeeded;
        t.result = Some(TaskResult {
            exit_code: 0,
            output: output.to_owned(),
            truncated: false,
        });
        t
    }

    fn approval(action: &str) -> Approval {
        Approval {
            approval_id: Id::parse("apr_xyz").unwrap(),
            task_id: Id::parse("tsk_abc").unwrap(),
            requested_by: Id::parse("usr_a").unwrap(),
            risk_tier: RiskTier::L2Destructive,
            action: action.to_owned(),
            environment: Some("prod".to_owned()),
            rationale: "L2 needs <approval> & \"care\"".to_owned(),
            decision: None,
            decided_by: None,
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(1_800_000),
        }
    }

    /// No tag in `html` other than ours.
    fn only_our_tags(html: &str) {
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("closed tag");
            let tag = &rest[..end];
            assert!(
                ["b", "/b", "pre", "/pre", "code", "/code"].contains(&tag),
                "foreign tag <{tag}> in {html}"
            );
        }
    }

    /// Every `&` starts one of the entities we produce.
    fn entities_whole(html: &str) {
        for (i, _) in html.match_indices('&') {
            let rest = &html[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "broken entity at {i}: {rest:.10}"
            );
        }
    }

    #[test]
    fn escapes_the_four_characters() {
        assert_eq!(
            escape(r#"<a href="x">&amp;</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ü 😀"), "plain ü 😀");
    }

    #[test]
    fn hostile_output_cannot_inject_markup() {
        let hostile = "</pre><a href=\"https://evil.example\">click</a>&lt;b&gt; &#60;i&#62; <tg-spoiler>x</tg-spoiler>";
        let r = task_result(&task_with_output(hostile));
        only_our_tags(&r.html);
        entities_whole(&r.html);
        assert!(
            r.html
                .contains("&lt;/pre&gt;&lt;a href=&quot;https://evil.example&quot;&gt;")
        );
        assert!(
            r.html.contains("&amp;lt;b&amp;gt;"),
            "entity tricks stay text"
        );
        assert!(r.html.contains("&amp;#60;i&amp;#62;"));
        assert!(r.document.is_none());
    }

    #[test]
    fn long_output_is_cut_within_the_limit_and_attached() {
        let output = "<&>\"".repeat(5000);
        let r = task_result(&task_with_output(&output));
        assert!(
            utf16_len(&r.html) <= MAX_MESSAGE_UTF16,
            "{}",
            utf16_len(&r.html)
        );
        only_our_tags(&r.html);
        entities_whole(&r.html);
        let doc = r.document.expect("a document with the full output");
        assert_eq!(doc.contents, output);
        assert!(doc.caption_html.contains("tsk_abc"));
        assert!(r.html.contains("tsk_abc") && r.html.contains("exit code <b>0</b>"));
    }

    #[test]
    fn emoji_are_never_split_and_counted_as_two_units() {
        let output = "😀".repeat(3000); // 6000 UTF-16 units
        let r = task_result(&task_with_output(&output));
        assert!(utf16_len(&r.html) <= MAX_MESSAGE_UTF16);
        // Valid UTF-8 by construction; no replacement characters, whole emoji only.
        let pre = r.html.split("<pre>").nth(1).unwrap();
        let body = pre.split("</pre>").next().unwrap();
        assert!(body.trim_end_matches('…').chars().all(|c| c == '😀'));
        assert!(r.document.is_some());

        // Exactly at the boundary: an emoji that would straddle it is left out.
        let (s, cut) = escape_truncated("a😀", 2);
        assert!(cut);
        assert_eq!(s, "a…");
        let (s, cut) = escape_truncated("a😀", 3);
        assert!(!cut);
        assert_eq!(s, "a😀");
        let (s, cut) = escape_truncated("&&&", 7);
        assert!(cut);
        assert_eq!(s, "&amp;…");
    }

    #[test]
    fn approval_request_names_everything_and_has_small_buttons() {
        let a = approval("rm -rf /tmp/x && echo '<b>'");
        let r = approval_request(&a, "Approval needed", true);
        for needle in [
            "apr_xyz",
            "tsk_abc",
            "L2_DESTRUCTIVE",
            "<code>prod</code>",
            "<pre>rm -rf /tmp/x &amp;&amp; echo '&lt;b&gt;'</pre>",
            "L2 needs &lt;approval&gt; &amp; &quot;care&quot;",
        ] {
            assert!(r.html.contains(needle), "{needle} missing in {}", r.html);
        }
        only_our_tags(&r.html);
        let buttons: Vec<_> = r.buttons.iter().flatten().collect();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0].callback_data, "ap:apr_xyz");
        assert_eq!(buttons[1].callback_data, "dn:apr_xyz");
        let longest = approve_data(&"x".repeat(32));
        assert!(longest.len() <= MAX_CALLBACK_BYTES);
        assert!(r.document.is_none());
    }

    #[test]
    fn a_huge_action_is_cut_in_the_message_and_attached_in_full() {
        let action = format!("echo {}", "<x>".repeat(20_000));
        let r = approval_request(&approval(&action), "Approval needed", true);
        assert!(utf16_len(&r.html) <= MAX_MESSAGE_UTF16);
        only_our_tags(&r.html);
        entities_whole(&r.html);
        assert_eq!(r.document.unwrap().contents, action);
        let outcome = approval_outcome(&approval(&action));
        assert!(utf16_len(&outcome) <= MAX_MESSAGE_UTF16);
        assert!(outcome.contains("apr_xyz"));
    }

    #[test]
    fn agent_replies_are_escaped_text_cut_within_the_limit() {
        let task_id = Id::parse("tsk_abc").unwrap();
        let r = agent_reply(&task_id, "Use <b>this</b> & [that](https://evil.example)");
        assert_eq!(
            r.html,
            "agent: Use &lt;b&gt;this&lt;/b&gt; &amp; [that](https://evil.example)\n\n\
             (task <code>tsk_abc</code>)"
        );
        assert!(r.document.is_none() && r.buttons.is_empty());

        let long = "<😀>".repeat(3000);
        let r = agent_reply(&task_id, &long);
        assert!(utf16_len(&r.html) <= MAX_MESSAGE_UTF16);
        only_our_tags(&r.html);
        entities_whole(&r.html);
        assert!(r.html.contains("tsk_abc"));
        let doc = r.document.expect("the whole message attached");
        assert_eq!(doc.contents, long);
        assert!(doc.caption_html.contains("tsk_abc"));
    }
}
