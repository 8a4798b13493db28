//! Live progress in chat: the message that accepted a task (the first reply to its `/run`,
//! dedupe key `u:{update_id}:0`) is edited to show the task's status and the last lines of its
//! output, until it shows the final status.
//!
//! [`progress_edits`] is meant for a periodic scan by the server (every ~2 s). For each task
//! created from Telegram (idempotency key `tg:{update_id}`) that is unfinished or finished
//! recently, it reads the task events after the last ones shown and, when the status or the
//! output tail changed, queues one `editMessageText`:
//! * at most one edit per task every [`EDIT_EVERY`], and at most one edit per chat per scan
//!   (Telegram allows about one message a second in a chat), so nothing is sent faster than
//!   Telegram's limits whatever the output rate;
//! * only when something changed; an edit's dedupe key is `p:{task_id}:{last_event_seq}`, so a
//!   repeated scan (or a second server process) never sends an edit twice;
//! * the edits and what they showed (`telegram.progress.{task_id}` in `kv_state`: last event,
//!   time of the edit, output tail, status) are stored in one transaction, so a crash neither
//!   loses nor repeats an edit;
//! * output is HTML-escaped ([`render::escape`]) inside our `<pre>`, cut from the front to the
//!   last lines within Telegram's 4096 UTF-16 units; nothing in it can form markup or a link.
//!
//! The final result is still sent as its own message (the server's results relay); the last
//! edit only shows the terminal status, exit code and output tail.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use domain::{Id, Task, Timestamp};
use serde::{Deserialize, Serialize};
use store::{Db, StoreError};

use crate::chat::Conversation;
use crate::handler::HandleError;
use crate::outgoing::{Action, Outgoing};
use crate::render::{self, MAX_MESSAGE_UTF16, escape, utf16_len};

/// The shortest time between two edits of one task's status message.
pub const EDIT_EVERY: Duration = Duration::from_secs(3);
/// Tasks that finished longer ago than this are not looked at any more (their final edit, if it
/// could not be made by then — the server was down — is left out; the result message is sent
/// anyway).
pub const FINISHED_WITHIN: Duration = Duration::from_secs(600);
/// Idempotency-key prefix of tasks created from Telegram (see `/run`).
const KEY_PREFIX: &str = "tg:";
/// Most tasks looked at per scan.
const SCAN_LIMIT: i64 = 200;
/// Events read per page, and pages per task and scan (the rest is read on the next scan).
const EVENT_PAGE: i64 = 200;
const MAX_PAGES: usize = 10;
/// Lines of output shown.
pub const TAIL_LINES: usize = 15;
/// Most UTF-16 units of escaped output shown (the message stays well within 4096).
const TAIL_UNITS: usize = 3000;
/// Most characters of raw output remembered between scans.
const TAIL_KEEP_CHARS: usize = 4000;
/// Marks output cut at the front.
const ELLIPSIS: &str = "…";

/// What the status message of a task shows now (stored in `kv_state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Shown {
    /// The last task event taken into account.
    seq: i64,
    /// When the message was last edited (milliseconds); 0 before the first edit.
    at: i64,
    /// The end of the output so far (raw text).
    #[serde(default)]
    tail: String,
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
    let finished_since =
        Timestamp::from_millis(now.as_millis().saturating_sub(millis(FINISHED_WITHIN)));
    let tasks = store::tasks::active_or_finished_since_with_key_prefix(
        db,
        KEY_PREFIX,
        finished_since,
        SCAN_LIMIT,
    )
    .await
    .map_err(store_error)?;

    // Tasks whose status message may be edited now, least recently edited first.
    let mut due = Vec::new();
    for (task, key) in tasks {
        let Some(update_id) = key
            .strip_prefix(KEY_PREFIX)
            .and_then(|id| id.parse::<i64>().ok())
        else {
            continue;
        };
        let shown = load(db, &task.task_id).await?;
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
        let changed = next.tail != shown.tail || task.status.as_str() != shown.status;
        if !changed {
            // Events that change nothing visible (or a status shown already): move on quietly.
            remembered.push((
                task.task_id.clone(),
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
                html: status_message(&task, &next.tail),
                buttons: Vec::new(),
            },
        });
        remembered.push((
            task.task_id.clone(),
            Shown {
                seq: next.seq,
                at: now.as_millis(),
                tail: next.tail,
                status,
            },
        ));
    }
    if remembered.is_empty() {
        return Ok(edits);
    }
    save(db, &edits, &remembered).await.map_err(store_error)?;
    Ok(edits)
}

/// What the events after the shown ones add.
struct Next {
    /// The last event read.
    seq: i64,
    /// The output tail with their output appended.
    tail: String,
    /// Whether every event so far was read.
    complete: bool,
}

/// Reads the events after `shown.seq`; `None` when there are none.
async fn advance(db: &Db, task_id: &Id, shown: &Shown) -> Result<Option<Next>, HandleError> {
    let mut seq = shown.seq;
    let mut tail = shown.tail.clone();
    let mut complete = false;
    for _ in 0..MAX_PAGES {
        let events = store::task_events::list_after(db, task_id, seq, EVENT_PAGE)
            .await
            .map_err(store_error)?;
        for event in &events {
            seq = seq.max(event.seq);
            if event.kind == "output"
                && let Some(text) = event.data.get("text").and_then(|t| t.as_str())
            {
                tail.push_str(text);
                keep_last_chars(&mut tail, TAIL_KEEP_CHARS);
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
        complete,
    }))
}

