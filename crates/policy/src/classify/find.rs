//! `find`'s actions that run programs: `-exec`, `-execdir`, `-ok`, `-okdir`.
//!
//! Peers treated `find` as read-only and were bypassed with `find . -exec sh -c '…' \;`. Each
//! action's command is cut out of the argument list and classified like any other command,
//! knowing that it gets file names it cannot see (`{}`). The remaining arguments go through the
//! rule table (`-delete`, `-fprint`, `-fls` …).

use domain::RiskTier;

use super::command::{Stdin, classify_argv};
use super::words::{DYN, Word};
use super::{Acc, Ctx};

const ACTIONS: &[&str] = &["-exec", "-execdir", "-ok", "-okdir"];

/// Classifies the commands of `-exec`-like actions; returns the other arguments.
pub(crate) fn split_actions(
    args: &[Word],
    stdin: &Stdin,
    ctx: &Ctx,
    functions: &[String],
    acc: &mut Acc,
) -> Vec<Word> {
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let w = &args[i];
        i += 1;
        let Some(action) = w.literal().filter(|t| ACTIONS.contains(t)) else {
            rest.push(w.clone());
            continue;
        };
        let mut cmd: Vec<Word> = Vec::new();
        let mut terminated = false;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            match a.literal() {
                Some(";") => {
                    terminated = true;
                    break;
                }
                Some("+") if cmd.last().is_some_and(|c| c.source == "{}") => {
                    terminated = true;
                    break;
                }
                _ => {}
            }
            if a.literal().is_some_and(|t| t.contains("{}")) {
                // A file name found at run time.
                cmd.push(Word {
                    text: a.text.replace("{}", &DYN.to_string()),
                    dynamic: true,
                    source: a.source.clone(),
                    ..Word::default()
                });
            } else {
                cmd.push(a.clone());
            }
        }
        if !terminated || cmd.is_empty() {
            acc.raise(
                RiskTier::L2Destructive,
                format!("find {action}: the command is incomplete (L2)"),
            );
            continue;
        }
        let prog = cmd.first().map(|w| w.source.clone()).unwrap_or_default();
        acc.raise(
            RiskTier::L0Readonly,
            format!("find {action}: runs `{prog}` for every file found"),
        );
        let inner = Ctx {
            unseen_args: true,
            ..ctx.nested()
        };
        classify_argv(&cmd, stdin, &inner, functions, acc);
    }
    rest
}
