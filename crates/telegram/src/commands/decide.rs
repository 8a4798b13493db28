//! `/approve ID`, `/deny ID` and the Approve / Deny buttons: all through
//! `Coordinator::decide_approval`, so the same rules hold (CONTRACT.md "Who decides"), and a
//! replayed or forged button press changes nothing.

use coordinator::{CoordError, Coordinator};
use domain::{Approval, ApprovalDecision, Id, TaskKind, User};

use super::{Ctx, refuse};
use crate::chat::{Replies, sentence};
use crate::outgoing::Action;
use crate::render::{self, escape};
use crate::update::CallbackQuery;

pub(crate) async fn command(
    ctx: &mut Ctx<'_>,
    args: &str,
    decision: ApprovalDecision,
) -> Result<(), CoordError> {
    let verb = if decision == ApprovalDecision::Approve {
        "approve"
    } else {
        "deny"
    };
    let usage = format!("Usage: <code>/{verb} APPROVAL_ID</code> (see <code>/approvals</code>).");
    if args.is_empty() || args.split_whitespace().count() != 1 {
        ctx.replies.text(usage);
        return Ok(());
    }
    let Ok(approval_id) = Id::parse(args) else {
        ctx.replies.text(format!(
            "<code>{}</code> is not an approval id. {usage}",
            render::escape_truncated(args, 40).0
        ));
        return Ok(());
    };
    let prefix = format!("Approval <code>{}</code>: ", escape(approval_id.as_str()));
    match ctx
        .coord
        .decide_approval(ctx.user, &approval_id, decision)
        .await
    {
        Ok(approval) => {
            let kind = task_kind(ctx.coord, ctx.user, &approval).await;
            ctx.replies.text(outcome_line(&approval, kind));
            Ok(())
        }
        Err(e) => refuse(ctx.replies, &prefix, e),
    }
}

/// The kind of the approval's task (a command when it cannot be read: the decision is made
/// either way, only its wording depends on this).
async fn task_kind(coord: &Coordinator, user: &User, approval: &Approval) -> TaskKind {
    match coord.get_task(user, &approval.task_id).await {
        Ok(task) => task.kind,
        Err(e) => {
            tracing::warn!(task_id = %approval.task_id, error = %e, "telegram: cannot read the task of a decided approval");
            TaskKind::Command
        }
    }
}

fn outcome_line(a: &Approval, kind: TaskKind) -> String {
    let (id, task) = (escape(a.approval_id.as_str()), escape(a.task_id.as_str()));
    match a.decision {
        Some(ApprovalDecision::Approve) => {
            format!("✅ Approved <code>{id}</code>: task <code>{task}</code> is queued.")
        }
        Some(ApprovalDecision::Deny) if kind == TaskKind::Agent => format!(
            "⛔ Denied <code>{id}</code>: the agent of task <code>{task}</code> is told and goes \
             on without that action."
        ),
        Some(ApprovalDecision::Deny) => format!(
            "⛔ Denied <code>{id}</code>: task <code>{task}</code> will not run \
             (<code>approval_denied</code>)."
        ),
        _ => format!("Approval <code>{id}</code> of task <code>{task}</code>: nothing changed."),
    }
}

/// `ap:ID` / `dn:ID` → the decision and the approval id; anything else → `None`.
pub(crate) fn parse_callback(data: Option<&str>) -> Option<(ApprovalDecision, Id)> {
    let data = data?;
    if data.len() > render::MAX_CALLBACK_BYTES {
        return None;
    }
    let (kind, id) = data.split_once(':')?;
    let decision = match kind {
        "ap" => ApprovalDecision::Approve,
        "dn" => ApprovalDecision::Deny,
        _ => return None,
    };
    Some((decision, Id::parse(id).ok()?))
}

/// The answer on the pressed button (Telegram allows 200 characters).
pub(crate) fn answer(replies: &mut Replies, q: &CallbackQuery, text: &str) {
    replies.push(Action::AnswerCallbackQuery {
        callback_query_id: q.id.clone(),
        text: text.chars().take(190).collect(),
    });
}

/// A button press by the linked `user`: decides through the coordinator, answers the callback,
/// and edits the pressed message to show the outcome. Anything that is not a valid decision of
/// this user changes nothing and gets a polite answer.
pub(crate) async fn button(
    coord: &Coordinator,
    user: &User,
    q: &CallbackQuery,
    replies: &mut Replies,
) -> Result<(), CoordError> {
    let Some((decision, approval_id)) = parse_callback(q.data.as_deref()) else {
        answer(replies, q, "This button is not valid (any more).");
        return Ok(());
    };
    match coord.decide_approval(user, &approval_id, decision).await {
        Ok(approval) => {
            let text = match approval.decision {
                Some(ApprovalDecision::Approve) => "Approved: the task is queued.",
                Some(ApprovalDecision::Deny)
                    if task_kind(coord, user, &approval).await == TaskKind::Agent =>
                {
                    "Denied: the agent goes on without that action."
                }
                Some(ApprovalDecision::Deny) => "Denied: the task will not run.",
                _ => "Nothing changed.",
            };
            answer(replies, q, text);
            if let Some(m) = &q.message {
                replies.push(Action::EditMessageText {
                    message_id: m.message_id,
                    html: render::approval_outcome(&approval),
                    buttons: Vec::new(),
                });
            }
            Ok(())
        }
        Err(CoordError::NotFound(_)) => {
            answer(replies, q, "No such approval is waiting for you.");
            Ok(())
        }
        Err(e @ (CoordError::Unavailable(_) | CoordError::Internal(_))) => Err(e),
        Err(e) => {
            answer(replies, q, &sentence(&e.to_string()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_data_is_parsed_strictly() {
        let (d, id) = parse_callback(Some("ap:apr_abc")).unwrap();
        assert_eq!(d, ApprovalDecision::Approve);
        assert_eq!(id.as_str(), "apr_abc");
        assert_eq!(
            parse_callback(Some("dn:apr_abc")).unwrap().0,
            ApprovalDecision::Deny
        );
        for bad in [
            "",
            "ap:",
            "ap:APR",
            "xx:apr_abc",
            "ap:apr abc",
            "ap",
            "ap:../../x",
        ] {
            assert!(parse_callback(Some(bad)).is_none(), "{bad}");
        }
        assert!(parse_callback(None).is_none());
        assert!(parse_callback(Some(&format!("ap:{}", "a".repeat(70)))).is_none());
    }
}
