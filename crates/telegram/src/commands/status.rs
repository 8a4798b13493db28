//! `/status`: running and queued tasks, pending approvals, bypass mode, whether mutations are
//! paused.

use std::fmt::Write as _;

use coordinator::CoordError;
use domain::Task;

use super::{Ctx, no_args};
use crate::render::task_line;

/// Tasks listed per section.
const PER_SECTION: usize = 5;

pub(crate) async fn run(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    if !no_args(ctx.replies, "status", args) {
        return Ok(());
    }
    let s = ctx.coord.chat_status(ctx.user).await?;
    let mut html = String::from("<b>Status</b>");
    section(&mut html, "Running", &s.running);
    section(&mut html, "Queued", &s.queued);
    section(&mut html, "Waiting for approval", &s.waiting);
    let _ = write!(
        html,
        "\n\nApprovals waiting for you: <b>{}</b>{}",
        s.pending_approvals,
        if s.pending_approvals > 0 {
            " (<code>/approvals</code>)"
        } else {
            ""
        }
    );
    let _ = write!(
        html,
        "\nBypass: <b>{}</b>{}",
        s.bypass,
        if s.bypass_allowed {
            ""
        } else {
            " (the organisation does not allow bypass)"
        }
    );
    html.push_str(if s.mutations_paused {
        "\nMutations: <b>paused</b> — every L1+ action is refused; read-only commands run as usual"
    } else {
        "\nMutations: allowed"
    });
    ctx.replies.text(html);
    Ok(())
}

fn section(html: &mut String, title: &str, tasks: &[Task]) {
    let _ = write!(html, "\n\n<b>{title}</b> ({})", tasks.len());
    if tasks.is_empty() {
        html.push_str(": none");
        return;
    }
    for t in tasks.iter().take(PER_SECTION) {
        let _ = write!(html, "\n{}", task_line(t));
    }
    if tasks.len() > PER_SECTION {
        let _ = write!(html, "\n… and {} more", tasks.len() - PER_SECTION);
    }
}
