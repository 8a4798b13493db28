//! Messages that the events of agent tasks started from Telegram call for, to the task owner's
//! chat:
//! * `approval` (the task now waits for an approval): the same approval request as `/run` shows
//!   ([`crate::commands::approvals::presentation`]) — with Approve / Deny buttons when the owner
//!   decides it; otherwise without, with a note, and the linked admins notified. Dedupe keys
//!   `apr:{approval_id}` (and `:doc`, `:note`), the admins' `adm:{approval_id}:{admin_id}`.
//!   An approval already decided or expired when the event is read is not presented.
//! * `reply` (the agent's `reply` tool): `agent: …`, escaped, with the task id. Dedupe key
//!   `rep:{task_id}:{seq}` (and `:doc` when the text comes as a document).
//!
//! [`agent_notices`] is meant for the server's periodic scan (every ~2 s), before the results
//! relay so a reply arrives before the final answer. It reads each agent task's events after the
//! last ones it read (`telegram.notices.{task_id}` in `kv_state`), and queues the messages in the
//! same transaction as that position: a repeated scan or a second process sends nothing twice,
//! and a crash loses nothing.

use domain::{Approval, Id, Task, TaskEvent, TaskKind, Timestamp};
use serde::{Deserialize, Serialize};
use store::Db;

use crate::chat::Conversation;
use crate::commands::approvals::presentation;
use crate::events::{self, Event};
use crate::handler::HandleError;
use crate::outgoing::{Action, Outgoing};
use crate::relayed::{self, store_error};
use crate::render;

/// Events read per page, and pages per task and scan (the rest is read on the next scan).
const EVENT_PAGE: i64 = 200;
const MAX_PAGES: usize = 10;

/// How far the notices of a task got (stored in `kv_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Read {
    /// The last task event read.
    seq: i64,
    /// The task finished and every event was read: nothing more to do.
    #[serde(default)]
    done: bool,
}

/// The `kv_state` key of a task's notices.
fn state_key(task_id: &Id) -> String {
    format!("telegram.notices.{task_id}")
}

/// Queues the messages that new events of agent tasks call for (see the module documentation)
/// and returns them. They are already in the outbox when this returns; queuing them again is a
/// no-op (same dedupe keys). A task whose messages cannot be built now (its events stay unread)
/// does not hold up the others.
pub async fn agent_notices(
    conv: &Conversation,
    db: &Db,
    now: Timestamp,
) -> Result<Vec<Outgoing>, HandleError> {
    let mut out = Vec::new();
    let mut states = Vec::new();
    for (task, _) in relayed::recent(db, now).await? {
        if task.kind != TaskKind::Agent {
            continue;
        }
        let key = state_key(&task.task_id);
        let read: Read = relayed::load(db, &key).await?;
        if read.done {
            continue;
        }
        match task_notices(conv, db, &task, read, now).await {
            Ok((notices, next)) => {
                out.extend(notices);
                if next != read {
                    states.push((key, next));
                }
            }
            Err(e) => {
                tracing::warn!(task_id = %task.task_id, error = %e, "telegram: cannot build the messages of an agent task; trying again later");
            }
        }
    }
    if !states.is_empty() {
        relayed::save(db, &out, &states).await?;
    }
    Ok(out)
}

/// The messages of `task`'s events after `read`, and how far they got.
async fn task_notices(
    conv: &Conversation,
    db: &Db,
    task: &Task,
    read: Read,
    now: Timestamp,
) -> Result<(Vec<Outgoing>, Read), HandleError> {
    let chat_id = conv
        .coordinator()
        .telegram_chat_of(&task.user_id)
        .await
        .map_err(|e| HandleError(e.to_string()))?;
    let mut out = Vec::new();
    let mut seq = read.seq;
    let mut complete = false;
    for _ in 0..MAX_PAGES {
        let events = store::task_events::list_after(db, &task.task_id, seq, EVENT_PAGE)
            .await
            .map_err(store_error)?;
        for event in &events {
            seq = seq.max(event.seq);
            if let Some(chat_id) = chat_id {
                out.extend(notice(conv, db, task, chat_id, event, now).await?);
            }
        }
        if i64::try_from(events.len()).unwrap_or(i64::MAX) < EVENT_PAGE {
            complete = true;
            break;
        }
    }
    // The task was listed finished, so its events were all written before this read.
    let done = complete && task.status.is_terminal();
    Ok((out, Read { seq, done }))
}

/// The messages one event calls for (none for most).
async fn notice(
    conv: &Conversation,
    db: &Db,
    task: &Task,
    chat_id: i64,
    event: &TaskEvent,
    now: Timestamp,
) -> Result<Vec<Outgoing>, HandleError> {
    match events::read(event) {
        Event::Reply(text) => {
            let key = format!("rep:{}:{}", task.task_id, event.seq);
            Ok(render::agent_reply(&task.task_id, text).into_outgoing(chat_id, &key))
        }
        Event::Approval { approval_id } => {
            let Some(approval) = pending_approval(db, task, approval_id, now).await? else {
                return Ok(Vec::new());
            };
            approval_request(conv, &approval, chat_id).await
        }
        _ => Ok(Vec::new()),
    }
}

/// The approval `approval_id` of `task`, when it exists, belongs to the task and still waits
/// for a decision.
async fn pending_approval(
    db: &Db,
    task: &Task,
    approval_id: &str,
    now: Timestamp,
) -> Result<Option<Approval>, HandleError> {
    let Ok(approval_id) = Id::parse(approval_id) else {
        return Ok(None);
    };
    let mut tx = db.begin().await.map_err(store_error)?;
    let approval = store::approvals::get_in(&mut tx, &approval_id)
        .await
        .map_err(store_error)?;
    drop(tx);
    Ok(approval.filter(|a| {
        a.task_id == task.task_id
            && a.requested_by == task.user_id
            && a.decision.is_none()
            && a.expires_at > now
    }))
}

/// The request of `approval` to its requester's chat, as `/run` presents one.
async fn approval_request(
    conv: &Conversation,
    approval: &Approval,
    chat_id: i64,
) -> Result<Vec<Outgoing>, HandleError> {
    let p = presentation(conv, approval)
        .await
        .map_err(|e| HandleError(e.to_string()))?;
    let key = format!("apr:{}", approval.approval_id);
    let mut out = p.request.into_outgoing(chat_id, &key);
    if let Some(note) = p.note {
        out.push(Outgoing {
            dedupe_key: format!("{key}:note"),
            chat_id,
            action: Action::SendMessage {
                html: note.to_owned(),
                buttons: Vec::new(),
            },
        });
    }
    out.extend(p.admin_notices);
    Ok(out)
}
