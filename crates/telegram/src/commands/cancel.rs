//! `/cancel TASK_ID` or `/cancel all`: cancels that task, or all of the user's own non-terminal
//! tasks, and lists what was cancelled.

use coordinator::CoordError;
use domain::Id;

use super::{Ctx, refuse};
use crate::render::escape;

const USAGE: &str = "Usage: <code>/cancel TASK_ID</code> or <code>/cancel all</code>.";

pub(crate) async fn run(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    if args.is_empty() || args.split_whitespace().count() != 1 {
        ctx.replies.text(USAGE);
        return Ok(());
    }
    if args.eq_ignore_ascii_case("all") {
        let ids = ctx.coord.cancel_own_tasks(ctx.user).await?;
        if ids.is_empty() {
            ctx.replies
                .text("Nothing to cancel: none of your tasks is active.");
        } else {
            let list: Vec<String> = ids
                .iter()
                .map(|id| format!("<code>{}</code>", escape(id.as_str())))
                .collect();
            ctx.replies.text(format!(
                "Cancelled {} task{}: {}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                list.join(", ")
            ));
        }
        return Ok(());
    }
    let Ok(task_id) = Id::parse(args) else {
        ctx.replies.text(format!(
            "<code>{}</code> is not a task id. {USAGE}",
            crate::render::escape_truncated(args, 40).0
        ));
        return Ok(());
    };
    let prefix = format!("Task <code>{}</code>: ", escape(task_id.as_str()));
    match ctx.coord.cancel_task(ctx.user, &task_id).await {
        Ok(task) => {
            ctx.replies.text(format!(
                "Cancelled task <code>{}</code>.",
                escape(task.task_id.as_str())
            ));
            Ok(())
        }
        Err(e) => refuse(ctx.replies, &prefix, e),
    }
}
