//! Live progress in chat: the message that accepted a task (the first reply to its `/run` or to
//! the free text that started an agent task, dedupe key `u:{update_id}:0`) is edited to show the
//! task's status and, as it runs, the last lines of its output — and for an agent task its recent
//! steps ([`steps`]: the model's words, its shell commands with tier and verdict, their outcome)
//! with the output tail of the current command — until it shows the final status.
//!
//! [`progress_edits`] is meant for a periodic scan by the server (every ~2 s). For each task
//! created from Telegram ([`crate::relayed`]) that is unfinished or finished recently, it reads
//! the task events after the last ones shown and, when the status, the steps or the output tail
//! changed, queues one `editMessageText`:
//! * at most one edit per task every [`EDIT_EVERY`], and at most one edit per chat per scan
//!   (Telegram allows about one message a second in a chat), so nothing is sent faster than
//!   Telegram's limits whatever the output rate;
//! * only when something changed; an edit's dedupe key is `p:{task_id}:{last_event_seq}`, so a
//!   repeated scan (or a second server process) never sends an edit twice;
//! * the edits and what they showed (`telegram.progress.{task_id}` in `kv_state`: last event,
//!   time of the edit, output tail, steps, status) are stored in one transaction, so a crash
//!   neither loses nor repeats an edit;
//! * output, commands and the model's words are HTML-escaped ([`render::escape`]); output goes
//!   inside our `<pre>`, cut from the front to the last lines; the whole message stays within
//!   Telegram's 4096 UTF-16 units, and nothing in it can form markup or a link.
//!
//! The final result (or an agent's answer) is still sent as its own message (the server's results
//! relay); the last edit only shows the terminal status, exit code, steps and output tail.

mod steps;
mod tail;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use domain::{Id, Task, TaskKind, TaskStatus, Timestamp};
use serde::{Deserialize, Serialize};
use store::Db;

use crate::chat::Conversation;
use crate::events::{self, Event};
use crate::handler::HandleError;
use crate::outgoing::{Action, Outgoing};
use crate::relayed::{self, millis, store_error};
use crate::render::{self, MAX_MESSAGE_UTF16, escape_truncated, utf16_len};
use steps::Step;
use tail::{escape_tail, keep_last_chars, last_lines};

/// The shortest time between two edits of one task's status message.
pub const EDIT_EVERY: Duration = Duration::from_secs(3);
/// Events read per page, and pages per task and scan (the rest is read on the next scan).
const EVENT_PAGE: i64 = 200;
const MAX_PAGES: usize = 10;
/// Lines of output shown.
pub const TAIL_LINES: usize = 15;
/// Most UTF-16 units of escaped output shown (the message stays well within 4096).
const TAIL_UNITS: usize = 3000;
/// Most UTF-16 units of an agent task's steps shown.
const STEPS_UNITS: usize = 1500;
/// Most UTF-16 units of an agent task's prompt shown.
const PROMPT_UNITS: usize = 120;
/// Most characters of raw output remembered between scans.
const TAIL_KEEP_CHARS: usize = 4000;

/// What the status message of a task shows now (stored in `kv_state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Shown {
    /// The last task event taken into account.
    seq: i64,
    /// When the message was last edited (milliseconds); 0 before the first edit.
    at: i64,
    /// The end of the output so far (raw text); for an agent task, of its current command.
    #[serde(default)]
    tail: String,
    /// An agent task's recent steps.
    #[serde(default)]
    steps: Vec<Step>,
    /// The status shown; empty before the first edit.
    #[serde(default)]
    status: String,
}

/// The `kv_state` key of a task's progress.
fn state_key(task_id: &Id) -> String {
    format!("telegram.progress.{task_id}")
}

/// The dedupe key of the reply that accepted the task of `update_id` (the first reply to the
/// update; see the conversation's numbering `u:{update_id}:{n}`).
pub fn acceptance_key(update_id: i64) -> String {
    format!("u:{update_id}:0")
}

/// The dedupe key of the edit that shows a task up to event `seq`.
pub fn edit_key(task_id: &Id, seq: i64) -> String {
    format!("p:{task_id}:{seq}")
}

