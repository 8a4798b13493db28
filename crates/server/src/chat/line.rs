//! What a typed line means: a request to the agent, or one of the chat's own `/` commands.

/// The help text of the chat's own commands.
pub const HELP: &str = "\
Type a request for the agent and press Enter; its steps, the commands it runs and its answer
are shown as they happen. The server keeps the conversation, so follow-up questions work.
Commands:
  /approve ID   approve a pending approval
  /deny ID      deny a pending approval
  /cancel       cancel the task being followed (Ctrl-C does the same)
  /help         this help
  /quit         leave (so does Ctrl-D); a running task goes on on the server";

/// One line of input, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Nothing but whitespace.
    Blank,
    /// A request for the agent, as typed.
    Prompt(String),
    /// `/approve ID`.
    Approve(String),
    /// `/deny ID`.
    Deny(String),
    /// `/cancel`.
    Cancel,
    /// `/help`.
    Help,
    /// `/quit` (or `/exit`).
    Quit,
    /// A `/` command that is unknown or lacks its argument; the message says which.
    Invalid(String),
}

/// Parses one line (without its line ending).
pub fn parse(text: &str) -> Line {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    let Some(command) = trimmed.strip_prefix('/') else {
        return Line::Prompt(trimmed.to_owned());
    };
    let mut words = command.split_whitespace();
    let name = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    let with_id = |make: fn(String) -> Line| match args.as_slice() {
        [id] => make((*id).to_owned()),
        _ => Line::Invalid(format!("usage: /{name} APPROVAL_ID")),
    };
    let bare = |line: Line| {
        if args.is_empty() {
            line
        } else {
            Line::Invalid(format!("/{name} takes no arguments"))
        }
    };
    match name {
        "approve" => with_id(Line::Approve),
        "deny" => with_id(Line::Deny),
        "cancel" => bare(Line::Cancel),
        "help" => bare(Line::Help),
        "quit" | "exit" => bare(Line::Quit),
        _ => Line::Invalid(format!("unknown command /{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_trimmed_and_blank_lines_are_blank() {
        assert_eq!(
            parse("  what is the disk usage?  "),
            Line::Prompt("what is the disk usage?".into())
        );
        assert_eq!(parse(" \t "), Line::Blank);
        assert_eq!(parse(""), Line::Blank);
    }

    #[test]
    fn commands() {
        assert_eq!(parse("/approve apr_x1"), Line::Approve("apr_x1".into()));
        assert_eq!(parse(" /deny   apr_x1 "), Line::Deny("apr_x1".into()));
        assert_eq!(parse("/cancel"), Line::Cancel);
        assert_eq!(parse("/help"), Line::Help);
        assert_eq!(parse("/quit"), Line::Quit);
        assert_eq!(parse("/exit"), Line::Quit);
    }

    #[test]
    fn malformed_commands_say_what_is_wrong() {
        assert_eq!(
            parse("/approve"),
            Line::Invalid("usage: /approve APPROVAL_ID".into())
        );
        assert_eq!(
            parse("/deny a b"),
            Line::Invalid("usage: /deny APPROVAL_ID".into())
        );
        assert_eq!(
            parse("/cancel now"),
            Line::Invalid("/cancel takes no arguments".into())
        );
        assert_eq!(
            parse("/frobnicate"),
            Line::Invalid("unknown command /frobnicate".into())
        );
        assert_eq!(parse("/"), Line::Invalid("unknown command /".into()));
    }
}
