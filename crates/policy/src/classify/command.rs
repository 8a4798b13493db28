//! One simple command: find the program bash will run, see through wrappers, and apply the
//! program's table entry (subcommands, raising rules, named analyses).

use domain::RiskTier;

use super::argv::{Flag, Parsed, any_flag, parse, parse_with, value_matches, value_outside};
use super::glob::{glob_match, glob_match_ci};
use super::paths::{classify_path, segments};
use super::rules::{Effect, Handler, Outcome, PathClass, Program, Rule, Target, WrapperSpec};
use super::words::{DYN, Word, brace_expand};
use super::{Acc, Ctx, Hit, analyze_text, find, git, sed, shell, short, sql};
use crate::normalize::skeleton;

/// What feeds a command's standard input.
#[derive(Debug, Clone)]
pub(crate) enum Stdin {
    /// Nothing the command line shows (the sandbox's stdin).
    None,
    /// The output of earlier pipeline stages; `text` when that output is plainly visible.
    Pipe {
        producers: Vec<String>,
        text: Option<String>,
    },
    /// A file (`< file`).
    File(Word),
    /// A heredoc or herestring.
    Text { text: String, dynamic: bool },
}

/// Programs whose output is decoded or downloaded data.
const DECODERS: &[&str] = &[
    "base64", "base32", "basenc", "xxd", "openssl", "gunzip", "gzip", "zcat", "bzip2", "bunzip2",
    "xz", "unxz", "zstd", "rev", "tr", "uudecode", "od", "python", "python3", "perl",
];
const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "nc", "ncat", "socat", "aria2c"];

/// Says where piped input comes from, for reasons.
pub(crate) fn pipe_origin(producers: &[String]) -> String {
    let list = producers
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(" | ");
    let mut s = format!("the output of {list}");
    if producers.iter().any(|p| DOWNLOADERS.contains(&p.as_str())) {
        s.push_str(", downloaded from the network");
    } else if producers.iter().any(|p| DECODERS.contains(&p.as_str())) {
        s.push_str(", decoded so that it cannot be read in the command");
    }
    s
}

fn remote_prefix(ctx: &Ctx) -> &'static str {
    if ctx.remote {
        "on the remote host: "
    } else {
        ""
    }
}

/// Raises for a path the command writes, deletes, modifies or reads.
pub(crate) fn write_target(w: &Word, verb: &str, effect: Effect, ctx: &Ctx, acc: &mut Acc) {
    let text = w.text.as_str();
    if effect == Effect::Write && (text.starts_with("/dev/tcp/") || text.starts_with("/dev/udp/")) {
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{}the shell opens a network connection to `{}` (L2)",
                remote_prefix(ctx),
                w.source
            ),
        );
        return;
    }
    let class = classify_path(w, &ctx.rules.paths);
    let base = if effect == Effect::Read {
        RiskTier::L0Readonly
    } else {
        RiskTier::L1Mutating
    };
    let outcome = effect.default_outcome(class, base);
    emit(
        acc,
        outcome,
        format!(
            "{}{verb} {}`{}`",
            remote_prefix(ctx),
            class.phrase(),
            w.source
        ),
    );
}

fn emit(acc: &mut Acc, outcome: Outcome, text: String) {
    match outcome {
        Outcome::Skip => {}
        Outcome::Forbid => acc.forbid(text),
        Outcome::Tier(t) => acc.raise(t, format!("{text} ({})", short(t))),
    }
}

/// Raises for setting an environment variable that changes what programs run.
pub(crate) fn env_assignment(name: &str, ctx: &Ctx, acc: &mut Acc) {
    for e in &ctx.rules.env {
        if e.names.iter().any(|g| glob_match(g, name)) {
            acc.raise(
                e.tier,
                format!(
                    "{}setting {name}: {} ({})",
                    remote_prefix(ctx),
                    e.what,
                    short(e.tier)
                ),
            );
            return;
        }
    }
}

fn is_assignment(t: &str) -> Option<&str> {
    let (name, _) = t.split_once('=')?;
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    ok.then_some(name)
}

