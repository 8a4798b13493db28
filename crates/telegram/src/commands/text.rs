//! Free text: a request to the agent, when a language model is configured and the `agent`
//! feature is on ([`crate::chat::ChatConfig::agent`]); otherwise a reply that explains `/run`.
//!
//! The agent task is created like `/run` creates a command task — through the same coordinator
//! function as the API, with the idempotency key `tg:{update_id}` so a redelivered update creates
//! nothing twice — with the text as its prompt and no environment. The first reply is the status
//! message that live progress edits; when the coordinator refuses the prompt (flagged by the
//! injection scanner, too long, over quota…) it says why instead.

use coordinator::{CoordError, NewTask};
use domain::{MAX_INPUT_BYTES, TaskInput};

use super::{Ctx, refuse};
use crate::{relayed, render};

const NO_AGENT: &str = "I can't hold a conversation here: the agent is not available in this \
    deployment (no language model is configured, or the operator switched it off). To run a shell \
    command, send <code>/run COMMAND</code>, for example <code>/run uptime</code>; add \
    <code>@ENVIRONMENT</code> first to use an environment's network and secrets. \
    <code>/help</code> lists every command.";

/// Answers a message that is not a command.
pub(crate) async fn run(ctx: &mut Ctx<'_>, text: &str) -> Result<(), CoordError> {
    if !ctx.conversation.agent() {
        ctx.replies.text(NO_AGENT);
        return Ok(());
    }
    let request = NewTask {
        input: TaskInput::Prompt(text.to_owned()),
        environment: None,
        idempotency_key: Some(relayed::idempotency_key(ctx.update_id)),
    };
    match ctx.coord.create_task(ctx.user, request).await {
        Ok((task, _created)) => {
            ctx.replies.text(render::task_accepted(&task));
            Ok(())
        }
        Err(CoordError::Invalid {
            code: "input_too_long",
            ..
        }) => {
            ctx.replies.text(too_long());
            Ok(())
        }
        Err(e) => refuse(ctx.replies, "Not started: ", e),
    }
}

fn too_long() -> String {
    format!(
        "That message is too long for me: a request may be at most {} KiB. Please shorten it, or \
         split it into several messages.",
        MAX_INPUT_BYTES / 1024
    )
}
