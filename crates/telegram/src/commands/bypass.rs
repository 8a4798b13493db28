//! `/bypass on|off`: the user's persistent bypass toggle, within org policy.

use coordinator::CoordError;
use domain::BypassMode;

use super::{Ctx, refuse};

pub(crate) async fn run(ctx: &mut Ctx<'_>, args: &str) -> Result<(), CoordError> {
    let mode = match args.to_ascii_lowercase().as_str() {
        "on" => BypassMode::On,
        "off" => BypassMode::Off,
        _ => {
            let current = ctx
                .coord
                .chat_status(ctx.user)
                .await
                .map(|s| s.bypass)
                .unwrap_or(ctx.user.bypass);
            ctx.replies.text(format!(
                "Usage: <code>/bypass on</code> or <code>/bypass off</code>. Your bypass is \
                 <b>{current}</b>."
            ));
            return Ok(());
        }
    };
    match ctx
        .coord
        .set_bypass(ctx.user, &ctx.user.user_id, mode)
        .await
    {
        Ok(BypassMode::On) => {
            ctx.replies.text(
                "Bypass is now <b>ON</b>: your commands skip approval up to the tier your \
                 organisation allows — never for L3, and never after untrusted content. \
                 <code>/bypass off</code> turns it off.",
            );
            Ok(())
        }
        Ok(BypassMode::Off) => {
            ctx.replies.text(
                "Bypass is now <b>OFF</b>: every action that needs an approval asks you first.",
            );
            Ok(())
        }
        Err(e) => refuse(ctx.replies, "Bypass unchanged: ", e),
    }
}
