//! `/tasks`: the user's recent tasks with their status.

use coordinator::{CoordError, Page, TaskQuery};

use super::{Ctx, no_args};
use crate::render::task_line;

/// Tasks shown.
const RECENT: i64 = 10;

pub(crate) async fn run(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    if !no_args(ctx.replies, "tasks", args) {
        return Ok(());
    }
    let query = TaskQuery {
        status: None,
        user_id: Some(ctx.user.user_id.clone()),
        page: Page {
            before: None,
            limit: RECENT,
        },
    };
    let tasks = ctx.coord.list_tasks(ctx.user, &query).await?;
    if tasks.is_empty() {
        ctx.replies
            .text("You have no tasks yet. Try <code>/run uptime</code>.");
        return Ok(());
    }
    let lines: Vec<String> = tasks.iter().map(task_line).collect();
    ctx.replies.text(format!(
        "<b>Your recent tasks</b> (newest first)\n{}",
        lines.join("\n")
    ));
    Ok(())
}
