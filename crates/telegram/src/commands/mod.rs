//! The chat commands of CONTRACT.md "Telegram", one module each. Every command validates its
//! arguments and answers misuse with a short usage line; every effect goes through the same
//! coordinator function as the HTTP API.

pub(crate) mod approvals;
pub(crate) mod bypass;
pub(crate) mod cancel;
pub(crate) mod decide;
pub(crate) mod help;
pub(crate) mod run;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod tasks;
pub(crate) mod text;

use coordinator::{CoordError, Coordinator, TelegramAccount};
use domain::User;

use crate::chat::{Conversation, Replies, sentence};
use crate::render::escape;

/// The commands we know, by name.
const COMMANDS: &[&str] = &[
    "start",
    "help",
    "status",
    "tasks",
    "run",
    "cancel",
    "approvals",
    "approve",
    "deny",
    "bypass",
];

/// What a message says, before who sent it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// No text (a photo, a sticker) or only whitespace.
    Empty,
    /// `/cmd@otherbot`: addressed to another bot.
    NotForUs,
    /// A known command and the text after it (leading and trailing whitespace removed, the
    /// rest exactly as sent).
    Command { name: &'static str, args: &'a str },
    /// `/something` we do not know.
    Unknown(&'a str),
    /// Anything else.
    Text(&'a str),
}

/// Reads `text`; `bot_username` is ours (without `@`), when known.
pub(crate) fn parse<'a>(text: &'a str, bot_username: Option<&str>) -> Parsed<'a> {
    let text = text.trim();
    if text.is_empty() {
        return Parsed::Empty;
    }
    let Some(body) = text.strip_prefix('/') else {
        return Parsed::Text(text);
    };
    let (token, args) = match body.find(char::is_whitespace) {
        Some(i) => (&body[..i], body[i..].trim_start()),
        None => (body, ""),
    };
    let (name, addressee) = match token.split_once('@') {
        Some((name, bot)) => (name, Some(bot)),
        None => (token, None),
    };
    if let (Some(to), Some(ours)) = (addressee, bot_username)
        && !to.eq_ignore_ascii_case(ours.trim_start_matches('@'))
    {
        return Parsed::NotForUs;
    }
    match COMMANDS.iter().find(|c| c.eq_ignore_ascii_case(name)) {
        Some(name) => Parsed::Command { name, args },
        None => Parsed::Unknown(name),
    }
}

/// What a command runs with.
pub(crate) struct Ctx<'a> {
    pub coord: &'a Coordinator,
    /// The linked user who sent the message.
    pub user: &'a User,
    /// The account it came from.
    pub account: &'a TelegramAccount,
    pub update_id: i64,
    pub replies: &'a mut Replies,
    pub conversation: &'a Conversation,
}

/// Runs a known command for a linked user. Only faults (`Unavailable`, `Internal`) are errors;
/// everything a user can cause is answered in chat.
pub(crate) async fn dispatch(
    ctx: &mut Ctx<'_>,
    name: &'static str,
    args: &str,
) -> Result<(), CoordError> {
    match name {
        "start" => start::linked(ctx, args).await,
        "help" => {
            help::run(ctx, args);
            Ok(())
        }
        "status" => status::run(ctx, args).await,
        "tasks" => tasks::run(ctx, args).await,
        "run" => run::run(ctx, args).await,
        "cancel" => cancel::run(ctx, args).await,
        "approvals" => approvals::run(ctx, args).await,
        "approve" => decide::command(ctx, args, domain::ApprovalDecision::Approve).await,
        "deny" => decide::command(ctx, args, domain::ApprovalDecision::Deny).await,
        "bypass" => bypass::run(ctx, args).await,
        other => {
            unknown(ctx.replies, other);
            Ok(())
        }
    }
}

/// The reply to a command we do not know.
pub(crate) fn unknown(replies: &mut Replies, name: &str) {
    let (name, _) = crate::render::escape_truncated(name, 40);
    replies.text(format!(
        "I don't know the command <code>/{name}</code>. Send <code>/help</code> for the list."
    ));
}

/// Answers a coordinator error a user caused (prefixed with `prefix`, escaped HTML of ours);
/// passes faults up.
pub(crate) fn refuse(replies: &mut Replies, prefix: &str, e: CoordError) -> Result<(), CoordError> {
    match e {
        CoordError::Unavailable(_) | CoordError::Internal(_) => Err(e),
        CoordError::NotFound(what) => {
            replies.text(format!("{prefix}there is no such {what} that you can see."));
            Ok(())
        }
        other => {
            replies.text(format!("{prefix}{}", escape(&sentence(&other.to_string()))));
            Ok(())
        }
    }
}

/// For commands without arguments: replies with the usage and returns false when some were
/// given.
pub(crate) fn no_args(replies: &mut Replies, command: &str, args: &str) -> bool {
    if args.is_empty() {
        return true;
    }
    replies.text(format!(
        "<code>/{command}</code> takes no arguments; send just <code>/{command}</code>."
    ));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_with_and_without_the_bot_name() {
        let bot = Some("agentic_bot");
        assert_eq!(
            parse("/run  ls -la  ", bot),
            Parsed::Command {
                name: "run",
                args: "ls -la"
            }
        );
        assert_eq!(
            parse("/run@Agentic_Bot echo “hi”", bot),
            Parsed::Command {
                name: "run",
                args: "echo “hi”"
            }
        );
        assert_eq!(parse("/run@other_bot ls", bot), Parsed::NotForUs);
        assert_eq!(
            parse("/status@anything", None),
            Parsed::Command {
                name: "status",
                args: ""
            }
        );
        assert_eq!(parse("/frobnicate x", bot), Parsed::Unknown("frobnicate"));
        assert_eq!(parse("hello there", bot), Parsed::Text("hello there"));
        assert_eq!(parse("   ", bot), Parsed::Empty);
        assert_eq!(
            parse("/run\nline1\nline2", bot),
            Parsed::Command {
                name: "run",
                args: "line1\nline2"
            }
        );
        assert_eq!(
            parse("/START abc", bot),
            Parsed::Command {
                name: "start",
                args: "abc"
            }
        );
    }
}