/// Classifies one argv.
pub(crate) fn classify_argv(
    argv: &[Word],
    stdin: &Stdin,
    ctx: &Ctx,
    functions: &[String],
    acc: &mut Acc,
) {
    let Some((first, rest)) = argv.split_first() else {
        return;
    };
    let rp = remote_prefix(ctx);
    if first.subst {
        acc.program(&first.source);
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}the program name `{}` comes from a command's output (L2)",
                first.source
            ),
        );
        return;
    }
    if first.dynamic || first.procsubst {
        acc.program(&first.source);
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}the program name `{}` is computed at run time (L2)",
                first.source
            ),
        );
        return;
    }
    if first.hidden {
        acc.raise(
            RiskTier::L2Destructive,
            format!("{rp}the program name holds invisible characters (L2)"),
        );
    }
    let mut name = first.text.clone();
    if first.bare
        && let Some(expanded) = brace_expand(&name)
    {
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}brace expansion builds the command from `{}` (L2)",
                first.source
            ),
        );
        let mut v: Vec<Word> = expanded.iter().map(|s| Word::lit(s)).collect();
        v.extend(rest.iter().cloned());
        classify_argv(&v, stdin, &ctx.nested(), functions, acc);
        return;
    }
    if name.is_empty() {
        acc.raise(
            RiskTier::L2Destructive,
            format!("{rp}the program name is empty (L2)"),
        );
        return;
    }
    if !name.is_ascii() {
        let sk = skeleton(&name);
        acc.program(&name);
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}the program name {name:?} is not plain ASCII (it reads as {sk:?}); \
                 look-alike letters are a known disguise (L2)"
            ),
        );
        if sk != name && sk.is_ascii() {
            let mut v = argv.to_vec();
            v[0] = Word::lit(&sk);
            classify_argv(&v, stdin, &ctx.nested(), functions, acc);
        }
        return;
    }
    if name.contains('/') {
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", &name));
        let dir_norm = if dir.is_empty() {
            "/".to_owned()
        } else {
            let s = segments(dir);
            let mut p = String::new();
            for seg in s.iter().skip(1) {
                p.push('/');
                p.push_str(seg);
            }
            if s.first().is_some_and(|f| f == "/") {
                if p.is_empty() { "/".to_owned() } else { p }
            } else {
                dir.to_owned()
            }
        };
        if !base.is_empty() && ctx.rules.paths.std_bin_dirs.contains(&dir_norm) {
            name = base.to_owned();
        } else {
            acc.program(&name);
            acc.raise(
                RiskTier::L2Destructive,
                format!(
                    "{rp}runs the program at `{name}`, which the rule table does not know (L2)"
                ),
            );
            return;
        }
    }
    if functions.contains(&name) {
        acc.program(&name);
        return;
    }
    let Some(prog) = ctx.rules.program(&name) else {
        acc.program(&name);
        acc.raise(
            RiskTier::L2Destructive,
            format!("{rp}`{name}` is not a program the classifier knows (L2)"),
        );
        return;
    };
    acc.program(&name);
    if !rest.is_empty()
        && rest
            .iter()
            .all(|w| matches!(w.literal(), Some("--help" | "--version")))
    {
        acc.raise(RiskTier::L0Readonly, String::new());
        return;
    }
    if let Some(wr) = &prog.wrapper {
        wrapper(prog, wr, &name, rest, stdin, ctx, functions, acc);
        return;
    }
    program(prog, &name, rest, stdin, ctx, functions, acc);
}

