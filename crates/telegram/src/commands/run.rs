//! `/run [@ENVIRONMENT] COMMAND`: creates a command task (one shell action) through the same
//! coordinator function as the API, with the idempotency key `tg:{update_id}` so a redelivered
//! update creates nothing twice. Answers at once with the task id and, when the task waits, the
//! approval request. The command text is passed on exactly as sent (apart from surrounding
//! whitespace); the policy gate normalises typographic quotes and dashes before classifying.

use coordinator::{CoordError, NewTask, is_environment_name};
use domain::{TaskInput, TaskStatus};

use super::{Ctx, approvals, refuse};
use crate::{relayed, render};

const USAGE: &str = "Usage: <code>/run [@ENVIRONMENT] COMMAND</code>, for example \
    <code>/run df -h</code> or <code>/run @staging curl -sI https://example.com</code>.";

pub(crate) async fn run(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    if args.is_empty() {
        ctx.replies.text(USAGE);
        return Ok(());
    }
    let (environment, command) = match args.strip_prefix('@') {
        Some(rest) => {
            let (env, command) = match rest.find(char::is_whitespace) {
                Some(i) => (&rest[..i], rest[i..].trim_start()),
                None => (rest, ""),
            };
            if !is_environment_name(env) {
                ctx.replies.text(format!(
                    "<code>@{}</code> is not an environment name (lowercase letters, digits, \
                     <code>_</code> and <code>-</code>). {USAGE}",
                    render::escape_truncated(env, 40).0
                ));
                return Ok(());
            }
            if command.is_empty() {
                ctx.replies.text(format!("Which command? {USAGE}"));
                return Ok(());
            }
            (Some(env.to_owned()), command)
        }
        None => (None, args),
    };
    let request = NewTask {
        input: TaskInput::Command(command.to_owned()),
        environment,
        idempotency_key: Some(relayed::idempotency_key(ctx.update_id)),
    };
    let task = match ctx.coord.create_task(ctx.user, request).await {
        Ok((task, _created)) => task,
        Err(e) => return refuse(ctx.replies, "Not started: ", e),
    };
    ctx.replies.text(render::task_accepted(&task));
    if task.status == TaskStatus::WaitingApproval
        && let Some(approval_id) = &task.approval_id
        && let Some(approval) = ctx.coord.approval_visible_to(ctx.user, approval_id).await?
    {
        approvals::present_new(ctx, &approval).await?;
    }
    Ok(())
}
