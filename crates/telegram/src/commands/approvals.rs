//! `/approvals`: approvals awaiting this user, each with its Approve / Deny buttons when the user
//! may decide it; and how a new approval is presented (to the requester, and to admins when it
//! needs one).

use coordinator::CoordError;
use domain::Approval;

use super::{Ctx, no_args};
use crate::render;

/// Approvals listed at most.
const SHOWN: usize = 10;

pub(crate) async fn run(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    if !no_args(ctx.replies, "approvals", args) {
        return Ok(());
    }
    let awaiting = ctx.coord.approvals_awaiting(ctx.user, SHOWN + 1).await?;
    if awaiting.is_empty() {
        ctx.replies.text("No approvals are waiting for you.");
        return Ok(());
    }
    for a in awaiting.iter().take(SHOWN) {
        let own = a.approval.requested_by == ctx.user.user_id;
        let heading = match (own, a.needs_other_admin) {
            (true, true) => "Waiting for another admin",
            (false, _) => "Approval needed from an admin",
            (true, false) => "Approval needed",
        };
        ctx.replies
            .rendered(render::approval_request(&a.approval, heading, a.decidable));
    }
    if awaiting.len() > SHOWN {
        ctx.replies.text(format!(
            "Showing the newest {SHOWN}; decide some to see more."
        ));
    }
    Ok(())
}

/// Presents an approval the user's command just asked for: with buttons when the user decides
/// it; otherwise without, telling them an admin must, and notifying the linked admins.
pub(crate) async fn present_new(ctx: &mut Ctx<'_>, approval: &Approval) -> Result<(), CoordError> {
    if !ctx.coord.approval_needs_other_admin(approval).await? {
        ctx.replies
            .rendered(render::approval_request(approval, "Approval needed", true));
        return Ok(());
    }
    ctx.replies.rendered(render::approval_request(
        approval,
        "Waiting for another admin",
        false,
    ));
    let notifications = ctx.conversation.admin_notices(approval).await?;
    if notifications.is_empty() {
        ctx.replies.text(
            "An admin other than you must decide this approval, and no admin has Telegram \
             linked: ask one to decide it through the API.",
        );
    } else {
        ctx.replies.text(
            "An admin other than you must decide this approval; the admins have been notified.",
        );
    }
    for n in notifications {
        ctx.replies.notify(n);
    }
    Ok(())
}