#[allow(clippy::too_many_arguments)]
fn wrapper(
    prog: &Program,
    wr: &WrapperSpec,
    name: &str,
    rest: &[Word],
    stdin: &Stdin,
    ctx: &Ctx,
    functions: &[String],
    acc: &mut Acc,
) {
    let rp = remote_prefix(ctx);
    let parsed = parse_with(rest, &wr.value_flags, &[], false, true, None);
    acc.raise(
        prog.tier,
        format!("{rp}{name}: {} ({})", prog.what, short(prog.tier)),
    );
    let pi = prog_index(ctx, prog);
    apply_rules(prog, pi, name, &parsed, 0, prog.tier, ctx, acc);
    if !any_flag(&parsed, &wr.lookup_flags).is_empty() {
        return;
    }
    if let Some(f) = any_flag(&parsed, &wr.split_flags).first() {
        acc.raise(
            RiskTier::L2Destructive,
            format!("{rp}{name} {} splits a string into a command (L2)", f.name),
        );
        match &f.value {
            Some(v) if !v.dynamic => {
                let tail: Vec<&str> = parsed
                    .positionals
                    .iter()
                    .map(|w| w.source.as_str())
                    .collect();
                analyze_text(
                    &format!("{} {}", v.text, tail.join(" ")),
                    &ctx.nested(),
                    acc,
                );
            }
            _ => {}
        }
        return;
    }
    let mut cmd: &[Word] = &parsed.positionals;
    if wr.assignments {
        while let Some((w, more)) = cmd.split_first() {
            match w.literal().and_then(is_assignment) {
                Some(var) => {
                    env_assignment(var, ctx, acc);
                    cmd = more;
                }
                None => break,
            }
        }
    }
    cmd = cmd.get(wr.skip.min(cmd.len())..).unwrap_or(&[]);
    let default: Vec<Word>;
    if cmd.is_empty() {
        if wr.default_command.is_empty() {
            let t = wr.no_command.map_or(prog.tier, RiskTier::from);
            acc.raise(t, format!("{rp}{name} with no command ({})", short(t)));
            return;
        }
        default = wr.default_command.iter().map(|s| Word::lit(s)).collect();
        cmd = &default;
    }
    let inner = Ctx {
        unseen_args: ctx.unseen_args || wr.unseen_args,
        ..ctx.nested()
    };
    if wr.shell_string || !any_flag(&parsed, &wr.shell_flags).is_empty() {
        let joined = join_for_shell(cmd);
        analyze_text(&joined, &inner, acc);
        return;
    }
    classify_argv(cmd, stdin, &inner, functions, acc);
}

/// Joins words into shell code as a shell would see `"$*"`: literal words by value, run-time
/// words as written (so they stay run-time when parsed again).
pub(crate) fn join_for_shell(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| {
            if w.dynamic {
                w.source.as_str()
            } else {
                w.text.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn prog_index(ctx: &Ctx, prog: &Program) -> usize {
    ctx.rules
        .programs
        .iter()
        .position(|p| std::ptr::eq(p, prog))
        .unwrap_or(usize::MAX)
}

fn program(
    prog: &Program,
    name: &str,
    rest: &[Word],
    stdin: &Stdin,
    ctx: &Ctx,
    functions: &[String],
    acc: &mut Acc,
) {
    let rp = remote_prefix(ctx);
    let pi = prog_index(ctx, prog);
    let mut args = rest.to_vec();
    match prog.handler {
        Some(Handler::Tar) => {
            if let Some(first) = args.first_mut()
                && !first.dynamic
                && !first.text.starts_with('-')
                && !first.text.is_empty()
                && first.text.chars().all(|c| c.is_ascii_alphabetic())
            {
                first.text.insert(0, '-');
            }
        }
        Some(Handler::Find) => {
            args = find::split_actions(&args, stdin, ctx, functions, acc);
        }
        _ => {}
    }
    let parsed = parse(&args, prog);

    // The base tier, by subcommand.
    let mut sub_len = 0;
    let (tier, what, label) = if prog.subs.is_empty() {
        (prog.tier, prog.what.clone(), name.to_owned())
    } else if parsed.positionals.is_empty() {
        (prog.bare, prog.what.clone(), name.to_owned())
    } else {
        match best_sub(prog, &parsed.positionals) {
            Some((si, len)) => {
                acc.hit(Hit::Sub(pi, si));
                sub_len = len;
                let words: Vec<&str> = parsed.positionals[..len]
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect();
                (
                    prog.subs[si].tier,
                    prog.subs[si].what.clone(),
                    format!("{name} {}", words.join(" ")),
                )
            }
            None => {
                let first = &parsed.positionals[0];
                (
                    prog.unknown_sub,
                    format!(
                        "`{}` is not a subcommand the classifier knows",
                        first.source
                    ),
                    name.to_owned(),
                )
            }
        }
    };
    acc.raise(tier, format!("{rp}{label}: {what} ({})", short(tier)));
    if !prog.subs.is_empty()
        && let Some(opt) = parsed.unknown_before_sub.first()
    {
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}{name}: the option `{opt}` before the subcommand is not known to the \
                 classifier and could change what runs (L2)"
            ),
        );
    }
    apply_rules(prog, pi, &label, &parsed, sub_len, tier, ctx, acc);
    if prog.option_sensitive && parsed.flags.iter().any(|f| f.from_dynamic) {
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{rp}{label}: an argument computed at run time could be an option that changes \
                 what runs (L2)"
            ),
        );
    }
    if ctx.unseen_args && (!prog.rules.is_empty() || prog.handler.is_some()) {
        acc.raise(
            RiskTier::L1Mutating,
            format!("{rp}{label} runs with arguments from input the classifier cannot see (L1)"),
        );
    }
    for f in any_flag(&parsed, &prog.shell_code_flags) {
        shell_code(f, &label, ctx, acc);
    }
    match prog.handler {
        Some(Handler::Git) => git::check(&parsed, &label, ctx, acc),
        Some(Handler::Sed) => sed::check(&parsed, &label, ctx, acc),
        Some(Handler::Awk) => super::awk::check(&parsed, &label, ctx, acc),
        Some(Handler::Sql) => sql::check(prog, &parsed, stdin, &label, ctx, acc),
        Some(Handler::Shell) => shell::shell(name, &args, stdin, ctx, acc),
        Some(Handler::Ssh) => shell::ssh(prog, &args, stdin, ctx, acc),
        Some(Handler::Eval) => shell::eval(&parsed, &label, ctx, acc),
        Some(Handler::Trap) => shell::trap(&parsed, ctx, acc),
        Some(Handler::Tar) | Some(Handler::Find) | None => {}
    }
}

