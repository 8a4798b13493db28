//! Free text. Without a language model configured there is no conversation with the agent yet,
//! so the reply explains `/run`.

use coordinator::CoordError;

use super::Ctx;

/// Answers a message that is not a command.
pub(crate) async fn run(ctx: &mut Ctx<'_>, _text: &str) -> Result<(), CoordError> {
    ctx.replies.text(
        "I can't hold a conversation here yet (no language model is configured). To run a shell \
         command, send <code>/run COMMAND</code>, for example <code>/run uptime</code>; add \
         <code>@ENVIRONMENT</code> first to use an environment's network and secrets. \
         <code>/help</code> lists every command.",
    );
    Ok(())
}