/// Queues the status-message edits due at `now` (see the module documentation) and returns
/// them. They are already in the outbox when this returns, in the same transaction as the
/// record of what they show; queuing them again is a no-op (same dedupe keys), so the caller
/// may add them to its own batch, or just wake the sender when the list is not empty.
pub async fn progress_edits(
    conv: &Conversation,
    db: &Db,
    now: Timestamp,
) -> Result<Vec<Outgoing>, HandleError> {
    // Tasks whose status message may be edited now, least recently edited first.
    let mut due = Vec::new();
    for (task, update_id) in relayed::recent(db, now).await? {
        let shown: Shown = relayed::load(db, &state_key(&task.task_id)).await?;
        if now.as_millis().saturating_sub(shown.at) < millis(EDIT_EVERY) {
            continue;
        }
        if task.status.is_terminal() && shown.status == task.status.as_str() {
            // Its final status is already shown.
            continue;
        }
        due.push((shown, task, update_id));
    }
    due.sort_by_key(|(shown, task, _)| (shown.at, task.created_at));

    let mut chats_edited = HashSet::new();
    let mut edits = Vec::new();
    let mut remembered = Vec::new();
    for (shown, task, update_id) in due {
        let Some(message_id) = crate::outbox::message_id_of(db, &acceptance_key(update_id))
            .await
            .map_err(store_error)?
        else {
            // Not sent yet (or long ago purged): nothing to edit.
            continue;
        };
        let Some(chat_id) = conv
            .coordinator()
            .telegram_chat_of(&task.user_id)
            .await
            .map_err(|e| HandleError(e.to_string()))?
        else {
            continue;
        };
        if chats_edited.contains(&chat_id) {
            continue;
        }
        let Some(next) = advance(db, &task.task_id, &shown).await? else {
            continue;
        };
        // The task as it is now: at least as new as the events just read (a status event is
        // stored with its status change).
        let task = store::tasks::get(db, &task.task_id)
            .await
            .map_err(store_error)?
            .unwrap_or(task);
        let status = if next.complete {
            task.status.as_str().to_owned()
        } else {
            // More events than one scan reads: not yet the final picture.
            String::new()
        };
        let changed = next.tail != shown.tail
            || next.steps != shown.steps
            || task.status.as_str() != shown.status;
        let key = state_key(&task.task_id);
        if !changed {
            // Events that change nothing visible (or a status shown already): move on quietly.
            remembered.push((
                key,
                Shown {
                    seq: next.seq,
                    status,
                    ..shown
                },
            ));
            continue;
        }
        chats_edited.insert(chat_id);
        edits.push(Outgoing {
            dedupe_key: edit_key(&task.task_id, next.seq),
            chat_id,
            action: Action::EditMessageText {
                message_id,
                html: status_message(&task, &next.tail, &next.steps),
                buttons: Vec::new(),
            },
        });
        remembered.push((
            key,
            Shown {
                seq: next.seq,
                at: now.as_millis(),
                tail: next.tail,
                steps: next.steps,
                status,
            },
        ));
    }
    if !remembered.is_empty() {
        relayed::save(db, &edits, &remembered).await?;
    }
    Ok(edits)
}

/// What the events after the shown ones add.
struct Next {
    /// The last event read.
    seq: i64,
    /// The output tail with their output appended.
    tail: String,
    /// The steps with theirs.
    steps: Vec<Step>,
    /// Whether every event so far was read.
    complete: bool,
}

/// Reads the events after `shown.seq`; `None` when there are none.
async fn advance(db: &Db, task_id: &Id, shown: &Shown) -> Result<Option<Next>, HandleError> {
    let mut seq = shown.seq;
    let mut tail = shown.tail.clone();
    let mut steps = shown.steps.clone();
    let mut complete = false;
    for _ in 0..MAX_PAGES {
        let events = store::task_events::list_after(db, task_id, seq, EVENT_PAGE)
            .await
            .map_err(store_error)?;
        for event in &events {
            seq = seq.max(event.seq);
            match events::read(event) {
                Event::Output(text) => {
                    tail.push_str(text);
                    keep_last_chars(&mut tail, TAIL_KEEP_CHARS);
                }
                other => {
                    if steps::apply(&mut steps, &other) {
                        // A new command: the output shown from now on is its own.
                        tail.clear();
                    }
                }
            }
        }
        if i64::try_from(events.len()).unwrap_or(i64::MAX) < EVENT_PAGE {
            complete = true;
            break;
        }
    }
    Ok((seq > shown.seq).then_some(Next {
        seq,
        tail,
        steps,
        complete,
    }))
}

/// The status message of `task` with the output tail `tail` (raw) and, for an agent task, its
/// `steps`: id, status and tier, the command (or the start of the prompt), the environment, the
/// steps, the last lines of output in `<pre>`, and for a finished task its exit code or error.
/// Escaped, within Telegram's limit.
fn status_message(task: &Task, tail: &str, steps: &[Step]) -> String {
    let agent = task.kind == TaskKind::Agent;
    let mut head = render::task_headline(task);
    if let Some(result) = &task.result
        && !agent
    {
        let _ = write!(head, " · exit code <b>{}</b>", result.exit_code);
    }
    let input: String = task.input.split_whitespace().collect::<Vec<_>>().join(" ");
    if agent {
        let (prompt, _) = escape_truncated(&input, PROMPT_UNITS);
        let _ = write!(head, "\nAsked: {prompt}");
    } else {
        let (command, _) = escape_truncated(&input, 200);
        let _ = write!(head, "\n<code>{command}</code>");
    }
    if let Some(env) = &task.environment {
        let (env, _) = escape_truncated(env, 100);
        let _ = write!(head, "\nEnvironment: <code>{env}</code>");
    }
    if let Some(error) = &task.error {
        let (code, _) = escape_truncated(&error.code, 100);
        let (message, _) = escape_truncated(&error.message, 500);
        let _ = write!(head, "\n<code>{code}</code>: {message}");
    }
    let steps = steps::render(steps, STEPS_UNITS);
    if !steps.is_empty() {
        let _ = write!(head, "\n{steps}");
    }
    let footer = match (
        task.status.is_terminal(),
        agent && task.status == TaskStatus::Succeeded,
    ) {
        (false, _) => "",
        (true, true) => "\nFinished; the answer follows in its own message.",
        (true, false) => "\nFinished; the result follows in its own message.",
    };
    let lines = last_lines(tail, TAIL_LINES);
    if lines.trim().is_empty() {
        let none = match (agent, task.status.is_terminal()) {
            (true, _) if !steps.is_empty() => "",
            (true, false) => "\n(thinking…)",
            (true, true) => "",
            (false, true) => "\n(no output)",
            (false, false) => "\n(no output yet)",
        };
        return format!("{head}{none}{footer}");
    }
    let room = MAX_MESSAGE_UTF16
        .saturating_sub(utf16_len(&head) + utf16_len("\n<pre></pre>") + utf16_len(footer))
        .min(TAIL_UNITS);
    let output = escape_tail(&lines, room);
    format!("{head}\n<pre>{output}</pre>{footer}")
}