async fn load(db: &Db, task_id: &Id) -> Result<Shown, HandleError> {
    match store::kv::get(db, &state_key(task_id))
        .await
        .map_err(store_error)?
    {
        None => Ok(Shown::default()),
        Some(value) => Ok(serde_json::from_str(&value).unwrap_or_else(|e| {
            // Unreadable state: start over (an edit may repeat what is shown, nothing worse).
            tracing::warn!(task_id = %task_id, error = %e, "telegram progress: unreadable state; starting over");
            Shown::default()
        })),
    }
}

/// Queues `edits` and records what the messages show, in one transaction.
async fn save(db: &Db, edits: &[Outgoing], shown: &[(Id, Shown)]) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    crate::outbox::enqueue(&mut tx, edits).await?;
    for (task_id, shown) in shown {
        let value = serde_json::to_string(shown)
            .map_err(|e| StoreError::Other(format!("cannot serialize progress state: {e}")))?;
        store::kv::set(&mut tx, &state_key(task_id), &value).await?;
    }
    tx.commit().await
}

/// The status message of `task` with the output tail `tail` (raw): id, status and tier, the
/// command, the environment, the last lines of output in `<pre>`, and for a finished task its
/// exit code or error. Escaped, within Telegram's limit.
pub fn status_message(task: &Task, tail: &str) -> String {
    let mut head = render::task_headline(task);
    if let Some(result) = &task.result {
        let _ = write!(head, " · exit code <b>{}</b>", result.exit_code);
    }
    let command: String = task.input.split_whitespace().collect::<Vec<_>>().join(" ");
    let (command, _) = render::escape_truncated(&command, 200);
    let _ = write!(head, "\n<code>{command}</code>");
    if let Some(env) = &task.environment {
        let (env, _) = render::escape_truncated(env, 100);
        let _ = write!(head, "\nEnvironment: <code>{env}</code>");
    }
    if let Some(error) = &task.error {
        let (code, _) = render::escape_truncated(&error.code, 100);
        let (message, _) = render::escape_truncated(&error.message, 500);
        let _ = write!(head, "\n<code>{code}</code>: {message}");
    }
    let footer = if task.status.is_terminal() {
        "\nFinished; the result follows in its own message."
    } else {
        ""
    };
    let lines = last_lines(tail, TAIL_LINES);
    if lines.trim().is_empty() {
        let none = if task.status.is_terminal() {
            "\n(no output)"
        } else {
            "\n(no output yet)"
        };
        return format!("{head}{none}{footer}");
    }
    let room = MAX_MESSAGE_UTF16
        .saturating_sub(utf16_len(&head) + utf16_len("\n<pre></pre>") + utf16_len(footer))
        .min(TAIL_UNITS);
    let output = escape_tail(&lines, room);
    format!("{head}\n<pre>{output}</pre>{footer}")
}

/// The last `n` lines of `text` as a terminal would show them: a carriage return starts its line
/// over (progress bars), and control characters other than newline and tab are dropped.
fn last_lines(text: &str, n: usize) -> String {
    let trimmed = text.trim_end_matches(['\n', '\r']);
    let mut lines: Vec<String> = trimmed
        .rsplit('\n')
        .take(n)
        .map(|line| {
            let line = line.trim_end_matches('\r');
            let visible = line.rsplit('\r').next().unwrap_or(line);
            visible
                .chars()
                .filter(|c| *c == '\t' || !c.is_control())
                .collect()
        })
        .collect();
    lines.reverse();
    lines.join("\n")
}

/// UTF-16 units of `c` once escaped.
fn escaped_units(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        '"' => 6,
        c => c.len_utf16(),
    }
}

/// The end of `text`, escaped, within `max_units` UTF-16 units (a leading `…` when cut). Never
/// cuts an entity or a character.
fn escape_tail(text: &str, max_units: usize) -> String {
    let total: usize = text.chars().map(escaped_units).sum();
    if total <= max_units {
        return escape(text);
    }
    let budget = max_units.saturating_sub(utf16_len(ELLIPSIS));
    let mut used = 0;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        let units = escaped_units(c);
        if used + units > budget {
            break;
        }
        used += units;
        start = i;
    }
    format!("{ELLIPSIS}{}", escape(&text[start..]))
}

/// Keeps the last `n` characters of `text`.
fn keep_last_chars(text: &mut String, n: usize) {
    if n == 0 {
        text.clear();
        return;
    }
    if let Some((i, _)) = text.char_indices().rev().nth(n - 1) {
        text.drain(..i);
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn store_error(e: StoreError) -> HandleError {
    HandleError(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_behave_like_a_terminal() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("10%\r50%\r100%\n", 5), "100%");
        assert_eq!(last_lines("crlf\r\nnext\r\n", 5), "crlf\nnext");
        assert_eq!(last_lines("\u{1b}[31mred\u{0}\tx", 5), "[31mred\tx");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn the_tail_keeps_the_end_and_whole_entities() {
        assert_eq!(escape_tail("<a>", 100), "&lt;a&gt;");
        // "&lt;a&gt;" is 9 units; 6 hold "…" (1), "a" (1) and "&gt;" (4), not "&lt;".
        assert_eq!(escape_tail("<a>", 6), "…a&gt;");
        assert_eq!(escape_tail("<a>", 5), "…&gt;");
        // An emoji (2 units) is never split.
        assert_eq!(escape_tail("xy😀", 2), "…");
        assert_eq!(escape_tail("xy😀", 3), "…😀");
    }

    #[test]
    fn keeps_the_last_characters() {
        let mut s = "héllo😀".to_owned();
        keep_last_chars(&mut s, 3);
        assert_eq!(s, "lo😀");
        let mut s = "ab".to_owned();
        keep_last_chars(&mut s, 5);
        assert_eq!(s, "ab");
    }
}