fn shell_code(f: &Flag, label: &str, ctx: &Ctx, acc: &mut Acc) {
    match &f.value {
        Some(v) if !v.dynamic => analyze_text(&v.text, &ctx.nested(), acc),
        _ => acc.raise(
            RiskTier::L2Destructive,
            format!(
                "{}{label} {}: runs shell code computed at run time (L2)",
                remote_prefix(ctx),
                f.name
            ),
        ),
    }
}

/// The subcommand entry with the longest matching path, and how many operands it consumed.
fn best_sub(prog: &Program, pos: &[Word]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None; // (index, len, specificity)
    for (si, sub) in prog.subs.iter().enumerate() {
        for path in &sub.paths {
            if let Some(len) = path_match(path, pos, prog.ignore_case) {
                let spec: usize = path
                    .iter()
                    .map(|s| match s.as_str() {
                        "*" | "**" => 0,
                        s if s.contains(['*', '?', '[']) => 1,
                        _ => 2,
                    })
                    .sum();
                let better = match best {
                    None => true,
                    Some((_, bl, bs)) => len > bl || (len == bl && spec > bs),
                };
                if better {
                    best = Some((si, len, spec));
                }
            }
        }
    }
    best.map(|(i, l, _)| (i, l))
}

/// How many operands the subcommand path matches as a prefix (the longest way), if it does.
pub(crate) fn path_match(path: &[String], pos: &[Word], ignore_case: bool) -> Option<usize> {
    fn go(path: &[String], pos: &[Word], used: usize, ic: bool) -> Option<usize> {
        let Some((seg, more)) = path.split_first() else {
            return Some(used);
        };
        if seg == "**" {
            let mut best = None;
            for take in 1..=pos.len() {
                if pos[..take].iter().any(|w| w.dynamic) {
                    break;
                }
                if let Some(n) = go(more, &pos[take..], used + take, ic) {
                    best = Some(best.map_or(n, |b: usize| b.max(n)));
                }
            }
            return best;
        }
        let (w, rest) = pos.split_first()?;
        if w.dynamic {
            return None;
        }
        let ok = if ic {
            glob_match_ci(seg, &w.text)
        } else {
            glob_match(seg, &w.text)
        };
        if ok {
            go(more, rest, used + 1, ic)
        } else {
            None
        }
    }
    go(path, pos, 0, ignore_case)
}

/// Applies the program's raising rules; `base` is the tier before them.
#[allow(clippy::too_many_arguments)]
fn apply_rules(
    prog: &Program,
    pi: usize,
    label: &str,
    parsed: &Parsed,
    sub_len: usize,
    base: RiskTier,
    ctx: &Ctx,
    acc: &mut Acc,
) {
    for (ri, rule) in prog.rules.iter().enumerate() {
        if apply_rule(prog, rule, label, parsed, sub_len, base, ctx, acc) {
            acc.hit(Hit::Rule(pi, ri));
        }
    }
}

