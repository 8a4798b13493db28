//! Code run by a shell or as a string: `sh -c '…'`, `bash script`, a shell reading stdin,
//! `eval`, `trap`, and `ssh host 'cmd'`.
//!
//! Visible code is parsed and classified in turn (so `bash -lc 'rm -rf /'` is still `rm -rf /`);
//! code that cannot be seen — a script file, a pipe, `bash <(curl …)` — is L2 at least, and the
//! reason says where it came from (`base64 -d | sh`: decoded; `curl … | sh`: downloaded).

use domain::RiskTier;

use super::argv::Parsed;
use super::command::{Stdin, join_for_shell, pipe_origin};
use super::rules::Program;
use super::words::Word;
use super::{Acc, Ctx, analyze_text};

fn rp(ctx: &Ctx) -> &'static str {
    if ctx.remote {
        "on the remote host: "
    } else {
        ""
    }
}

/// Classifies the code a shell reads from standard input.
fn from_stdin(who: &str, stdin: &Stdin, ctx: &Ctx, acc: &mut Acc) {
    let rp = rp(ctx);
    match stdin {
        Stdin::Text { text, .. } => analyze_text(text, &ctx.nested(), acc),
        Stdin::Pipe { producers, text } => {
            acc.raise(
                RiskTier::L2Destructive,
                format!(
                    "{rp}{who} runs shell code read from {} (L2)",
                    pipe_origin(producers)
                ),
            );
            if let Some(t) = text {
                analyze_text(t, &ctx.nested(), acc);
            }
        }
        Stdin::File(w) => acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}{who} runs shell code from the file `{}` (L2)",
                w.source
            ),
        ),
        Stdin::None => acc.raise(
            RiskTier::L2Destructive,
            format!("{rp}{who} reads shell code from standard input, which is not visible (L2)"),
        ),
    }
}

/// `sh`, `bash`, `dash`, `zsh` … with their arguments.
pub(crate) fn shell(name: &str, args: &[Word], stdin: &Stdin, ctx: &Ctx, acc: &mut Acc) {
    let rp = rp(ctx);
    let mut i = 0;
    let mut has_c = false;
    let mut reads_stdin = false;
    while i < args.len() {
        let w = &args[i];
        let t = w.text.as_str();
        if w.dynamic {
            break;
        }
        if t == "--" || t == "-" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            match long {
                "rcfile" | "init-file" => {
                    acc.raise(
                        RiskTier::L2Destructive,
                        format!(
                            "{rp}{name} --{long} runs a startup file the classifier cannot see (L2)"
                        ),
                    );
                    i += 2;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            }
        }
        if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
            let mut takes = 0;
            for ch in t.chars().skip(1) {
                match ch {
                    'c' => has_c = true,
                    's' => reads_stdin = true,
                    'o' | 'O' => takes += 1,
                    _ => {}
                }
            }
            i += 1 + takes;
            continue;
        }
        break;
    }
    let operand = args.get(i);
    if has_c {
        match operand {
            None => acc.raise(
                RiskTier::L2Destructive,
                format!("{rp}{name} -c without code (L2)"),
            ),
            Some(w) if w.dynamic => acc.raise(
                RiskTier::L2Destructive,
                format!(
                    "{rp}{name} -c runs shell code computed at run time (`{}`) (L2)",
                    w.source
                ),
            ),
            Some(w) => {
                if ctx.unseen_args {
                    acc.raise(
                        RiskTier::L2Destructive,
                        format!(
                            "{rp}{name} -c gets arguments from input the classifier cannot see (L2)"
                        ),
                    );
                }
                analyze_text(&w.text, &ctx.nested(), acc);
            }
        }
        return;
    }
    match operand {
        Some(w) if !reads_stdin => {
            let what = if w.procsubst {
                format!("a script produced by `{}`", w.source)
            } else {
                format!(
                    "the script `{}`, whose content the classifier cannot see",
                    w.source
                )
            };
            acc.raise(
                RiskTier::L2Destructive,
                format!("{rp}{name} runs {what} (L2)"),
            );
        }
        _ => from_stdin(name, stdin, ctx, acc),
    }
}

/// `ssh [options] host [command …]`: the command runs on the remote host.
pub(crate) fn ssh(prog: &Program, args: &[Word], stdin: &Stdin, ctx: &Ctx, acc: &mut Acc) {
    let p = super::argv::parse_with(
        args,
        &prog.value_flags,
        &prog.optional_value_flags,
        false,
        true,
        None,
    );
    let Some((host, mut cmd)) = p.positionals.split_first() else {
        return;
    };
    // OpenSSH also reads options right after the host (`ssh host -N -L …`).
    let mut forwarding_only = p.flags.iter().any(|f| f.name == "-N");
    while let Some((w, rest)) = cmd.split_first() {
        if w.dynamic || !w.text.starts_with('-') || w.text == "-" {
            break;
        }
        if w.text.contains('N') && !w.text.starts_with("--") {
            forwarding_only = true;
        }
        let takes = w.text.len() == 2 && prog.value_flags.contains(&w.text);
        cmd = if takes {
            rest.get(1..).unwrap_or(&[])
        } else {
            rest
        };
    }
    let remote = Ctx {
        remote: true,
        ..ctx.nested()
    };
    if cmd.is_empty() {
        if forwarding_only {
            return;
        }
        from_stdin(&format!("ssh {}", host.source), stdin, &remote, acc);
        return;
    }
    analyze_text(&join_for_shell(cmd), &remote, acc);
}

/// `eval ARGS`: the arguments are joined and run as shell code.
pub(crate) fn eval(parsed: &Parsed, label: &str, ctx: &Ctx, acc: &mut Acc) {
    if parsed.positionals.iter().any(|w| w.dynamic) {
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{}{label}: runs shell code computed at run time (L2)",
                rp(ctx)
            ),
        );
    }
    analyze_text(&join_for_shell(&parsed.positionals), &ctx.nested(), acc);
}

/// `trap ACTION SIGNAL…`: the action runs later.
pub(crate) fn trap(parsed: &Parsed, ctx: &Ctx, acc: &mut Acc) {
    let Some(action) = parsed.positionals.first() else {
        return;
    };
    if parsed.positionals.len() < 2 {
        return;
    }
    if action.dynamic {
        acc.raise(
            RiskTier::L2Destructive,
            format!("{}trap: runs code computed at run time (L2)", rp(ctx)),
        );
        return;
    }
    analyze_text(&action.text, &ctx.nested(), acc);
}
