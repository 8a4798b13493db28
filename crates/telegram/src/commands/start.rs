//! `/start CODE`: redeem an invite (a new user) or a link code (an existing user).

use coordinator::{CoordError, Coordinator, Redeemed, TelegramAccount};

use super::Ctx;
use crate::chat::{JOIN_HINT, Replies, sentence};
use crate::render::escape;

/// `/start` from an account that is not linked.
pub(crate) async fn unlinked(
    coord: &Coordinator,
    account: &TelegramAccount,
    args: &str,
    replies: &mut Replies,
) -> Result<(), CoordError> {
    if args.is_empty() {
        replies.text(format!("Welcome! {JOIN_HINT}"));
        return Ok(());
    }
    redeem(coord, account, args, replies).await
}

/// `/start` from a linked user: who they are, or (with a code) a link to another user.
pub(crate) async fn linked(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    if args.is_empty() {
        ctx.replies.text(format!(
            "You are linked as <b>{}</b> ({}). Send <code>/help</code> for the commands.",
            escape(&ctx.user.name),
            ctx.user.role
        ));
        return Ok(());
    }
    redeem(ctx.coord, ctx.account, args, ctx.replies).await
}

async fn redeem(
    coord: &Coordinator,
    account: &TelegramAccount,
    args: &str,
    replies: &mut Replies,
) -> Result<(), CoordError> {
    if args.split_whitespace().count() != 1 {
        replies.text("Send the code on its own: <code>/start CODE</code>.");
        return Ok(());
    }
    match coord.redeem_code(account, args).await {
        Ok(redeemed) => {
            replies.text(welcome(&redeemed));
            Ok(())
        }
        Err(e @ (CoordError::Invalid { .. } | CoordError::Conflict { .. })) => {
            replies.text(escape(&sentence(&e.to_string())));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn welcome(r: &Redeemed) -> String {
    let name = escape(&r.user.name);
    if r.linked_existing {
        format!(
            "Linked: this Telegram account now acts as <b>{name}</b> ({}). Send \
             <code>/help</code> for the commands.",
            r.user.role
        )
    } else {
        format!(
            "Welcome, <b>{name}</b>! You joined as {}. Try <code>/run uptime</code>, or send \
             <code>/help</code> for the commands.",
            r.user.role
        )
    }
}