/// Whether a rule's conditions hold; emits its outcomes. Returns whether it raised anything
/// (a targeted rule whose paths all stay at or below `base` did not).
#[allow(clippy::too_many_arguments)]
fn apply_rule(
    prog: &Program,
    rule: &Rule,
    label: &str,
    parsed: &Parsed,
    sub_len: usize,
    base: RiskTier,
    ctx: &Ctx,
    acc: &mut Acc,
) -> bool {
    let pos = &parsed.positionals;
    let k = if rule.sub.is_empty() {
        sub_len
    } else {
        match rule
            .sub
            .iter()
            .filter_map(|p| path_match(p, pos, prog.ignore_case))
            .max()
        {
            Some(k) => k,
            None => return false,
        }
    };
    let args = pos.get(k.min(pos.len())..).unwrap_or(&[]);
    let mut matched: Vec<&Flag> = Vec::new();
    if !rule.flags.is_empty() {
        matched = any_flag(parsed, &rule.flags);
        if !rule.values.is_empty() {
            matched.retain(|f| value_matches(f.value.as_ref(), &rule.values));
        }
        if !rule.not_values.is_empty() {
            matched.retain(|f| value_outside(f.value.as_ref(), &rule.not_values));
        }
        if matched.is_empty() {
            return false;
        }
    }
    if !rule.not_flags.is_empty() && !any_flag(parsed, &rule.not_flags).is_empty() {
        return false;
    }
    if !rule.args.is_empty()
        && !args.iter().any(|a| {
            a.dynamic
                || rule.args.iter().any(|g| {
                    if prog.ignore_case {
                        glob_match_ci(g, &a.text)
                    } else {
                        glob_match(g, &a.text)
                    }
                })
        })
    {
        return false;
    }
    if rule.min_args.is_some_and(|n| args.len() < n) {
        return false;
    }
    let rp = remote_prefix(ctx);
    let shown_flag = matched
        .first()
        .map(|f| format!(" {}", f.name))
        .unwrap_or_default();
    let Some(target) = &rule.target else {
        let outcome = if rule.forbid {
            Outcome::Forbid
        } else {
            Outcome::Tier(rule.tier)
        };
        emit(
            acc,
            outcome,
            format!("{rp}{label}{shown_flag}: {}", rule.what),
        );
        return true;
    };
    let owned: Vec<Word>;
    let targets: Vec<&Word> = match target {
        Target::Args => args.iter().collect(),
        Target::Last => match args {
            [_, .., last] => vec![last],
            _ => Vec::new(),
        },
        Target::AllButLast => match args {
            [init @ .., _] if !init.is_empty() => init.iter().collect(),
            _ => Vec::new(),
        },
        Target::FlagValues => matched.iter().filter_map(|f| f.value.as_ref()).collect(),
        Target::Kv(key) => {
            owned = args
                .iter()
                .filter_map(|a| {
                    let v = a.text.strip_prefix(key.as_str())?.strip_prefix('=')?;
                    Some(Word {
                        text: v.to_owned(),
                        source: v.to_owned(),
                        ..a.clone()
                    })
                })
                .collect();
            owned.iter().collect()
        }
    };
    let mut any = false;
    for w in targets {
        let class = if w.starts_dynamic() && w.text.chars().all(|c| c == DYN) {
            PathClass::Dynamic
        } else {
            classify_path(w, &ctx.rules.paths)
        };
        let mut outcome = rule
            .on
            .get(&class)
            .copied()
            .unwrap_or_else(|| rule.effect.default_outcome(class, rule.tier));
        if rule.forbid && outcome != Outcome::Skip {
            outcome = Outcome::Forbid;
        }
        match outcome {
            Outcome::Skip => continue,
            Outcome::Tier(t) if t <= base => {}
            _ => any = true,
        }
        emit(
            acc,
            outcome,
            format!(
                "{rp}{label}{shown_flag}: {} {}`{}`",
                rule.what,
                class.phrase(),
                w.source
            ),
        );
    }
    any
}
