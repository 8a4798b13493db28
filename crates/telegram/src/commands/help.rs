//! `/help`: the commands (and, when the agent is on, that plain words go to it).

use super::Ctx;

/// The help for linked users.
pub(crate) fn run(ctx: &mut Ctx<'_>, _args: &str) {
    let mut html = linked();
    if ctx.conversation.agent() {
        html.push_str(
            "\n\nOr just write what you need in plain words: the agent works it out, runs the \
             commands (asking for approval where needed) and answers here.",
        );
    }
    ctx.replies.text(html);
}

fn linked() -> String {
    "<b>Commands</b>\n\
     <code>/run [@ENVIRONMENT] COMMAND</code> — run one shell command, optionally with an \
     environment's network and secrets\n\
     <code>/tasks</code> — your recent tasks\n\
     <code>/status</code> — running and queued tasks, approvals, bypass, whether mutations are paused\n\
     <code>/cancel TASK_ID</code> or <code>/cancel all</code> — stop tasks\n\
     <code>/approvals</code> — approvals waiting for you\n\
     <code>/approve APPROVAL_ID</code>, <code>/deny APPROVAL_ID</code> — decide one (or use its buttons)\n\
     <code>/bypass on</code>, <code>/bypass off</code> — skip approvals within your organisation's policy\n\
     <code>/help</code> — this list"
        .to_owned()
}

/// The help for accounts that are not linked yet.
pub(crate) fn unlinked() -> String {
    "<b>Joining</b>\n\
     <code>/start CODE</code> — join with an invite or link code from your admin\n\
     <code>/help</code> — this text\n\n\
     Once you have joined, <code>/help</code> lists everything you can do."
        .to_owned()
}
