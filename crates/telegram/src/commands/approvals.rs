//! `/approvals`: approvals awaiting this user, each with its Approve / Deny buttons when the user
//! may decide it; and how a new approval is presented (to the requester, and to admins when it
//! needs one).

use coordinator::CoordError;
use domain::Approval;

use super::{Ctx, no_args};
use crate::chat::Conversation;
use crate::outgoing::Outgoing;
use crate::render::{self, Rendered};

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

/// How a new approval is presented to its requester.
pub(crate) struct Presentation {
    /// The request, with Approve / Deny buttons when the requester decides it.
    pub request: Rendered,
    /// When an admin other than the requester must decide it: what the requester is told.
    pub note: Option<&'static str>,
    /// The notifications of the linked admins (none unless an admin must decide).
    pub admin_notices: Vec<Outgoing>,
}

/// The presentation of `approval`, new, to its requester (a `/run` reply, or a message about an
/// agent task's approval): with buttons when the requester decides it; otherwise without,
/// telling them an admin must, with the notifications of the linked admins.
pub(crate) async fn presentation(
    conversation: &Conversation,
    approval: &Approval,
) -> Result<Presentation, CoordError> {
    if !conversation
        .coordinator()
        .approval_needs_other_admin(approval)
        .await?
    {
        return Ok(Presentation {
            request: render::approval_request(approval, "Approval needed", true),
            note: None,
            admin_notices: Vec::new(),
        });
    }
    let admin_notices = conversation.admin_notices(approval).await?;
    let note = if admin_notices.is_empty() {
        "An admin other than you must decide this approval, and no admin has Telegram linked: \
         ask one to decide it through the API."
    } else {
        "An admin other than you must decide this approval; the admins have been notified."
    };
    Ok(Presentation {
        request: render::approval_request(approval, "Waiting for another admin", false),
        note: Some(note),
        admin_notices,
    })
}

/// Presents an approval the user's command just asked for (see [`presentation`]).
pub(crate) async fn present_new(ctx: &mut Ctx<'_>, approval: &Approval) -> Result<(), CoordError> {
    let p = presentation(ctx.conversation, approval).await?;
    ctx.replies.rendered(p.request);
    if let Some(note) = p.note {
        ctx.replies.text(note);
    }
    for n in p.admin_notices {
        ctx.replies.notify(n);
    }
    Ok(())
}
